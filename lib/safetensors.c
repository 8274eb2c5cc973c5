/* safetensors.c — safetensors files: validated, mmapped reading; streamed,
 * atomic writing (sharded as transformers shards). See safetensors.h. */
#include "safetensors.h"
#include "check.h"
#include "cli.h"
#include "json.h"
#include "utf8.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes little-endian data in place"
#endif

/* The Python package's limit (MAX_HEADER_SIZE in safetensors' lib.rs). */
#define ST_MAX_HEADER 100000000u
/* Offsets and dims are read as doubles by json.c: exact below 2^53. */
#define ST_MAX_INT 9007199254740992.0

/* ---- types ------------------------------------------------------------------ */

struct st_file {
	char *path;        /* owned; what messages name */
	void *map;         /* the mapping (NULL for open_mem) */
	size_t size;
};

struct st_entry {
	st_tensor t;       /* t.name owned */
	size_t file;       /* index into files */
	uint64_t begin, end;
};

struct st_model {
	struct st_file *files;
	size_t nfiles;
	struct st_entry *e;
	size_t n, cap;
	struct st_entry **by_name; /* (n) into e, sorted by name */
	char **meta;       /* (2 * nmeta) key, value; owned */
	size_t nmeta;
};

/* Every safetensors dtype (the Python package 0.8's list) and its bits. */
static const struct {
	const char *name;
	unsigned bits;
	st_dtype dtype;
} dtypes[] = {
	{"F32", 32, ST_F32},     {"F16", 16, ST_F16},       {"BF16", 16, ST_BF16},
	{"F64", 64, ST_OTHER},   {"I64", 64, ST_OTHER},     {"U64", 64, ST_OTHER},
	{"I32", 32, ST_OTHER},   {"U32", 32, ST_OTHER},     {"I16", 16, ST_OTHER},
	{"U16", 16, ST_OTHER},   {"I8", 8, ST_OTHER},       {"U8", 8, ST_OTHER},
	{"BOOL", 8, ST_OTHER},   {"F8_E4M3", 8, ST_OTHER},  {"F8_E5M2", 8, ST_OTHER},
	{"F8_E8M0", 8, ST_OTHER}, {"F8_E4M3FNUZ", 8, ST_OTHER}, {"F8_E5M2FNUZ", 8, ST_OTHER},
	{"C64", 64, ST_OTHER},   {"F6_E2M3", 6, ST_OTHER},  {"F6_E3M2", 6, ST_OTHER},
	{"F4", 4, ST_OTHER},
};

/* ---- messages ---------------------------------------------------------------- */

/* Set *err (when err is not NULL) to an owned formatted message; returns -1. */
static int errf(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int errf(char **err, const char *fmt, ...)
{
	if (!err) return -1;
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0) s = NULL;
	va_end(ap);
	if (!s) check_fail_errno(__FILE__, __LINE__, "vasprintf");
	*err = s;
	return -1;
}

/* ---- the number conversions ------------------------------------------------------ */

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float safetensors_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

float safetensors_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fff;
	if (em >= 0x7c00) /* inf, NaN (payload kept) */
		return bits_f32(sign | 0x7f800000 | (em & 0x3ff) << 13);
	if (em >= 0x400) /* normal: rebias the exponent, 15 -> 127 */
		return bits_f32(sign | ((em << 13) + (112u << 23)));
	/* zero or subnormal: em * 2^-24, exact in fp32 */
	return bits_f32(sign | f32_bits((float)em * 0x1p-24f));
}

uint16_t safetensors_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);
	if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)(u >> 16 | 0x40);
	/* c10::BFloat16's round_to_nearest_even: a carry out of the mantissa
	 * moves to the next binade, and past the largest finite to inf. */
	return (uint16_t)((u + 0x7fff + (u >> 16 & 1)) >> 16);
}

uint16_t safetensors_f32_to_f16(float f)
{
	uint32_t u = f32_bits(f), sign = u >> 16 & 0x8000, x = u & 0x7fffffff;
	if (x > 0x7f800000) return (uint16_t)(sign | 0x7e00 | (x >> 13 & 0x3ff));
	/* 65520 is halfway between 65504 (the largest f16, odd mantissa) and
	 * 65536: it and everything above round to inf. */
	if (x >= 0x477ff000) return (uint16_t)(sign | 0x7c00);
	uint32_t e = x >> 23, m = x & 0x7fffff, h, rest, half;
	if (e >= 113) { /* a normal f16: drop 13 mantissa bits */
		h = (e - 112) << 10 | m >> 13;
		rest = m & 0x1fff;
		half = 0x1000;
	} else { /* a subnormal f16 (or zero): h * 2^-24 */
		uint32_t shift = 126 - e;
		if (e == 0 || shift > 24) return (uint16_t)sign;
		m |= 0x800000;
		h = m >> shift;
		rest = m & ((1u << shift) - 1);
		half = 1u << (shift - 1);
	}
	if (rest > half || (rest == half && (h & 1))) h++; /* may carry into the exponent: right */
	return (uint16_t)(sign | h);
}

int safetensors_to_f32(const st_tensor *t, float *out, char **err)
{
	const unsigned char *p = t->data;
	switch (t->dtype) {
	case ST_F32:
		if (t->nbytes) memcpy(out, p, t->nbytes);
		return 0;
	case ST_BF16:
		for (size_t i = 0; i < t->numel; i++) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			out[i] = safetensors_bf16_to_f32(h);
		}
		return 0;
	case ST_F16:
		for (size_t i = 0; i < t->numel; i++) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			out[i] = safetensors_f16_to_f32(h);
		}
		return 0;
	default:
		return errf(err, "tensor %s: dtype %s is not supported (only F32, F16 and BF16)",
			    t->name, t->dtype_name);
	}
}

/* ---- reading: the header ----------------------------------------------------------- */

/* The keys of one open object in the header text, for the duplicate check. */
struct keys {
	jv *k;
	size_t n, cap;
};

static int jv_str_cmp(const void *a, const void *b)
{
	jv x = *(const jv *)a, y = *(const jv *)b;
	int nx = jv_string_length_bytes(jv_copy(x)), ny = jv_string_length_bytes(jv_copy(y));
	int c = memcmp(jv_string_value(x), jv_string_value(y), (size_t)(nx < ny ? nx : ny));
	return c ? c : (nx > ny) - (nx < ny);
}

static void keys_clear(struct keys *k)
{
	for (size_t i = 0; i < k->n; i++) jv_free(k->k[i]);
	k->n = 0;
}

/* json.c keeps the last of two equal keys, and its numbers are doubles; so
 * walk the text (json_parse has checked it) once more, for what the value
 * no longer shows: a key twice in one object, and numbers that are not
 * plain non-negative integers (the Python package wants usize there). */
static int header_scan(const char *label, const char *s, size_t n, char **err)
{
	struct keys lv[JSON_MAX_DEPTH + 1] = {{0}};
	char kind[JSON_MAX_DEPTH + 1];
	int expect_key[JSON_MAX_DEPTH + 1];
	int d = 0, rc = -1;
	const char *top = NULL; /* the tensor being read: the last key at depth 1 */
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '{' || c == '[') {
			d++;
			kind[d] = c;
			expect_key[d] = c == '{';
		} else if (c == '}' || c == ']') {
			if (c == '}' && lv[d].n > 1) {
				qsort(lv[d].k, lv[d].n, sizeof *lv[d].k, jv_str_cmp);
				for (size_t j = 1; j < lv[d].n; j++) {
					if (jv_str_cmp(&lv[d].k[j - 1], &lv[d].k[j])) continue;
					const char *k = jv_string_value(lv[d].k[j]);
					if (d == 1) errf(err, "%s: tensor %s appears twice in the header", label, k);
					else errf(err, "%s: key \"%s\" appears twice in one object of the header", label, k);
					goto out;
				}
			}
			keys_clear(&lv[d]);
			d--;
		} else if (c == ',') {
			if (kind[d] == '{') expect_key[d] = 1;
		} else if (c == '"') {
			size_t j = i + 1;
			while (s[j] != '"') j += s[j] == '\\' ? 2 : 1;
			if (d > 0 && kind[d] == '{' && expect_key[d]) {
				size_t at;
				const char *why;
				jv key = json_parse(s + i, j + 1 - i, &at, &why);
				struct keys *k = &lv[d];
				if (k->n == k->cap) k->k = xrealloc(k->k, (k->cap = k->cap * 2 + 8) * sizeof *k->k);
				k->k[k->n++] = key;
				expect_key[d] = 0;
				if (d == 1) top = jv_string_value(key);
			}
			i = j;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t j = i;
			int plain = 1;
			while (j < n && s[j] && strchr("0123456789-+.eE", s[j])) {
				if (s[j] < '0' || s[j] > '9') plain = 0;
				j++;
			}
			if (!plain) {
				errf(err, "%s: tensor %s: %.*s (header byte %zu) is not a non-negative integer", label,
				     top ? top : "?", (int)(j - i > 40 ? 40 : j - i), s + i, i);
				goto out;
			}
			i = j - 1;
		}
	}
	rc = 0;
out:
	for (int k = 0; k <= JSON_MAX_DEPTH; k++) {
		keys_clear(&lv[k]);
		free(lv[k].k);
	}
	return rc;
}

/* A non-negative integer JSON number (consumes v) into *out. */
static int get_uint(jv v, uint64_t *out)
{
	int ok = jv_get_kind(v) == JV_KIND_NUMBER;
	double d = ok ? jv_number_value(v) : -1;
	jv_free(v);
	if (!ok || !(d >= 0) || d >= ST_MAX_INT || d != floor(d)) return -1;
	*out = (uint64_t)d;
	return 0;
}

/* "a number", "an array", ... for messages. */
static const char *kind_name(jv v)
{
	switch (jv_get_kind(v)) {
	case JV_KIND_NULL: return "null";
	case JV_KIND_TRUE: case JV_KIND_FALSE: return "a boolean";
	case JV_KIND_NUMBER: return "a number";
	case JV_KIND_STRING: return "a string";
	case JV_KIND_ARRAY: return "an array";
	case JV_KIND_OBJECT: return "an object";
	default: return "an invalid value";
	}
}

/* Fill *t, *begin, *end from the entry spec (borrowed) of tensor name
 * (borrowed) in label, whose data part is data[0..data_size). */
static int tensor_parse(const char *label, const char *name, jv spec, const unsigned char *data,
			size_t data_size, struct st_entry *e, char **err)
{
	int rc = -1;
	jv dt = jv_invalid(), shape = jv_invalid(), offs = jv_invalid();
	st_tensor *t = &e->t;
	if (jv_get_kind(spec) != JV_KIND_OBJECT) {
		errf(err, "%s: tensor %s: %s, not an object", label, name, kind_name(spec));
		goto out;
	}
	dt = jv_object_get(jv_copy(spec), jv_string("dtype"));
	shape = jv_object_get(jv_copy(spec), jv_string("shape"));
	offs = jv_object_get(jv_copy(spec), jv_string("data_offsets"));
	if (jv_get_kind(dt) != JV_KIND_STRING) {
		errf(err, "%s: tensor %s: %s", label, name, jv_is_valid(dt) ? "dtype is not a string" : "no dtype");
		goto out;
	}
	unsigned bits = 0;
	for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
		if (strcmp(jv_string_value(dt), dtypes[i].name) == 0) {
			t->dtype = dtypes[i].dtype;
			t->dtype_name = dtypes[i].name;
			bits = dtypes[i].bits;
		}
	if (!bits) {
		errf(err, "%s: tensor %s: unknown dtype %s", label, name, jv_string_value(dt));
		goto out;
	}
	if (jv_get_kind(shape) != JV_KIND_ARRAY) {
		errf(err, "%s: tensor %s: %s", label, name, jv_is_valid(shape) ? "shape is not an array" : "no shape");
		goto out;
	}
	int nd = jv_array_length(jv_copy(shape));
	if (nd > ST_MAX_DIMS) {
		errf(err, "%s: tensor %s: %d dimensions (at most %d)", label, name, nd, ST_MAX_DIMS);
		goto out;
	}
	t->ndim = nd;
	uint64_t numel = 1;
	int overflow = 0;
	for (int i = 0; i < nd; i++) {
		uint64_t dim;
		if (get_uint(jv_array_get(jv_copy(shape), i), &dim)) {
			errf(err, "%s: tensor %s: shape[%d] is not a non-negative integer", label, name, i);
			goto out;
		}
		t->shape[i] = (int64_t)dim;
		/* as the Python package: an overflow is an error even when a
		 * later dimension is 0 */
		if (dim && numel > SIZE_MAX / dim) overflow = 1;
		numel *= dim;
	}
	if (overflow || numel > SIZE_MAX / bits) {
		errf(err, "%s: tensor %s: shape too large", label, name);
		goto out;
	}
	t->numel = (size_t)numel;
	if ((numel * bits) % 8) {
		errf(err, "%s: tensor %s: %zu elements of %s do not fill whole bytes", label, name,
		     t->numel, t->dtype_name);
		goto out;
	}
	t->nbytes = (size_t)(numel * bits / 8);
	if (jv_get_kind(offs) != JV_KIND_ARRAY || jv_array_length(jv_copy(offs)) != 2) {
		errf(err, "%s: tensor %s: %s", label, name,
		     jv_is_valid(offs) ? "data_offsets is not an array [begin, end]" : "no data_offsets");
		goto out;
	}
	if (get_uint(jv_array_get(jv_copy(offs), 0), &e->begin) ||
	    get_uint(jv_array_get(jv_copy(offs), 1), &e->end)) {
		errf(err, "%s: tensor %s: data_offsets are not non-negative integers", label, name);
		goto out;
	}
	if (e->end < e->begin || e->end - e->begin != t->nbytes) {
		errf(err, "%s: tensor %s: data_offsets [%llu, %llu] do not hold the %zu bytes of its shape and dtype %s",
		     label, name, (unsigned long long)e->begin, (unsigned long long)e->end, t->nbytes, t->dtype_name);
		goto out;
	}
	if (e->end > data_size) {
		errf(err, "%s: tensor %s: data_offsets [%llu, %llu] run past the end of the file (%zu bytes of data)",
		     label, name, (unsigned long long)e->begin, (unsigned long long)e->end, data_size);
		goto out;
	}
	t->data = data + e->begin;
	rc = 0;
out:
	jv_free(dt);
	jv_free(shape);
	jv_free(offs);
	return rc;
}

static int meta_parse(const char *label, jv meta, st_model *m, char **err)
{
	if (jv_get_kind(meta) == JV_KIND_NULL) return 0;
	if (jv_get_kind(meta) != JV_KIND_OBJECT)
		return errf(err, "%s: __metadata__ is %s, not an object", label, kind_name(meta));
	int n = jv_object_length(jv_copy(meta)), rc = 0;
	char **kv = xcalloc(2 * (size_t)n + 1, sizeof *kv);
	size_t k = 0;
	jv_object_foreach(meta, key, val) {
		if (rc == 0 && jv_get_kind(val) != JV_KIND_STRING) {
			rc = errf(err, "%s: __metadata__ value of %s is %s, not a string", label,
				  jv_string_value(key), kind_name(val));
		} else if (rc == 0) {
			kv[k++] = xstrdup(jv_string_value(key));
			kv[k++] = xstrdup(jv_string_value(val));
		}
		jv_free(key);
		jv_free(val);
	}
	if (rc) {
		for (size_t i = 0; i < k; i++) free(kv[i]);
		free(kv);
		return rc;
	}
	m->meta = kv;
	m->nmeta = k / 2;
	return 0;
}

static int entry_by_offset(const void *a, const void *b)
{
	const struct st_entry *x = a, *y = b;
	if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
	return (x->end > y->end) - (x->end < y->end);
}

/* Parse file fi of m (its bytes base[0..size), already in m->files) and
 * append its tensors to m->e in file order; take its metadata when
 * want_meta. */
static int file_parse(st_model *m, size_t fi, const unsigned char *base, size_t size, int want_meta,
		      char **err)
{
	const char *label = m->files[fi].path;
	struct st_entry *es = NULL;
	size_t ne = 0;
	int rc = -1;
	jv hdr = jv_invalid();
	if (size < 8) {
		errf(err, "%s: truncated: %zu bytes (a safetensors file starts with an 8-byte header length)", label, size);
		goto out;
	}
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--) hlen = hlen << 8 | base[i];
	if (hlen > ST_MAX_HEADER) {
		errf(err, "%s: header length %llu is over the 100 MB limit (not a safetensors file?)", label,
		     (unsigned long long)hlen);
		goto out;
	}
	if (hlen > size - 8) {
		errf(err, "%s: header length %llu runs past the end of the file (%zu bytes): truncated?", label,
		     (unsigned long long)hlen, size);
		goto out;
	}
	const char *h = (const char *)base + 8;
	size_t at;
	const char *why = NULL;
	hdr = json_parse(h, (size_t)hlen, &at, &why);
	if (!jv_is_valid(hdr)) {
		errf(err, "%s: header is not JSON: %s at byte %zu", label, why, at);
		goto out;
	}
	if (jv_get_kind(hdr) != JV_KIND_OBJECT) {
		errf(err, "%s: header is %s, not an object", label, kind_name(hdr));
		goto out;
	}
	if (header_scan(label, h, (size_t)hlen, err)) goto out;
	const unsigned char *data = base + 8 + hlen;
	size_t data_size = size - 8 - (size_t)hlen;
	es = xcalloc((size_t)jv_object_length(jv_copy(hdr)) + 1, sizeof *es);
	int bad = 0;
	jv_object_foreach(hdr, key, val) {
		const char *name = jv_string_value(key);
		if (bad) {
		} else if (strcmp(name, "__metadata__") == 0) {
			if (want_meta && meta_parse(label, val, m, err)) bad = 1;
		} else if ((size_t)jv_string_length_bytes(jv_copy(key)) != strlen(name)) {
			errf(err, "%s: a tensor name holds a NUL character", label);
			bad = 1;
		} else if (tensor_parse(label, name, val, data, data_size, &es[ne], err)) {
			bad = 1;
		} else {
			es[ne].t.name = xstrdup(name);
			es[ne].file = fi;
			ne++;
		}
		jv_free(key);
		jv_free(val);
	}
	if (bad) goto out;
	/* As the Python package: sorted by offsets, the tensors must tile the
	 * data exactly, with no overlap, gap or trailing bytes. */
	qsort(es, ne, sizeof *es, entry_by_offset);
	uint64_t pos = 0;
	for (size_t i = 0; i < ne; i++) {
		if (es[i].begin < pos) {
			errf(err, "%s: tensors %s and %s overlap", label, es[i - 1].t.name, es[i].t.name);
			goto out;
		}
		if (es[i].begin > pos) {
			errf(err, "%s: tensor %s: bytes %llu to %llu of the data before it belong to no tensor",
			     label, es[i].t.name, (unsigned long long)pos, (unsigned long long)es[i].begin);
			goto out;
		}
		pos = es[i].end;
	}
	if (pos != data_size) {
		errf(err, "%s: %llu bytes after the last tensor's data belong to no tensor", label,
		     (unsigned long long)(data_size - pos));
		goto out;
	}
	if (m->n + ne > m->cap) m->e = xrealloc(m->e, (m->cap = (m->n + ne) * 2) * sizeof *m->e);
	if (ne) memcpy(m->e + m->n, es, ne * sizeof *es);
	m->n += ne;
	ne = 0;
	rc = 0;
out:
	for (size_t i = 0; i < ne; i++) free((char *)es[i].t.name);
	free(es);
	jv_free(hdr);
	return rc;
}

/* ---- reading: files and models -------------------------------------------------------- */

static st_model *model_new(void) { return xcalloc(1, sizeof(st_model)); }

/* Map path as file m->nfiles and parse it. */
static int model_add_file(st_model *m, const char *path, int want_meta, char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return errf(err, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st)) {
		int e = errno;
		close(fd);
		return errf(err, "%s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return errf(err, "%s: not a regular file", path);
	}
	size_t size = (size_t)st.st_size;
	void *map = NULL;
	if (size >= 8) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			int e = errno;
			close(fd);
			return errf(err, "%s: mmap: %s", path, strerror(e));
		}
	}
	close(fd);
	m->files = xrealloc(m->files, (m->nfiles + 1) * sizeof *m->files);
	m->files[m->nfiles] = (struct st_file){xstrdup(path), map, size};
	m->nfiles++;
	static const unsigned char none[1];
	return file_parse(m, m->nfiles - 1, map ? map : none, size, want_meta, err);
}

static int by_name_cmp(const void *a, const void *b)
{
	return strcmp((*(struct st_entry *const *)a)->t.name, (*(struct st_entry *const *)b)->t.name);
}

/* Sort the name index; a name twice (in two shards) is an error. */
static int model_index(st_model *m, char **err)
{
	m->by_name = xmalloc((m->n + 1) * sizeof *m->by_name);
	for (size_t i = 0; i < m->n; i++) m->by_name[i] = &m->e[i];
	qsort(m->by_name, m->n, sizeof *m->by_name, by_name_cmp);
	for (size_t i = 1; i < m->n; i++) {
		const struct st_entry *a = m->by_name[i - 1], *b = m->by_name[i];
		if (strcmp(a->t.name, b->t.name) == 0)
			return errf(err, "tensor %s is in both %s and %s", a->t.name, m->files[a->file].path,
				    m->files[b->file].path);
	}
	return 0;
}

st_model *safetensors_open(const char *path, char **err)
{
	st_model *m = model_new();
	if (model_add_file(m, path, 1, err) || model_index(m, err)) {
		safetensors_close(m);
		return NULL;
	}
	return m;
}

st_model *safetensors_open_mem(const void *buf, size_t n, char **err)
{
	st_model *m = model_new();
	m->files = xmalloc(sizeof *m->files);
	m->files[0] = (struct st_file){xstrdup("<memory>"), NULL, n};
	m->nfiles = 1;
	static const unsigned char none[1];
	if (file_parse(m, 0, buf ? buf : none, n, 1, err) || model_index(m, err)) {
		safetensors_close(m);
		return NULL;
	}
	return m;
}

static char *path_join(const char *dir, const char *name)
{
	char *s;
	if (asprintf(&s, "%s/%s", dir, name) < 0) check_fail_errno(__FILE__, __LINE__, "asprintf");
	return s;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

#define INDEX_NAME "model.safetensors.index.json"

st_model *safetensors_open_dir(const char *dir, char **err)
{
	char *single = path_join(dir, "model.safetensors"), *ipath = path_join(dir, INDEX_NAME);
	char *text = NULL, **shards = NULL;
	size_t nshards = 0;
	st_model *m = NULL;
	jv index = jv_invalid(), map = jv_invalid();
	struct stat st;
	int bad = 1;
	/* transformers looks for the single file first, and so do we. */
	if (stat(single, &st) == 0) {
		m = safetensors_open(single, err);
		bad = !m;
		goto out;
	}
	if (stat(ipath, &st) != 0) {
		errf(err, "%s: no model.safetensors or " INDEX_NAME " in it", dir);
		goto out;
	}
	if (!(text = cli_read_file(ipath))) {
		errf(err, "%s: %s", ipath, strerror(errno));
		goto out;
	}
	size_t at;
	const char *why = NULL;
	index = json_parse(text, strlen(text), &at, &why);
	if (!jv_is_valid(index)) {
		errf(err, "%s: not JSON: %s at byte %zu", ipath, why, at);
		goto out;
	}
	if (jv_get_kind(index) == JV_KIND_OBJECT) map = jv_object_get(jv_copy(index), jv_string("weight_map"));
	if (jv_get_kind(map) != JV_KIND_OBJECT) {
		errf(err, "%s: no \"weight_map\" object", ipath);
		goto out;
	}
	int nmap = jv_object_length(jv_copy(map));
	shards = xcalloc((size_t)nmap + 1, sizeof *shards);
	int ok = 1;
	jv_object_foreach(map, key, val) {
		const char *f = jv_get_kind(val) == JV_KIND_STRING ? jv_string_value(val) : NULL;
		if (!ok) {
		} else if (!f || !*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0) {
			errf(err, "%s: tensor %s: not a shard file name in this directory", ipath, jv_string_value(key));
			ok = 0;
		} else {
			shards[nshards++] = xstrdup(f);
		}
		jv_free(key);
		jv_free(val);
	}
	if (!ok) goto out;
	/* Each shard once, in name order (as transformers loads them). */
	qsort(shards, nshards, sizeof *shards, str_cmp);
	size_t u = 0;
	for (size_t i = 0; i < nshards; i++) {
		if (u && strcmp(shards[u - 1], shards[i]) == 0) free(shards[i]);
		else shards[u++] = shards[i];
	}
	nshards = u;
	m = model_new();
	for (size_t i = 0; i < nshards; i++) {
		char *p = path_join(dir, shards[i]);
		int rc = stat(p, &st) ? errf(err, "%s: %s (a shard that " INDEX_NAME " names)", p, strerror(errno))
				      : model_add_file(m, p, i == 0, err);
		free(p);
		if (rc) goto out;
	}
	if (model_index(m, err)) goto out;
	ok = 1;
	jv_object_foreach(map, key, val) {
		const char *name = jv_string_value(key), *f = jv_string_value(val);
		const st_tensor *t = ok ? safetensors_find(m, name) : NULL;
		if (ok && !t) {
			errf(err, "%s: tensor %s: its shard %s does not hold it", ipath, name, f);
			ok = 0;
		} else if (ok) {
			const struct st_entry *e = (const struct st_entry *)t;
			const char *p = m->files[e->file].path, *base = strrchr(p, '/');
			if (strcmp(base ? base + 1 : p, f) != 0) {
				errf(err, "%s: tensor %s: the index says %s, but it is in %s", ipath, name, f, p);
				ok = 0;
			}
		}
		jv_free(key);
		jv_free(val);
	}
	bad = !ok;
out:
	if (bad && m) {
		safetensors_close(m);
		m = NULL;
	}
	for (size_t i = 0; i < nshards; i++) free(shards[i]);
	free(shards);
	jv_free(map);
	jv_free(index);
	free(text);
	free(single);
	free(ipath);
	return m;
}

size_t safetensors_count(const st_model *m) { return m->n; }

const st_tensor *safetensors_at(const st_model *m, size_t i) { return i < m->n ? &m->e[i].t : NULL; }

const st_tensor *safetensors_find(const st_model *m, const char *name)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->by_name[mid]->t.name, name);
		if (c == 0) return &m->by_name[mid]->t;
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

const char *safetensors_metadata(const st_model *m, const char *key)
{
	for (size_t i = 0; i < m->nmeta; i++)
		if (strcmp(m->meta[2 * i], key) == 0) return m->meta[2 * i + 1];
	return NULL;
}

void safetensors_close(st_model *m)
{
	if (!m) return;
	for (size_t i = 0; i < m->nfiles; i++) {
		if (m->files[i].map) munmap(m->files[i].map, m->files[i].size);
		free(m->files[i].path);
	}
	for (size_t i = 0; i < m->n; i++) free((char *)m->e[i].t.name);
	for (size_t i = 0; i < 2 * m->nmeta; i++) free(m->meta[i]);
	free(m->meta);
	free(m->files);
	free(m->e);
	free(m->by_name);
	free(m);
}

/* ---- writing ------------------------------------------------------------------------------ */

struct wtensor {
	char *name;         /* owned */
	st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	size_t numel, nbytes;
	const float *data;  /* (numel) fp32, borrowed */
	int shard;
};

struct st_writer {
	struct wtensor *t;
	size_t n, cap;
	char **meta;        /* (2 * nmeta) key, value; owned */
	size_t nmeta;
	char *error;        /* the first refusal of writer_add, owned */
};

/* A growable text buffer. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t k)
{
	if (b->n + k + 1 > b->cap) b->p = xrealloc(b->p, b->cap = (b->n + k + 1) * 2 + 256);
	memcpy(b->p + b->n, s, k);
	b->n += k;
	b->p[b->n] = '\0';
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int k = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (k < 0) check_fail_errno(__FILE__, __LINE__, "vasprintf");
	sb_put(b, s, (size_t)k);
	free(s);
}

/* s as a JSON string. ascii: escape everything outside printable ASCII as
 * Python's json.dumps does (ensure_ascii); else only what JSON requires,
 * as serde_json (the Python package's writer) does. */
static void sb_json_string(struct sbuf *b, const char *s, int ascii)
{
	const unsigned char *p = (const unsigned char *)s;
	sb_put(b, "\"", 1);
	while (*p) {
		unsigned c = *p;
		const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
				: c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
		if (esc) {
			sb_put(b, esc, 2);
			p++;
		} else if (c < 0x20 || (ascii && c == 0x7f)) {
			sb_printf(b, "\\u%04x", c);
			p++;
		} else if (c < 0x80 || !ascii) {
			sb_put(b, (const char *)p, 1);
			p++;
		} else { /* valid UTF-8 (checked when added) to \uXXXX, pairs above the BMP */
			unsigned cp, k = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
			cp = c & (0x3f >> k);
			for (unsigned j = 1; j <= k; j++) cp = cp << 6 | (p[j] & 0x3f);
			if (cp >= 0x10000) {
				cp -= 0x10000;
				sb_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
			} else {
				sb_printf(b, "\\u%04x", cp);
			}
			p += k + 1;
		}
	}
	sb_put(b, "\"", 1);
}

st_writer *safetensors_writer_new(void) { return xcalloc(1, sizeof(st_writer)); }

static int writer_refuse(st_writer *w, const char *name, const char *why)
{
	if (!w->error && asprintf(&w->error, "tensor %s: %s", name, why) < 0)
		check_fail_errno(__FILE__, __LINE__, "asprintf");
	return -1;
}

int safetensors_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
			   const int64_t *shape, const float *data)
{
	if (utf8_check(name, strlen(name)) != strlen(name)) return writer_refuse(w, name, "name is not UTF-8");
	if (strcmp(name, "__metadata__") == 0) return writer_refuse(w, name, "a reserved name");
	if (dtype != ST_F32 && dtype != ST_BF16 && dtype != ST_F16)
		return writer_refuse(w, name, "dtype must be F32, BF16 or F16");
	if (ndim < 0 || ndim > ST_MAX_DIMS) return writer_refuse(w, name, "0 to 8 dimensions");
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->t[i].name, name) == 0) return writer_refuse(w, name, "added twice");
	struct wtensor t = {.dtype = dtype, .ndim = ndim, .data = data, .numel = 1};
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0) return writer_refuse(w, name, "a negative dimension");
		if (shape[i] && t.numel > SIZE_MAX / 4 / (uint64_t)shape[i])
			return writer_refuse(w, name, "shape too large");
		t.shape[i] = shape[i];
		t.numel *= (size_t)shape[i];
	}
	if (t.numel && !data) return writer_refuse(w, name, "no data");
	t.nbytes = t.numel * (dtype == ST_F32 ? 4 : 2);
	t.name = xstrdup(name);
	if (w->n == w->cap) w->t = xrealloc(w->t, (w->cap = w->cap * 2 + 16) * sizeof *w->t);
	w->t[w->n++] = t;
	return 0;
}

void safetensors_writer_meta(st_writer *w, const char *key, const char *value)
{
	for (size_t i = 0; i < w->nmeta; i++)
		if (strcmp(w->meta[2 * i], key) == 0) {
			free(w->meta[2 * i + 1]);
			w->meta[2 * i + 1] = xstrdup(value);
			return;
		}
	w->meta = xrealloc(w->meta, 2 * (w->nmeta + 1) * sizeof *w->meta);
	w->meta[2 * w->nmeta] = xstrdup(key);
	w->meta[2 * w->nmeta + 1] = xstrdup(value);
	w->nmeta++;
}

void safetensors_writer_free(st_writer *w)
{
	if (!w) return;
	for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
	for (size_t i = 0; i < 2 * w->nmeta; i++) free(w->meta[i]);
	free(w->t);
	free(w->meta);
	free(w->error);
	free(w);
}

static const char *dtype_str(st_dtype d) { return d == ST_F32 ? "F32" : d == ST_BF16 ? "BF16" : "F16"; }

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
		if (k < 0 && errno == EINTR) continue;
		if (k <= 0) return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The header of the file holding shard s (the tensors with t.shard == s),
 * padded with spaces to a multiple of 8 bytes, into b. */
static void shard_header(const st_writer *w, int s, struct sbuf *b)
{
	sb_put(b, "{", 1);
	int first = 1;
	if (w->nmeta) {
		sb_put(b, "\"__metadata__\":{", 16);
		for (size_t i = 0; i < w->nmeta; i++) {
			if (i) sb_put(b, ",", 1);
			sb_json_string(b, w->meta[2 * i], 0);
			sb_put(b, ":", 1);
			sb_json_string(b, w->meta[2 * i + 1], 0);
		}
		sb_put(b, "}", 1);
		first = 0;
	}
	uint64_t off = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct wtensor *t = &w->t[i];
		if (t->shard != s) continue;
		if (!first) sb_put(b, ",", 1);
		first = 0;
		sb_json_string(b, t->name, 0);
		sb_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype_str(t->dtype));
		for (int d = 0; d < t->ndim; d++) sb_printf(b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
		sb_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
			  (unsigned long long)(off + t->nbytes));
		off += t->nbytes;
	}
	sb_put(b, "}", 1);
	while (b->n % 8) sb_put(b, " ", 1);
}

/* Convert and write the data of t through buf (cap bytes). */
static int tensor_write(int fd, const struct wtensor *t, uint16_t *buf, size_t cap)
{
	if (t->dtype == ST_F32) return t->nbytes ? write_all(fd, t->data, t->nbytes) : 0;
	size_t chunk = cap / 2;
	for (size_t i = 0; i < t->numel; i += chunk) {
		size_t k = t->numel - i < chunk ? t->numel - i : chunk;
		if (t->dtype == ST_BF16)
			for (size_t j = 0; j < k; j++) buf[j] = safetensors_f32_to_bf16(t->data[i + j]);
		else
			for (size_t j = 0; j < k; j++) buf[j] = safetensors_f32_to_f16(t->data[i + j]);
		if (write_all(fd, buf, 2 * k)) return -1;
	}
	return 0;
}

/* Write dir/name atomically: into dir/.name.tmp-PID, fsync'd, renamed.
 * Either shard s of w (text NULL) or the text itself. */
static int file_write(const char *dir, const char *name, const st_writer *w, int s, const struct sbuf *text,
		      char **err)
{
	char *path = path_join(dir, name), *tmp = NULL;
	struct sbuf hdr = {0};
	uint16_t *buf = NULL;
	int fd = -1, rc = -1;
	if (asprintf(&tmp, "%s/.%s.tmp-%ld", dir, name, (long)getpid()) < 0)
		check_fail_errno(__FILE__, __LINE__, "asprintf");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		errf(err, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (text) {
		if (write_all(fd, text->p, text->n)) goto werr;
	} else {
		shard_header(w, s, &hdr);
		unsigned char len[8];
		for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hdr.n >> (8 * i));
		if (write_all(fd, len, 8) || write_all(fd, hdr.p, hdr.n)) goto werr;
		size_t cap = 1 << 20;
		buf = xmalloc(cap);
		for (size_t i = 0; i < w->n; i++)
			if (w->t[i].shard == s && tensor_write(fd, &w->t[i], buf, cap)) goto werr;
	}
	if (fsync(fd)) goto werr;
	int cfd = fd;
	fd = -1;
	if (close(cfd)) goto werr;
	if (rename(tmp, path)) {
		errf(err, "%s: rename to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
werr:
	errf(err, "%s: %s", tmp, strerror(errno));
out:
	if (fd >= 0) close(fd);
	if (rc) unlink(tmp);
	free(buf);
	free(hdr.p);
	free(path);
	free(tmp);
	return rc;
}

static int dir_sync(const char *dir, char **err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd)) {
		int e = errno;
		if (fd >= 0) close(fd);
		return errf(err, "%s: %s", dir, strerror(e));
	}
	close(fd);
	return 0;
}

/* Is name a shard file, model-DDDDD-of-DDDDD.safetensors? *of gets the count. */
static int shard_name(const char *name, int *of)
{
	int k, n, used = 0;
	if (strlen(name) != 32 || sscanf(name, "model-%5d-of-%5d.safetensors%n", &k, &n, &used) != 2 || used != 32)
		return 0;
	for (int i = 0; i < 5; i++)
		if (name[6 + i] < '0' || name[6 + i] > '9' || name[15 + i] < '0' || name[15 + i] > '9') return 0;
	*of = n;
	return 1;
}

/* Remove what an earlier save with another layout left: with nshards == 1
 * the index and every shard, else model.safetensors and shards of another
 * count. */
static int dir_clean(const char *dir, int nshards, char **err)
{
	DIR *d = opendir(dir);
	if (!d) return errf(err, "%s: %s", dir, strerror(errno));
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		int of = 0, stale;
		if (nshards == 1) stale = strcmp(de->d_name, INDEX_NAME) == 0 || shard_name(de->d_name, &of);
		else stale = strcmp(de->d_name, "model.safetensors") == 0 || (shard_name(de->d_name, &of) && of != nshards);
		if (!stale) continue;
		char *p = path_join(dir, de->d_name);
		if (unlink(p) && errno != ENOENT && !rc) rc = errf(err, "%s: %s", p, strerror(errno));
		free(p);
	}
	closedir(d);
	return rc;
}

static int wt_by_name(const void *a, const void *b)
{
	return strcmp((*(struct wtensor *const *)a)->name, (*(struct wtensor *const *)b)->name);
}

int safetensors_writer_save(st_writer *w, const char *dir, size_t max_shard_bytes, char **err)
{
	if (w->error) return errf(err, "%s: %s", dir, w->error);
	/* huggingface_hub's split_state_dict_into_shards_factory: in order,
	 * the current shard is closed (and numbered) when the next tensor
	 * would tip it over the limit, and at the end; a tensor over the limit
	 * is a shard of its own, numbered at once, so before the open one. */
	int nshards = 0, ngroups = 0, cur = -1;
	int *number = xcalloc(w->n + 1, sizeof *number); /* group -> shard */
	size_t cur_size = 0, total = 0, params = 0;
	for (size_t i = 0; i < w->n; i++) {
		struct wtensor *t = &w->t[i];
		total += t->nbytes;
		params += t->numel;
		if (max_shard_bytes && t->nbytes > max_shard_bytes) {
			t->shard = ngroups++;
			number[t->shard] = nshards++;
			continue;
		}
		if (cur < 0 || (max_shard_bytes && cur_size + t->nbytes > max_shard_bytes)) {
			if (cur >= 0) number[cur] = nshards++;
			cur = ngroups++;
			cur_size = 0;
		}
		t->shard = cur;
		cur_size += t->nbytes;
	}
	if (cur >= 0) number[cur] = nshards++;
	for (size_t i = 0; i < w->n; i++) w->t[i].shard = number[w->t[i].shard];
	free(number);
	if (nshards > 99999) return errf(err, "%s: %d shards (at most 99999)", dir, nshards);
	if (nshards <= 1) {
		if (file_write(dir, "model.safetensors", w, 0, NULL, err)) return -1;
		return dir_sync(dir, err) || dir_clean(dir, 1, err) || dir_sync(dir, err) ? -1 : 0;
	}
	char name[64];
	for (int s = 0; s < nshards; s++) {
		snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, nshards);
		if (file_write(dir, name, w, s, NULL, err)) return -1;
	}
	/* The index as transformers writes it: json.dumps(index, indent=2,
	 * sort_keys=True) + "\n". */
	struct sbuf ix = {0};
	struct wtensor **sorted = xmalloc((w->n + 1) * sizeof *sorted);
	for (size_t i = 0; i < w->n; i++) sorted[i] = &w->t[i];
	qsort(sorted, w->n, sizeof *sorted, wt_by_name);
	sb_printf(&ix, "{\n  \"metadata\": {\n    \"total_parameters\": %zu,\n    \"total_size\": %zu\n  },\n",
		  params, total);
	sb_put(&ix, "  \"weight_map\": {", 17);
	for (size_t i = 0; i < w->n; i++) {
		sb_put(&ix, i ? ",\n    " : "\n    ", i ? 6 : 5);
		sb_json_string(&ix, sorted[i]->name, 1);
		snprintf(name, sizeof name, ": \"model-%05d-of-%05d.safetensors\"", sorted[i]->shard + 1, nshards);
		sb_put(&ix, name, strlen(name));
	}
	sb_put(&ix, "\n  }\n}\n", 7);
	free(sorted);
	int rc = file_write(dir, INDEX_NAME, NULL, 0, &ix, err);
	free(ix.p);
	if (rc) return -1;
	return dir_sync(dir, err) || dir_clean(dir, nshards, err) || dir_sync(dir, err) ? -1 : 0;
}

int safetensors_writer_save_file(st_writer *w, const char *path, char **err)
{
	if (w->error) return errf(err, "%s: %s", path, w->error);
	for (size_t i = 0; i < w->n; i++) w->t[i].shard = 0;
	char *copy = xstrdup(path), *slash = strrchr(copy, '/');
	const char *dir = ".", *name = copy;
	if (slash) {
		*slash = 0;
		dir = slash == copy ? "/" : copy;
		name = slash + 1;
	}
	int rc = file_write(dir, name, w, 0, NULL, err) || dir_sync(dir, err) ? -1 : 0;
	free(copy);
	return rc;
}
