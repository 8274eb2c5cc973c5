/* tokenizer.c — Qwen2's byte-level BPE, id for id as Hugging Face
 * `tokenizers` (see tokenizer.h for what is accepted).
 *
 * Encoding is the pipeline of tokenizers' TokenizerImpl::encode_single:
 *   1. added tokens are cut out of the raw text, leftmost-longest
 *      (AddedVocabulary; those with normalized=true are looked for after
 *      step 2, in the normalized text);
 *   2. each piece between them is normalized (NFC, utf8proc);
 *   3. split by Qwen's regex (pretok_next below, a hand-written matcher
 *      with Oniguruma's leftmost-first backtracking semantics);
 *   4. each piece is mapped to bytes (ByteLevel) and merged by BPE rank.
 */
#include "tokenizer.h"
#include "check.h"
#include "json.h"
#include "utf8.h"
#include "zstdio.h"

#include <jv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- types ------------------------------------------------------------ */

#define NO_ID UINT32_MAX
#define NO_MERGE UINT64_MAX

/* (left id, right id) -> rank and the merged id. Open addressing. */
struct merge_slot {
	uint64_t key; /* left << 32 | right; NO_MERGE when empty */
	uint32_t rank, id;
};

struct added {
	char *text;    /* owned: what is matched (NFC'd when normalized) */
	size_t len;
	char *dec;     /* owned: what it decodes to */
	size_t dec_len;
	uint32_t id;
	int normalized, special;
};

struct tokenizer {
	uint32_t n_ids;          /* max id + 1 */
	const char **dec_ptr;    /* (n_ids) the bytes each id decodes to: into dec or added[].dec */
	uint32_t *dec_len;       /* (n_ids) */
	uint8_t *id_kind;        /* (n_ids) 0 none, 1 model, 2 added, 3 added special */
	char *dec;               /* the model tokens' bytes, one after the other */
	uint32_t byte_id[256];   /* the model id of each single byte */
	struct merge_slot *merges;
	uint64_t merge_mask;
	int merge_shift;
	struct added *added;     /* (n_added) longest first within each first byte */
	size_t n_added;
	uint8_t added_first[2][256]; /* [normalized][first byte]: some token starts so */
	int nfc;
	size_t heap_min;
	uint32_t *by_bytes;      /* bytes -> id (vocab_map's slots), added tokens over model ones */
	uint64_t by_bytes_mask;
};

struct tokenizer_scratch {
	uint32_t *cp, *off;      /* (cap + 1) code points of a segment, their byte offsets */
	uint8_t *cls;            /* (cap) class bits of each */
	size_t cap;
	uint32_t *sym;           /* (bcap) BPE symbols of one word */
	uint64_t *rk;            /* (bcap) rank << 32 | merged id of (sym[i], sym[i+1]) */
	int32_t *prev, *next;    /* (bcap) heap merge: neighbours */
	uint64_t *heap;          /* (bcap * 2) rank << 32 | position */
	size_t bcap;
};

/* ---- the byte-level alphabet ------------------------------------------ */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the others (controls, space, 0x7f-0xa0, 0xad) for U+0100 upwards, so that
 * every byte is a visible character in vocab.json. */
static uint32_t byte_char[256];
static int16_t char_byte[324]; /* inverse, -1 when not in the alphabet */

static void alphabet_init(void)
{
	static int done;
	if (done) return;
	uint32_t extra = 256;
	for (int c = 0; c < 324; c++) char_byte[c] = -1;
	for (int b = 0; b < 256; b++) {
		int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
		byte_char[b] = printable ? (uint32_t)b : extra++;
		char_byte[byte_char[b]] = (int16_t)b;
	}
	done = 1;
}

/* Decode one UTF-8 sequence of valid UTF-8 s (at least one byte left). */
static inline uint32_t utf8_next(const unsigned char *s, size_t *i)
{
	uint32_t c = s[*i];
	if (c < 0x80) {
		*i += 1;
		return c;
	}
	if (c < 0xe0) {
		c = (c & 0x1f) << 6 | (s[*i + 1] & 0x3f);
		*i += 2;
	} else if (c < 0xf0) {
		c = (c & 0x0f) << 12 | (uint32_t)(s[*i + 1] & 0x3f) << 6 | (s[*i + 2] & 0x3f);
		*i += 3;
	} else {
		c = (c & 0x07) << 18 | (uint32_t)(s[*i + 1] & 0x3f) << 12 |
		    (uint32_t)(s[*i + 2] & 0x3f) << 6 | (s[*i + 3] & 0x3f);
		*i += 4;
	}
	return c;
}

/* A vocab string in the byte-level alphabet -> the bytes it stands for, in
 * out (at least n bytes). Returns the length, or -1 when a character is not
 * in the alphabet. s is valid UTF-8 (libjq made it). */
static long alphabet_decode(const char *s, size_t n, char *out)
{
	size_t i = 0;
	long k = 0;
	while (i < n) {
		uint32_t c = utf8_next((const unsigned char *)s, &i);
		if (c >= 324 || char_byte[c] < 0) return -1;
		out[k++] = (char)char_byte[c];
	}
	return k;
}

/* ---- merge ranks ------------------------------------------------------- */

static inline uint64_t merge_hash(uint64_t key, int shift)
{
	return (key * 0x9E3779B97F4A7C15ull) >> shift;
}

/* rank << 32 | merged id, or NO_MERGE. */
static inline uint64_t merge_find(const tokenizer *t, uint32_t a, uint32_t b)
{
	uint64_t key = (uint64_t)a << 32 | b;
	for (uint64_t h = merge_hash(key, t->merge_shift);; h = (h + 1) & t->merge_mask) {
		const struct merge_slot *s = &t->merges[h];
		if (s->key == key) return (uint64_t)s->rank << 32 | s->id;
		if (s->key == NO_MERGE) return NO_MERGE;
	}
}

/* Later duplicates win, as in tokenizers (its merge map is collected from
 * the list in order). */
static void merge_put(tokenizer *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t id)
{
	uint64_t key = (uint64_t)a << 32 | b;
	uint64_t h = merge_hash(key, t->merge_shift);
	while (t->merges[h].key != NO_MERGE && t->merges[h].key != key) h = (h + 1) & t->merge_mask;
	t->merges[h] = (struct merge_slot){key, rank, id};
}

/* ---- loading: the vocabulary's bytes -> id, used while loading only ---- */

struct vocab_map {
	uint32_t *slot; /* id, or NO_ID */
	uint64_t mask;
	const tokenizer *t;
};

static uint64_t bytes_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* Returns the slot where s is, or the empty slot where it would go. */
static uint32_t *vocab_slot(struct vocab_map *m, const char *s, size_t n)
{
	for (uint64_t h = bytes_hash(s, n) & m->mask;; h = (h + 1) & m->mask) {
		uint32_t id = m->slot[h];
		if (id == NO_ID) return &m->slot[h];
		const tokenizer *t = m->t;
		if (t->dec_len[id] == n && memcmp(t->dec_ptr[id], s, n) == 0)
			return &m->slot[h];
	}
}

/* ---- loading: checking the JSON ---------------------------------------- */

/* The exact Split pattern of Qwen2 / Qwen2.5 / DeepSeek-R1-Distill-Qwen;
 * pretok_next implements it and nothing else. */
static const char qwen_pattern[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
	" ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	if (vasprintf(&s, f, ap) < 0) s = NULL;
	va_end(ap);
	if (!s) check_fail_errno(__FILE__, __LINE__, "vasprintf");
	return s;
}

/* obj[key], borrowed obj; returns owned (invalid when absent). */
static jv get(jv obj, const char *key)
{
	if (jv_get_kind(obj) != JV_KIND_OBJECT) return jv_invalid();
	return jv_object_get(jv_copy(obj), jv_string(key));
}

/* The "type" string of obj (borrowed), or "none" when there is none.
 * Copied into buf. */
static const char *type_of(jv obj, char *buf, size_t n)
{
	jv ty = get(obj, "type");
	snprintf(buf, n, "%s", jv_get_kind(ty) == JV_KIND_STRING ? jv_string_value(ty) : "none");
	jv_free(ty);
	return buf;
}

/* obj[key] is absent, null, false or "". */
static int is_off(jv obj, const char *key)
{
	jv v = get(obj, key);
	jv_kind k = jv_get_kind(v);
	int off = k == JV_KIND_INVALID || k == JV_KIND_NULL || k == JV_KIND_FALSE ||
		  (k == JV_KIND_STRING && jv_string_length_bytes(jv_copy(v)) == 0);
	jv_free(v);
	return off;
}

static int is_true(jv obj, const char *key)
{
	jv v = get(obj, key);
	int r = jv_get_kind(v) == JV_KIND_TRUE;
	jv_free(v);
	return r;
}

static int is_false(jv obj, const char *key)
{
	jv v = get(obj, key);
	int r = jv_get_kind(v) == JV_KIND_FALSE;
	jv_free(v);
	return r;
}

/* The normalizer: none, NFC, or a Sequence of those. Sets t->nfc. */
static char *check_normalizer(tokenizer *t, jv n)
{
	char ty[64];
	if (jv_get_kind(n) == JV_KIND_NULL || jv_get_kind(n) == JV_KIND_INVALID) return NULL;
	type_of(n, ty, sizeof ty);
	if (strcmp(ty, "NFC") == 0) {
		t->nfc = 1;
		return NULL;
	}
	if (strcmp(ty, "Sequence") == 0) {
		jv list = get(n, "normalizers");
		char *err = NULL;
		if (jv_get_kind(list) != JV_KIND_ARRAY) err = fmt("normalizer: Sequence without a list");
		for (int i = 0; !err && i < jv_array_length(jv_copy(list)); i++) {
			jv e = jv_array_get(jv_copy(list), i);
			if (strcmp(type_of(e, ty, sizeof ty), "NFC") == 0 && !t->nfc) t->nfc = 1;
			else err = fmt("normalizer: \"%s\" in a Sequence is not supported (only one NFC)", ty);
			jv_free(e);
		}
		jv_free(list);
		return err;
	}
	return fmt("normalizer \"%s\" is not supported (only NFC or none)", ty);
}

static char *check_pre_tokenizer(jv p)
{
	char ty[64];
	if (strcmp(type_of(p, ty, sizeof ty), "Sequence") != 0)
		return fmt("pre_tokenizer \"%s\" is not supported (only Qwen2's Sequence of "
			   "Split and ByteLevel)", ty);
	jv list = get(p, "pretokenizers");
	char *err = NULL;
	if (jv_get_kind(list) != JV_KIND_ARRAY || jv_array_length(jv_copy(list)) != 2) {
		err = fmt("pre_tokenizer: a Sequence other than [Split, ByteLevel] is not supported");
		goto out;
	}
	jv split = jv_array_get(jv_copy(list), 0), bl = jv_array_get(jv_copy(list), 1);
	jv pat = get(split, "pattern");
	jv re = get(pat, "Regex"), beh = get(split, "behavior");
	if (strcmp(type_of(split, ty, sizeof ty), "Split") != 0)
		err = fmt("pre_tokenizer: \"%s\" is not supported (only Split then ByteLevel)", ty);
	else if (jv_get_kind(re) != JV_KIND_STRING || strcmp(jv_string_value(re), qwen_pattern) != 0)
		err = fmt("pre_tokenizer: the Split pattern is not Qwen2's regex; other patterns "
			  "are not supported");
	else if (jv_get_kind(beh) != JV_KIND_STRING || strcmp(jv_string_value(beh), "Isolated") != 0)
		err = fmt("pre_tokenizer: Split behavior other than \"Isolated\" is not supported");
	else if (!is_off(split, "invert"))
		err = fmt("pre_tokenizer: Split with invert is not supported");
	else if (strcmp(type_of(bl, ty, sizeof ty), "ByteLevel") != 0)
		err = fmt("pre_tokenizer: \"%s\" after Split is not supported (only ByteLevel)", ty);
	else if (!is_off(bl, "add_prefix_space"))
		err = fmt("pre_tokenizer: ByteLevel with add_prefix_space is not supported");
	else if (!is_false(bl, "use_regex"))
		err = fmt("pre_tokenizer: ByteLevel with use_regex (GPT-2's split) is not supported");
	jv_free(split);
	jv_free(bl);
	jv_free(pat);
	jv_free(re);
	jv_free(beh);
out:
	jv_free(list);
	return err;
}

static char *check_model(jv m)
{
	char ty[64];
	if (strcmp(type_of(m, ty, sizeof ty), "BPE") != 0)
		return fmt("model \"%s\" is not supported (only BPE)", ty);
	if (!is_off(m, "byte_fallback")) return fmt("model: BPE with byte_fallback is not supported");
	if (!is_off(m, "dropout")) return fmt("model: BPE with dropout is not supported");
	if (!is_off(m, "ignore_merges")) return fmt("model: BPE with ignore_merges is not supported");
	if (!is_off(m, "continuing_subword_prefix"))
		return fmt("model: BPE with a continuing_subword_prefix is not supported");
	if (!is_off(m, "end_of_word_suffix"))
		return fmt("model: BPE with an end_of_word_suffix is not supported");
	return NULL;
}

/* An id from a JSON number, or NO_ID when it is not a small integer. */
static uint32_t as_id(jv v)
{
	if (jv_get_kind(v) != JV_KIND_NUMBER) return NO_ID;
	double d = jv_number_value(v);
	if (d < 0 || d >= 1 << 30 || d != (double)(uint32_t)d) return NO_ID;
	return (uint32_t)d;
}

/* as_id of obj[key]; borrows obj. */
static uint32_t get_id(jv obj, const char *key)
{
	jv v = get(obj, key);
	uint32_t id = as_id(v);
	jv_free(v);
	return id;
}

/* ByteLevel decoding of a token's text, as tokenizers' decode_chain does
 * it: mapped through the alphabet when every character is in it, else its
 * UTF-8 as is. Writes at most n bytes into out; returns the length. */
static size_t decode_text(const char *s, size_t n, char *out)
{
	long k = alphabet_decode(s, n, out);
	if (k >= 0) return (size_t)k;
	memcpy(out, s, n);
	return n;
}

/* NFC of s[0..n) as an owned C string, or NULL when utf8proc refuses. */
static char *nfc_dup(const char *s, size_t n, size_t *len)
{
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
					  UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (k < 0) return NULL;
	*len = (size_t)k;
	return (char *)dst;
}

struct id_content {
	uint32_t id;
	int index;
};

static int id_content_cmp(const void *a, const void *b)
{
	const struct id_content *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* tokenizers does not take the ids of added_tokens from the file: it adds
 * the tokens in the order of those ids and gives each the id of the model
 * token with the same text, or the next free id after the vocabulary
 * (AddedVocabulary::add_tokens), and only logs a warning when that differs.
 * A file whose ids are not the ones tokenizers gives would encode
 * differently from what it says: refuse it. Borrows vocab and added. */
static char *check_added_ids(jv vocab, jv added, size_t n_vocab)
{
	int n = jv_get_kind(added) == JV_KIND_ARRAY ? jv_array_length(jv_copy(added)) : 0;
	if (n == 0) return NULL;
	struct id_content *order = xmalloc((size_t)n * sizeof *order);
	for (int i = 0; i < n; i++) {
		jv a = jv_array_get(jv_copy(added), i);
		order[i] = (struct id_content){get_id(a, "id"), i};
		jv_free(a);
	}
	qsort(order, (size_t)n, sizeof *order, id_content_cmp);
	jv given = jv_object(); /* content -> id given so far */
	int64_t max = -1;
	char *err = NULL;
	for (int k = 0; k < n && !err; k++) {
		jv a = jv_array_get(jv_copy(added), order[k].index);
		jv content = get(a, "content");
		jv have = jv_object_get(jv_copy(given), jv_copy(content));
		if (!jv_is_valid(have)) {
			jv_free(have);
			have = jv_object_get(jv_copy(vocab), jv_copy(content));
		}
		uint32_t want;
		if (jv_is_valid(have)) want = as_id(have);
		else if (max < 0 || max < (int64_t)n_vocab) want = (uint32_t)n_vocab;
		else want = (uint32_t)max + 1;
		if (want != order[k].id)
			err = fmt("added_tokens: \"%s\" has id %u, but tokenizers would give it %u",
				  jv_string_value(content), order[k].id, want);
		if ((int64_t)want > max) max = want;
		given = jv_object_set(given, jv_copy(content), jv_number(want));
		jv_free(have);
		jv_free(content);
		jv_free(a);
	}
	jv_free(given);
	free(order);
	return err;
}

static int added_cmp(const void *a, const void *b)
{
	const struct added *x = a, *y = b;
	if (x->len != y->len) return x->len < y->len ? 1 : -1;
	return memcmp(x->text, y->text, x->len);
}

/* The post-processor only adds special tokens (BOS, EOS) when asked to,
 * and ids here are those of encode(text, add_special_tokens=False), the
 * chat template placing every special token itself; so the kinds that do
 * nothing else are accepted, and an unknown kind is refused rather than
 * guessed at. */
static char *check_post_processor(jv p)
{
	char ty[64];
	type_of(p, ty, sizeof ty);
	if (jv_get_kind(p) == JV_KIND_INVALID || jv_get_kind(p) == JV_KIND_NULL) return NULL;
	static const char *const known[] = {"ByteLevel", "TemplateProcessing", "RobertaProcessing", "BertProcessing"};
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (!strcmp(ty, known[i])) return NULL;
	if (!strcmp(ty, "Sequence")) {
		jv list = get(p, "processors");
		char *err = NULL;
		int n = jv_get_kind(list) == JV_KIND_ARRAY ? jv_array_length(jv_copy(list)) : -1;
		if (n < 0) err = fmt("post_processor: Sequence without a list");
		for (int i = 0; i < n && !err; i++) {
			jv one = jv_array_get(jv_copy(list), i);
			if (!strcmp(type_of(one, ty, sizeof ty), "Sequence")) err = fmt("post_processor: a nested Sequence is not supported");
			else err = check_post_processor(one);
			jv_free(one);
		}
		jv_free(list);
		return err;
	}
	return fmt("post_processor \"%s\" is not supported", ty);
}

/* Everything from the parsed JSON root (borrowed) into t. */
static char *load_json(tokenizer *t, jv root)
{
	char *err = NULL;
	jv model = get(root, "model"), vocab = get(model, "vocab"), merges = get(model, "merges");
	jv added = get(root, "added_tokens"), norm = get(root, "normalizer");
	jv pre = get(root, "pre_tokenizer"), dec = get(root, "decoder"), post = get(root, "post_processor");
	jv trunc = get(root, "truncation"), pad = get(root, "padding");
	struct vocab_map vm = {0};
	char ty[64];

	if (jv_get_kind(root) != JV_KIND_OBJECT) {
		err = fmt("not a tokenizer.json (not a JSON object)");
		goto out;
	}
	if (jv_get_kind(model) != JV_KIND_OBJECT) {
		err = fmt("no \"model\" object");
		goto out;
	}
	if ((err = check_model(model)) || (err = check_normalizer(t, norm)) ||
	    (err = check_pre_tokenizer(pre)) || (err = check_post_processor(post)))
		goto out;
	if (strcmp(type_of(dec, ty, sizeof ty), "ByteLevel") != 0) {
		err = fmt("decoder \"%s\" is not supported (only ByteLevel)", ty);
		goto out;
	}
	if (jv_get_kind(trunc) != JV_KIND_NULL && jv_get_kind(trunc) != JV_KIND_INVALID) {
		err = fmt("truncation is set; it is not supported");
		goto out;
	}
	if (jv_get_kind(pad) != JV_KIND_NULL && jv_get_kind(pad) != JV_KIND_INVALID) {
		err = fmt("padding is set; it is not supported");
		goto out;
	}
	if (jv_get_kind(vocab) != JV_KIND_OBJECT) {
		err = fmt("model: no \"vocab\" object");
		goto out;
	}
	if (jv_get_kind(merges) != JV_KIND_ARRAY) {
		err = fmt("model: no \"merges\" list");
		goto out;
	}
	if (jv_get_kind(added) != JV_KIND_ARRAY && jv_get_kind(added) != JV_KIND_NULL &&
	    jv_get_kind(added) != JV_KIND_INVALID) {
		err = fmt("\"added_tokens\" is not a list");
		goto out;
	}
	int n_added = jv_get_kind(added) == JV_KIND_ARRAY ? jv_array_length(jv_copy(added)) : 0;

	/* Sizes first: the largest id and the bytes of all model tokens. */
	uint32_t max_id = 0;
	size_t dec_bytes = 0, n_vocab = 0;
	jv_object_foreach(vocab, key, val) {
		uint32_t id = as_id(val);
		if (id == NO_ID && !err)
			err = fmt("model.vocab: \"%s\" has no valid id", jv_string_value(key));
		if (id != NO_ID && id > max_id) max_id = id;
		dec_bytes += (size_t)jv_string_length_bytes(key);
		n_vocab++;
		jv_free(val);
	}
	if (err) goto out;
	if (n_vocab == 0) {
		err = fmt("model.vocab is empty");
		goto out;
	}
	for (int i = 0; i < n_added; i++) {
		jv a = jv_array_get(jv_copy(added), i);
		jv content = get(a, "content");
		uint32_t k = get_id(a, "id");
		if (k == NO_ID || jv_get_kind(content) != JV_KIND_STRING ||
		    jv_string_length_bytes(jv_copy(content)) == 0)
			err = fmt("added_tokens[%d]: no valid id and content", i);
		else if (is_true(a, "lstrip") || is_true(a, "rstrip") || is_true(a, "single_word"))
			err = fmt("added_tokens[%d] \"%s\": lstrip, rstrip and single_word are not "
				  "supported", i, jv_string_value(content));
		else if (k > max_id)
			max_id = k;
		jv_free(content);
		jv_free(a);
		if (err) goto out;
	}
	t->n_ids = max_id + 1;
	t->dec_ptr = xcalloc(t->n_ids, sizeof *t->dec_ptr);
	t->dec_len = xcalloc(t->n_ids, sizeof *t->dec_len);
	t->id_kind = xcalloc(t->n_ids, 1);
	t->dec = xmalloc(dec_bytes + 1);

	/* Model tokens: the bytes each stands for. */
	size_t pos = 0;
	jv_object_foreach(vocab, key, val) {
		uint32_t id = as_id(val);
		long k = alphabet_decode(jv_string_value(key), (size_t)jv_string_length_bytes(jv_copy(key)),
					 t->dec + pos);
		if (err) {
		} else if (t->id_kind[id]) {
			err = fmt("model.vocab: id %u appears twice", id);
		} else if (k < 0) {
			err = fmt("model.vocab: \"%s\" is not in the byte-level alphabet",
				  jv_string_value(key));
		} else {
			t->id_kind[id] = 1;
			t->dec_ptr[id] = t->dec + pos;
			t->dec_len[id] = (uint32_t)k;
			pos += (size_t)k;
		}
		jv_free(key);
		jv_free(val);
	}
	if (err) goto out;

	/* bytes -> id, to resolve the merges. */
	size_t cap = 16;
	while (cap < n_vocab * 2) cap *= 2;
	vm.slot = xmalloc(cap * sizeof *vm.slot);
	memset(vm.slot, 0xff, cap * sizeof *vm.slot);
	vm.mask = cap - 1;
	vm.t = t;
	for (uint32_t id = 0; id <= max_id; id++) {
		if (t->id_kind[id] != 1) continue;
		uint32_t *s = vocab_slot(&vm, t->dec_ptr[id], t->dec_len[id]);
		if (*s != NO_ID) {
			err = fmt("model.vocab: ids %u and %u stand for the same bytes", *s, id);
			goto out;
		}
		*s = id;
	}
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		t->byte_id[b] = *vocab_slot(&vm, &c, 1);
		if (t->byte_id[b] == NO_ID) {
			err = fmt("model.vocab: byte 0x%02x has no token, so not every text can be "
				  "encoded", b);
			goto out;
		}
	}

	/* Merges: "a b" strings or ["a", "b"] pairs; rank = place in the list. */
	int n_merges = jv_array_length(jv_copy(merges));
	cap = 16;
	while (cap < (size_t)n_merges * 2) cap *= 2;
	t->merges = xmalloc(cap * sizeof *t->merges);
	for (size_t i = 0; i < cap; i++) t->merges[i].key = NO_MERGE;
	t->merge_mask = cap - 1;
	t->merge_shift = 64 - __builtin_ctzll(cap);
	char *buf = NULL;
	size_t buf_cap = 0;
	for (int i = 0; i < n_merges && !err; i++) {
		jv m = jv_array_get(jv_copy(merges), i);
		const char *part[2] = {0, 0};
		size_t plen[2] = {0, 0};
		jv p0 = jv_invalid(), p1 = jv_invalid();
		if (jv_get_kind(m) == JV_KIND_STRING) {
			const char *s = jv_string_value(m);
			size_t n = (size_t)jv_string_length_bytes(jv_copy(m));
			const char *sp = memchr(s, ' ', n);
			if (sp && !memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) {
				part[0] = s, plen[0] = (size_t)(sp - s);
				part[1] = sp + 1, plen[1] = n - plen[0] - 1;
			}
		} else if (jv_get_kind(m) == JV_KIND_ARRAY && jv_array_length(jv_copy(m)) == 2) {
			p0 = jv_array_get(jv_copy(m), 0);
			p1 = jv_array_get(jv_copy(m), 1);
			if (jv_get_kind(p0) == JV_KIND_STRING && jv_get_kind(p1) == JV_KIND_STRING) {
				part[0] = jv_string_value(p0);
				plen[0] = (size_t)jv_string_length_bytes(jv_copy(p0));
				part[1] = jv_string_value(p1);
				plen[1] = (size_t)jv_string_length_bytes(jv_copy(p1));
			}
		}
		if (!part[0]) {
			err = fmt("model.merges[%d]: not \"a b\" nor [\"a\", \"b\"]", i);
		} else {
			if (buf_cap < plen[0] + plen[1]) {
				buf_cap = (plen[0] + plen[1]) * 2;
				buf = xrealloc(buf, buf_cap);
			}
			long k0 = alphabet_decode(part[0], plen[0], buf);
			long k1 = k0 < 0 ? -1 : alphabet_decode(part[1], plen[1], buf + k0);
			uint32_t a = k0 < 0 ? NO_ID : *vocab_slot(&vm, buf, (size_t)k0);
			uint32_t b = k1 < 0 ? NO_ID : *vocab_slot(&vm, buf + k0, (size_t)k1);
			uint32_t ab = k1 < 0 ? NO_ID : *vocab_slot(&vm, buf, (size_t)(k0 + k1));
			if (a == NO_ID || b == NO_ID)
				err = fmt("model.merges[%d]: a token of \"%.*s %.*s\" is not in the vocab",
					  i, (int)plen[0], part[0], (int)plen[1], part[1]);
			else if (ab == NO_ID)
				err = fmt("model.merges[%d]: the merge of \"%.*s %.*s\" is not in the vocab",
					  i, (int)plen[0], part[0], (int)plen[1], part[1]);
			else
				merge_put(t, a, b, (uint32_t)i, ab);
		}
		jv_free(p0);
		jv_free(p1);
		jv_free(m);
	}
	free(buf);
	if (err) goto out;

	if ((err = check_added_ids(vocab, added, n_vocab))) goto out;

	/* Added tokens: matched as they are (normalized=false) or after NFC
	 * (normalized=true; the pattern is NFC'd too, as tokenizers'
	 * AddedVocabulary does). */
	t->added = xcalloc((size_t)n_added + 1, sizeof *t->added);
	for (int i = 0; i < n_added && !err; i++) {
		jv a = jv_array_get(jv_copy(added), i);
		jv content = get(a, "content");
		uint32_t id = get_id(a, "id");
		const char *s = jv_string_value(content);
		size_t n = (size_t)jv_string_length_bytes(jv_copy(content));
		struct added *x = &t->added[t->n_added++];
		/* tokenizers' default for a missing "normalized" is !special */
		x->special = is_true(a, "special");
		x->normalized = t->nfc && (is_true(a, "normalized") ||
					   (!x->special && !is_false(a, "normalized")));
		x->id = id;
		x->text = x->normalized ? nfc_dup(s, n, &x->len) : NULL;
		if (!x->normalized) {
			x->text = xmalloc(n + 1);
			memcpy(x->text, s, n + 1);
			x->len = n;
		}
		x->dec = xmalloc(n + 1);
		x->dec_len = decode_text(s, n, x->dec);
		if (!x->text || x->len == 0) {
			err = fmt("added_tokens[%d]: cannot be normalized", i);
		} else if (t->id_kind[id] >= 2) {
			err = fmt("added_tokens: id %u appears twice", id);
		} else {
			/* decoded as its content even when it is a model token too,
			 * as tokenizers' decode looks added tokens up first */
			t->dec_ptr[id] = x->dec;
			t->dec_len[id] = (uint32_t)x->dec_len;
			t->id_kind[id] = x->special ? 3 : 2;
			t->added_first[x->normalized][(unsigned char)x->text[0]] = 1;
		}
		jv_free(content);
		jv_free(a);
	}
	if (err) goto out;
	/* sorted longest first, so the first that matches is the longest */
	qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
	/* the bytes map kept for tokenizer_token_id, with the added tokens in
	 * it: a model's output names them by their text */
	for (uint32_t id = 0; id < t->n_ids; id++)
		if (t->id_kind[id] >= 2) *vocab_slot(&vm, t->dec_ptr[id], t->dec_len[id]) = id;
	t->by_bytes = vm.slot;
	t->by_bytes_mask = vm.mask;
	vm.slot = NULL;
out:
	free(vm.slot);
	jv_free(model);
	jv_free(vocab);
	jv_free(merges);
	jv_free(added);
	jv_free(norm);
	jv_free(pre);
	jv_free(dec);
	jv_free(post);
	jv_free(trunc);
	jv_free(pad);
	return err;
}

/* ---- loading: the whole ------------------------------------------------ */


tokenizer *tokenizer_load(const char *path, char **err)
{
	alphabet_init();
	size_t n;
	char *text = zreader_slurp(path, &n, err);
	if (!text) return NULL;
	if (n > 0x7fffffff) {
		free(text);
		*err = fmt("%s: too large for a tokenizer.json", path);
		return NULL;
	}
	/* lib/json.c, not libjq's parser: libjq 1.6 leaks on some malformed
	 * input (found by tests/fuzz/fuzz_tokjson.c). */
	size_t at;
	const char *jwhy;
	jv root = json_parse(text, n, &at, &jwhy);
	free(text);
	if (!jv_is_valid(root)) {
		*err = fmt("%s: not valid JSON (byte %zu: %s)", path, at + 1, jwhy ? jwhy : "?");
		return NULL;
	}
	tokenizer *t = xcalloc(1, sizeof *t);
	t->heap_min = 64;
	char *why = load_json(t, root);
	jv_free(root);
	if (why) {
		*err = fmt("%s: %s", path, why);
		free(why);
		tokenizer_free(t);
		return NULL;
	}
	return t;
}

void tokenizer_free(tokenizer *t)
{
	if (!t) return;
	for (size_t i = 0; i < t->n_added; i++) {
		free(t->added[i].text);
		free(t->added[i].dec);
	}
	free(t->added);
	free(t->by_bytes);
	free(t->merges);
	free(t->dec_ptr);
	free(t->dec_len);
	free(t->id_kind);
	free(t->dec);
	free(t);
}

uint32_t tokenizer_vocab_size(const tokenizer *t) { return t->n_ids; }

uint32_t tokenizer_token_id(const tokenizer *t, const char *s, size_t n)
{
	struct vocab_map m = {t->by_bytes, t->by_bytes_mask, t};
	return *vocab_slot(&m, s, n);
}

void tokenizer_set_heap_threshold(tokenizer *t, size_t bytes) { t->heap_min = bytes; }

/* ---- scratch ----------------------------------------------------------- */

static void scratch_cps(tokenizer_scratch *s, size_t n)
{
	if (n <= s->cap) return;
	size_t cap = n < 256 ? 256 : n + n / 2;
	s->cp = xrealloc(s->cp, (cap + 1) * sizeof *s->cp);
	s->off = xrealloc(s->off, (cap + 1) * sizeof *s->off);
	s->cls = xrealloc(s->cls, cap + 1);
	s->cap = cap;
}

static void scratch_syms(tokenizer_scratch *s, size_t n)
{
	if (n <= s->bcap) return;
	size_t cap = n < 256 ? 256 : n + n / 2;
	s->sym = xrealloc(s->sym, cap * sizeof *s->sym);
	s->rk = xrealloc(s->rk, cap * sizeof *s->rk);
	s->prev = xrealloc(s->prev, cap * sizeof *s->prev);
	s->next = xrealloc(s->next, cap * sizeof *s->next);
	s->heap = xrealloc(s->heap, 3 * cap * sizeof *s->heap);
	s->bcap = cap;
}

static inline void ids_push(tokenizer_ids *o, uint32_t id)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 1024;
		o->ids = xrealloc(o->ids, o->cap * sizeof *o->ids);
	}
	o->ids[o->n++] = id;
}

void tokenizer_ids_clear(tokenizer_ids *out) { out->n = 0; }

void tokenizer_ids_free(tokenizer_ids *out)
{
	tokenizer_scratch *s = out->scratch;
	if (s) {
		free(s->cp);
		free(s->off);
		free(s->cls);
		free(s->sym);
		free(s->rk);
		free(s->prev);
		free(s->next);
		free(s->heap);
		free(s);
	}
	free(out->ids);
	*out = (tokenizer_ids){0};
}

/* ---- BPE --------------------------------------------------------------- */

/* Merge the bytes w[0..n) and append the ids. tokenizers' Word::merge_all
 * pops the pair of lowest (rank, position) from a heap until none is left;
 * for short words rescanning the pairs for the lowest is the same order and
 * faster. */
static void bpe_word(const tokenizer *t, tokenizer_scratch *s, const unsigned char *w, size_t n,
		     tokenizer_ids *out)
{
	if (n == 1) {
		ids_push(out, t->byte_id[w[0]]);
		return;
	}
	scratch_syms(s, n);
	uint32_t *sym = s->sym;
	for (size_t i = 0; i < n; i++) sym[i] = t->byte_id[w[i]];

	if (n < t->heap_min) {
		uint64_t *rk = s->rk;
		size_t m = n;
		for (size_t i = 0; i + 1 < m; i++) rk[i] = merge_find(t, sym[i], sym[i + 1]);
		for (;;) {
			uint64_t best = NO_MERGE;
			size_t k = 0;
			for (size_t i = 0; i + 1 < m; i++)
				if (rk[i] < best) best = rk[i], k = i;
			if (best == NO_MERGE) break;
			sym[k] = (uint32_t)best;
			/* symbol k+1 goes, and with it pair k+1 */
			if (k + 2 < m) {
				memmove(sym + k + 1, sym + k + 2, (m - k - 2) * sizeof *sym);
				memmove(rk + k + 1, rk + k + 2, (m - k - 2) * sizeof *rk);
			}
			m--;
			if (k > 0) rk[k - 1] = merge_find(t, sym[k - 1], sym[k]);
			if (k + 1 < m) rk[k] = merge_find(t, sym[k], sym[k + 1]);
		}
		for (size_t i = 0; i < m; i++) ids_push(out, sym[i]);
		return;
	}

	/* The heap: rank << 32 | position, smallest on top. */
	int32_t *prev = s->prev, *next = s->next;
	uint64_t *h = s->heap;
	size_t hn = 0;
#define HEAP_PUSH(x)                                                   \
	do {                                                           \
		size_t c_ = hn++;                                      \
		uint64_t v_ = (x);                                     \
		while (c_ > 0 && h[(c_ - 1) / 2] > v_) {               \
			h[c_] = h[(c_ - 1) / 2];                       \
			c_ = (c_ - 1) / 2;                             \
		}                                                      \
		h[c_] = v_;                                            \
	} while (0)
	for (size_t i = 0; i < n; i++) {
		prev[i] = (int32_t)i - 1;
		next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		uint64_t r = merge_find(t, sym[i], sym[i + 1]);
		if (r != NO_MERGE) HEAP_PUSH((r >> 32) << 32 | i);
	}
	while (hn > 0) {
		uint64_t top = h[0], last = h[--hn];
		size_t c = 0;
		for (;;) { /* sift last down from the root */
			size_t l = 2 * c + 1;
			if (l >= hn) break;
			if (l + 1 < hn && h[l + 1] < h[l]) l++;
			if (h[l] >= last) break;
			h[c] = h[l];
			c = l;
		}
		if (hn > 0) h[c] = last;

		uint32_t pos = (uint32_t)top, rank = (uint32_t)(top >> 32);
		if (sym[pos] == NO_ID || next[pos] < 0) continue;
		int32_t nx = next[pos];
		uint64_t r = merge_find(t, sym[pos], sym[nx]);
		if (r == NO_MERGE || (uint32_t)(r >> 32) != rank) continue; /* stale */
		sym[pos] = (uint32_t)r;
		sym[nx] = NO_ID;
		next[pos] = next[nx];
		if (next[nx] >= 0) prev[next[nx]] = (int32_t)pos;
		if (prev[pos] >= 0) {
			uint64_t r2 = merge_find(t, sym[prev[pos]], sym[pos]);
			if (r2 != NO_MERGE) HEAP_PUSH((r2 >> 32) << 32 | (uint32_t)prev[pos]);
		}
		if (next[pos] >= 0) {
			uint64_t r2 = merge_find(t, sym[pos], sym[next[pos]]);
			if (r2 != NO_MERGE) HEAP_PUSH((r2 >> 32) << 32 | pos);
		}
	}
#undef HEAP_PUSH
	for (int32_t i = 0; i >= 0; i = next[i]) ids_push(out, sym[i]);
}

/* ---- the pre-tokenizer: Qwen2's regex --------------------------------- */

enum { C_L = 1, C_N = 2, C_WS = 4, C_NL = 8 };

/* \p{L}, \p{N}, \s (Unicode White_Space, as Oniguruma's \s; checked
 * against tokenizers for every code point) and [\r\n]. */
static inline uint8_t classify(uint32_t c)
{
	if (c < 128) {
		if (c == '\r' || c == '\n') return C_WS | C_NL;
		if (c == ' ' || (c >= 9 && c <= 12)) return C_WS;
		if ((c | 32) >= 'a' && (c | 32) <= 'z') return C_L;
		if (c >= '0' && c <= '9') return C_N;
		return 0;
	}
	switch (c) {
	case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f:
	case 0x3000:
		return C_WS;
	}
	if (c >= 0x2000 && c <= 0x200a) return C_WS;
	switch (utf8proc_category((utf8proc_int32_t)c)) {
	case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
		return C_L;
	case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
		return C_N;
	default:
		return 0;
	}
}

/* Case-insensitive letter of a contraction: ASCII, and U+017F LONG S,
 * which Unicode case folding makes an 's' (tokenizers agrees). */
static inline uint32_t fold(uint32_t c)
{
	if (c == 0x17f) return 's';
	return c < 128 ? (c | 32) : 0;
}

/* End of the match that starts at code point i of cp/cls[0..n), trying the
 * alternatives in order, as a backtracking engine does:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * Some alternative always matches, and never empty. */
static size_t pretok_next(const uint32_t *cp, const uint8_t *cls, size_t i, size_t n)
{
	if (cp[i] == '\'' && i + 1 < n) {
		uint32_t a = fold(cp[i + 1]), b = i + 2 < n ? fold(cp[i + 2]) : 0;
		if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
		if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
			return i + 3;
	}
	size_t j = i;
	if (cls[i] & C_L) {
		while (++j < n && (cls[j] & C_L)) {}
		return j;
	}
	if (!(cls[i] & (C_NL | C_N)) && i + 1 < n && (cls[i + 1] & C_L)) {
		j = i + 1;
		while (++j < n && (cls[j] & C_L)) {}
		return j;
	}
	if (cls[i] & C_N) return i + 1;
	/* ` ?[^\s\p{L}\p{N}]+[\r\n]*` */
	if (cp[i] == ' ' && i + 1 < n && !cls[i + 1]) j = i + 1;
	if (!cls[j]) {
		while (++j < n && !cls[j]) {}
		while (j < n && (cls[j] & C_NL)) j++;
		return j;
	}
	/* whitespace: the run is [i, q) */
	size_t q = i, last_nl = n;
	while (q < n && (cls[q] & C_WS)) {
		if (cls[q] & C_NL) last_nl = q;
		q++;
	}
	if (last_nl < n) return last_nl + 1;  /* \s*[\r\n]+ backs off to the last newline */
	if (q == n || q - i == 1) return q;   /* \s+(?!\S) at the end, or \s+ */
	return q - 1;                         /* \s+(?!\S) leaves one before a non-space */
}

/* Pre-tokenize the normalized text s[0..n) and merge each piece. */
static void encode_pieces(const tokenizer *t, tokenizer_scratch *sc, const char *s, size_t n,
			  tokenizer_ids *out)
{
	if (n == 0) return;
	scratch_cps(sc, n);
	const unsigned char *u = (const unsigned char *)s;
	size_t m = 0, i = 0;
	while (i < n) {
		sc->off[m] = (uint32_t)i;
		uint32_t c = utf8_next(u, &i);
		sc->cp[m] = c;
		sc->cls[m] = classify(c);
		m++;
	}
	sc->off[m] = (uint32_t)n;
	for (size_t a = 0; a < m;) {
		size_t b = pretok_next(sc->cp, sc->cls, a, m);
		bpe_word(t, sc, u + sc->off[a], sc->off[b] - sc->off[a], out);
		a = b;
	}
}

/* ---- encoding: the whole ---------------------------------------------- */

/* The longest added token (of the normalized kind nz) at s[i..n), or NULL. */
static inline const struct added *added_at(const tokenizer *t, int nz, const char *s, size_t i,
					   size_t n)
{
	if (!t->added_first[nz][(unsigned char)s[i]]) return NULL;
	for (size_t k = 0; k < t->n_added; k++) {
		const struct added *a = &t->added[k];
		if (a->normalized == nz && a->len <= n - i && a->text[0] == s[i] &&
		    memcmp(a->text, s + i, a->len) == 0)
			return a;
	}
	return NULL;
}

/* Cut s[0..n) at the added tokens of kind nz; the pieces between go to
 * encode_pieces (nz = 1) or to encode_segment (nz = 0). */
static void encode_segment(const tokenizer *t, tokenizer_scratch *sc, const char *s, size_t n,
			   tokenizer_ids *out);

static void split_added(const tokenizer *t, tokenizer_scratch *sc, int nz, const char *s, size_t n,
			tokenizer_ids *out)
{
	size_t seg = 0, i = 0;
	while (i < n) {
		const struct added *a = added_at(t, nz, s, i, n);
		if (!a) {
			i++;
			continue;
		}
		if (nz) encode_pieces(t, sc, s + seg, i - seg, out);
		else encode_segment(t, sc, s + seg, i - seg, out);
		ids_push(out, a->id);
		i += a->len;
		seg = i;
	}
	if (nz) encode_pieces(t, sc, s + seg, n - seg, out);
	else encode_segment(t, sc, s + seg, n - seg, out);
}

/* Combining marks that utf8proc (Unicode 15) reorders or composes but that
 * tokenizers' NFC leaves alone: its crate, unicode-normalization-alignments,
 * has Unicode 9 tables, so to it these (all assigned since) are unassigned
 * starters. Found by asking tokenizers itself (NFD probes of every code
 * point that utf8proc does not find inert); the code point sweep of
 * tests/t-tokenize.sh checks the list, and would catch a utf8proc of
 * another Unicode version. */
static const uint32_t nfc_unknown[][2] = {
	{0x7fd, 0x7fd},
	{0x898, 0x89f},
	{0x8ca, 0x8d3},
	{0x9fe, 0x9fe},
	{0xc3c, 0xc3c},
	{0xd3b, 0xd3c},
	{0xeba, 0xeba},
	{0x1715, 0x1715},
	{0x1abf, 0x1ace},
	{0x1df6, 0x1dfa},
	{0xa82c, 0xa82c},
	{0x10d24, 0x10d27},
	{0x10eab, 0x10eac},
	{0x10efd, 0x10eff},
	{0x10f46, 0x10f50},
	{0x10f82, 0x10f85},
	{0x11070, 0x11070},
	{0x1133b, 0x1133b},
	{0x1145e, 0x1145e},
	{0x11839, 0x1183a},
	{0x11930, 0x11930},
	{0x11938, 0x11938},
	{0x1193d, 0x1193e},
	{0x11943, 0x11943},
	{0x119e0, 0x119e0},
	{0x11a34, 0x11a34},
	{0x11a47, 0x11a47},
	{0x11a99, 0x11a99},
	{0x11d42, 0x11d42},
	{0x11d44, 0x11d45},
	{0x11d97, 0x11d97},
	{0x11f41, 0x11f42},
	{0x16ff0, 0x16ff1},
	{0x1e08f, 0x1e08f},
	{0x1e130, 0x1e136},
	{0x1e2ae, 0x1e2ae},
	{0x1e2ec, 0x1e2ef},
	{0x1e4ec, 0x1e4ef}
};

static int is_nfc_unknown(uint32_t c)
{
	size_t lo = 0, hi = sizeof nfc_unknown / sizeof nfc_unknown[0];
	if (c < nfc_unknown[0][0]) return 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c < nfc_unknown[mid][0]) hi = mid;
		else if (c > nfc_unknown[mid][1]) lo = mid + 1;
		else return 1;
	}
	return 0;
}

/* NFC cannot change a text made only of these: no canonical decomposition,
 * combining class 0, not the second of a composition (utf8proc keeps
 * comb_index >= 0x8000 for those; Hangul jamo compose by arithmetic). */
static inline int nfc_inert(uint32_t c)
{
	if (c < 0x300) return 1;
	if (c >= 0x1100 && c < 0x1200) return 0;
	const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)c);
	return p->combining_class == 0 && p->decomp_seqindex == UINT16_MAX &&
	       (p->comb_index == UINT16_MAX || p->comb_index < 0x8000);
}

static int has_normalized_added(const tokenizer *t)
{
	for (int b = 0; b < 256; b++)
		if (t->added_first[1][b]) return 1;
	return 0;
}

/* NFC as tokenizers does it: utf8proc's, except that the nfc_unknown code
 * points stay where they are and block what is on either side, as an
 * unassigned starter does. Returns owned, its length in *len. */
static char *nfc_tokenizers(const char *s, size_t n, size_t *len)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out = NULL;
	size_t o = 0, cap = 0, part = 0, i = 0;
	while (i <= n) {
		size_t j = i;
		int cut = 0;
		if (i == n) cut = 1;
		else if (u[i] < 0xcc) j = i + 1;
		else cut = is_nfc_unknown(utf8_next(u, &j));
		if (!cut) {
			i = j;
			continue;
		}
		size_t k = 0;
		char *p = part < i ? nfc_dup(s + part, i - part, &k) : NULL;
		if (part < i && !p) check_fail_errno(__FILE__, __LINE__, "utf8proc_map");
		if (o + k + (j - i) + 1 > cap) {
			cap = (o + k + (j - i) + 1) * 2;
			out = xrealloc(out, cap);
		}
		if (p) memcpy(out + o, p, k);
		o += k;
		memcpy(out + o, s + i, j - i); /* the unknown code point itself */
		o += j - i;
		free(p);
		if (i == n) break;
		i = part = j;
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* A piece of raw text between added tokens: normalize, then go on. */
static void encode_segment(const tokenizer *t, tokenizer_scratch *sc, const char *s, size_t n,
			   tokenizer_ids *out)
{
	if (n == 0) return;
	char *norm = NULL;
	if (t->nfc) {
		/* bytes below 0xcc are ASCII, continuation bytes, or lead bytes
		 * of U+0080..U+02FF: all inert */
		const unsigned char *u = (const unsigned char *)s;
		size_t i = 0;
		while (i < n) {
			if (u[i] < 0xcc) {
				i++;
				continue;
			}
			size_t j = i;
			if (!nfc_inert(utf8_next(u, &j))) break;
			i = j;
		}
		if (i < n) {
			norm = nfc_tokenizers(s, n, &n);
			s = norm;
		}
	}
	if (has_normalized_added(t)) split_added(t, sc, 1, s, n, out);
	else encode_pieces(t, sc, s, n, out);
	free(norm);
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t n, tokenizer_ids *out,
		     size_t *bad_at)
{
	size_t bad = utf8_check(text, n);
	if (bad != n) {
		if (bad_at) *bad_at = bad;
		return -1;
	}
	if (!out->scratch) out->scratch = xcalloc(1, sizeof *out->scratch);
	split_added(t, out->scratch, 0, text, n, out);
	return 0;
}

/* ---- decoding ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[i..n), or, when there is none,
 * minus the length of its maximal subpart (Unicode 3.9, "U+FFFD
 * substitution of maximal subparts", which Rust's from_utf8_lossy and
 * Python's errors="replace" follow). */
static long utf8_seq(const unsigned char *s, size_t i, size_t n)
{
	unsigned b = s[i];
	if (b < 0x80) return 1;
	int need;
	unsigned lo = 0x80, hi = 0xbf;
	if (b >= 0xc2 && b <= 0xdf) need = 1;
	else if (b >= 0xe0 && b <= 0xef) {
		need = 2;
		if (b == 0xe0) lo = 0xa0;
		if (b == 0xed) hi = 0x9f;
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 3;
		if (b == 0xf0) lo = 0x90;
		if (b == 0xf4) hi = 0x8f;
	} else
		return -1;
	long k = 1;
	for (int j = 0; j < need; j++, k++) {
		if (i + (size_t)k >= n) return -k;
		unsigned c = s[i + (size_t)k];
		if (c < lo || c > hi) return -k;
		lo = 0x80, hi = 0xbf;
	}
	return k;
}

char *tokenizer_decode(const tokenizer *t, const uint32_t *ids, size_t n, int flags,
		       size_t *len, size_t *bad)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= t->n_ids || !t->id_kind[ids[i]]) {
			if (bad) *bad = i;
			return NULL;
		}
		total += t->dec_len[ids[i]];
	}
	char *s = xmalloc(total + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if ((flags & TOKENIZER_DECODE_SKIP_SPECIAL) && t->id_kind[ids[i]] == 3) continue;
		memcpy(s + k, t->dec_ptr[ids[i]], t->dec_len[ids[i]]);
		k += t->dec_len[ids[i]];
	}
	s[k] = '\0';
	if ((flags & TOKENIZER_DECODE_REPLACE) && utf8_check(s, k) != k) {
		/* each replacement (3 bytes) stands for at least one byte */
		char *r = xmalloc(3 * k + 1);
		size_t o = 0;
		const unsigned char *u = (const unsigned char *)s;
		for (size_t i = 0; i < k;) {
			long m = utf8_seq(u, i, k);
			if (m > 0) {
				memcpy(r + o, s + i, (size_t)m);
				o += (size_t)m;
				i += (size_t)m;
			} else {
				memcpy(r + o, "\xef\xbf\xbd", 3);
				o += 3;
				i += (size_t)-m;
			}
		}
		r[o] = '\0';
		free(s);
		s = r;
		k = o;
	}
	*len = k;
	return s;
}
