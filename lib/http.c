/* http.c — libcurl requests with retries, backoff and Retry-After. */
#include "http.h"
#include "check.h"
#include "cli.h"

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

int http_request(const char *url, const http_opts *o, http_reply *r, char *err, size_t errlen)
{
	global_init();
	memset(r, 0, sizeof *r);
	r->retry_after = -1;
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
	/* Never hand the token to whatever host a redirect names. */
	curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
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
	http_retry p = {6, 1.0, 60.0};
	const char *b = getenv("DS_RETRY_BASE_MS"), *a = getenv("DS_RETRY_ATTEMPTS");
	if (b && *b) p.base_s = atof(b) / 1000.0;
	if (a && atoi(a) > 0) p.attempts = atoi(a);
	return p;
}

static int retryable(long status) { return status == 429 || (status >= 500 && status <= 599); }

int http_get_retry(const char *url, const http_opts *o, const http_retry *p, http_reply *r,
		   char *err, size_t errlen, int *tries)
{
	global_init();
	int rc = -1;
	for (int k = 0; k < (p->attempts > 0 ? p->attempts : 1); k++) {
		if (k) http_reply_free(r);
		rc = http_request(url, o, r, err, errlen);
		if (tries) *tries = k + 1;
		if (rc == 0 && !retryable(r->status)) return 0;
		if (rc == 0 && o->final_error_code) {
			char *code = http_header(r, "X-Error-Code");
			int final = code && strcmp(code, o->final_error_code) == 0;
			free(code);
			if (final) return 0;
		}
		if (rc != 0 && (o->sink || o->on_data)) return rc; /* bytes may be on disk: the caller resumes with range_from */
		if (k + 1 >= p->attempts) break;
		/* Full jitter on an exponential base, so many clients that fail
		 * together do not come back together. */
		double wait = p->base_s * pow(2, k);
		if (wait > p->max_s) wait = p->max_s;
		wait *= 0.5 + 0.5 * ((double)rand() / RAND_MAX);
		if (rc == 0 && r->retry_after >= 0) wait = r->retry_after < p->max_s ? r->retry_after : p->max_s;
		char why[160];
		if (rc == 0) snprintf(why, sizeof why, "HTTP %ld", r->status);
		else snprintf(why, sizeof why, "%s", err);
		fprintf(stderr, "%s: %s: retrying in %.1fs (%s)\n", cli_prog, url, wait, why);
		struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
		nanosleep(&ts, NULL);
	}
	return rc;
}

void http_reply_free(http_reply *r)
{
	free(r->body);
	free(r->headers);
	r->body = r->headers = NULL;
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
