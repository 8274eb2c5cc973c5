/* pref.c — the preference losses and their derivatives (pref.h). */
#include "pref.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {"sigmoid", "hinge", "ipo", "simpo", "orpo"};

int pref_parse(const char *name, pref_kind *k)
{
	for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
		if (!strcmp(name, names[i])) {
			*k = (pref_kind)i;
			return 0;
		}
	return -1;
}

int pref_uses_ref(pref_kind k)
{
	return k != PREF_SIMPO && k != PREF_ORPO;
}

/* ipo, orpo and simpo compare log-probabilities per token */
static int averages(pref_kind k)
{
	return k == PREF_IPO || k == PREF_ORPO || k == PREF_SIMPO;
}

static double sigmoid(double x)
{
	return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

static double log_sigmoid(double x)
{
	return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

void pref_eval(const pref_hparams *h, const pref_pair *p, pref_out *o)
{
	double beta = h->beta, ac = averages(h->kind) ? 1.0 / (double)p->nc : 1.0,
	       ar = averages(h->kind) ? 1.0 / (double)p->nr : 1.0;
	double c = p->c * ac, r = p->r * ar; /* the log-probabilities the loss compares */
	double gc = 0, gr = 0;                /* d(loss)/dc, d(loss)/dr */
	memset(o, 0, sizeof *o);
	if (pref_uses_ref(h->kind)) {
		double cr = c - p->ref_c * ac, rr = r - p->ref_r * ar, x = cr - rr, g;
		if (h->kind == PREF_SIGMOID) {
			double e = h->label_smoothing;
			o->loss = -(1 - e) * log_sigmoid(beta * x) - e * log_sigmoid(-beta * x);
			g = beta * (-(1 - e) * sigmoid(-beta * x) + e * sigmoid(beta * x));
		} else if (h->kind == PREF_HINGE) {
			double m = 1 - beta * x;
			o->loss = m > 0 ? m : 0;
			g = m > 0 ? -beta : 0; /* torch.relu's gradient at 0 is 0 */
		} else { /* ipo */
			double d = x - 1 / (2 * beta);
			o->loss = d * d;
			g = 2 * d;
		}
		gc = g, gr = -g;
		o->reward_c = beta * cr, o->reward_r = beta * rr;
	} else if (h->kind == PREF_SIMPO) {
		double x = beta * (c - r) - h->gamma;
		o->loss = -log_sigmoid(x);
		gc = -beta * sigmoid(-x), gr = -gc;
		o->reward_c = beta * c, o->reward_r = beta * r;
	} else { /* orpo: the odds ratio, beside the chosen side's NLL */
		double lo = (c - r) - (log1p(-exp(c)) - log1p(-exp(r)));
		o->loss = -c - beta * log_sigmoid(lo);
		double k = -beta * sigmoid(-lo); /* d(-beta log sigmoid(lo))/d(lo) */
		gc = -1 + k / (1 - exp(c));      /* d lo/dc = 1 / (1 - e^c) */
		gr = -k / (1 - exp(r));          /* d lo/dr = -1 / (1 - e^r) */
		o->reward_c = beta * c, o->reward_r = beta * r;
	}
	/* the chosen side's mean NLL: LF's sft_loss, added under pref_ftx */
	o->sft_loss = -p->c / (double)p->nc;
	double dc = gc * ac, dr = gr * ar;
	if (h->ftx > 1e-6) {
		o->loss += h->ftx * o->sft_loss;
		dc += -h->ftx / (double)p->nc;
	}
	o->dc = dc, o->dr = dr;
	o->logp_c = c, o->logp_r = r;
}

const char *const pref_metric_names[PM_N] = {
	"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
	"logps/chosen", "logps/rejected", "sft_loss", "odds_ratio_loss"};

void pref_metrics(const pref_hparams *h, const pref_out *o, int n, double m[PM_N])
{
	memset(m, 0, PM_N * sizeof *m);
	for (int i = 0; i < n; i++) {
		m[PM_REWARD_C] += o[i].reward_c;
		m[PM_REWARD_R] += o[i].reward_r;
		m[PM_ACC] += o[i].reward_c > o[i].reward_r;
		m[PM_MARGIN] += o[i].reward_c - o[i].reward_r;
		m[PM_LOGP_C] += o[i].logp_c;
		m[PM_LOGP_R] += o[i].logp_r;
		m[PM_SFT] += o[i].sft_loss;
		/* LF: (losses - sft_loss) / beta, the ftx term included */
		m[PM_ODDS] += (o[i].loss - o[i].sft_loss) / h->beta;
	}
	for (int k = 0; k < PM_N && n > 0; k++) m[k] /= n;
}
