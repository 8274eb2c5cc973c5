/* kd.c — the distillation loss of one position (kd.h).
 *
 * The gradient: with p = softmax(z / tau) and the outcomes' P_o sums of p,
 * d f(P) / d z_j = p_j (g_o(j) - c) / tau, g_o = df/dP_o, c = sum_o P_o g_o.
 * Per outcome w_o = P_o (g_o - c) is its share; a token of the rest gets
 * p_j / P_rest of w_rest. For forward_kl (g_o = -Q_o / P_o, c = -1) that is
 * w_o = P_o - Q_o; for reverse_kl g_o = log P_o - log Q_o and c is the KD
 * itself; for jsd g_o = (1 - beta) (log P_o - log M_o).
 */
#include "kd.h"
#include "mvec.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {"forward_kl", "reverse_kl", "jsd"};

const char *kd_loss_name(int loss) { return loss >= 0 && loss <= KD_JSD ? names[loss] : "?"; }

int kd_loss_parse(const char *name)
{
	for (int i = 0; i <= KD_JSD; i++)
		if (!strcmp(name, names[i])) return i;
	return -1;
}

static double lse2(double a, double b)
{
	double m = a > b ? a : b;
	return m == -INFINITY ? m : m + log(exp(a - m) + exp(b - m));
}

/* Sums of float terms in blocks, each block's float sum added in double:
 * the inner loop vectorizes, and the error stays that of a 1024-term sum. */
#define KD_BLOCK 1024

double kd_row(const kd_config *c, float *z, int V, int tgt, int k, const uint32_t *id, const float *lp, float scale,
	      int grad, double *ce_out, double *kd_out)
{
	const int tempered = c->tau != 1.0;
	const float inv = (float)(1.0 / c->tau);
	float mx = -INFINITY, zt = z[tgt];
#pragma omp simd reduction(max : mx)
	for (int j = 0; j < V; j++) mx = z[j] > mx ? z[j] : mx;
	/* The rest's sums without the top K's terms (no cancellation when the
	 * rest is small): theirs are taken out, summed apart, put back. */
	float zS[64];
	for (int a = 0; a < k; a++) zS[a] = z[id[a]], z[id[a]] = -INFINITY;
	double r1 = 0, rt = 0; /* the rest's sum of exp(z - mx), of exp((z - mx) / tau) */
	for (int j0 = 0; j0 < V; j0 += KD_BLOCK) {
		int j1 = j0 + KD_BLOCK < V ? j0 + KD_BLOCK : V;
		float b1 = 0, bt = 0;
		if (tempered) {
#pragma omp simd reduction(+ : b1, bt)
			for (int j = j0; j < j1; j++) b1 += expf(z[j] - mx), bt += expf((z[j] - mx) * inv);
		} else {
			/* at temperature 1 the exponentials are the gradient's too: kept in place */
#pragma omp simd reduction(+ : b1)
			for (int j = j0; j < j1; j++) b1 += (z[j] = expf(z[j] - mx));
		}
		r1 += b1;
		rt += bt;
	}
	if (!tempered) rt = r1;
	double s1 = r1, st = rt, eS[64];
	for (int a = 0; a < k; a++) {
		eS[a] = exp(((double)zS[a] - mx) * (1.0 / c->tau));
		s1 += tempered ? exp((double)zS[a] - mx) : eS[a];
		st += eS[a];
	}
	double ce = mx + log(s1) - zt;

	/* the K + 1 outcomes, in the log domain; [k] is the rest */
	double logP[65], logQ[65], w[65];
	double lst = log(st), tm = 0;
	for (int a = 0; a < k; a++) {
		logP[a] = ((double)zS[a] - mx) * (1.0 / c->tau) - lst;
		tm += exp((double)lp[a]);
	}
	double rest = rt < st * 1e-30 ? st * 1e-30 : rt;
	logP[k] = log(rest) - lst;
	double r = 1 - tm < KD_REST_MIN ? KD_REST_MIN : 1 - tm, lz = -INFINITY;
	for (int a = 0; a < k; a++) lz = lse2(lz, (logQ[a] = lp[a] / c->tau));
	lz = lse2(lz, (logQ[k] = log(r) / c->tau));
	for (int a = 0; a <= k; a++) logQ[a] -= lz;

	double kd = 0, cc = 0;
	int loss = c->loss;
	if (loss == KD_JSD && c->beta <= 0) loss = KD_FORWARD_KL;
	if (loss == KD_JSD && c->beta >= 1) loss = KD_REVERSE_KL;
	if (loss == KD_FORWARD_KL) {
		for (int a = 0; a <= k; a++) {
			double Q = exp(logQ[a]);
			kd += Q * (logQ[a] - logP[a]);
			w[a] = exp(logP[a]) - Q;
		}
	} else if (loss == KD_REVERSE_KL) {
		for (int a = 0; a <= k; a++) kd += exp(logP[a]) * (logP[a] - logQ[a]);
		for (int a = 0; a <= k; a++) w[a] = exp(logP[a]) * (logP[a] - logQ[a] - kd);
	} else {
		double b = c->beta, lb = log(b), l1b = log1p(-b);
		for (int a = 0; a <= k; a++) {
			double lm = lse2(logQ[a] + lb, logP[a] + l1b), P = exp(logP[a]);
			kd += b * exp(logQ[a]) * (logQ[a] - lm) + (1 - b) * P * (logP[a] - lm);
			w[a] = (1 - b) * (logP[a] - lm); /* g_o, for now */
			cc += P * w[a];
		}
		for (int a = 0; a <= k; a++) w[a] = exp(logP[a]) * (w[a] - cc);
	}
	*ce_out = ce;
	*kd_out = kd;
	const double al = c->alpha;
	if (grad) {
		/* the rest's tokens: p_j / P_rest of w_rest (the top K's entries
		 * are -inf or 0 here: set after); the top K: w_a */
		const float h = (float)(scale * (1 - al) / s1);
		const float g = (float)(scale * al * c->tau * w[k] / rest);
		if (tempered) {
#pragma omp simd
			for (int j = 0; j < V; j++) z[j] = h * expf(z[j] - mx) + g * expf((z[j] - mx) * inv);
		} else {
			const float hg = h + g;
#pragma omp simd
			for (int j = 0; j < V; j++) z[j] *= hg;
		}
		for (int a = 0; a < k; a++)
			z[id[a]] = (float)(scale * ((1 - al) * exp((double)zS[a] - mx) / s1 + al * c->tau * w[a]));
		z[tgt] -= (float)(scale * (1 - al));
	}
	return (1 - al) * ce + al * c->tau * c->tau * kd;
}
