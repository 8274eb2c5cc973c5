/* resume.c — read back an output file's done ids, then append. */
#include "resume.h"
#include "check.h"
#include "cli.h"
#include "jsonl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

FILE *resume_open(const char *path, idset *done, resume_key_fn key_of, long *n_done)
{
	*n_done = 0;
	FILE *in = fopen(path, "r");
	if (!in && errno != ENOENT)
		cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	if (in) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		long lineno = 0;
		off_t good = 0; /* end of the last complete line */
		while ((n = getline(&line, &cap, in)) > 0) {
			lineno++;
			if (line[n - 1] != '\n') break; /* cut short by a kill */
			good += n;
			if (n == 1) continue;
			char why[512];
			jv rec = jsonl_parse(line, (size_t)n - 1, why, sizeof why);
			char *key = jv_is_valid(rec) ? key_of(rec) : NULL;
			if (jv_is_valid(rec) && !key) snprintf(why, sizeof why, "a record without an id");
			jv_free(rec);
			if (!key)
				cli_die(EXIT_RUNTIME,
					"%s:%ld: output file holds a bad line (%s); "
					"not appending to it (move it away or fix it)",
					path, lineno, why);
			idset_add(done, key, strlen(key));
			free(key);
			(*n_done)++;
		}
		if (ferror(in)) cli_die(EXIT_RUNTIME, "%s: read error: %s", path, strerror(errno));
		free(line);
		fclose(in);
		if (n > 0 && truncate(path, good) != 0)
			cli_die(EXIT_RUNTIME, "%s: cannot remove the cut-short last line: %s",
				path, strerror(errno));
	}
	FILE *out = fopen(path, "a");
	if (!out) cli_die(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	return out;
}

void resume_close(FILE *f, const char *path)
{
	int bad = fflush(f) != 0 || ferror(f);
	int e = errno;
	if (fclose(f) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	if (bad) cli_die(EXIT_RUNTIME, "%s: write error: %s", path, strerror(e));
}

char *resume_key_id_sample(jv rec)
{
	jv id = jv_object_get(jv_copy(rec), jv_string("id"));
	if (jv_get_kind(id) != JV_KIND_STRING) {
		jv_free(id);
		return NULL;
	}
	jv sample = jv_object_get(jv_copy(rec), jv_string("sample"));
	if (jv_get_kind(sample) != JV_KIND_NUMBER) {
		jv_free(sample);
		jv t = jv_object_get(jv_copy(rec), jv_string("teacher"));
		sample = jv_get_kind(t) == JV_KIND_OBJECT
				 ? jv_object_get(jv_copy(t), jv_string("sample"))
				 : jv_invalid();
		jv_free(t);
	}
	const char *s = jv_string_value(id);
	size_t n = strlen(s) + 32;
	char *key = xmalloc(n);
	/* No sample number means sample 0, so that a record keyed before
	 * ds-teacher numbered it matches the same record keyed after. */
	double k = jv_get_kind(sample) == JV_KIND_NUMBER ? jv_number_value(sample) : 0;
	snprintf(key, n, "%s\x1f%.0f", s, k);
	jv_free(sample);
	jv_free(id);
	return key;
}
