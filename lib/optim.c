/* optim.c — clipping, AdamW and learning-rate schedules (optim.h). */
#include "optim.h"

#include <math.h>
#include <string.h>

double optim_grad_norm(const float *g, size_t n)
{
	double ss = 0;
#pragma omp parallel for reduction(+ : ss)
	for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
	return sqrt(ss);
}

float optim_clip_factor(double norm, double max_norm)
{
	if (max_norm <= 0) return 1.0f;
	double coef = max_norm / (norm + 1e-6);
	return (float)(coef < 1.0 ? coef : 1.0);
}

void optim_scale(float *g, size_t n, float k)
{
	/* torch multiplies by the clamped coefficient even when it is 1, which
	 * changes nothing: skipped. */
	if (k == 1.0f) return;
#pragma omp parallel for
	for (size_t i = 0; i < n; i++) g[i] *= k;
}

double optim_clip(float *g, size_t n, double max_norm)
{
	double norm = optim_grad_norm(g, n);
	optim_scale(g, n, optim_clip_factor(norm, max_norm));
	return norm;
}

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, long t, const adamw_hparams *h,
                  int decay)
{
	/* Scalars are worked out in double as Python does, then used as fp32
	 * as torch does when it multiplies a float tensor by them. */
	float keep = (float)(1.0 - h->lr * (decay ? h->weight_decay : 0.0));
	float w1 = (float)(1.0 - h->beta1), b2 = (float)h->beta2, w2 = (float)(1.0 - h->beta2);
	double bc1 = 1.0 - pow(h->beta1, (double)t), bc2 = 1.0 - pow(h->beta2, (double)t);
	float step = (float)(h->lr / bc1), bc2s = (float)sqrt(bc2), eps = (float)h->eps;
#pragma omp parallel for
	for (size_t i = 0; i < n; i++) {
		float gi = g[i];
		if (keep != 1.0f) p[i] *= keep;
		m[i] += w1 * (gi - m[i]);
		v[i] = v[i] * b2 + w2 * gi * gi;
		p[i] -= step * (m[i] / (sqrtf(v[i]) / bc2s + eps));
	}
}

int sched_parse(const char *name)
{
	static const char *names[] = {"linear", "cosine", "constant", "constant_with_warmup"};
	for (int i = 0; i < 4; i++)
		if (!strcmp(name, names[i])) return i;
	return -1;
}

double sched_factor(int kind, long step, long total, long warmup)
{
	if (kind == SCHED_CONSTANT) return 1.0;
	if (step < warmup) return (double)step / (double)(warmup > 1 ? warmup : 1);
	if (kind == SCHED_CONSTANT_WARMUP) return 1.0;
	long span = total - warmup > 1 ? total - warmup : 1;
	if (kind == SCHED_LINEAR) {
		double f = (double)(total - step) / (double)span;
		return f > 0 ? f : 0;
	}
	double progress = (double)(step - warmup) / (double)span;
	double f = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress)); /* num_cycles 0.5 */
	return f > 0 ? f : 0;
}
