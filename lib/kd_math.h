/* kd_math.h — kd.h's loss over its K + 1 outcomes (the teacher's top K and
 * the rest), from a row's few summary numbers: written once, for the CPU
 * backend (kd.c) and the CUDA kernel (kernels/ce.cu), as C and as C++/CUDA.
 *
 * The gradient: with p = softmax(z / tau) and the outcomes' P_o sums of p,
 * d f(P) / d z_j = p_j (g_o(j) - c) / tau, g_o = df/dP_o, c = sum_o P_o g_o.
 * Per outcome w_o = P_o (g_o - c) is its share; a token of the rest gets
 * p_j / P_rest of w_rest. For forward_kl (g_o = -Q_o / P_o, c = -1) that is
 * w_o = P_o - Q_o; for reverse_kl g_o = log P_o - log Q_o and c is the KD
 * itself; for jsd g_o = (1 - beta) (log P_o - log M_o).
 */
#ifndef DS_KD_MATH_H
#define DS_KD_MATH_H

#include <math.h>

#ifdef __CUDACC__
#define KD_HD __host__ __device__
#else
#define KD_HD
#endif

#define KD_REST_MIN 1e-6
#define KD_MAX_K 64

enum { KD_FORWARD_KL, KD_REVERSE_KL, KD_JSD };

/* What a row's gradient needs, and its loss's two parts. */
typedef struct kd_parts {
	double ce, kd;   /* the cross-entropy (temperature 1) and the KD term */
	double s1;       /* sum of exp(z - mx) over the whole row */
	double rest;     /* sum of exp((z - mx) / tau) over the rest (floored) */
	double w[KD_MAX_K + 1]; /* each outcome's share of the gradient; [k] the rest's */
} kd_parts;

KD_HD static inline double kd_lse2(double a, double b)
{
	double m = a > b ? a : b;
	return m == -INFINITY ? m : m + log(exp(a - m) + exp(b - m));
}

/* The row's maximum mx and its target's logit zt, the top K's logits zS
 * (k), the rest's sums r1 of exp(z - mx) and rt of exp((z - mx) / tau)
 * (the top K's terms left out), the teacher's lp (k): into *o. */
KD_HD static inline void kd_outcomes(int loss, double tau, double beta, int k, const float *zS, float mx, float zt,
				     double r1, double rt, const float *lp, kd_parts *o)
{
	double logP[KD_MAX_K + 1], logQ[KD_MAX_K + 1];
	double s1 = r1, st = rt, tm = 0;
	for (int a = 0; a < k; a++) {
		double d = (double)zS[a] - mx;
		s1 += exp(d);
		st += exp(d / tau);
		tm += exp((double)lp[a]);
	}
	double lst = log(st);
	for (int a = 0; a < k; a++) logP[a] = ((double)zS[a] - mx) / tau - lst;
	double rest = rt < st * 1e-30 ? st * 1e-30 : rt;
	logP[k] = log(rest) - lst;
	double r = 1 - tm < KD_REST_MIN ? KD_REST_MIN : 1 - tm, lz = -INFINITY;
	for (int a = 0; a < k; a++) lz = kd_lse2(lz, (logQ[a] = lp[a] / tau));
	lz = kd_lse2(lz, (logQ[k] = log(r) / tau));
	for (int a = 0; a <= k; a++) logQ[a] -= lz;

	double kd = 0, c = 0;
	if (loss == KD_JSD && beta <= 0) loss = KD_FORWARD_KL;
	if (loss == KD_JSD && beta >= 1) loss = KD_REVERSE_KL;
	if (loss == KD_FORWARD_KL) {
		for (int a = 0; a <= k; a++) {
			double Q = exp(logQ[a]);
			kd += Q * (logQ[a] - logP[a]);
			o->w[a] = exp(logP[a]) - Q;
		}
	} else if (loss == KD_REVERSE_KL) {
		for (int a = 0; a <= k; a++) kd += exp(logP[a]) * (logP[a] - logQ[a]);
		for (int a = 0; a <= k; a++) o->w[a] = exp(logP[a]) * (logP[a] - logQ[a] - kd);
	} else {
		double lb = log(beta), l1b = log1p(-beta);
		for (int a = 0; a <= k; a++) {
			double lm = kd_lse2(logQ[a] + lb, logP[a] + l1b), P = exp(logP[a]);
			kd += beta * exp(logQ[a]) * (logQ[a] - lm) + (1 - beta) * P * (logP[a] - lm);
			o->w[a] = (1 - beta) * (logP[a] - lm); /* g_o, for now */
			c += P * o->w[a];
		}
		for (int a = 0; a <= k; a++) o->w[a] = exp(logP[a]) * (o->w[a] - c);
	}
	o->ce = mx + log(s1) - zt;
	o->kd = kd;
	o->s1 = s1;
	o->rest = rest;
}

#endif
