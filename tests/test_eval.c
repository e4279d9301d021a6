/*
 * test_eval.c -- decisions: first match in policy order, default, connect
 * semantics, placeholders and their safety, regex anchoring, CIDR, subset
 * semantics through rules, unknown facts failing closed, and the index
 * agreeing with a plain scan of every rule on random policies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/eval.h"
#include "exhook/policy.h"
#include "exhook/topic.h"
#include "rule.h"

static exh_policy *compile(const char *text)
{
    exh_policy *p = NULL;
    exh_error err;
    if (exh_policy_parse("e.policy", text, strlen(text), &p, &err) != EXH_OK) {
        char buf[2048];
        exh_error_format(&err, buf, sizeof(buf));
        fail_msg("policy does not compile:\n%s", buf);
    }
    return p;
}

/* A request in a line: action, user ("-" = anonymous), clientid, peer
 * ("-" = unknown), topic, qos (-1 unknown), retain (-1 unknown), groups
 * (comma-separated or "-"), superuser. */
typedef struct rq {
    const char *action, *user, *cid, *peer, *topic;
    int qos, retain;
    const char *groups;
    int super;
    const char *expect; /* "allow", "deny", "ignore" */
    int line;           /* deciding rule's line, 0 = not a rule */
} rq;

static void build(const rq *c, exh_request *r, exh_str *groups, char *gbuf)
{
    exh_action a = !strcmp(c->action, "publish")     ? EXH_PUBLISH
                   : !strcmp(c->action, "subscribe") ? EXH_SUBSCRIBE
                                                     : EXH_CONNECT;
    exh_request_init(r, a);
    if (strcmp(c->user, "-")) {
        r->username = c->user;
        r->username_len = strlen(c->user);
    }
    r->clientid = c->cid;
    r->clientid_len = strlen(c->cid);
    if (strcmp(c->peer, "-")) assert_true(exh_addr_parse(c->peer, strlen(c->peer), &r->peerhost));
    if (c->topic) {
        r->topic = c->topic;
        r->topic_len = strlen(c->topic);
    }
    r->qos = c->qos;
    r->retain = c->retain;
    r->superuser = c->super;
    r->groups = groups;
    if (strcmp(c->groups, "-")) {
        strcpy(gbuf, c->groups);
        char *save = NULL; /* strtok_r: the concurrent-compile test calls this from threads */
        for (char *tok = strtok_r(gbuf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            groups[r->ngroups++] = (exh_str){tok, strlen(tok)};
    }
}

static void run_table(const char *policy, const rq *cases, size_t n)
{
    exh_policy *p = compile(policy);
    exh_evalctx *ctx = exh_evalctx_new();
    assert_non_null(ctx);
    for (size_t i = 0; i < n; i++) {
        exh_request r;
        exh_str groups[8];
        char gbuf[128];
        build(&cases[i], &r, groups, gbuf);
        exh_result res, lin;
        exh_eval(p, &r, ctx, &res);
        exh_eval_linear(p, &r, ctx, &lin);
        int line = res.basis == EXH_BY_RULE ? (int)exh_policy_rule(p, res.rule)->line : 0;
        if (strcmp(exh_decision_str(res.decision), cases[i].expect) || line != cases[i].line)
            fail_msg("case %zu: %s user=%s cid=%s topic=%s: expected %s by line %d, got %s by "
                     "%s line %d (%s)",
                     i, cases[i].action, cases[i].user, cases[i].cid,
                     cases[i].topic ? cases[i].topic : "-", cases[i].expect, cases[i].line,
                     exh_decision_str(res.decision), exh_basis_str(res.basis), line,
                     res.reason ? res.reason : "");
        assert_int_equal(res.decision, lin.decision);
        assert_int_equal(res.basis, lin.basis);
        if (res.basis == EXH_BY_RULE) assert_int_equal(res.rule, lin.rule);
    }
    exh_evalctx_free(ctx);
    exh_policy_free(p);
}

#define P "publish"
#define S "subscribe"
#define C "connect"

static const char main_policy[] =
    "default deny\n"                                            /* 1 */
    "allow subscribe username \"dashboard\" topic \"$SYS/#\"\n" /* 2 */
    "deny  subscribe topic eq \"#\" eq \"+/#\"\n"               /* 3 */
    "allow all peerhost 127.0.0.0/8 topic \"local/#\"\n"        /* 4 */
    "allow publish clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" topic "
    "\"devices/${serial}/up/#\" qos 0-1 retain false\n"                                   /* 5 */
    "allow subscribe clientid ~ \"dev-.*\" topic \"devices/${clientid}/down/#\"\n"        /* 6 */
    "allow pubsub username ~ \"(?<tenant>[a-z0-9]+):.+\" topic \"tenants/${tenant}/#\"\n" /* 7 */
    "allow subscribe group \"ops\" topic \"alerts/#\" \"$SYS/broker/+/uptime\"\n"         /* 8 */
    "deny connect group \"internal\" not peerhost 10.0.0.0/8\n"                           /* 9 */
    "allow connect anonymous peerhost 127.0.0.1\n"                                        /* 10 */
    "allow pubsub topic \"users/%u/#\" \"by-id/%c\"\n"                                    /* 11 */
    "allow publish topic \"mix/${username}-${clientid}/x\"\n"                             /* 12 */
    "deny publish username \"alice\" topic \"shared/secret\"\n"                           /* 13 */
    "allow publish username \"alice\" topic \"shared/+\"\n"                               /* 14 */
    "allow publish topic \"shared/#\" qos 2\n"                                            /* 15 */
    "deny publish topic \"retained/#\" retain true\n"                                     /* 16 */
    "allow publish topic \"retained/#\"\n"                                                /* 17 */
    "allow subscribe topic \"a/+/c\" \"b/#\"\n"                                           /* 18 */
    "deny subscribe topic \"secret/private/#\"\n"                                         /* 19 */
    "allow subscribe topic \"secret/#\"\n"                                                /* 20 */
    "deny subscribe username ~ \"(?<t>[a-z]+):.+\" topic \"ten/${t}/locked\"\n"           /* 21 */
    "allow subscribe topic \"ten/#\"\n";                                                  /* 22 */

static const rq main_cases[] = {
    /* default and first match */
    {P, "bob", "c1", "-", "nothing/here", 0, 0, "-", 0, "deny", 0},
    {S, "dashboard", "c", "-", "$SYS/broker/load", 0, 0, "-", 0, "allow", 2},
    {S, "dashboard", "c", "-", "#", 0, 0, "-", 0, "deny", 3},
    {S, "dashboard", "c", "-", "+/#", 0, 0, "-", 0, "deny", 3},
    {S, "bob", "c", "-", "$SYS/broker/load", 0, 0, "-", 0, "deny", 0},
    /* peerhost: v4, mapped v6, unknown (allow fails closed) */
    {P, "bob", "c", "127.1.2.3", "local/x", 0, 0, "-", 0, "allow", 4},
    {S, "bob", "c", "::ffff:127.0.0.1", "local/#", 0, 0, "-", 0, "allow", 4},
    {P, "bob", "c", "10.0.0.1", "local/x", 0, 0, "-", 0, "deny", 0},
    {P, "bob", "c", "-", "local/x", 0, 0, "-", 0, "deny", 0},
    /* regex captures, anchoring, options */
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "allow", 5},
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up", 1, 0, "-", 0, "allow", 5},
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3e/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "-", "xdev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "-", "dev-0a1b2c3d9", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 2, 0, "-", 0, "deny", 0},
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 1, "-", 0, "deny", 0},
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", -1, 0, "-", 0, "deny", 0},
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, -1, "-", 0, "deny", 0},
    /* ${clientid} and subset semantics */
    {S, "-", "dev-x", "-", "devices/dev-x/down/#", 0, 0, "-", 0, "allow", 6},
    {S, "-", "dev-x", "-", "devices/dev-x/down/+", 0, 0, "-", 0, "allow", 6},
    {S, "-", "dev-x", "-", "devices/dev-x/down", 0, 0, "-", 0, "allow", 6},
    {S, "-", "dev-x", "-", "devices/+/down/#", 0, 0, "-", 0, "deny", 0},
    {S, "-", "dev-x", "-", "devices/dev-x/#", 0, 0, "-", 0, "deny", 0},
    {S, "-", "dev-x", "-", "$share/g/devices/dev-x/down/a", 0, 0, "-", 0, "allow", 6},
    {S, "-", "dev-x", "-", "$queue/devices/dev-x/down/a", 0, 0, "-", 0, "allow", 6},
    /* placeholder safety: '#', '+', '/' and empty values never widen */
    {S, "-", "dev-#", "-", "devices/dev-#/down/x", 0, 0, "-", 0, "deny", 0},
    {S, "-", "dev-+", "-", "devices/+/down/x", 0, 0, "-", 0, "deny", 0},
    {S, "-", "dev-a/b", "-", "devices/dev-a/b/down/x", 0, 0, "-", 0, "deny", 0},
    {P, "#", "c", "-", "users/#", 0, 0, "-", 0, "deny", 0},
    {S, "+", "c", "-", "users/+/x", 0, 0, "-", 0, "deny", 0},
    {P, "a/b", "c", "-", "users/a/b/x", 0, 0, "-", 0, "deny", 0},
    {P, "", "c", "-", "users//x", 0, 0, "-", 0, "deny", 0},
    {P, "-", "", "-", "by-id/", 0, 0, "-", 0, "deny", 0},
    {P, "bob", "c", "-", "users/bob/x", 0, 0, "-", 0, "allow", 11},
    {S, "bob", "c", "-", "users/bob/#", 0, 0, "-", 0, "allow", 11},
    {P, "bob", "c7", "-", "by-id/c7", 0, 0, "-", 0, "allow", 11},
    {P, "bob", "c7", "-", "mix/bob-c7/x", 0, 0, "-", 0, "allow", 12},
    {P, "bob", "c7", "-", "mix/bob-c8/x", 0, 0, "-", 0, "deny", 0},
    {P, "-", "c7", "-", "mix/-c7/x", 0, 0, "-", 0, "deny", 0},
    /* tenants by capture */
    {P, "acme:joe", "c", "-", "tenants/acme/x", 0, 0, "-", 0, "allow", 7},
    {S, "acme:joe", "c", "-", "tenants/acme/#", 0, 0, "-", 0, "allow", 7},
    {S, "acme:joe", "c", "-", "tenants/#", 0, 0, "-", 0, "deny", 0},
    {P, "acme:joe", "c", "-", "tenants/other/x", 0, 0, "-", 0, "deny", 0},
    {P, "acme:", "c", "-", "tenants/acme/x", 0, 0, "-", 0, "deny", 0},
    /* groups and $ topics */
    {S, "carol", "c", "-", "alerts/x", 0, 0, "ops", 0, "allow", 8},
    {S, "carol", "c", "-", "alerts/x", 0, 0, "dev,ops", 0, "allow", 8},
    {S, "carol", "c", "-", "alerts/x", 0, 0, "opsx", 0, "deny", 0},
    {S, "carol", "c", "-", "$SYS/broker/b1/uptime", 0, 0, "ops", 0, "allow", 8},
    {S, "carol", "c", "-", "$SYS/broker/+/uptime", 0, 0, "ops", 0, "allow", 8},
    {S, "carol", "c", "-", "$SYS/broker/#", 0, 0, "ops", 0, "deny", 0},
    /* connect */
    {C, "bob", "c", "-", NULL, 0, 0, "internal", 0, "deny", 9},
    {C, "bob", "c", "10.1.2.3", NULL, 0, 0, "internal", 0, "allow", 0},
    {C, "bob", "c", "192.168.1.1", NULL, 0, 0, "internal", 0, "deny", 9},
    {C, "bob", "c", "-", NULL, 0, 0, "-", 0, "allow", 0},
    {C, "-", "c", "127.0.0.1", NULL, 0, 0, "-", 0, "allow", 10},
    {C, "-", "c", "127.0.0.2", NULL, 0, 0, "-", 0, "deny", 0},
    {C, "-", "c", "-", NULL, 0, 0, "-", 0, "deny", 0},
    {C, "-", "c", "::1", NULL, 0, 0, "-", 0, "deny", 0},
    /* first match wins even when a later rule is more specific */
    {P, "alice", "c", "-", "shared/secret", 0, 0, "-", 0, "deny", 13},
    {P, "alice", "c", "-", "shared/other", 0, 0, "-", 0, "allow", 14},
    {P, "bob", "c", "-", "shared/other", 2, 0, "-", 0, "allow", 15},
    {P, "bob", "c", "-", "shared/other", 1, 0, "-", 0, "deny", 0},
    {P, "bob", "c", "-", "shared/other", -1, 0, "-", 0, "deny", 0},
    /* a deny with an unknown option matches (fails closed) */
    {P, "bob", "c", "-", "retained/x", 0, 1, "-", 0, "deny", 16},
    {P, "bob", "c", "-", "retained/x", 0, 0, "-", 0, "allow", 17},
    {P, "bob", "c", "-", "retained/x", 0, -1, "-", 0, "deny", 16},
    /* subset: a/+/c and b/# */
    {S, "bob", "c", "-", "a/b/c", 0, 0, "-", 0, "allow", 18},
    {S, "bob", "c", "-", "a/+/c", 0, 0, "-", 0, "allow", 18},
    {S, "bob", "c", "-", "a/#", 0, 0, "-", 0, "deny", 0},
    {S, "bob", "c", "-", "a/b/c/d", 0, 0, "-", 0, "deny", 0},
    {S, "bob", "c", "-", "b", 0, 0, "-", 0, "allow", 18},
    {S, "bob", "c", "-", "b/+/+/#", 0, 0, "-", 0, "allow", 18},
    /* a deny refuses every subscription it overlaps */
    {S, "bob", "c", "-", "secret/#", 0, 0, "-", 0, "deny", 19},
    {S, "bob", "c", "-", "secret/+/x", 0, 0, "-", 0, "deny", 19},
    {S, "bob", "c", "-", "secret/private", 0, 0, "-", 0, "deny", 19},
    {S, "bob", "c", "-", "$share/g/secret/+/#", 0, 0, "-", 0, "deny", 19},
    {S, "bob", "c", "-", "secret/public/x", 0, 0, "-", 0, "allow", 20},
    {S, "bob", "c", "-", "secret/public/#", 0, 0, "-", 0, "allow", 20},
    {S, "acme:x", "c", "-", "ten/#", 0, 0, "-", 0, "deny", 21},
    {S, "acme:x", "c", "-", "ten/+/locked", 0, 0, "-", 0, "deny", 21},
    {S, "acme:x", "c", "-", "ten/acme/+", 0, 0, "-", 0, "deny", 21},
    {S, "acme:x", "c", "-", "ten/other/locked", 0, 0, "-", 0, "allow", 22},
    {S, "acme:x", "c", "-", "ten/acme/open", 0, 0, "-", 0, "allow", 22},
    {S, "-", "c", "-", "ten/#", 0, 0, "-", 0, "allow", 22},
    {P, "bob", "c", "-", "secret/private/x", 0, 0, "-", 0, "deny", 0},
    /* superusers publish and subscribe anywhere valid; not exempt from connect rules */
    {S, "root", "c", "-", "#", 0, 0, "-", 1, "allow", 0},
    {P, "root", "c", "-", "a/+", 0, 0, "-", 1, "deny", 0},
    {C, "root", "c", "-", NULL, 0, 0, "internal", 1, "deny", 9},
    /* invalid topics */
    {P, "bob", "c", "-", "a/+", 0, 0, "-", 0, "deny", 0},
    {P, "bob", "c", "-", "a/#", 0, 0, "-", 0, "deny", 0},
    {P, "bob", "c", "-", "", 0, 0, "-", 0, "deny", 0},
    {S, "bob", "c", "-", "a/#/b", 0, 0, "-", 0, "deny", 0},
    {S, "bob", "c", "-", "a/b+", 0, 0, "-", 0, "deny", 0},
    {S, "bob", "c", "-", "$share/g", 0, 0, "-", 0, "deny", 0},
    {S, "bob", "c", "-", "$share//a/b/c", 0, 0, "-", 0, "deny", 0},
    {P, "bob", "c", "-", "local/\xc3\x28", 0, 0, "-", 0, "deny", 0},
};

static void test_main_policy(void **state)
{
    (void)state;
    run_table(main_policy, main_cases, sizeof(main_cases) / sizeof(main_cases[0]));
}

static void test_invalid_reasons(void **state)
{
    (void)state;
    exh_policy *p = compile("allow all topic \"#\"\n");
    exh_evalctx *ctx = exh_evalctx_new();
    exh_request r;
    exh_result res;
    exh_request_init(&r, EXH_PUBLISH);
    r.topic = "a\0b";
    r.topic_len = 3;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    assert_int_equal(res.basis, EXH_BY_INVALID);
    assert_non_null(strstr(res.reason, "NUL"));
    r.superuser = true; /* invalid even for a superuser */
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    static char big[EXH_TOPIC_MAX + 2];
    memset(big, 'a', sizeof(big));
    r.topic = big;
    r.topic_len = EXH_TOPIC_MAX + 1;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    assert_int_equal(res.basis, EXH_BY_INVALID);
    r.superuser = false;
    r.topic_len = EXH_TOPIC_MAX; /* the longest valid topic is fine */
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_ALLOW);
    memset(big, '/', sizeof(big)); /* 65536 empty levels */
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_ALLOW);
    r.topic = NULL;
    r.topic_len = 0;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    r.action = (exh_action)3;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    assert_int_equal(res.basis, EXH_BY_INVALID);
    exh_evalctx_free(ctx);
    exh_policy_free(p);
}

static void test_default_values(void **state)
{
    (void)state;
    static const char *pol[] = {"default allow\n", "default ignore\n", "", "default deny\n"};
    static const exh_decision want[] = {EXH_ALLOW, EXH_IGNORE, EXH_DENY, EXH_DENY};
    exh_evalctx *ctx = exh_evalctx_new();
    for (int i = 0; i < 4; i++) {
        exh_policy *p = compile(pol[i]);
        exh_request r;
        exh_result res;
        exh_request_init(&r, EXH_SUBSCRIBE);
        r.topic = "x";
        r.topic_len = 1;
        assert_int_equal(exh_eval(p, &r, ctx, &res), want[i]);
        assert_int_equal(res.basis, EXH_BY_DEFAULT);
        /* default never decides connect: the credential result does */
        exh_request_init(&r, EXH_CONNECT);
        r.username = "u";
        r.username_len = 1;
        assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_ALLOW);
        assert_int_equal(res.basis, EXH_BY_CREDENTIALS);
        exh_policy_free(p);
    }
    exh_evalctx_free(ctx);
}

/* $queue/ is EMQX's prefix, not Mosquitto's: with queue_is_topic (the
 * plugin), `$queue/a/#` is the literal filter Mosquitto subscribes to and
 * is decided as that; `$share/g/` stays a prefix on both. */
static void test_queue_prefix_per_front_end(void **state)
{
    (void)state;
    exh_policy *p = compile("default deny\n"
                            "allow subscribe topic \"a/#\"\n"
                            "allow subscribe topic \"+/#\"\n");
    exh_evalctx *ctx = exh_evalctx_new();
    static const struct {
        const char *topic;
        bool queue_is_topic;
        exh_decision want;
    } cases[] = {
        {"$queue/a/#", false, EXH_ALLOW}, /* EMQX: checked as a/# */
        {"$queue/a/#", true, EXH_DENY},   /* Mosquitto: the filter $queue/a/#, and */
        {"$queue/x", true, EXH_DENY},     /* `+/#` never covers a level starting with $ */
        {"$queue/x", false, EXH_ALLOW},   /* EMQX: x, within +/# */
        {"$share/g/a/#", true, EXH_ALLOW}, {"$share/g/a/#", false, EXH_ALLOW},
        {"q/x", true, EXH_ALLOW},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exh_request r;
        exh_result res;
        exh_request_init(&r, EXH_SUBSCRIBE);
        r.topic = cases[i].topic;
        r.topic_len = strlen(cases[i].topic);
        r.queue_is_topic = cases[i].queue_is_topic;
        if (exh_eval(p, &r, ctx, &res) != cases[i].want)
            fail_msg("%s (queue_is_topic %d): want %s", cases[i].topic, cases[i].queue_is_topic,
                     exh_decision_str(cases[i].want));
    }
    exh_evalctx_free(ctx);
    exh_policy_free(p);
}

/* A delivery (Mosquitto's READ) is judged by the subscribe rules without
 * their qos option: it constrained the requested QoS at subscribe time. */
static void test_delivery_ignores_qos_option(void **state)
{
    (void)state;
    exh_policy *p = compile("default deny\nallow subscribe topic \"alerts/#\" qos 1-2\n");
    exh_evalctx *ctx = exh_evalctx_new();
    exh_request r;
    exh_result res;
    exh_request_init(&r, EXH_SUBSCRIBE);
    r.topic = "alerts/x";
    r.topic_len = 8;
    r.qos = 0;                                              /* a QoS 0 message */
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY); /* a subscription asking QoS 0 */
    r.delivery = true;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_ALLOW); /* delivered on a granted one */
    r.topic = "other/x";
    r.topic_len = 7;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    exh_evalctx_free(ctx);
    exh_policy_free(p);
}

/* Catastrophic backtracking hits the match limit: unknown, so an allow
 * does not match and a deny does. */
static void test_regex_limit_fails_closed(void **state)
{
    (void)state;
    exh_policy *p = compile("deny publish username ~ \"(a+)+[bc]\" topic \"d\"\n"
                            "allow publish username ~ \"(a+)+[cd]\" topic \"a\"\n"
                            "default ignore\n");
    exh_evalctx *ctx = exh_evalctx_new();
    char user[64];
    memset(user, 'a', 40);
    user[40] = 'x';
    exh_request r;
    exh_result res;
    exh_request_init(&r, EXH_PUBLISH);
    r.username = user;
    r.username_len = 41;
    r.topic = "d";
    r.topic_len = 1;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    assert_int_equal(res.basis, EXH_BY_RULE);
    r.topic = "a";
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_IGNORE);
    assert_int_equal(res.basis, EXH_BY_DEFAULT);
    exh_evalctx_free(ctx);
    exh_policy_free(p);
}

/*
 * Placeholders in exact username/clientid conditions: captures from a
 * regex written before or after them, ${username}/${clientid}, the value
 * taken as literal text, and a placeholder without a value (a capture
 * that did not take part or is empty, no username, an empty client id)
 * leaving the condition unknown -- so an allow rule never matches, with or
 * without `not`, and a deny rule does.  run_table also checks the index
 * against the plain scan: these conditions must not be filed as names.
 */
static const char ident_policy[] =
    "default deny\n"                                                                        /* 1 */
    "deny connect clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" not username \"d-${serial}\"\n" /* 2 */
    "allow publish username \"d-${serial}\" clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" "
    "topic \"devices/${serial}/up/#\"\n"                                                   /* 3 */
    "allow publish clientid ~ \"o(?<opt>[0-9])?-.*\" username \"u${opt}\" topic \"opt\"\n" /* 4 */
    "allow publish clientid ~ \"e(?<e>[0-9]*)\" not username \"u${e}\" topic \"empty\"\n"  /* 5 */
    "deny publish clientid ~ \"e(?<e>[0-9]*)\" username \"u${e}\" topic \"denyempty\"\n"   /* 6 */
    "allow publish topic \"denyempty\"\n"                                                  /* 7 */
    "allow subscribe clientid \"c-${username}\" topic \"own/#\"\n"                         /* 8 */
    "deny connect username \"${clientid}\"\n"                                              /* 9 */
    "allow publish username ~ \"(?<t>[a-z]+):.+\" not username \"${t}:guest\" "
    "clientid \"${t}.${username}\" topic \"same\"\n"; /* 10 */

static const rq ident_cases[] = {
    /* a device's credentials are bound to its own client id */
    {C, "d-0a1b2c3d", "dev-0a1b2c3d", "-", NULL, -1, -1, "-", 0, "allow", 0},
    {C, "d-ffffffff", "dev-0a1b2c3d", "-", NULL, -1, -1, "-", 0, "deny", 2},
    {C, "-", "dev-0a1b2c3d", "-", NULL, -1, -1, "-", 0, "deny", 2},
    /* the placeholder's text is no name: it is compared with its value */
    {C, "d-${serial}", "dev-0a1b2c3d", "-", NULL, -1, -1, "-", 0, "deny", 2},
    {C, "d-0a1b2c3d", "dev-0a1b2c3", "-", NULL, -1, -1, "-", 0, "allow", 0},
    {C, "acme", "laptop", "-", NULL, -1, -1, "-", 0, "allow", 0},
    /* ${clientid}: equal names refused; an empty client id is no value: unknown, deny */
    {C, "x", "x", "-", NULL, -1, -1, "-", 0, "deny", 9},
    {C, "alice", "", "-", NULL, -1, -1, "-", 0, "deny", 9},
    {C, "-", "", "-", NULL, -1, -1, "-", 0, "deny", 9},
    {P, "d-0a1b2c3d", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "allow", 3},
    {P, "d-0a1b2c3d", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", -1, -1, "-", 0, "allow", 3},
    {P, "d-ffffffff", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "d-0a1b2c3d", "dev-ffffffff", "-", "devices/ffffffff/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "d-${serial}", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "-", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "d-0a1b2c3d9", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "deny", 0},
    {P, "d-0a1b2c3", "dev-0a1b2c3d", "-", "devices/0a1b2c3d/up/t", 0, 0, "-", 0, "deny", 0},
    /* an optional group that took part, and one that did not (unknown) */
    {P, "u5", "o5-x", "-", "opt", 0, 0, "-", 0, "allow", 4},
    {P, "u6", "o5-x", "-", "opt", 0, 0, "-", 0, "deny", 0},
    {P, "u", "o-x", "-", "opt", 0, 0, "-", 0, "deny", 0},
    /* an empty capture: the allow with `not` never matches... */
    {P, "u1", "e1", "-", "empty", 0, 0, "-", 0, "deny", 0},
    {P, "u2", "e1", "-", "empty", 0, 0, "-", 0, "allow", 5},
    {P, "u", "e", "-", "empty", 0, 0, "-", 0, "deny", 0},
    {P, "zz", "e", "-", "empty", 0, 0, "-", 0, "deny", 0},
    /* ...and the deny without `not` does, whatever the username */
    {P, "u", "e", "-", "denyempty", 0, 0, "-", 0, "deny", 6},
    {P, "zz", "e", "-", "denyempty", 0, 0, "-", 0, "deny", 6},
    {P, "u1", "e1", "-", "denyempty", 0, 0, "-", 0, "deny", 6},
    {P, "u2", "e1", "-", "denyempty", 0, 0, "-", 0, "allow", 7},
    /* ${username} in a clientid condition; anonymous: unknown */
    {S, "bob", "c-bob", "-", "own/x", 0, 0, "-", 0, "allow", 8},
    {S, "bob", "c-alice", "-", "own/#", 0, 0, "-", 0, "deny", 0},
    {S, "-", "c-", "-", "own/x", 0, 0, "-", 0, "deny", 0},
    /* several placeholders, a capture of the same field */
    {P, "acme:bob", "acme.acme:bob", "-", "same", 0, 0, "-", 0, "allow", 10},
    {P, "acme:guest", "acme.acme:guest", "-", "same", 0, 0, "-", 0, "deny", 0},
    {P, "acme:bob", "acme.acme:bo", "-", "same", 0, 0, "-", 0, "deny", 0},
    {P, "acme:bob", "acme.acme:bobb", "-", "same", 0, 0, "-", 0, "deny", 0},
};

static void test_identity_placeholders(void **state)
{
    (void)state;
    run_table(ident_policy, ident_cases, sizeof(ident_cases) / sizeof(ident_cases[0]));
}

/*
 * Regexes work on characters (UTF mode): `.`, classes, counted
 * quantifiers and captures each take a whole UTF-8 character, never one
 * byte of it.  The literal prefix checked before PCRE2 must not cut a
 * character that a quantifier applies to (`aé?` matches "a").
 */
static const char utf_policy[] =
    "default deny\n"                                                               /* 1 */
    "deny  publish username ~ \".\" topic \"one\"\n"                               /* 2 */
    "allow publish topic \"one\"\n"                                                /* 3 */
    "allow publish username ~ \"[^a-z]{2}\" topic \"two\"\n"                       /* 4 */
    "allow publish clientid ~ \".{8}\" topic \"eight\"\n"                          /* 5 */
    "allow publish username ~ \"(?<first>.).*\" topic \"first/${first}\"\n"        /* 6 */
    "allow publish clientid ~ \"(?<s>.)-.+\" username \"u${s}\" topic \"bound\"\n" /* 7 */
    "allow publish username ~ \"a\xc3\xa9?\" topic \"opt\"\n"                      /* 8 */
    "allow publish username ~ \"t:[\xc3\xa0-\xc3\xbf]+\" topic \"range\"\n"        /* 9 */
    "allow publish clientid ~ \"d-[^0-9]{2,3}\" topic \"count\"\n";                /* 10 */

static const rq utf_cases[] = {
    /* `.` is one character: "é" is one, "ab" two */
    {P, "\xc3\xa9", "c", "-", "one", 0, 0, "-", 0, "deny", 2},
    {P, "\xe2\x82\xac", "c", "-", "one", 0, 0, "-", 0, "deny", 2},
    {P, "\xf0\x9f\x98\x80", "c", "-", "one", 0, 0, "-", 0, "deny", 2},
    {P, "e", "c", "-", "one", 0, 0, "-", 0, "deny", 2},
    {P, "ab", "c", "-", "one", 0, 0, "-", 0, "allow", 3},
    {P, "\xc3\xa9\xc3\xa9", "c", "-", "one", 0, 0, "-", 0, "allow", 3},
    /* a negated class counts characters */
    {P, "\xc3\xa9\xc3\xbc", "c", "-", "two", 0, 0, "-", 0, "allow", 4},
    {P, "\xc3\xa9", "c", "-", "two", 0, 0, "-", 0, "deny", 0},
    {P, "A\xc3\xa9", "c", "-", "two", 0, 0, "-", 0, "allow", 4},
    /* .{8}: eight characters, not eight bytes */
    {P, "u",
     "abcd\xc3\xa9"
     "fgh",
     "-", "eight", 0, 0, "-", 0, "allow", 5},
    {P, "u",
     "abcd\xc3\xa9"
     "fg",
     "-", "eight", 0, 0, "-", 0, "deny", 0},
    {P, "u", "abcdefgh", "-", "eight", 0, 0, "-", 0, "allow", 5},
    /* a capture holds whole characters, in a topic... */
    {P, "\xc3\xa9lan", "c", "-", "first/\xc3\xa9", 0, 0, "-", 0, "allow", 6},
    {P, "\xe2\x82\xac", "c", "-", "first/\xe2\x82\xac", 0, 0, "-", 0, "allow", 6},
    {P, "ab", "c", "-", "first/a", 0, 0, "-", 0, "allow", 6},
    /* ...and in an exact name */
    {P, "u\xc3\xbc", "\xc3\xbc-1", "-", "bound", 0, 0, "-", 0, "allow", 7},
    {P, "u\xc3\xbd", "\xc3\xbc-1", "-", "bound", 0, 0, "-", 0, "deny", 0},
    /* a quantifier after a multi-byte literal applies to the character */
    {P, "a", "c", "-", "opt", 0, 0, "-", 0, "allow", 8},
    {P, "a\xc3\xa9", "c", "-", "opt", 0, 0, "-", 0, "allow", 8},
    {P, "a\xc3\xa9\xc3\xa9", "c", "-", "opt", 0, 0, "-", 0, "deny", 0},
    /* a class range of characters */
    {P, "t:\xc3\xb6\xc3\xa9", "c", "-", "range", 0, 0, "-", 0, "allow", 9},
    {P, "t:\xc3\x9f", "c", "-", "range", 0, 0, "-", 0, "deny", 0},
    {P, "t:\xc4\x80", "c", "-", "range", 0, 0, "-", 0, "deny", 0},
    /* counted: 2 to 3 characters */
    {P, "u", "d-\xc3\xa9\xc3\xa9", "-", "count", 0, 0, "-", 0, "allow", 10},
    {P, "u", "d-\xc3\xa9\xc3\xa9\xc3\xa9", "-", "count", 0, 0, "-", 0, "allow", 10},
    {P, "u", "d-\xc3\xa9", "-", "count", 0, 0, "-", 0, "deny", 0},
    {P, "u", "d-\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "-", "count", 0, 0, "-", 0, "deny", 0},
    {P, "u", "d-ab", "-", "count", 0, 0, "-", 0, "allow", 10},
};

static void test_regex_on_characters(void **state)
{
    (void)state;
    run_table(utf_policy, utf_cases, sizeof(utf_cases) / sizeof(utf_cases[0]));
}

/* The issue's own case: one deny rule meant to catch every one-character
 * user name lets no one-character name through, ASCII or not. */
static void test_one_character_names(void **state)
{
    (void)state;
    static const rq cases[] = {
        {C, "x", "c", "-", NULL, 0, 0, "-", 0, "deny", 2},
        {C, "\xc3\xa9", "c", "-", NULL, 0, 0, "-", 0, "deny", 2},
        {C, "\xe4\xb8\xad", "c", "-", NULL, 0, 0, "-", 0, "deny", 2},
        {C, "xy", "c", "-", NULL, 0, 0, "-", 0, "allow", 0},
    };
    run_table("default allow\ndeny connect username ~ \".\"\n", cases,
              sizeof(cases) / sizeof(cases[0]));
}

/* A user name or client id that is not UTF-8 is no MQTT name: the request
 * is refused before any rule (PCRE2's JIT is only defined on valid UTF-8),
 * for every action and for superusers too. */
static void test_invalid_utf8_names(void **state)
{
    (void)state;
    exh_policy *p = compile("default allow\nallow all\nallow connect\n");
    exh_evalctx *ctx = exh_evalctx_new();
    static const char *bad[] = {"a\xff", "\xc3", "a\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
    exh_action acts[] = {EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        for (int a = 0; a < 3; a++)
            for (int field = 0; field < 2; field++) {
                exh_request r;
                exh_result res;
                exh_request_init(&r, acts[a]);
                r.topic = "t";
                r.topic_len = 1;
                r.username = field ? "u" : bad[i];
                r.username_len = strlen(r.username);
                r.clientid = field ? bad[i] : "c";
                r.clientid_len = strlen(r.clientid);
                r.superuser = a == 0;
                assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
                assert_int_equal(res.basis, EXH_BY_INVALID);
                assert_non_null(strstr(res.reason, field ? "client id" : "username"));
                assert_non_null(strstr(res.reason, "UTF-8"));
            }
    /* valid multi-byte names pass */
    exh_request r;
    exh_result res;
    exh_request_init(&r, EXH_CONNECT);
    r.username = "\xc3\xa9\xf0\x9f\x98\x80";
    r.username_len = strlen(r.username);
    r.clientid = "\xe2\x82\xac";
    r.clientid_len = strlen(r.clientid);
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_ALLOW);
    assert_int_equal(res.basis, EXH_BY_RULE);
    exh_evalctx_free(ctx);
    exh_policy_free(p);
}

/*
 * MQTT's `$` rule where a rule filter's first level comes from a
 * placeholder: `+` and `#` never match a topic starting with '$', so a
 * subscription starting with a wildcard shares no topic with a filter
 * whose first level turns out to start with '$' -- whether that '$' is
 * written (`$${clientid}`) or is the first byte of a value (`${username}`,
 * `%u`, a capture, `%c` being `$SYS`, `$x`, ...).  The deny must not match
 * there; it still matches subscriptions to those `$` topics.
 */
static const char dollar_policy[] =
    "default allow\n"                                                 /* 1 */
    "deny subscribe topic \"$${clientid}/a\"\n"                       /* 2 */
    "deny subscribe topic \"${username}/x/#\"\n"                      /* 3 */
    "deny subscribe topic \"%u/y\"\n"                                 /* 4 */
    "deny subscribe username ~ \"(?<t>[^:]+):.*\" topic \"${t}/z\"\n" /* 5 */
    "deny subscribe clientid ~ \"\\$.*\" topic \"%c\"\n";             /* 6 */

static const rq dollar_cases[] = {
    /* $${clientid}: "$t1/a" */
    {S, "-", "t1", "-", "+/+", 0, 0, "-", 0, "allow", 0},
    {S, "-", "t1", "-", "#", 0, 0, "-", 0, "allow", 0},
    {S, "-", "t1", "-", "+/a", 0, 0, "-", 0, "allow", 0},
    {S, "-", "t1", "-", "+/#", 0, 0, "-", 0, "allow", 0},
    {S, "-", "t1", "-", "$queue/#", 0, 0, "-", 0, "allow", 0},
    {S, "-", "t1", "-", "$share/g/+/+", 0, 0, "-", 0, "allow", 0},
    {S, "-", "t1", "-", "$share/g/#", 0, 0, "-", 0, "allow", 0},
    {S, "-", "t1", "-", "$t1/a", 0, 0, "-", 0, "deny", 2},
    {S, "-", "t1", "-", "$t1/+", 0, 0, "-", 0, "deny", 2},
    {S, "-", "t1", "-", "$t1/#", 0, 0, "-", 0, "deny", 2},
    {S, "-", "t1", "-", "$share/g/$t1/a", 0, 0, "-", 0, "deny", 2},
    {S, "-", "t1", "-", "$t2/a", 0, 0, "-", 0, "allow", 0},
    /* ${username} and %u with the name $SYS */
    {S, "$SYS", "c", "-", "#", 0, 0, "-", 0, "allow", 0},
    {S, "$SYS", "c", "-", "$queue/#", 0, 0, "-", 0, "allow", 0},
    {S, "$SYS", "c", "-", "+/x/+", 0, 0, "-", 0, "allow", 0},
    {S, "$SYS", "c", "-", "+/#", 0, 0, "-", 0, "allow", 0},
    {S, "$SYS", "c", "-", "+/y", 0, 0, "-", 0, "allow", 0},
    {S, "$SYS", "c", "-", "$SYS/x/1", 0, 0, "-", 0, "deny", 3},
    {S, "$SYS", "c", "-", "$SYS/#", 0, 0, "-", 0, "deny", 3},
    {S, "$SYS", "c", "-", "$SYS/y", 0, 0, "-", 0, "deny", 4},
    {S, "$SYS", "c", "-", "$SYS/+", 0, 0, "-", 0, "deny", 3}, /* meets $SYS/x */
    /* an ordinary name still overlaps the wildcards */
    {S, "bob", "c", "-", "#", 0, 0, "-", 0, "deny", 3},
    {S, "bob", "c", "-", "+/y", 0, 0, "-", 0, "deny", 4},
    {S, "bob", "c", "-", "$queue/#", 0, 0, "-", 0, "deny", 3},
    /* a capture whose value starts with '$' */
    {S, "$t:1", "c", "-", "+/z", 0, 0, "-", 0, "allow", 0},
    {S, "$t:1", "c", "-", "#", 0, 0, "-", 0, "allow", 0},
    {S, "$t:1", "c", "-", "$t/z", 0, 0, "-", 0, "deny", 5},
    {S, "t:1", "c", "-", "+/z", 0, 0, "-", 0, "deny", 5},
    /* %c alone, a one-level filter */
    {S, "-", "$c", "-", "#", 0, 0, "-", 0, "allow", 0},
    {S, "-", "$c", "-", "+", 0, 0, "-", 0, "allow", 0},
    {S, "-", "$c", "-", "$c", 0, 0, "-", 0, "deny", 6},
    {S, "-", "$c", "-", "$c/#", 0, 0, "-", 0, "deny", 6},
};

static void test_dollar_rule_for_placeholder_levels(void **state)
{
    (void)state;
    run_table(dollar_policy, dollar_cases, sizeof(dollar_cases) / sizeof(dollar_cases[0]));
}

/*
 * Choices the README states: an IPv4-mapped IPv6 peer is its IPv4 address;
 * `retain` on a pubsub/all rule constrains publishes only, so a subscribe
 * under `deny pubsub ... retain true` is denied; `%u`/`%c` are placeholders
 * only as a whole level.
 */
static const char choices_policy[] = "default deny\n"                                     /* 1 */
                                     "deny connect not peerhost 10.0.0.0/8\n"             /* 2 */
                                     "deny pubsub topic \"r/#\" retain true\n"            /* 3 */
                                     "allow pubsub topic \"r/#\"\n"                       /* 4 */
                                     "allow publish topic \"x%u/y\" \"%u/y\" \"p/%c\"\n"; /* 5 */

static const rq choices_cases[] = {
    {C, "bob", "c", "::ffff:10.0.0.1", NULL, 0, 0, "-", 0, "allow", 0},
    {C, "bob", "c", "::ffff:10.255.0.1", NULL, 0, 0, "-", 0, "allow", 0},
    {C, "bob", "c", "10.1.1.1", NULL, 0, 0, "-", 0, "allow", 0},
    {C, "bob", "c", "::ffff:11.0.0.1", NULL, 0, 0, "-", 0, "deny", 2},
    {C, "bob", "c", "::1", NULL, 0, 0, "-", 0, "deny", 2},
    {C, "bob", "c", "::10.0.0.1", NULL, 0, 0, "-", 0, "deny", 2},
    /* a subscribe is decided without retain: the deny matches it */
    {S, "bob", "c", "-", "r/x", 0, 0, "-", 0, "deny", 3},
    {S, "bob", "c", "-", "r/x", 0, -1, "-", 0, "deny", 3},
    {P, "bob", "c", "-", "r/x", 0, 0, "-", 0, "allow", 4},
    {P, "bob", "c", "-", "r/x", 0, 1, "-", 0, "deny", 3},
    {P, "bob", "c", "-", "r/x", 0, -1, "-", 0, "deny", 3},
    /* %u inside a level is the two characters "%u" */
    {P, "bob", "c", "-", "xbob/y", 0, 0, "-", 0, "deny", 0},
    {P, "bob", "c", "-", "x%u/y", 0, 0, "-", 0, "allow", 5},
    {P, "bob", "c", "-", "bob/y", 0, 0, "-", 0, "allow", 5},
    {P, "bob", "c7", "-", "p/c7", 0, 0, "-", 0, "allow", 5},
};

static void test_readme_choices(void **state)
{
    (void)state;
    run_table(choices_policy, choices_cases, sizeof(choices_cases) / sizeof(choices_cases[0]));
}

/* The first matching rule across files, in byte order of file names. */
static void put(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_first_match_across_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/exh-order-XXXXXX";
    assert_non_null(mkdtemp(dir));
    put(dir, "10-a.policy", "deny publish topic \"x/#\"\n");
    put(dir, "20-b.policy",
        "default allow\nallow publish topic \"x/y\"\ndeny publish topic \"z\"\n");
    exh_evalctx *ctx = exh_evalctx_new();
    exh_request r;
    exh_result res;
    exh_request_init(&r, EXH_PUBLISH);
    r.topic = "x/y";
    r.topic_len = 3;
    exh_policy *p;
    assert_int_equal(exh_policy_load(dir, &p, NULL), EXH_OK);
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    assert_non_null(strstr(exh_policy_rule(p, res.rule)->file, "10-a.policy"));
    r.topic = "z";
    r.topic_len = 1;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_DENY);
    assert_non_null(strstr(exh_policy_rule(p, res.rule)->file, "20-b.policy"));
    r.topic = "w"; /* default from the second file applies to the whole policy */
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_ALLOW);
    assert_int_equal(res.basis, EXH_BY_DEFAULT);
    exh_policy_free(p);
    /* rename so the deny file sorts last: now the allow decides */
    char a[256], b[256];
    snprintf(a, sizeof(a), "%s/10-a.policy", dir);
    snprintf(b, sizeof(b), "%s/30-a.policy", dir);
    assert_int_equal(rename(a, b), 0);
    assert_int_equal(exh_policy_load(dir, &p, NULL), EXH_OK);
    r.topic = "x/y";
    r.topic_len = 3;
    assert_int_equal(exh_eval(p, &r, ctx, &res), EXH_ALLOW);
    assert_non_null(strstr(exh_policy_rule(p, res.rule)->file, "20-b.policy"));
    exh_policy_free(p);
    exh_evalctx_free(ctx);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the index against a plain scan, on random policies ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char *levels[] = {"a", "b", "c", "$s", "x", ""};
static const char *users[] = {"u1", "u2", "t1:x", "t2:y", "a", "#", "b/c", ""};
static const char *cids[] = {"c1", "c2", "dev-1", "dev-2", "a", "+", ""};

static void rand_filter(char *out, int allow_wild, int ph)
{
    int n = 1 + (int)rnd(4);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(out, "/");
        uint32_t k = rnd(10);
        if (allow_wild && k == 0)
            strcat(out, "+");
        else if (allow_wild && k == 1 && i == n - 1)
            strcat(out, "#");
        else if (ph && k == 2)
            strcat(out, rnd(2) ? "${username}" : "%c");
        else if (ph && k == 3)
            strcat(out, "${cap}");
        else
            strcat(out, levels[rnd(n == 1 ? 5 : 6)]); /* "" alone is no topic */
    }
}

static void test_index_matches_scan(void **state)
{
    (void)state;
    exh_evalctx *ctx = exh_evalctx_new();
    static const char *acts[] = {"publish", "subscribe", "pubsub", "connect"};
    for (int round = 0; round < 150; round++) {
        char text[65536];
        size_t o = 0;
        int nrules = 1 + (int)rnd(60);
        for (int i = 0; i < nrules; i++) {
            const char *act = acts[rnd(4)];
            int has_cap = 0;
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s %s", rnd(2) ? "allow" : "deny",
                                  act);
            switch (rnd(9)) {
            case 0:
                o +=
                    (size_t)snprintf(text + o, sizeof(text) - o, " username \"%s\"", users[rnd(8)]);
                break;
            case 1:
                o += (size_t)snprintf(text + o, sizeof(text) - o, " clientid \"%s\"", cids[rnd(7)]);
                break;
            case 2:
                o += (size_t)snprintf(text + o, sizeof(text) - o,
                                      " username ~ \"(?<cap>[a-z0-9]+):.*\"");
                has_cap = 1;
                break;
            case 3:
                o += (size_t)snprintf(text + o, sizeof(text) - o, " not clientid ~ \"dev-.*\"");
                break;
            case 4:
                o += (size_t)snprintf(text + o, sizeof(text) - o, " group \"g%u\"", rnd(2));
                break;
            case 5:
                o += (size_t)snprintf(text + o, sizeof(text) - o, " anonymous");
                break;
            case 6: /* placeholders in exact names: never an index key */
                o += (size_t)snprintf(text + o, sizeof(text) - o,
                                      " username \"${cap}:x\" username ~ \"(?<cap>[a-z0-9]+):.*\"");
                has_cap = 1;
                break;
            case 7:
                o += (size_t)snprintf(text + o, sizeof(text) - o, " %sclientid \"%s${username}\"",
                                      rnd(2) ? "not " : "", rnd(2) ? "" : "a");
                break;
            default:
                break;
            }
            if (strcmp(act, "connect") && rnd(5)) {
                int nspec = 1 + (int)rnd(3);
                o += (size_t)snprintf(text + o, sizeof(text) - o, " topic");
                for (int s = 0; s < nspec; s++) {
                    char f[256];
                    int eq = rnd(6) == 0;
                    rand_filter(f, !eq, !eq);
                    if (!has_cap && strstr(f, "${cap}")) rand_filter(f, !eq, 0);
                    o += (size_t)snprintf(text + o, sizeof(text) - o, " %s\"%s\"", eq ? "eq " : "",
                                          f);
                }
            }
            if (!strcmp(act, "publish") && rnd(6) == 0)
                o += (size_t)snprintf(text + o, sizeof(text) - o, " qos 0-1");
            o += (size_t)snprintf(text + o, sizeof(text) - o, "\n");
        }
        exh_policy *p = compile(text);
        for (int q = 0; q < 400; q++) {
            exh_request r;
            char topic[256];
            exh_str groups[1] = {{rnd(2) ? "g0" : "g1", 2}};
            exh_request_init(&r, (exh_action[]){EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT}[rnd(3)]);
            if (rnd(5)) {
                r.username = users[rnd(8)];
                r.username_len = strlen(r.username);
            }
            r.clientid = cids[rnd(7)];
            r.clientid_len = strlen(r.clientid);
            rand_filter(topic, r.action == EXH_SUBSCRIBE, 0);
            if (r.action == EXH_SUBSCRIBE && rnd(8) == 0) {
                char t2[300];
                snprintf(t2, sizeof(t2), "$share/g/%s", topic);
                strcpy(topic, t2);
            }
            r.topic = topic;
            r.topic_len = strlen(topic);
            r.groups = groups;
            r.ngroups = rnd(2);
            r.qos = (int)rnd(3);
            r.retain = (int)rnd(2);
            exh_result a, b;
            exh_eval(p, &r, ctx, &a);
            exh_eval_linear(p, &r, ctx, &b);
            if (a.decision != b.decision || a.basis != b.basis ||
                (a.basis == EXH_BY_RULE && a.rule != b.rule))
                fail_msg("index and scan disagree on %s user=%s cid=%s topic=%s: index %s by "
                         "%s #%u, scan %s by %s #%u\npolicy:\n%s",
                         exh_action_str(r.action), r.username ? r.username : "(anon)", r.clientid,
                         topic, exh_decision_str(a.decision), exh_basis_str(a.basis), a.rule + 1,
                         exh_decision_str(b.decision), exh_basis_str(b.basis), b.rule + 1, text);
        }
        exh_policy_free(p);
    }
    exh_evalctx_free(ctx);
}

/* Every topic of 1 to 3 levels drawn from lv (nlv entries); filters
 * (with_wild) drop those with '#' anywhere but last, and the empty topic. */
static int universe(const char *const *lv, int nlv, int filters, char out[][16])
{
    int n_out = 0;
    for (int n = 1, total = nlv; n <= 3; n++, total *= nlv)
        for (int k = 0; k < total; k++) {
            char f[16] = "";
            int x = k, ok = 1;
            for (int i = 0; i < n; i++) {
                const char *l = lv[x % nlv];
                x /= nlv;
                ok &= strcmp(l, "#") || i == n - 1;
                if (i) strcat(f, "/");
                strcat(f, l);
            }
            if (!filters || (ok && f[0])) strcpy(out[n_out++], f);
        }
    return n_out;
}

static const char *const filter_levels[] = {"a", "b", "$x", "+", "#", ""};

/* The compiled matcher against topic.c's plain reference functions, on
 * every pair of small filters: publish = exh_topic_match, allow on
 * subscribe = exh_topic_subset, deny on subscribe = exh_topic_overlap. */
static void test_matcher_agrees_with_reference(void **state)
{
    (void)state;
    char filters[400][16];
    int nf = universe(filter_levels, 6, 1, filters);
    exh_evalctx *ctx = exh_evalctx_new();
    for (int fi = 0; fi < nf; fi++) {
        char text[128];
        exh_policy *allow, *deny;
        snprintf(text, sizeof(text), "allow pubsub topic \"%.15s\"\n", filters[fi]);
        allow = compile(text);
        snprintf(text, sizeof(text), "deny subscribe topic \"%.15s\"\ndefault allow\n",
                 filters[fi]);
        deny = compile(text);
        const char *RF = filters[fi];
        for (int si = 0; si < nf; si++) {
            const char *SF = filters[si];
            exh_request r;
            exh_result res;
            exh_request_init(&r, EXH_SUBSCRIBE);
            r.topic = SF;
            r.topic_len = strlen(SF);
            int want = exh_topic_subset(SF, strlen(SF), RF, strlen(RF));
            if ((exh_eval(allow, &r, ctx, &res) == EXH_ALLOW) != want)
                fail_msg("allow subscribe %s vs rule %s: reference says %d", SF, RF, want);
            want = exh_topic_overlap(SF, strlen(SF), RF, strlen(RF));
            if ((exh_eval(deny, &r, ctx, &res) == EXH_DENY) != want)
                fail_msg("deny subscribe %s vs rule %s: reference overlap says %d", SF, RF, want);
            if (strchr(SF, '+') || strchr(SF, '#')) continue;
            r.action = EXH_PUBLISH;
            want = exh_topic_match(RF, strlen(RF), SF, strlen(SF));
            if ((exh_eval(allow, &r, ctx, &res) == EXH_ALLOW) != want)
                fail_msg("publish %s vs rule %s: reference says %d", SF, RF, want);
        }
        exh_policy_free(allow);
        exh_policy_free(deny);
    }
    exh_evalctx_free(ctx);
}

/* Overlap is exact on a small universe: whenever two filters share a
 * name, overlap says so, and when it says so, some name is matched by
 * both.  The universe includes the empty name: `+` and `/#` share only
 * that (invalid) topic, and overlap erring toward "yes" there only makes a
 * deny rule refuse more, which is the safe side. */
static void test_overlap_reference_is_exact(void **state)
{
    (void)state;
    static const char *const nl[] = {"a", "b", "$x", "", "c"};
    char filters[300][16], names[200][16];
    int nf = universe(filter_levels, 6, 1, filters);
    int nn = universe(nl, 5, 0, names);
    for (int i = 0; i < nf; i++)
        for (int j = 0; j < nf; j++) {
            const char *SF = filters[i], *RF = filters[j];
            int shared = 0;
            for (int k = 0; k < nn && !shared; k++)
                shared = exh_topic_match(SF, strlen(SF), names[k], strlen(names[k])) &&
                         exh_topic_match(RF, strlen(RF), names[k], strlen(names[k]));
            int says = exh_topic_overlap(SF, strlen(SF), RF, strlen(RF));
            if (shared && !says) fail_msg("overlap(%s, %s) is false but they share a name", SF, RF);
            if (says && !shared)
                fail_msg("overlap(%s, %s) is true but no name of the universe is shared", SF, RF);
        }
}

/* LITERAL(?<v>CLASS QUANTIFIER) is matched and captured without PCRE2:
 * the capture must be PCRE2's, checked through an exact clientid condition
 * that compares it, on random patterns and UTF-8 subjects. */
static void test_simple_capture_agrees_with_pcre2(void **state)
{
    (void)state;
    static const char *lits[] = {"", "a", "dev-", "t1:", "x\xc3\xa9", "\xe2\x82\xac"};
    static const char *classes[] = {"[a-c]", "[^a]",   "[0-9a-f]", ".",
                                    "[]a]",  "[^a-z]", "x",        "[ab]|c"};
    static const char *quants[] = {"", "+", "*", "?", "{2}", "{1,}", "{0,2}", "{2,3}", "+?"};
    static const char *alphabet[] = {"a", "b", "c", "0", "9",        "f",
                                     "x", "]", ":", "-", "\xc3\xa9", "\xe2\x82\xac"};
#define NCL (sizeof(classes) / sizeof(classes[0]))
#define NQ  (sizeof(quants) / sizeof(quants[0]))
#define NA  (sizeof(alphabet) / sizeof(alphabet[0]))
    exh_evalctx *ctx = exh_evalctx_new();
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    int fast = 0, total = 0, allowed = 0;
    for (int round = 0; round < 3000; round++) {
        char pat[64];
        snprintf(pat, sizeof(pat), "%s(?<v>%s%s)", lits[rnd(6)], classes[rnd(NCL)],
                 quants[rnd(NQ)]);
        int code;
        PCRE2_SIZE off;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
        assert_non_null(re);
        char text[160];
        snprintf(text, sizeof(text),
                 "allow publish username ~ \"%s\" clientid \"${v}\" topic \"t\"\n", pat);
        exh_policy *p = NULL;
        assert_int_equal(exh_policy_parse("c.policy", text, strlen(text), &p, NULL), EXH_OK);
        total++;
        fast += p->rules[0].conds[0].sre != NULL;
        for (int k = 0; k < 40; k++) {
            char subj[64];
            size_t n = 0;
            if (rnd(2) == 0) {
                const char *l = pat;
                while (*l && *l != '(' && n < 8)
                    subj[n++] = *l++;
            }
            for (size_t c = rnd(5); c > 0; c--) {
                const char *ch = alphabet[rnd(NA)];
                memcpy(subj + n, ch, strlen(ch));
                n += strlen(ch);
            }
            char cap[64] = "";
            size_t capn = 0;
            if (pcre2_match(re, (PCRE2_SPTR)subj, n, 0, 0, md, NULL) >= 0) {
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (ov[2] != PCRE2_UNSET) {
                    capn = ov[3] - ov[2];
                    memcpy(cap, subj + ov[2], capn);
                }
            }
            for (int variant = 0; variant < 2; variant++) {
                /* the capture itself (allowed when it is not empty), then
                 * the capture with a byte more (never allowed) */
                char cid[72];
                size_t cn = capn;
                memcpy(cid, cap, capn);
                if (variant) cid[cn++] = 'z';
                exh_request r;
                exh_result res;
                exh_request_init(&r, EXH_PUBLISH);
                r.username = subj;
                r.username_len = n;
                r.clientid = cid;
                r.clientid_len = cn;
                r.topic = "t";
                r.topic_len = 1;
                int got = exh_eval(p, &r, ctx, &res) == EXH_ALLOW;
                int want = !variant && capn > 0;
                allowed += got;
                if (got != want)
                    fail_msg("pattern \"%s\" (fast=%d) on \"%.*s\", clientid \"%.*s\": engine %d, "
                             "PCRE2 %d",
                             pat, p->rules[0].conds[0].sre != NULL, (int)n, subj, (int)cn, cid, got,
                             want);
            }
        }
        pcre2_code_free(re);
        exh_policy_free(p);
    }
#undef NCL
#undef NQ
#undef NA
    assert_true(fast > total / 4); /* the fast path is exercised */
    assert_true(fast < total);     /* and does not take everything */
    assert_true(allowed > 100);
    pcre2_match_data_free(md);
    exh_evalctx_free(ctx);
}

/* Simple regexes (LITERAL or LITERAL CLASS QUANTIFIER) are matched
 * without PCRE2; the answer must be PCRE2's in UTF mode, on random
 * patterns and subjects: literals, classes and subjects hold multi-byte
 * characters, '\n', '-' and ']', and counted quantifiers count characters. */
static void test_simple_regex_agrees_with_pcre2(void **state)
{
    (void)state;
    static const char *lits[] = {"", "a", "dev-", "t1:", "x\xc3\xa9", "\xe2\x82\xac"};
    static const char *classes[] = {"[a-c]",
                                    "[^a]",
                                    "[-a]",
                                    "[a-]",
                                    "[0-9a-f]",
                                    ".",
                                    "[]a]",
                                    "[a-z-9]",
                                    "x",
                                    "(a)",
                                    "[ab]|c",
                                    "[\xc3\xa9-\xc3\xbc]",
                                    "[^a-z]",
                                    "\xc3\xa9",
                                    "[\xe2\x82\xac"
                                    "a]",
                                    "[^\xc3\xa9]"};
    static const char *quants[] = {"",     "+",  "*",     "?",     "{2}", "{1,}", "{0,2}",
                                   "{,2}", "+?", "{3,1}", "{2,3}", "{1}", "{0,}", "{2,}"};
    /* characters, not bytes: every subject is valid UTF-8 */
    static const char *alphabet[] = {"a",
                                     "b",
                                     "c",
                                     "-",
                                     "0",
                                     "9",
                                     "f",
                                     "x",
                                     "]",
                                     ":",
                                     "\n",
                                     "|",
                                     "\xc3\xa9",
                                     "\xc3\xbc",
                                     "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80"};
#define NCL (sizeof(classes) / sizeof(classes[0]))
#define NQ  (sizeof(quants) / sizeof(quants[0]))
#define NA  (sizeof(alphabet) / sizeof(alphabet[0]))
    exh_evalctx *ctx = exh_evalctx_new();
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    int simple = 0, total = 0;
    for (int round = 0; round < 4000; round++) {
        char pat[64];
        snprintf(pat, sizeof(pat), "%s%s%s", lits[rnd(6)], classes[rnd(NCL)], quants[rnd(NQ)]);
        if (rnd(8) == 0) snprintf(pat, sizeof(pat), "%s", lits[rnd(6)]);
        int code;
        PCRE2_SIZE off;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
        char text[160];
        snprintf(text, sizeof(text), "allow publish username ~ \"%s\" topic \"t\"\n", pat);
        exh_policy *p = NULL;
        exh_status st = exh_policy_parse("s.policy", text, strlen(text), &p, NULL);
        if (!re) {
            assert_int_equal(st, EXH_ESYNTAX); /* both refuse the pattern */
            continue;
        }
        assert_int_equal(st, EXH_OK);
        total++;
        simple += p->rules[0].conds[0].sre != NULL;
        for (int k = 0; k < 40; k++) {
            char subj[64];
            size_t n = 0;
            if (rnd(3) == 0) { /* often start with the literal */
                const char *l = pat;
                while (*l && !strchr("[.(x", *l) && n < 8)
                    subj[n++] = *l++;
                while (n && ((unsigned char)subj[n - 1] & 0xc0) == 0x80) /* whole characters */
                    n--;
                if (n && (unsigned char)subj[n - 1] >= 0xc0) n--;
            }
            for (size_t c = rnd(6); c > 0; c--) {
                const char *ch = alphabet[rnd(NA)];
                memcpy(subj + n, ch, strlen(ch));
                n += strlen(ch);
            }
            int want = pcre2_match(re, (PCRE2_SPTR)subj, n, 0, 0, md, NULL) >= 0;
            exh_request r;
            exh_result res;
            exh_request_init(&r, EXH_PUBLISH);
            r.username = subj;
            r.username_len = n;
            r.topic = "t";
            r.topic_len = 1;
            int got = exh_eval(p, &r, ctx, &res) == EXH_ALLOW;
            if (got != want)
                fail_msg("pattern \"%s\" (simple=%d) on %zu bytes \"%.*s\": engine %d, PCRE2 %d",
                         pat, p->rules[0].conds[0].sre != NULL, n, (int)n, subj, got, want);
        }
        pcre2_code_free(re);
        exh_policy_free(p);
    }
#undef NCL
#undef NQ
#undef NA
    /* The fast path must actually be exercised, and not take everything. */
    assert_true(simple > total / 4);
    assert_true(simple < total);
    pcre2_match_data_free(md);
    exh_evalctx_free(ctx);
}

/* The literal prefix checked before PCRE2 must be one every match starts
 * with, even when PCRE2 skips items (comments, \\E, \\Q\\E) between the last
 * literal and its quantifier. */
static void test_regex_prefix_with_skipped_items(void **state)
{
    (void)state;
    static const struct {
        const char *re, *subject;
    } cases[] = {
        {"tests(?# s is optional)?", "test"},
        {"admin\\Q\\E?", "admi"},
        {"ab\\E*", "a"},
        {"ab(?#x)(?#y){0,1}", "a"},
        {"dev-(?i)X", "dev-x"},
        {"ab{x", "ab{x"},
        {"abc\\d+", "abc1"},
        {"a.b", "axb"},
        {"t[0-9]", "t1"},
        /* a quantifier after a multi-byte character applies to all of it */
        {"a\xc3\xa9?", "a"},
        {"a\xc3\xa9*", "a"},
        {"\xe2\x82\xac+", "\xe2\x82\xac\xe2\x82\xac"},
        {"x\xe2\x82\xac{0}", "x"},
        {"\xc3\xa9(?#c)?", ""},
        {"ab\xf0\x9f\x98\x80?c", "abc"},
    };
    exh_evalctx *ctx = exh_evalctx_new();
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int code;
        PCRE2_SIZE off;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)cases[i].re, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
        assert_non_null(re);
        int want = pcre2_match(re, (PCRE2_SPTR)cases[i].subject, strlen(cases[i].subject), 0, 0, md,
                               NULL) >= 0;
        pcre2_code_free(re);
        char text[256];
        snprintf(text, sizeof(text), "deny publish username ~ \"%s\" topic \"#\"\ndefault allow\n",
                 cases[i].re);
        exh_policy *p = compile(text);
        exh_request r;
        exh_result res;
        exh_request_init(&r, EXH_PUBLISH);
        r.username = cases[i].subject;
        r.username_len = strlen(r.username);
        r.topic = "t";
        r.topic_len = 1;
        int got = exh_eval(p, &r, ctx, &res) == EXH_DENY;
        if (got != want)
            fail_msg("regex %s on %s: engine %d, PCRE2 %d", cases[i].re, cases[i].subject, got,
                     want);
        exh_policy_free(p);
    }
    pcre2_match_data_free(md);
    exh_evalctx_free(ctx);
}

/* Compiling policies from several threads at once (a reload while another
 * front end compiles) gives each the same, intact policy. */
static void *compile_loop(void *arg)
{
    (void)arg;
    exh_evalctx *ctx = exh_evalctx_new();
    for (int round = 0; round < 200; round++) {
        exh_policy *p = NULL;
        if (exh_policy_parse("t", main_policy, strlen(main_policy), &p, NULL) != EXH_OK)
            return (void *)1;
        for (size_t i = 0; i < sizeof(main_cases) / sizeof(main_cases[0]); i++) {
            exh_request r;
            exh_str groups[8];
            char gbuf[128];
            build(&main_cases[i], &r, groups, gbuf);
            exh_result res;
            exh_eval(p, &r, ctx, &res);
            if (strcmp(exh_decision_str(res.decision), main_cases[i].expect) != 0) {
                exh_policy_free(p);
                return (void *)1;
            }
        }
        exh_policy_free(p);
    }
    exh_evalctx_free(ctx);
    return NULL;
}

static void test_concurrent_compiles(void **state)
{
    (void)state;
    pthread_t a, b;
    void *ra, *rb;
    assert_int_equal(pthread_create(&a, NULL, compile_loop, NULL), 0);
    assert_int_equal(pthread_create(&b, NULL, compile_loop, NULL), 0);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    assert_null(ra);
    assert_null(rb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_policy),
        cmocka_unit_test(test_invalid_reasons),
        cmocka_unit_test(test_default_values),
        cmocka_unit_test(test_queue_prefix_per_front_end),
        cmocka_unit_test(test_delivery_ignores_qos_option),
        cmocka_unit_test(test_regex_limit_fails_closed),
        cmocka_unit_test(test_identity_placeholders),
        cmocka_unit_test(test_regex_on_characters),
        cmocka_unit_test(test_one_character_names),
        cmocka_unit_test(test_invalid_utf8_names),
        cmocka_unit_test(test_dollar_rule_for_placeholder_levels),
        cmocka_unit_test(test_readme_choices),
        cmocka_unit_test(test_first_match_across_files),
        cmocka_unit_test(test_index_matches_scan),
        cmocka_unit_test(test_matcher_agrees_with_reference),
        cmocka_unit_test(test_overlap_reference_is_exact),
        cmocka_unit_test(test_simple_regex_agrees_with_pcre2),
        cmocka_unit_test(test_simple_capture_agrees_with_pcre2),
        cmocka_unit_test(test_regex_prefix_with_skipped_items),
        cmocka_unit_test(test_concurrent_compiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
