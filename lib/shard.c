/* shard.c — the token-shard stream: writer, reader, tokenizer fingerprint.
 * The layout is ds-shard(5); the constants below are its byte offsets. */
#include "shard.h"
#include "check.h"
#include "json.h"
#include "zstdio.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout ----------------------------------------------------------- */

static const uint8_t header_magic[8] = {'D', 'S', 'S', 'H', 'A', 'R', 'D', 0x1a};
static const uint8_t sample_tag[4] = {'D', 'S', 'S', 'M'};
static const uint8_t soft_tag[4] = {'D', 'S', 'S', 'L'}; /* soft labels of the sample after it */
#define HEADER_SIZE 80  /* magic 8, version 4, size 4, fingerprint 32, vocab 4,
			   cutoff 4, flags 4, template 16, reserved 4 */
#define HEADER_MAX 4096 /* a later version may grow the header up to this */
#define SAMPLE_FIXED 16 /* tag 4, n_tokens 4, n_docs 4, crc 4 */
#define SOFT_FIXED 16   /* tag 4, k 4, positions 4, crc 4 */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* CRC-32 (IEEE 802.3, as zlib's crc32), over each sample's body: zstd frames
 * carry no checksum here, and a corrupt block can still decompress. */
static uint32_t crc_table[256];

static void crc_init(void)
{
	if (crc_table[1]) return;
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc_update(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	crc = ~crc;
	while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* The little-endian bytes of a[0..n): on a little-endian host, a itself. */
static const void *le32_array(const uint32_t *a, size_t n, uint8_t **tmp)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	(void)n, (void)tmp;
	return a;
#else
	*tmp = xrealloc(*tmp, n * 4);
	for (size_t i = 0; i < n; i++) put32(*tmp + 4 * i, a[i]);
	return *tmp;
#endif
}

/* ---- fingerprint ------------------------------------------------------ */

struct idstr {
	uint32_t id;
	const char *s;
	size_t n;
	int special, normalized; /* added tokens */
	jv keep; /* owns s */
};

static int idstr_cmp(const void *a, const void *b)
{
	const struct idstr *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void hash_str(EVP_MD_CTX *h, const char *s, size_t n)
{
	char len[32];
	int k = snprintf(len, sizeof len, "%zu:", n);
	EVP_DigestUpdate(h, len, (size_t)k);
	EVP_DigestUpdate(h, s, n);
}

static void hash_fmt(EVP_MD_CTX *h, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void hash_fmt(EVP_MD_CTX *h, const char *f, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, f);
	int k = vsnprintf(buf, sizeof buf, f, ap);
	va_end(ap);
	EVP_DigestUpdate(h, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
}

static int is_nfc(jv norm)
{
	int nfc = 0;
	if (jv_get_kind(norm) != JV_KIND_OBJECT) return 0;
	const char *ty = "";
	jv t = jv_object_get(jv_copy(norm), jv_string("type"));
	if (jv_get_kind(t) == JV_KIND_STRING) ty = jv_string_value(t);
	if (!strcmp(ty, "NFC")) nfc = 1;
	else if (!strcmp(ty, "Sequence")) {
		jv list = jv_object_get(jv_copy(norm), jv_string("normalizers"));
		if (jv_get_kind(list) == JV_KIND_ARRAY)
			jv_array_foreach(list, i, e) {
				nfc |= is_nfc(e);
				jv_free(e);
			}
		jv_free(list);
	}
	jv_free(t);
	return nfc;
}

static int as_u32(jv v, uint32_t *out)
{
	double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : -1;
	jv_free(v);
	if (!(d >= 0 && d < 4294967296.0) || d != (double)(uint32_t)d) return -1;
	*out = (uint32_t)d;
	return 0;
}


static char *fp_error(const char *path, const char *why)
{
	size_t m = strlen(path) + strlen(why) + 3;
	char *s = xmalloc(m);
	snprintf(s, m, "%s: %s", path, why);
	return s;
}

int shard_fingerprint(const char *path, uint8_t out[32], char **err)
{
	size_t n, at;
	const char *why = NULL;
	char *text = zreader_slurp(path, &n, err);
	if (!text) return -1;
	jv root = json_parse(text, n, &at, &why);
	free(text);
	struct idstr *v = NULL;
	size_t nv = 0;
	int rc = -1, bad = 0;
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	if (!h) check_fail_errno(__FILE__, __LINE__, "EVP_MD_CTX_new");
	EVP_DigestInit_ex(h, EVP_sha256(), NULL);
	jv model = jv_invalid(), vocab = jv_invalid(), merges = jv_invalid(), added = jv_invalid();
	jv pre = jv_invalid(), norm = jv_invalid();
	if (jv_get_kind(root) != JV_KIND_OBJECT) {
		*err = fp_error(path, why ? why : "not a JSON object");
		goto out;
	}
	model = jv_object_get(jv_copy(root), jv_string("model"));
	if (jv_get_kind(model) == JV_KIND_OBJECT) {
		vocab = jv_object_get(jv_copy(model), jv_string("vocab"));
		merges = jv_object_get(jv_copy(model), jv_string("merges"));
	}
	added = jv_object_get(jv_copy(root), jv_string("added_tokens"));
	pre = jv_object_get(jv_copy(root), jv_string("pre_tokenizer"));
	norm = jv_object_get(jv_copy(root), jv_string("normalizer"));
	if (jv_get_kind(vocab) != JV_KIND_OBJECT || jv_get_kind(merges) != JV_KIND_ARRAY) {
		*err = fp_error(path, "no model.vocab object and model.merges list");
		goto out;
	}

	hash_fmt(h, "ds-tokenizer-fingerprint 1\nnormalizer %s\n", is_nfc(norm) ? "NFC" : "none");
	jv pre_s = jv_dump_string(jv_copy(pre), JV_PRINT_SORTED);
	hash_fmt(h, "pre_tokenizer ");
	hash_str(h, jv_string_value(pre_s), (size_t)jv_string_length_bytes(jv_copy(pre_s)));
	hash_fmt(h, "\n");
	jv_free(pre_s);

	size_t i = 0;
	v = xcalloc((size_t)jv_object_length(jv_copy(vocab)) + 1, sizeof *v);
	jv_object_foreach(vocab, key, val) {
		if (as_u32(val, &v[i].id)) bad = 1;
		v[i].s = jv_string_value(key);
		v[i].n = (size_t)jv_string_length_bytes(jv_copy(key));
		v[i].keep = key;
		nv = ++i;
	}
	if (bad) {
		*err = fp_error(path, "model.vocab: an id is not a non-negative integer");
		goto out;
	}
	qsort(v, nv, sizeof *v, idstr_cmp);
	hash_fmt(h, "vocab %zu\n", nv);
	for (i = 0; i < nv; i++) {
		hash_fmt(h, "%u ", v[i].id);
		hash_str(h, v[i].s, v[i].n);
		hash_fmt(h, "\n");
	}

	hash_fmt(h, "merges %d\n", jv_array_length(jv_copy(merges)));
	jv_array_foreach(merges, k, m) {
		/* "a b" and ["a", "b"] hash alike */
		jv x = jv_invalid(), y = jv_invalid();
		if (jv_get_kind(m) == JV_KIND_STRING) {
			const char *s = jv_string_value(m), *sp = strchr(s, ' ');
			if (sp) {
				x = jv_string_sized(s, (int)(sp - s));
				y = jv_string(sp + 1);
			}
		} else if (jv_get_kind(m) == JV_KIND_ARRAY && jv_array_length(jv_copy(m)) == 2) {
			x = jv_array_get(jv_copy(m), 0);
			y = jv_array_get(jv_copy(m), 1);
		}
		if (jv_get_kind(x) == JV_KIND_STRING && jv_get_kind(y) == JV_KIND_STRING) {
			hash_str(h, jv_string_value(x), (size_t)jv_string_length_bytes(jv_copy(x)));
			hash_fmt(h, " ");
			hash_str(h, jv_string_value(y), (size_t)jv_string_length_bytes(jv_copy(y)));
			hash_fmt(h, "\n");
		} else {
			bad = 1;
		}
		jv_free(x);
		jv_free(y);
		jv_free(m);
		(void)k;
	}
	if (bad) {
		*err = fp_error(path, "model.merges: a merge is neither \"a b\" nor [\"a\", \"b\"]");
		goto out;
	}

	int na = jv_get_kind(added) == JV_KIND_ARRAY ? jv_array_length(jv_copy(added)) : 0;
	struct idstr *ad = xcalloc(na ? (size_t)na : 1, sizeof *ad);
	for (int k = 0; k < na; k++) {
		jv a = jv_array_get(jv_copy(added), k);
		jv c = jv_get_kind(a) == JV_KIND_OBJECT ? jv_object_get(jv_copy(a), jv_string("content"))
							: jv_invalid();
		if (jv_get_kind(c) != JV_KIND_STRING ||
		    as_u32(jv_object_get(jv_copy(a), jv_string("id")), &ad[k].id)) {
			bad = 1;
			jv_free(c);
			c = jv_string("");
		} else {
			/* normalized defaults to !special, as in tokenizers */
			jv sp = jv_object_get(jv_copy(a), jv_string("special"));
			jv no = jv_object_get(jv_copy(a), jv_string("normalized"));
			ad[k].special = jv_get_kind(sp) == JV_KIND_TRUE;
			ad[k].normalized = jv_get_kind(no) == JV_KIND_TRUE ||
					   (jv_get_kind(no) != JV_KIND_FALSE && !ad[k].special);
			jv_free(sp);
			jv_free(no);
		}
		ad[k].s = jv_string_value(c);
		ad[k].n = (size_t)jv_string_length_bytes(jv_copy(c));
		ad[k].keep = c;
		jv_free(a);
	}
	if (!bad) {
		qsort(ad, (size_t)na, sizeof *ad, idstr_cmp);
		hash_fmt(h, "added %d\n", na);
		for (int k = 0; k < na; k++) {
			hash_fmt(h, "%u %d %d ", ad[k].id, ad[k].special, ad[k].normalized);
			hash_str(h, ad[k].s, ad[k].n);
			hash_fmt(h, "\n");
		}
	}
	for (int k = 0; k < na; k++) jv_free(ad[k].keep);
	free(ad);
	if (bad) {
		*err = fp_error(path, "added_tokens: an entry without a valid id and content");
		goto out;
	}
	unsigned len = 32;
	EVP_DigestFinal_ex(h, out, &len);
	rc = 0;
out:
	for (size_t k = 0; k < nv; k++) jv_free(v[k].keep);
	free(v);
	EVP_MD_CTX_free(h);
	jv_free(model), jv_free(vocab), jv_free(merges), jv_free(added), jv_free(pre), jv_free(norm);
	jv_free(root);
	return rc;
}

void shard_fingerprint_hex(const uint8_t fp[32], char hex[65])
{
	for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", fp[i]);
}

/* ---- writer ----------------------------------------------------------- */

struct shard_writer {
	zwriter *z;
	int failed; /* the header could not be written */
	shard_header h;
	uint8_t *tmp; /* big-endian hosts only */
};

static void header_bytes(const shard_header *h, uint8_t b[HEADER_SIZE])
{
	memset(b, 0, HEADER_SIZE);
	memcpy(b, header_magic, 8);
	put32(b + 8, SHARD_VERSION);
	put32(b + 12, HEADER_SIZE);
	memcpy(b + 16, h->fingerprint, 32);
	put32(b + 48, h->vocab_size);
	put32(b + 52, h->cutoff_len);
	put32(b + 56, h->flags);
	memcpy(b + 60, h->template_name, strnlen(h->template_name, SHARD_TEMPLATE_MAX));
	/* the header's own CRC-32, over bytes 0..76 (0 before: not checked) */
	put32(b + 76, crc_update(0, b, 76));
}

shard_writer *shard_writer_open(FILE *f, const shard_header *h, int level)
{
	crc_init();
	shard_writer *w = xcalloc(1, sizeof *w);
	w->z = zwriter_new(f, level);
	w->h = *h;
	uint8_t b[HEADER_SIZE];
	header_bytes(h, b);
	w->failed = zwriter_write(w->z, b, sizeof b) != 0;
	return w;
}

static int sample_valid(const shard_header *h, const shard_sample *s)
{
	if (s->n_tokens == 0 || s->n_tokens > h->cutoff_len || s->n_docs == 0 ||
	    s->n_docs > s->n_tokens)
		return 0;
	uint64_t sum = 0;
	for (uint32_t i = 0; i < s->n_docs; i++) {
		if (s->doc_len[i] == 0) return 0;
		sum += s->doc_len[i];
	}
	if (sum != s->n_tokens) return 0;
	for (uint32_t i = 0; i < s->n_tokens; i++)
		if (s->ids[i] >= h->vocab_size || s->mask[i] > 1) return 0;
	return 1;
}

/* Why the soft labels of a sample are not valid for it (a static), or NULL.
 * mask (T) is the sample's, doc_len (D) its documents. */
static const char *soft_invalid(const shard_header *h, uint32_t T, uint32_t D, const uint8_t *mask,
				const uint32_t *doc_len, uint32_t K, uint32_t P, const uint32_t *pos, const uint32_t *id,
				const float *lp)
{
	if (!(h->flags & SHARD_SOFT)) return "soft labels in a stream whose header has no soft-label flag";
	if (K == 0 || K > SHARD_SOFT_MAX_K) return "soft labels with a count of alternatives out of range";
	if (P == 0 || P > T) return "soft labels with a count of positions out of range";
	uint32_t d = 0, doc_start = 0;
	for (uint32_t i = 0; i < P; i++) {
		if (i && pos[i] <= pos[i - 1]) return "soft-label positions not increasing";
		if (pos[i] >= T) return "a soft-label position outside the sample";
		while (d < D && pos[i] >= doc_start + doc_len[d]) doc_start += doc_len[d++];
		if (pos[i] == doc_start) return "a soft-label position first of its document (nothing predicts it)";
		if (!mask[pos[i]]) return "a soft-label position on a token that is not trained";
		const uint32_t *x = id + (size_t)i * K;
		const float *l = lp + (size_t)i * K;
		for (uint32_t a = 0; a < K; a++) {
			if (x[a] >= h->vocab_size) return "a soft-label id outside the vocabulary";
			if (!(l[a] <= 0.0f) || l[a] < -1e30f) return "a soft-label log-probability that is not a finite number <= 0";
			for (uint32_t b = 0; b < a; b++)
				if (x[a] == x[b]) return "a soft-label id twice at one position";
		}
	}
	return NULL;
}

static int write_soft(shard_writer *w, const shard_sample *s)
{
	uint32_t K = s->soft_k, P = s->soft_n;
	size_t nk = (size_t)P * K;
	uint8_t *b = xmalloc(4 * ((size_t)P + 2 * nk));
	for (uint32_t i = 0; i < P; i++) put32(b + 4 * i, s->soft_pos[i]);
	for (size_t i = 0; i < nk; i++) {
		uint32_t bits;
		memcpy(&bits, &s->soft_lp[i], 4);
		put32(b + 4 * (P + i), s->soft_id[i]);
		put32(b + 4 * (P + nk + i), bits);
	}
	size_t n = 4 * ((size_t)P + 2 * nk);
	uint8_t fixed[SOFT_FIXED];
	memcpy(fixed, soft_tag, 4);
	put32(fixed + 4, K);
	put32(fixed + 8, P);
	put32(fixed + 12, crc_update(0, b, n));
	int rc = zwriter_write(w->z, fixed, sizeof fixed) || zwriter_write(w->z, b, n) ? -1 : 0;
	free(b);
	return rc;
}

int shard_writer_add(shard_writer *w, const shard_sample *s)
{
	if (w->failed) return -1;
	if (!sample_valid(&w->h, s) ||
	    (s->soft_n && soft_invalid(&w->h, s->n_tokens, s->n_docs, s->mask, s->doc_len, s->soft_k,
				       s->soft_n, s->soft_pos, s->soft_id, s->soft_lp))) {
		errno = EINVAL;
		return -1;
	}
	if (s->soft_n && write_soft(w, s)) return -1;
	uint32_t T = s->n_tokens, D = s->n_docs;
	uint8_t *docs = xmalloc((size_t)D * 8);
	for (uint32_t i = 0; i < D; i++) {
		put32(docs + 8 * i, s->doc_len[i]);
		put32(docs + 8 * i + 4, s->doc_flags ? s->doc_flags[i] : 0);
	}
	const void *ids = le32_array(s->ids, T, &w->tmp);
	uint32_t crc = crc_update(0, docs, (size_t)D * 8);
	crc = crc_update(crc, ids, (size_t)T * 4);
	crc = crc_update(crc, s->mask, T);
	uint8_t fixed[SAMPLE_FIXED];
	memcpy(fixed, sample_tag, 4);
	put32(fixed + 4, T);
	put32(fixed + 8, D);
	put32(fixed + 12, crc);
	int rc = zwriter_write(w->z, fixed, sizeof fixed) || zwriter_write(w->z, docs, (size_t)D * 8) ||
			 zwriter_write(w->z, ids, (size_t)T * 4) || zwriter_write(w->z, s->mask, T)
		 ? -1 : 0;
	free(docs);
	return rc;
}

int shard_writer_flush(shard_writer *w) { return zwriter_flush(w->z); }

int shard_writer_close(shard_writer *w)
{
	int rc = zwriter_close(w->z) || w->failed ? -1 : 0;
	free(w->tmp);
	free(w);
	return rc;
}

/* ---- reader ----------------------------------------------------------- */

struct shard_reader {
	zreader *z;
	char *name;          /* for messages */
	shard_header h;      /* the first */
	uint32_t cur_cutoff; /* of the current part */
	long n_headers, n_samples;
	uint64_t offset;     /* decompressed bytes consumed */
	uint8_t buf[1 << 16];
	size_t pos, len;
	uint32_t *ids, *doc_len, *doc_flags; /* (cap_t), (cap_d), (cap_d) */
	uint8_t *mask, *raw;                  /* (cap_t), (8 cap_d or 4 cap_t) */
	size_t cap_t, cap_d, cap_raw;
	uint32_t soft_k, soft_n;              /* the soft labels read for the next sample */
	uint32_t *soft_pos, *soft_id;         /* (cap_sp), (cap_sk) */
	float *soft_lp;                       /* (cap_sk) */
	size_t cap_sp, cap_sk;
	char err[512];
};

/* Read exactly n bytes. Returns n, fewer at the end of the stream, or -1. */
static ssize_t read_exact(shard_reader *r, void *dst, size_t n)
{
	uint8_t *d = dst;
	size_t got = 0;
	while (got < n) {
		if (r->pos == r->len) {
			ssize_t k = zreader_read(r->z, r->buf, sizeof r->buf);
			if (k < 0) {
				snprintf(r->err, sizeof r->err, "%s: %s", r->name, zreader_error(r->z));
				return -1;
			}
			if (k == 0) break;
			r->pos = 0;
			r->len = (size_t)k;
		}
		size_t k = r->len - r->pos;
		if (k > n - got) k = n - got;
		memcpy(d + got, r->buf + r->pos, k);
		r->pos += k;
		got += k;
	}
	r->offset += got;
	return (ssize_t)got;
}

static int fail(shard_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(shard_reader *r, const char *fmt, ...)
{
	int k = snprintf(r->err, sizeof r->err, "%s: ", r->name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err + k, sizeof r->err - (size_t)k, fmt, ap);
	va_end(ap);
	return -1;
}

static int truncated(shard_reader *r, ssize_t k, const char *what)
{
	if (k < 0) return -1;
	return fail(r, "truncated stream: %s ends after %llu bytes", what,
		    (unsigned long long)r->offset);
}

/* The header whose first 4 magic bytes were just read, into *h. */
static int read_header(shard_reader *r, shard_header *h)
{
	uint8_t b[HEADER_MAX];
	ssize_t k = read_exact(r, b + 4, 12);
	if (k != 12) return truncated(r, k, "a header");
	if (memcmp(b + 4, header_magic + 4, 4) != 0) return fail(r, "not a shard stream (bad magic)");
	uint32_t version = get32(b + 8), size = get32(b + 12);
	if (version != SHARD_VERSION)
		return fail(r, "shard format version %u; this program reads version %u", version,
			    SHARD_VERSION);
	if (size < HEADER_SIZE || size > HEADER_MAX)
		return fail(r, "corrupt header (size %u)", size);
	k = read_exact(r, b + 16, size - 16);
	if (k != (ssize_t)(size - 16)) return truncated(r, k, "a header");
	memset(h, 0, sizeof *h);
	h->version = version;
	memcpy(h->fingerprint, b + 16, 32);
	h->vocab_size = get32(b + 48);
	h->cutoff_len = get32(b + 52);
	h->flags = get32(b + 56);
	memcpy(h->template_name, b + 60, SHARD_TEMPLATE_MAX);
	memcpy(b, header_magic, 4);
	uint32_t crc = get32(b + 76);
	if (crc && crc != crc_update(0, b, 76)) return fail(r, "corrupt header (checksum mismatch)");
	if (h->flags & ~(uint32_t)SHARD_FLAGS_KNOWN)
		return fail(r, "header flags 0x%x: bits this program does not know (a newer ds wrote it?)", h->flags);
	if (h->vocab_size == 0 || h->cutoff_len == 0 || h->cutoff_len > SHARD_MAX_TOKENS)
		return fail(r, "corrupt header (vocabulary %u, cutoff %u)", h->vocab_size,
			    h->cutoff_len);
	r->n_headers++;
	return 0;
}

shard_reader *shard_reader_open(const char *path, char **err)
{
	zreader *z = zreader_open(path, err);
	if (!z) return NULL;
	crc_init();
	shard_reader *r = xcalloc(1, sizeof *r);
	r->z = z;
	r->name = xstrdup(strcmp(path, "-") ? path : "<stdin>");
	uint8_t m[4];
	ssize_t k = read_exact(r, m, 4);
	int rc = -1;
	if (k == 0) fail(r, "empty input, not a shard stream");
	else if (k > 0 && (k < 4 || memcmp(m, header_magic, 4) != 0))
		fail(r, "not a shard stream (no ds-shard header)");
	else if (k > 0)
		rc = read_header(r, &r->h);
	if (rc) {
		*err = xstrdup(r->err);
		shard_reader_close(r);
		return NULL;
	}
	r->cur_cutoff = r->h.cutoff_len;
	return r;
}

const shard_header *shard_reader_header(const shard_reader *r) { return &r->h; }
const char *shard_reader_error(const shard_reader *r) { return r->err; }
long shard_reader_headers(const shard_reader *r) { return r->n_headers; }

static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap) return;
	size_t c = *cap ? *cap : 1024;
	while (c < need) c *= 2;
	*p = xrealloc(*p, c * elem);
	*cap = c;
}

/* The soft-label record whose tag was just read: kept for the sample
 * after it, which soft_invalid checks it against. */
static int read_soft(shard_reader *r)
{
	long n = r->n_samples + 1;
	uint8_t fixed[SOFT_FIXED];
	ssize_t k = read_exact(r, fixed + 4, SOFT_FIXED - 4);
	if (k != SOFT_FIXED - 4) return truncated(r, k, "soft labels");
	uint32_t K = get32(fixed + 4), P = get32(fixed + 8), crc = get32(fixed + 12);
	if (!(r->h.flags & SHARD_SOFT))
		return fail(r, "sample %ld: soft labels in a stream whose header has no soft-label flag", n);
	if (K == 0 || K > SHARD_SOFT_MAX_K || P == 0 || P > r->cur_cutoff)
		return fail(r, "sample %ld: corrupt soft labels (%u alternatives, %u positions)", n, K, P);
	size_t nk = (size_t)P * K, bytes = 4 * ((size_t)P + 2 * nk);
	grow((void **)&r->raw, &r->cap_raw, bytes, 1);
	k = read_exact(r, r->raw, bytes);
	if (k != (ssize_t)bytes) return truncated(r, k, "soft labels");
	if (crc_update(0, r->raw, bytes) != crc) return fail(r, "sample %ld: corrupt soft labels (checksum mismatch)", n);
	grow((void **)&r->soft_pos, &r->cap_sp, P, sizeof *r->soft_pos);
	if (r->cap_sk < nk) {
		grow((void **)&r->soft_id, &r->cap_sk, nk, sizeof *r->soft_id);
		r->soft_lp = xrealloc(r->soft_lp, r->cap_sk * sizeof *r->soft_lp);
	}
	for (uint32_t i = 0; i < P; i++) r->soft_pos[i] = get32(r->raw + 4 * i);
	for (size_t i = 0; i < nk; i++) {
		uint32_t bits = get32(r->raw + 4 * (P + nk + i));
		r->soft_id[i] = get32(r->raw + 4 * (P + i));
		memcpy(&r->soft_lp[i], &bits, 4);
	}
	r->soft_k = K;
	r->soft_n = P;
	return 0;
}

int shard_reader_next(shard_reader *r, shard_sample *s)
{
	uint8_t fixed[SAMPLE_FIXED];
	r->soft_n = 0;
	for (;;) {
		ssize_t k = read_exact(r, fixed, 4);
		if (k == 0 && r->soft_n) return fail(r, "truncated stream: soft labels and no sample after them");
		if (k == 0) return 0;
		if (k != 4) return truncated(r, k, "a record");
		if (memcmp(fixed, sample_tag, 4) == 0) break;
		if (memcmp(fixed, soft_tag, 4) == 0 && !r->soft_n) {
			if (read_soft(r)) return -1;
			continue;
		}
		if (memcmp(fixed, header_magic, 4) != 0 || r->soft_n)
			return fail(r, "corrupt stream: no record starts at byte %llu (after sample %ld)",
				    (unsigned long long)r->offset - 4, r->n_samples);
		shard_header h;
		if (read_header(r, &h)) return -1;
		char a[65], b[65];
		if (memcmp(h.fingerprint, r->h.fingerprint, 32) != 0) {
			shard_fingerprint_hex(h.fingerprint, a);
			shard_fingerprint_hex(r->h.fingerprint, b);
			return fail(r, "part %ld was made with another tokenizer (fingerprint %.16s..., "
				       "the first part's is %.16s...)", r->n_headers, a, b);
		}
		if (h.vocab_size != r->h.vocab_size)
			return fail(r, "part %ld has a vocabulary of %u, the first part's is %u",
				    r->n_headers, h.vocab_size, r->h.vocab_size);
		if (h.cutoff_len != r->h.cutoff_len)
			return fail(r, "part %ld has cutoff length %u, the first part's is %u",
				    r->n_headers, h.cutoff_len, r->h.cutoff_len);
	}
	long n = r->n_samples + 1;
	ssize_t k = read_exact(r, fixed + 4, SAMPLE_FIXED - 4);
	if (k != SAMPLE_FIXED - 4) return truncated(r, k, "a sample");
	uint32_t T = get32(fixed + 4), D = get32(fixed + 8), crc = get32(fixed + 12);
	if (T == 0 || T > r->cur_cutoff || D == 0 || D > T)
		return fail(r, "sample %ld: corrupt (%u tokens, %u documents, cutoff %u)", n, T, D,
			    r->cur_cutoff);
	grow((void **)&r->ids, &r->cap_t, T, sizeof *r->ids);
	r->mask = xrealloc(r->mask, r->cap_t);
	if (r->cap_d < D) {
		grow((void **)&r->doc_len, &r->cap_d, D, sizeof *r->doc_len);
		r->doc_flags = xrealloc(r->doc_flags, r->cap_d * sizeof *r->doc_flags);
	}
	size_t raw = (size_t)D * 8 > (size_t)T * 4 ? (size_t)D * 8 : (size_t)T * 4;
	grow((void **)&r->raw, &r->cap_raw, raw, 1);

	uint32_t c;
	k = read_exact(r, r->raw, (size_t)D * 8);
	if (k != (ssize_t)D * 8) return truncated(r, k, "a sample");
	c = crc_update(0, r->raw, (size_t)D * 8);
	uint64_t sum = 0;
	for (uint32_t i = 0; i < D; i++) {
		r->doc_len[i] = get32(r->raw + 8 * i);
		r->doc_flags[i] = get32(r->raw + 8 * i + 4);
		sum += r->doc_len[i];
	}
	k = read_exact(r, r->raw, (size_t)T * 4);
	if (k != (ssize_t)T * 4) return truncated(r, k, "a sample");
	c = crc_update(c, r->raw, (size_t)T * 4);
	for (uint32_t i = 0; i < T; i++) r->ids[i] = get32(r->raw + 4 * i);
	k = read_exact(r, r->mask, T);
	if (k != (ssize_t)T) return truncated(r, k, "a sample");
	c = crc_update(c, r->mask, T);
	if (c != crc) return fail(r, "sample %ld: corrupt (checksum mismatch)", n);
	if (sum != T) return fail(r, "sample %ld: corrupt (documents do not add up)", n);
	for (uint32_t i = 0; i < D; i++) {
		if (r->doc_len[i] == 0) return fail(r, "sample %ld: corrupt (empty document)", n);
		if (r->doc_flags[i] & ~(uint32_t)SHARD_DOC_FLAGS_KNOWN)
			return fail(r, "sample %ld: document flags 0x%x: bits this program does not know", n,
				    r->doc_flags[i]);
	}
	for (uint32_t i = 0; i < T; i++) {
		if (r->ids[i] >= r->h.vocab_size)
			return fail(r, "sample %ld: token %u is id %u, outside the vocabulary of %u", n,
				    i, r->ids[i], r->h.vocab_size);
		if (r->mask[i] > 1) return fail(r, "sample %ld: corrupt loss mask", n);
	}
	const char *bad = r->soft_n ? soft_invalid(&r->h, T, D, r->mask, r->doc_len, r->soft_k, r->soft_n,
						   r->soft_pos, r->soft_id, r->soft_lp)
				    : NULL;
	if (bad) return fail(r, "sample %ld: %s", n, bad);
	r->n_samples = n;
	s->soft_k = r->soft_n ? r->soft_k : 0;
	s->soft_n = r->soft_n;
	s->soft_pos = r->soft_pos;
	s->soft_id = r->soft_id;
	s->soft_lp = r->soft_lp;
	s->n_tokens = T;
	s->n_docs = D;
	s->ids = r->ids;
	s->mask = r->mask;
	s->doc_len = r->doc_len;
	s->doc_flags = r->doc_flags;
	return 1;
}

void shard_reader_close(shard_reader *r)
{
	if (!r) return;
	zreader_close(r->z);
	free(r->name);
	free(r->ids);
	free(r->mask);
	free(r->doc_len);
	free(r->doc_flags);
	free(r->raw);
	free(r->soft_pos);
	free(r->soft_id);
	free(r->soft_lp);
	free(r);
}
