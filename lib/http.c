/* http.c — libcurl requests with retries, backoff and Retry-After. */
#include "http.h"
#include "check.h"
#include "cli.h"
#include "clock.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static long default_stall_s = 60;

void http_set_stall_timeout(long seconds)
{
	if (seconds > 0) default_stall_s = seconds;
}

static void global_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	srand((unsigned)time(NULL) ^ (unsigned)getpid()); /* the retries' jitter */
}

static void global_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init_once);
}

void http_init(void) { global_init(); }

struct sink {
	http_reply *r;
	size_t cap;
	FILE *file; /* borrowed */
	const http_opts *o;
	long status_seen;
	CURL *curl;
	int write_failed;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t k = size * nmemb;
	long status = 0;
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	if (s->o->on_data && status >= 200 && status < 300) {
		size_t took = s->o->on_data(s->o->on_data_ud, p, k);
		if (took != k) s->write_failed = 1;
		s->r->len += took;
		return took;
	}
	if (s->file && status >= 200 && status < 300) {
		if (fwrite(p, 1, k, s->file) != k) {
			s->write_failed = 1;
			return 0;
		}
		s->r->len += k;
		return k;
	}
	if (s->r->len + k + 1 > s->cap) {
		s->cap = (s->r->len + k + 1) * 2;
		s->r->body = xrealloc(s->r->body, s->cap);
	}
	memcpy(s->r->body + s->r->len, p, k);
	s->r->len += k;
	s->r->body[s->r->len] = '\0';
	return k;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct sink *s = ud;
	size_t k = size * nmemb;
	/* A status line starts a new response (after a redirect or a 100):
	 * keep only the last one's headers. */
	if (k >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		free(s->r->headers);
		s->r->headers = NULL;
	}
	size_t old = s->r->headers ? strlen(s->r->headers) : 0;
	s->r->headers = xrealloc(s->r->headers, old + k + 1);
	memcpy(s->r->headers + old, p, k);
	s->r->headers[old + k] = '\0';
	return k;
}

char *http_header(const http_reply *r, const char *name)
{
	if (!r->headers) return NULL;
	size_t nl = strlen(name);
	for (const char *line = r->headers; *line;) {
		const char *end = strchr(line, '\n');
		if (!end) end = line + strlen(line);
		if ((size_t)(end - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (v < end && (*v == ' ' || *v == '\t')) v++;
			const char *e = end;
			while (e > v && (e[-1] == '\r' || e[-1] == ' ')) e--;
			char *out = xmalloc((size_t)(e - v) + 1);
			memcpy(out, v, (size_t)(e - v));
			out[e - v] = '\0';
			return out;
		}
		line = *end ? end + 1 : end;
	}
	return NULL;
}

/* Retry-After is either seconds or an HTTP date (RFC 9110 §10.2.3). */
static double parse_retry_after(const char *v)
{
	if (!v || !*v) return -1;
	char *end;
	double s = strtod(v, &end);
	if (end != v && *end == '\0') return s < 0 ? 0 : s;
	struct tm tm = {0};
	if (strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
		double d = difftime(timegm(&tm), time(NULL));
		return d < 0 ? 0 : d;
	}
	return -1;
}

/* The hub's rate-limit header (draft-ietf-httpapi-ratelimit-headers):
 * RateLimit: "api";r=REMAINING;t=SECONDS. r and t may come in any order. */
static void parse_ratelimit(const char *v, http_reply *r)
{
	r->rl_remaining = -1;
	r->rl_reset = -1;
	if (!v) return;
	for (const char *p = v; *p; p++) {
		if ((p == v || p[-1] == ';' || p[-1] == ' ') && (p[0] == 'r' || p[0] == 't') && p[1] == '=') {
			char *end;
			double x = strtod(p + 2, &end);
			if (end == p + 2 || x < 0 || x > 1e12) continue;
			if (p[0] == 'r') r->rl_remaining = (long long)x;
			else r->rl_reset = x;
		}
	}
}

int http_request(const char *url, const http_opts *o, http_reply *r, char *err, size_t errlen)
{
	global_init();
	memset(r, 0, sizeof *r);
	r->retry_after = -1;
	r->rl_remaining = -1;
	r->rl_reset = -1;
	CURL *c = curl_easy_init();
	if (!c) {
		snprintf(err, errlen, "cannot start libcurl");
		return -1;
	}
	struct sink s = {.r = r, .file = o->sink, .o = o, .curl = c};
	struct curl_slist *hdr = NULL;
	char *auth = NULL;
	if (o->bearer) {
		size_t n = strlen(o->bearer) + 32;
		auth = xmalloc(n);
		snprintf(auth, n, "Authorization: Bearer %s", o->bearer);
		hdr = curl_slist_append(hdr, auth);
	}
	if (o->post) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->post);
	}
	char range[64];
	if (o->range_from > 0) {
		snprintf(range, sizeof range, "%lld-", o->range_from);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ds/" DS_VERSION);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, o->follow ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	/* Never hand the token to another origin a redirect names: libcurl
	 * sends a custom Authorization header on to the same scheme, host and
	 * port only. And never anything but the web: a hostile server's
	 * Location or link to file:// or dict:// is refused. */
	curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOBODY, o->head ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s ? o->connect_timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->stall_timeout_s ? o->stall_timeout_s : default_stall_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* whatever libcurl decodes */
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024); /* fewer, larger writes */
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &s);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	char *ra = http_header(r, "Retry-After");
	r->retry_after = parse_retry_after(ra);
	free(ra);
	char *rl = http_header(r, "RateLimit");
	parse_ratelimit(rl, r);
	free(rl);
	if (r->status >= 300 && r->status < 400) {
		/* An absolute Location is kept byte for byte (a CDN's signed query
		 * must come back as it was sent); a relative one is resolved. */
		char *loc = http_header(r, "Location");
		if (loc && http_is_web_url(loc)) {
			r->location = loc;
		} else {
			char *abs = NULL;
			if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &abs) == CURLE_OK && abs) r->location = xstrdup(abs);
			free(loc);
		}
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	if (auth) {
		memset(auth, 0, strlen(auth)); /* leave no copy of the token behind */
		free(auth);
	}
	if (!r->body) r->body = xcalloc(1, 1);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", s.write_failed ? "cannot write the download" : curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

http_retry http_retry_default(void)
{
	http_retry p = {6, 1.0, 60.0, 900.0};
	const char *b = getenv("DS_RETRY_BASE_MS"), *a = getenv("DS_RETRY_ATTEMPTS"), *t = getenv("DS_RETRY_BUDGET_S");
	if (b && *b) p.base_s = atof(b) / 1000.0;
	if (a && atoi(a) > 0) p.attempts = atoi(a);
	if (t && *t && atof(t) >= 0) p.budget_s = atof(t);
	return p;
}

int http_retryable(long status) { return status == 429 || (status >= 500 && status <= 599); }

double http_backoff(const http_retry *p, int k, const http_reply *r, double waited, char *why, size_t whylen)
{
	double wait;
	if (r && r->retry_after >= 0) {
		wait = r->retry_after; /* the server knows when it will serve again */
	} else {
		/* Full jitter on an exponential base, so many clients that fail
		 * together do not come back together. */
		wait = p->base_s * pow(2, k);
		if (wait > p->max_s) wait = p->max_s;
		wait *= 0.5 + 0.5 * ((double)rand() / RAND_MAX);
	}
	if (waited + wait > p->budget_s) {
		if (why)
			snprintf(why, whylen, "%s %.0fs more, beyond the retry budget (%.0fs waited of %.0fs; DS_RETRY_BUDGET_S)",
				 r && r->retry_after >= 0 ? "the server asks to wait" : "backing off", wait, waited,
				 p->budget_s);
		return -1;
	}
	return wait;
}

int http_get_retry(const char *url, const http_opts *o, const http_retry *p, http_reply *r,
		   char *err, size_t errlen, int *tries)
{
	global_init();
	int rc = -1;
	double waited = 0;
	for (int k = 0; k < (p->attempts > 0 ? p->attempts : 1); k++) {
		if (k) http_reply_free(r);
		rc = http_request(url, o, r, err, errlen);
		if (tries) *tries = k + 1;
		if (rc == 0 && !http_retryable(r->status)) return 0;
		if (rc == 0 && o->final_error_code) {
			char *code = http_header(r, "X-Error-Code");
			int final = code && strcmp(code, o->final_error_code) == 0;
			free(code);
			if (final) return 0;
		}
		if (rc != 0 && (o->sink || o->on_data)) return rc; /* bytes may be on disk: the caller resumes with range_from */
		if (k + 1 >= p->attempts) break;
		char why[160], over[200];
		if (rc == 0) snprintf(why, sizeof why, "HTTP %ld", r->status);
		else snprintf(why, sizeof why, "%s", err);
		double wait = http_backoff(p, k, rc == 0 ? r : NULL, waited, over, sizeof over);
		if (wait < 0) {
			fprintf(stderr, "%s: %s: giving up (%s): %s\n", cli_prog, url, why, over);
			break;
		}
		fprintf(stderr, "%s: %s: retrying in %.1fs (%s)\n", cli_prog, url, wait, why);
		sleep_s(wait);
		waited += wait;
	}
	return rc;
}

void http_reply_free(http_reply *r)
{
	free(r->body);
	free(r->headers);
	free(r->location);
	r->body = r->headers = r->location = NULL;
	r->len = 0;
}

char *http_escape(const char *s)
{
	global_init();
	char *e = curl_easy_escape(NULL, s, 0);
	char *out = xstrdup(e ? e : "");
	curl_free(e);
	return out;
}

char *http_resolve(const char *base, const char *ref)
{
	global_init();
	if (!*ref) { /* the base itself (RFC 3986 5.2.2), which libcurl takes as "." */
		const char *hash = strchr(base, '#');
		return http_is_web_url(base) ? strndup(base, hash ? (size_t)(hash - base) : strlen(base)) : NULL;
	}
	CURLU *u = curl_url();
	char *out = NULL, *got = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_URL, &got, 0) == CURLUE_OK)
		out = xstrdup(got);
	curl_free(got);
	curl_url_cleanup(u);
	return out;
}

/* scheme://host:port of url, lowercased, ports filled in; owned, or NULL. */
static char *origin_of(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		size_t n = strlen(scheme) + strlen(host) + strlen(port) + 8;
		out = xmalloc(n);
		snprintf(out, n, "%s://%s:%s", scheme, host, port);
		for (char *c = out; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	}
	curl_free(scheme), curl_free(host), curl_free(port);
	curl_url_cleanup(u);
	return out;
}

int http_same_origin(const char *a, const char *b)
{
	global_init();
	char *x = origin_of(a), *y = origin_of(b);
	int same = x && y && strcmp(x, y) == 0;
	free(x), free(y);
	return same;
}

int http_is_web_url(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}
