/*
 * test_clients.c -- service/clients.c, the client table: what a login
 * leaves for the ACL checks that follow, with client ids as keys
 * (exhook-driver, exhook-grpc) and with connections as keys (the Mosquitto
 * plugin), and that a lookup never returns holding the table's lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "clients.h"

static char **groups(const char *g)
{
    char **v = malloc(sizeof(*v));
    v[0] = strdup(g);
    return v;
}

static int state_of(const svc_client_view *v, void *arg)
{
    (void)arg;
    return (int)v->state;
}

static int lookup(svc_clients *t, const char *key, const char *user)
{
    return svc_clients_with(t, key, strlen(key), user, user ? strlen(user) : 0, state_of, NULL);
}

static void login(svc_clients *t, const char *key, const char *user, svc_client_state st)
{
    uint64_t gen = svc_clients_begin(t, key, strlen(key), "cid", 3, NULL, user, strlen(user));
    svc_grant g = {.state = st};
    if (st == SVC_CLIENT_KNOWN) {
        g.groups = groups("staff");
        g.ngroups = 1;
        g.digest.set = true;
    }
    svc_clients_end(t, key, strlen(key), gen, "cid", 3, NULL, user, strlen(user), &g);
    assert_null(g.groups); /* taken, whatever happened */
}

/* Client ids as keys: a failed login on a client id takes nothing from a
 * verified one there, and another name on it is denied. */
static void test_by_client_id(void **state)
{
    (void)state;
    svc_clients *t = svc_clients_new(false, false, false);
    assert_int_equal(lookup(t, "c1", "alice"), SVC_CLIENT_NONE);
    login(t, "c1", "alice", SVC_CLIENT_KNOWN);
    assert_int_equal(lookup(t, "c1", "alice"), SVC_CLIENT_KNOWN);
    assert_int_equal(lookup(t, "c1", "mallory"), SVC_CLIENT_OTHER_USER);
    login(t, "c1", "alice", SVC_CLIENT_REFUSED); /* a wrong password elsewhere */
    assert_int_equal(lookup(t, "c1", "alice"), SVC_CLIENT_KNOWN);
    /* A refused login stays refused after its disconnect. */
    login(t, "c2", "bob", SVC_CLIENT_REFUSED);
    svc_clients_disconnected(t, "c2", 2, "bob", 3);
    assert_int_equal(lookup(t, "c2", "bob"), SVC_CLIENT_REFUSED);
    /* A store lookup is remembered for a key never seen. */
    svc_clients_remember(t, "c3", 2, "carol", 5, false, groups("g"), 1);
    assert_int_equal(lookup(t, "c3", "carol"), SVC_CLIENT_KNOWN);
    svc_clients_free(t);
}

/* Connections as keys: a refusal on the same connection (the broker asking
 * again) ends its rights; a disconnect forgets everything of the key, a
 * refused record included, since the next connection may get the same
 * address; a store lookup is never remembered. */
static void test_by_connection(void **state)
{
    (void)state;
    svc_clients *t = svc_clients_new(true, true, true);
    login(t, "conn", "alice", SVC_CLIENT_KNOWN);
    exh_auth_digest d;
    assert_true(svc_clients_digest(t, "conn", 4, "alice", 5, &d));
    login(t, "conn", "alice", SVC_CLIENT_REFUSED);
    assert_int_equal(lookup(t, "conn", "alice"), SVC_CLIENT_REFUSED);
    assert_false(svc_clients_digest(t, "conn", 4, "alice", 5, &d));
    svc_clients_disconnected(t, "conn", 4, "alice", 5);
    assert_int_equal(lookup(t, "conn", "alice"), SVC_CLIENT_NONE);
    assert_false(svc_clients_seen(t, "conn", 4));
    svc_clients_remember(t, "gone", 4, "bob", 3, true, groups("g"), 1);
    assert_int_equal(lookup(t, "gone", "bob"), SVC_CLIENT_NONE);
    svc_clients_free(t);
}

static svc_visit revoke_bob(const svc_client_info *c, svc_refresh *out, void *arg)
{
    (void)out;
    ++*(int *)arg;
    return c->ulen == 3 && !memcmp(c->user, "bob", 3) ? SVC_VISIT_REVOKE : SVC_VISIT_KEEP;
}

/* Revalidation: a revoked login grants nothing from then on; the others
 * keep theirs.  And every call returned with the lock released: a writer
 * after each lookup would deadlock otherwise. */
static void test_revoke_and_lock(void **state)
{
    (void)state;
    svc_clients *t = svc_clients_new(true, false, false);
    login(t, "k1", "alice", SVC_CLIENT_KNOWN);
    login(t, "k2", "bob", SVC_CLIENT_KNOWN);
    int visited = 0;
    svc_clients_each_known(t, NULL, revoke_bob, &visited);
    assert_int_equal(visited, 2);
    assert_int_equal(lookup(t, "k2", "bob"), SVC_CLIENT_REFUSED);
    assert_int_equal(lookup(t, "k1", "alice"), SVC_CLIENT_KNOWN);
    visited = 0;
    svc_clients_each_known(t, NULL, revoke_bob, &visited); /* write lock: free again */
    assert_int_equal(visited, 1);                          /* the revoked one is not known */
    svc_clients_free(t);
}

/* fn runs with no lock held (it reads the store): a login may even end
 * meanwhile, and then keeps what it read itself -- the walk's verdict,
 * made from an older read, does not overwrite it. */
static svc_visit relogin_bob(const svc_client_info *c, svc_refresh *out, void *arg)
{
    (void)out;
    if (c->ulen != 3 || memcmp(c->user, "bob", 3)) return SVC_VISIT_KEEP;
    login(arg, "k2", "bob", SVC_CLIENT_KNOWN); /* takes the write lock */
    return SVC_VISIT_REVOKE;
}

static void test_walk_without_lock(void **state)
{
    (void)state;
    svc_clients *t = svc_clients_new(false, false, false);
    login(t, "k1", "alice", SVC_CLIENT_KNOWN);
    login(t, "k2", "bob", SVC_CLIENT_KNOWN);
    svc_clients_each_known(t, NULL, relogin_bob, t);
    assert_int_equal(lookup(t, "k2", "bob"), SVC_CLIENT_KNOWN);
    int visited = 0;
    svc_clients_each_known(t, NULL, revoke_bob, &visited);
    assert_int_equal(lookup(t, "k2", "bob"), SVC_CLIENT_REFUSED);
    svc_clients_free(t);
}

static int peer_family_and_byte(const svc_client_view *v, void *arg)
{
    (void)arg;
    return v->peer ? v->peer->family * 1000 + v->peer->bytes[3] : 0;
}

/* A takeover from another address by the same user: the record keeps the
 * verified login's rights while the new login runs, and when it ends the
 * record holds the new login's address, not the old one's (a rule on the
 * address must see where the client is now). */
static void test_takeover_address(void **state)
{
    (void)state;
    svc_clients *t = svc_clients_new(false, false, false);
    exh_addr a, b;
    assert_true(exh_addr_parse("10.0.0.1", 8, &a));
    assert_true(exh_addr_parse("10.0.0.2", 8, &b));
    for (int i = 0; i < 2; i++) {
        const exh_addr *peer = i ? &b : &a;
        uint64_t gen = svc_clients_begin(t, "c1", 2, "c1", 2, peer, "alice", 5);
        svc_grant g = {.state = SVC_CLIENT_KNOWN};
        svc_clients_end(t, "c1", 2, gen, "c1", 2, peer, "alice", 5, &g);
    }
    assert_int_equal(svc_clients_with(t, "c1", 2, "alice", 5, peer_family_and_byte, NULL),
                     4 * 1000 + 2);
    svc_clients_free(t);
}

/* The decision cache (the plugin's hot path): a miss reserves a way that
 * the lookup after it fills; a hit needs the same user (a C string: a
 * record whose name holds a NUL is never one), the same generation, action,
 * delivery flag, QoS, retain flag and topic; what cannot be kept exactly
 * (topics over SVC_DC_TOPIC bytes, QoS or retain out of range, no policy
 * yet) is never kept. */
static int fill_allow(const svc_client_view *v, void *arg)
{
    if (!v->slot) return 0;
    exh_result res = {.decision = EXH_ALLOW, .basis = EXH_BY_RULE, .rule = 7};
    svc_decision_fill(v->slot, *(uint32_t *)arg, 1, &res);
    return 1;
}

static int probe(svc_clients *t, const char *key, const char *user, const char *user_rec,
                 size_t user_rec_len, uint32_t gen, svc_probe q)
{
    q.username = user;
    int a = svc_clients_cached(t, key, 8, gen, &q, NULL, NULL);
    if (a >= 0) return a;
    /* the evaluation that follows a miss: it finds the way reserved */
    return svc_clients_with(t, key, 8, user_rec, user_rec_len, fill_allow, &gen) ? -1 : -2;
}

static void test_decision_cache(void **state)
{
    (void)state;
    svc_clients *t = svc_clients_new(true, true, true);
    const char key[8] = "conn-001";
    uint64_t g = svc_clients_begin(t, key, 8, "cid", 3, NULL, "alice", 5);
    svc_grant gr = {.state = SVC_CLIENT_KNOWN};
    svc_clients_end(t, key, 8, g, "cid", 3, NULL, "alice", 5, &gr);
    svc_probe pub = {.topic = "a/b", .action = EXH_PUBLISH, .qos = 1, .retain = 0};
    assert_int_equal(probe(t, key, "alice", "alice", 5, 1, pub), -1); /* miss, filled */
    assert_int_equal(probe(t, key, "alice", "alice", 5, 1, pub), 1);  /* hit */
    assert_int_equal(probe(t, key, NULL, NULL, 0, 1, pub), -2);       /* another user: no record */
    assert_int_equal(probe(t, key, "alicex", "alicex", 6, 1, pub), -2);
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, pub), -1); /* a reload */
    assert_int_equal(probe(t, key, "alice", "alice", 5, 0, pub), -2); /* no policy: not kept */
    svc_probe q = pub;
    q.qos = 2;
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -1);
    q = pub;
    q.retain = 1;
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -1);
    q = pub;
    q.action = EXH_SUBSCRIBE;
    q.delivery = true;
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -1);
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), 1);
    q.qos = 0; /* a delivery's QoS is the message's: not part of it */
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), 1);
    q = pub;
    q.qos = 3;
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -2);
    q.qos = 1;
    q.retain = 2;
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -2);
    /* The longest topic kept, and one byte more. */
    char topic[SVC_DC_TOPIC + 2];
    memset(topic, 'x', sizeof(topic) - 1);
    topic[SVC_DC_TOPIC] = '\0';
    q = pub;
    q.topic = topic;
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -1);
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), 1);
    topic[SVC_DC_TOPIC] = 'x';
    topic[SVC_DC_TOPIC + 1] = '\0';
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -2);
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), -2);
    topic[SVC_DC_TOPIC] = '\0'; /* the kept one is still there */
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, q), 1);
    svc_clients_disconnected(t, key, 8, "alice", 5);
    assert_int_equal(probe(t, key, "alice", "alice", 5, 2, pub), -2);

    /* A name with a NUL inside: "al" is not "al\0ice". */
    g = svc_clients_begin(t, key, 8, "cid", 3, NULL, "al\0ice", 6);
    gr = (svc_grant){.state = SVC_CLIENT_KNOWN};
    svc_clients_end(t, key, 8, g, "cid", 3, NULL, "al\0ice", 6, &gr);
    assert_int_equal(probe(t, key, "al", "al\0ice", 6, 2, pub), -2);
    assert_int_equal(probe(t, key, "al", "al\0ice", 6, 2, pub), -2);
    svc_clients_free(t);
}

/* A kept deny is handed to on_deny with the record (its client id, peer,
 * groups) and how it was decided; a kept allow is not. */
typedef struct seen_deny {
    int calls;
    char cid[16];
    int peer_family, ngroups, basis;
    uint32_t rule;
} seen_deny;

static void on_deny(const svc_client_view *v, const svc_decision *d, const svc_probe *q, void *arg)
{
    assert_true(!strcmp(q->topic, "x/y") || !strcmp(q->topic, "x/i"));
    seen_deny *sd = arg;
    sd->calls++;
    snprintf(sd->cid, sizeof(sd->cid), "%.*s", (int)v->cidlen, v->cid ? v->cid : "");
    sd->peer_family = v->peer ? v->peer->family : 0;
    sd->ngroups = (int)v->ngroups;
    sd->basis = d->basis;
    sd->rule = d->rule;
}

static int fill_deny(const svc_client_view *v, void *arg)
{
    if (!v->slot) return -1;
    exh_result res = {.decision = EXH_DENY, .basis = EXH_BY_RULE, .rule = 41};
    svc_decision_fill(v->slot, *(uint32_t *)arg, 0, &res);
    return 0;
}

static int fill_ignore(const svc_client_view *v, void *arg)
{
    if (!v->slot) return -1;
    exh_result res = {.decision = EXH_IGNORE, .basis = EXH_BY_DEFAULT};
    svc_decision_fill(v->slot, *(uint32_t *)arg, 2, &res);
    return 2;
}

static void test_kept_deny(void **state)
{
    (void)state;
    svc_clients *t = svc_clients_new(true, true, true);
    const char key[8] = "conn-002";
    exh_addr peer;
    assert_true(exh_addr_parse("192.0.2.7", 9, &peer));
    uint64_t g = svc_clients_begin(t, key, 8, "dev-7", 5, &peer, "bob", 3);
    char **groups = malloc(sizeof(char *));
    assert_non_null(groups);
    groups[0] = strdup("sensors");
    svc_grant gr = {.state = SVC_CLIENT_KNOWN, .groups = groups, .ngroups = 1};
    svc_clients_end(t, key, 8, g, "dev-7", 5, &peer, "bob", 3, &gr);
    uint32_t gen = 3;
    svc_probe q = {.username = "bob", .topic = "x/y", .action = EXH_PUBLISH, .qos = 0, .retain = 0};
    seen_deny sd = {0};
    assert_int_equal(svc_clients_cached(t, key, 8, gen, &q, on_deny, &sd), -1);
    assert_int_equal(svc_clients_with(t, key, 8, "bob", 3, fill_deny, &gen), 0);
    assert_int_equal(sd.calls, 0);
    assert_int_equal(svc_clients_cached(t, key, 8, gen, &q, on_deny, &sd), 0);
    assert_int_equal(sd.calls, 1);
    assert_string_equal(sd.cid, "dev-7");
    assert_int_equal(sd.peer_family, 4);
    assert_int_equal(sd.ngroups, 1);
    assert_int_equal(sd.basis, EXH_BY_RULE);
    assert_int_equal(sd.rule, 41);
    /* without on_deny: answered, nothing called */
    assert_int_equal(svc_clients_cached(t, key, 8, gen, &q, NULL, NULL), 0);
    assert_int_equal(sd.calls, 1);
    /* a kept ignore is handed over too (the audit log writes it) */
    q.topic = "x/i";
    assert_int_equal(svc_clients_cached(t, key, 8, gen, &q, on_deny, &sd), -1);
    assert_int_equal(svc_clients_with(t, key, 8, "bob", 3, fill_ignore, &gen), 2);
    assert_int_equal(svc_clients_cached(t, key, 8, gen, &q, on_deny, &sd), 2);
    assert_int_equal(sd.calls, 2);
    assert_int_equal(sd.basis, EXH_BY_DEFAULT);
    /* a kept allow calls nothing */
    q.topic = "x/z";
    assert_int_equal(svc_clients_cached(t, key, 8, gen, &q, on_deny, &sd), -1);
    assert_int_equal(svc_clients_with(t, key, 8, "bob", 3, fill_allow, &gen), 1);
    assert_int_equal(svc_clients_cached(t, key, 8, gen, &q, on_deny, &sd), 1);
    assert_int_equal(sd.calls, 2);
    svc_clients_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_client_id),      cmocka_unit_test(test_by_connection),
        cmocka_unit_test(test_revoke_and_lock),   cmocka_unit_test(test_takeover_address),
        cmocka_unit_test(test_decision_cache),    cmocka_unit_test(test_kept_deny),
        cmocka_unit_test(test_walk_without_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
