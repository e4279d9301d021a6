/*
 * fuzz_hash.c -- libFuzzer target for the stored-hash parser and verifier.
 *
 * The input is "HASH\0PASSWORD" (no NUL: the whole input is the hash and
 * the password is empty).  For any hash string, exh_hash_identify and
 * exh_hash_needs_upgrade must not crash, and identify and verify must
 * agree: a string identify rejects is exactly one verify calls BAD_HASH,
 * and one it accepts verifies to OK or MISMATCH ("identified" means
 * "verifiable", hash.c).
 *
 * Verify is run only where it is cheap, so -timeout never fires: always
 * for strings identify rejects (they must fail fast) and for the salted
 * digests ($6$, $emqx-...); for argon2id, bcrypt and PBKDF2 only when
 * every cost number the string carries is small (the parser's own caps
 * allow seconds per verify, far too slow for fuzzing).
 *
 * Build and run: tests/fuzz/run.sh SECONDS
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_hash: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);   \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* The '$'-separated field k (0 = before the first '$') of s. */
static const char *field(const char *s, int k, size_t *len)
{
    const char *p = s;
    for (int i = 0; i < k; i++) {
        p = strchr(p, '$');
        if (!p) return NULL;
        p++;
    }
    const char *e = strchr(p, '$');
    *len = e ? (size_t)(e - p) : strlen(p);
    return p;
}

/* Is every run of digits in s[0..len) at most max?  (Leading zeros, signs
 * or spaces in front make no difference: each run is read in full.) */
static bool numbers_at_most(const char *s, size_t len, unsigned long max)
{
    for (size_t i = 0; i < len;) {
        if (s[i] < '0' || s[i] > '9') {
            i++;
            continue;
        }
        unsigned long v = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if ((v = v * 10 + (unsigned long)(s[i] - '0')) > max) return false;
    }
    return true;
}

/* Would verifying this (identified) hash be quick? */
static bool cheap(const char *h, exh_hash_alg alg)
{
    const char *f;
    size_t n;
    switch (alg) {
    case EXH_HASH_MOSQ_SHA512:
    case EXH_HASH_EMQX_SHA256:
    case EXH_HASH_EMQX_SHA512:
        return true;
    case EXH_HASH_ARGON2ID: /* $argon2id$v=19$m=..,t=..,p=..$ (v= may be absent) */
        for (int k = 2; k <= 3; k++)
            if ((f = field(h, k, &n)) && memchr(f, '=', n) && !numbers_at_most(f, n, 64))
                return false;
        return true;
    case EXH_HASH_BCRYPT: /* $2b$NN$ */
        return (f = field(h, 2, &n)) && numbers_at_most(f, n, 5);
    case EXH_HASH_PBKDF2_SHA512: /* $pbkdf2-sha512$i=N$ */
    case EXH_HASH_PBKDF2_SHA256:
    case EXH_HASH_MOSQ_PBKDF2: /* $7$N$ */
        return (f = field(h, 2, &n)) && numbers_at_most(f, n, 2000);
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 600) return 0;
    /* NUL-terminated copies (exact size, so ASan sees any overread). */
    const uint8_t *nul = memchr(data, '\0', size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    size_t pwlen = nul ? size - hlen - 1 : 0;
    char *hash = malloc(hlen + 1);
    char *pw = malloc(pwlen ? pwlen : 1);
    CHECK(hash && pw);
    memcpy(hash, data, hlen);
    hash[hlen] = '\0';
    if (pwlen) memcpy(pw, nul + 1, pwlen);

    exh_hash_alg alg = exh_hash_identify(hash);
    CHECK(exh_hash_alg_name(alg) != NULL);
    CHECK(exh_hash_identify(hash) == alg); /* no hidden state */

    exh_hash_params def, tiny = {8, 1, 1}, huge = {UINT32_MAX, UINT32_MAX, UINT32_MAX};
    exh_hash_params_default(&def);
    bool up_def = exh_hash_needs_upgrade(hash, &def);
    bool up_tiny = exh_hash_needs_upgrade(hash, &tiny);
    bool up_huge = exh_hash_needs_upgrade(hash, &huge);
    if (alg != EXH_HASH_ARGON2ID) {
        /* Anything but argon2id (including garbage) is rehashed on login. */
        CHECK(up_def && up_tiny && up_huge);
    } else {
        /* Asking for more never asks for less. */
        CHECK(up_huge || !up_def);
        CHECK(up_def || !up_tiny);
    }

    if (alg == EXH_HASH_UNKNOWN) {
        CHECK(exh_hash_verify(hash, pw, pwlen) == EXH_VERIFY_BAD_HASH);
    } else if (cheap(hash, alg)) {
        exh_verify v = exh_hash_verify(hash, pw, pwlen);
        if (v != EXH_VERIFY_OK && v != EXH_VERIFY_MISMATCH) {
            fprintf(stderr, "fuzz_hash: identify says %s but verify says %d for \"%s\"\n",
                    exh_hash_alg_name(alg), (int)v, hash);
            __builtin_trap();
        }
    }
    free(hash);
    free(pw);
    return 0;
}
