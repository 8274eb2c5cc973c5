/* pref.h — the preference losses of ds-train's stage: dpo, as LLaMA-Factory
 * 0.9.5's CustomDPOTrainer computes them (TRL 0.24's dpo_loss for sigmoid,
 * hinge and ipo; LF's own odds_ratio_loss and simpo_loss), one pair at a
 * time, with their derivatives, so that the backward pass of each side is
 * the SFT one scaled (trainstep_accumulate).
 *
 * A side's log-probability is the sum, over its trained tokens, of the log
 * of the probability the model gives the token: minus the summed
 * cross-entropy forward_loss returns. ipo, orpo and simpo use the mean per
 * trained token instead (LF divides by the valid length for them, the
 * reference's too). With x the policy's and x_ref the reference's, for the
 * chosen side c and the rejected r, and h = (c - c_ref) - (r - r_ref):
 *   sigmoid  -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h)   (e: label smoothing)
 *   hinge    relu(1 - beta h)
 *   ipo      (h - 1 / (2 beta))^2
 *   simpo    -log sigmoid(beta (c - r) - gamma)          no reference
 *   orpo     -c + beta (-log sigmoid(log odds(c) - log odds(r))),
 *            log odds(x) = x - log(1 - exp(x))           no reference
 * plus, when pref_ftx > 1e-6, pref_ftx x (-c / |c|), the chosen side's mean
 * negative log-probability (LF's sft_loss). The rewards are beta (x - x_ref),
 * or beta x without a reference.
 *
 * LF 0.9.5 calls dpo_loss without its loss_type, so under it pref_loss
 * hinge and ipo train with the sigmoid loss (on ipo's averaged
 * log-probabilities); here each computes the loss it names
 * (tests/oracle/lf_dpo_train.py shows the case). */
#ifndef DS_PREF_H
#define DS_PREF_H

typedef enum { PREF_SIGMOID, PREF_HINGE, PREF_IPO, PREF_SIMPO, PREF_ORPO } pref_kind;

typedef struct pref_hparams {
	pref_kind kind;
	double beta;            /* pref_beta */
	double ftx;             /* pref_ftx */
	double gamma;           /* simpo_gamma */
	double label_smoothing; /* dpo_label_smoothing (sigmoid) */
} pref_hparams;

/* pref_loss's name to its kind. Returns 0, or -1 for a name it is not. */
int pref_parse(const char *name, pref_kind *k);

/* 1 when the loss needs a reference model (all but simpo and orpo). */
int pref_uses_ref(pref_kind k);

/* One pair: the summed log-probabilities of each side's trained tokens,
 * the policy's and (when pref_uses_ref) the reference's, and how many
 * trained tokens each side has (at least 1). */
typedef struct pref_pair {
	double c, r, ref_c, ref_r;
	long nc, nr;
} pref_pair;

/* What a pair gives: its loss; d(loss)/d(c) and d(loss)/d(r) with respect
 * to the sums above; the rewards; the log-probabilities as LF logs them
 * (means for ipo, orpo, simpo); LF's sft_loss (the chosen side's mean
 * negative log-probability). */
typedef struct pref_out {
	double loss, dc, dr;
	double reward_c, reward_r;
	double logp_c, logp_r;
	double sft_loss;
} pref_out;

void pref_eval(const pref_hparams *h, const pref_pair *p, pref_out *o);

/* The metrics LF logs for a micro-batch, each the mean over its pairs:
 * the names (rewards/chosen, ...) and the values of n pairs' outputs. The
 * last two (sft_loss, odds_ratio_loss) are logged for orpo only. */
enum { PM_REWARD_C, PM_REWARD_R, PM_ACC, PM_MARGIN, PM_LOGP_C, PM_LOGP_R, PM_SFT, PM_ODDS, PM_N };
extern const char *const pref_metric_names[PM_N];
void pref_metrics(const pref_hparams *h, const pref_out *o, int n, double m[PM_N]);

#endif
