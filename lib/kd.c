/* kd.c — the distillation loss of one position (kd.h) on the host: the
 * passes over the row; the outcomes' part is kd_math.h's. */
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
	 * rest is small): theirs are taken out (kd_outcomes adds them). */
	float zS[KD_MAX_K];
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
	kd_parts o;
	kd_outcomes(c->loss, c->tau, c->beta, k, zS, mx, zt, r1, rt, lp, &o);
	*ce_out = o.ce;
	*kd_out = o.kd;
	const double al = c->alpha;
	if (grad) {
		/* the rest's tokens: p_j / P_rest of w_rest (the top K's entries
		 * are -inf or 0 here: set after); the top K: w_a */
		const float h = (float)(scale * (1 - al) / o.s1);
		const float g = (float)(scale * al * c->tau * o.w[k] / o.rest);
		if (tempered) {
#pragma omp simd
			for (int j = 0; j < V; j++) z[j] = h * expf(z[j] - mx) + g * expf((z[j] - mx) * inv);
		} else {
			const float hg = h + g;
#pragma omp simd
			for (int j = 0; j < V; j++) z[j] *= hg;
		}
		for (int a = 0; a < k; a++)
			z[id[a]] = (float)(scale * ((1 - al) * exp((double)zS[a] - mx) / o.s1 + al * c->tau * o.w[a]));
		z[tgt] -= (float)(scale * (1 - al));
	}
	return (1 - al) * o.ce + al * c->tau * c->tau * o.kd;
}
