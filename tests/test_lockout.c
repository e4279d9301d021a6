/*
 * test_lockout.c -- lock-outs through the service layer (service/lockout.c
 * via svc_login_check), on a real SQLite store in a temporary directory:
 * a guessing attacker costs a handful of hashes, a locked name or address
 * is refused whatever the password and whether or not the name exists,
 * superusers included; the back-off ends and grows; a success resets the
 * user's count; two services on one store (two processes) share it all.
 * Time moves by the service's test hook, never by sleeping.  And the
 * settings: good values parsed, bad ones refused naming the setting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "service_int.h"

static char dir[64], db[128], pol[128];

static void add(exh_store *s, const char *name, const char *pw, bool superuser)
{
    exh_new_user u = {
        .name = name, .password = pw, .password_len = strlen(pw), .superuser = superuser};
    exh_error err;
    if (exh_store_add_user(s, &u, &err)) fail_msg("add %s: %s", name, err.message);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/exh-lockout-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(db, sizeof(db), "%s/s.db", dir);
    snprintf(pol, sizeof(pol), "%s/p.policy", dir);
    FILE *f = fopen(pol, "w");
    if (!f) return -1;
    fputs("default deny\n", f);
    fclose(f);
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 8; /* cheap hashes: the test counts them, it does not time them */
    o.hash.t_cost = 1;
    exh_store *s;
    exh_error err;
    if (exh_store_open(db, &o, &s, &err)) fail_msg("open: %s", err.message);
    add(s, "alice", "alice-pw", false);
    add(s, "bob", "bob-pw", false);
    add(s, "carol", "carol-pw", false);
    add(s, "root", "root-pw", true);
    exh_store_close(s);
    atomic_store(&svc_lockout_skew_ms, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

typedef struct front {
    svc *s;
    svc_conn *c;
} front;

/* A front end on the store: 10 failures in 300 s lock for 60 s, up to an
 * hour (the defaults). */
static front start(bool unknown_ignore, uint32_t cache_ttl)
{
    svc_config cfg;
    svc_config_defaults(&cfg, SVC_FOR_GRPC);
    snprintf(cfg.db, sizeof(cfg.db), "%s", db);
    snprintf(cfg.policy, sizeof(cfg.policy), "%s", pol);
    cfg.hash.m_kib = 8;
    cfg.hash.t_cost = 1;
    cfg.cache_ttl = cache_ttl;
    cfg.unknown_ignore = unknown_ignore;
    front f = {svc_new(&cfg), NULL};
    assert_non_null(f.s);
    assert_non_null(f.c = svc_conn_new(f.s));
    return f;
}

static void stop(front *f)
{
    svc_conn_free(f->c);
    svc_free(f->s);
}

typedef struct outcome {
    svc_answer a;
    exh_auth_reason reason;
    bool hashed;
    svc_client_state state;
} outcome;

/* One login of user (NULL: anonymous) with pw from peer ("": unknown). */
static outcome login_v(front *f, const char *user, const char *pw, const char *peer,
                       const exh_auth_digest *verified, exh_auth_digest *digest)
{
    exh_auth_request rq = {.username = user,
                           .username_len = user ? strlen(user) : 0,
                           .clientid = "cid",
                           .clientid_len = 3,
                           .password = pw,
                           .password_len = pw ? strlen(pw) : 0,
                           .check_password = true,
                           .verified = verified};
    if (*peer) assert_true(exh_addr_parse(peer, strlen(peer), &rq.peerhost));
    svc_grant g;
    outcome o;
    o.a = svc_login_check(f->c, &rq, &g);
    o.reason = g.reason;
    o.hashed = g.hashed;
    o.state = g.state;
    if (digest) *digest = g.digest;
    svc_grant_clear(&g);
    return o;
}

static outcome login(front *f, const char *user, const char *pw, const char *peer)
{
    return login_v(f, user, pw, peer, NULL, NULL);
}

static void assert_locked_out(outcome o)
{
    assert_int_equal(o.a, SVC_DENY);
    assert_int_equal(o.reason, EXH_AUTH_LOCKED_OUT);
    assert_false(o.hashed);
    assert_int_equal(o.state, SVC_CLIENT_REFUSED);
}

/* The store's row for a user name, read beside the service. */
static exh_lockout_key user_row(const char *user)
{
    exh_store *s;
    exh_error err;
    if (exh_store_open(db, NULL, &s, &err)) fail_msg("open: %s", err.message);
    exh_lockout_state st;
    int64_t now = (int64_t)time(NULL) * 1000 + atomic_load(&svc_lockout_skew_ms);
    if (exh_store_lockout_state(s, user, strlen(user), NULL, now, &st, &err))
        fail_msg("state: %s", err.message);
    exh_store_close(s);
    return st.user;
}

static void advance(int64_t ms)
{
    atomic_fetch_add(&svc_lockout_skew_ms, ms);
}

/* 10,000 guesses at alice's password cost at most lockout_failures + 2
 * hashes; then her right password is refused unchecked. */
static void test_guessing_costs_few_hashes(void **state)
{
    (void)state;
    front f = start(false, 300);
    unsigned hashes = 0, allowed = 0;
    char pw[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(pw, sizeof(pw), "guess-%d", i);
        outcome o = login(&f, "alice", pw, "192.0.2.10");
        hashes += o.hashed;
        allowed += o.a != SVC_DENY;
    }
    assert_int_equal(allowed, 0);
    assert_true(hashes >= 10); /* the ten that locked her were checked */
    assert_true(hashes <= 10 + 2);
    assert_locked_out(login(&f, "alice", "alice-pw", "192.0.2.10"));
    /* the name is locked from any address, the address for any name */
    assert_locked_out(login(&f, "alice", "alice-pw", "203.0.113.5"));
    assert_locked_out(login(&f, "bob", "bob-pw", "192.0.2.10"));
    assert_int_equal(login(&f, "bob", "bob-pw", "203.0.113.5").a, SVC_ALLOW);
    assert_int_equal(user_row("alice").strikes, 1);
    stop(&f);
}

/* A locked unknown name gets exactly what a locked stored one gets; with
 * unknown_user = ignore a locked address still denies an unknown name
 * (no "no opinion"), and unknown names do not count. */
static void test_unknown_names(void **state)
{
    (void)state;
    front f = start(false, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(login(&f, "ghost", "x", "").reason, EXH_AUTH_UNKNOWN_USER);
        assert_int_equal(login(&f, "alice", "x", "").reason, EXH_AUTH_BAD_PASSWORD);
    }
    outcome u = login(&f, "ghost", "x", ""), k = login(&f, "alice", "alice-pw", "");
    assert_locked_out(u);
    assert_locked_out(k);
    assert_int_equal(u.a, k.a); /* the same answer, whether the name exists or not */
    assert_int_equal(u.reason, k.reason);
    assert_int_equal(u.hashed, k.hashed);
    assert_int_equal(u.state, k.state);
    stop(&f);

    front ig = start(true, 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(login(&ig, "elsewhere", "x", "198.51.100.20").a, SVC_IGNORE);
    assert_false(user_row("elsewhere").exists);
    for (int i = 0; i < 10; i++)
        assert_int_equal(login(&ig, "bob", "x", "198.51.100.20").a, SVC_DENY);
    assert_locked_out(login(&ig, "elsewhere", "x", "198.51.100.20"));
    assert_locked_out(login(&ig, "bob", "bob-pw", "198.51.100.20"));
    stop(&ig);
}

/* Superusers are not exempt; anonymous logins have no user key. */
static void test_superuser_not_exempt(void **state)
{
    (void)state;
    front f = start(false, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(login(&f, "root", "nope", "").reason, EXH_AUTH_BAD_PASSWORD);
    assert_locked_out(login(&f, "root", "root-pw", ""));
    /* an anonymous login: no key (the connect rules refuse it here) */
    assert_int_equal(login(&f, NULL, NULL, "").reason, EXH_AUTH_ANONYMOUS);
    stop(&f);
}

/* Failures from one address under many names lock the address: a second
 * name with its right password is refused there, not elsewhere.  An
 * IPv4-mapped IPv6 peer is the IPv4 address; loopback is never locked. */
static void test_address_lockout(void **state)
{
    (void)state;
    front f = start(false, 0);
    const char *names[] = {"alice", "bob", "nobody-1", "nobody-2", "root"};
    for (int i = 0; i < 10; i++)
        assert_int_equal(login(&f, names[i % 5], "wrong", "198.51.100.7").a, SVC_DENY);
    assert_locked_out(login(&f, "carol", "carol-pw", "198.51.100.7"));
    assert_locked_out(login(&f, "carol", "carol-pw", "::ffff:198.51.100.7"));
    assert_int_equal(login(&f, "carol", "carol-pw", "198.51.100.8").a, SVC_ALLOW);
    assert_false(user_row("alice").locked); /* two failures each */
    for (int i = 0; i < 30; i++)
        login(&f, names[i % 5], "wrong", "127.0.0.1");
    for (int i = 0; i < 30; i++)
        login(&f, names[i % 5], "wrong", "::1");
    assert_int_equal(login(&f, "carol", "carol-pw", "127.0.0.1").a, SVC_ALLOW);
    assert_int_equal(login(&f, "carol", "carol-pw", "::1").a, SVC_ALLOW);
    stop(&f);
}

/* The lock-out ends after the back-off, the next one lasts twice as long,
 * and a success (cached or not) resets the user's count and strikes. */
static void test_backoff_and_reset(void **state)
{
    (void)state;
    front f = start(false, 300);
    assert_int_equal(login(&f, "alice", "alice-pw", "").reason, EXH_AUTH_OK);
    for (int i = 0; i < 10; i++)
        login(&f, "alice", "wrong", "");
    assert_locked_out(login(&f, "alice", "alice-pw", ""));
    advance(59000);
    assert_locked_out(login(&f, "alice", "alice-pw", ""));
    advance(1001);
    /* open again; ten more failures lock her for two minutes */
    for (int i = 0; i < 10; i++)
        assert_int_equal(login(&f, "alice", "wrong", "").reason, EXH_AUTH_BAD_PASSWORD);
    assert_int_equal(user_row("alice").strikes, 2);
    advance(61000);
    assert_locked_out(login(&f, "alice", "alice-pw", ""));
    advance(60000);
    /* her password (cached since the first login) works and resets */
    outcome o = login(&f, "alice", "alice-pw", "");
    assert_int_equal(o.a, SVC_ALLOW);
    assert_int_equal(o.reason, EXH_AUTH_OK_CACHED);
    assert_false(user_row("alice").exists);
    for (int i = 0; i < 9; i++)
        login(&f, "alice", "wrong", "");
    assert_int_equal(login(&f, "alice", "alice-pw", "").a, SVC_ALLOW); /* count restarted */
    /* a failure count the success ends, not only a lock-out */
    for (int i = 0; i < 9; i++)
        login(&f, "alice", "wrong", "");
    assert_int_equal(user_row("alice").failures, 9);
    assert_int_equal(login(&f, "alice", "alice-pw", "").a, SVC_ALLOW);
    assert_false(user_row("alice").exists);
    stop(&f);
}

/* A connection already in, asked about again (its verified login given:
 * Mosquitto's reload), is neither refused nor counted. */
static void test_verified_connection_kept(void **state)
{
    (void)state;
    front f = start(false, 300);
    exh_auth_digest d;
    assert_int_equal(login_v(&f, "alice", "alice-pw", "", NULL, &d).a, SVC_ALLOW);
    assert_true(d.set);
    for (int i = 0; i < 10; i++)
        login(&f, "alice", "wrong", "");
    assert_locked_out(login(&f, "alice", "alice-pw", ""));
    assert_int_equal(login_v(&f, "alice", "alice-pw", "", &d, NULL).a, SVC_ALLOW);
    assert_true(user_row("alice").locked);
    stop(&f);
}

/* Two services on one store file (two processes, or two front ends):
 * each sees the other's failures and lock-outs. */
static void test_shared_between_front_ends(void **state)
{
    (void)state;
    front a = start(false, 0), b = start(false, 0);
    for (int i = 0; i < 5; i++) {
        login(&a, "bob", "wrong", "192.0.2.50");
        login(&b, "bob", "wrong", "192.0.2.51");
    }
    assert_locked_out(login(&a, "bob", "bob-pw", "192.0.2.52"));
    assert_locked_out(login(&b, "bob", "bob-pw", "192.0.2.53"));
    advance(60001);
    assert_int_equal(login(&b, "bob", "bob-pw", "").a, SVC_ALLOW);
    assert_false(user_row("bob").exists); /* b's success reset what a counted */
    stop(&a);
    stop(&b);
}

/* lockout_failures 0: no reads, no writes, no lock-outs. */
static void test_off(void **state)
{
    (void)state;
    svc_config cfg;
    svc_config_defaults(&cfg, SVC_FOR_DRIVER);
    char msg[256];
    assert_int_equal(svc_config_set(&cfg, "lockout_failures", "0", msg, sizeof(msg)), 0);
    snprintf(cfg.db, sizeof(cfg.db), "%s", db);
    snprintf(cfg.policy, sizeof(cfg.policy), "%s", pol);
    cfg.hash.m_kib = 8;
    cfg.hash.t_cost = 1;
    front f = {svc_new(&cfg), NULL};
    assert_non_null(f.c = svc_conn_new(f.s));
    for (int i = 0; i < 30; i++)
        login(&f, "alice", "wrong", "192.0.2.1");
    assert_int_equal(login(&f, "alice", "alice-pw", "192.0.2.1").a, SVC_ALLOW);
    assert_false(user_row("alice").exists);
    stop(&f);
}

/* The settings: every front end's, as a file line or a flag. */
static void test_settings(void **state)
{
    (void)state;
    svc_config c;
    svc_config_defaults(&c, SVC_FOR_PLUGIN);
    assert_int_equal(c.lockout_failures, 10);
    assert_int_equal(c.lockout_window_ms, 300000);
    assert_int_equal(c.lockout_backoff_ms, 60000);
    assert_int_equal(c.lockout_backoff_max_ms, 3600000);
    char msg[256];
    static const struct {
        const char *v;
        int64_t ms;
    } good[] = {{"300", 300000}, {"200ms", 200},  {"30s", 30000},
                {"5m", 300000},  {"1h", 3600000}, {"720h", 2592000000LL}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(svc_config_set(&c, "lockout_window", good[i].v, msg, sizeof(msg)), 0);
        assert_int_equal(c.lockout_window_ms, good[i].ms);
        assert_int_equal(svc_config_set(&c, "lockout-backoff", good[i].v, msg, sizeof(msg)), 0);
        assert_int_equal(c.lockout_backoff_ms, good[i].ms);
        assert_int_equal(svc_config_set(&c, "lockout_backoff_max", good[i].v, msg, sizeof(msg)), 0);
        assert_int_equal(c.lockout_backoff_max_ms, good[i].ms);
    }
    assert_int_equal(svc_config_set(&c, "lockout_failures", "1000000", msg, sizeof(msg)), 0);
    assert_int_equal(c.lockout_failures, 1000000);
    static const char *const bad_time[] = {
        "",    "0",  "0ms", "-5",   "5d",  "1.5s", "s",
        "ms ", " 5", "+5",  "721h", "1e3", "5 s",  "99999999999999999999"};
    static const char *const keys[] = {"lockout_window", "lockout_backoff", "lockout_backoff_max"};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < sizeof(bad_time) / sizeof(bad_time[0]); i++) {
            msg[0] = '\0';
            if (!svc_config_set(&c, keys[k], bad_time[i], msg, sizeof(msg)))
                fail_msg("%s = '%s' accepted", keys[k], bad_time[i]);
            assert_non_null(strstr(msg, keys[k]));
        }
    static const char *const bad_n[] = {"", "-1", "x", "10x", "1000001", "0x10", "1e3"};
    for (size_t i = 0; i < sizeof(bad_n) / sizeof(bad_n[0]); i++) {
        msg[0] = '\0';
        if (!svc_config_set(&c, "lockout_failures", bad_n[i], msg, sizeof(msg)))
            fail_msg("lockout_failures = '%s' accepted", bad_n[i]);
        assert_non_null(strstr(msg, "lockout_failures"));
    }
}

int main(void)
{
    svc_log_init("test_lockout", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_guessing_costs_few_hashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_superuser_not_exempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_lockout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verified_connection_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_between_front_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests_name("lock-outs through the service", tests, NULL, NULL);
}
