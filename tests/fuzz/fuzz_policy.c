/*
 * fuzz_policy.c -- libFuzzer target for the policy compiler and evaluator.
 *
 * The input is policy text.  Whatever it is, compiling must not crash,
 * leak or read outside the buffer (it is passed without a terminating NUL
 * on purpose, so ASan sees any overread), and must either give a policy or
 * an error that renders.  A policy that compiled is then asked a fixed set
 * of awkward requests: each answer must be self-consistent, and the
 * indexed evaluator must agree with the reference linear scan when the
 * library provides one (the index is an optimisation; it must never change
 * a decision).
 *
 * Build and run: tests/fuzz/run.sh SECONDS
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/addr.h"
#include "exhook/error.h"
#include "exhook/eval.h"
#include "exhook/policy.h"

/* The library's reference evaluator (internal, src/rule.h: every rule in
 * order, no index).  Declared weak so this target still links, and merely
 * skips the differential check, if it is ever renamed or removed. */
exh_decision exh_eval_linear(const exh_policy *p, const exh_request *req, exh_evalctx *ctx,
                             exh_result *res) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broke: abort so libFuzzer keeps the input as a crash. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_policy: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A literal with its exact length, so embedded NULs survive. */
#define S(lit) lit, sizeof(lit) - 1

typedef struct fixed_req {
    exh_action action;
    const char *user; /* NULL: anonymous */
    size_t user_len;
    const char *cid;
    size_t cid_len;
    const char *topic;
    size_t topic_len;
    const char *peer; /* NULL: unknown */
    int qos, retain;
    int groups; /* index into group_sets */
    bool superuser;
} fixed_req;

static const exh_str group_sets[][3] = {
    {{0}},
    {{"ops", 3}},
    {{"readonly", 8}, {"internal", 8}},
    {{"", 0}, {"g\0x", 3}, {"\xff\xfe", 2}},
};
static const size_t group_counts[] = {0, 1, 2, 3};

/* A long client id: placeholder values and regex subjects of unusual size. */
static char long_cid[1200];

/* Requests shaped after the seed policies (so mutated rules still meet
 * requests they can match), plus hostile values: NUL, '/', '#', '+',
 * invalid UTF-8 and empty strings where placeholders would expand them. */
static const fixed_req fixed[] = {
    {EXH_PUBLISH, S("alice"), S("dev-0a1b2c3d"), S("devices/0a1b2c3d/up/t"), "10.1.2.3", 1, 0, 0,
     false},
    {EXH_PUBLISH, S("dev000001"), S("dev000001-7"), S("devices/dev000001/up/temp"), NULL, -1, -1, 0,
     false},
    {EXH_PUBLISH, S("t1:bob"), S("web-1"), S("tenants/t1/shared/x"), "::ffff:127.0.0.1", 0, 1, 2,
     false},
    {EXH_PUBLISH, S("a/b"), S("#"), S("devices/#/up/x"), "2001:db8::1", 2, 0, 0, false},
    {EXH_PUBLISH, S("x\0y"), S("+"), S("a/b"), "127.0.0.1", 0, 0, 3, false},
    {EXH_PUBLISH, NULL, 0, S(""), S("$SYS/broker/x/uptime"), NULL, 0, 0, 0, false},
    {EXH_PUBLISH, S("\xff\xfe"), S("\xc3\x28"), S("a/\xc3\x28"), NULL, 0, 0, 0, false},
    {EXH_PUBLISH, S("root"), S("c"), S("any/thing"), NULL, 0, 0, 0, true},
    {EXH_SUBSCRIBE, S("dashboard"), S("dash-1"), S("$SYS/#"), "127.0.0.1", 0, -1, 0, false},
    {EXH_SUBSCRIBE, S("carol"), S("ops-1"), S("$share/g/a/#"), "10.0.0.7", 1, -1, 1, false},
    {EXH_SUBSCRIBE, S("carol"), S("ops-1"), S("$share/g/alerts/+/critical"), NULL, 2, -1, 1, false},
    {EXH_SUBSCRIBE, S("dev-0a1b2c3d"), S("dev-0a1b2c3d"), S("devices/dev-0a1b2c3d/down/#"), NULL,
     -1, -1, 0, false},
    {EXH_SUBSCRIBE, S("t1:admin"), S(""), S("$queue/tenants/t1/+/status"), NULL, 0, -1, 0, false},
    {EXH_SUBSCRIBE, S("mallory"), S("#"), S("#"), NULL, 0, -1, 2, false},
    {EXH_SUBSCRIBE, S("%u"), S("${clientid}"), S("+/#"), NULL, 0, -1, 0, false},
    {EXH_SUBSCRIBE, S("bob"), S("c"), S("$share/g"), NULL, 0, -1, 0, false},
    {EXH_CONNECT, NULL, 0, S("anon"), NULL, 0, "127.0.0.1", -1, -1, 0, false},
    {EXH_CONNECT, S("alice"), S("dev-0a1b2c3d"), NULL, 0, "10.200.0.1", -1, -1, 2, false},
    {EXH_CONNECT, S("bob"), S("x\0y"), NULL, 0, "fe80::1", -1, -1, 1, false},
    {EXH_CONNECT, S(""), S(""), NULL, 0, NULL, -1, -1, 0, false},
};
#define NFIXED (sizeof(fixed) / sizeof(fixed[0]))

static exh_request reqs[NFIXED + 1];
static exh_evalctx *ctx;

/* Built once: libFuzzer calls the target millions of times and the
 * requests never change. */
static void setup(void)
{
    ctx = exh_evalctx_new();
    CHECK(ctx != NULL);
    for (size_t i = 0; i < NFIXED; i++) {
        const fixed_req *f = &fixed[i];
        exh_request *r = &reqs[i];
        exh_request_init(r, f->action);
        CHECK(r->action == f->action && r->username == NULL && r->qos == -1 && r->retain == -1);
        r->username = f->user;
        r->username_len = f->user_len;
        r->clientid = f->cid;
        r->clientid_len = f->cid_len;
        r->topic = f->topic;
        r->topic_len = f->topic_len;
        if (f->peer) CHECK(exh_addr_parse(f->peer, strlen(f->peer), &r->peerhost));
        r->qos = f->qos;
        r->retain = f->retain;
        r->groups = group_sets[f->groups];
        r->ngroups = group_counts[f->groups];
        r->superuser = f->superuser;
    }
    /* And one with a client id far longer than any level or buffer. */
    memset(long_cid, 'a', sizeof(long_cid));
    exh_request *r = &reqs[NFIXED];
    exh_request_init(r, EXH_PUBLISH);
    r->username = "alice";
    r->username_len = 5;
    r->clientid = long_cid;
    r->clientid_len = sizeof(long_cid);
    r->topic = "devices/x/up/y";
    r->topic_len = 14;
    r->qos = 0;
    r->retain = 0;
}

static void check_result(const exh_policy *p, const exh_request *req, exh_decision d,
                         const exh_result *res)
{
    CHECK(d == res->decision);
    CHECK(d == EXH_ALLOW || d == EXH_DENY || d == EXH_IGNORE);
    CHECK(exh_basis_str(res->basis) != NULL);
    CHECK(exh_decision_str(d) != NULL);
    if (res->basis == EXH_BY_RULE) {
        const exh_rule_info *ri = exh_policy_rule(p, res->rule);
        CHECK(ri != NULL);
        CHECK(ri->effect == d);
    }
    if (res->basis == EXH_BY_INVALID) CHECK(res->reason != NULL && d == EXH_DENY);
    if (res->basis == EXH_BY_DEFAULT)
        CHECK(d == exh_policy_default(p) && req->action != EXH_CONNECT);
    if (res->basis == EXH_BY_SUPERUSER)
        CHECK(d == EXH_ALLOW && req->superuser && req->action != EXH_CONNECT);
    if (res->basis == EXH_BY_CREDENTIALS || res->basis == EXH_BY_ANONYMOUS)
        CHECK(req->action == EXH_CONNECT);
    if (res->basis == EXH_BY_ANONYMOUS) CHECK(d == EXH_DENY && req->username == NULL);
}

static void exercise(const exh_policy *p)
{
    uint32_t n = exh_policy_rule_count(p);
    for (uint32_t i = 0; i < n; i++) {
        const exh_rule_info *ri = exh_policy_rule(p, i);
        CHECK(ri != NULL);
        CHECK(ri->number == i + 1);
        CHECK(ri->effect == EXH_ALLOW || ri->effect == EXH_DENY);
        CHECK(ri->actions != 0 &&
              (ri->actions & ~(unsigned)(EXH_PUBLISH | EXH_SUBSCRIBE | EXH_CONNECT)) == 0);
        CHECK(ri->file != NULL && ri->text != NULL && ri->line >= 1);
        CHECK(exh_action_str(ri->actions) != NULL);
        /* Touch every byte so ASan checks the strings are whole. */
        (void)strlen(ri->file);
        (void)strlen(ri->text);
    }
    CHECK(exh_policy_rule(p, n) == NULL);
    uint32_t line = 12345;
    const char *df = exh_policy_default_file(p, &line);
    if (line != 0 && df) (void)strlen(df);

    for (size_t i = 0; i < NFIXED + 1; i++) {
        exh_result res, again;
        memset(&res, 0xA5, sizeof(res)); /* garbage in: every field must be written */
        exh_decision d = exh_eval(p, &reqs[i], ctx, &res);
        check_result(p, &reqs[i], d, &res);
        /* Same question, same answer: nothing may leak between calls
         * through the context. */
        exh_decision d2 = exh_eval(p, &reqs[i], ctx, &again);
        CHECK(d2 == d && again.basis == res.basis);
        if (res.basis == EXH_BY_RULE) CHECK(again.rule == res.rule);
        if (exh_eval_linear) {
            exh_result lin;
            exh_decision dl = exh_eval_linear(p, &reqs[i], ctx, &lin);
            if (dl != d || lin.basis != res.basis ||
                (res.basis == EXH_BY_RULE && lin.rule != res.rule)) {
                fprintf(stderr,
                        "fuzz_policy: request %zu: index says %s by %s (rule %u), "
                        "linear scan says %s by %s (rule %u)\n",
                        i, exh_decision_str(d), exh_basis_str(res.basis), (unsigned)res.rule,
                        exh_decision_str(dl), exh_basis_str(lin.basis), (unsigned)lin.rule);
                abort();
            }
        }
    }
}

static void check_error(exh_status st, const exh_error *err)
{
    CHECK(err->status == st);
    CHECK(err->message[0] != '\0');
    CHECK(exh_status_str(st) != NULL);

    /* Render in full, then into a buffer too small: the return value is
     * the full length either way and the output is always terminated. */
    static char full[4096];
    size_t need = exh_error_format(err, full, sizeof(full));
    CHECK(need > 0);
    if (need < sizeof(full)) CHECK(strlen(full) == need);
    char small[17];
    memset(small, 'x', sizeof(small));
    size_t need2 = exh_error_format(err, small, sizeof(small));
    CHECK(need2 == need);
    CHECK(memchr(small, '\0', sizeof(small)) != NULL);
    if (need < sizeof(full)) CHECK(strncmp(small, full, sizeof(small) - 1) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) setup();

    exh_policy *p = NULL;
    exh_error err;
    /* Garbage in, not exh_error_clear(): on failure the library must fill
     * in every field it is read by, whatever the caller left there. */
    memset(&err, 0xA5, sizeof(err));
    exh_status st = exh_policy_parse("fuzz.policy", (const char *)data, size, &p, &err);
    if (st == EXH_OK) {
        CHECK(p != NULL);
        exercise(p);
        exh_policy_free(p);
    } else {
        /* All or nothing: a failed compile hands out no policy. */
        CHECK(p == NULL);
        check_error(st, &err);
    }
    return 0;
}
