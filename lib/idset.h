/* idset.h — a set of byte strings (record ids), for resuming and
 * de-duplicating. Open addressing with linear probing; keys are copied. */
#ifndef DS_IDSET_H
#define DS_IDSET_H

#include <stddef.h>

typedef struct idset idset;

idset *idset_new(void);       /* returns owned; free with idset_free */
void idset_free(idset *s);

/* Add key[0..n) (borrowed; copied). Returns 1 if it was new, 0 if present. */
int idset_add(idset *s, const char *key, size_t n);
int idset_has(const idset *s, const char *key, size_t n);
size_t idset_count(const idset *s);

#endif
