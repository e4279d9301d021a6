/*
 * index.c -- finding the few rules that could match a request.
 *
 * Each rule is filed, per action, under one key that every request it can
 * match must have: its exact username, else its exact clientid, else the
 * literal leading levels of each of its topic filters (a trie node).  A
 * rule with none of these sits at the trie root and is tried for every
 * request.  A request collects the candidates for its username, its
 * clientid and the trie nodes along its topic; every list is in policy
 * order, so merging them and testing in that order still finds the first
 * matching rule.
 *
 * The trie is keyed by (depth, hash of the leading levels) rather than by
 * parent node, so the evaluator can hash every level of a topic at once
 * and fetch all the nodes in parallel instead of one dependent miss after
 * another.  Lists of one or two rules are stored in the hash slot itself.
 *
 * Deny rules on subscribe are the one twist: they refuse any subscription
 * that overlaps them, and a subscription such as `a/+/c` or `#` overlaps
 * filters filed deeper than its wildcard.  So each trie node also keeps the
 * deny-subscribe rules filed anywhere below it, and a walk that meets a
 * wildcard collects that list.
 */
#include <stdlib.h>
#include <string.h>

#include "invariant.h"
#include "rule.h"

typedef struct vec {
    uint32_t *v;
    uint32_t n, cap;
} vec;

typedef struct builder {
    vec *lists;
    uint32_t nlists, cap;
    uint32_t *out; /* the flattened lists being written (exh_policy.lists) */
    size_t out_n, out_cap;
} builder;

static int new_list(builder *b, uint32_t *id)
{
    if (b->nlists == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 256;
        vec *nl = realloc(b->lists, cap * sizeof(*nl));
        if (!nl) return -1;
        b->lists = nl;
        b->cap = cap;
    }
    memset(&b->lists[b->nlists], 0, sizeof(vec));
    *id = b->nlists++;
    return 0;
}

/* Append a rule (by blob offset) to the list *id, creating it first. */
static int list_add(builder *b, uint32_t *id, uint32_t blob)
{
    if (*id == EXH_NO_REF && new_list(b, id) < 0) return -1;
    vec *l = &b->lists[*id];
    if (l->n && l->v[l->n - 1] == blob) return 0; /* two filters of one rule under one node */
    /* Rules are filed in policy order and blobs are laid out in it, so
     * every list is strictly ascending: the evaluator's merge relies on it
     * to test a rule filed in two lists once, and in policy order. */
    EXH_ASSERT(l->n == 0 || l->v[l->n - 1] < blob);
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 2;
        uint32_t *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv) return -1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = blob;
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
            if (i < s->len && s->text[i] != '/') continue;
            for (uint32_t k = start; k < i; k++)
                if (s->text[k] == '+' || s->text[k] == '#') return n;
            n++;
            start = i + 1;
        }
        return n;
    }
    while (n < s->nlevels && n < max && s->levels[n].kind == LVL_LIT)
        n++;
    return n;
}

size_t exh_spec_prefix_len(const exh_spec *s, uint32_t k)
{
    if (k == 0) return 0;
    if (!s->eq) return s->levels[k - 1].off + s->levels[k - 1].len;
    size_t i = 0;
    for (uint32_t lv = 0; i < s->len; i++)
        if (s->text[i] == '/' && ++lv == k) break;
    return i;
}

static const exh_cond *index_cond(const exh_rule *r, int kind)
{
    for (uint16_t i = 0; i < r->nconds; i++)
        if (r->conds[i].kind == kind && !r->conds[i].negated) return &r->conds[i];
    return NULL;
}

/* The node for the first k levels of a spec, created if needed (with
 * both lists empty).  Slots move when the table grows: callers keep the
 * pointer only until the next put. */
static strmap_slot *node(action_index *ix, const exh_spec *s, uint32_t k)
{
    int inserted;
    /* The evaluator hashes at most EXH_INDEX_DEPTH levels (ctx->hn). */
    EXH_ASSERT(k >= 1 && k <= EXH_INDEX_DEPTH);
    uint64_t h = strmap_hash(k, s->text, exh_spec_prefix_len(s, k));
    strmap_slot *slot = strmap_put(&ix->trie, h, EXH_NO_REF, EXH_NO_REF, &inserted);
    if (slot && k > ix->depth) ix->depth = k;
    return slot;
}

static int add_rule(builder *b, action_index *ix, const exh_rule *r, int a)
{
    EXH_ASSERT(r->packed); /* r->blob is its place in the arena only once packed */
    const exh_cond *c = index_cond(r, COND_USERNAME);
    if (!c) c = index_cond(r, COND_CLIENTID);
    if (c) {
        int inserted;
        strmap *m = c->kind == COND_USERNAME ? &ix->users : &ix->clients;
        strmap_slot *s =
            strmap_put(m, strmap_hash(0, c->str, c->len), EXH_NO_REF, EXH_NO_REF, &inserted);
        return s ? list_add(b, &s->v[0], r->blob) : -1;
    }
    if (a == EXH_IDX_CONN || r->nspecs == 0) return list_add(b, &ix->root[0], r->blob);
    for (uint16_t si = 0; si < r->nspecs; si++) {
        const exh_spec *s = &r->specs[si];
        uint32_t depth = exh_spec_prefix(s, EXH_INDEX_DEPTH);
        strmap_slot *slot;
        /* Every ancestor exists, so a walk can stop at the first absent
         * level; a deny-subscribe rule is also noted in each ancestor. */
        int below = a == EXH_IDX_SUB && r->effect == EXH_DENY;
        for (uint32_t k = 1; k <= depth; k++) {
            if (!(slot = node(ix, s, k))) return -1;
            if (below && k < depth && list_add(b, &slot->v[1], r->blob) < 0) return -1;
        }
        if (below && depth > 0 && list_add(b, &ix->root[1], r->blob) < 0) return -1;
        uint32_t *at = &ix->root[0];
        if (depth) {
            if (!(slot = node(ix, s, depth))) return -1; /* out of memory */
            at = &slot->v[0];
        }
        if (list_add(b, at, r->blob) < 0) return -1;
    }
    return 0;
}

/* Replace a list id by a ref: small lists go into the slot itself. */
static void finish_ref(builder *b, uint32_t *ref, uint32_t *spare)
{
    if (*ref == EXH_NO_REF) return;
    const vec *l = &b->lists[*ref];
    if (l->n == 1 || (l->n == 2 && spare)) {
        *ref = l->v[0];
        if (l->n == 2) *spare = l->v[1];
        return;
    }
    /* The flattened lists were sized from the same lists. */
    EXH_ASSERT(b->out_n + 1 + l->n <= b->out_cap);
    *ref = EXH_REF_LIST | (uint32_t)b->out_n;
    b->out[b->out_n++] = l->n;
    memcpy(b->out + b->out_n, l->v, l->n * sizeof(uint32_t));
    b->out_n += l->n;
}

static void finish_map(builder *b, strmap *m, int two_lists)
{
    for (size_t i = 0; i < m->cap; i++) {
        strmap_slot *s = &m->slots[i];
        if (!s->hash) continue;
        if (two_lists) {
            finish_ref(b, &s->v[0], NULL);
            finish_ref(b, &s->v[1], NULL);
        } else {
            finish_ref(b, &s->v[0], &s->v[1]);
        }
    }
}

exh_status exh_index_build(exh_policy *p)
{
    builder b = {0};
    exh_status st = EXH_ENOMEM;
    static const unsigned bits[3] = {EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT};
    for (int a = 0; a < 3; a++) {
        action_index *ix = &p->idx[a];
        ix->root[0] = ix->root[1] = EXH_NO_REF;
        for (uint32_t ri = 0; ri < p->nrules; ri++)
            if ((p->rules[ri].actions & bits[a]) && add_rule(&b, ix, &p->rules[ri], a) < 0)
                goto out;
    }
    size_t total = 0;
    for (uint32_t i = 0; i < b.nlists; i++)
        total += 1 + (size_t)b.lists[i].n;
    if (total >= EXH_REF_LIST) goto out;
    b.out = p->lists = malloc((total ? total : 1) * sizeof(*p->lists));
    b.out_n = 0;
    b.out_cap = total;
    if (!p->lists) goto out;
    for (int a = 0; a < 3; a++) {
        action_index *ix = &p->idx[a];
        finish_map(&b, &ix->users, 0);
        finish_map(&b, &ix->clients, 0);
        finish_map(&b, &ix->trie, 1);
        finish_ref(&b, &ix->root[0], NULL);
        finish_ref(&b, &ix->root[1], NULL);
        EXH_ASSERT(ix->depth <= EXH_INDEX_DEPTH);
    }
    st = EXH_OK;
out:
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
    }
    free(p->lists);
}
