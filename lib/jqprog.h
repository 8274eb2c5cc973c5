/* jqprog.h — run a jq program (libjq) over records: how ds-fetch's
 * dataset presets, written in jq and kept under share/, map raw rows to
 * problem records without a rebuild. */
#ifndef DS_JQPROG_H
#define DS_JQPROG_H

#include <jv.h>

typedef struct jqprog jqprog;

/* Compile text with named arguments args (an object {name: value}, seen
 * as $name in the program; consumed). Returns owned (free with
 * jqprog_free), or NULL with *err an owned message (free with free()). */
jqprog *jqprog_new(const char *text, jv args, char **err);

/* Run the program on input (consumed). Returns an array of its outputs
 * (owned), or jv_invalid_with_msg(string) when the program raised an
 * error. */
jv jqprog_run(jqprog *p, jv input);

void jqprog_free(jqprog *p);

#endif
