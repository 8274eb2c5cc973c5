/* test_qwen2.c — the cached forward (generation) against the training
 * forward, whose logits the oracle tests hold to PyTorch: prefill in one
 * segment, token-by-token decoding, and several sequences in one pass
 * must give the logits the full forward gives at the same position. */
#include "../../lib/qwen2.h"
#include "../../lib/check.h"
#include "../../lib/json.h"
#include "testhelp.h"

#include <math.h>
#include <string.h>

static const char cfg_text[] =
	"{\"model_type\":\"qwen2\",\"vocab_size\":97,\"hidden_size\":32,\"intermediate_size\":48,"
	"\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
	"\"max_position_embeddings\":256,\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
	"\"tie_word_embeddings\":false,\"initializer_range\":0.3}";

static double max_rel(const float *a, const float *b, int n)
{
	double d = 0, m = 1e-12;
	for (int i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	return d / m;
}

int main(void)
{
	FILE *f = fopen("/tmp/test_qwen2_config.json", "w");
	fputs(cfg_text, f);
	fclose(f);
	qwen2_config c;
	char *err = NULL;
	EXPECT(qwen2_config_load("/tmp/test_qwen2_config.json", &c, &err) == 0, "config loads");
	remove("/tmp/test_qwen2_config.json");
	qwen2_model *m = qwen2_init_random(&c, 5);
	/* Random biases too, so every term is exercised. */
	for (size_t i = 0; i < m->n_params; i++)
		if (strstr(m->table[i].name, "bias"))
			for (size_t k = 0; k < m->table[i].numel; k++)
				m->w.base[m->table[i].offset + k] = (float)((k * 37 % 11) - 5) * 0.05f;
	enum { N = 150, V = 97 };
	uint32_t ids[N], ids2[N];
	for (int i = 0; i < N; i++) ids[i] = (uint32_t)(i * 31 + 7) % V, ids2[i] = (uint32_t)(i * 17 + 3) % V;
	uint8_t mask[N] = {0};
	uint32_t doc = N;
	float *full = xmalloc((size_t)N * V * sizeof(float)), *full2 = xmalloc((size_t)N * V * sizeof(float));
	qwen2_batch b = {N, 1, ids, mask, &doc, NULL}, b2 = {N, 1, ids2, mask, &doc, NULL};
	qwen2_logits(m, &b, full);
	qwen2_logits(m, &b2, full2);

	float out[2 * V];
	qwen2_cache *k1 = qwen2_cache_new(m, N);
	qwen2_seg s = {k1, ids, N};
	EXPECT(qwen2_forward_segs(m, &s, 1, out) == 0 && max_rel(out, full + (size_t)(N - 1) * V, V) < 1e-5,
	       "prefill of 150 tokens (3 query blocks) = the full forward's last row");
	qwen2_cache_free(k1);

	k1 = qwen2_cache_new(m, N);
	s = (qwen2_seg){k1, ids, 70};
	double worst = 0;
	qwen2_forward_segs(m, &s, 1, out);
	worst = max_rel(out, full + 69 * V, V);
	for (int t = 70; t < N; t++) {
		s = (qwen2_seg){k1, ids + t, 1};
		qwen2_forward_segs(m, &s, 1, out);
		worst = fmax(worst, max_rel(out, full + (size_t)t * V, V));
	}
	EXPECT(worst < 1e-5, "prefill 70 then decode 80 one at a time = the full forward at each position");
	s = (qwen2_seg){k1, ids, 1};
	EXPECT(qwen2_forward_segs(m, &s, 1, out) == -1, "a full cache is refused, not overrun");
	qwen2_cache_free(k1);

	/* Two sequences of different lengths in one pass, then decoding both. */
	qwen2_cache *a = qwen2_cache_new(m, N), *bb = qwen2_cache_new(m, N);
	qwen2_seg two[2] = {{a, ids, 40}, {bb, ids2, 90}};
	qwen2_forward_segs(m, two, 2, out);
	worst = fmax(max_rel(out, full + 39 * V, V), max_rel(out + V, full2 + 89 * V, V));
	for (int t = 0; t < 20; t++) {
		two[0] = (qwen2_seg){a, ids + 40 + t, 1};
		two[1] = (qwen2_seg){bb, ids2 + 90 + t, 1};
		qwen2_forward_segs(m, two, 2, out);
		worst = fmax(worst, fmax(max_rel(out, full + (size_t)(40 + t) * V, V),
		                         max_rel(out + V, full2 + (size_t)(90 + t) * V, V)));
	}
	EXPECT(worst < 1e-5, "two sequences batched, prefill and decode = each alone");
	qwen2_cache_free(a);
	qwen2_cache_free(bb);
	free(full);
	free(full2);
	qwen2_free(m);
	TEST_END();
}
