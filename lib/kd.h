/* kd.h — the distillation loss: a student learning a teacher's soft
 * labels (its top-K tokens and their log-probabilities at each trained
 * position, ds-shard(5)) beside the hard label.
 *
 * At a position with soft labels, over K + 1 outcomes (the teacher's K
 * tokens, and one bucket for everything else):
 *   student  P_o: softmax(z / tau) of token o; P_rest the sum over the rest
 *   teacher  Q_o ∝ exp(lp_o / tau), Q_rest ∝ r^(1/tau), normalised over the
 *            K + 1, where r = max(1 - sum_o exp(lp_o), KD_REST_MIN) is the
 *            mass the teacher left outside its top K (at least KD_REST_MIN:
 *            log-probabilities written to 6 digits do not resolve less)
 *   KD       forward_kl  sum Q (log Q - log P)            (Hinton et al.)
 *            reverse_kl  sum P (log P - log Q)
 *            jsd         beta KL(Q || M) + (1 - beta) KL(P || M),
 *                        M = beta Q + (1 - beta) P; beta 0 is forward_kl,
 *                        1 reverse_kl (TRL's generalized_jsd_loss)
 *   loss     alpha tau^2 KD + (1 - alpha) CE, CE the cross-entropy of the
 *            hard label at temperature 1.
 * A trained position without soft labels (the end-of-turn token, text the
 * template adds) contributes its CE alone. The sum over the positions is
 * normalised like SFT's: by the number of trained tokens.
 */
#ifndef DS_KD_H
#define DS_KD_H

#include "kd_math.h"

#include <stdint.h>

typedef struct kd_config {
	double alpha;  /* weight of the KD term; 0: plain SFT */
	double tau;    /* temperature (> 0) */
	int loss;      /* KD_* */
	double beta;   /* jsd's, in [0, 1] */
} kd_config;

/* The name of a KD_* ("forward_kl", ...), and back (-1: none). */
const char *kd_loss_name(int loss);
int kd_loss_parse(const char *name);

/* One position with soft labels, on the host: z (V) its logits (fp32),
 * tgt its hard label, id/lp (k) the teacher's. Returns the position's loss
 * alpha tau^2 KD + (1 - alpha) CE; *ce and *kd its two parts. With grad,
 * z is overwritten by scale x d(loss)/d(z). */
double kd_row(const kd_config *c, float *z, int V, int tgt, int k, const uint32_t *id, const float *lp, float scale,
	      int grad, double *ce, double *kd);

#endif
