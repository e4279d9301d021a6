/*
 * utf8.h -- well-formed UTF-8, for policy strings and request names.
 * Internal.
 *
 * Regexes run in PCRE2's UTF mode, whose JIT is only defined on valid
 * UTF-8 subjects, so every name a regex can see is checked first: policy
 * strings when they are parsed, a request's username and client id before
 * any rule.  (topic.c checks topics with its own reasons, NUL among them;
 * here U+0000 is well-formed: NUL is refused elsewhere where it matters.)
 */
#ifndef EXH_UTF8_H
#define EXH_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * The offset of the first byte of the first ill-formed sequence in s, or n
 * when s[0, n) is well-formed (Unicode Table 3-7: no overlongs, surrogates
 * or code points past U+10FFFF).  Plain ASCII, what nearly every name is,
 * costs a few word loads.
 */
static inline size_t exh_utf8_bad(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    /* ASCII first, a few loads for a short name: this runs on every
     * request.  Words may overlap; only the high bits matter. */
    uint64_t hi = 0, w;
    uint32_t h;
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            hi |= w;
        }
        memcpy(&w, p + n - 8, 8);
        hi |= w;
    } else if (n >= 4) {
        memcpy(&h, p, 4);
        hi = h;
        memcpy(&h, p + n - 4, 4);
        hi |= h;
    } else {
        for (size_t i = 0; i < n; i++)
            hi |= p[i];
    }
    if (!(hi & 0x8080808080808080u)) return n;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;                           /* continuation bytes */
        unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i; /* stray continuation, C0, C1, F5..FF */
        }
        if (n - i - 1 < k || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t j = 2; j <= k; j++)
            if (p[i + j] < 0x80 || p[i + j] > 0xBF) return i;
        i += k + 1;
    }
    return n;
}

/* Characters in a well-formed s[0, n): its bytes that do not continue one. */
static inline size_t exh_utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

#endif
