/* chatapi.h — the OpenAI chat-completions protocol for one prompt at a time:
 * the endpoint, the API key, the prompt from a template, the request body,
 * a blocking request under lib/http.c's retry policy, and the reply split
 * into chain of thought and answer.
 *
 * Nothing here touches a jv, so chatapi_post may run on several threads at
 * once (after http_init); the other calls are for the main thread.
 *
 * Secrets: the key is read here, handed to lib/http.c as a bearer token,
 * and wiped by chatapi_key_free; it is never put in a message.
 */
#ifndef DS_CHATAPI_H
#define DS_CHATAPI_H

#include "http.h"

#include <stddef.h>

/* The chat-completions URL of base (borrowed): "/chat/completions" is
 * appended to a base URL ("https://api.deepseek.com", "http://host/v1"),
 * and a URL that already ends so is kept. Returns owned. */
char *chatapi_url(const char *base);

/* The API key: the first line's worth of file (borrowed; trailing white
 * space dropped) when file is set, else $DS_API_KEY, $OPENAI_API_KEY or
 * $DEEPSEEK_API_KEY, the first that is set and not empty. Returns 0 with
 * *key owned (free with chatapi_key_free) or NULL when there is none; -1
 * with errno set when file cannot be read. */
int chatapi_key(const char *file, char **key);

/* Wipe and free a key from chatapi_key. */
void chatapi_key_free(char *key);

/* Mask, in place, what would give a key away in a message that quotes a
 * server (one that echoes the Authorization header in its 401): each key
 * chatapi_key has read becomes ***, and any sk- followed by 8 or more key
 * characters sk-***. */
void chatapi_mask(char *s);

/* The template tpl with every "{NAME}" of names[0..n) replaced by the
 * matching values[i] (NULL reads as ""). Only the template is scanned,
 * never what is put in, so a value holding "{answer}" stays as it is.
 * Trailing newlines are dropped. Borrows all; returns owned. */
char *chatapi_fill(const char *tpl, const char *const *names, const char *const *values, int n);

/* The JSON body of a request with prompt as the one user message (R1's
 * and V3's usage: no system prompt). max_tokens <= 0 leaves the server's
 * default. Borrows; returns owned. */
char *chatapi_request_body(const char *model, const char *prompt, double temperature, long max_tokens);

/* POST body to url with key as bearer token (NULL: none), retried as
 * http_get_retry retries (transport errors, 429, 5xx). stall_s: give up on
 * a reply when no byte came for this long (a non-streamed answer says
 * nothing until it is made). Returns as http_get_retry; free r with
 * http_reply_free. Borrows all. */
int chatapi_post(const char *url, const char *key, const char *body, const http_retry *p, long stall_s,
		 http_reply *r, char *err, size_t errlen, int *tries);

/* What a status says about the requests that follow it. */
enum chatapi_fate {
	CHATAPI_OK,    /* 2xx */
	CHATAPI_RETRY, /* 429, 5xx: try again later (http_get_retry did) */
	CHATAPI_STOP,  /* 400, 401, 402, 403, 404, 422: no request will succeed
			  (bad key, no balance, unknown model, a body the API
			  refuses); stop sending */
	CHATAPI_FAIL,  /* another status: this request failed */
};
enum chatapi_fate chatapi_fate(long status);

/* "HTTP 401: <the error.message of body> (check the API key)" for a reply
 * that is not 2xx, into buf. Borrows r. */
void chatapi_describe_error(const http_reply *r, char *buf, size_t n);

/* An answer: choices[0] of a reply. All owned; free with
 * chatapi_answer_free. */
typedef struct chatapi_answer {
	char *reasoning;     /* the chain of thought: reasoning_content, or the
				body of an inline <think>...</think>; "" when none */
	char *content;       /* the answer after it */
	char *finish_reason; /* or NULL */
	char *model;         /* the model that answered, or NULL */
} chatapi_answer;

/* Parse a 2xx reply body (borrowed; need not be NUL-terminated). Returns
 * 0 and fills a, or -1 with the reason in err when the body is not a chat
 * completion with a choices[0].message. */
int chatapi_parse(const char *body, size_t len, chatapi_answer *a, char *err, size_t errlen);

void chatapi_answer_free(chatapi_answer *a);

#endif
