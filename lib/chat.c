/* chat.c — chat templates: conversations into token ids (see chat.h). */
#include "chat.h"

#include "check.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- templates -------------------------------------------------------- */

static const chat_template templates[] = {
	{"qwen", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
	 "<|im_start|>system\n", "<|im_end|>\n",
	 "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n",
	 "", "<|im_end|>\n"},
};

const chat_template *chat_template_find(const char *name)
{
	for (size_t i = 0; i < sizeof templates / sizeof *templates; i++)
		if (!strcmp(templates[i].name, name)) return &templates[i];
	return NULL;
}

const char *chat_template_names(void)
{
	return "qwen";
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

/* ---- encoding --------------------------------------------------------- */

/* Append the ids of pre + s[0..n) + post. */
static void encode_slot(chat_encoder *e, const char *pre, const char *s, size_t n, const char *post)
{
	size_t a = strlen(pre), b = strlen(post), len = a + n + b;
	if (len + 1 > e->buf_cap) {
		e->buf_cap = len + 1 + len / 2;
		e->buf = xrealloc(e->buf, e->buf_cap);
	}
	memcpy(e->buf, pre, a);
	memcpy(e->buf + a, s, n);
	memcpy(e->buf + a + n, post, b);
	if (tokenizer_encode(e->tok, e->buf, len, &e->ids, NULL))
		cli_die(EXIT_RUNTIME, "internal error: invalid UTF-8 reached the encoder");
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
	tokenizer_ids_clear(&e->ids);
	for (int i = 0; i < c->n; i++) {
		if (i == 0 && sys.n) encode_slot(e, tpl->system_pre, sys.s, sys.n, tpl->system_post);
		if (i % 2 == 0) encode_slot(e, tpl->user_pre, c->turns[i].s, c->turns[i].n, tpl->user_post);
		else encode_slot(e, tpl->assistant_pre, c->turns[i].s, c->turns[i].n, tpl->assistant_post);
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
