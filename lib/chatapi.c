/* chatapi.c — one chat-completions request: body, POST, reply. */
#include "chatapi.h"
#include "check.h"
#include "cli.h"
#include "json.h"
#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- endpoint, key, prompt ---------------------------------------------- */

char *chatapi_url(const char *base)
{
	static const char tail[] = "/chat/completions";
	size_t n = strlen(base), t = sizeof tail - 1;
	while (n && base[n - 1] == '/') n--;
	int full = n >= t && !strncmp(base + n - t, tail, t);
	char *u = xmalloc(n + t + 1);
	memcpy(u, base, n);
	memcpy(u + n, full ? "" : tail, full ? 1 : t + 1);
	return u;
}

/* The keys chatapi_key handed out, for chatapi_mask: a server may quote
 * the Authorization header back in an error. */
static char *known_keys[4];

static void remember_key(const char *k)
{
	for (int i = 0; i < 4; i++)
		if (!known_keys[i]) {
			known_keys[i] = xstrdup(k);
			return;
		}
}

void chatapi_mask(char *s)
{
	for (int i = 0; i < 4 && known_keys[i]; i++) {
		size_t n = strlen(known_keys[i]);
		if (n < 4) continue;
		for (char *p; (p = strstr(s, known_keys[i]));) memmove(p + 3, p + n, strlen(p + n) + 1), memcpy(p, "***", 3);
	}
	/* OpenAI-style keys, whoever's: sk- and 8 or more key characters */
	for (char *p = s; (p = strstr(p, "sk-"));) {
		size_t n = strspn(p + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
		if (n >= 8) memmove(p + 6, p + 3 + n, strlen(p + 3 + n) + 1), memcpy(p + 3, "***", 3);
		p += 3;
	}
}

int chatapi_key(const char *file, char **key)
{
	*key = NULL;
	if (file) {
		char *k = cli_read_file(file);
		if (!k) return -1;
		size_t n = strlen(k);
		while (n && strchr(" \t\r\n", k[n - 1])) k[--n] = '\0';
		if (!n) {
			free(k);
			return 0;
		}
		*key = k;
		remember_key(k);
		return 0;
	}
	static const char *const names[] = {"DS_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_API_KEY"};
	for (int i = 0; i < 3; i++) {
		const char *v = getenv(names[i]);
		if (v && *v) {
			*key = xstrdup(v);
			remember_key(v);
			break;
		}
	}
	return 0;
}

void chatapi_key_free(char *key)
{
	if (!key) return;
	/* volatile, so the wipe of memory about to be freed is not optimised away */
	for (volatile char *p = key; *p; p++) *p = '\0';
	free(key);
}

/* Append s[0..n) to a growing string. */
static void put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) *out = xrealloc(*out, *cap = (*len + n + 1) * 2 + 64);
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
}

char *chatapi_fill(const char *tpl, const char *const *names, const char *const *values, int n)
{
	char *out = NULL;
	size_t len = 0, cap = 0;
	put(&out, &len, &cap, "", 0);
	for (const char *p = tpl; *p;) {
		const char *brace = strchr(p, '{');
		if (!brace) {
			put(&out, &len, &cap, p, strlen(p));
			break;
		}
		put(&out, &len, &cap, p, (size_t)(brace - p));
		int k = 0;
		size_t nl = 0;
		for (; k < n; k++) {
			nl = strlen(names[k]);
			if (!strncmp(brace + 1, names[k], nl) && brace[1 + nl] == '}') break;
		}
		if (k == n) { /* not a placeholder: the brace is text */
			put(&out, &len, &cap, "{", 1);
			p = brace + 1;
			continue;
		}
		const char *v = values[k] ? values[k] : "";
		put(&out, &len, &cap, v, strlen(v));
		p = brace + nl + 2;
	}
	while (len && out[len - 1] == '\n') out[--len] = '\0';
	return out;
}

/* ---- request ------------------------------------------------------------ */

char *chatapi_request_body(const char *model, const char *prompt, double temperature, long max_tokens)
{
	jv msg = jv_object_set(jv_object_set(jv_object(), jv_string("role"), jv_string("user")),
			       jv_string("content"), jv_string(prompt));
	jv req = jv_object_set(jv_object(), jv_string("model"), jv_string(model));
	req = jv_object_set(req, jv_string("messages"), jv_array_append(jv_array(), msg));
	req = jv_object_set(req, jv_string("temperature"), jv_number(temperature));
	if (max_tokens > 0) req = jv_object_set(req, jv_string("max_tokens"), jv_number((double)max_tokens));
	req = jv_object_set(req, jv_string("stream"), jv_false());
	jbuf b = {0};
	json_dump(&b, req);
	jv_free(req);
	char *s = xmalloc(b.n + 1);
	memcpy(s, b.p, b.n);
	s[b.n] = '\0';
	jbuf_free(&b);
	return s;
}

int chatapi_post(const char *url, const char *key, const char *body, const http_retry *p, long stall_s,
		 http_reply *r, char *err, size_t errlen, int *tries)
{
	http_opts o = {.bearer = key, .post = body, .stall_timeout_s = stall_s};
	return http_get_retry(url, &o, p, r, err, errlen, tries);
}

enum chatapi_fate chatapi_fate(long status)
{
	if (status / 100 == 2) return CHATAPI_OK;
	if (status == 429 || status / 100 == 5) return CHATAPI_RETRY;
	switch (status) {
	case 400: case 401: case 402: case 403: case 404: case 422: return CHATAPI_STOP;
	default: return CHATAPI_FAIL;
	}
}

void chatapi_describe_error(const http_reply *r, char *buf, size_t n)
{
	/* The OpenAI envelope {"error": {"message": ...}}; a proxy's 502 is
	 * HTML, so a body that is not JSON only gets the status. */
	size_t at;
	const char *why;
	jv body = r->body ? json_parse(r->body, r->len, &at, &why) : jv_invalid();
	jv e = jv_get_kind(body) == JV_KIND_OBJECT ? jv_object_get(jv_copy(body), jv_string("error")) : jv_invalid();
	const char *msg = jv_get_kind(e) == JV_KIND_OBJECT ? jsonl_get_string(e, "message")
			  : jv_get_kind(e) == JV_KIND_STRING ? jv_string_value(e) : NULL;
	const char *hint = r->status == 401 ? " (check the API key)"
			   : r->status == 402 ? " (balance exhausted)"
			   : r->status == 404 ? " (check the base URL and the model)" : "";
	snprintf(buf, n, "HTTP %ld%s%s%s", r->status, msg ? ": " : "", msg ? msg : "", hint);
	chatapi_mask(buf);
	jv_free(e);
	jv_free(body);
}

/* ---- reply -------------------------------------------------------------- */

static char *dup_span(const char *s, const char *e)
{
	char *p = xmalloc((size_t)(e - s) + 1);
	memcpy(p, s, (size_t)(e - s));
	p[e - s] = '\0';
	return p;
}

static int space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Chain of thought and answer of a message (borrowed): reasoning_content
 * when the server has a reasoning parser (DeepSeek, vLLM), else the body
 * of an inline <think>...</think>, or of everything before a lone </think>
 * (when the chat template already opened the tag). */
static void split_think(jv msg, chatapi_answer *a)
{
	const char *rc = jsonl_get_string(msg, "reasoning_content");
	if (!rc) rc = jsonl_get_string(msg, "reasoning");
	const char *c = jsonl_get_string(msg, "content");
	if (!c) c = "";
	const char *close = strstr(c, "</think>");
	if ((rc && *rc) || !close) {
		a->reasoning = xstrdup(rc ? rc : "");
		a->content = xstrdup(c);
		return;
	}
	const char *start = c;
	while (space(*start)) start++;
	if (!strncmp(start, "<think>", 7)) start += 7;
	const char *end = close;
	while (start < end && space(*start)) start++;
	while (end > start && space(end[-1])) end--;
	const char *after = close + 8;
	while (space(*after)) after++;
	a->reasoning = dup_span(start, end);
	a->content = xstrdup(after);
}

int chatapi_parse(const char *body, size_t len, chatapi_answer *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof *a);
	size_t at = 0;
	const char *why = NULL;
	jv b = json_parse(body, len, &at, &why);
	int rc = -1;
	if (jv_get_kind(b) != JV_KIND_OBJECT) {
		if (jv_is_valid(b)) snprintf(err, errlen, "the reply is not a JSON object");
		else snprintf(err, errlen, "the reply is not JSON (byte %zu: %s)", at + 1, why ? why : "?");
		jv_free(b);
		return -1;
	}
	jv choices = jv_object_get(jv_copy(b), jv_string("choices"));
	jv c0 = jv_get_kind(choices) == JV_KIND_ARRAY && jv_array_length(jv_copy(choices)) > 0
			? jv_array_get(jv_copy(choices), 0) : jv_invalid();
	jv msg = jv_get_kind(c0) == JV_KIND_OBJECT ? jv_object_get(jv_copy(c0), jv_string("message")) : jv_invalid();
	if (jv_get_kind(msg) != JV_KIND_OBJECT) {
		snprintf(err, errlen, "the reply has no choices[0].message");
		goto out;
	}
	split_think(msg, a);
	const char *fin = jsonl_get_string(c0, "finish_reason");
	const char *model = jsonl_get_string(b, "model");
	a->finish_reason = fin ? xstrdup(fin) : NULL;
	a->model = model ? xstrdup(model) : NULL;
	rc = 0;
out:
	jv_free(msg);
	jv_free(c0);
	jv_free(choices);
	jv_free(b);
	return rc;
}

void chatapi_answer_free(chatapi_answer *a)
{
	free(a->reasoning);
	free(a->content);
	free(a->finish_reason);
	free(a->model);
	memset(a, 0, sizeof *a);
}
