/*
 * strmap.c -- see strmap.h.  Linear probing at load factor <= 1/2 keeps a
 * lookup to one or two cache lines, which matters: the evaluator does one
 * lookup per topic level.
 */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a over the bytes, mixed with the parent and finalised with a
 * murmur-style avalanche so linear probing sees well-spread hashes. */
uint64_t strmap_hash(uint32_t parent, const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

int strmap_get(const strmap *m, uint32_t parent, const char *key, size_t len, uint32_t *value)
{
    if (!m->cap)
        return 0;
    uint64_t h = strmap_hash(parent, key, len);
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const strmap_slot *s = &m->slots[i];
        if (!s->hash)
            return 0;
        if (s->hash == h && s->parent == parent && s->klen == len &&
            memcmp(m->keys + s->key, key, len) == 0) {
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
        if (s->hash == h && s->parent == parent && s->klen == len &&
            memcmp(m->keys + s->key, key, len) == 0) {
            *value = s->value;
            return 0;
        }
    }
    if (m->klen + len > m->kcap || !m->keys) {
        size_t kcap = m->kcap ? m->kcap : 1024;
        while (kcap < m->klen + len + 1)
            kcap *= 2;
        char *k = realloc(m->keys, kcap);
        if (!k)
            return -1;
        m->keys = k;
        m->kcap = kcap;
    }
    if (len > UINT32_MAX || m->klen > UINT32_MAX - len)
        return -1;
    if (len)
        memcpy(m->keys + m->klen, key, len);
    strmap_slot *s = &m->slots[i];
    s->hash = h;
    s->parent = parent;
    s->value = *value;
    s->key = (uint32_t)m->klen;
    s->klen = (uint32_t)len;
    m->klen += len;
    m->count++;
    return 1;
}

void strmap_free(strmap *m)
{
    free(m->slots);
    free(m->keys);
    memset(m, 0, sizeof(*m));
}
