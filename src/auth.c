/*
 * auth.c -- the connect decision: credentials from the store (with the
 * verified-credential cache in front of the slow hashes), then the
 * policy's connect rules.
 */
#include "exhook/auth.h"
#include "auth_int.h"
#include "error_int.h"
#include "store_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- the verified-credential cache ---- */

/*
 * Both of the cache's tables -- verified passwords and compiled clientid
 * patterns -- are keyed by user name and evict oldest first: one table
 * code serves both, with a named_entry as the first member of each kind.
 */
typedef struct named_entry {
    char *name;
    struct named_entry *next;          /* hash chain */
    struct named_entry *older, *newer; /* insertion order, for eviction */
} named_entry;

typedef struct named_table {
    named_entry **buckets; /* nbuckets, a power of two */
    size_t nbuckets, count;
    named_entry *oldest, *newest;
} named_table;

static size_t name_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 29));
}

static named_entry **bucket_of(const named_table *t, const char *name)
{
    return &t->buckets[name_hash(name, strlen(name)) & (t->nbuckets - 1)];
}

static named_entry *table_find(const named_table *t, const char *name)
{
    named_entry *e = *bucket_of(t, name);
    while (e && strcmp(e->name, name))
        e = e->next;
    return e;
}

/* e becomes the newest entry. */
static void table_add(named_table *t, named_entry *e)
{
    named_entry **b = bucket_of(t, e->name);
    e->next = *b;
    *b = e;
    e->older = t->newest;
    e->newer = NULL;
    if (t->newest)
        t->newest->newer = e;
    else
        t->oldest = e;
    t->newest = e;
    t->count++;
}

/* Out of the table (not freed). */
static void table_remove(named_table *t, named_entry *e)
{
    named_entry **pp = bucket_of(t, e->name);
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp) *pp = e->next;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    t->count--;
}

typedef struct centry {
    named_entry n;         /* first: a named_entry * is a centry * */
    int64_t id, rev;       /* the user row this was verified against */
    unsigned char mac[32]; /* HMAC-SHA256(key, id | rev | password) */
    uint64_t expires;      /* cache clock, seconds */
} centry;

/*
 * A user's clientid pattern, compiled for one revision of the user.  PCRE2
 * compiled code is only read by pcre2_match, so every thread matches with
 * the same copy (match data is per call); refs counts the matches in
 * progress, and an entry replaced or evicted meanwhile is freed by the
 * last of them.
 */
typedef struct rentry {
    named_entry n; /* first: a named_entry * is an rentry * */
    int64_t id, rev;
    char *pattern; /* what code was compiled from */
    pcre2_code *code;
    unsigned refs; /* matches in progress; under the cache's lock */
    bool linked;   /* still in the table */
} rentry;

struct exh_auth_cache {
    pthread_mutex_t lock;
    unsigned char key[32];
    uint32_t ttl;
    size_t max;
    named_table creds; /* centry */
    uint64_t skew;     /* test hook: seconds added to the clock */
    /* Compiled clientid patterns (rentry): as many as max. */
    named_table patterns;
};

static uint64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

exh_auth_cache *exh_auth_cache_new(uint32_t ttl_seconds, size_t max_entries)
{
    exh_auth_cache *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->ttl = ttl_seconds;
    c->max = max_entries ? max_entries : 1;
    size_t nb = 64;
    while (nb < c->max && nb < ((size_t)1 << 24))
        nb *= 2;
    c->creds = (named_table){.buckets = calloc(nb, sizeof(named_entry *)), .nbuckets = nb};
    c->patterns = (named_table){.buckets = calloc(nb, sizeof(named_entry *)), .nbuckets = nb};
    /* A per-process random key: what the cache holds is worthless outside
     * this process and cannot be checked against a password offline. */
    if (!c->creds.buckets || !c->patterns.buckets || RAND_bytes(c->key, sizeof(c->key)) != 1 ||
        pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->creds.buckets);
        free(c->patterns.buckets);
        free(c);
        return NULL;
    }
    return c;
}

static void unlink_entry(exh_auth_cache *c, centry *e)
{
    table_remove(&c->creds, &e->n);
    OPENSSL_cleanse(e->mac, sizeof(e->mac));
    free(e->n.name);
    free(e);
}

static void rentry_free(rentry *e)
{
    pcre2_code_free(e->code);
    free(e->pattern);
    free(e->n.name);
    free(e);
}

/* Take a compiled pattern out of the table; it is freed now, or by the
 * last match still using it.  Under the lock. */
static void unlink_pattern(exh_auth_cache *c, rentry *e)
{
    table_remove(&c->patterns, &e->n);
    e->linked = false;
    if (!e->refs) rentry_free(e);
}

void exh_auth_cache_free(exh_auth_cache *c)
{
    if (!c) return;
    while (c->creds.oldest)
        unlink_entry(c, (centry *)c->creds.oldest);
    while (c->patterns.oldest)
        unlink_pattern(c, (rentry *)c->patterns.oldest);
    OPENSSL_cleanse(c->key, sizeof(c->key));
    pthread_mutex_destroy(&c->lock);
    free(c->creds.buckets);
    free(c->patterns.buckets);
    free(c);
}

void auth_cache_advance(exh_auth_cache *c, uint32_t seconds)
{
    pthread_mutex_lock(&c->lock);
    c->skew += seconds;
    pthread_mutex_unlock(&c->lock);
}

static int cache_mac(const exh_auth_cache *c, const exh_user *u, const char *pw, size_t pwlen,
                     unsigned char out[32])
{
    unsigned char head[16];
    memcpy(head, &u->id, 8);
    memcpy(head + 8, &u->rev, 8);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outlen = 0;
    /* The stored hash is in the MAC too: its salt is fresh for every
     * password set, so a user deleted and re-added (SQLite may reuse the
     * row id, and rev restarts) never matches an old entry. */
    int ok = ctx && EVP_MAC_init(ctx, c->key, sizeof(c->key), params) &&
             EVP_MAC_update(ctx, head, sizeof(head)) &&
             EVP_MAC_update(ctx, (const unsigned char *)u->hash, strlen(u->hash) + 1) &&
             EVP_MAC_update(ctx, (const unsigned char *)pw, pwlen) &&
             EVP_MAC_final(ctx, out, &outlen, 32) && outlen == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -1;
}

static centry *find(exh_auth_cache *c, const char *name)
{
    return (centry *)table_find(&c->creds, name);
}

/* Was this password verified for this exact revision of the user within
 * the TTL? */
static int cache_hit(exh_auth_cache *c, const exh_user *u, const char *pw, size_t pwlen)
{
    if (!c || !c->ttl) return 0;
    unsigned char mac[32];
    if (cache_mac(c, u, pw, pwlen, mac)) return 0;
    pthread_mutex_lock(&c->lock);
    centry *e = find(c, u->name);
    int hit = 0;
    if (e) {
        if (e->id != u->id || e->rev != u->rev || mono_s() + c->skew >= e->expires)
            unlink_entry(c, e); /* the user changed or the entry aged out */
        else
            hit = CRYPTO_memcmp(e->mac, mac, 32) == 0;
    }
    pthread_mutex_unlock(&c->lock);
    OPENSSL_cleanse(mac, sizeof(mac));
    return hit;
}

static void cache_put(exh_auth_cache *c, const exh_user *u, const char *pw, size_t pwlen)
{
    if (!c || !c->ttl) return;
    centry *n = calloc(1, sizeof(*n));
    if (!n || !(n->n.name = strdup(u->name)) || cache_mac(c, u, pw, pwlen, n->mac)) {
        if (n) free(n->n.name);
        free(n);
        return; /* a cache that cannot grow just verifies again next time */
    }
    n->id = u->id;
    n->rev = u->rev;
    pthread_mutex_lock(&c->lock);
    n->expires = mono_s() + c->skew + c->ttl;
    centry *old = find(c, u->name);
    if (old) unlink_entry(c, old);
    while (c->creds.count >= c->max && c->creds.oldest)
        unlink_entry(c, (centry *)c->creds.oldest);
    table_add(&c->creds, &n->n);
    pthread_mutex_unlock(&c->lock);
}

/* ---- the decision ---- */

const char *exh_auth_reason_str(exh_auth_reason r)
{
    switch (r) {
    case EXH_AUTH_OK:
        return "password verified";
    case EXH_AUTH_OK_CACHED:
        return "password verified (cached)";
    case EXH_AUTH_ANONYMOUS:
        return "anonymous";
    case EXH_AUTH_UNKNOWN_USER:
        return "unknown user";
    case EXH_AUTH_DISABLED:
        return "user is disabled";
    case EXH_AUTH_CLIENTID_MISMATCH:
        return "client id does not match the user's clientid pattern";
    case EXH_AUTH_BAD_PASSWORD:
        return "wrong password";
    case EXH_AUTH_NO_PASSWORD:
        return "no password given";
    case EXH_AUTH_BAD_HASH:
        return "stored password hash is unreadable";
    case EXH_AUTH_STORE_ERROR:
        return "credential store unavailable";
    case EXH_AUTH_NO_MEMORY:
        return "out of memory";
    case EXH_AUTH_NO_STORE:
        return "no credential store to check the password against";
    case EXH_AUTH_HASH_ERROR:
        return "the password hash could not be computed";
    case EXH_AUTH_THROTTLED:
        return "refused without a password check (too many logins to check now)";
    case EXH_AUTH_UNCHECKED:
        return "credentials not checked";
    case EXH_AUTH_LOCKED_OUT:
        return "locked out after repeated failures";
    }
    return "?";
}

void exh_auth_result_clear(exh_auth_result *r)
{
    for (size_t i = 0; i < r->ngroups; i++)
        free(r->groups[i]);
    free(r->groups);
    r->groups = NULL;
    r->ngroups = 0;
}

/* ---- clientid patterns ---- */

static atomic_ulong clientid_compiles;

unsigned long auth_clientid_compiles(void)
{
    return atomic_load(&clientid_compiles);
}

/* The pattern must match the whole client id.  NULL when it does not
 * compile (the store validates patterns) or memory ran out. */
static pcre2_code *compile_clientid(const char *pattern)
{
    int code;
    PCRE2_SIZE off;
    atomic_fetch_add(&clientid_compiles, 1);
    return pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                         PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
}

static bool code_matches(const pcre2_code *re, const char *cid, size_t len)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)cid, len, 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* A pattern that cannot be compiled matches nothing: fail closed. */
static bool clientid_matches(const char *pattern, const char *cid, size_t len)
{
    pcre2_code *re = compile_clientid(pattern);
    bool ok = re && code_matches(re, cid, len);
    pcre2_code_free(re);
    return ok;
}

/* The named user's entry, of whatever revision.  Under the lock. */
static rentry *pattern_of(exh_auth_cache *c, const char *name)
{
    return (rentry *)table_find(&c->patterns, name);
}

/* The user's pattern as compiled for this revision, with a reference
 * taken; NULL when the table has none.  Under the lock.  The pattern text
 * is compared too: a user deleted and re-added may come back with the
 * same row id and revision. */
static rentry *find_pattern(exh_auth_cache *c, const exh_user *u)
{
    rentry *e = pattern_of(c, u->name);
    if (!e || e->id != u->id || e->rev != u->rev || strcmp(e->pattern, u->clientid_pattern))
        return NULL;
    e->refs++;
    return e;
}

/* Compile the user's pattern into the table (replacing an older
 * revision's, evicting the oldest beyond max), with a reference taken for
 * the caller.  NULL when it does not compile or memory ran out. */
static rentry *add_pattern(exh_auth_cache *c, const exh_user *u)
{
    rentry *n = calloc(1, sizeof(*n));
    if (!n || !(n->n.name = strdup(u->name)) || !(n->pattern = strdup(u->clientid_pattern)) ||
        !(n->code = compile_clientid(u->clientid_pattern))) {
        if (n) rentry_free(n);
        return NULL;
    }
    n->id = u->id;
    n->rev = u->rev;
    n->refs = 1;
    n->linked = true;
    pthread_mutex_lock(&c->lock);
    rentry *old = pattern_of(c, u->name);
    if (old) unlink_pattern(c, old);
    while (c->patterns.count >= c->max && c->patterns.oldest)
        unlink_pattern(c, (rentry *)c->patterns.oldest);
    table_add(&c->patterns, &n->n);
    pthread_mutex_unlock(&c->lock);
    return n;
}

bool exh_user_may_use_clientid_cached(exh_auth_cache *c, const exh_user *u, const char *cid,
                                      size_t len)
{
    if (!u->clientid_pattern) return true;
    if (!cid) cid = "";
    if (!c || !u->name) return clientid_matches(u->clientid_pattern, cid, len);
    pthread_mutex_lock(&c->lock);
    rentry *e = find_pattern(c, u);
    pthread_mutex_unlock(&c->lock);
    if (!e && !(e = add_pattern(c, u)))
        return clientid_matches(u->clientid_pattern, cid, len); /* uncached, still right */
    /* The match runs outside the lock: a slow pattern holds up no other login. */
    bool ok = code_matches(e->code, cid, len);
    pthread_mutex_lock(&c->lock);
    if (!--e->refs && !e->linked) rentry_free(e);
    pthread_mutex_unlock(&c->lock);
    return ok;
}

bool exh_user_may_use_clientid(const exh_user *u, const char *cid, size_t len)
{
    return exh_user_may_use_clientid_cached(NULL, u, cid, len);
}

/* Refuse on the credentials alone: the connect rules do not run. */
static bool deny(exh_auth_result *res, exh_auth_reason why)
{
    res->decision = EXH_DENY;
    res->reason = why;
    return false;
}

/*
 * The user record the request names, into *u -- left empty when there is
 * none to consult (anonymous; unchecked and not in the store).  Returns
 * false when that alone refuses the login: res says why, *st is the
 * status exh_authenticate returns.
 */
static bool find_user(exh_store *store, const exh_auth_request *req, exh_user *u,
                      exh_auth_result *res, exh_status *st, exh_error *err)
{
    if (!req->username) {
        res->reason = EXH_AUTH_ANONYMOUS;
        return true;
    }
    if (memchr(req->username, '\0', req->username_len))
        return deny(res, EXH_AUTH_UNKNOWN_USER); /* no stored name holds a NUL */
    if (!store) {
        if (req->check_password) {
            *st = exh_error_set(err, EXH_EINVAL, NULL, 0, 0,
                                "a password check needs a credential store");
            return deny(res, EXH_AUTH_NO_STORE);
        }
        res->reason = EXH_AUTH_UNCHECKED;
        return true;
    }
    /* malloc rather than strndup (the name holds no NUL): an allocation
     * the tests can make fail (test_auth wraps malloc). */
    char *name = malloc(req->username_len + 1);
    if (!name) {
        *st = exh_error_nomem(err);
        return deny(res, EXH_AUTH_NO_MEMORY);
    }
    memcpy(name, req->username, req->username_len);
    name[req->username_len] = '\0';
    exh_status got = exh_store_get_user(store, name, u, err);
    free(name);
    if (got == EXH_ENOTFOUND && req->check_password) {
        if (req->no_hash) return deny(res, EXH_AUTH_THROTTLED);
        /* As long as a wrong password: see store_dummy_hash. */
        const char *dummy = req->password ? store_dummy_hash(store) : NULL;
        if (dummy) exh_hash_verify(dummy, req->password, req->password_len);
        return deny(res, EXH_AUTH_UNKNOWN_USER);
    }
    if (got && got != EXH_ENOTFOUND) {
        /* The store read fine but had no memory for the user: that is no
         * store fault, for a front end's failed_action to excuse. */
        *st = got;
        return deny(res, got == EXH_ENOMEM ? EXH_AUTH_NO_MEMORY : EXH_AUTH_STORE_ERROR);
    }
    /* Found; or unchecked and not found, and the rules decide with no groups. */
    res->reason = EXH_AUTH_UNCHECKED;
    return true;
}

/* What refuses a known user before any password work: disabled, bound to
 * other client ids, no password given. */
static bool user_may_log_in(exh_auth_cache *cache, const exh_auth_request *req, const exh_user *u,
                            exh_auth_result *res)
{
    if (u->disabled) return deny(res, EXH_AUTH_DISABLED);
    if (!exh_user_may_use_clientid_cached(cache, u, req->clientid, req->clientid_len))
        return deny(res, EXH_AUTH_CLIENTID_MISMATCH);
    if (!req->password) return deny(res, EXH_AUTH_NO_PASSWORD);
    return true;
}

/*
 * Rehash a verified password at the store's cost, best effort: the login
 * stands either way.  Returns true when the store took the new hash; *u is
 * then the user as stored now (new revision and hash), so the cache entry
 * and the digest made from it match the next login -- with the old hash in
 * them, it would miss the cache and pay a full argon2id check.
 */
static bool upgrade_hash(exh_store *store, const exh_auth_request *req, exh_user *u)
{
    char fresh[EXH_HASH_MAX];
    char *h = NULL;
    bool done = !store_hash_new(store, req->password, req->password_len, fresh, sizeof(fresh)) &&
                (h = strdup(fresh)) && !store_set_hash_if(store, u->id, u->rev, fresh);
    if (done) {
        free(u->hash);
        u->hash = h;
        u->rev++;
    } else {
        free(h);
    }
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return done;
}

static exh_auth_reason verify_failure(exh_verify v)
{
    return v == EXH_VERIFY_MISMATCH   ? EXH_AUTH_BAD_PASSWORD
           : v == EXH_VERIFY_BAD_HASH ? EXH_AUTH_BAD_HASH
                                      : EXH_AUTH_HASH_ERROR;
}

/*
 * Is the request's password the user's?  Cheapest first: this
 * connection's digest, the cache, then the stored hash (upgraded when the
 * store asks for it).  A verified password leaves its digest in res when
 * there is a cache to key it.
 */
static bool password_matches(exh_store *store, exh_auth_cache *cache, const exh_auth_request *req,
                             exh_user *u, exh_auth_result *res)
{
    unsigned char mac[32];
    bool have_mac = cache && !cache_mac(cache, u, req->password, req->password_len, mac);
    bool ok = true;
    if (have_mac && req->verified && req->verified->set &&
        CRYPTO_memcmp(req->verified->mac, mac, 32) == 0) {
        res->reason = EXH_AUTH_OK_CACHED;
        res->from_digest = true;
    } else if (cache_hit(cache, u, req->password, req->password_len)) {
        res->reason = EXH_AUTH_OK_CACHED;
    } else if (req->no_hash) {
        ok = deny(res, EXH_AUTH_THROTTLED);
    } else {
        exh_verify v = exh_hash_verify(u->hash, req->password, req->password_len);
        if (v != EXH_VERIFY_OK) {
            ok = deny(res, verify_failure(v));
        } else {
            res->reason = EXH_AUTH_OK;
            if (store_upgrade_wanted(store, u->hash) && upgrade_hash(store, req, u)) {
                res->rehashed = true;
                have_mac = have_mac && !cache_mac(cache, u, req->password, req->password_len, mac);
            }
            cache_put(cache, u, req->password, req->password_len);
        }
    }
    if (ok && have_mac) {
        memcpy(res->digest.mac, mac, 32);
        res->digest.set = true;
    }
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

/* Keep what ACL checks need: groups and the superuser flag. */
static void take_user(exh_auth_result *res, exh_user *u)
{
    res->superuser = u->superuser;
    res->groups = u->groups;
    res->ngroups = u->ngroups;
    u->groups = NULL;
    u->ngroups = 0;
}

/* Step 3: the connect rules, for a verified, unchecked or anonymous
 * client, with the groups res holds or the request's own. */
static exh_status connect_rules(const exh_policy *policy, exh_evalctx *ctx,
                                const exh_auth_request *req, exh_auth_result *res, exh_error *err)
{
    exh_request r;
    exh_request_init(&r, EXH_CONNECT);
    r.username = req->username;
    r.username_len = req->username_len;
    r.clientid = req->clientid;
    r.clientid_len = req->clientid_len;
    r.peerhost = req->peerhost;
    r.superuser = res->superuser;
    /* Every group counts: a `deny connect group` must see them all. */
    exh_str *groups = NULL;
    if (req->groups_given) {
        r.groups = req->groups;
        r.ngroups = req->ngroups;
    } else if (res->ngroups) {
        if (!(groups = malloc(res->ngroups * sizeof(*groups)))) {
            exh_auth_result_clear(res);
            deny(res, EXH_AUTH_NO_MEMORY);
            exh_error_nomem(err);
            return EXH_ENOMEM;
        }
        for (size_t i = 0; i < res->ngroups; i++)
            groups[i] = (exh_str){res->groups[i], strlen(res->groups[i])};
        r.groups = groups;
        r.ngroups = res->ngroups;
    }
    exh_eval(policy, &r, ctx, &res->rule);
    free(groups);
    res->rules_ran = true;
    res->decision = res->rule.decision;
    return EXH_OK;
}

exh_status exh_authenticate(exh_store *store, exh_auth_cache *cache, const exh_policy *policy,
                            exh_evalctx *ctx, const exh_auth_request *req, exh_auth_result *res,
                            exh_error *err)
{
    memset(res, 0, sizeof(*res));
    exh_user u = {0};
    exh_status st = EXH_OK;
    bool pass = find_user(store, req, &u, res, &st, err);
    if (pass && u.name && req->check_password)
        pass = user_may_log_in(cache, req, &u, res) && password_matches(store, cache, req, &u, res);
    if (pass) take_user(res, &u);
    exh_user_clear(&u);
    return pass ? connect_rules(policy, ctx, req, res, err) : st;
}
