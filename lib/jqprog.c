/* jqprog.c — libjq programs as record mappers. */
#include "jqprog.h"
#include "check.h"

#include <jq.h>
#include <stdlib.h>
#include <string.h>

struct jqprog {
	jq_state *jq;
};

/* libjq reports compile errors through a callback: gather them. */
static void on_error(void *ud, jv msg)
{
	jv *acc = ud;
	jv text = jq_format_error(msg);
	if (jv_get_kind(text) != JV_KIND_STRING) {
		jv_free(text);
		text = jv_string("jq error");
	}
	*acc = jv_get_kind(*acc) == JV_KIND_STRING
		       ? jv_string_concat(jv_string_concat(*acc, jv_string("; ")), text)
		       : text;
}

jqprog *jqprog_new(const char *text, jv args, char **err)
{
	jqprog *p = xcalloc(1, sizeof *p);
	p->jq = jq_init();
	if (!p->jq) {
		jv_free(args);
		free(p);
		*err = xstrdup("cannot start libjq");
		return NULL;
	}
	jv msgs = jv_null();
	jq_set_error_cb(p->jq, on_error, &msgs);
	int ok = jq_compile_args(p->jq, text, args);
	jq_set_error_cb(p->jq, NULL, NULL);
	if (!ok) {
		*err = xstrdup(jv_get_kind(msgs) == JV_KIND_STRING ? jv_string_value(msgs)
								    : "jq program does not compile");
		jv_free(msgs);
		jqprog_free(p);
		return NULL;
	}
	jv_free(msgs);
	return p;
}

jv jqprog_run(jqprog *p, jv input)
{
	jq_start(p->jq, input, 0);
	jv out = jv_array(), v;
	while (jv_is_valid(v = jq_next(p->jq))) out = jv_array_append(out, v);
	if (jv_invalid_has_msg(jv_copy(v))) {
		jv msg = jv_invalid_get_msg(v);
		jv_free(out);
		if (jv_get_kind(msg) != JV_KIND_STRING) /* error(non-string) */
			msg = jv_dump_string(msg, 0);
		return jv_invalid_with_msg(msg);
	}
	jv_free(v);
	return out;
}

void jqprog_free(jqprog *p)
{
	if (!p) return;
	jq_teardown(&p->jq);
	free(p);
}
