/*
 * strmap.h -- an open-addressing hash table from a 64-bit key hash to two
 * uint32 values.  Internal.
 *
 * The keys themselves are not stored: the index only has to return a
 * superset of the rules that can match, and every candidate rule is then
 * tested in full, so two keys whose hashes collide (odds 2^-64) would
 * merely share candidates.  Not storing keys saves a cache miss per lookup
 * and most of the index's memory.  Lookups are split into hashing, finding
 * the home slot (which the evaluator prefetches for several keys at once)
 * and probing.  Built once at compile time, then only read: lookups
 * allocate nothing and are safe from many threads.
 */
#ifndef EXH_STRMAP_H
#define EXH_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_slot {
    uint64_t hash; /* 0 = empty */
    uint32_t v[2];
} strmap_slot;

typedef struct strmap {
    strmap_slot *slots;
    size_t cap; /* power of two */
    size_t count;
} strmap;

/* Hash of a key in a namespace (e.g. the trie depth): the bytes eight at
 * a time (a last partial word padded with zeros), then a finish that mixes
 * in the namespace and length.  Split in steps so the evaluator can hash
 * every leading-level prefix of a topic in one pass over its words.  The
 * quality only matters for speed: a collision adds candidates, which are
 * all tested in full.  Words are loaded in the machine's byte order, the
 * same at compile time and at evaluation. */
#define STRMAP_HASH_START 0xcbf29ce484222325ULL

static inline uint64_t strmap_hash_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 32);
}

/* The first n (< 8) bytes of a word, the rest zero. */
static inline uint64_t strmap_word_head(uint64_t w, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return n ? w & ~(~0ULL >> (8 * n)) : 0;
#else
    return n ? w & (~0ULL >> (64 - 8 * n)) : 0;
#endif
}

static inline uint64_t strmap_hash_end(uint64_t h, uint32_t ns, size_t len)
{
    h ^= (uint64_t)(ns + 1) * 0x9e3779b97f4a7c15ULL;
    h ^= (uint64_t)len * 0xc2b2ae3d27d4eb4fULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;
}

uint64_t strmap_hash(uint32_t ns, const char *key, size_t len);

/* The slot a hash probes first: prefetch it. */
static inline const strmap_slot *strmap_home(const strmap *m, uint64_t h)
{
    return m->cap ? &m->slots[h & (m->cap - 1)] : NULL;
}

/* Find by hash; NULL when absent. */
static inline const strmap_slot *strmap_find(const strmap *m, uint64_t h)
{
    if (!m->count) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const strmap_slot *s = &m->slots[i];
        if (s->hash == h) return s;
        if (!s->hash) return NULL;
    }
}

/* Find or insert by hash.  Returns the slot and sets *inserted; a new
 * slot's values are set to v0/v1.  NULL on no memory. */
strmap_slot *strmap_put(strmap *m, uint64_t h, uint32_t v0, uint32_t v1, int *inserted);

void strmap_free(strmap *m);

#endif
