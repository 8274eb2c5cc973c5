/* chat.c — chat templates: conversations into token ids (see chat.h). */
#include "chat.h"

#include "check.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- templates -------------------------------------------------------- */

/* R1-Distill-Qwen's tokens by their text: <｜begin▁of▁sentence｜> and
 * <｜end▁of▁sentence｜> (tokenizer_config.json's bos_token and eos_token),
 * <｜User｜> and <｜Assistant｜> (its chat template's turn markers). */
#define R1_BOS "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
#define R1_EOS "<\uff5cend\u2581of\u2581sentence\uff5c>"
#define R1_USER "<\uff5cUser\uff5c>"
#define R1_ASSISTANT "<\uff5cAssistant\uff5c>"

static const chat_template templates[] = {
	{.name = "qwen",
	 .default_system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
	 .bos = "",
	 .system_pre = "<|im_start|>system\n", .system_post = "<|im_end|>\n",
	 .user_pre = "<|im_start|>user\n", .user_post = "<|im_end|>\n<|im_start|>assistant\n",
	 .assistant_pre = "", .assistant_post = "<|im_end|>\n",
	 .eos = "", .stop = "<|im_end|>",
	 .tokens = {"<|im_start|>", "<|im_end|>"}},
	/* LF: format_prefix {"bos_token"}, format_system "{{content}}",
	 * format_assistant ["{{content}}", {"eos_token"}], no default system */
	{.name = "deepseekr1",
	 .default_system = "",
	 .bos = R1_BOS,
	 .system_pre = "", .system_post = "",
	 .user_pre = R1_USER, .user_post = R1_ASSISTANT,
	 .assistant_pre = "", .assistant_post = "",
	 .eos = R1_EOS, .stop = R1_EOS,
	 .reasoning = 1,
	 .tokens = {R1_BOS, R1_EOS, R1_USER, R1_ASSISTANT}},
};

static const struct {
	const char *alias, *name;
} aliases[] = {{"r1-distill", "deepseekr1"}};

const chat_template *chat_template_find(const char *name)
{
	for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
		if (!strcmp(aliases[i].alias, name)) name = aliases[i].name;
	for (size_t i = 0; i < sizeof templates / sizeof *templates; i++)
		if (!strcmp(templates[i].name, name)) return &templates[i];
	return NULL;
}

const char *chat_template_names(void)
{
	return "qwen, deepseekr1 (or r1-distill)";
}

/* Whether s is one token of t. */
static int one_token(const tokenizer *t, const char *s)
{
	tokenizer_ids ids = {0};
	int one = !tokenizer_encode(t, s, strlen(s), &ids, NULL) && ids.n == 1;
	tokenizer_ids_free(&ids);
	return one;
}

const char *chat_template_check(const chat_template *tpl, const tokenizer *t, char *why,
				size_t why_n)
{
	for (size_t i = 0; i < sizeof tpl->tokens / sizeof *tpl->tokens && tpl->tokens[i]; i++) {
		if (!one_token(t, tpl->tokens[i])) {
			snprintf(why, why_n, "template %s: \"%s\" is not one token in this tokenizer",
				 tpl->name, tpl->tokens[i]);
			return why;
		}
	}
	return NULL;
}

const chat_template *chat_template_guess(const tokenizer *t)
{
	/* R1-Distill's tokenizer has no <|im_start|>, Qwen's no <｜User｜>;
	 * should one ever have both, the R1 markers are the rarer sign */
	if (one_token(t, R1_USER) && one_token(t, R1_ASSISTANT)) return chat_template_find("deepseekr1");
	if (one_token(t, "<|im_start|>") && one_token(t, "<|im_end|>")) return chat_template_find("qwen");
	return NULL;
}

/* ---- conversations ---------------------------------------------------- */

void chat_conv_add(chat_conv *c, const char *s, size_t n)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 8;
		c->turns = xrealloc(c->turns, (size_t)c->cap * sizeof *c->turns);
	}
	c->turns[c->n++] = (chat_turn){s, n};
}

void chat_conv_free(chat_conv *c)
{
	free(c->turns);
	c->turns = NULL;
	c->n = c->cap = 0;
}

/* The string of v (borrowed, not consumed) into *t; t->s borrows from the
 * record holding v. */
static int turn_of(jv v, chat_turn *t)
{
	if (jv_get_kind(v) != JV_KIND_STRING) return -1;
	t->s = jv_string_value(v);
	t->n = (size_t)jv_string_length_bytes(jv_copy(v));
	return 0;
}

static const char *role_name(const char *r)
{
	if (!strcmp(r, "user") || !strcmp(r, "human")) return "user";
	if (!strcmp(r, "assistant") || !strcmp(r, "gpt")) return "assistant";
	if (!strcmp(r, "system")) return "system";
	return NULL;
}

const char *chat_conv_parse(jv rec, chat_conv *c, int end, char *why, size_t why_n)
{
	const char *err = NULL;
	c->n = 0;
	c->first = 0;
	c->system.s = NULL;
	c->system.n = 0;
	jv list = jv_object_get(jv_copy(rec), jv_string("conversations"));
	const char *rk = "from", *ck = "value", *lk = "conversations";
	if (jv_get_kind(list) != JV_KIND_ARRAY) {
		jv_free(list);
		list = jv_object_get(jv_copy(rec), jv_string("messages"));
		rk = "role", ck = "content", lk = "messages";
	}
	if (jv_get_kind(list) != JV_KIND_ARRAY) {
		jv_free(list);
		return "no \"conversations\" or \"messages\" list";
	}
	jv sys = jv_object_get(jv_copy(rec), jv_string("system"));
	if (jv_get_kind(sys) != JV_KIND_NULL && jv_get_kind(sys) != JV_KIND_INVALID &&
	    turn_of(sys, &c->system)) {
		err = "\"system\" is not a string";
	}
	jv_free(sys);
	int n = jv_array_length(jv_copy(list));
	for (int i = 0; i < n && !err; i++) {
		jv m = jv_array_get(jv_copy(list), i);
		jv role = jv_get_kind(m) == JV_KIND_OBJECT ? jv_object_get(jv_copy(m), jv_string(rk))
							   : jv_invalid();
		jv content = jv_get_kind(m) == JV_KIND_OBJECT ? jv_object_get(jv_copy(m), jv_string(ck))
							      : jv_invalid();
		const char *r = jv_get_kind(role) == JV_KIND_STRING ? role_name(jv_string_value(role)) : NULL;
		const char *want = c->n % 2 == 0 ? "user" : "assistant";
		chat_turn t;
		if (!r) {
			snprintf(why, why_n, "%s[%d]: no \"%s\" of user, assistant or system", lk, i, rk);
			err = why;
		} else if (turn_of(content, &t)) {
			snprintf(why, why_n, "%s[%d]: \"%s\" is not a string", lk, i, ck);
			err = why;
		} else if (!strcmp(r, "system") && i == 0) {
			c->system = t; /* a leading system message, as LLaMA-Factory's system_tag */
			c->first = 1;
		} else if (strcmp(r, want) != 0) {
			snprintf(why, why_n, "%s[%d]: roles out of order: expected %s, got %s", lk, i,
				 want, r);
			err = why;
		} else if (t.n == 0) {
			snprintf(why, why_n, "%s[%d]: empty %s turn", lk, i, r);
			err = why;
		} else {
			chat_conv_add(c, t.s, t.n);
		}
		jv_free(role);
		jv_free(content);
		jv_free(m);
	}
	jv_free(list);
	if (!err && c->n == 0) err = "no turns";
	else if (!err && end == CHAT_END_ASSISTANT && c->n % 2) err = "the last turn is not the assistant's";
	else if (!err && end == CHAT_END_USER && c->n % 2 == 0) err = "the last turn is not the user's";
	return err;
}

int chat_is_pair(jv rec)
{
	if (jv_get_kind(rec) != JV_KIND_OBJECT) return 0;
	jv c = jv_object_get(jv_copy(rec), jv_string("chosen")), r = jv_object_get(jv_copy(rec), jv_string("rejected"));
	int yes = jv_is_valid(c) && jv_is_valid(r);
	jv_free(c);
	jv_free(r);
	return yes;
}

/* One side of a pair as a conversation record: {lk: list, "system": ...}
 * (consumes list), parsed into c; a message that fails is named by side. */
static const char *side_parse(jv rec, const char *lk, jv list, chat_conv *c, const char *side, char *why,
			      size_t why_n)
{
	jv one = jv_object_set(jv_object(), jv_string(lk), list);
	jv sys = jv_object_get(jv_copy(rec), jv_string("system"));
	if (jv_is_valid(sys)) one = jv_object_set(one, jv_string("system"), sys);
	else jv_free(sys);
	char inner[256];
	const char *err = chat_conv_parse(one, c, CHAT_END_ASSISTANT, inner, sizeof inner);
	jv_free(one); /* the texts live on in rec: the strings are shared */
	if (!err) return NULL;
	snprintf(why, why_n, "%s: %s", side, err);
	return why;
}

const char *chat_pair_parse(jv rec, chat_conv *c, chat_conv *r, char *why, size_t why_n)
{
	if (!chat_is_pair(rec)) return "no \"chosen\" and \"rejected\"";
	jv ch = jv_object_get(jv_copy(rec), jv_string("chosen")), rj = jv_object_get(jv_copy(rec), jv_string("rejected"));
	const char *lk = "conversations", *rk = "from", *ck = "value", *asst = "gpt", *err = NULL;
	jv prompt = jv_object_get(jv_copy(rec), jv_string(lk));
	if (jv_get_kind(prompt) != JV_KIND_ARRAY) {
		jv_free(prompt);
		lk = "messages", rk = "role", ck = "content", asst = "assistant";
		prompt = jv_object_get(jv_copy(rec), jv_string(lk));
	}
	jv lc, lr;
	if (jv_get_kind(prompt) == JV_KIND_ARRAY) {
		/* the prompt, then each reply: a message, or its text alone */
		jv *side[2] = {&ch, &rj};
		for (int i = 0; i < 2; i++)
			if (jv_get_kind(*side[i]) == JV_KIND_STRING)
				*side[i] = jv_object_set(jv_object_set(jv_object(), jv_string(rk), jv_string(asst)),
							 jv_string(ck), *side[i]);
		if (jv_get_kind(ch) != JV_KIND_OBJECT || jv_get_kind(rj) != JV_KIND_OBJECT) {
			err = "\"chosen\" and \"rejected\" must be messages (or strings) after a prompt list";
			jv_free(ch), jv_free(rj), jv_free(prompt);
			return err;
		}
		lc = jv_array_append(jv_copy(prompt), ch);
		lr = jv_array_append(prompt, rj);
	} else {
		jv_free(prompt);
		if (jv_get_kind(ch) != JV_KIND_ARRAY || jv_get_kind(rj) != JV_KIND_ARRAY) {
			jv_free(ch), jv_free(rj);
			return "no \"conversations\" or \"messages\" prompt, and \"chosen\" and \"rejected\" are not "
			       "conversations";
		}
		int n = jv_array_length(jv_copy(ch)), m = jv_array_length(jv_copy(rj)), same = n == m && n >= 2;
		for (int i = 0; same && i < n - 1; i++)
			same = jv_equal(jv_array_get(jv_copy(ch), i), jv_array_get(jv_copy(rj), i));
		if (!same) {
			jv_free(ch), jv_free(rj);
			return "the chosen and rejected sides share no prompt: they must be the same conversation up to "
			       "their last message";
		}
		jv first = jv_array_get(jv_copy(ch), 0);
		int sharegpt = jv_get_kind(first) == JV_KIND_OBJECT && jv_object_has(jv_copy(first), jv_string("from"));
		jv_free(first);
		lk = sharegpt ? "conversations" : "messages";
		lc = ch;
		lr = rj;
	}
	err = side_parse(rec, lk, lc, c, "chosen", why, why_n);
	if (!err) err = side_parse(rec, lk, lr, r, "rejected", why, why_n);
	else jv_free(lr);
	return err;
}

/* ---- encoding --------------------------------------------------------- */

/* LF's thought words, and its empty thought (add_thought()). */
#define THINK_OPEN "<think>\n"
#define THINK_CLOSE "\n</think>\n\n"
#define THINK_EMPTY THINK_OPEN THINK_CLOSE

/* Room for k more bytes after e->buf[0..n). */
static void buf_reserve(chat_encoder *e, size_t n, size_t k)
{
	if (n + k + 1 > e->buf_cap) {
		e->buf_cap = n + k + 1 + (n + k) / 2;
		e->buf = xrealloc(e->buf, e->buf_cap);
	}
}

static size_t buf_add(chat_encoder *e, size_t n, const char *s, size_t k)
{
	buf_reserve(e, n, k);
	memcpy(e->buf + n, s, k);
	return n + k;
}

/* Append the ids of e->buf[0..n). */
static void encode_buf(chat_encoder *e, size_t n)
{
	if (n && tokenizer_encode(e->tok, e->buf, n, &e->ids, NULL))
		cli_die(EXIT_RUNTIME, "internal error: invalid UTF-8 reached the encoder");
}

/* Append the ids of pre + s[0..n) + post. */
static void encode_slot(chat_encoder *e, const char *pre, const char *s, size_t n, const char *post)
{
	size_t len = buf_add(e, 0, pre, strlen(pre));
	len = buf_add(e, len, s, n);
	len = buf_add(e, len, post, strlen(post));
	encode_buf(e, len);
}

static const char *find(const char *s, size_t n, const char *what)
{
	return memmem(s, n, what, strlen(what));
}

/* Append s[0..n) to e->buf[0..at) as LF's remove_thought leaves it: every
 * THINK_OPEN ... THINK_CLOSE (the shortest, left to right, as re.sub with
 * a lazy .*?) cut out, then the newlines at the start stripped. Returns the
 * new length. */
static size_t add_without_thoughts(chat_encoder *e, size_t at, const char *s, size_t n)
{
	size_t len = at, no = strlen(THINK_OPEN), nc = strlen(THINK_CLOSE);
	const char *end = s + n;
	for (;;) {
		const char *o = find(s, (size_t)(end - s), THINK_OPEN);
		const char *c = o ? find(o + no, (size_t)(end - o - no), THINK_CLOSE) : NULL;
		if (!c) break; /* no close after the first open: none after a later one either */
		len = buf_add(e, len, s, (size_t)(o - s));
		s = c + nc;
	}
	len = buf_add(e, len, s, (size_t)(end - s));
	size_t k = at;
	while (k < len && e->buf[k] == '\n') k++;
	memmove(e->buf + at, e->buf + k, len - k);
	return len - (k - at);
}

/* LF's ReasoningTemplate (encode_multiturn for training, encode_oneturn
 * for a prompt) on assistant turn i of c: whether its thoughts are cut out
 * (*drop), and whether it gets the empty thought (the return value):
 *  - a prompt's turns are all history: their thoughts go unless
 *    preserve_thinking, and none gets the empty thought;
 *  - oneturn (a preference pair's side): the earlier turns are a prompt's
 *    history as above; the last is trained, as below;
 *  - training, no_thinking (enable_thinking false) cuts every thought;
 *    mask_history without preserve_thinking (discarding_history_cot) cuts
 *    the earlier turns' and gives only the last the empty thought;
 *  - a turn that gets the empty thought is one whose text, cut or not,
 *    has neither "<think>" nor "</think>". */
static int reasoning_turn(chat_encoder *e, const chat_conv *c, int i, int *drop)
{
	int prompt = c->n % 2, last = i == c->n - 1;
	int history = prompt || (!last && (e->oneturn || (e->mask_history && !e->preserve_thinking)));
	*drop = prompt || (history && e->oneturn) ? !e->preserve_thinking : history || e->no_thinking;
	if (history) return 0;
	chat_turn t = c->turns[i];
	if (*drop) {
		size_t n = add_without_thoughts(e, 0, t.s, t.n);
		return !find(e->buf, n, "<think>") && !find(e->buf, n, "</think>");
	}
	return !find(t.s, t.n, "<think>") && !find(t.s, t.n, "</think>");
}

/* Append assistant turn t's slot under a reasoning template, its thoughts
 * cut out when drop. */
static void encode_reasoning_turn(chat_encoder *e, chat_turn t, int drop)
{
	const chat_template *tpl = e->tpl;
	if (!drop) {
		encode_slot(e, tpl->assistant_pre, t.s, t.n, tpl->assistant_post);
		return;
	}
	size_t len = buf_add(e, 0, tpl->assistant_pre, strlen(tpl->assistant_pre));
	len = add_without_thoughts(e, len, t.s, t.n);
	len = buf_add(e, len, tpl->assistant_post, strlen(tpl->assistant_post));
	encode_buf(e, len);
}

void chat_encode(chat_encoder *e, const chat_conv *c, const char *system)
{
	const chat_template *tpl = e->tpl;
	chat_turn sys = c->system;
	if (sys.n == 0) { /* LF: system = system or default_system */
		sys.s = system ? system : tpl->default_system;
		sys.n = strlen(sys.s);
	}
	if ((size_t)c->n > e->msg_cap) {
		e->msg_cap = (size_t)c->n;
		e->msg_end = xrealloc(e->msg_end, e->msg_cap * sizeof *e->msg_end);
	}
	/* The empty thought is trained before the answer (enable_thinking), or
	 * under no_thinking ends the prompt slot before it, untrained; a prompt
	 * (LF's encode_oneturn) ends with it under no_thinking. */
	int prompt = c->n % 2;
	tokenizer_ids_clear(&e->ids);
	for (int i = 0; i < c->n; i++) {
		chat_turn t = c->turns[i];
		if (i == 0) {
			encode_slot(e, tpl->bos, "", 0, "");
			if (sys.n) encode_slot(e, tpl->system_pre, sys.s, sys.n, tpl->system_post);
		}
		int drop = 0, empty = 0;
		if (i % 2 == 0) {
			encode_slot(e, tpl->user_pre, t.s, t.n, tpl->user_post);
			if (tpl->reasoning && e->no_thinking &&
			    (i + 1 < c->n ? reasoning_turn(e, c, i + 1, &drop) : prompt))
				encode_slot(e, "", THINK_EMPTY, strlen(THINK_EMPTY), "");
		} else if (tpl->reasoning) {
			empty = reasoning_turn(e, c, i, &drop);
			if (empty && !e->no_thinking) encode_slot(e, "", THINK_EMPTY, strlen(THINK_EMPTY), "");
			encode_reasoning_turn(e, t, drop);
		} else {
			encode_slot(e, tpl->assistant_pre, t.s, t.n, tpl->assistant_post);
		}
		if (i % 2) encode_slot(e, tpl->eos, "", 0, "");
		e->msg_end[i] = e->ids.n;
	}
}

void chat_encoder_free(chat_encoder *e)
{
	tokenizer_ids_free(&e->ids);
	free(e->msg_end);
	free(e->buf);
	e->msg_end = NULL;
	e->buf = NULL;
	e->msg_cap = e->buf_cap = 0;
}
