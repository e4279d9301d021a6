/*
 * auth.h -- "may this client connect?": the credential check against the
 * store, then the policy's connect rules (DESIGN §2 step 3).
 *
 * A verified-credential cache keeps a reconnect storm of known clients
 * cheap: after a successful check it remembers HMAC-SHA256(key, password)
 * for the user's current revision, with a per-process random key, for a
 * TTL.  It never holds a password, and it is keyed to the user's revision
 * in the store, so a changed, disabled or deleted user is never served
 * from it.  The cache is thread-safe and shared by every worker.
 *
 * The same cache keeps each user's clientid pattern compiled, for the
 * user's current revision, so a login does not compile a regex: at most
 * max_entries of them, oldest first out, whatever the TTL.
 */
#ifndef EXHOOK_AUTH_H
#define EXHOOK_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/eval.h"
#include "exhook/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what is declared here is
 * its public ABI and must stay exported. */
#pragma GCC visibility push(default)

typedef struct exh_auth_cache exh_auth_cache;

/* ttl_seconds 0 disables caching; max_entries bounds memory (oldest first
 * out). */
exh_auth_cache *exh_auth_cache_new(uint32_t ttl_seconds, size_t max_entries);
void exh_auth_cache_free(exh_auth_cache *c);

/*
 * Why the credential check came out as it did: each failure distinct, for
 * logs and `exhookctl check`.  Every reason but OK, OK_CACHED, ANONYMOUS
 * and UNCHECKED is a deny with the connect rules not run.  Four are
 * faults -- STORE_ERROR, NO_MEMORY, NO_STORE, HASH_ERROR: the password
 * could not be checked, so the login fails closed.  Only STORE_ERROR is
 * the store's fault, the one a front end's failed_action may excuse.
 * New reasons are appended: the values are stable.
 */
typedef enum exh_auth_reason {
    EXH_AUTH_OK = 0,    /* password verified */
    EXH_AUTH_OK_CACHED, /* verified from the cache */
    EXH_AUTH_ANONYMOUS, /* no username: connect rules decide */
    EXH_AUTH_UNKNOWN_USER,
    EXH_AUTH_DISABLED,
    EXH_AUTH_CLIENTID_MISMATCH, /* the user's clientid pattern does not match */
    EXH_AUTH_BAD_PASSWORD,
    EXH_AUTH_NO_PASSWORD, /* a username but no password */
    EXH_AUTH_BAD_HASH,    /* the stored hash cannot be checked: fail closed */
    EXH_AUTH_STORE_ERROR, /* the store could not be read (status EXH_ESTORE) */
    EXH_AUTH_UNCHECKED,   /* no password check asked for (check/test) */
    EXH_AUTH_THROTTLED,   /* a hash was needed and the request said no_hash */
    EXH_AUTH_NO_MEMORY,   /* out of memory here or in the store (status EXH_ENOMEM) */
    EXH_AUTH_NO_STORE,    /* check_password with store NULL (status EXH_EINVAL) */
    EXH_AUTH_HASH_ERROR,  /* the hash library failed on a well-formed hash
                           * (its own memory, a crypto error; status EXH_OK) */
    EXH_AUTH_LOCKED_OUT,  /* refused unchecked: the name or address is locked out after
                           * repeated failures (a front end's lock-outs; store.h) */
} exh_auth_reason;

/* May this user connect with this client id (its clientid pattern, if it
 * has one, matches the whole id)?  A pattern that does not compile
 * matches nothing.  The _cached form takes the compiled pattern from c
 * (or puts it there) when c is not NULL; the answer is the same. */
bool exh_user_may_use_clientid(const exh_user *u, const char *cid, size_t len);
bool exh_user_may_use_clientid_cached(exh_auth_cache *c, const exh_user *u, const char *cid,
                                      size_t len);

const char *exh_auth_reason_str(exh_auth_reason r);

/*
 * What a verified login leaves for its connection: an HMAC, under the
 * credential cache's per-process key, of the user's id, revision, stored
 * hash and the password -- never the password.  A front end that keeps it
 * per connection hands it back when the broker asks about the same
 * connection again (Mosquitto re-runs basic auth for every client at each
 * reload); it then stands for the password check as long as the user and
 * its password are unchanged, whatever the cache's TTL, so a reload costs
 * no hash.  The user's state and the connect rules are checked afresh.
 */
typedef struct exh_auth_digest {
    unsigned char mac[32];
    bool set;
} exh_auth_digest;

typedef struct exh_auth_request {
    const char *username; /* NULL: anonymous */
    size_t username_len;
    const char *clientid;
    size_t clientid_len;
    const char *password; /* NULL with check_password: EXH_AUTH_NO_PASSWORD */
    size_t password_len;
    exh_addr peerhost;   /* family 0: unknown */
    bool check_password; /* false: treat the credentials as verified (CLI check) */
    /* Groups given with the request override the store's for the connect
     * rules (DESIGN §3); the result still reports the store's. */
    bool groups_given;
    const exh_str *groups;
    size_t ngroups;
    /* This connection's earlier verified login (NULL: none).  Needs a cache. */
    const exh_auth_digest *verified;
    /* Refuse (EXH_AUTH_THROTTLED) rather than compute a password hash --
     * for the real password or an unknown name's dummy alike, so a refusal
     * tells nothing about which names exist; a cache or digest hit still
     * succeeds.  A front end on a broker's only thread sets it when its
     * budget of hashes is spent. */
    bool no_hash;
} exh_auth_request;

typedef struct exh_auth_result {
    exh_decision decision;
    exh_auth_reason reason; /* the credential check */
    exh_result rule;        /* the connect-rule evaluation, when it ran */
    bool rules_ran;
    bool rehashed;          /* a weaker hash was upgraded to argon2id */
    bool from_digest;       /* the password was taken as verified from req->verified */
    exh_auth_digest digest; /* set when the password was verified (a cache was given) */
    /* What the front end keeps for ACL checks of this client. */
    bool superuser;
    char **groups; /* owned: exh_auth_result_clear */
    size_t ngroups;
} exh_auth_result;

void exh_auth_result_clear(exh_auth_result *r);

/*
 * Decide a connect.  store may be NULL only when check_password is false
 * and there is no user record to consult (then groups/superuser come from
 * nowhere); with check_password it is EXH_AUTH_NO_STORE.  cache may be
 * NULL.  res->reason alone tells every outcome apart.  The status is not
 * EXH_OK only for STORE_ERROR (EXH_ESTORE), NO_MEMORY (EXH_ENOMEM) and
 * NO_STORE (EXH_EINVAL), and then err (if given) says why; on a
 * STORE_ERROR the front end applies its failed_action, on the others it
 * refuses.
 */
exh_status exh_authenticate(exh_store *store, exh_auth_cache *cache, const exh_policy *policy,
                            exh_evalctx *ctx, const exh_auth_request *req, exh_auth_result *res,
                            exh_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
