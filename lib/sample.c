/* sample.c — the next token from logits (see sample.h). */
#include "sample.h"

#include "check.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the generator ---------------------------------------------------- */

void sample_rng_seed(sample_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sample_rng_next(sample_rng *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double sample_rng_uniform(sample_rng *r)
{
	return (double)(sample_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- the pieces ------------------------------------------------------- */

void sample_penalize(float *logits, int V, const uint32_t *ids, size_t n, double penalty, uint8_t *seen)
{
	if (penalty == 1.0) return;
	float pen = (float)penalty;
	for (size_t i = 0; i < n; i++) {
		uint32_t t = ids[i];
		if (t >= (uint32_t)V || seen[t]) continue;
		seen[t] = 1;
		logits[t] = logits[t] < 0 ? logits[t] * pen : logits[t] / pen;
	}
	for (size_t i = 0; i < n; i++)
		if (ids[i] < (uint32_t)V) seen[ids[i]] = 0;
}

uint32_t sample_argmax(const float *logits, int V)
{
	uint32_t best = 0;
	for (int i = 1; i < V; i++)
		if (logits[i] > logits[best]) best = (uint32_t)i;
	return best;
}

/* The k-th largest of x[0..n) (1 <= k <= n), by quickselect on w (n
 * floats, the caller's; scrambled). */
static float kth_largest(const float *x, int n, int k, float *w)
{
	memcpy(w, x, (size_t)n * sizeof *w);
	int lo = 0, hi = n - 1, want = k - 1;
	while (lo < hi) {
		float piv = w[lo + (hi - lo) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (w[i] > piv) i++;
			while (w[j] < piv) j--;
			if (i <= j) {
				float t = w[i];
				w[i] = w[j], w[j] = t;
				i++, j--;
			}
		}
		if (want <= j) hi = j;
		else if (want >= i) lo = i;
		else break;
	}
	return w[want];
}

static int cand_cmp(const void *a, const void *b)
{
	const sample_cand *x = a, *y = b;
	if (x->p != y->p) return x->p > y->p ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* ---- the distribution ------------------------------------------------- */

int sample_dist(const sample_params *p, const float *logits, int V, sample_cand *out)
{
	/* x = logits / T in fp32, as TemperatureLogitsWarper divides */
	float *x = xmalloc((size_t)V * 2 * sizeof *x), *w = x + V;
	float T = (float)p->temperature, m = -INFINITY;
	for (int i = 0; i < V; i++) {
		x[i] = logits[i] / T;
		if (x[i] > m) m = x[i];
	}
	/* the floor that top-k and min-p put under x */
	float lo = -INFINITY;
	if (p->top_k > 0 && p->top_k < V) lo = kth_largest(x, V, p->top_k, w);
	double z = 0; /* the normaliser over what top-k keeps */
	for (int i = 0; i < V; i++)
		if (x[i] >= lo) z += exp((double)x[i] - m);
	if (p->min_p > 0) {
		/* p_i >= min_p * p_max  <=>  x_i - m >= log(min_p) */
		float f = m + (float)log(p->min_p);
		if (f > lo) lo = f;
	}
	int n = 0;
	if (p->top_p >= 1.0) {
		for (int i = 0; i < V; i++)
			if (x[i] >= lo) out[n++] = (sample_cand){(uint32_t)i, (float)(exp((double)x[i] - m) / z)};
	} else {
		/* Sort only the likely tokens: once those at least as likely as
		 * a floor hold mass >= top_p, the kept prefix lies among them. */
		for (float step = 8;; step *= 2) {
			float floor_ = m - step > lo ? m - step : lo;
			double mass = 0;
			n = 0;
			for (int i = 0; i < V; i++)
				if (x[i] >= floor_) {
					double q = exp((double)x[i] - m) / z;
					out[n++] = (sample_cand){(uint32_t)i, (float)q};
					mass += q;
				}
			if (mass >= p->top_p || floor_ <= lo || step > 1e30f) break;
		}
		qsort(out, (size_t)n, sizeof *out, cand_cmp);
		double before = 0;
		int keep = 0;
		while (keep < n && (keep == 0 || before < p->top_p)) before += out[keep++].p;
		n = keep;
	}
	free(x);
	double s = 0;
	for (int i = 0; i < n; i++) s += out[i].p;
	for (int i = 0; i < n; i++) out[i].p = (float)(out[i].p / s);
	return n;
}

/* ---- log-probabilities ---------------------------------------------- */

double sample_logprobs(const float *logits, int V, uint32_t id, int k, sample_logprob *top)
{
	/* One pass for the maximum and the k largest: a partial selection, each
	 * logit tested against the k-th kept and inserted only when above it
	 * (about k ln(V/k) insertions for V = 151936, not a sort of V). The
	 * strict > keeps the lower id of equal logits first. */
	float m = -INFINITY;
	int n = 0;
	for (int i = 0; i < V; i++) {
		float x = logits[i];
		if (x > m) m = x;
		if (k == 0 || (n == k && !(x > top[k - 1].logprob))) continue;
		int j = n < k ? n++ : k - 1;
		for (; j > 0 && x > top[j - 1].logprob; j--) top[j] = top[j - 1];
		top[j] = (sample_logprob){(uint32_t)i, x};
	}
	/* the normaliser in double, as sample_dist sums it */
	double z = 0;
	for (int i = 0; i < V; i++) z += exp((double)logits[i] - m);
	double lse = (double)m + log(z);
	for (int j = 0; j < k; j++) top[j].logprob = (float)((double)top[j].logprob - lse);
	return (double)logits[id] - lse;
}

uint32_t sample_pick(const sample_cand *c, int n, double u)
{
	double acc = 0;
	for (int i = 0; i < n; i++) {
		acc += c[i].p;
		if (u < acc) return c[i].id;
	}
	return c[n - 1].id; /* rounding left u above the total */
}

uint32_t sample_next(const sample_params *p, float *logits, int V, const uint32_t *ids, size_t n,
		     uint8_t *seen, sample_rng *r, sample_cand *scratch)
{
	sample_penalize(logits, V, ids, n, p->repetition_penalty, seen);
	if (p->temperature <= 0 || p->top_k == 1) return sample_argmax(logits, V);
	int k = sample_dist(p, logits, V, scratch);
	return sample_pick(scratch, k, sample_rng_uniform(r));
}
