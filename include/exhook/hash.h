/*
 * hash.h -- password hashes as self-describing strings.
 *
 * New passwords are hashed with argon2id (libargon2).  Verified, so that
 * imported passwords keep working:
 *
 *   argon2id   $argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH (libargon2's PHC form)
 *   PBKDF2     $pbkdf2-sha512$i=ITERATIONS$SALT$HASH, likewise pbkdf2-sha256
 *              (base64, padding optional)
 *   bcrypt     $2b$COST$SALTHASH, also $2a$ and $2y$ (via libcrypt)
 *   Mosquitto  $7$ITERATIONS$SALT$HASH: PBKDF2-SHA512, 64 bytes, padded base64;
 *              $6$SALT$HASH: SHA512(password || salt)
 *   EMQX       $emqx-sha256$prefix$SALT$HEX: SHA256(salt || password), "suffix" for
 *              password || salt, likewise emqx-sha512; an empty SALT is no salt
 *              (import only)
 *
 * Every comparison of derived bytes is constant-time.  Nothing here logs,
 * prints or keeps a password; buffers that held one are wiped.
 */
#ifndef EXHOOK_HASH_H
#define EXHOOK_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Longest hash string any format here produces, plus the NUL. */
#define EXH_HASH_MAX 512

typedef enum exh_hash_alg {
    EXH_HASH_UNKNOWN = 0,
    EXH_HASH_ARGON2ID,
    EXH_HASH_PBKDF2_SHA512,
    EXH_HASH_PBKDF2_SHA256,
    EXH_HASH_BCRYPT,
    EXH_HASH_MOSQ_PBKDF2, /* $7$ */
    EXH_HASH_MOSQ_SHA512, /* $6$ */
    EXH_HASH_EMQX_SHA256,
    EXH_HASH_EMQX_SHA512,
} exh_hash_alg;

/* Cost of new hashes.  Defaults (exh_hash_params_default) follow OWASP's
 * Password Storage Cheat Sheet for argon2id: m = 19 MiB, t = 2, p = 1. */
typedef struct exh_hash_params {
    uint32_t m_kib;  /* memory, KiB */
    uint32_t t_cost; /* passes */
    uint32_t lanes;  /* parallelism */
} exh_hash_params;

void exh_hash_params_default(exh_hash_params *p);

/* Which format a stored hash string is in (EXH_HASH_UNKNOWN if none). */
exh_hash_alg exh_hash_identify(const char *hash);
const char *exh_hash_alg_name(exh_hash_alg alg); /* "argon2id", "bcrypt", ... */

/* Hash a new password with argon2id and a fresh random salt into out
 * (at least EXH_HASH_MAX bytes). */
exh_status exh_hash_password(const char *pw, size_t pwlen, const exh_hash_params *params, char *out,
                             size_t outsize, exh_error *err);

typedef enum exh_verify {
    EXH_VERIFY_OK = 0,
    EXH_VERIFY_MISMATCH, /* well-formed hash, wrong password */
    EXH_VERIFY_BAD_HASH, /* the stored string is not a hash we can check */
    EXH_VERIFY_ERROR,    /* out of memory or a library failure */
} exh_verify;

/* Check a password against a stored hash string of any format above. */
exh_verify exh_hash_verify(const char *hash, const char *pw, size_t pwlen);

/* Would a successful login with this hash be rehashed?  True when it is
 * not argon2id, or is argon2id with less memory or fewer passes than
 * params ask for. */
bool exh_hash_needs_upgrade(const char *hash, const exh_hash_params *params);

/* Build a stored string for an EMQX salted hash (import). */
exh_status exh_hash_emqx(exh_hash_alg alg, bool salt_prefix, const unsigned char *salt,
                         size_t saltlen, const char *hexhash, char *out, size_t outsize,
                         exh_error *err);

/* argon2id's working memory (m_kib, 19 MiB at the default cost) is kept
 * by each thread between verifications, so a burst of logins does not
 * fault it in again for each one.  This gives the calling thread's back
 * (a worker with nothing queued calls it). */
void exh_hash_thread_release(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
