/* prefstep.c — one DPO step's gradient (prefstep.h). */
#include "prefstep.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prefstep_logps(forward *f, const qwen2_batch *s, int n, double *lp)
{
	for (int i = 0; i < n; i++) lp[i] = -forward_loss(f, &s[i]);
}

void prefstep_grad(trainstep *ts, const pref_hparams *h, const qwen2_batch *ch, const qwen2_batch *rj,
                   const double *ref_c, const double *ref_r, int n, int micro, prefstep_stats *st)
{
	const comm *c = trainstep_comm(ts);
	forward *f = trainstep_forward(ts);
	int use_ref = pref_uses_ref(h->kind);
	long count[2] = {(n + micro - 1) / micro, 0}; /* micro-batches, tokens */
	for (int i = 0; i < n; i++) count[1] += (long)ch[i].n_tokens + (long)rj[i].n_tokens;
	if (c->world > 1) c->allreduce_sum_long(c, count, 2);
	/* every pair's gradient weighs 1 / (its micro-batch's pairs x the
	 * micro-batches of all ranks): the mean within a micro-batch, the
	 * accumulation's mean, DDP's mean over the ranks */
	double sums[1 + PM_N] = {0};
	pref_out *out = xmalloc((size_t)(micro > 0 ? micro : 1) * sizeof *out);
	trainstep_zero(ts);
	for (int m0 = 0; m0 < n; m0 += micro) {
		int k = n - m0 < micro ? n - m0 : micro;
		double w = 1.0 / ((double)k * (double)count[0]), part = 0;
		for (int i = 0; i < k; i++) {
			const qwen2_batch *bc = &ch[m0 + i], *br = &rj[m0 + i];
			pref_pair p = {-forward_loss(f, bc), -forward_loss(f, br), use_ref ? ref_c[m0 + i] : 0,
			               use_ref ? ref_r[m0 + i] : 0, qwen2_count_targets(bc), qwen2_count_targets(br)};
			if (p.nc <= 0 || p.nr <= 0) { /* ds-train refuses such pairs when it reads them */
				fputs("prefstep_grad: a pair side without trained tokens\n", stderr);
				abort();
			}
			pref_eval(h, &p, &out[i]);
			/* the backward pass of -log p is the SFT one: scale -dL/dlogp */
			trainstep_accumulate(ts, bc, (float)(-w * out[i].dc));
			trainstep_accumulate(ts, br, (float)(-w * out[i].dr));
			part += out[i].loss;
		}
		double mm[PM_N];
		pref_metrics(h, out, k, mm);
		sums[0] += part / k;
		for (int j = 0; j < PM_N; j++) sums[1 + j] += mm[j];
	}
	free(out);
	trainstep_reduce(ts);
	if (c->world > 1) c->allreduce_sum_f64(c, sums, 1 + PM_N);
	st->micro = count[0];
	st->tokens = (uint64_t)count[1];
	st->loss = count[0] ? sums[0] / (double)count[0] : 0;
	for (int j = 0; j < PM_N; j++) st->metrics[j] = count[0] ? sums[1 + j] / (double)count[0] : 0;
}
