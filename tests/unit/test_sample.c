/* sample: each filter against distributions worked out by hand, the
 * repetition penalty, greedy ties, log-probabilities and their top-k, the generator against xoshiro256**'s
 * definition, and draws against their probabilities. */
#include "../../lib/sample.h"
#include "testhelp.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int by_p(const void *a, const void *b)
{
	const sample_cand *x = a, *y = b;
	if (x->p != y->p) return x->p > y->p ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* logits = log(p): softmax gives p back */
static void logits_of(const double *p, int n, float *out)
{
	for (int i = 0; i < n; i++) out[i] = (float)log(p[i]);
}

/* The distribution of the candidates, by id, in want[0..V). */
static int dist_is(const sample_params *sp, const float *logits, int V, const double *want, double tol)
{
	sample_cand c[16];
	int n = sample_dist(sp, logits, V, c);
	double got[16] = {0};
	for (int i = 0; i < n; i++) got[c[i].id] = c[i].p;
	for (int i = 0; i < V; i++)
		if (fabs(got[i] - want[i]) > tol) {
			printf("     | id %d: got %.6f, want %.6f\n", i, got[i], want[i]);
			return 0;
		}
	return 1;
}

int main(void)
{
	const double p4[4] = {0.5, 0.25, 0.15, 0.1};
	float lg[4];
	logits_of(p4, 4, lg);
	sample_params sp = {.temperature = 1, .top_k = 0, .top_p = 1, .min_p = 0, .repetition_penalty = 1};

	EXPECT(dist_is(&sp, lg, 4, p4, 1e-6), "temperature 1, no filter: softmax(logits)");
	sp.temperature = 2; /* p^(1/2) normalised: sqrt(.5), sqrt(.25), ... / 1.910600 */
	EXPECT(dist_is(&sp, lg, 4, (double[]){0.370090, 0.261693, 0.202707, 0.165509}, 1e-5),
	       "temperature 2 flattens: p^(1/2) renormalised");
	sp.temperature = 0.5; /* p^2 / 0.345 */
	EXPECT(dist_is(&sp, lg, 4, (double[]){0.724638, 0.181159, 0.065217, 0.028986}, 1e-5),
	       "temperature 0.5 sharpens: p^2 renormalised");
	sp.temperature = 1;

	sp.top_k = 2;
	EXPECT(dist_is(&sp, lg, 4, (double[]){2.0 / 3, 1.0 / 3, 0, 0}, 1e-6), "top-k 2 keeps .5 and .25");
	{
		float tie[4];
		logits_of((double[]){0.4, 0.2, 0.2, 0.2}, 4, tie);
		EXPECT(dist_is(&sp, tie, 4, (double[]){0.4, 0.2, 0.2, 0.2}, 1e-6),
		       "top-k keeps every token tied with the k-th, as transformers does");
	}
	sp.top_k = 0;

	sp.top_p = 0.7; /* mass before: 0, .5, .75 -> the third is cut */
	EXPECT(dist_is(&sp, lg, 4, (double[]){2.0 / 3, 1.0 / 3, 0, 0}, 1e-6), "top-p 0.7 keeps two");
	sp.top_p = 0.76;
	EXPECT(dist_is(&sp, lg, 4, (double[]){0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0}, 1e-6), "top-p 0.76 keeps three");
	sp.top_p = 0.3;
	EXPECT(dist_is(&sp, lg, 4, (double[]){1, 0, 0, 0}, 1e-6), "top-p below the top token keeps it alone");
	sp.top_p = 1;

	sp.min_p = 0.25; /* threshold .125 */
	EXPECT(dist_is(&sp, lg, 4, (double[]){0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0}, 1e-6), "min-p 0.25 cuts below .125");
	sp.min_p = 0.35; /* threshold .175 */
	EXPECT(dist_is(&sp, lg, 4, (double[]){2.0 / 3, 1.0 / 3, 0, 0}, 1e-6), "min-p 0.35 cuts below .175");
	sp.min_p = 0;

	/* top-k first, then top-p on the renormalised rest: .5556 .2778 .1667 */
	sp.top_k = 3, sp.top_p = 0.8;
	EXPECT(dist_is(&sp, lg, 4, (double[]){2.0 / 3, 1.0 / 3, 0, 0}, 1e-6),
	       "top-p measures mass after top-k (0.8 of .556/.278/.167 keeps two)");
	sp.top_p = 0.85;
	EXPECT(dist_is(&sp, lg, 4, (double[]){0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0}, 1e-6),
	       "top-p 0.85 after top-k 3 keeps three");
	sp.temperature = 2, sp.top_k = 0, sp.top_p = 0.6; /* .370 + .262 = .632 >= .6 */
	EXPECT(dist_is(&sp, lg, 4, (double[]){0.370090 / 0.631783, 0.261693 / 0.631783, 0, 0}, 1e-5),
	       "top-p applies after temperature");
	sp = (sample_params){.temperature = 1, .top_p = 1, .repetition_penalty = 1};

	{ /* the repetition penalty: positive logits divided, negative multiplied, once each */
		float l[3] = {2, -1, 0.5f};
		uint8_t seen[3] = {0};
		uint32_t ids[4] = {0, 1, 1, 7};
		sample_penalize(l, 3, ids, 4, 2.0, seen);
		EXPECT(l[0] == 1 && l[1] == -2 && l[2] == 0.5f, "penalty 2: 2 -> 1, -1 -> -2 (repeated id once), 0.5 untouched");
		EXPECT(!seen[0] && !seen[1] && !seen[2], "the seen scratch is left zeroed");
	}
	{ /* greedy: the first of equal maxima, after the penalty */
		float l[4] = {1, 3, 3, 2};
		EXPECT(sample_argmax(l, 4) == 1, "argmax takes the first of equal maxima");
		uint8_t seen[4] = {0};
		sample_cand sc[4];
		sample_rng r;
		sample_rng_seed(&r, 1);
		sample_params g = SAMPLE_GREEDY;
		g.repetition_penalty = 2;
		uint32_t hist[1] = {1};
		EXPECT(sample_next(&g, l, 4, hist, 1, seen, &r, sc) == 2, "greedy with a penalty on the argmax picks the next");
	}
	{ /* xoshiro256** from its definition (Blackman & Vigna): state {1,2,3,4} gives 11520 first */
		sample_rng r = {{1, 2, 3, 4}};
		EXPECT(sample_rng_next(&r) == 11520, "xoshiro256** first output for state {1,2,3,4}");
		sample_rng a, b;
		sample_rng_seed(&a, 42);
		sample_rng_seed(&b, 42);
		int same = 1;
		for (int i = 0; i < 1000; i++) same &= sample_rng_next(&a) == sample_rng_next(&b);
		sample_rng_seed(&b, 43);
		EXPECT(same && sample_rng_next(&a) != sample_rng_next(&b), "a seed fixes the sequence; another seed changes it");
		double lo = 1, hi = 0;
		for (int i = 0; i < 100000; i++) {
			double u = sample_rng_uniform(&a);
			lo = u < lo ? u : lo, hi = u > hi ? u : hi;
		}
		EXPECT(lo >= 0 && lo < 1e-3 && hi < 1 && hi > 1 - 1e-3, "uniform draws fill [0, 1)");
	}
	{ /* draws follow the distribution */
		sample_rng r;
		sample_rng_seed(&r, 7);
		sample_cand sc[4];
		uint8_t seen[4] = {0};
		long count[4] = {0};
		int N = 200000;
		for (int i = 0; i < N; i++) {
			float l[4];
			memcpy(l, lg, sizeof l);
			count[sample_next(&sp, l, 4, NULL, 0, seen, &r, sc)]++;
		}
		int close = 1;
		for (int i = 0; i < 4; i++) close &= fabs((double)count[i] / N - p4[i]) < 0.005;
		EXPECT(close, "200000 draws at temperature 1 match .5/.25/.15/.1 within 0.005");
	}
	{ /* a vocabulary-sized top-p against sorting everything */
		int V = 151936;
		float *l = malloc((size_t)V * sizeof *l);
		sample_cand *c = malloc((size_t)V * sizeof *c), *all = malloc((size_t)V * sizeof *all);
		sample_rng r;
		sample_rng_seed(&r, 3);
		int agree = 1;
		double spreads[3] = {0.5, 3, 12};
		for (int t = 0; t < 3; t++) {
			for (int i = 0; i < V; i++) l[i] = (float)((sample_rng_uniform(&r) - 0.5) * spreads[t]);
			sample_params q = {.temperature = 0.7, .top_p = 0.9, .repetition_penalty = 1};
			int n = sample_dist(&q, l, V, c);
			sample_params full = {.temperature = 0.7, .top_p = 1, .repetition_penalty = 1};
			int m = sample_dist(&full, l, V, all);
			/* most likely first, then keep while the mass before < 0.9 */
			qsort(all, (size_t)m, sizeof *all, by_p);
			double before = 0;
			int k = 0;
			while (k < m && (k == 0 || before < 0.9)) before += all[k++].p;
			agree &= n == k;
			for (int i = 0; i < n && i < k; i++) agree &= c[i].id == all[i].id;
		}
		EXPECT(agree, "top-p over 151936 logits (flat to peaked) keeps the same tokens as sorting all of them");
		free(l), free(c), free(all);
	}
	{ /* log-probabilities: log p back from logits log p + c, whatever c */
		const double p5[5] = {0.1, 0.4, 0.1, 0.3, 0.1};
		float l[5];
		for (int i = 0; i < 5; i++) l[i] = (float)(log(p5[i]) + 7.5);
		sample_logprob top[5];
		double lp = sample_logprobs(l, 5, 3, 5, top);
		int good = fabs(lp - log(0.3)) < 1e-6;
		/* by probability, then the lower id of equal ones: 1, 3, 0, 2, 4 */
		const uint32_t order[5] = {1, 3, 0, 2, 4};
		for (int j = 0; j < 5; j++) good &= top[j].id == order[j] && fabs(top[j].logprob - log(p5[order[j]])) < 1e-6;
		EXPECT(good, "logprobs: log_softmax of the logits, the top 5 by probability, equal ones by lower id");
		sample_logprob one[1] = {{99, 1}};
		lp = sample_logprobs(l, 5, 0, 0, one);
		EXPECT(fabs(lp - log(0.1)) < 1e-6 && one[0].id == 99, "logprobs: k = 0 gives the token's alone, top untouched");
		sample_logprob t2[2];
		sample_logprobs(l, 5, 0, 2, t2);
		EXPECT(t2[0].id == 1 && t2[1].id == 3, "logprobs: k = 2 keeps the two most probable");
	}
	{ /* a vocabulary-sized top-20 against sorting everything, in double */
		int V = 151936, K = SAMPLE_MAX_TOP;
		float *l = malloc((size_t)V * sizeof *l);
		sample_cand *all = malloc((size_t)V * sizeof *all);
		sample_rng r;
		sample_rng_seed(&r, 5);
		int agree = 1;
		double worst = 0;
		double spreads[3] = {0.5, 3, 40};
		for (int t = 0; t < 3; t++) {
			for (int i = 0; i < V; i++) l[i] = (float)((sample_rng_uniform(&r) - 0.5) * spreads[t]);
			l[17] = l[V - 1] = (float)spreads[t]; /* a tie at the top, broken by the lower id */
			double m = -INFINITY, z = 0;
			for (int i = 0; i < V; i++) m = l[i] > m ? l[i] : m;
			for (int i = 0; i < V; i++) z += exp((double)l[i] - m);
			for (int i = 0; i < V; i++) all[i] = (sample_cand){(uint32_t)i, l[i]};
			qsort(all, (size_t)V, sizeof *all, by_p);
			sample_logprob top[SAMPLE_MAX_TOP];
			double lp = sample_logprobs(l, V, 17, K, top);
			double want = l[17] - m - log(z);
			worst = fmax(worst, fabs(lp - want));
			for (int j = 0; j < K; j++) {
				agree &= top[j].id == all[j].id;
				worst = fmax(worst, fabs(top[j].logprob - (all[j].p - m - log(z))));
			}
		}
		EXPECT(agree, "logprobs: the top 20 of 151936 logits (flat to peaked) are a full sort's first 20");
		EXPECT(worst < 1e-5, "logprobs: within 1e-5 of log_softmax in double");
		free(l), free(all);
	}
	TEST_END();
}
