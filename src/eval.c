/*
 * eval.c -- the hot path: one request, one decision.
 *
 * Steps (DESIGN §2): validate the topic; superusers may publish and
 * subscribe to anything; otherwise collect the candidate rule lists from
 * the index, merge them in policy order and test each rule until one
 * matches.  No allocation, no locks: everything mutable is in the caller's
 * exh_evalctx.
 *
 * Matching is three-valued.  A fact the front end could not supply
 * (peerhost, QoS, retain), a regex that ran out of its match budget, or a
 * placeholder without a value in an exact username/clientid condition
 * makes a condition UNKNOWN; a rule whose conditions are all TRUE or
 * UNKNOWN, with at least one UNKNOWN, matches only if it is a deny rule.
 */
#include "exhook/eval.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/topic.h"
#include "invariant.h"
#include "rule.h"
#include "utf8.h"

typedef enum tri { T_FALSE = 0, T_TRUE = 1, T_UNKNOWN = 2 } tri;

/* Most lists a request can collect: username, clientid, trie root and
 * one per indexed level. */
#define MAX_LISTS (4 + EXH_INDEX_DEPTH)
/* Regex backtracking budget: a pathological pattern gives UNKNOWN rather
 * than stalling the broker. */
#define MATCH_LIMIT 100000

struct exh_evalctx {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    const char *slot_ptr[EXH_MAX_SLOTS];
    size_t slot_len[EXH_MAX_SLOTS];
    tri slot_state[EXH_MAX_SLOTS];    /* T_TRUE set, T_FALSE unset, T_UNKNOWN */
    uint64_t hn[EXH_INDEX_DEPTH + 1]; /* trie hash of the first k levels */
    uint32_t nlevels;
    uint32_t lvl[EXH_TOPIC_MAX + 2]; /* start offset of each topic level + sentinel */
};

exh_evalctx *exh_evalctx_new(void)
{
    exh_evalctx *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->md = pcre2_match_data_create(EXH_MAX_GROUPS + 1, NULL);
    c->mctx = pcre2_match_context_create(NULL);
    if (!c->md || !c->mctx) {
        exh_evalctx_free(c);
        return NULL;
    }
    pcre2_set_match_limit(c->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(c->mctx, MATCH_LIMIT);
    return c;
}

void exh_evalctx_free(exh_evalctx *c)
{
    if (!c) return;
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    free(c);
}

void exh_request_init(exh_request *req, exh_action action)
{
    memset(req, 0, sizeof(*req));
    req->action = action;
    req->qos = -1;
    req->retain = -1;
}

const char *exh_basis_str(exh_basis b)
{
    switch (b) {
    case EXH_BY_RULE:
        return "rule";
    case EXH_BY_DEFAULT:
        return "default";
    case EXH_BY_SUPERUSER:
        return "superuser";
    case EXH_BY_CREDENTIALS:
        return "credentials";
    case EXH_BY_ANONYMOUS:
        return "anonymous";
    case EXH_BY_INVALID:
        return "invalid";
    }
    return "?";
}

/* Placeholder values are literal text and must stay inside one level: an
 * empty value, or one holding '/', '+', '#' or NUL, never matches. */
static int safe_value(const char *p, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '/' || c == '+' || c == '#' || c == '\0') return 0;
    }
    return 1;
}

int exh_simple_match(const exh_cond *c, const char *subj, size_t len)
{
    const simple_re *s = c->sre;
    if (len < c->prefix_len || memcmp(subj, c->str, c->prefix_len) != 0) return T_FALSE;
    size_t n = len - c->prefix_len;
    if (n < s->qmin || n > s->qmax) return T_FALSE;
    for (size_t i = c->prefix_len; i < len; i++) {
        unsigned char b = (unsigned char)subj[i];
        if (!(s->cls[b / 8] & (1u << (b % 8)))) return T_FALSE;
    }
    return T_TRUE;
}

static tri eval_regex(const exh_cond *c, const char *subj, size_t len, exh_evalctx *ctx)
{
    int rc;
    if (c->sre) {
        /* no groups, or one around the whole rest (c->capture): its slot,
         * if this rule uses it, is what follows the prefix */
        tri t = exh_simple_match(c, subj, len) ? T_TRUE : T_FALSE;
        for (uint8_t k = 0; k < c->nmap; k++) {
            uint8_t s = c->map[k].slot;
            ctx->slot_state[s] = t;
            if (t == T_TRUE) {
                ctx->slot_ptr[s] = subj + c->prefix_len;
                ctx->slot_len[s] = len - c->prefix_len;
            }
        }
        return t;
    }
    if (c->prefix_len && (len < c->prefix_len || memcmp(subj, c->str, c->prefix_len) != 0))
        rc = PCRE2_ERROR_NOMATCH;
    else if (c->jit) /* the subject is valid UTF-8: eval() checked every name */
        rc = pcre2_jit_match(c->re, (PCRE2_SPTR)subj, len, 0, 0, ctx->md, ctx->mctx);
    else
        rc = pcre2_match(c->re, (PCRE2_SPTR)subj, len, 0, PCRE2_NO_UTF_CHECK, ctx->md, ctx->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) {
        for (uint8_t k = 0; k < c->nmap; k++)
            ctx->slot_state[c->map[k].slot] = T_FALSE;
        return T_FALSE;
    }
    if (rc < 0) { /* match limit or other runtime failure: unknown */
        for (uint8_t k = 0; k < c->nmap; k++)
            ctx->slot_state[c->map[k].slot] = T_UNKNOWN;
        return T_UNKNOWN;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ctx->md);
    for (uint8_t k = 0; k < c->nmap; k++) {
        uint16_t g = c->map[k].group;
        uint8_t s = c->map[k].slot;
        if (ov[2 * g] == PCRE2_UNSET) {
            ctx->slot_ptr[s] = NULL;
            ctx->slot_len[s] = 0;
        } else {
            ctx->slot_ptr[s] = subj + ov[2 * g];
            ctx->slot_len[s] = ov[2 * g + 1] - ov[2 * g];
        }
        ctx->slot_state[s] = T_TRUE;
    }
    return T_TRUE;
}

/*
 * An exact name with placeholders (`username "d-${serial}"`), compared
 * piece by piece with the request's name, without building the string.
 * Every placeholder must have a value first: a capture that did not take
 * part or matched nothing, one whose regex ran out of budget, a missing
 * username or an empty client id leaves the comparison UNKNOWN, so an
 * allow rule does not match and a deny rule does, whichever way a `not`
 * points (an empty serial must not make `not username "d-${serial}"` true
 * for an allow, nor false for a deny).  Values are literal bytes.
 */
static tri match_name(const exh_cond *c, const char *subj, size_t len, const exh_request *req,
                      const exh_evalctx *ctx)
{
    for (uint32_t i = 0; i < c->nparts; i++) {
        const exh_part *pt = &c->parts[i];
        if (pt->kind == PART_USERNAME) {
            if (!req->username || !req->username_len) return T_UNKNOWN;
        } else if (pt->kind == PART_CLIENTID) {
            if (!req->clientid || !req->clientid_len) return T_UNKNOWN;
        } else if (pt->kind == PART_SLOT) {
            if (ctx->slot_state[pt->slot] != T_TRUE || !ctx->slot_ptr[pt->slot] ||
                !ctx->slot_len[pt->slot])
                return T_UNKNOWN;
        }
    }
    if (!subj) return T_FALSE; /* anonymous: no username to compare */
    size_t pos = 0;
    for (uint32_t i = 0; i < c->nparts; i++) {
        const exh_part *pt = &c->parts[i];
        const char *v;
        size_t n;
        switch (pt->kind) {
        case PART_LIT:
            v = c->str + pt->off;
            n = pt->len;
            break;
        case PART_USERNAME:
            v = req->username;
            n = req->username_len;
            break;
        case PART_CLIENTID:
            v = req->clientid;
            n = req->clientid_len;
            break;
        default: /* PART_SLOT */
            v = ctx->slot_ptr[pt->slot];
            n = ctx->slot_len[pt->slot];
            break;
        }
        if (n > len - pos || memcmp(subj + pos, v, n) != 0) return T_FALSE;
        pos += n;
    }
    return pos == len ? T_TRUE : T_FALSE;
}

static tri eval_cond(const exh_cond *c, const exh_request *req, exh_evalctx *ctx)
{
    tri t = T_FALSE;
    const char *cid = req->clientid ? req->clientid : "";
    switch (c->kind) {
    case COND_USERNAME:
        t = req->username && req->username_len == c->len &&
            memcmp(req->username, c->str, c->len) == 0;
        break;
    case COND_CLIENTID:
        t = req->clientid_len == c->len && memcmp(cid, c->str, c->len) == 0;
        break;
    case COND_USERNAME_RE:
        t = req->username ? eval_regex(c, req->username, req->username_len, ctx) : T_FALSE;
        break;
    case COND_CLIENTID_RE:
        t = eval_regex(c, cid, req->clientid_len, ctx);
        break;
    case COND_PEERHOST:
        t = req->peerhost.family ? (tri)exh_cidr_contains(&c->cidr, &req->peerhost) : T_UNKNOWN;
        break;
    case COND_GROUP:
        for (size_t i = 0; i < req->ngroups && t == T_FALSE; i++)
            t = req->groups[i].len == c->len && memcmp(req->groups[i].ptr, c->str, c->len) == 0;
        break;
    case COND_ANONYMOUS:
        t = req->username == NULL;
        break;
    case COND_USERNAME_PAT:
        t = match_name(c, req->username, req->username_len, req, ctx);
        break;
    case COND_CLIENTID_PAT:
        t = match_name(c, cid, req->clientid_len, req, ctx);
        break;
    }
    if (c->negated && t != T_UNKNOWN) t = t == T_TRUE ? T_FALSE : T_TRUE;
    return t;
}

/* Does one topic level equal the concatenation of a pattern's parts? */
static tri match_pattern(const exh_spec *s, const exh_level *lv, const char *tp, size_t tl,
                         const exh_request *req, const exh_evalctx *ctx)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < lv->len; i++) {
        const exh_part *pt = &s->parts[lv->off + i];
        const char *v;
        size_t n;
        switch (pt->kind) {
        case PART_LIT:
            v = s->text + pt->off;
            n = pt->len;
            break;
        case PART_USERNAME:
            if (!req->username) return T_FALSE;
            v = req->username;
            n = req->username_len;
            if (!safe_value(v, n)) return T_FALSE;
            break;
        case PART_CLIENTID:
            v = req->clientid ? req->clientid : "";
            n = req->clientid_len;
            if (!safe_value(v, n)) return T_FALSE;
            break;
        default: /* PART_SLOT */
            if (ctx->slot_state[pt->slot] != T_TRUE)
                return ctx->slot_state[pt->slot] == T_UNKNOWN ? T_UNKNOWN : T_FALSE;
            v = ctx->slot_ptr[pt->slot];
            n = ctx->slot_len[pt->slot];
            if (!v || !safe_value(v, n)) return T_FALSE;
            break;
        }
        if (n > tl - pos || memcmp(tp + pos, v, n) != 0) return T_FALSE;
        pos += n;
    }
    return pos == tl ? T_TRUE : T_FALSE;
}

/* Could a pattern level's placeholders fill a level at all?  (For a
 * subscription wildcard facing a pattern: any valid value overlaps '+'.) */
static tri pattern_usable(const exh_spec *s, const exh_level *lv, const exh_request *req,
                          const exh_evalctx *ctx)
{
    for (uint32_t i = 0; i < lv->len; i++) {
        const exh_part *pt = &s->parts[lv->off + i];
        if (pt->kind == PART_USERNAME) {
            if (!req->username || !safe_value(req->username, req->username_len)) return T_FALSE;
        } else if (pt->kind == PART_CLIENTID) {
            if (!safe_value(req->clientid ? req->clientid : "", req->clientid_len)) return T_FALSE;
        } else if (pt->kind == PART_SLOT) {
            if (ctx->slot_state[pt->slot] != T_TRUE)
                return ctx->slot_state[pt->slot] == T_UNKNOWN ? T_UNKNOWN : T_FALSE;
            if (!ctx->slot_ptr[pt->slot] ||
                !safe_value(ctx->slot_ptr[pt->slot], ctx->slot_len[pt->slot]))
                return T_FALSE;
        }
    }
    return T_TRUE;
}

/*
 * The first byte of F's first level for this request: written in the
 * filter, or the first byte of the value of the placeholder it starts
 * with.  0 where there is none to know: a wildcard, or a value that is
 * missing or empty (that level matches nothing anyway), or a capture whose
 * regex ran out of budget (its level is then unknown anyway).
 */
static char first_byte(const exh_spec *s, const exh_request *req, const exh_evalctx *ctx)
{
    const exh_level *lv = &s->levels[0];
    if (lv->kind == LVL_LIT) return lv->len ? s->text[lv->off] : 0;
    if (lv->kind != LVL_PATTERN) return 0;
    const exh_part *pt = &s->parts[lv->off];
    switch (pt->kind) {
    case PART_LIT:
        return s->text[pt->off];
    case PART_USERNAME:
        return req->username && req->username_len ? req->username[0] : 0;
    case PART_CLIENTID:
        return req->clientid && req->clientid_len ? req->clientid[0] : 0;
    default: /* PART_SLOT */
        return ctx->slot_state[pt->slot] == T_TRUE && ctx->slot_ptr[pt->slot] &&
                       ctx->slot_len[pt->slot]
                   ? ctx->slot_ptr[pt->slot][0]
                   : 0;
    }
}

enum match_mode {
    MATCH_NAME,    /* publish: the topic name matches F */
    MATCH_SUBSET,  /* subscribe, allow rule: S ⊆ F */
    MATCH_OVERLAP, /* subscribe, deny rule: S ∩ F ≠ ∅ */
};

/*
 * One rule filter F against the request's topic, level by level.
 * MATCH_SUBSET: wherever F has a literal, S must have the same literal,
 * F's '+' covers anything but S's '#', and F's '#' covers the rest.
 * MATCH_OVERLAP: a wildcard on either side meets anything at its level,
 * and a '#' on either side meets everything below.
 */
static tri match_spec(const exh_spec *s, const char *t, size_t tlen, enum match_mode mode,
                      const exh_request *req, const exh_evalctx *ctx)
{
    if (s->eq) return s->len == tlen && memcmp(s->text, t, tlen) == 0;
    uint32_t n = ctx->nlevels;
    /*
     * MQTT's `$` rule: a filter whose first level is `+` or `#` matches no
     * topic starting with '$'.  So a wildcard first level never meets a
     * first level that starts with '$', whichever side each is on: F's
     * wildcard and a '$' topic or subscription, or a subscription's
     * wildcard and F's first level -- written (`$SYS/#`, `$${clientid}/a`)
     * or substituted (`%u/#` for the user `$SYS`).  One test for every
     * mode; it decides the deny overlap, and agrees with the level walk
     * below for the others.
     */
    if (s->nlevels && tlen) {
        int f_wild = s->levels[0].kind == LVL_PLUS || s->levels[0].kind == LVL_HASH;
        int t_wild = t[0] == '+' || t[0] == '#'; /* a whole level: the filter is valid */
        if ((f_wild && t[0] == '$') || (t_wild && first_byte(s, req, ctx) == '$')) return T_FALSE;
    }
    tri result = T_TRUE;
    for (uint32_t i = 0; i < s->nlevels; i++) {
        const exh_level *lv = &s->levels[i];
        if (lv->kind == LVL_HASH) return result;
        if (i >= n) return T_FALSE;
        const char *lp = t + ctx->lvl[i];
        size_t ll = ctx->lvl[i + 1] - ctx->lvl[i] - 1;
        int s_plus = mode != MATCH_NAME && ll == 1 && lp[0] == '+';
        int s_hash = mode != MATCH_NAME && ll == 1 && lp[0] == '#';
        tri m = T_TRUE;
        if (mode == MATCH_OVERLAP && (s_hash || s_plus)) {
            /* S's wildcard meets any value F's level can take. */
            if (lv->kind == LVL_PATTERN) m = pattern_usable(s, lv, req, ctx);
            if (m != T_FALSE && s_hash) { /* and F's remaining levels must be fillable */
                for (uint32_t k = i + 1; k < s->nlevels && m != T_FALSE; k++)
                    if (s->levels[k].kind == LVL_PATTERN) {
                        tri u = pattern_usable(s, &s->levels[k], req, ctx);
                        m = u == T_FALSE ? T_FALSE : (u == T_UNKNOWN ? T_UNKNOWN : m);
                    }
                return m == T_FALSE ? T_FALSE : (m == T_UNKNOWN ? T_UNKNOWN : result);
            }
        } else if (s_hash) {
            /* subset: only F's '#' covers S's '#' ("a/#" matches "a" too,
             * which "a/+/#" does not), except that a lone "#" has no parent
             * level and matches exactly what "+/#" matches */
            if (i == 0 && lv->kind == LVL_PLUS && s->nlevels == 2 && s->levels[1].kind == LVL_HASH)
                return result;
            return T_FALSE;
        } else if (lv->kind == LVL_PLUS) {
            continue;
        } else if (s_plus) {
            return T_FALSE; /* subset: a literal covers only itself */
        } else if (lv->kind == LVL_LIT) {
            if (lv->len != ll || memcmp(s->text + lv->off, lp, ll) != 0) return T_FALSE;
        } else {
            m = match_pattern(s, lv, lp, ll, req, ctx);
        }
        if (m == T_FALSE) return T_FALSE;
        if (m == T_UNKNOWN) result = T_UNKNOWN;
    }
    if (s->nlevels == n) return result;
    /* F ended first: S's next level '#' (its last) still meets F's topic. */
    if (mode == MATCH_OVERLAP && n == s->nlevels + 1) {
        const char *lp = t + ctx->lvl[n - 1];
        if (ctx->lvl[n] - ctx->lvl[n - 1] - 1 == 1 && lp[0] == '#') return result;
    }
    return T_FALSE;
}

static int rule_matches(const rule_head *r, const exh_request *req, const char *topic, size_t tlen,
                        exh_evalctx *ctx)
{
    int unknown = 0;
    for (uint16_t i = 0; i < r->nconds; i++)
        if (r->conds[i].re && !r->conds[i].sre)
            __builtin_prefetch(r->conds[i].re); /* overlap its miss with the cheap tests */
    for (uint16_t i = 0; i < r->nconds; i++) {
        tri t = eval_cond(&r->conds[i], req, ctx);
        if (t == T_FALSE) return 0;
        unknown |= t == T_UNKNOWN;
    }
    if (req->action != EXH_CONNECT) {
        if (r->nspecs) {
            tri best = T_FALSE;
            enum match_mode mode = req->action == EXH_PUBLISH ? MATCH_NAME
                                   : r->effect == EXH_DENY    ? MATCH_OVERLAP
                                                              : MATCH_SUBSET;
            for (uint16_t i = 0; i < r->nspecs && best != T_TRUE; i++) {
                tri m = match_spec(&r->specs[i], topic, tlen, mode, req, ctx);
                if (m != T_FALSE) best = m;
            }
            if (best == T_FALSE) return 0;
            unknown |= best == T_UNKNOWN;
        }
        if (r->qos_lo >= 0 && !req->delivery) {
            if (req->qos < 0 || req->qos > 2)
                unknown = 1;
            else if (req->qos < r->qos_lo || req->qos > r->qos_hi)
                return 0;
        }
        if (r->retain >= 0 && req->action == EXH_PUBLISH) {
            if (req->retain < 0)
                unknown = 1;
            else if ((req->retain != 0) != (r->retain != 0))
                return 0;
        }
    }
    return !unknown || r->effect == EXH_DENY;
}

/*
 * One pass over a topic: level offsets, the trie hash of every leading
 * prefix up to maxdepth levels, and whether anything needs the full
 * validators (a wildcard, a NUL, a non-ASCII byte).  Most topics are plain
 * ASCII, and for them this pass is all the checking there is.  It reads
 * the topic a word at a time (never past its end): the separators and the
 * special bytes of eight bytes are found with a few word operations, and
 * the prefix hashes are strmap_hash's, taken at each '/'.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* 0x80 in every byte of w that equals c, 0 elsewhere: exact, no carries
 * between bytes. */
static inline uint64_t bytes_eq(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return ~(((x & ~HIGHS) + ~HIGHS) | x | ~HIGHS);
}

/* One word of the topic (valid: the 0x80 bits of its real bytes). */
static inline void scan_word(uint64_t w, uint64_t valid, size_t at, uint64_t *h, uint64_t *special,
                             exh_evalctx *ctx, uint32_t *n, uint32_t maxdepth)
{
    *special |= (bytes_eq(w, '+') | bytes_eq(w, '#') | bytes_eq(w, 0) | w) & HIGHS & valid;
    for (uint64_t sl = bytes_eq(w, '/') & valid; sl; sl &= sl - 1) {
        size_t b = (size_t)__builtin_ctzll(sl) >> 3;
        if (*n <= maxdepth)
            ctx->hn[*n] =
                strmap_hash_end(b ? strmap_hash_word(*h, strmap_word_head(w, b)) : *h, *n, at + b);
        ctx->lvl[(*n)++] = (uint32_t)(at + b) + 1;
    }
}

static int scan_topic(const char *t, size_t len, exh_evalctx *ctx, uint32_t maxdepth)
{
    uint64_t h = STRMAP_HASH_START, special = 0, w;
    uint32_t n = 0;
    size_t i = 0;
    ctx->lvl[n++] = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, t + i, 8);
        scan_word(w, HIGHS, i, &h, &special, ctx, &n, maxdepth);
        h = strmap_hash_word(h, w);
    }
    if (i < len) {
        w = 0;
        memcpy(&w, t + i, len - i);
        scan_word(w, strmap_word_head(HIGHS, len - i), i, &h, &special, ctx, &n, maxdepth);
        h = strmap_hash_word(h, w);
    }
    if (n <= maxdepth) ctx->hn[n] = strmap_hash_end(h, n, len);
    ctx->lvl[n] = (uint32_t)len + 1;
    ctx->nlevels = n;
    return special != 0;
}
#else
static int scan_topic(const char *t, size_t len, exh_evalctx *ctx, uint32_t maxdepth)
{
    int special = 0;
    uint32_t n = 0;
    ctx->lvl[n++] = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '/') {
            if (n <= maxdepth) ctx->hn[n] = strmap_hash(n, t, i);
            ctx->lvl[n++] = (uint32_t)i + 1;
        } else if (c == '+' || c == '#' || c == 0 || c >= 0x80) {
            special = 1;
        }
    }
    if (n <= maxdepth) ctx->hn[n] = strmap_hash(n, t, len);
    ctx->lvl[n] = (uint32_t)len + 1;
    ctx->nlevels = n;
    return special;
}
#endif

/*
 * Names are MQTT UTF-8 strings, and regexes run in UTF mode, whose JIT is
 * only defined on valid UTF-8: a name that is not is refused before any
 * rule, for superusers too.  For the ASCII names nearly every request has
 * this is a few word loads.
 */
static const char *bad_name(const exh_request *req)
{
    if (req->username && exh_utf8_bad(req->username, req->username_len) != req->username_len)
        return "username is not well-formed UTF-8";
    if (req->clientid && exh_utf8_bad(req->clientid, req->clientid_len) != req->clientid_len)
        return "client id is not well-formed UTF-8";
    return NULL;
}

static exh_decision decide(exh_result *res, exh_decision d, exh_basis b, const char *reason)
{
    res->decision = d;
    res->basis = b;
    res->reason = reason;
    return d;
}

/* What validation leaves for the rule search: the action's index and the
 * topic the rules see (a shared subscription's filter without its
 * $share/<group>/ prefix; NULL for connect). */
typedef struct checked_req {
    int ai; /* EXH_IDX_PUB, EXH_IDX_SUB or EXH_IDX_CONN */
    const char *topic;
    size_t tlen;
} checked_req;

/*
 * Step 1: is the request well-formed, and is it decided before any rule?
 * Checks the action, the names' UTF-8 and the topic (scanning it into ctx
 * on the way: level offsets and trie hashes), and lets a superuser publish
 * and subscribe.  Returns true when res holds the decision already.
 */
static inline bool check_request(const exh_policy *p, const exh_request *req, exh_evalctx *ctx,
                                 exh_result *res, checked_req *c)
{
    switch (req->action) {
    case EXH_PUBLISH:
        c->ai = EXH_IDX_PUB;
        break;
    case EXH_SUBSCRIBE:
        c->ai = EXH_IDX_SUB;
        break;
    case EXH_CONNECT:
        c->ai = EXH_IDX_CONN;
        break;
    default:
        decide(res, EXH_DENY, EXH_BY_INVALID, "invalid action");
        return true;
    }
    c->topic = NULL;
    c->tlen = 0;
    const char *bad = bad_name(req);
    if (bad) {
        decide(res, EXH_DENY, EXH_BY_INVALID, bad);
        return true;
    }
    if (c->ai == EXH_IDX_CONN) return false;

    const char *topic = req->topic;
    size_t tlen = req->topic_len;
    if (c->ai == EXH_IDX_SUB && topic && tlen <= EXH_TOPIC_MAX) {
        topic = exh_topic_strip_prefix(req->topic, req->topic_len, !req->queue_is_topic, &tlen);
        if (!topic) {
            decide(res, EXH_DENY, EXH_BY_INVALID,
                   "invalid shared subscription (needs $share/<group>/<filter>)");
            return true;
        }
    }
    /* The whole subscription, $share prefix included, is bounded. */
    exh_topic_status ts = !topic                           ? EXH_TOPIC_EMPTY
                          : req->topic_len > EXH_TOPIC_MAX ? EXH_TOPIC_TOO_LONG
                          : tlen == 0                      ? EXH_TOPIC_EMPTY
                                                           : EXH_TOPIC_OK;
    if (ts == EXH_TOPIC_OK && scan_topic(topic, tlen, ctx, p->idx[c->ai].depth))
        ts = c->ai == EXH_IDX_SUB ? exh_topic_check_filter(topic, tlen)
                                  : exh_topic_check_name(topic, tlen);
    if (ts != EXH_TOPIC_OK) {
        decide(res, EXH_DENY, EXH_BY_INVALID, exh_topic_status_str(ts));
        return true;
    }
    /* ctx->lvl holds a start offset per level and a sentinel. */
    EXH_ASSERT(ctx->nlevels >= 1 && ctx->nlevels <= EXH_TOPIC_MAX + 1);
    if (req->superuser) {
        decide(res, EXH_ALLOW, EXH_BY_SUPERUSER, NULL);
        return true;
    }
    c->topic = topic;
    c->tlen = tlen;
    return false;
}

/*
 * Step 2: the candidate lists for a checked request, from the index: its
 * username's, its clientid's, the trie root's and those of the trie nodes
 * along its topic's literal leading levels (and, at a subscription
 * wildcard, the deny rules filed below it).  Every hash is computed first
 * and its slot prefetched, so the few cache misses a cold request costs
 * overlap instead of queueing one behind the other.  Returns the number
 * of ranges written to src (at most MAX_LISTS), each ascending.
 */
static inline int gather_candidates(const exh_policy *p, const exh_request *req,
                                    const checked_req *c, const exh_evalctx *ctx,
                                    cand_range src[MAX_LISTS])
{
    const action_index *ix = &p->idx[c->ai];
    const char *topic = c->topic;
    const strmap_slot *slot_user = NULL, *slot_cid = NULL, *nodes[EXH_INDEX_DEPTH + 1];
    uint64_t hu = 0, hc = 0;
    const uint64_t *hn = ctx->hn;
    uint32_t depth = 0, wild = UINT32_MAX;
    /* The walk below indexes hn[] and nodes[] up to ix->depth. */
    EXH_ASSERT(ix->depth <= EXH_INDEX_DEPTH);
    if (req->username && ix->users.count) {
        hu = strmap_hash(0, req->username, req->username_len);
        __builtin_prefetch(strmap_home(&ix->users, hu));
    }
    if (ix->clients.count) {
        hc = strmap_hash(0, req->clientid ? req->clientid : "", req->clientid_len);
        __builtin_prefetch(strmap_home(&ix->clients, hc));
    }
    if (c->ai != EXH_IDX_CONN && ix->trie.count) {
        for (uint32_t k = 0; k < ctx->nlevels && k < ix->depth; k++) {
            const char *lp = topic + ctx->lvl[k];
            if (ctx->lvl[k + 1] - ctx->lvl[k] - 1 == 1 && (lp[0] == '+' || lp[0] == '#')) {
                wild = k; /* nothing filed below can be reached by a walk past here */
                break;
            }
            depth++;
            __builtin_prefetch(strmap_home(&ix->trie, hn[depth]));
        }
    } else if (c->ai != EXH_IDX_CONN && ctx->nlevels && ctx->lvl[1] == 2 &&
               (topic[0] == '+' || topic[0] == '#')) {
        wild = 0;
    }

    int nl = 0;
    if (hu && (slot_user = strmap_find(&ix->users, hu)))
        nl += exh_ref_range(p, &slot_user->v[0], &src[nl]);
    if (slot_user && slot_user->v[1] != EXH_NO_REF)
        src[nl - 1].end++; /* a second single rule sits beside the first */
    if (hc && (slot_cid = strmap_find(&ix->clients, hc)))
        nl += exh_ref_range(p, &slot_cid->v[0], &src[nl]);
    if (slot_cid && slot_cid->v[1] != EXH_NO_REF) src[nl - 1].end++;
    nl += exh_ref_range(p, &ix->root[0], &src[nl]);
    uint32_t found = 0;
    for (uint32_t k = 1; k <= depth; k++) {
        if (!(nodes[k] = strmap_find(&ix->trie, hn[k])))
            break; /* every ancestor of a node exists: nothing deeper either */
        found = k;
        nl += exh_ref_range(p, &nodes[k]->v[0], &src[nl]);
    }
    /* At a subscription wildcard, deny rules filed below it overlap it. */
    if (wild != UINT32_MAX && found == wild)
        nl += exh_ref_range(p, wild ? &nodes[wild]->v[1] : &ix->root[1], &src[nl]);
    /* username, clientid, root, a node per level, the wildcard's list. */
    EXH_ASSERT(nl <= 4 + (int)depth);
    for (int i = 0; i < nl; i++)
        exh_blob_prefetch(p, *src[i].p);
    return nl;
}

/*
 * Step 3: merge the candidate lists in policy order (blob offsets order
 * like rule numbers) and test each rule once, the first match deciding.
 * A rule filed in two lists comes out of the merge twice in a row: the
 * lists being ascending is what makes skipping the repeat enough.
 */
static inline const rule_head *first_match(const exh_policy *p, cand_range *src, int nl,
                                           const exh_request *req, const checked_req *c,
                                           exh_evalctx *ctx)
{
    uint32_t last = UINT32_MAX;
    for (;;) {
        int best = -1;
        for (int i = 0; i < nl; i++)
            if (src[i].p < src[i].end && (best < 0 || *src[i].p < *src[best].p)) best = i;
        if (best < 0) return NULL;
        uint32_t off = *src[best].p++;
        if (src[best].p < src[best].end) {
            assert(*src[best].p > off); /* each list strictly ascending */
            exh_blob_prefetch(p, *src[best].p);
        }
        assert(last == UINT32_MAX || off >= last); /* the merge never goes back */
        if (off == last) continue;
        last = off;
        const rule_head *r = exh_blob(p, off);
        if (rule_matches(r, req, c->topic, c->tlen, ctx)) return r;
    }
}

/* The reference search, without the index: every rule in order. */
static const rule_head *first_match_linear(const exh_policy *p, const exh_request *req,
                                           const checked_req *c, exh_evalctx *ctx)
{
    static const unsigned bits[3] = {EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT};
    for (uint32_t ri = 0; ri < p->nrules; ri++) {
        const rule_head *r = exh_blob(p, p->rules[ri].blob);
        if ((r->actions & bits[c->ai]) && rule_matches(r, req, c->topic, c->tlen, ctx)) return r;
    }
    return NULL;
}

/* Step 4: the decision -- the first matching rule's effect, or, with no
 * rule, the policy's default (a connect: whether the client gave a
 * username, its credentials having been checked already). */
static inline exh_decision conclude(const exh_policy *p, const exh_request *req,
                                    const checked_req *c, const rule_head *r, exh_result *res)
{
    if (r) {
        EXH_ASSERT(r->index < p->nrules);
        res->rule = r->index;
        return decide(res, (exh_decision)r->effect, EXH_BY_RULE, NULL);
    }
    if (c->ai == EXH_IDX_CONN)
        return req->username ? decide(res, EXH_ALLOW, EXH_BY_CREDENTIALS, NULL)
                             : decide(res, EXH_DENY, EXH_BY_ANONYMOUS, NULL);
    return decide(res, p->def, EXH_BY_DEFAULT, NULL);
}

static exh_decision eval(const exh_policy *p, const exh_request *req, exh_evalctx *ctx,
                         exh_result *res, int use_index)
{
    res->rule = 0;
    checked_req c;
    if (check_request(p, req, ctx, res, &c)) return res->decision;
    const rule_head *r;
    if (use_index) {
        cand_range src[MAX_LISTS];
        int nl = gather_candidates(p, req, &c, ctx, src);
        r = first_match(p, src, nl, req, &c, ctx);
    } else {
        r = first_match_linear(p, req, &c, ctx);
    }
    return conclude(p, req, &c, r, res);
}

exh_decision exh_eval(const exh_policy *p, const exh_request *req, exh_evalctx *ctx,
                      exh_result *res)
{
    return eval(p, req, ctx, res, 1);
}

exh_decision exh_eval_linear(const exh_policy *p, const exh_request *req, exh_evalctx *ctx,
                             exh_result *res)
{
    return eval(p, req, ctx, res, 0);
}
