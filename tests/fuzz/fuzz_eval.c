/*
 * fuzz_eval.c -- differential libFuzzer target for the evaluator.
 *
 * The input drives a small generator (its bytes are the random choices;
 * when they run out, a PRNG seeded from the whole input takes over) that
 * writes a random policy -- effects, actions, conditions, topic filters
 * with placeholders and `eq`, qos and retain options, a default -- and a
 * batch of random requests.  Every request is answered three ways:
 *
 *   exh_eval         the indexed evaluator
 *   exh_eval_linear  the library's plain scan (src/rule.h)
 *   ref_eval         a deliberately simple first-match evaluator written
 *                    here on top of topic.h's reference functions
 *                    (exh_topic_match for publish, exh_topic_subset for an
 *                    allow rule on subscribe, exh_topic_overlap for a deny
 *                    rule on subscribe).  It models the generator's few
 *                    regexes by hand (their matches and named captures),
 *                    counting characters as PCRE2's UTF mode does, topic
 *                    placeholders by substituting their values into
 *                    the filter text (so a value starting with '$' meets
 *                    topic.h's `$` rule as written text would), and
 *                    placeholders in exact username/clientid conditions
 *                    by comparing the whole substituted string, with a
 *                    placeholder that has no value (a capture absent or
 *                    empty, no username, an empty client id) making the
 *                    condition unknown -- straight from the language's
 *                    definition, none of the library's piecewise matching.
 *                    A username or client id that is not UTF-8 is refused
 *                    before any rule.
 *
 * Names, topics and regexes hold multi-byte characters, and names and
 * placeholder values starting with '$' (`$SYS`, `$${clientid}`).
 *
 * Any disagreement in decision, basis or deciding rule is a crash.
 *
 * Build and run: tests/fuzz/run.sh SECONDS
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/addr.h"
#include "exhook/error.h"
#include "exhook/eval.h"
#include "exhook/policy.h"
#include "exhook/topic.h"
#include "rule.h" /* exh_eval_linear */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the choices ---- */

static const uint8_t *in;
static size_t in_left;
static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
    uint32_t v;
    if (in_left) {
        v = *in++;
        in_left--;
    } else {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        v = (uint32_t)(rng >> 24);
    }
    return n ? v % n : 0;
}

/* "" last: it is no topic alone.  "$SYS" and "\xc3\xa9" (é) are what the
 * names "$SYS" and "é" substitute to. */
static const char *const levels[] = {"a", "b", "c", "$s", "x", "$SYS", "\xc3\xa9", ""};
#define NLEVELS (sizeof(levels) / sizeof(levels[0]))
static const char *const users[] = {
    "u1", "u2", "t1:x", "t2:y", "a",        "#",         "b/c",
    "",   "1",  "$SYS", "$t:x", "\xc3\xa9", "u\xc3\xa9", "\xc3\xa9:\xe2\x82\xac"};
/* clang-format off */
static const char *const cids[] = {"c1", "c2", "dev-1", "dev-2", "a", "+", "", "dev-", "u1", "$c",
                                   "c\xc3\xa9", "$s", "\xc3\xa9\xe2\x82\xac", "dev-\xc3\xa9",
                                   "\xf0\x9f\x98\x80"};
/* clang-format on */
#define NUSERS (sizeof(users) / sizeof(users[0]))
#define NCIDS  (sizeof(cids) / sizeof(cids[0]))
/* Names only requests carry: with a newline (no policy string holds one;
 * `.` does not match it, a negated class does), and ones that are not
 * UTF-8, refused before any rule. */
static const char *const odd_names[] = {"\n:x", "\n\n", "u\n", "c\n"};
static const char *const bad_names[] = {"a\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80"};

/* A topic name or filter of 1 to 4 levels; placeholders only when ph.
 * Sets *used_ph when one was written. */
static void rand_filter(char *out, int allow_wild, int ph, int cap, int *used_ph)
{
    int n = 1 + (int)rnd(4);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(out, "/");
        uint32_t k = rnd(12);
        if (allow_wild && k == 0) {
            strcat(out, "+");
        } else if (allow_wild && k == 1 && i == n - 1) {
            strcat(out, "#");
        } else if (ph && k == 2) {
            static const char *const ps[] = {
                "${username}", "%c",           "%u",           "${clientid}",
                "x%u",         "$${clientid}", "$${username}", "\xc3\xa9${clientid}"};
            strcat(out, ps[rnd(8)]);
            *used_ph = 1;
        } else if (ph && cap && k == 3) {
            strcat(out, rnd(4) ? "${cap}" : "$${cap}");
            *used_ph = 1;
        } else {
            /* "" alone is no topic */
            strcat(out, levels[rnd((uint32_t)(n == 1 ? NLEVELS - 1 : NLEVELS))]);
        }
    }
}

/* ---- the model of a generated rule ---- */

enum { C_USER, C_CID, C_GROUP, C_ANON, C_PEER, C_USER_RE, C_CID_RE, C_USER_PAT, C_CID_PAT };
enum { A_PUB = 1, A_SUB = 2, A_CONN = 4 };

/* The regexes (arg of C_USER_RE / C_CID_RE), in UTF mode: `.` and a
 * negated class take one character, however many bytes. */
enum { RE_U_CAP, RE_U_ANY, RE_U2, RE_ONE, RE_DEV, RE_C9, RE_SID, RE_CNEG, RE_SIDF };
static const char *const regexes[] = {
    "(?<cap>[a-z0-9]+):.*",      /* username: cap = the part before the first ':' */
    "(?<cap>[^:]+):.*",          /* username: the same, any characters ("$t", "é") */
    "u.",                        /* username */
    ".",                         /* username: one character */
    "dev-.*",                    /* clientid */
    "c[0-9]",                    /* clientid */
    "(?:dev-(?<sid>[0-9]*)|c.)", /* clientid: sid may be empty, or not take part */
    "[^a-z]{2}",                 /* clientid: two characters, none of a-z */
    "dev-(?<sid>[0-9]*)",        /* clientid: the engine's capture without PCRE2 */
};

/* What a placeholder in an exact name stands for (mcond.ph). */
enum { PH_USERNAME, PH_CLIENTID, PH_CAP, PH_SID };
static const char *const ph_names[] = {"username", "clientid", "cap", "sid"};
static const char *const ph_pre[] = {"", "u", "dev-", "c"};
static const char *const ph_suf[] = {"", ":x"};

typedef struct mcond {
    int kind, arg, negated;
    int ph, pre, suf; /* C_*_PAT: "<ph_pre[pre]>${<ph_names[ph]>}<ph_suf[suf]>" */
} mcond;

typedef struct mrule {
    int allow;
    unsigned acts;
    int ncond;
    mcond cond[3];
    int nspecs;
    char spec[3][80];
    int eq[3];
    int qos_lo, qos_hi; /* -1: no qos option */
    int retain;         /* -1: no retain option */
} mrule;

#define MAX_RULES 24
static mrule rules[MAX_RULES];
static int nrules;
static char text[MAX_RULES * 400 + 64];

static const char *const cidrs[] = {"10.0.0.0/8", "127.0.0.1", "::1/128", "0.0.0.0/0"};
static const char *const peers[] = {"10.1.2.3", "127.0.0.1", "::1", "192.168.0.1"};

static void gen_policy(void)
{
    static const char *const actname[] = {"publish", "subscribe", "pubsub", "connect", "all"};
    /* `all` is pubsub: it does not take in connect. */
    static const unsigned actbits[] = {A_PUB, A_SUB, A_PUB | A_SUB, A_CONN, A_PUB | A_SUB};
    size_t o = 0;
    nrules = 1 + (int)rnd(MAX_RULES);
    for (int i = 0; i < nrules; i++) {
        mrule *r = &rules[i];
        memset(r, 0, sizeof(*r));
        int a = (int)rnd(5);
        r->allow = (int)rnd(2);
        r->acts = actbits[a];
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%s %s", r->allow ? "allow" : "deny",
                              actname[a]);
        /* First the kinds, so a placeholder can name a capture of a
         * condition written after it; then the text, in that order. */
        int cap = 0, sid = 0;
        r->ncond = (int)rnd(4);
        for (int c = 0; c < r->ncond; c++) {
            mcond *mc = &r->cond[c];
            mc->kind = (int)rnd(11);
            if (mc->kind > C_CID_PAT) mc->kind = C_USER; /* the common case, more often */
            mc->negated = rnd(4) == 0;
            if (mc->kind == C_USER_RE) {
                /* Negated, a capture never has a value (and naming it is a
                 * compile error); and a name is captured once per rule. */
                mc->arg = (int)rnd(4);
                if ((mc->arg == RE_U_CAP || mc->arg == RE_U_ANY) && (mc->negated || cap))
                    mc->arg = rnd(2) ? RE_U2 : RE_ONE;
                cap |= mc->arg == RE_U_CAP || mc->arg == RE_U_ANY;
            } else if (mc->kind == C_CID_RE) {
                mc->arg = RE_DEV + (int)rnd(5);
                if ((mc->arg == RE_SID || mc->arg == RE_SIDF) && (mc->negated || sid))
                    mc->arg = RE_DEV;
                sid |= mc->arg == RE_SID || mc->arg == RE_SIDF;
            }
        }
        for (int c = 0; c < r->ncond; c++) {
            mcond *mc = &r->cond[c];
            if (mc->kind == C_USER_PAT || mc->kind == C_CID_PAT) {
                int opts[4], n = 0;
                /* never its own field: that is a compile error */
                opts[n++] = mc->kind == C_USER_PAT ? PH_CLIENTID : PH_USERNAME;
                if (cap) opts[n++] = PH_CAP;
                if (sid) opts[n++] = PH_SID;
                mc->ph = opts[rnd((uint32_t)n)];
                mc->pre = (int)rnd(4);
                mc->suf = (int)rnd(2);
            }
        }
        for (int c = 0; c < r->ncond; c++) {
            mcond *mc = &r->cond[c];
            if (mc->negated) o += (size_t)snprintf(text + o, sizeof(text) - o, " not");
            switch (mc->kind) {
            case C_USER:
                mc->arg = (int)rnd(NUSERS);
                o += (size_t)snprintf(text + o, sizeof(text) - o, " username \"%s\"",
                                      users[mc->arg]);
                break;
            case C_CID:
                mc->arg = (int)rnd(NCIDS);
                o +=
                    (size_t)snprintf(text + o, sizeof(text) - o, " clientid \"%s\"", cids[mc->arg]);
                break;
            case C_GROUP:
                mc->arg = (int)rnd(3);
                o += (size_t)snprintf(text + o, sizeof(text) - o, " group \"g%d\"", mc->arg);
                break;
            case C_ANON:
                o += (size_t)snprintf(text + o, sizeof(text) - o, " anonymous");
                break;
            case C_PEER:
                mc->arg = (int)rnd(4);
                o += (size_t)snprintf(text + o, sizeof(text) - o, " peerhost %s", cidrs[mc->arg]);
                break;
            case C_USER_RE:
            case C_CID_RE:
                o += (size_t)snprintf(text + o, sizeof(text) - o, " %s ~ \"%s\"",
                                      mc->kind == C_USER_RE ? "username" : "clientid",
                                      regexes[mc->arg]);
                break;
            default: /* C_USER_PAT, C_CID_PAT */
                o += (size_t)snprintf(text + o, sizeof(text) - o, " %s \"%s${%s}%s\"",
                                      mc->kind == C_USER_PAT ? "username" : "clientid",
                                      ph_pre[mc->pre], ph_names[mc->ph], ph_suf[mc->suf]);
                break;
            }
        }
        if (r->acts != A_CONN && rnd(5)) {
            r->nspecs = 1 + (int)rnd(3);
            o += (size_t)snprintf(text + o, sizeof(text) - o, " topic");
            for (int s = 0; s < r->nspecs; s++) {
                int eq = rnd(6) == 0, ph = 0;
                r->eq[s] = eq;
                rand_filter(r->spec[s], !eq, !eq, cap, &ph);
                o += (size_t)snprintf(text + o, sizeof(text) - o, " %s\"%s\"", eq ? "eq " : "",
                                      r->spec[s]);
            }
        }
        r->qos_lo = r->qos_hi = r->retain = -1;
        if ((r->acts == A_PUB || r->acts == A_SUB || r->acts == (A_PUB | A_SUB)) && rnd(5) == 0) {
            r->qos_lo = (int)rnd(3);
            r->qos_hi = r->qos_lo + (int)rnd((uint32_t)(3 - r->qos_lo));
            if (r->qos_hi == r->qos_lo)
                o += (size_t)snprintf(text + o, sizeof(text) - o, " qos %d", r->qos_lo);
            else
                o += (size_t)snprintf(text + o, sizeof(text) - o, " qos %d-%d", r->qos_lo,
                                      r->qos_hi);
        }
        if (r->acts == A_PUB && rnd(6) == 0) {
            r->retain = (int)rnd(2);
            o += (size_t)snprintf(text + o, sizeof(text) - o, " retain %s",
                                  r->retain ? "true" : "false");
        }
        o += (size_t)snprintf(text + o, sizeof(text) - o, "\n");
    }
    static const char *const defs[] = {"", "default allow\n", "default deny\n", "default ignore\n"};
    o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", defs[rnd(4)]);
}

/* ---- the reference evaluator ---- */

typedef enum { F, T, U } tri;

/* The values a rule's regexes captured for one request; NULL: none. */
typedef struct caps {
    const char *cap, *sid;
    size_t cap_len, sid_len;
} caps;

static int no_newline(const char *s, size_t n)
{
    return !memchr(s, '\n', n); /* `.` is every character but LF */
}

/* The bytes of the UTF-8 character at s (names here are valid UTF-8). */
static size_t char_len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Characters in s[0, n). */
static size_t nchars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i += char_len(s + i))
        k++;
    return k;
}

static int lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* The generator's regexes, by hand: whole-string matches, and their
 * captures as PCRE2 would leave them. */
static tri ref_regex(int re, const char *s, size_t n, caps *k)
{
    size_t i = 0;
    switch (re) {
    case RE_U_CAP: /* [a-z0-9]+ cannot take the ':', so it ends at the first one */
        while (i < n && lower_or_digit(s[i]))
            i++;
        if (i == 0 || i == n || s[i] != ':' || !no_newline(s + i + 1, n - i - 1)) return F;
        k->cap = s;
        k->cap_len = i;
        return T;
    case RE_U_ANY: /* [^:]+ stops at the first ':', and a shorter run is no better */
        while (i < n && s[i] != ':')
            i++;
        if (i == 0 || i == n || !no_newline(s + i + 1, n - i - 1)) return F;
        k->cap = s;
        k->cap_len = i;
        return T;
    case RE_U2:
        return n >= 2 && s[0] == 'u' && nchars(s, n) == 2 && s[1] != '\n' ? T : F;
    case RE_ONE:
        return n && nchars(s, n) == 1 && s[0] != '\n' ? T : F;
    case RE_CNEG:
        if (nchars(s, n) != 2) return F;
        for (i = 0; i < n; i += char_len(s + i))
            if (s[i] >= 'a' && s[i] <= 'z') return F;
        return T;
    case RE_DEV:
        return n >= 4 && !memcmp(s, "dev-", 4) && no_newline(s + 4, n - 4) ? T : F;
    case RE_C9:
        return n == 2 && s[0] == 'c' && s[1] >= '0' && s[1] <= '9' ? T : F;
    case RE_SIDF: /* the group always takes part, maybe empty */
        if (n < 4 || memcmp(s, "dev-", 4) != 0) return F;
        for (i = 4; i < n; i++)
            if (s[i] < '0' || s[i] > '9') return F;
        k->sid = s + 4;
        k->sid_len = n - 4;
        return T;
    default: /* RE_SID */
        if (n >= 4 && !memcmp(s, "dev-", 4)) {
            for (i = 4; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                ;
            if (i == n) { /* the first branch: sid took part, maybe empty */
                k->sid = s + 4;
                k->sid_len = n - 4;
                return T;
            }
        }
        if (n >= 2 && s[0] == 'c' && nchars(s, n) == 2 && s[1] != '\n') { /* the second */
            k->sid = NULL;
            return T;
        }
        return F;
    }
}

/* An exact name with a placeholder, straight from the definition: the
 * placeholder needs a non-empty value, else the condition is unknown;
 * then the whole substituted string must equal the name. */
static tri ref_name(const mcond *c, const exh_request *r, const caps *k)
{
    const char *v;
    size_t n;
    switch (c->ph) {
    case PH_USERNAME:
        v = r->username;
        n = r->username_len;
        break;
    case PH_CLIENTID:
        v = r->clientid;
        n = r->clientid_len;
        break;
    case PH_CAP:
        v = k->cap;
        n = k->cap_len;
        break;
    default:
        v = k->sid;
        n = k->sid_len;
        break;
    }
    if (!v || !n) return U;
    char want[256];
    int wl = snprintf(want, sizeof(want), "%s%.*s%s", ph_pre[c->pre], (int)n, v, ph_suf[c->suf]);
    const char *subj = c->kind == C_USER_PAT ? r->username : r->clientid;
    size_t sl = c->kind == C_USER_PAT ? r->username_len : r->clientid_len;
    if (!subj) return F; /* anonymous: no username */
    return sl == (size_t)wl && !memcmp(subj, want, sl) ? T : F;
}

static tri ref_cond(const mcond *c, const exh_request *r, caps *k)
{
    tri t = F;
    switch (c->kind) {
    case C_USER:
        t = r->username && r->username_len == strlen(users[c->arg]) &&
            !memcmp(r->username, users[c->arg], r->username_len);
        break;
    case C_CID:
        t = r->clientid_len == strlen(cids[c->arg]) &&
            !memcmp(r->clientid, cids[c->arg], r->clientid_len);
        break;
    case C_GROUP:
        for (size_t i = 0; i < r->ngroups; i++)
            if (r->groups[i].len == 2 && r->groups[i].ptr[0] == 'g' &&
                r->groups[i].ptr[1] == '0' + c->arg)
                t = T;
        break;
    case C_ANON:
        t = r->username == NULL;
        break;
    case C_USER_RE:
        t = r->username ? ref_regex(c->arg, r->username, r->username_len, k) : F;
        break;
    case C_CID_RE:
        t = ref_regex(c->arg, r->clientid, r->clientid_len, k);
        break;
    case C_USER_PAT:
    case C_CID_PAT:
        t = ref_name(c, r, k);
        break;
    default:
        __builtin_trap(); /* C_PEER is ref_peer's */
    }
    if (c->negated && t != U) t = t == T ? F : T;
    return t;
}

/* Which peer (index into peers[]) a request came from: -1 unknown. */
static int req_peer;

static tri ref_peer(const mcond *c)
{
    tri t;
    if (req_peer < 0) return U;
    switch (c->arg) {
    case 0:
        t = req_peer == 0;
        break; /* 10.0.0.0/8 */
    case 1:
        t = req_peer == 1;
        break; /* 127.0.0.1 */
    case 2:
        t = req_peer == 2;
        break; /* ::1/128 */
    default:
        t = req_peer == 0 || req_peer == 1 || req_peer == 3;
        break; /* 0.0.0.0/0 */
    }
    if (c->negated) t = t == T ? F : T;
    return t;
}

/* Placeholder values must be literal text inside one level. */
static int safe(const char *v, size_t n)
{
    if (!v || !n) return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] == '/' || v[i] == '+' || v[i] == '#' || v[i] == '\0') return 0;
    return 1;
}

/* A rule filter with its placeholders replaced by their values (`%u`/`%c`
 * only as a whole level); 0 when a value is missing or unsafe, which makes
 * the filter match nothing. */
static int ref_subst(const char *f, const exh_request *r, const caps *k, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (const char *lv = f;;) {
        const char *end = strchr(lv, '/');
        size_t ll = end ? (size_t)(end - lv) : strlen(lv);
        for (size_t i = 0; i < ll;) {
            const char *v = NULL;
            size_t n = 0, skip = 0;
            int ph = 1;
            if (ll == 2 && lv[0] == '%' && (lv[1] == 'u' || lv[1] == 'c')) {
                v = lv[1] == 'u' ? r->username : r->clientid;
                n = lv[1] == 'u' ? r->username_len : r->clientid_len;
                skip = 2;
            } else if (!strncmp(lv + i, "${username}", 11)) {
                v = r->username, n = r->username_len, skip = 11;
            } else if (!strncmp(lv + i, "${clientid}", 11)) {
                v = r->clientid, n = r->clientid_len, skip = 11;
            } else if (!strncmp(lv + i, "${cap}", 6)) {
                v = k->cap, n = k->cap_len, skip = 6;
            } else {
                ph = 0;
                v = lv + i, n = 1, skip = 1;
            }
            if (ph && !safe(v, n)) return 0;
            if (o + n + 2 > cap) __builtin_trap();
            memcpy(out + o, v, n);
            o += n;
            i += skip;
        }
        if (!end) break;
        out[o++] = '/';
        lv = end + 1;
    }
    out[o] = '\0';
    return 1;
}

static exh_decision ref_eval(const exh_policy *p, const exh_request *r, exh_basis *basis,
                             uint32_t *rule)
{
    const char *topic = r->topic;
    size_t tlen = r->topic_len;
    unsigned bit = r->action == EXH_PUBLISH ? A_PUB : r->action == EXH_SUBSCRIBE ? A_SUB : A_CONN;
    *rule = 0;
    for (size_t b = 0; b < sizeof(bad_names) / sizeof(bad_names[0]); b++)
        if ((r->username && !strcmp(r->username, bad_names[b])) ||
            !strcmp(r->clientid, bad_names[b])) {
            *basis = EXH_BY_INVALID;
            return EXH_DENY;
        }
    if (bit != A_CONN) {
        exh_topic_status ts = EXH_TOPIC_OK;
        if (bit == A_SUB) {
            topic = exh_topic_strip_share(r->topic, r->topic_len, &tlen);
            if (!topic) ts = EXH_TOPIC_BAD_SHARE;
        }
        if (ts == EXH_TOPIC_OK && tlen == 0) ts = EXH_TOPIC_EMPTY;
        if (ts == EXH_TOPIC_OK)
            ts = bit == A_SUB ? exh_topic_check_filter(topic, tlen)
                              : exh_topic_check_name(topic, tlen);
        if (ts != EXH_TOPIC_OK) {
            *basis = EXH_BY_INVALID;
            return EXH_DENY;
        }
        if (r->superuser) {
            *basis = EXH_BY_SUPERUSER;
            return EXH_ALLOW;
        }
    }
    for (int i = 0; i < nrules; i++) {
        const mrule *m = &rules[i];
        if (!(m->acts & bit)) continue;
        int unknown = 0, no = 0;
        caps k = {0};
        /* Placeholders in names last: every capture known first, whatever
         * the written order (a conjunction: the order changes nothing else). */
        for (int pass = 0; pass < 2; pass++)
            for (int c = 0; c < m->ncond && !no; c++) {
                const mcond *mc = &m->cond[c];
                if ((mc->kind == C_USER_PAT || mc->kind == C_CID_PAT) != pass) continue;
                tri t = mc->kind == C_PEER ? ref_peer(mc) : ref_cond(mc, r, &k);
                if (t == F) no = 1;
                if (t == U) unknown = 1;
            }
        if (no) continue;
        if (bit != A_CONN) {
            if (m->nspecs) {
                int any = 0;
                for (int s = 0; s < m->nspecs && !any; s++) {
                    char sf[256];
                    const char *f = m->spec[s];
                    if (!m->eq[s]) {
                        if (!ref_subst(m->spec[s], r, &k, sf, sizeof(sf))) continue;
                        f = sf;
                    }
                    size_t fl = strlen(f);
                    if (m->eq[s])
                        any = fl == tlen && !memcmp(f, topic, tlen);
                    else if (bit == A_PUB)
                        any = exh_topic_match(f, fl, topic, tlen);
                    else if (m->allow)
                        any = exh_topic_subset(topic, tlen, f, fl);
                    else
                        any = exh_topic_overlap(topic, tlen, f, fl);
                }
                if (!any) continue;
            }
            if (m->qos_lo >= 0) {
                if (r->qos < 0)
                    unknown = 1;
                else if (r->qos < m->qos_lo || r->qos > m->qos_hi)
                    continue;
            }
            if (m->retain >= 0 && bit == A_PUB) {
                if (r->retain < 0)
                    unknown = 1;
                else if ((r->retain != 0) != (m->retain != 0))
                    continue;
            }
        }
        if (unknown && m->allow) continue;
        *rule = (uint32_t)i;
        *basis = EXH_BY_RULE;
        return m->allow ? EXH_ALLOW : EXH_DENY;
    }
    if (bit == A_CONN) {
        *basis = r->username ? EXH_BY_CREDENTIALS : EXH_BY_ANONYMOUS;
        return r->username ? EXH_ALLOW : EXH_DENY;
    }
    *basis = EXH_BY_DEFAULT;
    return exh_policy_default(p);
}

/* ---- the target ---- */

static exh_evalctx *ctx;
static exh_addr peer_addr[4];
static const exh_str group_sets[][2] = {{{0}}, {{"g0", 2}}, {{"g1", 2}, {"g2", 2}}, {{"g2", 2}}};
static const size_t group_counts[] = {0, 1, 2, 1};

static const char *const bad_topics[] = {"a/#/b",    "a+",        "#",          "",
                                         "$share/g", "$share//a", "a/\xc3\x28", "a\0b"};
static const size_t bad_lens[] = {5, 2, 1, 0, 8, 9, 4, 3};

static void disagree(const char *who, const exh_request *r, exh_decision d1, exh_basis b1,
                     uint32_t r1, exh_decision d2, exh_basis b2, uint32_t r2)
{
    fprintf(stderr,
            "fuzz_eval: index and %s disagree on %s user=%.*s cid=%.*s topic=%.*s qos=%d "
            "retain=%d superuser=%d ngroups=%zu peer=%d:\n  index: %s by %s (rule %u)\n  %s: %s "
            "by %s (rule %u)\npolicy:\n%s",
            who, exh_action_str(r->action), r->username ? (int)r->username_len : 6,
            r->username ? r->username : "(anon)", (int)r->clientid_len, r->clientid,
            (int)r->topic_len, r->topic ? r->topic : "", r->qos, r->retain, r->superuser,
            r->ngroups, req_peer, exh_decision_str(d1), exh_basis_str(b1), r1 + 1, who,
            exh_decision_str(d2), exh_basis_str(b2), r2 + 1, text);
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) {
        ctx = exh_evalctx_new();
        if (!ctx) __builtin_trap();
        for (int i = 0; i < 4; i++)
            if (!exh_addr_parse(peers[i], strlen(peers[i]), &peer_addr[i])) __builtin_trap();
    }
    if (size > 4096) return 0;
    in = data;
    in_left = size;
    rng = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < size; i++)
        rng = (rng ^ data[i]) * 0x100000001b3ULL;
    if (!rng) rng = 1;

    gen_policy();
    exh_policy *p = NULL;
    exh_error err;
    exh_error_clear(&err);
    if (exh_policy_parse("fuzz.policy", text, strlen(text), &p, &err) != EXH_OK) {
        /* The generator writes only valid policies. */
        char msg[1024];
        exh_error_format(&err, msg, sizeof(msg));
        fprintf(stderr, "fuzz_eval: generated policy does not compile: %s\n%s", msg, text);
        __builtin_trap();
    }
    if (exh_policy_rule_count(p) != (uint32_t)nrules) __builtin_trap();

    int nreq = 8 + (int)rnd(56);
    for (int q = 0; q < nreq; q++) {
        exh_request r;
        char topic[300];
        int ph = 0;
        exh_request_init(&r, (exh_action[]){EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT}[rnd(3)]);
        if (rnd(5)) {
            r.username = users[rnd(NUSERS)];
            r.username_len = strlen(r.username);
        }
        r.clientid = cids[rnd(NCIDS)];
        r.clientid_len = strlen(r.clientid);
        if (rnd(24) == 0) {
            const char *o = odd_names[rnd(sizeof(odd_names) / sizeof(odd_names[0]))];
            if (rnd(2)) {
                r.username = o;
                r.username_len = strlen(o);
            } else {
                r.clientid = o;
                r.clientid_len = strlen(o);
            }
        }
        if (rnd(24) == 0) { /* a name that is not UTF-8 */
            const char *b = bad_names[rnd(sizeof(bad_names) / sizeof(bad_names[0]))];
            if (rnd(2) && r.username) {
                r.username = b;
                r.username_len = strlen(b);
            } else {
                r.clientid = b;
                r.clientid_len = strlen(b);
            }
        }
        req_peer = (int)rnd(5) - 1;
        if (req_peer >= 0) r.peerhost = peer_addr[req_peer];
        int gs = (int)rnd(4);
        r.groups = group_sets[gs];
        r.ngroups = group_counts[gs];
        r.superuser = rnd(16) == 0;
        r.qos = (int)rnd(4) - 1;
        r.retain = (int)rnd(3) - 1;
        if (r.action != EXH_CONNECT) {
            if (rnd(16) == 0) {
                int b = (int)rnd(sizeof(bad_lens) / sizeof(bad_lens[0]));
                memcpy(topic, bad_topics[b], bad_lens[b]);
                r.topic_len = bad_lens[b];
            } else {
                rand_filter(topic, r.action == EXH_SUBSCRIBE, 0, 0, &ph);
                if (r.action == EXH_SUBSCRIBE && rnd(6) == 0) {
                    char t2[320];
                    snprintf(t2, sizeof(t2), "%s%s", rnd(2) ? "$share/g/" : "$queue/", topic);
                    strcpy(topic, t2);
                }
                r.topic_len = strlen(topic);
            }
            r.topic = topic;
        }

        exh_result a, b;
        exh_decision da = exh_eval(p, &r, ctx, &a);
        exh_decision db = exh_eval_linear(p, &r, ctx, &b);
        if (da != a.decision || db != b.decision) __builtin_trap();
        if (da != db || a.basis != b.basis || (a.basis == EXH_BY_RULE && a.rule != b.rule))
            disagree("linear scan", &r, da, a.basis, a.rule, db, b.basis, b.rule);
        {
            exh_basis rb;
            uint32_t rr;
            exh_decision dr = ref_eval(p, &r, &rb, &rr);
            if (dr != da || rb != a.basis || (rb == EXH_BY_RULE && rr != a.rule))
                disagree("reference", &r, da, a.basis, a.rule, dr, rb, rr);
        }
    }
    exh_policy_free(p);
    return 0;
}
