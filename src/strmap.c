/*
 * strmap.c -- see strmap.h.  Linear probing at load factor <= 1/2 with
 * 16-byte slots keeps a lookup to one cache line.
 */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

uint64_t strmap_hash(uint32_t ns, const char *key, size_t len)
{
    uint64_t h = STRMAP_HASH_START, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, key + i, 8);
        h = strmap_hash_word(h, w);
    }
    if (i < len) {
        w = 0;
        memcpy(&w, key + i, len - i); /* the first bytes in memory: strmap_word_head's */
        h = strmap_hash_word(h, w);
    }
    return strmap_hash_end(h, ns, len);
}

static int grow(strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    strmap_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        strmap_slot *s = &m->slots[i];
        if (!s->hash) continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].hash)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

strmap_slot *strmap_put(strmap *m, uint64_t h, uint32_t v0, uint32_t v1, int *inserted)
{
    *inserted = 0;
    /* An existing key is found without growing: the table only grows for
     * a new one, so a put of a key already there cannot fail. */
    for (size_t i = m->cap ? h & (m->cap - 1) : 0; m->cap; i = (i + 1) & (m->cap - 1)) {
        strmap_slot *s = &m->slots[i];
        if (s->hash == h) return s;
        if (!s->hash) break;
    }
    if ((m->count + 1) * 2 > m->cap && grow(m) < 0) return NULL;
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].hash)
        i = (i + 1) & mask;
    m->slots[i] = (strmap_slot){.hash = h, .v = {v0, v1}};
    m->count++;
    *inserted = 1;
    return &m->slots[i];
}

void strmap_free(strmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}
