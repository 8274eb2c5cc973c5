/* lib/safetensors.c: bf16/f16 rounding against torch's (golden bits below),
 * writer -> reader round trips, every malformed-header refusal, sharded
 * directories (a missing shard, a tensor the index misplaces, stale files
 * of an earlier layout removed).
 *
 * With arguments it is the C side of tests/t-safetensors.sh:
 *   test_safetensors dump PATH                      a file or model dir, one line
 *                                                   per tensor (values as fp32 bits,
 *                                                   NaN as "nan"), as tests/oracle/st_dump.py
 *   test_safetensors convert IN OUTDIR DTYPE MAX    IN's tensors through the writer
 *                                                   as F32, BF16 or F16, sharded at MAX bytes
 */
#include "../../lib/safetensors.h"
#include "testhelp.h"

#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the shell test's commands ---------------------------------------------- */

static st_model *open_any(const char *path, char **err)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return safetensors_open_dir(path, err);
	return safetensors_open(path, err);
}

static int cmd_dump(const char *path)
{
	char *err = NULL;
	st_model *m = open_any(path, &err);
	if (!m) {
		fprintf(stderr, "test_safetensors: %s\n", err);
		free(err);
		return 1;
	}
	for (size_t i = 0; i < safetensors_count(m); i++) {
		const st_tensor *t = safetensors_at(m, i);
		printf("%s %s [", t->name, t->dtype_name);
		for (int d = 0; d < t->ndim; d++) printf(d ? ",%lld" : "%lld", (long long)t->shape[d]);
		printf("]");
		if (t->dtype == ST_OTHER) {
			printf(" -\n");
			continue;
		}
		float *v = malloc(t->numel * sizeof *v + 1);
		if (safetensors_to_f32(t, v, &err)) return 1;
		for (size_t j = 0; j < t->numel; j++) {
			uint32_t u;
			memcpy(&u, &v[j], 4);
			if ((u & 0x7fffffff) > 0x7f800000) printf(" nan");
			else printf(" %08x", u);
		}
		printf("\n");
		free(v);
	}
	safetensors_close(m);
	return 0;
}

static int cmd_convert(const char *in, const char *out, const char *dt, const char *max)
{
	char *err = NULL;
	st_model *m = open_any(in, &err);
	st_dtype dtype = strcmp(dt, "F32") == 0 ? ST_F32 : strcmp(dt, "BF16") == 0 ? ST_BF16
		       : strcmp(dt, "F16") == 0 ? ST_F16 : ST_OTHER;
	int rc = 1;
	if (!m) goto out;
	size_t n = safetensors_count(m);
	float **bufs = calloc(n + 1, sizeof *bufs);
	st_writer *w = safetensors_writer_new();
	safetensors_writer_meta(w, "format", "pt");
	for (size_t i = 0; i < n; i++) {
		const st_tensor *t = safetensors_at(m, i);
		bufs[i] = malloc(t->numel * sizeof(float) + 1);
		if (safetensors_to_f32(t, bufs[i], &err)) goto done;
		safetensors_writer_add(w, t->name, dtype, t->ndim, t->shape, bufs[i]);
	}
	rc = safetensors_writer_save(w, out, (size_t)strtoull(max, NULL, 10), &err) ? 1 : 0;
done:
	safetensors_writer_free(w);
	for (size_t i = 0; i < n; i++) free(bufs[i]);
	free(bufs);
	safetensors_close(m);
out:
	if (err) fprintf(stderr, "test_safetensors: %s\n", err);
	free(err);
	return rc;
}

/* ---- helpers --------------------------------------------------------------------- */

/* A file image: header text h (not padded), then dlen zero bytes. Owned. */
static unsigned char *image(const char *h, size_t dlen, size_t *n)
{
	size_t hl = strlen(h);
	*n = 8 + hl + dlen;
	unsigned char *b = calloc(1, *n + 1);
	for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(b + 8, h, hl);
	return b;
}

/* Does opening the image of h + dlen bytes fail with a message holding want? */
static int refused(const char *h, size_t dlen, const char *want)
{
	size_t n;
	unsigned char *b = image(h, dlen, &n);
	char *err = NULL;
	st_model *m = safetensors_open_mem(b, n, &err);
	int ok = !m && err && strstr(err, want);
	if (!ok) printf("     | %s -> %s\n", h, m ? "accepted" : err ? err : "(no message)");
	safetensors_close(m);
	free(err);
	free(b);
	return ok;
}

static int accepted(const char *h, size_t dlen)
{
	size_t n;
	unsigned char *b = image(h, dlen, &n);
	char *err = NULL;
	st_model *m = safetensors_open_mem(b, n, &err);
	if (!m) printf("     | %s -> %s\n", h, err);
	int ok = m != NULL;
	safetensors_close(m);
	free(err);
	free(b);
	return ok;
}

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f) return -1;
	size_t k = fwrite(p, 1, n, f);
	return fclose(f) == 0 && k == n ? 0 : -1;
}

static int write_str(const char *path, const char *s) { return write_file(path, s, strlen(s)); }

static int exists(const char *dir, const char *name)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static int files_in(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') n++;
	if (d) closedir(d);
	return n;
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d) closedir(d);
	rmdir(dir);
}

static uint32_t bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float fbits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ---- the tests ---------------------------------------------------------------------- */

static void test_rounding(void)
{
	/* f32 bits, then torch 2.11's x.to(torch.bfloat16) and .to(torch.float16)
	 * (printed by the venv's torch on CPU): ties both ways, carries, f16
	 * overflow at 65520, f16 subnormals and their ties, f32 subnormals. */
	static const uint32_t gold[][3] = {
		{0x00000000, 0x0000, 0x0000}, {0x80000000, 0x8000, 0x8000}, {0x3f800000, 0x3f80, 0x3c00},
		{0x3f808000, 0x3f80, 0x3c04}, {0x3f818000, 0x3f82, 0x3c0c}, {0x3f808001, 0x3f81, 0x3c04},
		{0x3f80ffff, 0x3f81, 0x3c08}, {0xbf818000, 0xbf82, 0xbc0c}, {0x7f7fffff, 0x7f80, 0x7c00},
		{0xff7fffff, 0xff80, 0xfc00}, {0x7f7f7fff, 0x7f7f, 0x7c00}, {0x7f7f8000, 0x7f80, 0x7c00},
		{0x7f800000, 0x7f80, 0x7c00}, {0xff800000, 0xff80, 0xfc00}, {0x00000001, 0x0000, 0x0000},
		{0x807fffff, 0x8080, 0x8000}, {0x00800000, 0x0080, 0x0000}, {0x477fe000, 0x4780, 0x7bff},
		{0x477fefff, 0x4780, 0x7bff}, {0x477ff000, 0x4780, 0x7c00}, {0x47800000, 0x4780, 0x7c00},
		{0x33800000, 0x3380, 0x0001}, {0x33000000, 0x3300, 0x0000}, {0x33000001, 0x3300, 0x0001},
		{0x33400000, 0x3340, 0x0001}, {0x387fc000, 0x3880, 0x03ff}, {0x387fe000, 0x3880, 0x0400},
		{0x38800000, 0x3880, 0x0400}, {0x3a800800, 0x3a80, 0x1400}, {0x3a801800, 0x3a80, 0x1401},
		{0x3c001000, 0x3c00, 0x2000}, {0x3c003000, 0x3c00, 0x2002}, {0xc2f6e979, 0xc2f7, 0xd7b7},
		{0x3eaaaaab, 0x3eab, 0x3555},
	};
	int bf_ok = 1, h_ok = 1;
	for (size_t i = 0; i < sizeof gold / sizeof *gold; i++) {
		float f = fbits(gold[i][0]);
		uint16_t b = safetensors_f32_to_bf16(f), h = safetensors_f32_to_f16(f);
		if (b != gold[i][1]) printf("     | bf16(%08x) = %04x, torch %04x\n", gold[i][0], b, gold[i][1]);
		if (h != gold[i][2]) printf("     | f16(%08x) = %04x, torch %04x\n", gold[i][0], h, gold[i][2]);
		bf_ok &= b == gold[i][1];
		h_ok &= h == gold[i][2];
	}
	EXPECT(bf_ok, "f32 -> bf16 rounds as torch: ties to even, carries, max to inf");
	EXPECT(h_ok, "f32 -> f16 rounds as torch: ties, overflow at 65520, subnormals");
	/* NaN stays NaN, sign kept, both ways. */
	int nan_ok = 1;
	static const uint32_t nans[] = {0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0xffffffff};
	for (size_t i = 0; i < sizeof nans / sizeof *nans; i++) {
		float f = fbits(nans[i]);
		uint16_t b = safetensors_f32_to_bf16(f), h = safetensors_f32_to_f16(f);
		nan_ok &= (b & 0x7f80) == 0x7f80 && (b & 0x7f) && (b >> 15) == nans[i] >> 31;
		nan_ok &= (h & 0x7c00) == 0x7c00 && (h & 0x3ff) && (h >> 15) == nans[i] >> 31;
	}
	EXPECT(nan_ok, "NaN (quiet or signalling, either sign) stays a NaN of that sign in bf16 and f16");
	/* Widening is exact: every f16 / bf16 that is not NaN survives the
	 * round trip, and known values land where IEEE 754 puts them. */
	int f16_rt = 1, bf_rt = 1;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = safetensors_f16_to_f32((uint16_t)h), g = safetensors_bf16_to_f32((uint16_t)h);
		if ((h & 0x7c00) != 0x7c00 || !(h & 0x3ff)) f16_rt &= safetensors_f32_to_f16(f) == h;
		else f16_rt &= f != f;
		if ((h & 0x7f80) != 0x7f80 || !(h & 0x7f)) bf_rt &= safetensors_f32_to_bf16(g) == h;
		else bf_rt &= g != g && bits(g) >> 16 == h;
	}
	EXPECT(f16_rt, "all 65536 f16 values widen and narrow back unchanged (NaNs stay NaN)");
	EXPECT(bf_rt, "all 65536 bf16 values widen and narrow back unchanged");
	EXPECT(safetensors_f16_to_f32(0x0001) == 0x1p-24f && safetensors_f16_to_f32(0x03ff) == 1023 * 0x1p-24f &&
		       safetensors_f16_to_f32(0x7bff) == 65504.0f && safetensors_f16_to_f32(0xfc00) == -1.0f / 0.0f &&
		       bits(safetensors_f16_to_f32(0x8000)) == 0x80000000u && safetensors_f16_to_f32(0x3555) == 0x1.554p-2f,
	       "f16 widening: smallest and largest subnormal, 65504, -inf, -0, 1/3");
}

static void test_round_trip(void)
{
	char dir[] = "/tmp/test_safetensors.XXXXXX";
	if (!mkdtemp(dir)) {
		EXPECT(0, "mkdtemp");
		return;
	}
	static float a[2 * 3 * 4], one = -2.5f, edge[] = {0.0f, -0.0f, 1.00390625f, 65520.0f, 1e-8f, 3e38f};
	for (int i = 0; i < 24; i++) a[i] = (float)i * 0.37f - 3.0f;
	int64_t sa[] = {2, 3, 4}, se[] = {6}, sz[] = {0, 5};
	st_dtype dts[] = {ST_F32, ST_BF16, ST_F16};
	const char *names[] = {"F32", "BF16", "F16"};
	for (int k = 0; k < 3; k++) {
		st_writer *w = safetensors_writer_new();
		safetensors_writer_meta(w, "format", "np");
		safetensors_writer_meta(w, "format", "pt");
		safetensors_writer_meta(w, "note", "q\"uote\\ \xc3\xa9\n");
		EXPECT(safetensors_writer_add(w, "model.w", dts[k], 3, sa, a) == 0, "add a 3-d tensor");
		EXPECT(safetensors_writer_add(w, "scalar", dts[k], 0, NULL, &one) == 0, "add a scalar");
		EXPECT(safetensors_writer_add(w, "empty", dts[k], 2, sz, NULL) == 0, "add an empty tensor");
		EXPECT(safetensors_writer_add(w, "edge \xe2\x9c\x93", dts[k], 1, se, edge) == 0, "add a UTF-8 name");
		char *err = NULL;
		EXPECT(safetensors_writer_save(w, dir, 0, &err) == 0, "save one file");
		safetensors_writer_free(w);
		free(err);
		err = NULL;
		st_model *m = safetensors_open_dir(dir, &err);
		char what[128];
		snprintf(what, sizeof what, "%s: written and read back: 4 tensors, in order, metadata", names[k]);
		EXPECT(m && safetensors_count(m) == 4 && strcmp(safetensors_at(m, 0)->name, "model.w") == 0 &&
			       strcmp(safetensors_at(m, 3)->name, "edge \xe2\x9c\x93") == 0 &&
			       strcmp(safetensors_metadata(m, "format"), "pt") == 0 &&
			       strcmp(safetensors_metadata(m, "note"), "q\"uote\\ \xc3\xa9\n") == 0 &&
			       !safetensors_metadata(m, "nope"),
		       what);
		if (!m) {
			printf("     | %s\n", err);
			free(err);
			continue;
		}
		const st_tensor *t = safetensors_find(m, "model.w"), *s = safetensors_find(m, "scalar"),
				*e = safetensors_find(m, "empty"), *g = safetensors_find(m, "edge \xe2\x9c\x93");
		snprintf(what, sizeof what, "%s: dtype, shape, numel, nbytes, aligned data", names[k]);
		size_t es = k ? 2 : 4;
		EXPECT(t && s && e && g && !safetensors_find(m, "model") && t->dtype == dts[k] &&
			       strcmp(t->dtype_name, names[k]) == 0 && t->ndim == 3 && t->shape[2] == 4 &&
			       t->numel == 24 && t->nbytes == 24 * es && s->ndim == 0 && s->numel == 1 &&
			       e->numel == 0 && e->nbytes == 0 && e->shape[1] == 5 && (uintptr_t)t->data % es == 0,
		       what);
		float out[24], want;
		int same = t && safetensors_to_f32(t, out, NULL) == 0;
		for (int i = 0; same && i < 24; i++) {
			want = k == 0 ? a[i] : k == 1 ? safetensors_bf16_to_f32(safetensors_f32_to_bf16(a[i]))
						      : safetensors_f16_to_f32(safetensors_f32_to_f16(a[i]));
			same &= bits(out[i]) == bits(want);
		}
		same &= s && safetensors_to_f32(s, out, NULL) == 0 && out[0] == -2.5f;
		same &= g && safetensors_to_f32(g, out, NULL) == 0 && bits(out[1]) == 0x80000000u;
		if (k == 2) same &= out[3] == 1.0f / 0.0f && out[4] == 0x1p-24f * 0; /* 1e-8 underflows in f16 */
		if (k == 1) same &= out[2] == 1.0f && out[3] == 65536.0f; /* a tie to even; 65520 rounds up */
		snprintf(what, sizeof what, "%s: values as the writer rounded them", names[k]);
		EXPECT(same, what);
		safetensors_close(m);
	}
	/* The header pads to 8 bytes with spaces, as the Python package's. */
	char p[512];
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	FILE *f = fopen(p, "rb");
	unsigned char h[8];
	int pad = f && fread(h, 1, 8, f) == 8 && h[0] % 8 == 0;
	if (f) fclose(f);
	EXPECT(pad, "header length is a multiple of 8");
	/* writer_add refusals surface in save. */
	const char *why[] = {"added twice", "dtype", "dimensions", "negative", "reserved", "UTF-8"};
	for (int c = 0; c < 6; c++) {
		st_writer *w = safetensors_writer_new();
		int64_t neg[] = {-1}, big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
		int rc = c == 0 ? (safetensors_writer_add(w, "x", ST_F32, 0, NULL, a) |
				   safetensors_writer_add(w, "x", ST_F32, 0, NULL, a))
		       : c == 1 ? safetensors_writer_add(w, "x", ST_OTHER, 0, NULL, a)
		       : c == 2 ? safetensors_writer_add(w, "x", ST_F32, 9, big, a)
		       : c == 3 ? safetensors_writer_add(w, "x", ST_F32, 1, neg, a)
		       : c == 4 ? safetensors_writer_add(w, "__metadata__", ST_F32, 0, NULL, a)
				: safetensors_writer_add(w, "x\xff", ST_F32, 0, NULL, a);
		char *err = NULL;
		int saved = safetensors_writer_save(w, dir, 0, &err);
		char what[96];
		snprintf(what, sizeof what, "writer refuses a tensor (%s), and save says so", why[c]);
		EXPECT(rc == -1 && saved == -1 && err && strstr(err, why[c]), what);
		free(err);
		safetensors_writer_free(w);
	}
	rm_dir(dir);
}

static void test_malformed(void)
{
	/* Offsets run from the end of the header; data is zeros. */
	EXPECT(accepted("{}", 0), "an empty file ({}) is valid");
	EXPECT(accepted(" {\"__metadata__\":null} ", 0), "white space around the header, null metadata");
	EXPECT(accepted("{\"a\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[0,3],\"extra\":[1]}}", 3),
	       "an I8 tensor and an unknown field (the reference accepts both)");
	EXPECT(accepted("{\"a\":{\"dtype\":\"F4\",\"shape\":[2,3],\"data_offsets\":[0,3]},"
			"\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[3,3]}}", 3),
	       "sub-byte dtypes (F4) and zero-size tensors");
	static const struct { const char *h; size_t dlen; const char *want; } bad[] = {
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "not JSON"},
		{"{\"a\":1,}", 0, "not JSON"},
		{"[]", 0, "header is an array, not an object"},
		{"{\"a\":[]}", 0, "tensor a: an array, not an object"},
		{"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor a: no dtype"},
		{"{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor a: dtype is not a string"},
		{"{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor a: unknown dtype Q4"},
		{"{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype f32"},
		{"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor a: no shape"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, "shape is not an array"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "shape[0] is not a non-negative integer"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "tensor a: -1 (header byte"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "tensor a: 1.0 (header byte"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, "not a non-negative integer"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0, "shape too large"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740993],\"data_offsets\":[0,4]}}", 4, "shape[0] is not"},
		{"{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, "do not fill whole bytes"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor a: no data_offsets"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "not an array [begin, end]"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 4, "data_offsets are not non-negative integers"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "do not hold the 8 bytes"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "do not hold"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 4, "run past the end of the file"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", 8, "tensors a and b overlap"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "tensor a: bytes 0 to 4"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6, "2 bytes after the last tensor"},
		{"{}", 1, "1 bytes after"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor a appears twice"},
		{"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "key \"dtype\" appears twice"},
		{"{\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor a appears twice"},
		{"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "NUL"},
		{"{\"__metadata__\":[]}", 0, "__metadata__ is an array"},
		{"{\"__metadata__\":{\"format\":1}}", 0, "__metadata__ value of format is a number, not a string"},
		{"{\"a\":\"\xff\"}", 0, "invalid UTF-8"},
		{"", 0, "header is not JSON"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char what[160];
		snprintf(what, sizeof what, "refused: ...%s", bad[i].want);
		EXPECT(refused(bad[i].h, bad[i].dlen, bad[i].want), what);
	}
	/* Header lengths: past the end, over 100 MB; a file too short. */
	unsigned char b[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' '};
	char *err = NULL;
	EXPECT(!safetensors_open_mem(b, 11, &err) && err && strstr(err, "header length 8 runs past the end"),
	       "header length past the end of the file");
	free(err), err = NULL;
	b[0] = 0, b[3] = 0x10; /* 2^28 */
	EXPECT(!safetensors_open_mem(b, 16, &err) && err && strstr(err, "over the 100 MB limit"), "header length over 100 MB");
	free(err), err = NULL;
	memset(b, 0xff, 8);
	EXPECT(!safetensors_open_mem(b, 16, &err) && err && strstr(err, "over the 100 MB limit"), "header length 2^64-1");
	free(err), err = NULL;
	EXPECT(!safetensors_open_mem(b, 7, &err) && err && strstr(err, "truncated: 7 bytes"), "7 bytes: truncated");
	free(err), err = NULL;
	EXPECT(!safetensors_open_mem(NULL, 0, &err) && err && strstr(err, "truncated: 0 bytes"), "an empty file: truncated");
	free(err), err = NULL;
	/* Files: the name in the message; a directory; F16 to_f32 refusal. */
	char dir[] = "/tmp/test_safetensors.XXXXXX";
	if (!mkdtemp(dir)) return;
	char p[512];
	snprintf(p, sizeof p, "%s/x.safetensors", dir);
	write_file(p, "\x10\0\0\0\0\0\0\0{}", 10);
	EXPECT(!safetensors_open(p, &err) && err && strstr(err, p) && strstr(err, "runs past the end"),
	       "a truncated file: the message names it");
	free(err), err = NULL;
	EXPECT(!safetensors_open(dir, &err) && err && strstr(err, "not a regular file"), "a directory is not a file");
	free(err), err = NULL;
	snprintf(p, sizeof p, "%s/nope", dir);
	EXPECT(!safetensors_open(p, &err) && err && strstr(err, "No such file"), "a missing file");
	free(err), err = NULL;
	size_t n;
	unsigned char *img = image("{\"q\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, &n);
	st_model *m = safetensors_open_mem(img, n, &err);
	float out[2];
	EXPECT(m && safetensors_at(m, 0)->dtype == ST_OTHER && safetensors_to_f32(safetensors_at(m, 0), out, &err) == -1 &&
		       err && strstr(err, "tensor q: dtype I8 is not supported"),
	       "to_f32 of an I8 tensor: refused, naming tensor and dtype");
	free(err), err = NULL;
	safetensors_close(m);
	free(img);
	rm_dir(dir);
}

static void test_sharded(void)
{
	char dir[] = "/tmp/test_safetensors.XXXXXX";
	if (!mkdtemp(dir)) return;
	static float x[100];
	for (int i = 0; i < 100; i++) x[i] = (float)i;
	int64_t s10[] = {10}, s40[] = {40}, s5[] = {5};
	char *err = NULL;
	/* Shards of at most 100 bytes, split as huggingface_hub splits: a, b
	 * (80 bytes) open a shard; c (160, over the limit) is a shard of its
	 * own, numbered at once: 1; d tips a+b over: they close as 2; d, e
	 * close at the end as 3. */
	st_writer *w = safetensors_writer_new();
	safetensors_writer_meta(w, "format", "pt");
	safetensors_writer_add(w, "a", ST_F32, 1, s10, x);
	safetensors_writer_add(w, "b", ST_F32, 1, s10, x + 10);
	safetensors_writer_add(w, "c", ST_F32, 1, s40, x + 20);
	safetensors_writer_add(w, "d", ST_F32, 1, s10, x + 60);
	safetensors_writer_add(w, "e", ST_F32, 1, s5, x + 70);
	EXPECT(safetensors_writer_save(w, dir, 100, &err) == 0, "sharded save");
	EXPECT(exists(dir, "model-00001-of-00003.safetensors") && exists(dir, "model-00003-of-00003.safetensors") &&
		       exists(dir, "model.safetensors.index.json") && !exists(dir, "model.safetensors") &&
		       files_in(dir) == 4,
	       "three shards and an index, nothing else");
	st_model *m = safetensors_open_dir(dir, &err);
	static const char order[] = "cabde";
	int in_order = m && safetensors_count(m) == 5;
	for (int i = 0; in_order && i < 5; i++) in_order &= safetensors_at(m, (size_t)i)->name[0] == order[i];
	EXPECT(in_order && strcmp(safetensors_metadata(m, "format"), "pt") == 0,
	       "the sharded dir reads back: every tensor, shard by shard (c, a b, d e)");
	float out[40];
	EXPECT(m && safetensors_to_f32(safetensors_find(m, "c"), out, NULL) == 0 && out[0] == 20 && out[39] == 59 &&
		       safetensors_to_f32(safetensors_find(m, "e"), out, NULL) == 0 && out[4] == 74,
	       "values from the first and the last shard");
	safetensors_close(m);
	free(err), err = NULL;
	char p[512], q[512];
	snprintf(p, sizeof p, "%s/model-00002-of-00003.safetensors", dir);
	snprintf(q, sizeof q, "%s/keep", dir);
	rename(p, q);
	m = safetensors_open_dir(dir, &err);
	EXPECT(!m && err && strstr(err, "model-00002-of-00003.safetensors: No such file") && strstr(err, "index"),
	       "a missing shard: the message names it");
	free(err), err = NULL;
	rename(q, p);
	/* An index naming a tensor its shard lacks, or placing it wrongly. */
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
	write_str(p, "{\"weight_map\":{\"a\":\"model-00002-of-00003.safetensors\",\"zz\":\"model-00002-of-00003.safetensors\"}}");
	m = safetensors_open_dir(dir, &err);
	EXPECT(!m && err && strstr(err, "tensor zz: its shard model-00002-of-00003.safetensors does not hold it"),
	       "an index naming a tensor the shard lacks");
	free(err), err = NULL;
	write_str(p, "{\"weight_map\":{\"a\":\"model-00001-of-00003.safetensors\",\"c\":\"model-00002-of-00003.safetensors\"}}");
	m = safetensors_open_dir(dir, &err);
	EXPECT(!m && err && strstr(err, "the index says model-0000"), "an index placing a tensor in the wrong shard");
	free(err), err = NULL;
	write_str(p, "{\"weight_map\":{\"a\":\"../x.safetensors\"}}");
	m = safetensors_open_dir(dir, &err);
	EXPECT(!m && err && strstr(err, "not a shard file name"), "an index naming a file outside the dir");
	free(err), err = NULL;
	write_str(p, "{\"weight_map\":[]}");
	m = safetensors_open_dir(dir, &err);
	EXPECT(!m && err && strstr(err, "no \"weight_map\" object"), "an index without a weight_map");
	free(err), err = NULL;
	write_str(p, "{\"weight_map\":");
	m = safetensors_open_dir(dir, &err);
	EXPECT(!m && err && strstr(err, "not JSON"), "an index that is not JSON");
	free(err), err = NULL;
	/* Two shards holding one name: shard 1 (c) replaced by one holding b. */
	write_str(p, "{\"weight_map\":{\"c\":\"model-00001-of-00003.safetensors\",\"b\":\"model-00002-of-00003.safetensors\"}}");
	snprintf(p, sizeof p, "%s/model-00001-of-00003.safetensors", dir);
	char sub[600];
	snprintf(sub, sizeof sub, "%s/sub", dir);
	mkdir(sub, 0777);
	st_writer *w2 = safetensors_writer_new();
	safetensors_writer_add(w2, "b", ST_F32, 1, s10, x);
	safetensors_writer_save(w2, sub, 0, NULL);
	safetensors_writer_free(w2);
	snprintf(q, sizeof q, "%s/sub/model.safetensors", dir);
	rename(q, p);
	rmdir(sub);
	m = safetensors_open_dir(dir, &err);
	EXPECT(!m && err && strstr(err, "tensor b is in both"), "one tensor in two shards");
	free(err), err = NULL;
	/* Save again, unsharded: the index and every shard go. */
	EXPECT(safetensors_writer_save(w, dir, 0, &err) == 0 && exists(dir, "model.safetensors") && files_in(dir) == 1,
	       "an unsharded save removes the index and the old shards");
	/* Sharded in two after one file: model.safetensors goes; then three
	 * after two: the -of-00002 files go. */
	EXPECT(safetensors_writer_save(w, dir, 250, &err) == 0 && exists(dir, "model-00002-of-00002.safetensors") &&
		       !exists(dir, "model.safetensors") && files_in(dir) == 3,
	       "a sharded save removes model.safetensors");
	EXPECT(safetensors_writer_save(w, dir, 100, &err) == 0 && exists(dir, "model-00003-of-00003.safetensors") &&
		       files_in(dir) == 4,
	       "a save in three shards removes the shards of two");
	safetensors_writer_free(w);
	free(err), err = NULL;
	EXPECT(!safetensors_open_dir("/nonexistent", &err) && err && strstr(err, "no model.safetensors"),
	       "a dir with no model");
	free(err), err = NULL;
	w = safetensors_writer_new();
	EXPECT(safetensors_writer_save(w, "/nonexistent", 0, &err) == -1 && err && strstr(err, "/nonexistent/.model.safetensors.tmp"),
	       "saving into a missing dir fails, naming the file");
	safetensors_writer_free(w);
	free(err);
	rm_dir(dir);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "dump") == 0) return cmd_dump(argv[2]);
	if (argc == 6 && strcmp(argv[1], "convert") == 0) return cmd_convert(argv[2], argv[3], argv[4], argv[5]);
	if (argc > 1) {
		fprintf(stderr, "usage: test_safetensors [dump PATH | convert IN OUTDIR F32|BF16|F16 MAX_SHARD]\n");
		return 2;
	}
	test_rounding();
	test_round_trip();
	test_malformed();
	test_sharded();
	TEST_END();
}
