/*
 * strmap.c -- see strmap.h.  Linear probing at load factor <= 1/2 with
 * 16-byte slots keeps a lookup to one cache line, which matters: the
 * evaluator does one lookup per identity and per topic level.
 */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

/* 64-bit FNV-1a, eight bytes a step, mixed with the parent and finalised
 * with a murmur-style avalanche so linear probing sees well-spread hashes. */
uint64_t strmap_hash(uint32_t parent, const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL) ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;
}

int strmap_get(const strmap *m, uint32_t parent, const char *key, size_t len, uint32_t *value)
{
    if (!m->count)
        return 0;
    uint64_t h = strmap_hash(parent, key, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const strmap_slot *s = &m->slots[i];
        if (!s->hash)
            return 0;
        if (s->hash == h && s->parent == parent) {
            *value = s->value;
            return 1;
        }
    }
}

static int grow(strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    strmap_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        strmap_slot *s = &m->slots[i];
        if (!s->hash)
            continue;
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

int strmap_put(strmap *m, uint32_t parent, const char *key, size_t len, uint32_t *value)
{
    if ((m->count + 1) * 2 > m->cap && grow(m) < 0)
        return -1;
    uint64_t h = strmap_hash(parent, key, len);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    for (;; i = (i + 1) & mask) {
        strmap_slot *s = &m->slots[i];
        if (!s->hash)
            break;
        if (s->hash == h && s->parent == parent) {
            *value = s->value;
            return 0;
        }
    }
    m->slots[i] = (strmap_slot){.hash = h, .parent = parent, .value = *value};
    m->count++;
    return 1;
}

void strmap_free(strmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}
