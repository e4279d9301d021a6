/*
 * hash.c -- password hashes as self-describing strings.
 *
 * New passwords get argon2id (libargon2).  Imported formats are verified
 * with OpenSSL (PBKDF2, SHA-2) and libxcrypt (bcrypt).
 *
 * A stored string is hostile input: it may come from an import file nobody
 * read.  So it is bounded (EXH_HASH_MAX), split and decoded strictly here
 * before any library sees it -- every field canonical, no trailing bytes --
 * and its cost parameters are capped, so a planted hash can neither crash
 * us nor pin a CPU for minutes nor allocate gigabytes.  exh_hash_identify
 * runs the same parser, so "identified" means "verifiable".
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "exhook/hash.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#include "error_int.h"

/* New argon2id hashes: 16-byte salt, 32-byte tag (RFC 9106 §4). */
#define NEW_SALT_BYTES 16
#define NEW_TAG_BYTES  32

/* Caps on stored costs.  Each sits well above any deployment we know of
 * and keeps a worst-case verify to seconds on current hardware. */
#define MAX_PBKDF2_ITER  10000000u           /* PBKDF2 and Mosquitto $7$ */
#define MIN_BCRYPT_COST  4                   /* libxcrypt's floor */
#define MAX_BCRYPT_COST  18                  /* libxcrypt allows 31: 2^31 rounds is days */
#define MAX_ARGON2_LANES 64u                 /* libargon2 runs one thread per lane */
#define MAX_ARGON2_M_KIB (UINT32_C(2) << 20) /* 2 GiB, RFC 9106's first choice */
#define MAX_ARGON2_WORK  (UINT64_C(8) << 20) /* m_kib * t_cost: 8 GiB of passes */

/* PBKDF2 tags: at least 128 bits (PBKDF2 output is prefix-stable, so a
 * short tag is a weak one), at most 64 bytes: each extra digest-sized
 * block costs all the iterations again. */
#define MIN_PBKDF2_TAG 16
#define MAX_TAG        64 /* also Mosquitto's and EMQX's largest */

/* Up to this many '$'-separated fields in any format. */
#define MAX_FIELDS 6

/* A slice of the stored string. */
typedef struct {
    const char *p;
    size_t n;
} field;

/* A stored hash, decoded.  Only what verify needs. */
typedef struct {
    exh_hash_alg alg;
    uint32_t iter;                 /* PBKDF2 / $7$ iterations */
    uint32_t m_kib, t_cost, lanes; /* argon2id */
    bool salt_prefix;              /* EMQX: salt || password */
    size_t saltlen, hashlen;
    unsigned char salt[EXH_HASH_MAX];
    unsigned char hash[MAX_TAG];
} parsed;

/* ---- strict decoding ---------------------------------------------------- */

static bool field_is(field f, const char *lit)
{
    size_t n = strlen(lit);
    return f.n == n && memcmp(f.p, lit, n) == 0;
}

/*
 * Split s[0..len), which must start with '$', at every '$'.  Returns the
 * number of fields, or 0 when there are more than max: a format with a
 * field too many is malformed, not truncated.
 */
static size_t split(const char *s, size_t len, field *f, size_t max)
{
    if (len == 0 || s[0] != '$') return 0;
    size_t k = 0, start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && s[i] != '$') continue;
        if (k == max) return 0;
        f[k].p = s + start;
        f[k].n = i - start;
        k++;
        start = i + 1;
    }
    return k;
}

/* A canonical decimal: digits only, no sign, no leading zero; must fit. */
static bool parse_u32(field f, uint32_t *out)
{
    if (f.n == 0 || f.n > 10 || (f.p[0] == '0' && f.n > 1)) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (f.p[i] < '0' || f.p[i] > '9') return false;
        v = v * 10 + (uint64_t)(f.p[i] - '0');
    }
    if (v > UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

/* Consume "<key><decimal>" from the front of *f, up to the next ',' or the end. */
static bool take_param(field *f, const char *key, uint32_t *out)
{
    size_t klen = strlen(key);
    if (f->n < klen || memcmp(f->p, key, klen) != 0) return false;
    const char *comma = memchr(f->p + klen, ',', f->n - klen);
    size_t end = comma ? (size_t)(comma - f->p) : f->n;
    field num = {f->p + klen, end - klen};
    if (!parse_u32(num, out)) return false;
    f->p += end;
    f->n -= end;
    if (f->n > 0) { /* skip the comma */
        f->p++;
        f->n--;
    }
    return true;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

typedef enum { PAD_NONE, PAD_OPTIONAL, PAD_REQUIRED } b64_pad;

/*
 * Standard base64 (RFC 4648 §4).  Accepts only the canonical encoding of
 * some byte string: no whitespace, '=' only as the right amount of final
 * padding, no lone last character, unused low bits zero.  So one stored
 * string has one meaning, and the count of bytes is exact (unlike
 * EVP_DecodeBlock, which counts padding as zero bytes).
 */
static bool b64_decode(field f, b64_pad pad, unsigned char *out, size_t outsize, size_t *outlen)
{
    size_t n = f.n, npad = 0;
    while (npad < 2 && n > 0 && f.p[n - 1] == '=') {
        n--;
        npad++;
    }
    if (n % 4 == 1) return false;
    if (npad > 0) {
        if (pad == PAD_NONE || f.n % 4 != 0 || 4 - n % 4 != npad) return false;
    } else if (pad == PAD_REQUIRED && n % 4 != 0) {
        return false;
    }
    size_t len = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (len > outsize) return false;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)f.p[i]);
        if (v < 0) return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return false;
    *outlen = o;
    return true;
}

/* Standard base64 without padding; out needs 4 * ceil(n / 3) + 1 bytes. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out[o++] = alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Exactly 2 * n hex digits of either case (EMQX compares case-insensitively). */
static bool hex_decode(field f, unsigned char *out, size_t n)
{
    if (f.n != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value((unsigned char)f.p[2 * i]);
        int lo = hex_value((unsigned char)f.p[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* ---- parsing the formats ------------------------------------------------ */

/*
 * argon2id costs we are willing to compute: libargon2's own limits (at
 * least 8 KiB per lane, t >= 1) and our caps.  One check for new hashes and
 * stored ones, so we never create a hash we would refuse to verify.
 */
static bool argon2_costs_ok(uint32_t m_kib, uint32_t t_cost, uint32_t lanes, exh_error *err)
{
    uint32_t max_m = MAX_ARGON2_M_KIB < ARGON2_MAX_MEMORY ? MAX_ARGON2_M_KIB : ARGON2_MAX_MEMORY;
    if (lanes < ARGON2_MIN_LANES || lanes > MAX_ARGON2_LANES) {
        exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                      "argon2id lanes (parallelism) must be 1..%u, not %u", MAX_ARGON2_LANES,
                      lanes);
        return false;
    }
    if (t_cost < ARGON2_MIN_TIME) {
        exh_error_set(err, EXH_EINVAL, NULL, 0, 0, "argon2id passes (t_cost) must be at least 1");
        return false;
    }
    if (m_kib < 2 * ARGON2_SYNC_POINTS * lanes) {
        exh_error_set(
            err, EXH_EINVAL, NULL, 0, 0,
            "argon2id memory must be at least 8 KiB per lane (%u KiB for %u lanes), not %u KiB",
            2 * ARGON2_SYNC_POINTS * lanes, lanes, m_kib);
        return false;
    }
    if (m_kib > max_m) {
        exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                      "argon2id memory must be at most %u KiB, not %u KiB", max_m, m_kib);
        return false;
    }
    if ((uint64_t)m_kib * t_cost > MAX_ARGON2_WORK) {
        exh_error_set(
            err, EXH_EINVAL, NULL, 0, 0,
            "argon2id memory x passes must be at most %llu KiB (%u KiB x %u passes is too slow "
            "to verify)",
            (unsigned long long)MAX_ARGON2_WORK, m_kib, t_cost);
        return false;
    }
    return true;
}

/* $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<tag>, libargon2's encoding:
 * unpadded base64, salt >= 8 bytes, tag >= 4 bytes. */
static bool parse_argon2id(const field *f, size_t nf, parsed *ph)
{
    if (nf != 5 || !field_is(f[1], "v=19")) return false;
    field prm = f[2];
    if (!take_param(&prm, "m=", &ph->m_kib) || !take_param(&prm, "t=", &ph->t_cost) ||
        !take_param(&prm, "p=", &ph->lanes) || prm.n != 0 || prm.p[-1] == ',')
        return false;
    if (!argon2_costs_ok(ph->m_kib, ph->t_cost, ph->lanes, NULL)) return false;
    unsigned char scratch[EXH_HASH_MAX];
    size_t n;
    if (!b64_decode(f[3], PAD_NONE, ph->salt, sizeof(ph->salt), &ph->saltlen) ||
        ph->saltlen < ARGON2_MIN_SALT_LENGTH)
        return false;
    /* At least 16 bytes, as for PBKDF2: a 4-byte tag (libargon2's minimum)
     * would match one random password in 2^32. */
    if (!b64_decode(f[4], PAD_NONE, scratch, sizeof(scratch), &n) || n < 16) return false;
    /* A tag longer than MAX_TAG (none seen in practice) is left to
     * argon2id_verify (hashlen 0). */
    ph->hashlen = n <= MAX_TAG ? n : 0;
    if (ph->hashlen) memcpy(ph->hash, scratch, n);
    return true;
}

/* $pbkdf2-sha512$i=<iterations>$<salt>$<tag>.  Also takes the ",l=<taglen>"
 * that RustCrypto's pbkdf2 writes, if it agrees with the tag. */
static bool parse_pbkdf2(const field *f, size_t nf, parsed *ph)
{
    if (nf != 4) return false;
    field prm = f[1];
    uint32_t taglen = 0;
    if (!take_param(&prm, "i=", &ph->iter)) return false;
    if (prm.n > 0 && !take_param(&prm, "l=", &taglen)) return false;
    if (prm.n != 0 || prm.p[-1] == ',') return false;
    if (ph->iter < 1 || ph->iter > MAX_PBKDF2_ITER) return false;
    if (!b64_decode(f[2], PAD_OPTIONAL, ph->salt, sizeof(ph->salt), &ph->saltlen) ||
        ph->saltlen == 0)
        return false;
    if (!b64_decode(f[3], PAD_OPTIONAL, ph->hash, sizeof(ph->hash), &ph->hashlen) ||
        ph->hashlen < MIN_PBKDF2_TAG)
        return false;
    return taglen == 0 || taglen == ph->hashlen;
}

/* bcrypt's own base64 alphabet: "./A-Za-z0-9". */
static int bcrypt_value(char c)
{
    if (c == '.') return 0;
    if (c == '/') return 1;
    if (c >= 'A' && c <= 'Z') return c - 'A' + 2;
    if (c >= 'a' && c <= 'z') return c - 'a' + 28;
    if (c >= '0' && c <= '9') return c - '0' + 54;
    return -1;
}

/*
 * $2b$<cost>$<22 salt><31 tag>, also $2a$ and $2y$.  The 22 salt
 * characters carry 132 bits for 128 and the 31 tag characters 186 for 184,
 * so the unused low bits of the last character of each must be zero:
 * libxcrypt would silently normalise the salt, and a stored string that is
 * not what crypt() writes could never match.
 */
static bool parse_bcrypt(const field *f, size_t nf, parsed *ph)
{
    if (nf != 3 || f[1].n != 2 || f[2].n != 53) return false;
    if (f[1].p[0] < '0' || f[1].p[0] > '9' || f[1].p[1] < '0' || f[1].p[1] > '9') return false;
    ph->iter = (uint32_t)(f[1].p[0] - '0') * 10 + (uint32_t)(f[1].p[1] - '0');
    if (ph->iter < MIN_BCRYPT_COST || ph->iter > MAX_BCRYPT_COST) return false;
    for (size_t i = 0; i < 53; i++)
        if (bcrypt_value(f[2].p[i]) < 0) return false;
    return bcrypt_value(f[2].p[21]) % 16 == 0 && bcrypt_value(f[2].p[52]) % 4 == 0;
}

/* Mosquitto $7$<iterations>$<salt>$<tag> and $6$<salt>$<tag>: OpenSSL's
 * padded base64, a 64-byte SHA-512 tag.  mosquitto_passwd writes 12-byte
 * salts; any non-empty salt is taken.  Requiring the padding also keeps
 * glibc's sha512crypt ("$6$salt$<86 chars>") out. */
static bool parse_mosquitto(const field *f, size_t nf, parsed *ph)
{
    size_t i = 1;
    if (ph->alg == EXH_HASH_MOSQ_PBKDF2) {
        if (nf != 4 || !parse_u32(f[1], &ph->iter) || ph->iter < 1 || ph->iter > MAX_PBKDF2_ITER)
            return false;
        i = 2;
    } else if (nf != 3) {
        return false;
    }
    if (!b64_decode(f[i], PAD_REQUIRED, ph->salt, sizeof(ph->salt), &ph->saltlen) ||
        ph->saltlen == 0)
        return false;
    return b64_decode(f[i + 1], PAD_REQUIRED, ph->hash, sizeof(ph->hash), &ph->hashlen) &&
           ph->hashlen == 64;
}

/* $emqx-sha256$<prefix|suffix>$<salt>$<hex tag> */
static bool parse_emqx(const field *f, size_t nf, parsed *ph)
{
    if (nf != 4) return false;
    if (field_is(f[1], "prefix"))
        ph->salt_prefix = true;
    else if (!field_is(f[1], "suffix"))
        return false;
    /* An empty salt is EMQX's salt_position = disable: a plain digest. */
    if (!b64_decode(f[2], PAD_OPTIONAL, ph->salt, sizeof(ph->salt), &ph->saltlen)) return false;
    ph->hashlen = ph->alg == EXH_HASH_EMQX_SHA256 ? 32 : 64;
    return hex_decode(f[3], ph->hash, ph->hashlen);
}

/*
 * Identify and decode a stored string.  Anything not exactly one of the
 * formats -- including a string of EXH_HASH_MAX bytes or more, which no
 * format produces -- is EXH_HASH_UNKNOWN.  Never reads past the NUL or
 * past EXH_HASH_MAX bytes.
 */
static exh_hash_alg parse(const char *hash, parsed *ph)
{
    memset(ph, 0, sizeof(*ph));
    if (!hash) return EXH_HASH_UNKNOWN;
    size_t len = strnlen(hash, EXH_HASH_MAX);
    if (len == EXH_HASH_MAX) return EXH_HASH_UNKNOWN;
    field f[MAX_FIELDS];
    size_t nf = split(hash, len, f, MAX_FIELDS);
    if (nf == 0) return EXH_HASH_UNKNOWN;

    bool ok = false;
    if (field_is(f[0], "argon2id")) {
        ph->alg = EXH_HASH_ARGON2ID;
        ok = parse_argon2id(f, nf, ph);
    } else if (field_is(f[0], "pbkdf2-sha512") || field_is(f[0], "pbkdf2-sha256")) {
        ph->alg = field_is(f[0], "pbkdf2-sha512") ? EXH_HASH_PBKDF2_SHA512 : EXH_HASH_PBKDF2_SHA256;
        ok = parse_pbkdf2(f, nf, ph);
    } else if (field_is(f[0], "2a") || field_is(f[0], "2b") || field_is(f[0], "2y")) {
        ph->alg = EXH_HASH_BCRYPT;
        ok = parse_bcrypt(f, nf, ph);
    } else if (field_is(f[0], "7") || field_is(f[0], "6")) {
        ph->alg = field_is(f[0], "7") ? EXH_HASH_MOSQ_PBKDF2 : EXH_HASH_MOSQ_SHA512;
        ok = parse_mosquitto(f, nf, ph);
    } else if (field_is(f[0], "emqx-sha256") || field_is(f[0], "emqx-sha512")) {
        ph->alg = field_is(f[0], "emqx-sha256") ? EXH_HASH_EMQX_SHA256 : EXH_HASH_EMQX_SHA512;
        ok = parse_emqx(f, nf, ph);
    }
    if (!ok) ph->alg = EXH_HASH_UNKNOWN;
    return ph->alg;
}

/* ---- verifying ---------------------------------------------------------- */

/* Constant-time compare of a derived tag with the stored one, then wipe it. */
static exh_verify compare_tag(unsigned char *derived, const parsed *ph)
{
    int diff = CRYPTO_memcmp(derived, ph->hash, ph->hashlen);
    OPENSSL_cleanse(derived, MAX_TAG);
    return diff == 0 ? EXH_VERIFY_OK : EXH_VERIFY_MISMATCH;
}

/*
 * argon2id's memory (19 MiB at the default cost) is kept by each thread
 * between checks, until exh_hash_thread_release.  Allocated fresh for every
 * check -- mmap'd, since it is far above malloc's threshold -- each of its
 * ~4,900 pages faults in and is zeroed by the kernel: measured here, 85 ms
 * a login instead of 29 ms, a third of it in the kernel.  libargon2 wipes
 * the block before it hands it back (clear_internal_memory), so nothing of
 * one password stays for the next check.
 */
static _Thread_local uint8_t *a2_mem;
static _Thread_local size_t a2_len;

void exh_hash_thread_release(void)
{
    if (a2_mem) munmap(a2_mem, a2_len);
    a2_mem = NULL;
    a2_len = 0;
}

static int a2_alloc(uint8_t **memory, size_t bytes)
{
    if (!a2_mem || a2_len < bytes) {
        exh_hash_thread_release();
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return ARGON2_MEMORY_ALLOCATION_ERROR;
        a2_mem = m;
        a2_len = bytes;
    }
    *memory = a2_mem;
    return ARGON2_OK;
}

static void a2_free(uint8_t *memory, size_t bytes)
{
    (void)memory; /* kept for this thread's next check (wiped by libargon2) */
    (void)bytes;
}

static exh_verify argon2_status(int rc)
{
    switch (rc) {
    case ARGON2_OK:
        return EXH_VERIFY_OK;
    case ARGON2_VERIFY_MISMATCH:
        return EXH_VERIFY_MISMATCH;
    case ARGON2_MEMORY_ALLOCATION_ERROR:
    case ARGON2_THREAD_FAIL:
        return EXH_VERIFY_ERROR;
    default:
        return EXH_VERIFY_BAD_HASH;
    }
}

/* The parameters, salt and tag come from our own strict parse; the tag is
 * derived into this thread's memory (above) and compared in constant time.
 * A tag longer than MAX_TAG goes to libargon2's own verify. */
static exh_verify verify_argon2id(const char *hash, const parsed *ph, const char *pw, size_t pwlen)
{
    if (pwlen > ARGON2_MAX_PWD_LENGTH) return EXH_VERIFY_MISMATCH;
    if (!ph->hashlen) return argon2_status(argon2id_verify(hash, pw, pwlen));
    unsigned char out[MAX_TAG];
    unsigned char salt[EXH_HASH_MAX];
    memcpy(salt, ph->salt, ph->saltlen);
    argon2_context ctx = {.out = out,
                          .outlen = (uint32_t)ph->hashlen,
                          .pwd = (uint8_t *)(uintptr_t)pw,
                          .pwdlen = (uint32_t)pwlen,
                          .salt = salt,
                          .saltlen = (uint32_t)ph->saltlen,
                          .t_cost = ph->t_cost,
                          .m_cost = ph->m_kib,
                          .lanes = ph->lanes,
                          .threads = ph->lanes,
                          .version = ARGON2_VERSION_13,
                          .allocate_cbk = a2_alloc,
                          .free_cbk = a2_free,
                          .flags = ARGON2_DEFAULT_FLAGS};
    int rc = argon2_ctx(&ctx, Argon2_id);
    if (rc != ARGON2_OK) {
        OPENSSL_cleanse(out, sizeof(out));
        return argon2_status(rc);
    }
    return compare_tag(out, ph);
}

/* PBKDF2-HMAC with the stored tag's own length, so truncated tags verify. */
static exh_verify verify_pbkdf2(const EVP_MD *md, const parsed *ph, const char *pw, size_t pwlen)
{
    if (pwlen > INT_MAX) return EXH_VERIFY_MISMATCH; /* no such hash could exist */
    unsigned char dk[MAX_TAG];
    if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, ph->salt, (int)ph->saltlen, (int)ph->iter, md,
                          (int)ph->hashlen, dk) != 1) {
        OPENSSL_cleanse(dk, sizeof(dk));
        return EXH_VERIFY_ERROR;
    }
    return compare_tag(dk, ph);
}

/* A plain digest of two parts: Mosquitto $6$ and EMQX. */
static exh_verify verify_digest(const EVP_MD *md, const void *a, size_t alen, const void *b,
                                size_t blen, const parsed *ph)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
              EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestFinal_ex(ctx, d, &dlen) == 1 &&
              dlen == ph->hashlen;
    EVP_MD_CTX_free(ctx); /* cleanses its state */
    if (!ok) {
        OPENSSL_cleanse(d, sizeof(d));
        return EXH_VERIFY_ERROR;
    }
    return compare_tag(d, ph);
}

/*
 * bcrypt through libxcrypt.  crypt() sees a C string, so a password with a
 * NUL in it cannot be what was hashed (it would otherwise match its own
 * prefix).  bcrypt reads only the first 72 bytes; passing just those keeps
 * libxcrypt's 512-byte passphrase limit from turning a long password into
 * an error.  crypt_data is 32 KiB of password-derived state: heap, wiped.
 */
static exh_verify verify_bcrypt(const char *hash, const char *pw, size_t pwlen)
{
    if (memchr(pw, '\0', pwlen)) return EXH_VERIFY_MISMATCH;
    char key[73];
    if (pwlen > 72) pwlen = 72;
    memcpy(key, pw, pwlen);
    key[pwlen] = '\0';
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (!cd) {
        OPENSSL_cleanse(key, sizeof(key));
        return EXH_VERIFY_ERROR;
    }
    size_t hlen = strlen(hash); /* 60: parse_bcrypt checked it */
    const char *out = crypt_rn(key, hash, cd, (int)sizeof(*cd));
    exh_verify r;
    if (!out || out[0] == '*')
        r = EXH_VERIFY_BAD_HASH;
    else if (strlen(out) != hlen)
        r = EXH_VERIFY_MISMATCH;
    else
        r = CRYPTO_memcmp(out, hash, hlen) == 0 ? EXH_VERIFY_OK : EXH_VERIFY_MISMATCH;
    OPENSSL_cleanse(cd, sizeof(*cd));
    OPENSSL_cleanse(key, sizeof(key));
    free(cd);
    return r;
}

/* Parse first, compute only for a well-formed string: BAD_HASH is cheap,
 * and no library sees a string we have not bounded. */
exh_verify exh_hash_verify(const char *hash, const char *pw, size_t pwlen)
{
    if (!pw && pwlen) return EXH_VERIFY_ERROR;
    if (!pw) pw = "";
    parsed ph;
    switch (parse(hash, &ph)) {
    case EXH_HASH_UNKNOWN:
        return EXH_VERIFY_BAD_HASH;
    case EXH_HASH_ARGON2ID:
        return verify_argon2id(hash, &ph, pw, pwlen);
    case EXH_HASH_PBKDF2_SHA512:
    case EXH_HASH_MOSQ_PBKDF2:
        return verify_pbkdf2(EVP_sha512(), &ph, pw, pwlen);
    case EXH_HASH_PBKDF2_SHA256:
        return verify_pbkdf2(EVP_sha256(), &ph, pw, pwlen);
    case EXH_HASH_BCRYPT:
        return verify_bcrypt(hash, pw, pwlen);
    case EXH_HASH_MOSQ_SHA512: /* SHA512(password || salt), as mosquitto's pw__hash */
        return verify_digest(EVP_sha512(), pw, pwlen, ph.salt, ph.saltlen, &ph);
    case EXH_HASH_EMQX_SHA256:
    case EXH_HASH_EMQX_SHA512: {
        /* emqx_passwd:hash/2: prefix hashes Salt || Password, suffix Password || Salt */
        const EVP_MD *md = ph.alg == EXH_HASH_EMQX_SHA256 ? EVP_sha256() : EVP_sha512();
        if (ph.salt_prefix) return verify_digest(md, ph.salt, ph.saltlen, pw, pwlen, &ph);
        return verify_digest(md, pw, pwlen, ph.salt, ph.saltlen, &ph);
    }
    }
    return EXH_VERIFY_BAD_HASH;
}

/* ---- the rest of the API ------------------------------------------------ */

void exh_hash_params_default(exh_hash_params *p)
{
    if (!p) return;
    p->m_kib = 19456;
    p->t_cost = 2;
    p->lanes = 1;
}

exh_hash_alg exh_hash_identify(const char *hash)
{
    parsed ph;
    return parse(hash, &ph);
}

const char *exh_hash_alg_name(exh_hash_alg alg)
{
    switch (alg) {
    case EXH_HASH_UNKNOWN:
        break;
    case EXH_HASH_ARGON2ID:
        return "argon2id";
    case EXH_HASH_PBKDF2_SHA512:
        return "pbkdf2-sha512";
    case EXH_HASH_PBKDF2_SHA256:
        return "pbkdf2-sha256";
    case EXH_HASH_BCRYPT:
        return "bcrypt";
    case EXH_HASH_MOSQ_PBKDF2:
        return "mosquitto-sha512-pbkdf2";
    case EXH_HASH_MOSQ_SHA512:
        return "mosquitto-sha512";
    case EXH_HASH_EMQX_SHA256:
        return "emqx-sha256";
    case EXH_HASH_EMQX_SHA512:
        return "emqx-sha512";
    }
    return "unknown";
}

/* argon2id with costs checked by the same rule verify applies, so every
 * hash we write is one we will accept; out is "" on any failure. */
exh_status exh_hash_password(const char *pw, size_t pwlen, const exh_hash_params *params, char *out,
                             size_t outsize, exh_error *err)
{
    exh_hash_params def;
    if (!params) {
        exh_hash_params_default(&def);
        params = &def;
    }
    if (!out || outsize == 0)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0, "no output buffer for the hash");
    out[0] = '\0';
    if (!pw && pwlen)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                             "password is NULL but its length is not 0");
    if (!pw) pw = "";
    if (pwlen > ARGON2_MAX_PWD_LENGTH)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                             "password too long for argon2id (%zu bytes)", pwlen);
    if (!argon2_costs_ok(params->m_kib, params->t_cost, params->lanes, err)) return EXH_EINVAL;

    size_t need = argon2_encodedlen(params->t_cost, params->m_kib, params->lanes, NEW_SALT_BYTES,
                                    NEW_TAG_BYTES, Argon2_id);
    if (outsize < need)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                             "output buffer holds %zu bytes; the hash needs %zu", outsize, need);
    unsigned char salt[NEW_SALT_BYTES];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return exh_error_set(err, EXH_EIO, NULL, 0, 0, "no random salt: OpenSSL RAND_bytes failed");
    int rc = argon2id_hash_encoded(params->t_cost, params->m_kib, params->lanes, pw, pwlen, salt,
                                   sizeof(salt), NEW_TAG_BYTES, out, outsize);
    if (rc != ARGON2_OK) {
        OPENSSL_cleanse(out, outsize);
        out[0] = '\0';
        return exh_error_set(err, rc == ARGON2_MEMORY_ALLOCATION_ERROR ? EXH_ENOMEM : EXH_EINVAL,
                             NULL, 0, 0, "argon2id: %s", argon2_error_message(rc));
    }
    return EXH_OK;
}

/* Lanes do not count: they change speed, not the cost to an attacker. */
bool exh_hash_needs_upgrade(const char *hash, const exh_hash_params *params)
{
    exh_hash_params def;
    if (!params) {
        exh_hash_params_default(&def);
        params = &def;
    }
    parsed ph;
    if (parse(hash, &ph) != EXH_HASH_ARGON2ID) return true;
    return ph.m_kib < params->m_kib || ph.t_cost < params->t_cost;
}

/*
 * Import an EMQX salted SHA-2 credential (emqx_passwd: lower-case hex of
 * SHA-2 over salt and password).  The salt is raw bytes as EMQX stores it;
 * we keep it base64 so any byte, '$' included, survives.
 */
exh_status exh_hash_emqx(exh_hash_alg alg, bool salt_prefix, const unsigned char *salt,
                         size_t saltlen, const char *hexhash, char *out, size_t outsize,
                         exh_error *err)
{
    if (out && outsize) out[0] = '\0';
    if (alg != EXH_HASH_EMQX_SHA256 && alg != EXH_HASH_EMQX_SHA512)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                             "EMQX hashes are sha256 or sha512, not %s", exh_hash_alg_name(alg));
    if (!salt && saltlen)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0, "EMQX hash: no salt given");
    if (!hexhash) return exh_error_set(err, EXH_EINVAL, NULL, 0, 0, "EMQX hash: no hash given");
    size_t want = alg == EXH_HASH_EMQX_SHA256 ? 64 : 128;
    size_t hexlen = strnlen(hexhash, want + 1);
    if (hexlen != want)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                             "EMQX %s hash must be %zu hex digits, not %s%zu",
                             alg == EXH_HASH_EMQX_SHA256 ? "sha256" : "sha512", want,
                             hexlen > want ? "more than " : "", hexlen > want ? want : hexlen);
    for (size_t i = 0; i < want; i++)
        if (hex_value((unsigned char)hexhash[i]) < 0)
            return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                                 "EMQX hash: character %zu is not a hex digit", i + 1);

    /* "$emqx-sha256$" "prefix$" <salt, unpadded base64> "$" <hex> NUL */
    size_t b64len = saltlen / 3 * 4 + (saltlen % 3 ? saltlen % 3 + 1 : 0);
    size_t need = saltlen > EXH_HASH_MAX ? SIZE_MAX : 13 + 7 + b64len + 1 + want + 1;
    if (need > EXH_HASH_MAX)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                             "EMQX hash: a %zu-byte salt does not fit in %d bytes", saltlen,
                             EXH_HASH_MAX);
    if (!out || outsize < need)
        return exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                             "output buffer holds %zu bytes; the hash needs %zu", out ? outsize : 0,
                             need);
    size_t n = (size_t)snprintf(out, outsize, "$%s$%s$", exh_hash_alg_name(alg),
                                salt_prefix ? "prefix" : "suffix");
    n += b64_encode(salt, saltlen, out + n);
    out[n++] = '$';
    for (size_t i = 0; i < want; i++) {
        char c = hexhash[i];
        out[n++] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = '\0';
    return EXH_OK;
}
