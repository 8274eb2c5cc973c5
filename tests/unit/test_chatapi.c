/* chatapi: the endpoint from a base URL, templates filled without
 * rescanning what is put in, request bodies as JSON, replies split into
 * chain of thought and answer the three ways servers deliver them, what a
 * status means, and the key from a file or the environment. */
#include "../../lib/chatapi.h"
#include "../../lib/json.h"
#include "../../lib/jsonl.h"
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int url_is(const char *base, const char *want)
{
	char *u = chatapi_url(base);
	int ok = strcmp(u, want) == 0;
	free(u);
	return ok;
}

/* The reply {"model":"m","choices":[{"message":MSG,"finish_reason":"stop"}]}
 * parsed; checks reasoning and content. */
static int split_is(const char *msg, const char *reasoning, const char *content)
{
	char body[1024];
	snprintf(body, sizeof body, "{\"model\":\"m\",\"choices\":[{\"message\":%s,\"finish_reason\":\"stop\"}]}", msg);
	chatapi_answer a;
	char err[128];
	if (chatapi_parse(body, strlen(body), &a, err, sizeof err)) return 0;
	int ok = !strcmp(a.reasoning, reasoning) && !strcmp(a.content, content) && !strcmp(a.model, "m") &&
		 !strcmp(a.finish_reason, "stop");
	chatapi_answer_free(&a);
	return ok;
}

int main(void)
{
	EXPECT(url_is("https://api.deepseek.com", "https://api.deepseek.com/chat/completions"), "url: a host gets /chat/completions");
	EXPECT(url_is("http://h:8000/v1/", "http://h:8000/v1/chat/completions"), "url: a trailing slash is not doubled");
	EXPECT(url_is("http://h/v1/chat/completions", "http://h/v1/chat/completions"), "url: a full endpoint is kept");

	static const char *const names[] = {"problem", "candidate"};
	const char *values[] = {"x {candidate} y", NULL};
	char *f = chatapi_fill("P: {problem}\nC: {candidate} {other} {\n\n", names, values, 2);
	EXPECT(!strcmp(f, "P: x {candidate} y\nC:  {other} {"),
	       "fill: values are not rescanned, NULL is empty, unknown braces kept, trailing newlines dropped");
	free(f);

	char *b = chatapi_request_body("deepseek-chat", "a \"quoted\"\nprompt", 0, 0);
	EXPECT(!strcmp(b, "{\"model\":\"deepseek-chat\",\"messages\":[{\"role\":\"user\",\"content\":"
			  "\"a \\\"quoted\\\"\\nprompt\"}],\"temperature\":0,\"stream\":false}"),
	       "request body: one user message, escaped; no max_tokens when 0");
	free(b);
	b = chatapi_request_body("m", "p", 0.6, 100);
	EXPECT(strstr(b, "\"temperature\":0.6") && strstr(b, "\"max_tokens\":100"), "request body: temperature and max_tokens");
	free(b);

	EXPECT(split_is("{\"role\":\"assistant\",\"content\":\"A\",\"reasoning_content\":\"R\"}", "R", "A"),
	       "reply: reasoning_content beside content");
	EXPECT(split_is("{\"content\":\"<think>\\n R \\n</think>\\n\\nA\"}", "R", "A"), "reply: inline <think> block");
	EXPECT(split_is("{\"content\":\"R\\n</think>\\n\\nA\"}", "R", "A"), "reply: only a closing </think>");
	EXPECT(split_is("{\"content\":\"A\"}", "", "A"), "reply: no chain of thought");
	EXPECT(split_is("{\"content\":null}", "", ""), "reply: null content is empty");
	chatapi_answer a;
	char err[128];
	EXPECT(chatapi_parse("{\"choices\":[]}", 14, &a, err, sizeof err) == -1 && strstr(err, "choices[0]"),
	       "reply: no choice is an error that says so");
	EXPECT(chatapi_parse("<html>", 6, &a, err, sizeof err) == -1 && strstr(err, "not JSON"),
	       "reply: an HTML page is not JSON");

	EXPECT(chatapi_fate(200) == CHATAPI_OK && chatapi_fate(429) == CHATAPI_RETRY &&
	       chatapi_fate(503) == CHATAPI_RETRY && chatapi_fate(401) == CHATAPI_STOP &&
	       chatapi_fate(402) == CHATAPI_STOP && chatapi_fate(409) == CHATAPI_FAIL,
	       "fate: 2xx ok, 429/5xx retry, 401/402 stop, another 4xx fails");
	http_reply r = {.status = 401, .body = "{\"error\":{\"message\":\"Authentication Fails\"}}"};
	r.len = strlen(r.body);
	char why[200];
	chatapi_describe_error(&r, why, sizeof why);
	EXPECT(!strcmp(why, "HTTP 401: Authentication Fails (check the API key)"), "error: the message and a hint");
	r = (http_reply){.status = 502, .body = "<html>Bad Gateway</html>"};
	r.len = strlen(r.body);
	chatapi_describe_error(&r, why, sizeof why);
	EXPECT(!strcmp(why, "HTTP 502"), "error: an HTML body gives the status alone");

	char path[] = "/tmp/ds-chatapi-key.XXXXXX";
	int fd = mkstemp(path);
	EXPECT(fd >= 0 && write(fd, "sk-file \n", 9) == 9, "key file written");
	close(fd);
	char *key = NULL;
	setenv("DS_API_KEY", "sk-env", 1);
	EXPECT(chatapi_key(path, &key) == 0 && key && !strcmp(key, "sk-file"), "key: the file first, white space dropped");
	chatapi_key_free(key);
	EXPECT(chatapi_key(NULL, &key) == 0 && key && !strcmp(key, "sk-env"), "key: else DS_API_KEY");
	chatapi_key_free(key);
	unsetenv("DS_API_KEY");
	unsetenv("OPENAI_API_KEY");
	setenv("DEEPSEEK_API_KEY", "sk-ds", 1);
	EXPECT(chatapi_key(NULL, &key) == 0 && key && !strcmp(key, "sk-ds"), "key: else DEEPSEEK_API_KEY");
	chatapi_key_free(key);
	unsetenv("DEEPSEEK_API_KEY");
	EXPECT(chatapi_key(NULL, &key) == 0 && key == NULL, "key: none is NULL, not an error");
	unlink(path);
	EXPECT(chatapi_key(path, &key) == -1, "key: an unreadable file is an error");
	/* chatapi_mask: a key chatapi_key read, and any sk- key, out of a message */
	setenv("DS_API_KEY", "my-own-secret-key-77", 1);
	char *key2;
	EXPECT(chatapi_key(NULL, &key2) == 0 && key2 && !strcmp(key2, "my-own-secret-key-77"), "key: from DS_API_KEY");
	char m1[] = "HTTP 401: bad key 'Bearer my-own-secret-key-77' (and my-own-secret-key-77 again)";
	chatapi_mask(m1);
	EXPECT(!strcmp(m1, "HTTP 401: bad key 'Bearer ***' (and *** again)"), "mask: the key read, each time it appears");
	char m2[] = "got sk-AbCdEf_12345678-x; sk-short stays; sk-";
	chatapi_mask(m2);
	EXPECT(!strcmp(m2, "got sk-***; sk-short stays; sk-"), "mask: an sk- key of 8 or more characters, whoever's");
	chatapi_key_free(key2);
	TEST_END();
}
