/*
 * fuzz_topic.c -- differential libFuzzer target for topic.h.
 *
 * topic.h's functions are the reference the evaluator is tested against
 * (fuzz_eval), so they get a reference of their own here, as naive as
 * possible and sharing no code with src/topic.c:
 *
 *   validity   names and filters checked level by level with a
 *              straightforward UTF-8 decoder, on the raw input bytes;
 *   matching   a recursive level matcher;
 *   subset     brute force: s <= f iff every name in a finite universe
 *              that s matches, f matches too;
 *   overlap    brute force: some name in the universe both match.
 *
 * The universe is every name of up to (longest filter + 1) levels drawn
 * from the filters' literal levels plus a fresh level, a fresh '$' level
 * and the empty level.  That is enough: matching compares a level only
 * for equality with a literal, or by the '$' rule on the first level, so
 * any other name behaves like one in the universe (longer names like one
 * of the longest length, where only a trailing '#' still matches).
 *
 * Any disagreement is a crash.  Build and run: tests/fuzz/run.sh SECONDS
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* ---- reference validity ---- */

/* Well-formed UTF-8 (RFC 3629): no overlongs, no surrogates, <= U+10FFFF. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], need, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (n - i - 1 < need) return false;
        for (uint32_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
        i += need + 1;
    }
    return true;
}

static bool ref_common(const uint8_t *s, size_t n)
{
    return n > 0 && n <= 65535 && !memchr(s, 0, n) && ref_utf8(s, n);
}

static bool ref_valid_name(const uint8_t *s, size_t n)
{
    return ref_common(s, n) && !memchr(s, '+', n) && !memchr(s, '#', n);
}

static bool ref_valid_filter(const uint8_t *s, size_t n)
{
    if (!ref_common(s, n)) return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '/') continue;
        size_t len = i - start;
        const uint8_t *lv = s + start;
        bool plus = memchr(lv, '+', len) != NULL, hash = memchr(lv, '#', len) != NULL;
        if ((plus || hash) && len != 1) return false; /* a wildcard alone in its level */
        if (hash && i != n) return false;             /* '#' last */
        start = i + 1;
    }
    return true;
}

/* ---- levels ---- */

#define MAXLV 8

typedef struct topic {
    const char *lv[MAXLV];
    size_t n;
} topic;

static const char *const vocab[] = {"a", "b", "$s", "", "+", "#", "ab"};
#define NVOCAB (sizeof(vocab) / sizeof(vocab[0]))

static void join(const topic *t, char *out, size_t cap, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t l = strlen(t->lv[i]);
        if (i) out[o++] = '/';
        if (o + l + 1 >= cap) abort();
        memcpy(out + o, t->lv[i], l);
        o += l;
    }
    out[o] = '\0';
    *len = o;
}

/* ---- reference matching ---- */

static bool is(const char *lv, const char *w)
{
    return strcmp(lv, w) == 0;
}

static bool match_from(const topic *f, size_t i, const topic *nm, size_t j)
{
    if (i == f->n) return j == nm->n;
    if (is(f->lv[i], "#")) return true; /* this level and all below, or none */
    if (j == nm->n) return false;
    if (!is(f->lv[i], "+") && !is(f->lv[i], nm->lv[j])) return false;
    return match_from(f, i + 1, nm, j + 1);
}

static bool ref_match(const topic *f, const topic *nm)
{
    /* a leading wildcard never matches a name starting with '$' */
    if (nm->n && nm->lv[0][0] == '$' && (is(f->lv[0], "+") || is(f->lv[0], "#"))) return false;
    return match_from(f, 0, nm, 0);
}

/* ---- the universe of names ---- */

typedef struct universe {
    const char *pool[2 * MAXLV + 3];
    size_t npool, maxlen;
} universe;

static void add_pool(universe *u, const char *lv)
{
    if (is(lv, "+") || is(lv, "#")) return;
    for (size_t i = 0; i < u->npool; i++)
        if (is(u->pool[i], lv)) return;
    u->pool[u->npool++] = lv;
}

static universe make_universe(const topic *s, const topic *f)
{
    universe u = {.npool = 0};
    add_pool(&u, "zz");
    add_pool(&u, "$zz");
    add_pool(&u, "");
    for (size_t i = 0; i < s->n; i++)
        add_pool(&u, s->lv[i]);
    for (size_t i = 0; i < f->n; i++)
        add_pool(&u, f->lv[i]);
    u.maxlen = (s->n > f->n ? s->n : f->n) + 1;
    return u;
}

/* Calls visit(name) for every name of the universe; stops early when it
 * returns false.  Returns false if stopped. */
typedef bool (*visit_fn)(const topic *nm, const topic *s, const topic *f);

static bool each_name(const universe *u, topic *nm, size_t depth, visit_fn visit, const topic *s,
                      const topic *f)
{
    if (depth > 0) {
        nm->n = depth;
        if (!visit(nm, s, f)) return false;
    }
    if (depth == u->maxlen) return true;
    for (size_t i = 0; i < u->npool; i++) {
        nm->lv[depth] = u->pool[i];
        if (!each_name(u, nm, depth + 1, visit, s, f)) return false;
    }
    return true;
}

static bool subset_visit(const topic *nm, const topic *s, const topic *f)
{
    return !ref_match(s, nm) || ref_match(f, nm); /* a counterexample stops */
}

static bool overlap_visit(const topic *nm, const topic *s, const topic *f)
{
    return !(ref_match(s, nm) && ref_match(f, nm)); /* a common name stops */
}

static bool ref_subset(const topic *s, const topic *f)
{
    universe u = make_universe(s, f);
    topic nm;
    return each_name(&u, &nm, 0, subset_visit, s, f);
}

static bool ref_overlap(const topic *s, const topic *f)
{
    universe u = make_universe(s, f);
    topic nm;
    return !each_name(&u, &nm, 0, overlap_visit, s, f);
}

/* ---- the target ---- */

static void take(const uint8_t **p, size_t *left, topic *t)
{
    uint8_t b = *left ? (*left)--, *(*p)++ : 0;
    t->n = 1 + b % 4;
    for (size_t i = 0; i < t->n; i++) {
        uint8_t c = *left ? (*left)--, *(*p)++ : 0;
        t->lv[i] = vocab[c % NVOCAB];
    }
}

static void check_validity(const uint8_t *s, size_t n)
{
    bool name = exh_topic_check_name((const char *)s, n) == EXH_TOPIC_OK;
    bool filter = exh_topic_check_filter((const char *)s, n) == EXH_TOPIC_OK;
    if (name != ref_valid_name(s, n))
        FAIL("check_name(%.*s) = %d, reference says %d", (int)n, (const char *)s, name, !name);
    if (filter != ref_valid_filter(s, n))
        FAIL("check_filter(%.*s) = %d, reference says %d", (int)n, (const char *)s, filter,
             !filter);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1. validity of the raw bytes, whole and split at the first 0xFF */
    check_validity(data, size);
    const uint8_t *cut = memchr(data, 0xFF, size);
    if (cut) check_validity(data, (size_t)(cut - data));

    /* 2. matching, subset and overlap on topics built from a vocabulary */
    const uint8_t *p = data;
    size_t left = size;
    topic s, f, nm;
    take(&p, &left, &s);
    take(&p, &left, &f);
    take(&p, &left, &nm);
    char sb[64], fb[64], nb[64];
    size_t sl, fl, nl;
    join(&s, sb, sizeof(sb), &sl);
    join(&f, fb, sizeof(fb), &fl);
    join(&nm, nb, sizeof(nb), &nl);
    bool s_ok = ref_valid_filter((const uint8_t *)sb, sl);
    bool f_ok = ref_valid_filter((const uint8_t *)fb, fl);
    bool n_ok = ref_valid_name((const uint8_t *)nb, nl);
    check_validity((const uint8_t *)sb, sl);
    check_validity((const uint8_t *)nb, nl);
    if (f_ok && n_ok && exh_topic_match(fb, fl, nb, nl) != ref_match(&f, &nm))
        FAIL("match(filter '%s', name '%s') = %d, reference says %d", fb, nb,
             exh_topic_match(fb, fl, nb, nl), ref_match(&f, &nm));
    if (s_ok && f_ok) {
        bool sub = exh_topic_subset(sb, sl, fb, fl), rsub = ref_subset(&s, &f);
        if (sub != rsub) FAIL("subset('%s' <= '%s') = %d, reference says %d", sb, fb, sub, rsub);
        bool ov = exh_topic_overlap(sb, sl, fb, fl), rov = ref_overlap(&s, &f);
        if (ov != rov) FAIL("overlap('%s', '%s') = %d, reference says %d", sb, fb, ov, rov);
    }
    return 0;
}
