/* ds-tokenize — Qwen2 tokenization, id for id as Hugging Face `tokenizers`
 * (lib/tokenizer.c), and ShareGPT conversations into the token-shard stream
 * of DESIGN.md §2 (lib/shard.c, ds-shard(5)).
 *
 *   (default), shards: ShareGPT records through a chat template into shards,
 *            the loss mask and truncation as LLaMA-Factory 0.9.5 makes them;
 *   inspect: a shard stream back as text with trained spans marked, or as
 *            JSON lines, and its statistics;
 *   encode:  records with a `text` string get `ids`, the token ids;
 *   decode:  records with `ids` get `text`.
 */
#include "../lib/chat.h"
#include "../lib/check.h"
#include "../lib/cli.h"
#include "../lib/json.h"
#include "../lib/jsonl.h"
#include "../lib/progress.h"
#include "../lib/resume.h"
#include "../lib/shard.h"
#include "../lib/soft.h"
#include "../lib/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- options ---------------------------------------------------------- */

static const char usage[] =
	"usage: ds-tokenize encode -t TOKENIZER [-j N] [-q] [--skip-bad] [FILE...]\n"
	"       ds-tokenize decode -t TOKENIZER [-j N] [-q] [--skip-bad] [--replace]\n"
	"                          [--skip-special] [FILE...]\n"
	"       ds-tokenize [shards] -t TOKENIZER [--template NAME] [--system TEXT]\n"
	"                   [--cutoff-len N] [--train-on-prompt | --mask-history]\n"
	"                   [--preserve-thinking] [--no-thinking]\n"
	"                   [--pack] [--no-truncate] [--soft-labels] [--teacher-tokenizer F]\n"
	"                   [--skip-bad] [-j N]\n"
	"                   [-q] [-o OUT]\n"
	"                   [FILE...]\n"
	"       ds-tokenize inspect [-t TOKENIZER] [--json | --stats] [FILE...]\n";

static const char help[] =
	"Tokenize ShareGPT conversations into a token-shard stream (the default),\n"
	"inspect one, or tokenize JSONL text with a Qwen2 tokenizer.json, id for id as\n"
	"Hugging Face tokenizers.\n"
	"\n"
	"  shards                 ShareGPT records to shards on stdout (the default)\n"
	"  inspect                a shard stream as text, trained spans in \xe2\x9f\xa6\xe2\x9f\xa7\n"
	"  encode                 add \"ids\" (token ids) to records with a \"text\" string\n"
	"  decode                 add \"text\" to records with an \"ids\" list\n"
	"  -t, --tokenizer FILE   the tokenizer.json (may be zstd-compressed)\n"
	"      --template NAME    chat template: qwen or deepseekr1 (r1-distill); by\n"
	"                         default the one the tokenizer's added tokens name\n"
	"      --system TEXT      system prompt for records without one (default: the\n"
	"                         template's: Qwen2.5's for qwen, none for deepseekr1)\n"
	"      --cutoff-len N     at most N tokens a sample (default 8192)\n"
	"      --train-on-prompt  train on the prompt tokens too\n"
	"      --mask-history     train on the last assistant turn only\n"
	"      --preserve-thinking  deepseekr1: earlier turns keep their thoughts under\n"
	"                         --mask-history (LLaMA-Factory's preserve_thinking)\n"
	"      --no-thinking      deepseekr1: cut every thought; the empty thought goes\n"
	"                         untrained into the prompt (enable_thinking: false)\n"
	"      --pack             pack conversations into sequences of the cutoff length\n"
	"      --no-truncate      a conversation longer than the cutoff is bad input\n"
	"      --soft-labels      write the teacher's soft labels (a reply's \"logprobs\",\n"
	"                         ds-teacher --logprobs) for distillation (ds-train kd_alpha)\n"
	"      --teacher-tokenizer FILE  --soft-labels, and first check that the teacher's\n"
	"                         tokenizer.json is the student's (-t): the same tokens,\n"
	"                         merges and rules\n"
	"  -o, --output FILE      write the shards to FILE instead of stdout\n"
	"  -j, --jobs N           tokenize in N threads (default 1); the output is the\n"
	"                         same bytes whatever N\n"
	"      --json             inspect: one JSON line a sample (input_ids, labels, docs)\n"
	"  -s, --stats            inspect: statistics only\n"
	"      --replace          decode: replace invalid UTF-8 by U+FFFD, as Hugging\n"
	"                         Face's decode does, instead of rejecting the record\n"
	"      --skip-special     decode: leave out special tokens (<|im_end|>, ...)\n"
	"      --skip-bad         count and skip malformed lines instead of stopping\n"
	"  -q, --quiet            no summary on stderr\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"With no FILE, or when FILE is -, read standard input. Input may be\n"
	"zstd-compressed. See ds-tokenize(1) and ds-shard(5).\n";

enum mode { MODE_ENCODE, MODE_DECODE, MODE_SHARDS, MODE_INSPECT };

struct opts {
	enum mode mode;
	const char *tokenizer;
	int skip_bad, quiet, decode_flags;
	int jobs; /* -j: worker threads; 1: none, the main thread works */
	/* shards */
	const char *template_name, *system, *output;
	const chat_template *tpl; /* --template's, else the tokenizer's */
	long cutoff;
	int train_on_prompt, mask_history, pack, no_truncate;
	int preserve_thinking, no_thinking; /* reasoning templates: LF's switches */
	int soft; /* --soft-labels */
	const char *teacher_tokenizer; /* --teacher-tokenizer */
	/* inspect */
	int json, stats_only;
};

struct stats {
	long records, bad;
	uint64_t tokens;
	/* shards */
	long samples, truncated, docs;
	uint64_t trained, soft; /* soft: trained tokens with soft labels */
};

/* ---- one record ------------------------------------------------------- */

/* Room for k more bytes in b, and the spare byte json_dump keeps. */
static void jbuf_reserve(jbuf *b, size_t k)
{
	if (b->n + k >= b->cap) {
		b->cap = (b->n + k) * 2 + 256;
		b->p = xrealloc(b->p, b->cap);
	}
}

/* Append "ids":[...]} for ids[0..n): what json_dump writes for the list,
 * without building it as a jv first (which costs more than the encoding). */
static void put_ids(jbuf *b, const uint32_t *ids, size_t n)
{
	jbuf_reserve(b, 8 + 11 * n);
	char *p = b->p + b->n;
	memcpy(p, "\"ids\":[", 7);
	p += 7;
	for (size_t i = 0; i < n; i++) {
		char d[10];
		int k = 0;
		uint32_t v = ids[i];
		do d[k++] = (char)('0' + v % 10); while (v /= 10);
		if (i) *p++ = ',';
		while (k) *p++ = d[--k];
	}
	*p++ = ']';
	*p++ = '}';
	b->n = (size_t)(p - b->p);
}

/* Add "ids" to rec (consumed) and append the record as a line to out; adds
 * its tokens to *tokens. Returns NULL, or the reason it is malformed (then
 * out is unchanged). */
static const char *encode_record(const tokenizer *t, jv rec, tokenizer_ids *ids, jbuf *out,
				 uint64_t *tokens)
{
	jv text = jv_object_get(jv_copy(rec), jv_string("text"));
	if (jv_get_kind(text) != JV_KIND_STRING) {
		jv_free(text);
		jv_free(rec);
		return "no \"text\" string";
	}
	tokenizer_ids_clear(ids);
	size_t bad;
	int k = tokenizer_encode(t, jv_string_value(text),
				 (size_t)jv_string_length_bytes(jv_copy(text)), ids, &bad);
	jv_free(text);
	if (k < 0) {
		jv_free(rec);
		return "\"text\" is not valid UTF-8";
	}
	*tokens += ids->n;
	if (!jv_object_has(jv_copy(rec), jv_string("ids"))) {
		/* a new key goes last, as jv_object_set puts it: the record
		 * without its closing brace, then the ids */
		json_dump(out, rec);
		out->p[out->n - 1] = ',';
		put_ids(out, ids->ids, ids->n);
	} else { /* an "ids" already there keeps its place */
		jv a = jv_array_sized((int)ids->n);
		for (size_t i = 0; i < ids->n; i++) a = jv_array_append(a, jv_number(ids->ids[i]));
		rec = jv_object_set(rec, jv_string("ids"), a);
		json_dump(out, rec);
	}
	jv_free(rec);
	jbuf_reserve(out, 1);
	out->p[out->n++] = '\n';
	return NULL;
}

/* Add "text" to rec (consumed) and append the record as a line to out; adds
 * its tokens to *tokens. Returns NULL, or the reason it is malformed (static,
 * or in why[0..why_n)). */
static const char *decode_record(const tokenizer *t, jv rec, int flags, tokenizer_ids *ids,
				 jbuf *out, uint64_t *tokens, char *why, size_t why_n)
{
	jv a = jv_object_get(jv_copy(rec), jv_string("ids"));
	const char *err = NULL;
	if (jv_get_kind(a) != JV_KIND_ARRAY) {
		err = "no \"ids\" list";
		goto out;
	}
	tokenizer_ids_clear(ids);
	int n = jv_array_length(jv_copy(a));
	for (int i = 0; i < n && !err; i++) {
		jv v = jv_array_get(jv_copy(a), i);
		double d = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : -1;
		if (d < 0 || d >= 4294967295.0 || d != (double)(uint32_t)d) {
			snprintf(why, why_n, "ids[%d] is not a token id", i);
			err = why;
		} else {
			if (ids->n == ids->cap) {
				ids->cap = ids->cap ? ids->cap * 2 : 1024;
				ids->ids = xrealloc(ids->ids, ids->cap * sizeof *ids->ids);
			}
			ids->ids[ids->n++] = (uint32_t)d;
		}
		jv_free(v);
	}
	if (err) goto out;
	size_t len, bad;
	char *s = tokenizer_decode(t, ids->ids, ids->n, flags, &len, &bad);
	if (!s) {
		snprintf(why, why_n, "ids[%zu] = %u is not in the vocabulary", bad, ids->ids[bad]);
		err = why;
		goto out;
	}
	jv text = jv_string_sized(s, (int)len);
	/* libjq quietly replaces invalid UTF-8; a decode must not */
	if ((size_t)jv_string_length_bytes(jv_copy(text)) != len || memcmp(jv_string_value(text), s, len)) {
		snprintf(why, why_n, "the ids decode to invalid UTF-8 (--replace substitutes U+FFFD)");
		err = why;
		jv_free(text);
	} else {
		*tokens += ids->n;
		jv r = jv_object_set(jv_copy(rec), jv_string("text"), text);
		json_dump(out, r);
		jv_free(r);
		jbuf_reserve(out, 1);
		out->p[out->n++] = '\n';
	}
	free(s);
out:
	jv_free(a);
	jv_free(rec);
	return err;
}

/* ---- samples ---------------------------------------------------------- */

/* Token ids with a mask beside them. */
/* Token ids and their loss mask, end to end; with --soft-labels, the
 * teacher's soft labels of some of them: rows of soft_k (id, log-prob)
 * pairs, soft[j] the row of token j (-1: none). */
struct tokens {
	uint32_t *ids;
	uint8_t *mask;
	int32_t *soft;      /* (cap) */
	size_t n, cap;
	int soft_k;         /* alternatives a row (0: no row yet) */
	uint32_t *soft_id;  /* (soft_rows * soft_k) */
	float *soft_lp;
	size_t soft_rows, soft_cap;
};

static void tokens_push(struct tokens *t, const uint32_t *ids, size_t n, int trained)
{
	if (t->n + n > t->cap) {
		while (t->n + n > t->cap) t->cap = t->cap ? 2 * t->cap : 4096;
		t->ids = xrealloc(t->ids, t->cap * sizeof *t->ids);
		t->mask = xrealloc(t->mask, t->cap);
		t->soft = xrealloc(t->soft, t->cap * sizeof *t->soft);
	}
	memcpy(t->ids + t->n, ids, n * sizeof *ids);
	memset(t->mask + t->n, trained, n);
	memset(t->soft + t->n, 0xff, n * sizeof *t->soft);
	t->n += n;
}

/* Token j's soft labels: k alternatives id[0..k), lp[0..k). */
static void tokens_soft(struct tokens *t, size_t j, int k, const uint32_t *id, const float *lp)
{
	if (t->soft_rows == t->soft_cap) {
		t->soft_cap = t->soft_cap ? 2 * t->soft_cap : 1024;
		t->soft_id = xrealloc(t->soft_id, t->soft_cap * (size_t)k * sizeof *t->soft_id);
		t->soft_lp = xrealloc(t->soft_lp, t->soft_cap * (size_t)k * sizeof *t->soft_lp);
	}
	t->soft_k = k;
	memcpy(t->soft_id + t->soft_rows * (size_t)k, id, (size_t)k * sizeof *id);
	memcpy(t->soft_lp + t->soft_rows * (size_t)k, lp, (size_t)k * sizeof *lp);
	t->soft[j] = (int32_t)t->soft_rows++;
}

/* src's tokens from..from+n appended to dst, mask and soft labels too. */
static void tokens_append(struct tokens *dst, const struct tokens *src, size_t from, size_t n)
{
	size_t at = dst->n;
	tokens_push(dst, src->ids + from, n, 0);
	memcpy(dst->mask + at, src->mask + from, n);
	for (size_t j = 0; j < n; j++) {
		int32_t r = src->soft[from + j];
		if (r >= 0)
			tokens_soft(dst, at + j, src->soft_k, src->soft_id + (size_t)r * (size_t)src->soft_k,
				    src->soft_lp + (size_t)r * (size_t)src->soft_k);
	}
}

static void tokens_clear(struct tokens *t)
{
	t->n = 0;
	t->soft_rows = 0;
}

static void tokens_free(struct tokens *t)
{
	free(t->ids);
	free(t->mask);
	free(t->soft);
	free(t->soft_id);
	free(t->soft_lp);
}

/* The soft labels of t's tokens at..at+n as a sample's (positions from
 * at), into s, in scratch sc (a tokens of its own, reused). */
static void tokens_sample_soft(const struct tokens *t, size_t at, size_t n, struct tokens *sc, shard_sample *s)
{
	size_t k = (size_t)t->soft_k, m = 0;
	tokens_clear(sc);
	for (size_t j = 0; j < n; j++) m += t->soft[at + j] >= 0;
	s->soft_n = 0;
	if (!m) return;
	if (m > sc->cap) {
		sc->cap = m;
		sc->ids = xrealloc(sc->ids, m * sizeof *sc->ids);
	}
	if (m > sc->soft_cap) {
		sc->soft_cap = m;
		sc->soft_id = xrealloc(sc->soft_id, m * k * sizeof *sc->soft_id);
		sc->soft_lp = xrealloc(sc->soft_lp, m * k * sizeof *sc->soft_lp);
	}
	for (size_t j = 0, i = 0; j < n; j++) {
		int32_t r = t->soft[at + j];
		if (r < 0) continue;
		sc->ids[i] = (uint32_t)j;
		memcpy(sc->soft_id + i * k, t->soft_id + (size_t)r * k, k * sizeof *sc->soft_id);
		memcpy(sc->soft_lp + i * k, t->soft_lp + (size_t)r * k, k * sizeof *sc->soft_lp);
		i++;
	}
	s->soft_k = (uint32_t)k;
	s->soft_n = (uint32_t)m;
	s->soft_pos = sc->ids;
	s->soft_id = sc->soft_id;
	s->soft_lp = sc->soft_lp;
}

/* LLaMA-Factory's infer_seqlen (data/processor/processor_utils.py): how
 * much of a (source, target) pair fits a budget. The target keeps what it
 * needs when it is under half the budget, else the source does when it
 * is, else both are cut in proportion (in double precision, truncated, as
 * Python computes it). */
static void infer_seqlen(long src, long tgt, long budget, long *src_out, long *tgt_out)
{
	long max_tgt;
	if (tgt * 2 < budget) max_tgt = budget;
	else if (src * 2 < budget) max_tgt = budget - src;
	else max_tgt = (long)((double)budget * ((double)tgt / (double)(src + tgt)));
	long new_tgt = max_tgt < tgt ? max_tgt : tgt;
	long max_src = budget - new_tgt > 0 ? budget - new_tgt : 0;
	*tgt_out = new_tgt;
	*src_out = max_src < src ? max_src : src;
}

struct encoder {
	chat_encoder ce;   /* the conversation's ids, turn by turn */
	const struct opts *o;
	long cutoff; /* the truncation budget */
	char why[512];
};

/* The soft labels sq of a reply onto its slot's tokens in out, from
 * out->n - n (the n of its slot's ids[from..from+slot_n) that were kept);
 * never on doc, the first token of the document (nothing predicts it).
 * Returns NULL, or why they do not fit. */
static const char *soft_reply(struct encoder *e, const soft_seq *sq, const uint32_t *ids, size_t from, size_t slot_n,
			      struct tokens *out, size_t n, size_t doc)
{
	/* out's rows are all of one width: a record of another K is refused
	 * here, before its rows would be laid out with the others' */
	if (out->soft_rows && out->soft_k != sq->k) {
		snprintf(e->why, sizeof e->why, "logprobs with %d alternatives a token, where the records before had %d: "
			 "a shard holds one number", sq->k, out->soft_k);
		return e->why;
	}
	long o = soft_align(sq, e->ce.tok, ids + from, slot_n, e->why, sizeof e->why);
	if (o < 0) return e->why;
	size_t base = out->n - n, k = (size_t)sq->k;
	for (size_t j = 0; j < sq->n && (size_t)o + j < n; j++)
		if (out->mask[base + (size_t)o + j] && base + (size_t)o + j > doc)
			tokens_soft(out, base + (size_t)o + j, sq->k, sq->top_id + j * k, sq->top_lp + j * k);
	return NULL;
}

/* The conversation c appended to out, as LLaMA-Factory's
 * SupervisedDatasetProcessor._encode_data_example, with soft[p] the soft
 * labels of reply p (soft NULL, or an entry NULL: none). Returns 1 when it
 * was truncated to fit the cutoff, 0 when whole, -1 when soft labels do not
 * fit their reply (why in e->why; out as it was); *full is its
 * untruncated length. */
static int encode_conv(struct encoder *e, const chat_conv *c, const soft_seq *const *soft, struct tokens *out,
		       size_t *full)
{
	size_t at0 = out->n, rows0 = out->soft_rows;
	const struct opts *o = e->o;
	chat_encode(&e->ce, c, o->system);
	const uint32_t *ids = e->ce.ids.ids;
	const size_t *msg_end = e->ce.msg_end;
	*full = e->ce.ids.n;

	/* Turn by turn, the last first under --mask-history (LF: "high
	 * priority for last turns"); then laid out in conversation order. */
	int pairs = c->n / 2, truncated = 0;
	long total = 0;
	struct span { size_t src, src_n, tgt, tgt_n; int train_tgt, pair; } *sp = xmalloc((size_t)pairs * sizeof *sp);
	int kept = 0;
	for (int k = 0; k < pairs; k++) {
		int p = o->mask_history ? pairs - 1 - k : k;
		if (total >= e->cutoff) {
			truncated = 1;
			break;
		}
		size_t s0 = p ? msg_end[2 * p - 1] : 0, s1 = msg_end[2 * p], t1 = msg_end[2 * p + 1];
		long sl, tl;
		infer_seqlen((long)(s1 - s0), (long)(t1 - s1), e->cutoff - total, &sl, &tl);
		if ((size_t)sl != s1 - s0 || (size_t)tl != t1 - s1) truncated = 1;
		total += sl + tl;
		sp[kept++] = (struct span){s0, (size_t)sl, s1, (size_t)tl, !o->mask_history || k == 0, p};
	}
	for (int k = 0; k < kept; k++) {
		const struct span *x = &sp[o->mask_history ? kept - 1 - k : k];
		tokens_push(out, ids + x->src, x->src_n, o->train_on_prompt);
		tokens_push(out, ids + x->tgt, x->tgt_n, x->train_tgt);
		const soft_seq *sq = soft ? soft[x->pair] : NULL;
		if (sq && x->train_tgt &&
		    soft_reply(e, sq, ids, x->tgt, msg_end[2 * x->pair + 1] - x->tgt, out, x->tgt_n, at0)) {
			out->n = at0;
			out->soft_rows = rows0;
			truncated = -1;
			break;
		}
	}
	free(sp);
	return truncated;
}

/* The preference pair (c: prompt + chosen, r: prompt + rejected) appended
 * to out as two samples, chosen first, as LLaMA-Factory's
 * PairwiseDatasetProcessor._encode_data_example: each side is encoded as
 * encode_oneturn encodes it (chat_encoder.oneturn: for a reasoning template
 * the earlier turns lose their thoughts unless --preserve-thinking),
 * the chosen side's prompt serves both; infer_seqlen cuts the prompt and
 * both replies to one target length, the longer reply's. The prompt is
 * never trained. *n_chosen: the chosen sample's length; *tc, *tr: each side
 * truncated; *full: the longer side's untruncated length. */
static void encode_pair(struct encoder *e, const chat_conv *c, const chat_conv *r, struct tokens *scratch,
			struct tokens *out, size_t *n_chosen, int *tc, int *tr, size_t *full)
{
	e->ce.oneturn = 1;
	scratch->n = 0;
	chat_encode(&e->ce, c, e->o->system);
	size_t P = e->ce.msg_end[c->n - 2], Cn = e->ce.msg_end[c->n - 1] - P;
	tokens_push(scratch, e->ce.ids.ids, P + Cn, 0); /* prompt, chosen */
	chat_encode(&e->ce, r, e->o->system);
	size_t Pr = e->ce.msg_end[r->n - 2], Rn = e->ce.msg_end[r->n - 1] - Pr;
	tokens_push(scratch, e->ce.ids.ids + Pr, Rn, 0); /* rejected */
	e->ce.oneturn = 0;
	long sl, tl;
	infer_seqlen((long)P, (long)(Cn > Rn ? Cn : Rn), e->cutoff, &sl, &tl);
	size_t cn = Cn < (size_t)tl ? Cn : (size_t)tl, rn = Rn < (size_t)tl ? Rn : (size_t)tl;
	*tc = (size_t)sl < P || cn < Cn;
	*tr = (size_t)sl < P || rn < Rn;
	*full = P + (Cn > Rn ? Cn : Rn);
	tokens_push(out, scratch->ids, (size_t)sl, 0);
	tokens_push(out, scratch->ids + P, cn, 1);
	*n_chosen = (size_t)sl + cn;
	tokens_push(out, scratch->ids, (size_t)sl, 0);
	tokens_push(out, scratch->ids + P + Cn, rn, 1);
}

/* ---- packing ---------------------------------------------------------- */

/* LLaMA-Factory packs each map() batch of preprocessing_batch_size
 * (1000) examples on its own; so do we, to give the same sequences. */
#define PACK_BATCH 1000

struct packer {
	struct tokens all;        /* the batch's documents, end to end */
	size_t *start, *len;      /* (n) */
	uint32_t *flags;          /* (n) SHARD_DOC_* */
	int n;
	long sequences;
	uint64_t tokens;
};

/* t's tokens at..at+n, one document. */
static void packer_add(struct packer *p, const struct tokens *t, size_t at, size_t n, uint32_t flags)
{
	if (p->n % PACK_BATCH == 0) {
		p->start = xrealloc(p->start, (size_t)(p->n + PACK_BATCH) * sizeof *p->start);
		p->len = xrealloc(p->len, (size_t)(p->n + PACK_BATCH) * sizeof *p->len);
		p->flags = xrealloc(p->flags, (size_t)(p->n + PACK_BATCH) * sizeof *p->flags);
	}
	p->start[p->n] = p->all.n;
	p->len[p->n] = n;
	p->flags[p->n] = flags;
	p->n++;
	tokens_append(&p->all, t, at, n);
}

static int size_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* The batch into sequences of at most cap tokens, by LF's greedy_knapsack:
 * lengths sorted; each sequence takes the longest that still fits, until
 * none does. Of equal lengths the latest example goes first (LF pops its
 * length2indexes list). */
static int packer_flush(struct packer *p, shard_writer *w, size_t cap)
{
	int n = p->n, rc = 0;
	size_t *sorted = xmalloc((size_t)n * sizeof *sorted + 1);
	char *used = xcalloc((size_t)n + 1, 1);
	uint32_t *doc_len = xmalloc((size_t)n * sizeof *doc_len + 4);
	uint32_t *doc_flags = xmalloc((size_t)n * sizeof *doc_flags + 4);
	size_t *pick = xmalloc((size_t)n * sizeof *pick + 1);
	struct tokens seq = {0}, sc = {0};
	memcpy(sorted, p->len, (size_t)n * sizeof *sorted);
	qsort(sorted, (size_t)n, sizeof *sorted, size_cmp);
	int left = n;
	while (left > 0 && rc == 0) {
		size_t room = cap;
		int np = 0;
		for (;;) {
			/* bisect_right(sorted, room) - 1 */
			int lo = 0, hi = left;
			while (lo < hi) {
				int mid = (lo + hi) / 2;
				if (sorted[mid] <= room) lo = mid + 1;
				else hi = mid;
			}
			if (lo == 0) break;
			size_t l = sorted[lo - 1];
			room -= l;
			memmove(sorted + lo - 1, sorted + lo, (size_t)(left - lo) * sizeof *sorted);
			left--;
			pick[np++] = l;
		}
		if (np == 0) break; /* cannot happen: every document fits the cutoff */
		tokens_clear(&seq);
		for (int i = 0; i < np; i++) {
			int d = n - 1;
			while (used[d] || p->len[d] != pick[i]) d--;
			used[d] = 1;
			tokens_append(&seq, &p->all, p->start[d], p->len[d]);
			doc_len[i] = (uint32_t)p->len[d];
			doc_flags[i] = p->flags[d];
		}
		shard_sample s = {.n_tokens = (uint32_t)seq.n, .n_docs = (uint32_t)np, .ids = seq.ids, .mask = seq.mask,
				  .doc_len = doc_len, .doc_flags = doc_flags};
		tokens_sample_soft(&seq, 0, seq.n, &sc, &s);
		rc = shard_writer_add(w, &s);
		p->sequences++;
		p->tokens += seq.n;
	}
	tokens_free(&seq);
	tokens_free(&sc);
	free(sorted), free(used), free(doc_len), free(doc_flags), free(pick);
	p->n = 0;
	tokens_clear(&p->all);
	return rc;
}

static void packer_free(struct packer *p)
{
	tokens_free(&p->all);
	free(p->start), free(p->len), free(p->flags);
}

/* ---- the pipeline ----------------------------------------------------- */

/* The main thread reads the lines in batches; with -j N, N worker threads
 * parse and tokenize whole batches, each into the batch's own output,
 * sharing the tokenizer read-only; the main thread takes the batches back
 * in the order it read them and writes them out. So the output is the same
 * bytes whatever N, and a bad line stops the run after exactly the records
 * before it. With -j 1 the main thread does the work itself, no threads. */

/* Small enough that a few hundred records already keep every thread busy
 * (and that tests exercise the reordering), large enough that handing a
 * batch over costs nothing next to tokenizing it. */
#define BATCH_RECORDS 64
#define BATCH_BYTES (256u << 10)

struct item {
	size_t raw, raw_n; /* its line: the batch's raw.p[raw..raw+raw_n) */
	int complete;    /* the line ended with its newline */
	long line;       /* its line in the input, for messages */
	char *bad;       /* owned: why the line or record is bad; NULL when good */
	int fatal;       /* a read error: stop whatever --skip-bad says */
	size_t at, n;    /* its output: out.p[at..at+n) or tk.ids[at..at+n) */
	uint64_t tokens; /* its tokens (encode, decode) */
	uint64_t trained;/* shards: tokens trained on */
	size_t full;     /* shards: its untruncated length */
	int trunc;       /* shards: truncated to the cutoff */
	int pair;        /* shards: a preference pair, chosen then rejected */
	int soft_k;      /* shards: its soft labels' alternatives a token (0: none) */
	size_t n_chosen; /* pairs: the chosen side's tokens, the first of n */
	int trunc_r;     /* pairs: the rejected side truncated */
};

enum { BATCH_FREE, BATCH_QUEUED, BATCH_DONE };

struct batch {
	struct item *items; /* (n) */
	int n, cap, state;
	jbuf raw;           /* the lines as read, end to end */
	jbuf out;           /* encode, decode: the output lines */
	struct tokens tk;   /* shards: the samples' ids and masks, end to end */
};

struct pool;

/* pthread calls return the error instead of setting errno. */
#define CHECK_PTHREAD(expr)                                                   \
	do {                                                                  \
		int e_ = (expr);                                              \
		if (e_) errno = e_, check_fail_errno(__FILE__, __LINE__, #expr); \
	} while (0)

/* What each thread has of its own. */
struct worker {
	struct pool *p;
	tokenizer_ids ids;
	struct encoder e;
	chat_conv c, r;     /* r: a pair's rejected side */
	struct tokens side; /* a pair's prompt and replies while they are cut */
	soft_seq *soft;     /* (soft_cap) --soft-labels: each reply's, as read */
	const soft_seq **soft_of; /* (soft_cap) reply p's, or NULL */
	int soft_cap;
	char why[256];
};

struct pool {
	const struct opts *o;
	const tokenizer *t;
	struct batch *b;    /* (nb) a ring: the k-th batch is b[k % nb] */
	int nb;
	struct worker *w;   /* (max(n_threads, 1)) */
	pthread_t *threads; /* (n_threads); none for -j 1 */
	int n_threads;
	pthread_mutex_t mu; /* guards filled, taken, quit and each batch's state */
	pthread_cond_t queued, done;
	long filled, taken; /* batches handed to the workers, taken by them */
	long emitted;       /* batches written out (main thread only) */
	int quit;
};

/* Where the output goes, and the counts (main thread only). */
struct sink {
	shard_writer *w;    /* shards, once the first record says what kind; NULL for encode, decode */
	FILE *out;          /* shards: where w writes */
	shard_header h;     /* shards: w's header, SHARD_PAIRWISE added for pairs */
	int kind;           /* shards: 0 none yet, 1 conversations, 2 pairs */
	struct packer pk;
	size_t cap;         /* the packing budget */
	int soft_k;         /* --soft-labels: the stream's alternatives a token, once a record has some */
	struct tokens sc;   /* scratch: a sample's soft labels */
	struct stats *st;
	int werr;
};

/* --soft-labels: the "logprobs" of rec's replies (the messages c was read
 * from, turn 0 at c->first) into w->soft_of, one per reply of c, NULL where
 * a reply has none; *k their alternatives (0: no reply has any). Returns
 * NULL or why they are bad. */
static const char *record_soft(struct worker *w, jv rec, const chat_conv *c, int *k)
{
	int pairs = c->n / 2;
	if (pairs > w->soft_cap) {
		w->soft = xrealloc(w->soft, (size_t)pairs * sizeof *w->soft);
		memset(w->soft + w->soft_cap, 0, (size_t)(pairs - w->soft_cap) * sizeof *w->soft);
		w->soft_of = xrealloc(w->soft_of, (size_t)pairs * sizeof *w->soft_of);
		w->soft_cap = pairs;
	}
	jv msgs = jv_object_get(jv_copy(rec), jv_string("conversations"));
	if (jv_get_kind(msgs) != JV_KIND_ARRAY) {
		jv_free(msgs);
		msgs = jv_object_get(jv_copy(rec), jv_string("messages"));
	}
	int n = jv_array_length(jv_copy(msgs));
	const char *bad = NULL;
	*k = 0;
	for (int p = 0; p < pairs; p++) {
		w->soft_of[p] = NULL;
		int i = c->first + 2 * p + 1;
		jv lp = i < n ? jv_object_get(jv_array_get(jv_copy(msgs), i), jv_string("logprobs")) : jv_invalid();
		int kind = jv_get_kind(lp);
		if (kind == JV_KIND_STRING) { /* ds-sharegpt writes the object as a JSON string */
			const char *j = jv_string_value(lp);
			size_t at;
			const char *jwhy;
			jv o = json_parse(j, strlen(j), &at, &jwhy);
			jv_free(lp);
			lp = jv_is_valid(o) ? o : jv_null();
			if (!jv_is_valid(o) && !bad) bad = "logprobs: a string that is not a JSON object";
			kind = jv_get_kind(lp);
		}
		if (!bad && kind != JV_KIND_INVALID && kind != JV_KIND_NULL) {
			bad = soft_parse(lp, w->p->t, &w->soft[p], w->why, sizeof w->why);
			if (!bad && *k && w->soft[p].k != *k)
				bad = "logprobs: the replies of one conversation differ in their number of alternatives";
			if (!bad) *k = w->soft[p].k, w->soft_of[p] = &w->soft[p];
		}
		jv_free(lp);
	}
	jv_free(msgs);
	return bad;
}

/* The conversation rec (consumed) onto b->tk. Returns NULL or why it is
 * bad (in w->why or static). */
static const char *shard_record(struct worker *w, jv rec, struct item *it, struct tokens *tk)
{
	const struct opts *o = w->p->o;
	size_t at = tk->n;
	const char *bad;
	if ((it->pair = chat_is_pair(rec))) {
		bad = o->pack || o->train_on_prompt
			      ? "a preference pair: --pack and --train-on-prompt are for conversations (LLaMA-Factory's "
				"pairwise data are neither packed nor trained on the prompt)"
			      : chat_pair_parse(rec, &w->c, &w->r, w->why, sizeof w->why);
		if (!bad) {
			encode_pair(&w->e, &w->c, &w->r, &w->side, tk, &it->n_chosen, &it->trunc, &it->trunc_r, &it->full);
			if ((it->trunc || it->trunc_r) && o->no_truncate) {
				snprintf(w->why, sizeof w->why, "a pair of %zu tokens a side, longer than the cutoff of %ld",
					 it->full, w->e.cutoff);
				bad = w->why;
				tk->n = at;
			}
		}
	} else if (!(bad = chat_conv_parse(rec, &w->c, CHAT_END_ASSISTANT, w->why, sizeof w->why)) &&
		   !(bad = o->soft ? record_soft(w, rec, &w->c, &it->soft_k) : NULL)) {
		it->trunc = encode_conv(&w->e, &w->c, o->soft ? w->soft_of : NULL, tk, &it->full);
		if (it->trunc < 0) {
			bad = w->e.why;
			it->trunc = 0;
		} else if (it->trunc && o->no_truncate) {
			snprintf(w->why, sizeof w->why, "%zu tokens, longer than the cutoff of %ld",
				 it->full, w->e.cutoff);
			bad = w->why;
			tk->n = at;
		}
	}
	jv_free(rec); /* after encode_conv: the turns borrow from it */
	it->at = at;
	it->n = tk->n - at;
	for (size_t j = at; j < tk->n; j++) it->trained += tk->mask[j];
	return bad;
}

static void batch_work(struct worker *w, struct batch *b)
{
	const struct opts *o = w->p->o;
	b->out.n = 0;
	tokens_clear(&b->tk);
	for (int i = 0; i < b->n; i++) {
		struct item *it = &b->items[i];
		if (it->bad) continue;
		jv rec = jsonl_parse_line(b->raw.p + it->raw, it->raw_n, it->complete, w->why, sizeof w->why);
		if (!jv_is_valid(rec)) {
			it->bad = xstrdup(w->why);
			continue;
		}
		const char *bad;
		it->at = b->out.n;
		if (o->mode == MODE_SHARDS) bad = shard_record(w, rec, it, &b->tk);
		else if (o->mode == MODE_ENCODE)
			bad = encode_record(w->p->t, rec, &w->ids, &b->out, &it->tokens);
		else
			bad = decode_record(w->p->t, rec, o->decode_flags, &w->ids, &b->out,
					    &it->tokens, w->why, sizeof w->why);
		if (o->mode != MODE_SHARDS) it->n = b->out.n - it->at;
		if (bad) it->bad = xstrdup(bad);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->p;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->taken == p->filled && !p->quit) pthread_cond_wait(&p->queued, &p->mu);
		if (p->taken == p->filled) break;
		struct batch *b = &p->b[p->taken++ % p->nb];
		pthread_mutex_unlock(&p->mu);
		batch_work(w, b);
		pthread_mutex_lock(&p->mu);
		b->state = BATCH_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pool_init(struct pool *p, const struct opts *o, const tokenizer *t)
{
	*p = (struct pool){.o = o, .t = t, .n_threads = o->jobs > 1 ? o->jobs : 0};
	p->nb = p->n_threads ? 4 * p->n_threads : 1;
	p->b = xcalloc((size_t)p->nb, sizeof *p->b);
	int nw = p->n_threads ? p->n_threads : 1;
	p->w = xcalloc((size_t)nw, sizeof *p->w);
	for (int i = 0; i < nw; i++) {
		struct worker *w = &p->w[i];
		w->p = p;
		w->e = (struct encoder){.ce = {.tok = t}, .o = o};
		if (o->mode == MODE_SHARDS) {
			w->e.ce.tpl = o->tpl;
			w->e.ce.mask_history = o->mask_history;
			w->e.ce.preserve_thinking = o->preserve_thinking;
			w->e.ce.no_thinking = o->no_thinking;
			/* LF's packing keeps one position for padding: data_args.cutoff_len -= 1 */
			w->e.cutoff = o->pack ? o->cutoff - 1 : o->cutoff;
		}
	}
	if (!p->n_threads) return;
	CHECK_PTHREAD(pthread_mutex_init(&p->mu, NULL));
	CHECK_PTHREAD(pthread_cond_init(&p->queued, NULL));
	CHECK_PTHREAD(pthread_cond_init(&p->done, NULL));
	p->threads = xcalloc((size_t)p->n_threads, sizeof *p->threads);
	for (int i = 0; i < p->n_threads; i++)
		CHECK_PTHREAD(pthread_create(&p->threads[i], NULL, worker_main, &p->w[i]));
}

static void pool_free(struct pool *p)
{
	if (p->n_threads) {
		pthread_mutex_lock(&p->mu);
		p->quit = 1;
		pthread_cond_broadcast(&p->queued);
		pthread_mutex_unlock(&p->mu);
		for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
		pthread_cond_destroy(&p->queued);
		pthread_cond_destroy(&p->done);
		pthread_mutex_destroy(&p->mu);
		free(p->threads);
	}
	for (int i = 0; i < p->nb; i++) {
		free(p->b[i].items);
		jbuf_free(&p->b[i].raw);
		jbuf_free(&p->b[i].out);
		tokens_free(&p->b[i].tk);
	}
	for (int i = 0; i < (p->n_threads ? p->n_threads : 1); i++) {
		struct worker *w = &p->w[i];
		tokenizer_ids_free(&w->ids);
		chat_encoder_free(&w->e.ce);
		chat_conv_free(&w->c);
		chat_conv_free(&w->r);
		tokens_free(&w->side);
		for (int k = 0; k < w->soft_cap; k++) soft_seq_free(&w->soft[k]);
		free(w->soft);
		free(w->soft_of);
	}
	free(p->b);
	free(p->w);
}

/* Read the next batch of lines of in into b (parsed by the work, so that
 * the threads share that too). Returns 1 at the end of the input (or at a
 * read error that ends it), 0 when there may be more. */
static int batch_fill(struct batch *b, jsonl_reader *in)
{
	b->n = 0;
	b->raw.n = 0;
	while (b->n < BATCH_RECORDS && b->raw.n < BATCH_BYTES) {
		const char *s = NULL;
		size_t n = 0;
		int complete = 1;
		int k = jsonl_reader_next_line(in, &s, &n, &complete);
		if (k == 0) return 1;
		if (b->n == b->cap) {
			b->cap = b->cap ? 2 * b->cap : BATCH_RECORDS;
			b->items = xrealloc(b->items, (size_t)b->cap * sizeof *b->items);
		}
		struct item *it = &b->items[b->n++];
		*it = (struct item){.raw = b->raw.n, .raw_n = n, .complete = complete, .line = jsonl_reader_line(in)};
		if (k < 0) { /* a read error: always the end */
			it->bad = xstrdup(jsonl_reader_error(in));
			it->fatal = 1;
			return 1;
		}
		if (b->raw.n + n + 1 > b->raw.cap) {
			b->raw.cap = (b->raw.n + n + 1) * 2;
			b->raw.p = xrealloc(b->raw.p, b->raw.cap);
		}
		memcpy(b->raw.p + b->raw.n, s, n);
		b->raw.n += n;
	}
	return 0;
}

static void batch_submit(struct pool *p, struct batch *b)
{
	if (!p->n_threads) {
		batch_work(&p->w[0], b);
		b->state = BATCH_DONE;
		p->filled++;
		return;
	}
	pthread_mutex_lock(&p->mu);
	b->state = BATCH_QUEUED;
	p->filled++;
	pthread_cond_signal(&p->queued);
	pthread_mutex_unlock(&p->mu);
}

static void batch_wait(struct pool *p, struct batch *b)
{
	if (!p->n_threads) return;
	pthread_mutex_lock(&p->mu);
	while (b->state != BATCH_DONE) pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

/* A bad line, as jsonl_reader_report words it (name NULL: stdin). */
static void report_line(const char *name, long line, const char *why)
{
	if (name) fprintf(stderr, "%s:%s:%ld: %s\n", cli_prog, name, line, why);
	else fprintf(stderr, "%s:%ld: %s\n", cli_prog, line, why);
}

/* Write out the done batch b, in order, and count it. name is the input's
 * (NULL for stdin), for messages. Returns 0, or EXIT_RUNTIME where a bad
 * line stops the run. */
static int batch_emit(struct pool *p, struct batch *b, const char *name, struct sink *sk)
{
	const struct opts *o = p->o;
	struct stats *st = sk->st;
	for (int i = 0; i < b->n; i++) {
		const struct item *it = &b->items[i];
		if (it->bad) {
			report_line(name, it->line, it->bad);
			if (!o->skip_bad || it->fatal) return EXIT_RUNTIME;
			st->bad++;
			continue;
		}
		if (o->mode != MODE_SHARDS) {
			st->records++;
			st->tokens += it->tokens;
			if (fwrite(b->out.p + it->at, 1, it->n, stdout) != it->n)
				cli_die(EXIT_RUNTIME, "write error: %m");
			continue;
		}
		/* one kind a stream: the first record decides it */
		int kind = it->pair ? 2 : 1;
		if (!sk->kind) {
			sk->kind = kind;
			if (it->pair) sk->h.flags |= SHARD_PAIRWISE;
			sk->w = shard_writer_open(sk->out, &sk->h, 3);
		}
		if (kind != sk->kind) {
			const char *why = it->pair ? "a preference pair among conversations: a shard holds one kind"
						   : "a conversation among preference pairs: a shard holds one kind";
			report_line(name, it->line, why);
			if (!o->skip_bad) return EXIT_RUNTIME;
			st->bad++;
			continue;
		}
		if (it->soft_k && sk->soft_k && it->soft_k != sk->soft_k) {
			char why[160];
			snprintf(why, sizeof why, "logprobs with %d alternatives a token, where the records before had %d: "
				 "a shard holds one number", it->soft_k, sk->soft_k);
			report_line(name, it->line, why);
			if (!o->skip_bad) return EXIT_RUNTIME;
			st->bad++;
			continue;
		}
		if (it->soft_k) sk->soft_k = it->soft_k;
		st->records++;
		st->docs++;
		st->tokens += it->n;
		for (size_t j = it->at; j < it->at + it->n; j++) st->soft += b->tk.soft[j] >= 0;
		st->truncated += it->trunc;
		st->trained += it->trained;
		uint32_t flags = it->trunc ? SHARD_DOC_TRUNCATED : 0;
		if (it->pair) {
			uint32_t lc = (uint32_t)it->n_chosen, lr = (uint32_t)(it->n - it->n_chosen);
			uint32_t fr = SHARD_DOC_REJECTED | (it->trunc_r ? SHARD_DOC_TRUNCATED : 0);
			shard_sample a = {.n_tokens = lc, .n_docs = 1, .ids = b->tk.ids + it->at, .mask = b->tk.mask + it->at,
					  .doc_len = &lc, .doc_flags = &flags};
			shard_sample z = {.n_tokens = lr, .n_docs = 1, .ids = b->tk.ids + it->at + lc,
					  .mask = b->tk.mask + it->at + lc, .doc_len = &lr, .doc_flags = &fr};
			sk->werr |= shard_writer_add(sk->w, &a) || shard_writer_add(sk->w, &z);
			st->samples += 2;
			st->docs++;
			st->truncated += it->trunc_r;
			if (sk->werr) return EXIT_RUNTIME;
			continue;
		}
		if (o->pack) {
			packer_add(&sk->pk, &b->tk, it->at, it->n, flags);
			if (sk->pk.n == PACK_BATCH) sk->werr |= packer_flush(&sk->pk, sk->w, sk->cap);
		} else {
			uint32_t len = (uint32_t)it->n;
			shard_sample s = {.n_tokens = len, .n_docs = 1, .ids = b->tk.ids + it->at, .mask = b->tk.mask + it->at,
					  .doc_len = &len, .doc_flags = &flags};
			tokens_sample_soft(&b->tk, it->at, it->n, &sk->sc, &s);
			sk->werr |= shard_writer_add(sk->w, &s);
			st->samples++;
		}
		if (sk->werr) return EXIT_RUNTIME;
	}
	return 0;
}

static void batch_clear(struct batch *b)
{
	for (int i = 0; i < b->n; i++) free(b->items[i].bad);
	b->n = 0;
	b->state = BATCH_FREE;
}

/* Every record of inputs[0..n_inputs) through the pool into sk. */
static int pool_run(struct pool *p, const char **inputs, int n_inputs, struct sink *sk)
{
	int status = 0;
	progress pg;
	for (int i = 0; i < n_inputs && status == 0; i++) {
		char *err = NULL;
		jsonl_reader *in = jsonl_reader_open(inputs[i], &err);
		if (!in) {
			cli_warn("%s", err);
			free(err);
			status = EXIT_RUNTIME;
			break;
		}
		const char *name = strcmp(inputs[i], "-") ? inputs[i] : NULL;
		progress_start(&pg, cli_prog, jsonl_reader_size(in));
		int eof = 0;
		for (;;) {
			while (!eof && status == 0 && p->filled - p->emitted < p->nb) {
				struct batch *b = &p->b[p->filled % p->nb];
				eof = batch_fill(b, in);
				if (b->n == 0) break;
				batch_submit(p, b);
				progress_update(&pg, (uint64_t)jsonl_reader_line(in), jsonl_reader_bytes_in(in));
			}
			if (p->emitted == p->filled) break;
			/* the oldest; after a stop, the rest only drain */
			struct batch *b = &p->b[p->emitted % p->nb];
			batch_wait(p, b);
			if (status == 0) status = batch_emit(p, b, name, sk);
			batch_clear(b);
			p->emitted++;
		}
		progress_finish(&pg);
		jsonl_reader_close(in);
	}
	return status;
}

/* ---- the runs --------------------------------------------------------- */

static int run(const struct opts *o, const tokenizer *t, const char **inputs, int n_inputs,
	       struct stats *st)
{
	struct pool p;
	struct sink sk = {.st = st};
	pool_init(&p, o, t);
	int status = pool_run(&p, inputs, n_inputs, &sk);
	pool_free(&p);
	return status;
}

static int run_shards(const struct opts *o, const tokenizer *t, const uint8_t fp[32],
		      const char **inputs, int n_inputs, FILE *out, struct stats *st)
{
	shard_header h = {.version = SHARD_VERSION,
			  .vocab_size = tokenizer_vocab_size(t),
			  .cutoff_len = (uint32_t)o->cutoff,
			  .flags = (o->pack ? SHARD_PACKED : 0) |
				   (o->train_on_prompt ? SHARD_TRAIN_ON_PROMPT : 0) |
				   (o->mask_history ? SHARD_MASK_HISTORY : 0) |
				   (o->preserve_thinking ? SHARD_PRESERVE_THINKING : 0) |
				   (o->no_thinking ? SHARD_NO_THINKING : 0) | (o->soft ? SHARD_SOFT : 0)};
	memcpy(h.fingerprint, fp, 32);
	snprintf(h.template_name, sizeof h.template_name, "%s", o->tpl->name);
	struct sink sk = {.out = out, .h = h, .st = st,
			  /* LF's packing keeps one position for padding: data_args.cutoff_len -= 1 */
			  .cap = (size_t)(o->pack ? o->cutoff - 1 : o->cutoff)};
	struct pool p;
	pool_init(&p, o, t);
	int status = pool_run(&p, inputs, n_inputs, &sk);
	pool_free(&p);
	if (!sk.w) sk.w = shard_writer_open(out, &sk.h, 3); /* no record: a header alone */
	if (o->pack && sk.pk.n) sk.werr |= packer_flush(&sk.pk, sk.w, sk.cap);
	if (o->pack) st->samples = sk.pk.sequences;
	if (shard_writer_close(sk.w) || sk.werr) {
		cli_warn("write error: %m");
		status = EXIT_RUNTIME;
	}
	packer_free(&sk.pk);
	tokens_free(&sk.sc);
	return status;
}

/* ---- inspect ---------------------------------------------------------- */

struct inspect_stats {
	long samples, docs, truncated, max_docs;
	uint64_t tokens, trained;
	long hist[32]; /* samples of length in (2^(i-1), 2^i] */
	uint32_t cutoff;
	int packed, pairwise;
	char template_name[SHARD_TEMPLATE_MAX + 1]; /* the first input's; "mixed" if they differ */
};

static void print_text(const tokenizer *t, const shard_sample *s, long n, int pairwise)
{
	uint32_t trained = 0;
	for (uint32_t i = 0; i < s->n_tokens; i++) trained += s->mask[i];
	int truncated = 0;
	for (uint32_t d = 0; d < s->n_docs; d++) truncated |= s->doc_flags[d] & SHARD_DOC_TRUNCATED;
	printf("=== sample %ld: %u tokens, %u trained, %u document%s%s%s\n", n, s->n_tokens, trained,
	       s->n_docs, s->n_docs == 1 ? "" : "s", truncated ? ", truncated" : "",
	       !pairwise ? "" : s->doc_flags[0] & SHARD_DOC_REJECTED ? ", rejected" : ", chosen");
	uint32_t at = 0;
	char last = '\n';
	for (uint32_t d = 0; d < s->n_docs; d++) {
		if (s->n_docs > 1)
			printf("--- document %u: %u tokens%s\n", d + 1, s->doc_len[d],
			       s->doc_flags[d] & SHARD_DOC_TRUNCATED ? ", truncated" : "");
		uint32_t end = at + s->doc_len[d];
		while (at < end) {
			uint32_t j = at;
			while (j < end && s->mask[j] == s->mask[at]) j++;
			size_t len;
			char *txt = tokenizer_decode(t, s->ids + at, j - at, 0, &len, NULL);
			if (!txt) cli_die(EXIT_RUNTIME, "sample %ld: an id outside the tokenizer", n);
			if (s->mask[at]) fputs("\xe2\x9f\xa6", stdout); /* ⟦ */
			fwrite(txt, 1, len, stdout);
			if (len) last = txt[len - 1];
			if (s->mask[at]) fputs("\xe2\x9f\xa7", stdout), last = 0; /* ⟧ */
			free(txt);
			at = j;
		}
		if (last != '\n') putchar('\n');
		last = '\n';
	}
}

/* One line: what LLaMA-Factory's dataset holds for the sample, labels -100
 * where the loss is masked, so tests compare the two with diff. */
static void print_json(const shard_sample *s)
{
	fputs("{\"input_ids\":[", stdout);
	for (uint32_t i = 0; i < s->n_tokens; i++) printf(i ? ",%u" : "%u", s->ids[i]);
	fputs("],\"labels\":[", stdout);
	for (uint32_t i = 0; i < s->n_tokens; i++) {
		if (i) putchar(',');
		if (s->mask[i]) printf("%u", s->ids[i]);
		else fputs("-100", stdout);
	}
	fputs("],\"docs\":[", stdout);
	for (uint32_t d = 0; d < s->n_docs; d++) printf(d ? ",%u" : "%u", s->doc_len[d]);
	fputs("],\"truncated\":[", stdout);
	for (uint32_t d = 0; d < s->n_docs; d++)
		fputs(d ? (s->doc_flags[d] & 1 ? ",true" : ",false") : (s->doc_flags[d] & 1 ? "true" : "false"),
		      stdout);
	fputs(s->doc_flags[0] & SHARD_DOC_REJECTED ? "],\"rejected\":true" : "]", stdout);
	if (s->soft_n) { /* "soft": [[position, [id, logprob, id, logprob, ...]], ...] */
		fputs(",\"soft\":[", stdout);
		for (uint32_t i = 0; i < s->soft_n; i++) {
			printf(i ? ",[%u,[" : "[%u,[", s->soft_pos[i]);
			for (uint32_t a = 0; a < s->soft_k; a++)
				printf(a ? ",%u,%.9g" : "%u,%.9g", s->soft_id[(size_t)i * s->soft_k + a],
				       (double)s->soft_lp[(size_t)i * s->soft_k + a]);
			fputs("]]", stdout);
		}
		putchar(']');
	}
	fputs("}\n", stdout);
}

static void inspect_count(struct inspect_stats *is, const shard_sample *s)
{
	is->samples++;
	is->docs += s->n_docs;
	if (s->n_docs > is->max_docs) is->max_docs = s->n_docs;
	is->tokens += s->n_tokens;
	for (uint32_t i = 0; i < s->n_tokens; i++) is->trained += s->mask[i];
	for (uint32_t d = 0; d < s->n_docs; d++) is->truncated += s->doc_flags[d] & SHARD_DOC_TRUNCATED;
	int b = 0;
	while (b < 31 && (1u << b) < s->n_tokens) b++;
	is->hist[b]++;
}

static void print_stats(FILE *f, const struct inspect_stats *is)
{
	double pct = is->tokens ? 100.0 * (double)is->trained / (double)is->tokens : 0;
	fprintf(f, "samples            %ld\n", is->samples);
	fprintf(f, "documents          %ld (%.2f a sample, at most %ld)\n", is->docs,
		is->samples ? (double)is->docs / (double)is->samples : 0, is->max_docs);
	fprintf(f, "tokens             %llu (%.1f a sample)\n", (unsigned long long)is->tokens,
		is->samples ? (double)is->tokens / (double)is->samples : 0);
	fprintf(f, "trained tokens     %llu (%.1f%%)\n", (unsigned long long)is->trained, pct);
	fprintf(f, "truncated          %ld document%s\n", is->truncated, is->truncated == 1 ? "" : "s");
	if (is->packed && is->samples)
		fprintf(f, "packing efficiency %.1f%% of %ld x %u tokens\n",
			100.0 * (double)is->tokens / ((double)is->samples * is->cutoff), is->samples,
			is->cutoff);
	if (is->pairwise)
		fprintf(f, "preference pairs   %ld (each a chosen and a rejected sample)\n", is->samples / 2);
	fprintf(f, "cutoff length      %u\n", is->cutoff);
	fprintf(f, "chat template      %s\n", is->template_name);
	fprintf(f, "length histogram (tokens a sample)\n");
	long most = 1;
	for (int b = 0; b < 32; b++) if (is->hist[b] > most) most = is->hist[b];
	for (int b = 0; b < 32; b++) {
		if (!is->hist[b]) continue;
		unsigned lo = b ? (1u << (b - 1)) + 1 : 1, hi = 1u << b;
		fprintf(f, "  %8u..%-8u %8ld ", lo > hi ? hi : lo, hi, is->hist[b]);
		for (long k = 0; k < (is->hist[b] * 40 + most - 1) / most; k++) fputc('#', f);
		fputc('\n', f);
	}
}

static int run_inspect(const struct opts *o, const tokenizer *t, const uint8_t *fp,
		       const char **inputs, int n_inputs)
{
	struct inspect_stats is = {0};
	int status = 0;
	uint8_t first[32];
	for (int i = 0; i < n_inputs && status == 0; i++) {
		char *err = NULL;
		shard_reader *r = shard_reader_open(inputs[i], &err);
		if (!r) {
			cli_warn("%s", err);
			free(err);
			status = EXIT_RUNTIME;
			break;
		}
		const shard_header *h = shard_reader_header(r);
		const uint8_t *want = fp ? fp : i ? first : NULL;
		if (i == 0) memcpy(first, h->fingerprint, 32);
		if (want && memcmp(want, h->fingerprint, 32) != 0) {
			char a[65], b[65];
			shard_fingerprint_hex(h->fingerprint, a);
			shard_fingerprint_hex(want, b);
			cli_warn("%s: made with another tokenizer (fingerprint %s, %s's is %s)",
				 inputs[i], a, fp ? o->tokenizer : inputs[0], b);
			shard_reader_close(r);
			status = EXIT_RUNTIME;
			break;
		}
		if (t && h->vocab_size != tokenizer_vocab_size(t)) {
			cli_warn("%s: vocabulary of %u, the tokenizer's is %u", inputs[i], h->vocab_size,
				 tokenizer_vocab_size(t));
			shard_reader_close(r);
			status = EXIT_RUNTIME;
			break;
		}
		if (h->cutoff_len > is.cutoff) is.cutoff = h->cutoff_len;
		if (i == 0) snprintf(is.template_name, sizeof is.template_name, "%s", h->template_name);
		else if (strcmp(is.template_name, h->template_name)) strcpy(is.template_name, "mixed");
		is.packed |= (h->flags & SHARD_PACKED) != 0;
		is.pairwise |= (h->flags & SHARD_PAIRWISE) != 0;
		shard_sample s;
		int k;
		while ((k = shard_reader_next(r, &s)) > 0) {
			inspect_count(&is, &s);
			if (o->json) print_json(&s);
			else if (!o->stats_only) print_text(t, &s, is.samples, (h->flags & SHARD_PAIRWISE) != 0);
		}
		if (k < 0) {
			cli_warn("%s", shard_reader_error(r));
			status = EXIT_RUNTIME;
		}
		shard_reader_close(r);
	}
	if (status == 0 && !o->json) {
		if (!o->stats_only) putchar('\n');
		print_stats(stdout, &is);
	} else if (status == 0 && !o->quiet) {
		fprintf(stderr, "%s: %ld samples, %llu tokens, %llu trained\n", cli_prog, is.samples,
			(unsigned long long)is.tokens, (unsigned long long)is.trained);
	}
	return status;
}

/* ---- the entry point -------------------------------------------------- */

/* --teacher-tokenizer: the teacher's tokenizer must be the student's t
 * (fingerprint fp), or its soft labels name other tokens. Says what
 * differs first: an id's token, the number of ids, or the rest (merges,
 * pre-tokenizer, normalizer, flags). Returns 0, or -1 having said why. */
static int teacher_check(const struct opts *o, const tokenizer *t, const uint8_t fp[32])
{
	char *err = NULL;
	uint8_t tfp[32];
	tokenizer *u = tokenizer_load(o->teacher_tokenizer, &err);
	if (!u || shard_fingerprint(o->teacher_tokenizer, tfp, &err)) {
		cli_warn("%s", err);
		free(err);
		tokenizer_free(u);
		return -1;
	}
	int rc = 0;
	if (memcmp(fp, tfp, 32)) {
		uint32_t n = tokenizer_vocab_size(t), m = tokenizer_vocab_size(u), i = 0;
		char *a = NULL, *b = NULL;
		size_t la = 0, lb = 0;
		for (; i < n && i < m; i++) {
			a = tokenizer_decode(t, &i, 1, 0, &la, NULL);
			b = tokenizer_decode(u, &i, 1, 0, &lb, NULL);
			if (!a || !b || la != lb || memcmp(a, b, la)) break;
			free(a), free(b);
			a = b = NULL;
		}
		if (i < n && i < m)
			cli_warn("--teacher-tokenizer %s: not the student's tokenizer: id %u is \"%.*s\" for the teacher and "
				 "\"%.*s\" for the student; its soft labels would name other tokens",
				 o->teacher_tokenizer, i, b ? (int)lb : 0, b ? b : "", a ? (int)la : 0, a ? a : "");
		else if (n != m)
			cli_warn("--teacher-tokenizer %s: not the student's tokenizer: %u ids, the student's %u",
				 o->teacher_tokenizer, m, n);
		else
			cli_warn("--teacher-tokenizer %s: the same tokens as the student's, but not the same tokenizer (its "
				 "merges, pre-tokenizer or normalizer differ): the teacher's tokens would not be the student's",
				 o->teacher_tokenizer);
		free(a), free(b);
		rc = -1;
	}
	tokenizer_free(u);
	return rc;
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		cli_usage_error(usage, "%s must be an integer from %ld to %ld", what, lo, hi);
	return v;
}

int main(int argc, char **argv)
{
	cli_init("ds-tokenize");
	struct opts o = {.mode = MODE_SHARDS, .cutoff = 8192, .jobs = 1};
	enum { O_TEMPLATE = 256, O_SYSTEM, O_CUTOFF, O_TOP, O_MASKH, O_PACK, O_NOTRUNC, O_JSON, O_PRESERVE,
	       O_NOTHINK, O_SOFT, O_TEACHER };
	static const struct option longopts[] = {
		{"tokenizer", 1, 0, 't'}, {"skip-bad", 0, 0, 'B'}, {"replace", 0, 0, 'R'},
		{"skip-special", 0, 0, 'S'}, {"quiet", 0, 0, 'q'}, {"output", 1, 0, 'o'},
		{"template", 1, 0, O_TEMPLATE}, {"system", 1, 0, O_SYSTEM},
		{"cutoff-len", 1, 0, O_CUTOFF}, {"train-on-prompt", 0, 0, O_TOP},
		{"mask-history", 0, 0, O_MASKH}, {"pack", 0, 0, O_PACK},
		{"preserve-thinking", 0, 0, O_PRESERVE}, {"no-thinking", 0, 0, O_NOTHINK},
		{"no-truncate", 0, 0, O_NOTRUNC}, {"json", 0, 0, O_JSON}, {"stats", 0, 0, 's'},
		{"jobs", 1, 0, 'j'}, {"soft-labels", 0, 0, O_SOFT},
		{"teacher-tokenizer", 1, 0, O_TEACHER},
		CLI_LONGOPTS_COMMON, {0, 0, 0, 0}};

	const char *sub = argc > 1 ? argv[1] : "";
	int shift = 1;
	if (!strcmp(sub, "encode")) o.mode = MODE_ENCODE;
	else if (!strcmp(sub, "decode")) o.mode = MODE_DECODE;
	else if (!strcmp(sub, "inspect")) o.mode = MODE_INSPECT;
	else if (!strcmp(sub, "shards")) o.mode = MODE_SHARDS;
	else if (argc > 1 && sub[0] != '-') /* a FILE comes after the options */
		cli_usage_error(usage, "unknown subcommand '%s' (shards, inspect, encode or decode)", sub);
	else shift = 0;
	if (shift) {
		argv[1] = argv[0];
		argc--, argv++;
	}

	int c, sharding = 0, inspecting = 0, decoding = 0, jobbing = 0;
	while ((c = getopt_long(argc, argv, "t:o:j:sqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o.tokenizer = optarg; break;
		case 'B': o.skip_bad = 1; break;
		case 'R': o.decode_flags |= TOKENIZER_DECODE_REPLACE, decoding = 1; break;
		case 'S': o.decode_flags |= TOKENIZER_DECODE_SKIP_SPECIAL, decoding = 1; break;
		case 'q': o.quiet = 1; break;
		case 'j': o.jobs = (int)parse_long(optarg, "-j", 1, 256), jobbing = 1; break;
		case 'o': o.output = optarg, sharding = 1; break;
		case O_TEMPLATE: o.template_name = optarg, sharding = 1; break;
		case O_SYSTEM: o.system = optarg, sharding = 1; break;
		case O_CUTOFF:
			o.cutoff = parse_long(optarg, "--cutoff-len", 2, SHARD_MAX_TOKENS);
			sharding = 1;
			break;
		case O_TOP: o.train_on_prompt = 1, sharding = 1; break;
		case O_MASKH: o.mask_history = 1, sharding = 1; break;
		case O_PRESERVE: o.preserve_thinking = 1, sharding = 1; break;
		case O_NOTHINK: o.no_thinking = 1, sharding = 1; break;
		case O_PACK: o.pack = 1, sharding = 1; break;
		case O_NOTRUNC: o.no_truncate = 1, sharding = 1; break;
		case O_SOFT: o.soft = 1, sharding = 1; break;
		case O_TEACHER: o.teacher_tokenizer = optarg, o.soft = 1, sharding = 1; break;
		case O_JSON: o.json = 1, inspecting = 1; break;
		case 's': o.stats_only = 1, inspecting = 1; break;
		case 'h': fputs(usage, stdout); fputs(help, stdout); cli_close_stdout(); return 0;
		case 'V': cli_version(); cli_close_stdout(); return 0;
		default: cli_usage_error(usage, "bad option");
		}
	}
	if (sharding && o.mode != MODE_SHARDS)
		cli_usage_error(usage, "that option is for making shards");
	if (inspecting && o.mode != MODE_INSPECT) cli_usage_error(usage, "--json and --stats are for inspect");
	if (decoding && o.mode != MODE_DECODE)
		cli_usage_error(usage, "--replace and --skip-special are for decode");
	if (jobbing && o.mode == MODE_INSPECT) cli_usage_error(usage, "-j is for encode, decode and shards");
	if (o.json && o.stats_only) cli_usage_error(usage, "--json or --stats, not both");
	if (o.mode != MODE_INSPECT && !o.tokenizer) cli_usage_error(usage, "-t TOKENIZER is required");
	if (o.mode == MODE_INSPECT && !o.tokenizer && !o.json && !o.stats_only)
		cli_usage_error(usage, "-t TOKENIZER is required to print text (or --json, --stats)");
	if (o.mode == MODE_SHARDS) {
		if (o.template_name && !(o.tpl = chat_template_find(o.template_name)))
			cli_usage_error(usage, "unknown template '%s' (%s)", o.template_name,
					chat_template_names());
		if (o.train_on_prompt && o.mask_history)
			cli_usage_error(usage, "--train-on-prompt and --mask-history exclude each other");
		if (o.system) {
			jv v = jv_string(o.system);
			int same = (size_t)jv_string_length_bytes(jv_copy(v)) == strlen(o.system) &&
				   !strcmp(jv_string_value(v), o.system);
			jv_free(v);
			if (!same) cli_usage_error(usage, "--system is not valid UTF-8");
		}
		if (!o.output) cli_refuse_tty_stdout();
	}

	char *err = NULL;
	tokenizer *t = NULL;
	uint8_t fp[32];
	if (o.tokenizer) {
		t = tokenizer_load(o.tokenizer, &err);
		if (!t || (o.mode >= MODE_SHARDS && shard_fingerprint(o.tokenizer, fp, &err))) {
			cli_warn("%s", err);
			free(err);
			tokenizer_free(t);
			return EXIT_RUNTIME;
		}
	}
	if (o.teacher_tokenizer && teacher_check(&o, t, fp)) {
		tokenizer_free(t);
		return EXIT_RUNTIME;
	}
	const char *stdin_only[] = {"-"};
	const char **inputs = optind < argc ? (const char **)argv + optind : stdin_only;
	int n_inputs = optind < argc ? argc - optind : 1;
	struct stats st = {0};
	int status = 0;

	if (o.mode == MODE_INSPECT) {
		status = run_inspect(&o, t, t ? fp : NULL, inputs, n_inputs);
		tokenizer_free(t);
		cli_close_stdout();
		return status;
	}
	if (o.mode == MODE_SHARDS) {
		/* Without --template, the template the tokenizer was made for:
		 * ChatML markers say qwen, R1-Distill's say deepseekr1. */
		char why[256];
		const char *bad = NULL;
		if (!o.tpl && !(o.tpl = chat_template_guess(t)))
			bad = "neither Qwen's <|im_start|> nor R1-Distill's <\uff5cUser\uff5c> is a token: "
			      "name the chat template with --template";
		else if (!o.tpl->reasoning && (o.preserve_thinking || o.no_thinking))
			bad = o.no_thinking ? "--no-thinking is for a reasoning template (deepseekr1)"
					    : "--preserve-thinking is for a reasoning template (deepseekr1)";
		else
			bad = chat_template_check(o.tpl, t, why, sizeof why);
		if (bad) {
			cli_warn("%s: %s", o.tokenizer, bad);
			tokenizer_free(t);
			return EXIT_RUNTIME;
		}
		FILE *out = stdout;
		char *tmp = NULL;
		if (o.output) { /* a killed run leaves OUT.tmp, never a short OUT */
			size_t n = strlen(o.output) + 8;
			tmp = xmalloc(n);
			snprintf(tmp, n, "%s.tmp", o.output);
			/* locked before it is emptied: a second run with the same -o
			 * stops without touching it ("OUT is in use by pid N") */
			int fd = open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
			if (fd < 0) cli_die(EXIT_RUNTIME, "%s: %m", tmp);
			resume_lock(fd, o.output);
			if (ftruncate(fd, 0) != 0 || !(out = fdopen(fd, "wb"))) cli_die(EXIT_RUNTIME, "%s: %m", tmp);
		}
		status = run_shards(&o, t, fp, inputs, n_inputs, out, &st);
		if (tmp) {
			if (fclose(out) != 0 && status == 0) {
				cli_warn("%s: %m", tmp);
				status = EXIT_RUNTIME;
			}
			if (status == 0 && rename(tmp, o.output) != 0) {
				cli_warn("%s: %m", o.output);
				status = EXIT_RUNTIME;
			}
			if (status != 0) unlink(tmp);
			free(tmp);
		}
	} else {
		status = run(&o, t, inputs, n_inputs, &st);
	}
	tokenizer_free(t);
	if (status == 0 && st.records == 0 && st.bad == 0) {
		cli_warn("no records in the input");
		status = EXIT_RUNTIME;
	}
	if (!o.quiet && o.mode == MODE_SHARDS) {
		fprintf(stderr, "%s: %ld records, %ld samples, %llu tokens, %llu trained, %ld truncated, "
				"%ld bad line%s skipped\n",
			cli_prog, st.records, st.samples, (unsigned long long)st.tokens,
			(unsigned long long)st.trained, st.truncated, st.bad, st.bad == 1 ? "" : "s");
		if (o.soft)
			fprintf(stderr, "%s: %llu trained tokens with the teacher's soft labels (%.1f%%)\n", cli_prog,
				(unsigned long long)st.soft, st.trained ? 100.0 * (double)st.soft / (double)st.trained : 0.0);
		if (o.pack && st.samples)
			fprintf(stderr, "%s: packed into %ld sequences of %ld tokens: %.1f%% efficiency\n",
				cli_prog, st.samples, o.cutoff,
				100.0 * (double)st.tokens / ((double)st.samples * (double)o.cutoff));
	} else if (!o.quiet) {
		fprintf(stderr, "%s: %ld records, %llu tokens, %ld bad line%s skipped\n", cli_prog,
			st.records, (unsigned long long)st.tokens, st.bad, st.bad == 1 ? "" : "s");
	}
	cli_close_stdout();
	return status;
}
