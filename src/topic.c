/*
 * topic.c -- MQTT topic names and filters: validation, matching, subsets.
 *
 * Everything works on (pointer, length) pairs, never allocates and never
 * relies on NUL termination: topics come straight off the wire and may
 * hold any byte.  These are the reference semantics the compiled matcher
 * is tested against, so they favour being obviously right over speed.
 */
#include "exhook/topic.h"

#include <string.h>

const char *exh_topic_status_str(exh_topic_status st)
{
    switch (st) {
    case EXH_TOPIC_OK:
        return "ok";
    case EXH_TOPIC_EMPTY:
        return "topic is empty";
    case EXH_TOPIC_TOO_LONG:
        return "topic is longer than 65535 bytes";
    case EXH_TOPIC_NUL:
        return "topic holds a NUL byte";
    case EXH_TOPIC_BAD_UTF8:
        return "topic is not well-formed UTF-8";
    case EXH_TOPIC_WILDCARD_NAME:
        return "topic name holds a wildcard ('+' or '#')";
    case EXH_TOPIC_BAD_WILDCARD:
        return "wildcard not alone in its level, or '#' not in the last level";
    case EXH_TOPIC_BAD_SHARE:
        return "shared subscription needs $share/<group>/<filter>";
    }
    return "unknown topic status";
}

/*
 * Well-formed UTF-8 per Unicode Table 3-7.  The second byte's range
 * depends on the lead byte; that is what rules out overlongs (C0, C1,
 * E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above
 * U+10FFFF (F4 90.., F5..FF).  MQTT additionally forbids U+0000, which is
 * reported separately because "holds a NUL byte" is the more useful reason.
 */
static exh_topic_status check_encoding(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c == 0) return EXH_TOPIC_NUL;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;                           /* continuation bytes */
        unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return EXH_TOPIC_BAD_UTF8; /* stray continuation, C0, C1, F5..FF */
        }
        if (len - i - 1 < n) return EXH_TOPIC_BAD_UTF8; /* truncated */
        if (p[i + 1] < lo || p[i + 1] > hi) return EXH_TOPIC_BAD_UTF8;
        for (size_t k = 2; k <= n; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) return EXH_TOPIC_BAD_UTF8;
        i += n + 1;
    }
    return EXH_TOPIC_OK;
}

/* The checks shared by names and filters.  Length first, so a huge input
 * is refused without being scanned. */
static exh_topic_status check_common(const char *t, size_t len)
{
    if (len == 0) return EXH_TOPIC_EMPTY;
    if (len > EXH_TOPIC_MAX) return EXH_TOPIC_TOO_LONG;
    if (!t) return EXH_TOPIC_EMPTY;
    return check_encoding((const unsigned char *)t, len);
}

exh_topic_status exh_topic_check_name(const char *t, size_t len)
{
    exh_topic_status st = check_common(t, len);
    if (st != EXH_TOPIC_OK) return st;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '+' || t[i] == '#') return EXH_TOPIC_WILDCARD_NAME;
    return EXH_TOPIC_OK;
}

/* Wildcards are ASCII and never part of a multi-byte sequence, so a
 * byte-wise scan of each level is exact once the encoding is known good. */
exh_topic_status exh_topic_check_filter(const char *t, size_t len)
{
    exh_topic_status st = check_common(t, len);
    if (st != EXH_TOPIC_OK) return st;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && t[i] != '/') continue;
        /* level is t[start, i) */
        for (size_t k = start; k < i; k++) {
            if (t[k] != '+' && t[k] != '#') continue;
            if (i - start != 1) return EXH_TOPIC_BAD_WILDCARD;
            if (t[k] == '#' && i != len) return EXH_TOPIC_BAD_WILDCARD;
        }
        start = i + 1;
    }
    return EXH_TOPIC_OK;
}

static bool has_prefix(const char *t, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(t, prefix, n) == 0;
}

/*
 * The share group is not part of the filter the caller goes on to check,
 * so it is validated here: besides the required non-empty and
 * wildcard-free, it must be well-formed UTF-8 without NUL, or a bad byte
 * could slip through to the broker inside an otherwise valid subscription.
 */
const char *exh_topic_strip_share(const char *t, size_t len, size_t *out_len)
{
    return exh_topic_strip_prefix(t, len, true, out_len);
}

const char *exh_topic_strip_prefix(const char *t, size_t len, bool queue_prefix, size_t *out_len)
{
    size_t dummy;
    if (!out_len) out_len = &dummy;
    *out_len = len;
    if (!t) return t;
    if (has_prefix(t, len, "$share/")) {
        const char *group = t + 7;
        size_t rest = len - 7;
        const char *slash = memchr(group, '/', rest);
        if (!slash || slash == group) goto invalid; /* "$share/g" or "$share//f" */
        size_t glen = (size_t)(slash - group);
        if (memchr(group, '+', glen) || memchr(group, '#', glen)) goto invalid;
        if (check_encoding((const unsigned char *)group, glen) != EXH_TOPIC_OK) goto invalid;
        const char *filter = slash + 1;
        size_t flen = rest - glen - 1;
        if (flen == 0) goto invalid;
        *out_len = flen;
        return filter;
    }
    if (queue_prefix && has_prefix(t, len, "$queue/")) {
        if (len == 7) goto invalid;
        *out_len = len - 7;
        return t + 7;
    }
    return t;
invalid:
    *out_len = 0;
    return NULL;
}

/* Walks a topic level by level.  "a/" has the levels "a" and "", and the
 * empty string has a single empty level, as in MQTT. */
typedef struct level_iter {
    const char *s;
    size_t len;
    size_t pos;
    bool done;
} level_iter;

static level_iter levels(const char *s, size_t len)
{
    level_iter it = {s, len, 0, false};
    return it;
}

static bool next_level(level_iter *it, const char **lv, size_t *lvlen)
{
    if (it->done) return false;
    const char *start = it->s + it->pos;
    size_t rest = it->len - it->pos;
    const char *slash = rest ? memchr(start, '/', rest) : NULL;
    *lv = start;
    if (slash) {
        *lvlen = (size_t)(slash - start);
        it->pos += *lvlen + 1;
    } else {
        *lvlen = rest;
        it->done = true;
    }
    return true;
}

static bool is_level(const char *lv, size_t n, char c)
{
    return n == 1 && lv[0] == c;
}

/* Does the first level of filter f consist of a lone wildcard?  Such a
 * filter must not reach $-topics (MQTT 3.1.1 §4.7.2). */
static bool starts_with_wildcard(const char *f, size_t flen)
{
    return flen >= 1 && (f[0] == '+' || f[0] == '#') && (flen == 1 || f[1] == '/');
}

bool exh_topic_match(const char *filter, size_t flen, const char *name, size_t nlen)
{
    if (!filter || !name) return false;
    if (nlen > 0 && name[0] == '$' && starts_with_wildcard(filter, flen)) return false;
    level_iter fi = levels(filter, flen), ni = levels(name, nlen);
    for (;;) {
        const char *fl, *nl;
        size_t fn, nn;
        bool have_f = next_level(&fi, &fl, &fn);
        bool have_n = next_level(&ni, &nl, &nn);
        if (!have_f) return !have_n;
        if (is_level(fl, fn, '#')) return true; /* the rest, or nothing: "a/#" matches "a" */
        if (!have_n) return false;
        if (is_level(fl, fn, '+')) continue; /* any one level, even an empty one */
        if (fn != nn || memcmp(fl, nl, fn) != 0) return false;
    }
}

/*
 * Level-wise containment.  This is sound (true only when every name s
 * matches is matched by f) but, in one corner, not complete: "#" and "+/#"
 * match the same names, since no name has zero levels, yet "#" is not
 * reported as a subset of "+/#".  Denying that subscription is the safe
 * way to be wrong, and it keeps the rules simple enough for the compiled
 * matcher to mirror.
 */
bool exh_topic_subset(const char *s, size_t slen, const char *f, size_t flen)
{
    if (!s || !f) return false;
    /* s's names start with '$' only if its first level is a literal
     * starting with '$'; a leading wildcard in f never reaches them. */
    if (slen > 0 && s[0] == '$' && starts_with_wildcard(f, flen)) return false;
    level_iter si = levels(s, slen), fi = levels(f, flen);
    for (size_t depth = 0;; depth++) {
        const char *sl = NULL, *fl = NULL;
        size_t sn = 0, fn = 0;
        bool have_s = next_level(&si, &sl, &sn);
        bool have_f = next_level(&fi, &fl, &fn);
        if (!have_f) return !have_s;
        if (is_level(fl, fn, '#')) return true; /* covers whatever s has left, '#' included */
        if (!have_s) return false;
        if (is_level(sl, sn, '#')) {
            /* s goes on to any depth, f must too.  A '#' below a level
             * also matches that level itself ("a/#" matches "a"), which
             * "a/+/#" does not; but a lone "#" has no parent level, so it
             * matches exactly what "+/#" matches. */
            const char *nl = NULL;
            size_t nn = 0;
            return depth == 0 && is_level(fl, fn, '+') && next_level(&fi, &nl, &nn) &&
                   is_level(nl, nn, '#');
        }
        if (is_level(fl, fn, '+')) continue;     /* covers a literal or '+' */
        if (is_level(sl, sn, '+')) return false; /* a literal covers only itself */
        if (sn != fn || memcmp(sl, fl, sn) != 0) return false;
    }
}

bool exh_topic_overlap(const char *s, size_t slen, const char *f, size_t flen)
{
    if (!s || !f) return false;
    /* A leading wildcard on one side never reaches a '$' name the other
     * side's literal first level demands. */
    if ((slen > 0 && s[0] == '$' && starts_with_wildcard(f, flen)) ||
        (flen > 0 && f[0] == '$' && starts_with_wildcard(s, slen)))
        return false;
    level_iter si = levels(s, slen), fi = levels(f, flen);
    for (;;) {
        const char *sl = NULL, *fl = NULL;
        size_t sn = 0, fn = 0;
        bool have_s = next_level(&si, &sl, &sn);
        bool have_f = next_level(&fi, &fl, &fn);
        if (!have_s && !have_f) return true;
        /* '#' also matches its parent level, so it overlaps an ended side. */
        if (have_s && is_level(sl, sn, '#')) return true;
        if (have_f && is_level(fl, fn, '#')) return true;
        if (!have_s || !have_f) return false;
        if (is_level(sl, sn, '+') || is_level(fl, fn, '+')) continue;
        if (sn != fn || memcmp(sl, fl, sn) != 0) return false;
    }
}
