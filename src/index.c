/*
 * index.c -- finding the few rules that could match a request.
 *
 * Each rule is filed, per action, under one key that every request it can
 * match must have: its exact username, else its exact clientid, else the
 * literal leading levels of each of its topic filters (a trie node).  A
 * rule with none of these sits at the trie root and is tried for every
 * request.  A request collects the lists for its username, its clientid and
 * the trie nodes along its topic; every list is in policy order, so merging
 * them and testing in that order still finds the first matching rule.
 *
 * Deny rules on subscribe are the one twist: they refuse any subscription
 * that overlaps them, and a subscription such as `a/+/c` or `#` overlaps
 * filters filed deeper than its wildcard.  So each trie node also keeps the
 * deny-subscribe rules filed anywhere below it, and a walk that meets a
 * wildcard collects that list.
 *
 * While building, lists are growable vectors named by an id; at the end
 * they are laid out back to back and every id is replaced by the list's
 * offset, so the evaluator reaches a list in one step.
 */
#include <stdlib.h>
#include <string.h>

#include "rule.h"

typedef struct vec {
    uint32_t *v;
    uint32_t n, cap;
} vec;

typedef struct builder {
    vec *lists;
    uint32_t nlists, cap;
} builder;

static int new_list(builder *b, uint32_t *id)
{
    if (b->nlists == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 256;
        vec *nl = realloc(b->lists, cap * sizeof(*nl));
        if (!nl)
            return -1;
        b->lists = nl;
        b->cap = cap;
    }
    memset(&b->lists[b->nlists], 0, sizeof(vec));
    *id = b->nlists++;
    return 0;
}

static int list_add(builder *b, uint32_t id, uint32_t rule)
{
    vec *l = &b->lists[id];
    if (l->n && l->v[l->n - 1] == rule)
        return 0; /* two filters of one rule under one node */
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 2;
        uint32_t *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = rule;
    return 0;
}

/* Add to the list a slot holds, creating it on first use. */
static int slot_add(builder *b, uint32_t *slot, uint32_t rule)
{
    if (*slot == EXH_NO_LIST && new_list(b, slot) < 0)
        return -1;
    return list_add(b, *slot, rule);
}

/* File a rule in a string-keyed bucket (username or clientid). */
static int add_keyed(builder *b, strmap *m, const char *key, size_t len, uint32_t rule)
{
    uint32_t id = b->nlists;
    int rc = strmap_put(m, 0, key, len, &id);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        uint32_t got;
        if (new_list(b, &got) < 0)
            return -1;
    }
    return list_add(b, id, rule);
}

static int new_node(action_index *ix, uint32_t parent, uint32_t *node, uint32_t *cap)
{
    if (ix->nnodes == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 64;
        trie_node *nn = realloc(ix->nodes, nc * sizeof(*nn));
        if (nn)
            ix->nodes = nn;
        uint32_t *np = realloc(ix->parent, nc * sizeof(*np));
        if (np)
            ix->parent = np;
        if (!nn || !np)
            return -1;
        *cap = nc;
    }
    ix->nodes[ix->nnodes] = (trie_node){EXH_NO_LIST, EXH_NO_LIST, 0};
    ix->parent[ix->nnodes] = parent;
    if (parent != UINT32_MAX)
        ix->nodes[parent].nchild++;
    *node = ix->nnodes++;
    return 0;
}

uint32_t exh_spec_prefix(const exh_spec *s, uint32_t max)
{
    uint32_t n = 0;
    if (s->eq) {
        /* eq text: literal levels up to the first that holds a wildcard
         * character (a subscribe walk stops there). */
        uint32_t start = 0;
        for (uint32_t i = 0; i <= s->len && n < max; i++) {
            if (i < s->len && s->text[i] != '/')
                continue;
            for (uint32_t k = start; k < i; k++)
                if (s->text[k] == '+' || s->text[k] == '#')
                    return n;
            n++;
            start = i + 1;
        }
        return n;
    }
    while (n < s->nlevels && n < max && s->levels[n].kind == LVL_LIT)
        n++;
    return n;
}

/* The bytes of the k-th level of a spec (literal levels only). */
static void spec_level(const exh_spec *s, uint32_t k, const char **p, size_t *len)
{
    if (!s->eq) {
        *p = s->text + s->levels[k].off;
        *len = s->levels[k].len;
        return;
    }
    const char *x = s->text, *end = s->text + s->len;
    for (uint32_t i = 0; i < k; i++)
        x = (const char *)memchr(x, '/', (size_t)(end - x)) + 1;
    const char *slash = memchr(x, '/', (size_t)(end - x));
    *p = x;
    *len = (size_t)((slash ? slash : end) - x);
}

static const exh_cond *index_cond(const exh_rule *r, int kind)
{
    for (uint16_t i = 0; i < r->nconds; i++)
        if (r->conds[i].kind == kind && !r->conds[i].negated)
            return &r->conds[i];
    return NULL;
}

static int add_rule(builder *b, action_index *ix, uint32_t *cap, const exh_rule *r, uint32_t ri,
                    int a)
{
    const exh_cond *c = index_cond(r, COND_USERNAME);
    if (c)
        return add_keyed(b, &ix->users, c->str, c->len, ri);
    if ((c = index_cond(r, COND_CLIENTID)))
        return add_keyed(b, &ix->clients, c->str, c->len, ri);
    if (a == EXH_IDX_CONN || r->nspecs == 0)
        return slot_add(b, &ix->nodes[0].list, ri);
    for (uint16_t si = 0; si < r->nspecs; si++) {
        const exh_spec *s = &r->specs[si];
        uint32_t depth = exh_spec_prefix(s, EXH_INDEX_DEPTH);
        uint32_t node = 0;
        for (uint32_t k = 0; k < depth; k++) {
            const char *lp;
            size_t ll;
            spec_level(s, k, &lp, &ll);
            uint32_t child = ix->nnodes;
            int rc = strmap_put(&ix->trie, node, lp, ll, &child);
            if (rc < 0)
                return -1;
            if (rc == 1) {
                uint32_t got;
                if (new_node(ix, node, &got, cap) < 0)
                    return -1;
            }
            node = child;
        }
        if (slot_add(b, &ix->nodes[node].list, ri) < 0)
            return -1;
        if (a == EXH_IDX_SUB && r->effect == EXH_DENY)
            for (uint32_t up = ix->parent[node]; up != UINT32_MAX; up = ix->parent[up])
                if (slot_add(b, &ix->nodes[up].below, ri) < 0)
                    return -1;
    }
    return 0;
}

static void to_offsets(strmap *m, const uint32_t *off)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash)
            m->slots[i].value = off[m->slots[i].value];
}

exh_status exh_index_build(exh_policy *p)
{
    builder b = {0};
    exh_status st = EXH_ENOMEM;
    uint32_t *off = NULL;
    static const unsigned bits[3] = {EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT};
    for (int a = 0; a < 3; a++) {
        action_index *ix = &p->idx[a];
        uint32_t cap = 0, root;
        if (new_node(ix, UINT32_MAX, &root, &cap) < 0)
            goto out;
        for (uint32_t ri = 0; ri < p->nrules; ri++)
            if ((p->rules[ri].actions & bits[a]) &&
                add_rule(&b, ix, &cap, &p->rules[ri], ri, a) < 0)
                goto out;
    }
    size_t total = 0;
    for (uint32_t i = 0; i < b.nlists; i++)
        total += 1 + (size_t)b.lists[i].n;
    if (total >= UINT32_MAX)
        goto out;
    p->lists = malloc((total ? total : 1) * sizeof(*p->lists));
    off = malloc((b.nlists ? b.nlists : 1) * sizeof(*off));
    if (!p->lists || !off)
        goto out;
    size_t o = 0;
    for (uint32_t i = 0; i < b.nlists; i++) {
        off[i] = (uint32_t)o;
        p->lists[o++] = b.lists[i].n;
        memcpy(p->lists + o, b.lists[i].v, b.lists[i].n * sizeof(uint32_t));
        o += b.lists[i].n;
    }
    for (int a = 0; a < 3; a++) {
        action_index *ix = &p->idx[a];
        to_offsets(&ix->users, off);
        to_offsets(&ix->clients, off);
        for (uint32_t n = 0; n < ix->nnodes; n++) {
            trie_node *t = &ix->nodes[n];
            if (t->list != EXH_NO_LIST)
                t->list = off[t->list];
            if (t->below != EXH_NO_LIST)
                t->below = off[t->below];
        }
        free(ix->parent);
        ix->parent = NULL;
    }
    st = EXH_OK;
out:
    free(off);
    for (uint32_t i = 0; i < b.nlists; i++)
        free(b.lists[i].v);
    free(b.lists);
    return st;
}

void exh_index_free(exh_policy *p)
{
    for (int a = 0; a < 3; a++) {
        strmap_free(&p->idx[a].users);
        strmap_free(&p->idx[a].clients);
        strmap_free(&p->idx[a].trie);
        free(p->idx[a].nodes);
        free(p->idx[a].parent);
    }
    free(p->lists);
}
