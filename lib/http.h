/* http.h — HTTP requests over libcurl, with the retry policy every ds
 * program shares: exponential backoff with jitter on connection errors,
 * 429 (honouring Retry-After) and 5xx; never on other 4xx.
 *
 * Secrets: a bearer token is passed in, put in one header, and never
 * printed, logged or kept in a reply.
 */
#ifndef DS_HTTP_H
#define DS_HTTP_H

#include <stddef.h>
#include <stdio.h>

typedef struct http_reply {
	long status;       /* 0 when no reply came */
	char *body;        /* owned; NUL-terminated; NULL when written to a file */
	size_t len;
	char *headers;     /* owned: the final response's header lines */
	double retry_after; /* seconds from Retry-After, or -1 */
	char *location;    /* owned: a redirect not followed, as an absolute URL
			      (an absolute Location byte for byte; a relative one
			      resolved against the request's URL), or NULL */
	long long rl_remaining; /* RateLimit: "policy";r=N;t=S (the IETF draft the */
	double rl_reset;        /* hub sends): requests left, seconds to reset; -1 */
} http_reply;

typedef struct http_opts {
	const char *bearer;  /* token for "Authorization: Bearer", or NULL; borrowed */
	int follow;          /* follow redirects (auth is never sent along) */
	int head;            /* HEAD instead of GET */
	long connect_timeout_s; /* default 30 */
	long stall_timeout_s;   /* abort when under 1 byte/s this long; default 60 */
	long long range_from;   /* >0: ask for bytes from there on (Range) */
	FILE *sink;          /* when set, a 2xx body is appended there, not kept */
	/* Or, when set, a 2xx body goes to this callback as it arrives; it
	 * returns how many bytes it took (fewer aborts the transfer). */
	size_t (*on_data)(void *ud, const char *p, size_t n);
	void *on_data_ud;
	const char *final_error_code; /* a reply whose X-Error-Code is this is
					 not retried (the server says a retry
					 cannot help); borrowed */
	const char *post;    /* when set, POST this JSON body (Content-Type:
				application/json) instead of GET; borrowed */
} http_opts;

typedef struct http_retry {
	int attempts;        /* total tries, at least 1; default 6 */
	double base_s;       /* first backoff; doubles each time; default 1 */
	double max_s;        /* cap on one backoff wait; default 60 */
	double budget_s;     /* cap on all the waiting for one request, Retry-After
				included (honoured in full while it fits); default
				900, DS_RETRY_BUDGET_S */
} http_retry;

/* Initialise libcurl once. http_request does it when needed, but a
 * program that makes requests from several threads calls this first, before
 * any thread starts (curl_global_init is not thread-safe). */
void http_init(void);

/* The stall time used when a request's stall_timeout_s is 0 (default 60):
 * a program's --timeout. */
void http_set_stall_timeout(long seconds);

/* The defaults, with DS_RETRY_BASE_MS / DS_RETRY_ATTEMPTS /
 * DS_RETRY_BUDGET_S from the environment when set (tests make waits short). */
http_retry http_retry_default(void);

/* Whether a reply of this status is worth retrying: 429 and 5xx. */
int http_retryable(long status);

/* Seconds to wait before try k + 1 (k counts from 0) after reply r (NULL
 * after a transport error), *waited seconds having been waited already for
 * this request: the server's Retry-After when it gave one, else exponential
 * backoff with jitter. Returns -1 when the wait would overrun p's budget;
 * then why (may be NULL) says so in a sentence. */
double http_backoff(const http_retry *p, int k, const http_reply *r, double waited, char *why, size_t whylen);

/* One request. Returns 0 when a reply came (any status), -1 on a transport
 * error with the reason in err. r is filled either way; free it with
 * http_reply_free. */
int http_request(const char *url, const http_opts *o, http_reply *r, char *err, size_t errlen);

/* http_request, retried per policy on transport errors, 429 and 5xx.
 * Safe to call from several threads at once after http_init.
 * Returns as http_request for the last try. *tries (may be NULL) gets how
 * many were made. Progress of the retries goes to stderr as
 * "prog: URL: retrying in Ns (reason)". */
int http_get_retry(const char *url, const http_opts *o, const http_retry *p, http_reply *r,
		   char *err, size_t errlen, int *tries);

/* The value of header name (case-insensitive) in r's final response, as
 * an owned string (free with free()), or NULL. */
char *http_header(const http_reply *r, const char *name);

void http_reply_free(http_reply *r);

/* URL-escape s (borrowed) for a query value. Returns owned. */
char *http_escape(const char *s);

/* ref resolved against base (both borrowed), as a browser would (RFC 3986
 * section 5). Returns owned, or NULL when either is not a URL. */
char *http_resolve(const char *base, const char *ref);

/* 1 when URLs a and b have the same scheme, host (any case) and port
 * (default ports filled in), else 0: where a token may go (RFC 6454's
 * origin). */
int http_same_origin(const char *a, const char *b);

/* 1 when url is http:// or https:// (any case), the only schemes ds
 * requests. */
int http_is_web_url(const char *url);

#endif
