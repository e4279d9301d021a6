/*
 * test_auth.c -- the connect decision: each failure reason distinct, the
 * verified-credential cache (hit, expiry, invalidation by any change to
 * the user), upgrade on login, and the connect rules seeing the store's
 * groups.  Faults each have their own reason: the store (a table gone),
 * memory (every allocation made to fail in turn), no store, the hash
 * library.
 *
 * malloc, calloc and realloc are wrapped (-Wl,--wrap=..., CMakeLists.txt)
 * so that a test can make the library's allocations fail.  What libc,
 * SQLite, OpenSSL or PCRE2 allocate inside themselves is not wrapped.
 */
#include <crypt.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exhook/auth.h"
#include "exhook/hash.h"
#include "auth_int.h"
#include "store_int.h"
#include <sqlite3.h>

/* Allocation failures: the fail_nth-th allocation by a function in
 * fail_kinds fails (counted in seen); fail_nth 0 fails none. */
enum { A_MALLOC = 1, A_CALLOC = 2, A_REALLOC = 4 };
static unsigned fail_kinds;
static long fail_nth, seen;

static bool fail_now(unsigned kind)
{
    return fail_nth && (fail_kinds & kind) && ++seen == fail_nth;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n)
{
    return fail_now(A_MALLOC) ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now(A_CALLOC) ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n)
{
    return fail_now(A_REALLOC) ? NULL : __real_realloc(p, n);
}

static void fail_allocation(unsigned kinds, long nth)
{
    fail_kinds = kinds;
    fail_nth = nth;
    seen = 0;
}

static char dir[64], path[128];
static exh_store *store;
static exh_policy *policy;
static exh_evalctx *ctx;

static const char policy_text[] = "deny connect group \"banned\"\n"
                                  "allow connect anonymous peerhost 127.0.0.1\n";

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/exh-auth-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof(path), "%s/a.db", dir);
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 64;
    o.hash.t_cost = 1;
    exh_error err;
    if (exh_store_open(path, &o, &store, &err) ||
        exh_policy_parse("p", policy_text, strlen(policy_text), &policy, &err))
        return -1;
    ctx = exh_evalctx_new();
    const char *g[] = {"staff"};
    exh_new_user alice = {.name = "alice",
                          .password = "wonder",
                          .password_len = 6,
                          .clientid_pattern = "alice-.*",
                          .groups = g,
                          .ngroups = 1};
    exh_new_user bob = {.name = "bob", .password = "builder", .password_len = 7};
    return exh_store_add_user(store, &alice, &err) || exh_store_add_user(store, &bob, &err);
}

static int teardown(void **state)
{
    (void)state;
    exh_evalctx_free(ctx);
    exh_policy_free(policy);
    exh_store_close(store);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

/* A login with a password check, from C strings (user, pw NULL: none). */
static exh_auth_request request(const char *user, const char *cid, const char *pw)
{
    return (exh_auth_request){.username = user,
                              .username_len = user ? strlen(user) : 0,
                              .clientid = cid,
                              .clientid_len = strlen(cid),
                              .password = pw,
                              .password_len = pw ? strlen(pw) : 0,
                              .check_password = true};
}

static exh_auth_result login(exh_auth_cache *c, const char *user, const char *cid, const char *pw)
{
    exh_auth_request rq = request(user, cid, pw);
    exh_auth_result res;
    exh_error err;
    assert_int_equal(exh_authenticate(store, c, policy, ctx, &rq, &res, &err), EXH_OK);
    return res;
}

#define EXPECT(res, dec, why)                                                                      \
    do {                                                                                           \
        exh_auth_result r_ = (res);                                                                \
        if (r_.decision != (dec) || r_.reason != (why))                                            \
            fail_msg("line %d: got %s / %s", __LINE__, exh_decision_str(r_.decision),              \
                     exh_auth_reason_str(r_.reason));                                              \
        exh_auth_result_clear(&r_);                                                                \
    } while (0)

static void test_each_reason(void **state)
{
    (void)state;
    EXPECT(login(NULL, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(NULL, "alice", "alice-1", "wander"), EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    EXPECT(login(NULL, "alice", "alice-1", ""), EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    EXPECT(login(NULL, "alice", "bob-1", "wonder"), EXH_DENY, EXH_AUTH_CLIENTID_MISMATCH);
    EXPECT(login(NULL, "alice", "xalice-1", "wonder"), EXH_DENY, EXH_AUTH_CLIENTID_MISMATCH);
    EXPECT(login(NULL, "alice", "alice-1", NULL), EXH_DENY, EXH_AUTH_NO_PASSWORD);
    EXPECT(login(NULL, "carol", "c", "x"), EXH_DENY, EXH_AUTH_UNKNOWN_USER);
    EXPECT(login(NULL, NULL, "c", NULL), EXH_DENY, EXH_AUTH_ANONYMOUS);
    exh_error err;
    assert_int_equal(exh_store_set_flags(store, "bob", -1, 1, &err), EXH_OK);
    EXPECT(login(NULL, "bob", "b", "builder"), EXH_DENY, EXH_AUTH_DISABLED);
    /* a NUL inside the name never finds a user */
    exh_auth_request rq = {.username = "alice\0x",
                           .username_len = 7,
                           .clientid = "alice-1",
                           .clientid_len = 7,
                           .password = "wonder",
                           .password_len = 6,
                           .check_password = true};
    exh_auth_result res;
    assert_int_equal(exh_authenticate(store, NULL, policy, ctx, &rq, &res, &err), EXH_OK);
    EXPECT(res, EXH_DENY, EXH_AUTH_UNKNOWN_USER);
}

/* A hash that cannot be checked (damaged in the database) fails closed
 * with its own reason; the store refuses to write one. */
/* An unknown user's password is checked against a dummy hash of the
 * store's own cost, so refusing it takes as long as a wrong password. */
static void test_unknown_user_dummy_hash(void **state)
{
    (void)state;
    const char *d = store_dummy_hash(store);
    assert_non_null(d);
    assert_string_equal(d, store_dummy_hash(store)); /* made once per connection */
    assert_int_equal(exh_hash_identify(d), EXH_HASH_ARGON2ID);
    assert_int_equal(exh_hash_verify(d, "x", 1), EXH_VERIFY_MISMATCH);
    exh_auth_result r = login(NULL, "nobody", "c", "some password");
    assert_int_equal(r.decision, EXH_DENY);
    assert_int_equal(r.reason, EXH_AUTH_UNKNOWN_USER);
    exh_auth_result_clear(&r);
}

static void test_unreadable_hash(void **state)
{
    (void)state;
    exh_error err;
    assert_int_equal(exh_store_set_hash(store, "bob", "not-a-hash", &err), EXH_EINVAL);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE users SET hash = '$7$101$garbage' WHERE name = 'bob'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    EXPECT(login(NULL, "bob", "b", "builder"), EXH_DENY, EXH_AUTH_BAD_HASH);
}

/* Every reason has its own text. */
static void test_reason_texts(void **state)
{
    (void)state;
    for (int a = EXH_AUTH_OK; a <= EXH_AUTH_LOCKED_OUT; a++) {
        assert_string_not_equal(exh_auth_reason_str((exh_auth_reason)a), "?");
        for (int b = a + 1; b <= EXH_AUTH_LOCKED_OUT; b++)
            assert_string_not_equal(exh_auth_reason_str((exh_auth_reason)a),
                                    exh_auth_reason_str((exh_auth_reason)b));
    }
}

/* The store failing (here: its users table gone under it) is a
 * STORE_ERROR with the store's status -- the one fault a front end's
 * failed_action may excuse. */
static void test_store_fault(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE users RENAME TO gone", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    exh_auth_request rq = request("bob", "b", "builder");
    exh_auth_result r;
    exh_error err;
    assert_int_equal(exh_authenticate(store, NULL, policy, ctx, &rq, &r, &err), EXH_ESTORE);
    assert_int_equal(err.status, EXH_ESTORE);
    EXPECT(r, EXH_DENY, EXH_AUTH_STORE_ERROR);
}

/* A password check with no store to check it against. */
static void test_no_store(void **state)
{
    (void)state;
    exh_auth_request rq = request("bob", "b", "builder");
    exh_auth_result r;
    exh_error err;
    assert_int_equal(exh_authenticate(NULL, NULL, policy, ctx, &rq, &r, &err), EXH_EINVAL);
    assert_int_equal(err.status, EXH_EINVAL);
    EXPECT(r, EXH_DENY, EXH_AUTH_NO_STORE);
    /* no check asked for: the rules decide without a store */
    rq.check_password = false;
    assert_int_equal(exh_authenticate(NULL, NULL, policy, ctx, &rq, &r, &err), EXH_OK);
    assert_true(r.rules_ran);
    assert_int_equal(r.reason, EXH_AUTH_UNCHECKED);
    exh_auth_result_clear(&r);
}

/* Each allocation on a login's way (the name, the store's group list, the
 * connect rules' group array, the cache's entry), made to fail in turn:
 * the login is refused as NO_MEMORY with EXH_ENOMEM, or -- where the
 * allocation was only for the cache -- goes on. */
static void test_out_of_memory(void **state)
{
    (void)state;
    exh_auth_cache *c = exh_auth_cache_new(60, 10);
    assert_non_null(c);
    int refused = 0;
    for (long nth = 1;; nth++) {
        assert_true(nth < 100);
        exh_auth_request rq = {.username = "alice",
                               .username_len = 5,
                               .clientid = "alice-1",
                               .clientid_len = 7,
                               .password = "wonder",
                               .password_len = 6,
                               .check_password = true};
        exh_auth_result r;
        exh_error err;
        fail_allocation(A_MALLOC | A_CALLOC | A_REALLOC, nth);
        exh_status st = exh_authenticate(store, c, policy, ctx, &rq, &r, &err);
        bool failed = seen >= nth;
        fail_allocation(0, 0);
        if (!failed) { /* every allocation has had its turn */
            assert_int_equal(st, EXH_OK);
            EXPECT(r, EXH_ALLOW, EXH_AUTH_OK_CACHED);
            break;
        }
        if (r.decision == EXH_DENY) {
            if (st != EXH_ENOMEM || r.reason != EXH_AUTH_NO_MEMORY || err.status != EXH_ENOMEM)
                fail_msg("allocation %ld: status %d, %s", nth, (int)st,
                         exh_auth_reason_str(r.reason));
            assert_false(r.rules_ran);
            assert_int_equal(r.ngroups, 0);
            refused++;
        } else {
            assert_int_equal(st, EXH_OK);
            assert_true(r.reason == EXH_AUTH_OK || r.reason == EXH_AUTH_OK_CACHED);
        }
        exh_auth_result_clear(&r);
    }
    assert_true(refused >= 3); /* the name, the store's groups, the rules' groups */
    exh_auth_cache_free(c);
}

/* The hash library failing on a well-formed hash (here bcrypt's working
 * memory, which exhook allocates) is a HASH_ERROR, not a wrong password
 * and not a store fault. */
static void test_hash_library_failure(void **state)
{
    (void)state;
    const char *salt = crypt_gensalt("$2b$", 4, NULL, 0);
    assert_non_null(salt);
    char hash[128];
    snprintf(hash, sizeof(hash), "%s", crypt("cipher", salt));
    assert_int_equal(exh_hash_identify(hash), EXH_HASH_BCRYPT);
    exh_new_user carl = {.name = "carl", .hash = hash};
    exh_error err;
    assert_int_equal(exh_store_add_user(store, &carl, &err), EXH_OK);
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.upgrade_on_login = false; /* keep the bcrypt hash for the next login */
    exh_store *s;
    assert_int_equal(exh_store_open(path, &o, &s, &err), EXH_OK);
    exh_auth_request rq = {.username = "carl",
                           .username_len = 4,
                           .clientid = "c",
                           .clientid_len = 1,
                           .password = "cipher",
                           .password_len = 6,
                           .check_password = true};
    exh_auth_result r;
    fail_allocation(A_CALLOC, 1); /* no cache: bcrypt's is the only calloc */
    exh_status st = exh_authenticate(s, NULL, policy, ctx, &rq, &r, &err);
    assert_int_equal(seen, 1);
    fail_allocation(0, 0);
    assert_int_equal(st, EXH_OK);
    EXPECT(r, EXH_DENY, EXH_AUTH_HASH_ERROR);
    assert_int_equal(exh_authenticate(s, NULL, policy, ctx, &rq, &r, &err), EXH_OK);
    EXPECT(r, EXH_ALLOW, EXH_AUTH_OK);
    exh_store_close(s);
}

/* The cache keeps a user's clientid pattern compiled for its revision: a
 * second login compiles nothing, a changed user compiles again, and the
 * answers stay those of the uncached check. */
static void test_clientid_pattern_cache(void **state)
{
    (void)state;
    exh_error err;
    exh_auth_cache *c = exh_auth_cache_new(60, 10);
    assert_non_null(c);
    unsigned long n = auth_clientid_compiles();
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    assert_int_equal(auth_clientid_compiles(), n + 1);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    EXPECT(login(c, "alice", "bob-1", "wonder"), EXH_DENY, EXH_AUTH_CLIENTID_MISMATCH);
    EXPECT(login(c, "alice", "alice-2", "wander"), EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    assert_int_equal(auth_clientid_compiles(), n + 1);
    /* a user without a pattern compiles nothing */
    EXPECT(login(c, "bob", "anything", "builder"), EXH_ALLOW, EXH_AUTH_OK);
    assert_int_equal(auth_clientid_compiles(), n + 1);
    /* a new revision (here the superuser flag) compiles again, once */
    assert_int_equal(exh_store_set_flags(store, "alice", 1, -1, &err), EXH_OK);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    assert_int_equal(auth_clientid_compiles(), n + 2);
    /* a new pattern is the one matched */
    assert_int_equal(exh_store_set_clientid_pattern(store, "alice", "a[0-9]+", &err), EXH_OK);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_DENY, EXH_AUTH_CLIENTID_MISMATCH);
    EXPECT(login(c, "alice", "a7", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    assert_int_equal(auth_clientid_compiles(), n + 3);
    /* without a cache every check compiles */
    EXPECT(login(NULL, "alice", "a7", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(NULL, "alice", "a7", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    assert_int_equal(auth_clientid_compiles(), n + 5);
    /* deleted and re-added as the newest row, same id and revision 1, with
     * another pattern: the old compiled one is not used */
    exh_new_user z = {.name = "zz", .password = "pw", .password_len = 2, .clientid_pattern = "x.*"};
    assert_int_equal(exh_store_add_user(store, &z, &err), EXH_OK);
    EXPECT(login(c, "zz", "x1", "pw"), EXH_ALLOW, EXH_AUTH_OK);
    assert_int_equal(exh_store_del_user(store, "zz", &err), EXH_OK);
    z.clientid_pattern = "y.*";
    assert_int_equal(exh_store_add_user(store, &z, &err), EXH_OK);
    EXPECT(login(c, "zz", "x1", "pw"), EXH_DENY, EXH_AUTH_CLIENTID_MISMATCH);
    EXPECT(login(c, "zz", "y1", "pw"), EXH_ALLOW, EXH_AUTH_OK);
    /* the public check, with and without the cache, agrees */
    exh_user u;
    assert_int_equal(exh_store_get_user(store, "zz", &u, &err), EXH_OK);
    n = auth_clientid_compiles();
    assert_true(exh_user_may_use_clientid_cached(c, &u, "y2", 2));
    assert_false(exh_user_may_use_clientid_cached(c, &u, "xy", 2));
    assert_false(exh_user_may_use_clientid_cached(c, &u, NULL, 0));
    assert_int_equal(auth_clientid_compiles(), n);
    assert_true(exh_user_may_use_clientid(&u, "y2", 2));
    assert_false(exh_user_may_use_clientid(&u, "xy", 2));
    assert_int_equal(auth_clientid_compiles(), n + 2);
    exh_user_clear(&u);
    exh_auth_cache_free(c);

    /* bounded: with room for one, two users take turns and recompile */
    exh_auth_cache *one = exh_auth_cache_new(60, 1);
    n = auth_clientid_compiles();
    EXPECT(login(one, "alice", "a7", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(one, "zz", "y1", "pw"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(one, "alice", "a7", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    assert_int_equal(auth_clientid_compiles(), n + 3);
    EXPECT(login(one, "alice", "a8", "wonder"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    assert_int_equal(auth_clientid_compiles(), n + 3);
    exh_auth_cache_free(one);
}

/* Threads sharing a cache with room for one pattern: each login evicts
 * what another thread may be matching with (freed by the last match), and
 * every answer is still right. */
typedef struct racer {
    exh_auth_cache *cache;
    int wrong;
} racer;

static void *race_logins(void *arg)
{
    racer *r = arg;
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 64;
    o.hash.t_cost = 1;
    exh_store *s;
    exh_error err;
    exh_evalctx *ectx = exh_evalctx_new();
    if (!ectx || exh_store_open(path, &o, &s, &err)) {
        r->wrong = -1;
        exh_evalctx_free(ectx);
        return NULL;
    }
    static const struct {
        const char *user, *pw, *cid;
        exh_auth_reason want;
    } turn[] = {{"alice", "wonder", "alice-1", EXH_AUTH_OK},
                {"carol", "pw", "carol-1", EXH_AUTH_OK},
                {"alice", "wonder", "carol-1", EXH_AUTH_CLIENTID_MISMATCH},
                {"carol", "pw", "alice-1", EXH_AUTH_CLIENTID_MISMATCH}};
    for (int i = 0; i < 400; i++) {
        int t = i % 4;
        exh_auth_request rq = {.username = turn[t].user,
                               .username_len = strlen(turn[t].user),
                               .clientid = turn[t].cid,
                               .clientid_len = strlen(turn[t].cid),
                               .password = turn[t].pw,
                               .password_len = strlen(turn[t].pw),
                               .check_password = true};
        exh_auth_result res;
        exh_authenticate(s, r->cache, policy, ectx, &rq, &res, &err);
        bool ok = turn[t].want == EXH_AUTH_OK
                      ? res.reason == EXH_AUTH_OK || res.reason == EXH_AUTH_OK_CACHED
                      : res.reason == turn[t].want;
        r->wrong += !ok;
        exh_auth_result_clear(&res);
    }
    exh_store_close(s);
    exh_evalctx_free(ectx);
    return NULL;
}

static void test_clientid_pattern_cache_threads(void **state)
{
    (void)state;
    exh_error err;
    exh_new_user carol = {
        .name = "carol", .password = "pw", .password_len = 2, .clientid_pattern = "carol-.*"};
    assert_int_equal(exh_store_add_user(store, &carol, &err), EXH_OK);
    racer r[4];
    pthread_t th[4];
    exh_auth_cache *c = exh_auth_cache_new(60, 1);
    assert_non_null(c);
    for (int i = 0; i < 4; i++) {
        r[i] = (racer){.cache = c};
        assert_int_equal(pthread_create(&th[i], NULL, race_logins, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].wrong, 0);
    }
    exh_auth_cache_free(c);
}

/* Groups given with the request replace the store's for connect rules. */
static void test_request_groups_override(void **state)
{
    (void)state;
    exh_error err;
    assert_int_equal(exh_store_add_to_group(store, "bob", "banned", &err), EXH_OK);
    EXPECT(login(NULL, "bob", "b", "builder"), EXH_DENY, EXH_AUTH_OK);
    exh_str mine[] = {{"staff", 5}};
    exh_auth_request rq = {.username = "bob",
                           .username_len = 3,
                           .clientid = "b",
                           .clientid_len = 1,
                           .password = "builder",
                           .password_len = 7,
                           .check_password = true,
                           .groups_given = true,
                           .groups = mine,
                           .ngroups = 1};
    exh_auth_result r;
    assert_int_equal(exh_authenticate(store, NULL, policy, ctx, &rq, &r, &err), EXH_OK);
    EXPECT(r, EXH_ALLOW, EXH_AUTH_OK);
    exh_str banned[] = {{"banned", 6}};
    rq.username = NULL; /* anonymous with the group named in the request */
    rq.groups = banned;
    assert_true(exh_addr_parse("127.0.0.1", 9, &rq.peerhost));
    assert_int_equal(exh_authenticate(store, NULL, policy, ctx, &rq, &r, &err), EXH_OK);
    EXPECT(r, EXH_DENY, EXH_AUTH_ANONYMOUS);
}

static void test_connect_rules_and_groups(void **state)
{
    (void)state;
    exh_error err;
    exh_auth_result r = login(NULL, "alice", "alice-1", "wonder");
    assert_true(r.rules_ran);
    assert_int_equal(r.rule.basis, EXH_BY_CREDENTIALS);
    assert_int_equal(r.ngroups, 1);
    assert_string_equal(r.groups[0], "staff");
    assert_false(r.superuser);
    exh_auth_result_clear(&r);
    /* membership of "banned" in the store makes the connect rule deny */
    assert_int_equal(exh_store_add_to_group(store, "alice", "banned", &err), EXH_OK);
    r = login(NULL, "alice", "alice-1", "wonder");
    assert_int_equal(r.decision, EXH_DENY);
    assert_int_equal(r.reason, EXH_AUTH_OK);
    assert_int_equal(r.rule.basis, EXH_BY_RULE);
    exh_auth_result_clear(&r);
    /* anonymous: the rules decide */
    exh_auth_request rq = {.clientid = "x", .clientid_len = 1, .check_password = true};
    assert_true(exh_addr_parse("127.0.0.1", 9, &rq.peerhost));
    assert_int_equal(exh_authenticate(store, NULL, policy, ctx, &rq, &r, &err), EXH_OK);
    EXPECT(r, EXH_ALLOW, EXH_AUTH_ANONYMOUS);
    /* unchecked (exhookctl check without a password): groups still come from the store */
    assert_int_equal(exh_store_set_flags(store, "alice", 1, -1, &err), EXH_OK);
    exh_auth_request u = {.username = "alice",
                          .username_len = 5,
                          .clientid = "z",
                          .clientid_len = 1,
                          .check_password = false};
    assert_int_equal(exh_authenticate(store, NULL, policy, ctx, &u, &r, &err), EXH_OK);
    assert_int_equal(r.reason, EXH_AUTH_UNCHECKED);
    assert_int_equal(r.decision, EXH_DENY); /* banned */
    assert_true(r.superuser);
    exh_auth_result_clear(&r);
}

static void test_cache_hits_expires_and_invalidates(void **state)
{
    (void)state;
    exh_error err;
    exh_auth_cache *c = exh_auth_cache_new(60, 100);
    assert_non_null(c);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    /* a wrong password is never a cache hit */
    EXPECT(login(c, "alice", "alice-1", "wonder!"), EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    /* expiry */
    auth_cache_advance(c, 61);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    /* a changed password: the old one is not served from the cache */
    assert_int_equal(exh_store_set_password(store, "alice", "land", 4, &err), EXH_OK);
    EXPECT(login(c, "alice", "alice-1", "wonder"), EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    EXPECT(login(c, "alice", "alice-1", "land"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(c, "alice", "alice-1", "land"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    /* disabled, then re-enabled: checked afresh */
    assert_int_equal(exh_store_set_flags(store, "alice", -1, 1, &err), EXH_OK);
    EXPECT(login(c, "alice", "alice-1", "land"), EXH_DENY, EXH_AUTH_DISABLED);
    assert_int_equal(exh_store_set_flags(store, "alice", -1, 0, &err), EXH_OK);
    EXPECT(login(c, "alice", "alice-1", "land"), EXH_ALLOW, EXH_AUTH_OK);
    /* deleted and re-added with another password under the same name */
    assert_int_equal(exh_store_del_user(store, "alice", &err), EXH_OK);
    EXPECT(login(c, "alice", "alice-1", "land"), EXH_DENY, EXH_AUTH_UNKNOWN_USER);
    exh_new_user again = {.name = "alice", .password = "other", .password_len = 5};
    assert_int_equal(exh_store_add_user(store, &again, &err), EXH_OK);
    EXPECT(login(c, "alice", "alice-1", "land"), EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    /* deleted and re-added as the newest row: SQLite may reuse the row id
     * and rev starts again at 1, yet the old password must not be served */
    exh_new_user z = {.name = "zz", .password = "old", .password_len = 3};
    assert_int_equal(exh_store_add_user(store, &z, &err), EXH_OK);
    EXPECT(login(c, "zz", "z", "old"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(c, "zz", "z", "old"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    exh_user zu;
    assert_int_equal(exh_store_get_user(store, "zz", &zu, &err), EXH_OK);
    int64_t zid = zu.id;
    exh_user_clear(&zu);
    assert_int_equal(exh_store_del_user(store, "zz", &err), EXH_OK);
    z.password = "new";
    assert_int_equal(exh_store_add_user(store, &z, &err), EXH_OK);
    assert_int_equal(exh_store_get_user(store, "zz", &zu, &err), EXH_OK);
    assert_int_equal(zu.id, zid); /* the case that matters: same id, rev 1 again */
    exh_user_clear(&zu);
    EXPECT(login(c, "zz", "z", "old"), EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    EXPECT(login(c, "zz", "z", "new"), EXH_ALLOW, EXH_AUTH_OK);
    /* ttl 0 disables the cache */
    exh_auth_cache *off = exh_auth_cache_new(0, 10);
    EXPECT(login(off, "bob", "b", "builder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(off, "bob", "b", "builder"), EXH_ALLOW, EXH_AUTH_OK);
    exh_auth_cache_free(off);
    /* bounded: many users, the oldest fall out, nothing breaks */
    exh_auth_cache *small = exh_auth_cache_new(60, 1);
    EXPECT(login(small, "bob", "b", "builder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(small, "alice", "a", "other"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(small, "bob", "b", "builder"), EXH_ALLOW, EXH_AUTH_OK);
    EXPECT(login(small, "bob", "b", "builder"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    exh_auth_cache_free(small);
    exh_auth_cache_free(c);
}

/* A connection's digest stands for its password check while the user and
 * its password are unchanged, whatever the cache's TTL (even 0); any
 * change, or another password, means a real check. */
static exh_auth_result login_with(exh_auth_cache *c, const char *user, const char *pw,
                                  const exh_auth_digest *d)
{
    exh_auth_request rq = {.username = user,
                           .username_len = strlen(user),
                           .clientid = "alice-1",
                           .clientid_len = 7,
                           .password = pw,
                           .password_len = strlen(pw),
                           .check_password = true,
                           .verified = d};
    exh_auth_result res;
    exh_error err;
    assert_int_equal(exh_authenticate(store, c, policy, ctx, &rq, &res, &err), EXH_OK);
    return res;
}

static void test_connection_digest(void **state)
{
    (void)state;
    exh_error err;
    exh_auth_cache *c = exh_auth_cache_new(0, 10); /* no cache: only the digest can help */
    exh_auth_result r = login_with(c, "alice", "wonder", NULL);
    assert_int_equal(r.decision, EXH_ALLOW);
    assert_int_equal(r.reason, EXH_AUTH_OK);
    assert_true(r.digest.set);
    exh_auth_digest d = r.digest;
    exh_auth_result_clear(&r);
    r = login_with(c, "alice", "wonder", &d);
    assert_int_equal(r.reason, EXH_AUTH_OK_CACHED);
    assert_true(r.from_digest);
    exh_auth_result_clear(&r);
    /* another password with the digest: checked, refused */
    r = login_with(c, "alice", "wonder!", &d);
    assert_int_equal(r.decision, EXH_DENY);
    assert_int_equal(r.reason, EXH_AUTH_BAD_PASSWORD);
    assert_false(r.from_digest);
    assert_false(r.digest.set);
    exh_auth_result_clear(&r);
    /* the user disabled: refused, digest or not */
    assert_int_equal(exh_store_set_flags(store, "alice", -1, 1, &err), EXH_OK);
    r = login_with(c, "alice", "wonder", &d);
    assert_int_equal(r.reason, EXH_AUTH_DISABLED);
    exh_auth_result_clear(&r);
    assert_int_equal(exh_store_set_flags(store, "alice", -1, 0, &err), EXH_OK);
    /* any change to the user (here: enabled again) means a real check */
    r = login_with(c, "alice", "wonder", &d);
    assert_int_equal(r.reason, EXH_AUTH_OK);
    assert_false(r.from_digest);
    exh_auth_digest d2 = r.digest;
    exh_auth_result_clear(&r);
    /* a digest of one user never stands for another */
    r = login_with(c, "bob", "wonder", &d2);
    assert_int_equal(r.reason, EXH_AUTH_BAD_PASSWORD);
    exh_auth_result_clear(&r);
    /* the password changed: the old digest is worthless */
    assert_int_equal(exh_store_set_password(store, "alice", "land", 4, &err), EXH_OK);
    r = login_with(c, "alice", "wonder", &d2);
    assert_int_equal(r.reason, EXH_AUTH_BAD_PASSWORD);
    exh_auth_result_clear(&r);
    /* no cache at all: no digest is made or taken */
    r = login_with(NULL, "alice", "land", NULL);
    assert_int_equal(r.reason, EXH_AUTH_OK);
    assert_false(r.digest.set);
    exh_auth_result_clear(&r);
    exh_auth_cache_free(c);
}

/* no_hash: refused without hashing, known and unknown names alike; a
 * cache hit still gets in. */
static void test_no_hash(void **state)
{
    (void)state;
    exh_auth_cache *c = exh_auth_cache_new(60, 10);
    EXPECT(login(c, "bob", "b", "builder"), EXH_ALLOW, EXH_AUTH_OK); /* now cached */
    const char *users[] = {"bob", "alice", "nobody"};
    const char *pws[] = {"builder", "wonder", "x"};
    for (int i = 0; i < 3; i++) {
        exh_auth_request rq = {.username = users[i],
                               .username_len = strlen(users[i]),
                               .clientid = "alice-1",
                               .clientid_len = 7,
                               .password = pws[i],
                               .password_len = strlen(pws[i]),
                               .check_password = true,
                               .no_hash = true};
        exh_auth_result res;
        exh_error err;
        assert_int_equal(exh_authenticate(store, c, policy, ctx, &rq, &res, &err), EXH_OK);
        if (i == 0) {
            assert_int_equal(res.decision, EXH_ALLOW); /* from the cache */
            assert_int_equal(res.reason, EXH_AUTH_OK_CACHED);
        } else {
            assert_int_equal(res.decision, EXH_DENY);
            assert_int_equal(res.reason, EXH_AUTH_THROTTLED);
        }
        exh_auth_result_clear(&res);
    }
    exh_auth_cache_free(c);
}

/* A PBKDF2-SHA256 hash built here, in the store's PHC-style format. */
static void pbkdf2_hash(const char *pw, char *out, size_t size)
{
    const unsigned char salt[] = "0123456789abcdef";
    unsigned char dk[32], b64s[64], b64h[64];
    assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, 16, 1000, EVP_sha256(), 32, dk),
                     1);
    int ns = EVP_EncodeBlock(b64s, salt, 16), nh = EVP_EncodeBlock(b64h, dk, 32);
    while (ns && b64s[ns - 1] == '=')
        b64s[--ns] = 0;
    while (nh && b64h[nh - 1] == '=')
        b64h[--nh] = 0;
    snprintf(out, size, "$pbkdf2-sha256$i=1000$%s$%s", b64s, b64h);
}

static void test_upgrade_on_login(void **state)
{
    (void)state;
    exh_error err;
    char hash[256];
    pbkdf2_hash("legacy", hash, sizeof(hash));
    assert_int_equal(exh_hash_verify(hash, "legacy", 6), EXH_VERIFY_OK);
    exh_new_user old = {.name = "dave", .hash = hash};
    assert_int_equal(exh_store_add_user(store, &old, &err), EXH_OK);
    exh_auth_result r = login(NULL, "dave", "d", "wrong");
    assert_false(r.rehashed); /* a failed login changes nothing */
    exh_auth_result_clear(&r);
    r = login(NULL, "dave", "d", "legacy");
    assert_int_equal(r.decision, EXH_ALLOW);
    assert_true(r.rehashed);
    exh_auth_result_clear(&r);
    exh_user u;
    assert_int_equal(exh_store_get_user(store, "dave", &u, &err), EXH_OK);
    assert_int_equal(strncmp(u.hash, "$argon2id$", 10), 0);
    exh_user_clear(&u);
    r = login(NULL, "dave", "d", "legacy");
    assert_int_equal(r.decision, EXH_ALLOW);
    assert_false(r.rehashed);
    exh_auth_result_clear(&r);

    /* with a cache: the login that upgrades leaves an entry (and a digest)
     * for the new hash, so the next login is a cache hit, not a full check */
    pbkdf2_hash("legacy2", hash, sizeof(hash));
    exh_new_user old2 = {.name = "fred", .hash = hash};
    assert_int_equal(exh_store_add_user(store, &old2, &err), EXH_OK);
    exh_auth_cache *c = exh_auth_cache_new(60, 10);
    r = login(c, "fred", "f", "legacy2");
    assert_true(r.rehashed);
    assert_true(r.digest.set);
    exh_auth_digest d = r.digest;
    exh_auth_result_clear(&r);
    EXPECT(login(c, "fred", "f", "legacy2"), EXH_ALLOW, EXH_AUTH_OK_CACHED);
    exh_auth_request rq2 = {.username = "fred",
                            .username_len = 4,
                            .clientid = "f",
                            .clientid_len = 1,
                            .password = "legacy2",
                            .password_len = 7,
                            .check_password = true,
                            .verified = &d};
    assert_int_equal(exh_authenticate(store, c, policy, ctx, &rq2, &r, &err), EXH_OK);
    assert_true(r.from_digest); /* the digest names the upgraded hash */
    exh_auth_result_clear(&r);
    exh_auth_cache_free(c);

    /* with upgrades off, the old hash stays */
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.upgrade_on_login = false;
    exh_store *s2;
    assert_int_equal(exh_store_open(path, &o, &s2, &err), EXH_OK);
    pbkdf2_hash("keep", hash, sizeof(hash));
    exh_new_user keep = {.name = "erin", .hash = hash};
    assert_int_equal(exh_store_add_user(s2, &keep, &err), EXH_OK);
    exh_auth_request rq = {.username = "erin",
                           .username_len = 4,
                           .clientid = "e",
                           .clientid_len = 1,
                           .password = "keep",
                           .password_len = 4,
                           .check_password = true};
    assert_int_equal(exh_authenticate(s2, NULL, policy, ctx, &rq, &r, &err), EXH_OK);
    assert_int_equal(r.decision, EXH_ALLOW);
    assert_false(r.rehashed);
    exh_auth_result_clear(&r);
    assert_int_equal(exh_store_get_user(s2, "erin", &u, &err), EXH_OK);
    assert_string_equal(u.hash, hash);
    exh_user_clear(&u);
    exh_store_close(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_each_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_rules_and_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_hash, setup, teardown),
        cmocka_unit_test(test_reason_texts),
        cmocka_unit_test_setup_teardown(test_store_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_library_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_user_dummy_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_groups_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_hits_expires_and_invalidates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clientid_pattern_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clientid_pattern_cache_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_on_login, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
