/* shard.h — the token-shard stream (DESIGN.md §2), byte for byte in
 * ds-shard(5).
 *
 * A stream is zstd-compressed records: a header, then samples; a header
 * may come again at any sample boundary, so `cat a.shard b.shard` is a
 * stream, and the reader refuses a later header whose tokenizer differs
 * from the first. A sample holds the token ids of one training sequence, a
 * loss mask (1 = trained) per token, and its documents: a packed sample is
 * several documents laid end to end, and attention and positions restart
 * at each.
 *
 * Pointers in a shard_sample handed to shard_writer_add are borrowed for
 * the call; those the reader returns are borrowed from the reader, valid
 * until its next call.
 */
#ifndef DS_SHARD_H
#define DS_SHARD_H

#include <stdint.h>
#include <stdio.h>

#define SHARD_VERSION 1
#define SHARD_TEMPLATE_MAX 16    /* bytes of the template name, NUL-padded */
#define SHARD_MAX_TOKENS (1u << 24) /* a sample (and a cutoff) at most this long */
#define SHARD_SOFT_MAX_K 64         /* soft labels: alternatives a position at most */

/* Header flags: how the samples were made (informational). */
enum {
	SHARD_PACKED = 1,          /* samples hold several documents */
	SHARD_TRAIN_ON_PROMPT = 2, /* --train-on-prompt */
	SHARD_MASK_HISTORY = 4,    /* --mask-history */
	SHARD_PRESERVE_THINKING = 8, /* --preserve-thinking */
	SHARD_NO_THINKING = 16,    /* --no-thinking */
	SHARD_PAIRWISE = 32,       /* preference pairs: chosen, then rejected */
	SHARD_SOFT = 64,           /* samples may carry the teacher's soft labels */
	SHARD_FLAGS_KNOWN = 127,   /* a reader refuses any other bit */
};

/* Document flags. */
enum {
	SHARD_DOC_TRUNCATED = 1, /* the document was cut to fit the cutoff */
	SHARD_DOC_REJECTED = 2,  /* the rejected side of the pair before it */
	SHARD_DOC_FLAGS_KNOWN = 3,
};

typedef struct shard_header {
	uint32_t version;
	uint8_t fingerprint[32]; /* shard_fingerprint of the tokenizer */
	uint32_t vocab_size;     /* tokenizer_vocab_size: every id is below it */
	uint32_t cutoff_len;     /* every sample has at most this many tokens */
	uint32_t flags;          /* SHARD_PACKED | ... */
	char template_name[SHARD_TEMPLATE_MAX + 1]; /* NUL-terminated */
} shard_header;

typedef struct shard_sample {
	uint32_t n_tokens;  /* T >= 1 */
	uint32_t n_docs;    /* D >= 1 */
	uint32_t *ids;      /* (T) token ids */
	uint8_t *mask;      /* (T) 1 = the token is a training target, 0 = not */
	uint32_t *doc_len;  /* (D) tokens per document, in order; they sum to T */
	uint32_t *doc_flags; /* (D) SHARD_DOC_* */
	/* The teacher's soft labels (streams with SHARD_SOFT; soft_n 0: none):
	 * for each of soft_n positions soft_pos[i] (increasing, each a trained
	 * token that is not the first of its document: the token the teacher
	 * predicted), its soft_k most probable tokens soft_id[i*k..] and their
	 * log-probabilities soft_lp[i*k..] (natural log, <= 0, distinct ids). */
	uint32_t soft_k, soft_n;
	uint32_t *soft_pos;  /* (soft_n) */
	uint32_t *soft_id;   /* (soft_n * soft_k) */
	float *soft_lp;      /* (soft_n * soft_k) */
} shard_sample;

typedef struct shard_writer shard_writer;
typedef struct shard_reader shard_reader;

/* The tokenizer's fingerprint: SHA-256 of a canonical text made from the
 * tokenizer.json at path (plain or zstd-compressed): its normalizer and
 * pre-tokenizer, the vocabulary in id order, the merges in rank order and
 * the added tokens in id order (ds-shard(5) spells it out), so the same
 * tokenizer written with other key order, white space or merge syntax
 * gets the same fingerprint. Returns 0, or -1 with *err an owned message. */
int shard_fingerprint(const char *path, uint8_t out[32], char **err);

/* fp as 64 lowercase hex digits into hex[65]. */
void shard_fingerprint_hex(const uint8_t fp[32], char hex[65]);

/* ---- writer ----------------------------------------------------------- */

/* Start a stream on f (borrowed; not closed by shard_writer_close) and
 * write h (borrowed). level is zstd's (1..19). Returns owned: close with
 * shard_writer_close. */
shard_writer *shard_writer_open(FILE *f, const shard_header *h, int level);

/* Append s (borrowed). The sample must be valid for the header (ids below
 * vocab_size, at most cutoff_len tokens, documents summing to n_tokens,
 * mask values 0/1); an invalid one is refused with errno EINVAL. Returns
 * 0, or -1 with errno set. */
int shard_writer_add(shard_writer *w, const shard_sample *s);

/* Make every sample added so far readable at the other end of a pipe. */
int shard_writer_flush(shard_writer *w);

/* End the stream and free w. Returns 0, or -1 (the stream is incomplete). */
int shard_writer_close(shard_writer *w);

/* ---- reader ----------------------------------------------------------- */

/* Open path ("-" is stdin) and read its first header. Returns owned (close
 * with shard_reader_close), or NULL with *err an owned message. */
shard_reader *shard_reader_open(const char *path, char **err);

/* The first header of the stream. Borrowed from r. */
const shard_header *shard_reader_header(const shard_reader *r);

/* Next sample into *s (views borrowed from r until the next call).
 *  1: a sample;  0: the end of the stream;
 * -1: a truncated or corrupt stream, or a later header for another
 *     tokenizer: shard_reader_error says which and where. */
int shard_reader_next(shard_reader *r, shard_sample *s);

/* Why the last call failed. Borrowed; valid until shard_reader_close. */
const char *shard_reader_error(const shard_reader *r);

/* Headers read so far (1 + the number of concatenated parts seen). */
long shard_reader_headers(const shard_reader *r);

void shard_reader_close(shard_reader *r);

#endif
