/* jsonl: lines of any length, blank lines, CRLF, no final newline, and each
 * kind of bad line with its line number; the writer's lines parse back. */
#include "../../lib/jsonl.h"
#include "../../lib/progress.h"
#include "testhelp.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[] = "/tmp/ds-test-jsonl.XXXXXX";

static jsonl_reader *open_with(const char *text, size_t n)
{
	FILE *f = fopen(path, "w");
	fwrite(text, 1, n, f);
	fclose(f);
	char *e = NULL;
	jsonl_reader *r = jsonl_reader_open(path, &e);
	free(e);
	return r;
}

int main(void)
{
	close(mkstemp(path));

	/* A 3 MB line between two short ones, blank lines, CRLF, no final \n. */
	size_t big = 3 << 20;
	char *text = malloc(big + 200);
	size_t n = (size_t)sprintf(text, "{\"id\":\"a\"}\r\n\n   \n{\"id\":\"b\",\"x\":\"");
	memset(text + n, 'x', big);
	n += big;
	n += (size_t)sprintf(text + n, "\"}\n{\"id\":\"c\"}");
	jsonl_reader *r = open_with(text, n);
	jv v;
	EXPECT(jsonl_reader_next(r, &v) == 1 && !strcmp(jsonl_get_string(v, "id"), "a"), "CRLF line");
	jv_free(v);
	EXPECT(jsonl_reader_next(r, &v) == 1 && strlen(jsonl_get_string(v, "x")) == big &&
	       jsonl_reader_line(r) == 4, "3 MB line, after two blank lines, is line 4");
	jv_free(v);
	EXPECT(jsonl_reader_next(r, &v) == 1 && !strcmp(jsonl_get_string(v, "id"), "c"),
	       "last line without a newline");
	jv_free(v);
	EXPECT(jsonl_reader_next(r, &v) == 0, "then the end");
	jsonl_reader_close(r);
	free(text);

	/* Bad lines: each reported with its number; reading goes on after. */
	const char bad[] = "{\"ok\":1}\n{\"id\":\n[1,2]\n\"s\"\n{\"a\":\"\xc3\x28\"}\n{} {}\n{\"ok\":2}\n{\"cut";
	r = open_with(bad, sizeof bad - 1);
	EXPECT(jsonl_reader_next(r, &v) == 1, "line 1 fine");
	jv_free(v);
	EXPECT(jsonl_reader_next(r, &v) == -1 && jsonl_reader_line(r) == 2 &&
	       strstr(jsonl_reader_error(r), "malformed JSON") &&
	       !strstr(jsonl_reader_error(r), "while parsing"), "unfinished object, line 2");
	EXPECT(jsonl_reader_next(r, &v) == -1 && strstr(jsonl_reader_error(r), "not a JSON object (a array)"),
	       "an array is not a record");
	EXPECT(jsonl_reader_next(r, &v) == -1 && strstr(jsonl_reader_error(r), "a string"),
	       "a string is not a record");
	EXPECT(jsonl_reader_next(r, &v) == -1 && strstr(jsonl_reader_error(r), "invalid UTF-8 at byte 7"),
	       "invalid UTF-8 named with its byte");
	EXPECT(jsonl_reader_next(r, &v) == -1 && jsonl_reader_line(r) == 6, "two values on a line");
	EXPECT(!jsonl_reader_fatal(r), "bad lines are not fatal");
	EXPECT(jsonl_reader_next(r, &v) == 1 && jsonl_reader_line(r) == 7, "reading goes on");
	jv_free(v);
	EXPECT(jsonl_reader_next(r, &v) == -1 && strstr(jsonl_reader_error(r), "cut short"),
	       "a cut-short last line says so");
	EXPECT(!strcmp(jsonl_reader_where(r), path) == 0 && strstr(jsonl_reader_where(r), ":8"),
	       "where = FILE:LINE");
	jsonl_reader_close(r);

	/* The writer: one line per record, parsing back equal. */
	FILE *f = fopen(path, "w");
	jv rec = jv_parse("{\"id\":\"\\u00e9\\n\\\"x\",\"n\":[1,2.5,null,true],\"o\":{}}");
	EXPECT(jsonl_write(f, jv_copy(rec)) == 0, "jsonl_write");
	fclose(f);
	char *e = NULL;
	r = jsonl_reader_open(path, &e);
	EXPECT(jsonl_reader_next(r, &v) == 1 && jv_equal(jv_copy(v), jv_copy(rec)), "written record reads back equal");
	jv_free(v);
	EXPECT(jsonl_reader_next(r, &v) == 0 && jsonl_reader_line(r) == 1, "as exactly one line");
	jsonl_reader_close(r);
	jv_free(rec);

	/* Several inputs as one stream: a bad line stops it, or is counted and
	 * passed over with skip_bad; a rejected record likewise; an input that
	 * cannot be opened stops it. */
	char path2[] = "/tmp/ds-test-jsonl2.XXXXXX";
	close(mkstemp(path2));
	f = fopen(path, "w");
	fputs("{\"a\":1}\nnot json\n{\"a\":2}\n", f);
	fclose(f);
	f = fopen(path2, "w");
	fputs("{\"a\":3}\n", f);
	fclose(f);
	char *two[] = {path, path2}, *missing[] = {path, "/nonexistent/ds-test.jsonl"};
	jsonl_inputs in;
	long sum = 0;
	int k;
	jsonl_inputs_init(&in, two, 2, 1, NULL);
	while ((k = jsonl_inputs_next(&in, &v)) > 0) {
		sum += (long)jv_number_value(jv_object_get(jv_copy(v), jv_string("a")));
		if (sum == 3) EXPECT(jsonl_inputs_reject(&in, "test reject") == 0, "skip_bad: a rejected record goes on");
		jv_free(v);
	}
	EXPECT(k == 0 && sum == 6 && in.read == 3 && in.bad == 2, "skip_bad: two files, one bad line and one rejected record passed over");
	jsonl_inputs_close(&in);
	jsonl_inputs_init(&in, two, 2, 0, NULL);
	EXPECT(jsonl_inputs_next(&in, &v) == 1, "without skip_bad: the first record");
	jv_free(v);
	EXPECT(jsonl_inputs_next(&in, &v) == -1 && in.read == 1, "without skip_bad: a bad line stops the stream");
	jsonl_inputs_close(&in);
	jsonl_inputs_init(&in, missing, 2, 1, NULL);
	while ((k = jsonl_inputs_next(&in, &v)) > 0) jv_free(v);
	EXPECT(k == -1 && in.read == 2, "an input that cannot be opened stops the stream, even with skip_bad");
	jsonl_inputs_close(&in);
	unlink(path2);

	/* Progress text: rate and ETA from known numbers. */
	progress p = {.label = "x", .total = 1000, .t0 = 0, .items = 50, .bytes = 250};
	char line[128];
	progress_format(&p, 10.0, line, sizeof line);
	EXPECT(!strcmp(line, "x: 50 records, 5.0/s,  25%, ETA 0:30"), "progress line");
	p.total = -1;
	progress_format(&p, 10.0, line, sizeof line);
	EXPECT(!strcmp(line, "x: 50 records, 5.0/s"), "progress line without a size");

	unlink(path);
	TEST_END();
}
