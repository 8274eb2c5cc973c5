/* tokenizer.h — the byte-level BPE tokenizer of Qwen2 / Qwen2.5 and
 * DeepSeek-R1-Distill-Qwen, exact: the same ids as Hugging Face `tokenizers`
 * (encode with add_special_tokens=False) on every input.
 *
 * tokenizer_load reads a Hugging Face tokenizer.json (plain or
 * zstd-compressed) and accepts exactly one kind: normalizer NFC (or none),
 * pre-tokenizer Sequence[Split(Qwen's regex, Isolated), ByteLevel(no prefix
 * space, no regex)], model BPE without byte fallback or dropout, decoder
 * ByteLevel, added tokens without lstrip/rstrip/single_word. Anything else
 * is refused with a message naming the part, because tokenizing it
 * approximately would poison training data silently.
 *
 * A loaded tokenizer is read-only: any number of threads may share it, each
 * with its own tokenizer_ids.
 */
#ifndef DS_TOKENIZER_H
#define DS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer;
typedef struct tokenizer_scratch tokenizer_scratch;

/* Output of tokenizer_encode, and the scratch space it reuses from call to
 * call so that encoding allocates nothing per token. Start it zeroed
 * ({0}); free with tokenizer_ids_free. ids[0..n) is owned by the struct. */
typedef struct tokenizer_ids {
	uint32_t *ids;
	size_t n, cap;
	tokenizer_scratch *scratch;
} tokenizer_ids;

/* Load path ("-" is not special). Returns owned (free with tokenizer_free),
 * or NULL with *err an owned message (free with free()). */
tokenizer *tokenizer_load(const char *path, char **err);
void tokenizer_free(tokenizer *t);

/* One more than the largest id (model vocabulary and added tokens). */
uint32_t tokenizer_vocab_size(const tokenizer *t);

/* The id of the token whose bytes are s[0..n) (an added token's: its
 * text), or UINT32_MAX when no token is. */
uint32_t tokenizer_token_id(const tokenizer *t, const char *s, size_t n);

/* Encode text[0..n) (UTF-8; NUL bytes are ordinary characters) and append
 * the ids to out. Borrows t and text. Returns 0, or -1 when text is not
 * valid UTF-8 (out->n is then unchanged and *bad_at, if not NULL, is the
 * offset of the first invalid byte). */
int tokenizer_encode(const tokenizer *t, const char *text, size_t n, tokenizer_ids *out,
		     size_t *bad_at);

/* Empty out (keeping its buffers). */
void tokenizer_ids_clear(tokenizer_ids *out);
void tokenizer_ids_free(tokenizer_ids *out);

/* Flags of tokenizer_decode. */
enum {
	/* Replace each maximal invalid UTF-8 subsequence of the result by
	 * U+FFFD, as Hugging Face's decode does (Rust from_utf8_lossy, Python
	 * errors="replace"). Without it the bytes come back exactly. */
	TOKENIZER_DECODE_REPLACE = 1,
	/* Leave out added tokens marked special (<|im_start|>, ...), as
	 * Hugging Face's skip_special_tokens=True does. */
	TOKENIZER_DECODE_SKIP_SPECIAL = 2,
};

/* Decode ids[0..n) into bytes: the ByteLevel decoder, added tokens as their
 * text. Borrows t and ids. Returns owned (free with free()), NUL-terminated
 * with its length in *len; or NULL when an id is not in the vocabulary,
 * with *bad (if not NULL) its index in ids. */
char *tokenizer_decode(const tokenizer *t, const uint32_t *ids, size_t n, int flags,
		       size_t *len, size_t *bad);

/* For tests: words (pre-tokens) of at least this many bytes are merged
 * with a heap instead of by rescanning (default 64; 0 = always the heap).
 * Both give the same ids; this lets a test check that they do. */
void tokenizer_set_heap_threshold(tokenizer *t, size_t bytes);

#endif
