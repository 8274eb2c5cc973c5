/* idset.c — string set for done ids. */
#include "idset.h"
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	uint64_t hash; /* 0 marks an empty slot */
	char *key;
	size_t len;
};

struct idset {
	struct slot *slots;
	size_t cap, count; /* cap is a power of two */
};

/* FNV-1a, with the zero hash moved so 0 can mean "empty". */
static uint64_t hash_of(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

idset *idset_new(void)
{
	idset *s = xcalloc(1, sizeof *s);
	s->cap = 64;
	s->slots = xcalloc(s->cap, sizeof *s->slots);
	return s;
}

void idset_free(idset *s)
{
	if (!s) return;
	for (size_t i = 0; i < s->cap; i++) free(s->slots[i].key);
	free(s->slots);
	free(s);
}

static struct slot *find(const idset *s, uint64_t h, const char *k, size_t n)
{
	size_t i = h & (s->cap - 1);
	for (;;) {
		struct slot *sl = &s->slots[i];
		if (sl->hash == 0) return sl;
		if (sl->hash == h && sl->len == n && memcmp(sl->key, k, n) == 0) return sl;
		i = (i + 1) & (s->cap - 1);
	}
}

static void grow(idset *s)
{
	struct slot *old = s->slots;
	size_t oldcap = s->cap;
	s->cap *= 2;
	s->slots = xcalloc(s->cap, sizeof *s->slots);
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].hash) *find(s, old[i].hash, old[i].key, old[i].len) = old[i];
	free(old);
}

int idset_add(idset *s, const char *key, size_t n)
{
	if ((s->count + 1) * 4 > s->cap * 3) grow(s);
	uint64_t h = hash_of(key, n);
	struct slot *sl = find(s, h, key, n);
	if (sl->hash) return 0;
	sl->hash = h;
	sl->key = xmalloc(n + 1);
	memcpy(sl->key, key, n);
	sl->key[n] = '\0';
	sl->len = n;
	s->count++;
	return 1;
}

int idset_has(const idset *s, const char *key, size_t n)
{
	return find(s, hash_of(key, n), key, n)->hash != 0;
}

size_t idset_count(const idset *s) { return s->count; }
