/* test_forward.c — the engine against itself where it must be exact:
 * activation recomputation (keep each layer's input, run the layer again
 * in the backward pass) gives the gradients and the loss of the stored-
 * activation path bit for bit, over a packed sample of several documents
 * with query blocks to spare; and a grown KV cache (qwen2_cache_copy)
 * decodes as the cache it was copied from. (Their agreement with PyTorch
 * is tests/t-train.sh's.) */
#include "../../lib/forward.h"
#include "../../lib/check.h"
#include "../../lib/ops_cpu.h"
#include "testhelp.h"

#include <string.h>

static const char cfg_text[] =
	"{\"model_type\":\"qwen2\",\"vocab_size\":97,\"hidden_size\":32,\"intermediate_size\":48,"
	"\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
	"\"max_position_embeddings\":256,\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
	"\"tie_word_embeddings\":false,\"initializer_range\":0.3}";

/* The summed loss and the gradients (N floats into g) of b, with
 * recomputation on or off, on a fresh engine. */
static double grads_of(qwen2_model *m, const qwen2_batch *b, int recompute, float *g)
{
	void *ctx = ops_cpu_new();
	forward *f = forward_new(m, &ops_cpu, ctx);
	forward_set_recompute(f, recompute);
	size_t N = m->w.n;
	tensor flat = ops_cpu.from_host(ctx, g, OPS_F32, 1, (int64_t)N);
	ops_cpu.zero(ctx, flat);
	fwd_params gp;
	forward_bind(f, flat, &gp);
	double loss = forward_train_sample(f, b, 1.0f / 7, &gp);
	fwd_params_free(&gp);
	forward_free(f);
	ops_cpu_free(ctx);
	return loss;
}

int main(void)
{
	FILE *fc = fopen("/tmp/test_forward_config.json", "w");
	fputs(cfg_text, fc);
	fclose(fc);
	qwen2_config c;
	char *err = NULL;
	EXPECT(qwen2_config_load("/tmp/test_forward_config.json", &c, &err) == 0, "config loads");
	remove("/tmp/test_forward_config.json");
	qwen2_model *m = qwen2_init_random(&c, 9);
	for (size_t i = 0; i < m->n_params; i++)
		if (strstr(m->table[i].name, "bias"))
			for (size_t k = 0; k < m->table[i].numel; k++)
				m->w.base[m->table[i].offset + k] = (float)((int)(k * 29 % 13) - 6) * 0.04f;
	enum { T = 200, V = 97 };
	uint32_t ids[T], docs[3] = {130, 1, 69};
	uint8_t mask[T];
	for (int i = 0; i < T; i++) ids[i] = (uint32_t)(i * 41 + 3) % V, mask[i] = i % 5 != 0;
	qwen2_batch b = {T, 3, ids, mask, docs, NULL};
	size_t N = m->w.n;
	float *g0 = xmalloc(N * sizeof *g0), *g1 = xmalloc(N * sizeof *g1);
	double l0 = grads_of(m, &b, 0, g0), l1 = grads_of(m, &b, 1, g1);
	EXPECT(l0 == l1 && l0 > 0, "recomputation: the same loss, bit for bit");
	EXPECT(!memcmp(g0, g1, N * sizeof *g0), "recomputation: every gradient bit for bit the stored path's");
	int nonzero = 0;
	for (size_t i = 0; i < N; i++) nonzero += g0[i] != 0 && g0[i] == g0[i];
	EXPECT(nonzero > (int)(N / 2), "the gradients are there (not all zero or NaN)");
	/* A cache grown by a copy decodes as the one it came from. */
	float a[V], bb[V];
	qwen2_cache *k1 = qwen2_cache_new(m, 40), *k2 = qwen2_cache_new(m, 41);
	qwen2_seg s = {k1, ids, 39};
	EXPECT(qwen2_forward_segs(m, &s, 1, a) == 0, "prefill");
	qwen2_cache *big = qwen2_cache_new(m, 80);
	qwen2_cache_copy(big, k1, c.n_layers);
	EXPECT(big->len == 39, "the copy holds the positions");
	s = (qwen2_seg){k1, ids + 39, 1};
	qwen2_forward_segs(m, &s, 1, a);
	s = (qwen2_seg){big, ids + 39, 1};
	qwen2_forward_segs(m, &s, 1, bb);
	EXPECT(!memcmp(a, bb, sizeof a), "decoding from the grown cache = from the original, bit for bit");
	qwen2_cache_free(k1);
	qwen2_cache_free(k2);
	qwen2_cache_free(big);
	free(g0);
	free(g1);
	qwen2_free(m);
	TEST_END();
}
