/*
 * strmap.h -- an open-addressing hash map from (uint32 parent, bytes) to
 * uint32, keyed by a 64-bit hash alone.  Internal.
 *
 * The keys themselves are not stored: the index only has to return a
 * superset of the rules that can match, and every candidate rule is then
 * tested in full, so two keys whose hashes collide (odds 2^-64) would
 * merely share a candidate list.  Not storing keys saves a cache miss per
 * lookup and most of the index's memory.  Built once at compile time, then
 * only read: lookups allocate nothing and are safe from many threads.
 */
#ifndef EXH_STRMAP_H
#define EXH_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_slot {
    uint64_t hash; /* 0 = empty */
    uint32_t parent;
    uint32_t value;
} strmap_slot;

typedef struct strmap {
    strmap_slot *slots;
    size_t cap; /* power of two */
    size_t count;
} strmap;

uint64_t strmap_hash(uint32_t parent, const char *key, size_t len);

/* Find; returns 1 and *value when present. */
int strmap_get(const strmap *m, uint32_t parent, const char *key, size_t len, uint32_t *value);

/* Find or insert.  On insert *value is stored and 1 returned; when the key
 * exists its value is written to *value and 0 returned; -1 on no memory. */
int strmap_put(strmap *m, uint32_t parent, const char *key, size_t len, uint32_t *value);

void strmap_free(strmap *m);

#endif
