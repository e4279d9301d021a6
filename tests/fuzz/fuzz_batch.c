/*
 * fuzz_batch.c -- libFuzzer target for the `check --batch` request reader.
 *
 * The input is one request line.  Whatever it is, exh_batch_parse must
 * not crash, leak or read outside it (it gets a private copy of exactly
 * the input's size, without a terminating NUL), and must give either a
 * request or an error with a message.  A request that parsed must:
 *
 *   - keep the reader's promises: a known action, a topic for publish and
 *     subscribe, a password only on a connect with a username, qos 0..2,
 *     retain 0/1, at most EXH_BATCH_MAX_GROUPS groups, every string
 *     NUL-terminated at its length;
 *   - own its strings: the input copy is freed before they are read, so
 *     ASan reports any that still point into it;
 *   - survive a round trip: written back as JSON with jansson and read
 *     again, it is the same request;
 *   - be answerable the way `check --batch` answers it: publish and
 *     subscribe by exh_eval (which must agree with the linear scan, and
 *     give a self-consistent result), connect through exh_authenticate
 *     without a store, against a small policy with one rule of each kind.
 *
 * Build and run: tests/fuzz/run.sh SECONDS
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/addr.h"
#include "exhook/auth.h"
#include "exhook/batch.h"
#include "exhook/error.h"
#include "exhook/eval.h"
#include "exhook/policy.h"
#include "rule.h" /* exh_eval_linear */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broke: abort so libFuzzer keeps the input as a crash. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_batch: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Rules the seeds can reach: placeholders, captures, groups, peerhost,
 * options, `eq`, and connect rules for anonymous and named clients. */
static const char policy_text[] =
    "default deny\n"
    "allow publish clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" topic \"devices/${serial}/up/#\" "
    "qos 0-1 retain false\n"
    "allow subscribe clientid ~ \"dev-.*\" topic \"devices/${clientid}/down/#\"\n"
    "allow pubsub username ~ \"(?<tenant>[a-z0-9]+):.+\" topic \"tenants/${tenant}/#\"\n"
    "allow subscribe group \"ops\" topic \"alerts/#\" \"$SYS/broker/+/uptime\"\n"
    "deny subscribe topic eq \"#\" eq \"+/#\"\n"
    "allow all peerhost 127.0.0.0/8 topic \"local/#\"\n"
    "allow publish username \"u\" topic \"t/%u/#\" \"x/${clientid}\"\n"
    "deny connect group \"internal\" not peerhost 10.0.0.0/8\n"
    "allow connect anonymous peerhost 127.0.0.1\n"
    "allow connect username \"alice\" peerhost ::1/128\n";

static exh_policy *policy;
static exh_evalctx *ctx;
static exh_auth_cache *cache;

static void setup(void)
{
    exh_error err;
    if (exh_policy_parse("fuzz_batch.policy", policy_text, sizeof(policy_text) - 1, &policy,
                         &err) != EXH_OK) {
        char buf[2048];
        exh_error_format(&err, buf, sizeof(buf));
        fprintf(stderr, "fuzz_batch: the built-in policy does not compile:\n%s", buf);
        abort();
    }
    ctx = exh_evalctx_new();
    cache = exh_auth_cache_new(0, 1);
    CHECK(ctx && cache);
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    if (!a || !b) return !a && !b;
    return alen == blen && !memcmp(a, b, alen);
}

static void check_string(const char *s, size_t len, size_t input_size)
{
    if (!s) return;
    CHECK(len <= input_size); /* decoding never lengthens a string */
    CHECK(s[len] == '\0');
}

static void check_shape(const exh_batch_req *b, size_t size)
{
    const exh_request *r = &b->req;
    CHECK(r->action == EXH_PUBLISH || r->action == EXH_SUBSCRIBE || r->action == EXH_CONNECT);
    CHECK(r->action == EXH_CONNECT || r->topic != NULL);
    CHECK(!b->password || (r->action == EXH_CONNECT && r->username));
    CHECK(r->qos >= 0 && r->qos <= 2);
    CHECK(r->retain == 0 || r->retain == 1);
    CHECK(r->peerhost.family == 0 || r->peerhost.family == 4 || r->peerhost.family == 6);
    CHECK(r->ngroups <= EXH_BATCH_MAX_GROUPS);
    CHECK(r->groups != NULL);
    CHECK(b->groups_given || r->ngroups == 0);
    CHECK(b->superuser_given || !r->superuser);
    check_string(r->username, r->username_len, size);
    check_string(r->clientid, r->clientid_len, size);
    check_string(r->topic, r->topic_len, size);
    check_string(b->password, b->password_len, size);
    for (size_t i = 0; i < r->ngroups; i++)
        check_string(r->groups[i].ptr, r->groups[i].len, size);
}

/* The request as JSON again (jansson escapes NULs as \u0000). */
static char *write_back(const exh_batch_req *b)
{
    const exh_request *r = &b->req;
    static const char *const names[] = {
        [EXH_PUBLISH] = "publish", [EXH_SUBSCRIBE] = "subscribe", [EXH_CONNECT] = "connect"};
    json_t *o = json_object();
    CHECK(o != NULL);
    json_object_set_new(o, "action", json_string(names[r->action]));
    if (r->username) json_object_set_new(o, "username", json_stringn(r->username, r->username_len));
    if (r->clientid) json_object_set_new(o, "clientid", json_stringn(r->clientid, r->clientid_len));
    if (r->peerhost.family) {
        char addr[64];
        exh_addr_format(&r->peerhost, addr, sizeof(addr));
        json_object_set_new(o, "peerhost", json_string(addr));
    }
    if (r->topic) json_object_set_new(o, "topic", json_stringn(r->topic, r->topic_len));
    json_object_set_new(o, "qos", json_integer(r->qos));
    json_object_set_new(o, "retain", json_boolean(r->retain));
    if (b->superuser_given) json_object_set_new(o, "superuser", json_boolean(r->superuser));
    if (b->groups_given) {
        json_t *g = json_array();
        CHECK(g != NULL);
        for (size_t i = 0; i < r->ngroups; i++)
            json_array_append_new(g, json_stringn(r->groups[i].ptr, r->groups[i].len));
        json_object_set_new(o, "groups", g);
    }
    if (b->password) json_object_set_new(o, "password", json_stringn(b->password, b->password_len));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    CHECK(text != NULL);
    return text;
}

static void check_round_trip(const exh_batch_req *b)
{
    char *text = write_back(b);
    exh_batch_req *c;
    exh_error err;
    exh_status st = exh_batch_parse(text, strlen(text), &c, &err);
    if (st != EXH_OK) {
        fprintf(stderr, "fuzz_batch: written back, the request does not parse: %s\n%s\n",
                err.message, text);
        abort();
    }
    const exh_request *x = &b->req, *y = &c->req;
    CHECK(x->action == y->action);
    CHECK(same_bytes(x->username, x->username_len, y->username, y->username_len));
    CHECK(same_bytes(x->clientid, x->clientid_len, y->clientid, y->clientid_len));
    CHECK(same_bytes(x->topic, x->topic_len, y->topic, y->topic_len));
    CHECK(same_bytes(b->password, b->password_len, c->password, c->password_len));
    CHECK(x->peerhost.family == y->peerhost.family);
    CHECK(!memcmp(x->peerhost.bytes, y->peerhost.bytes, sizeof(x->peerhost.bytes)));
    CHECK(x->qos == y->qos && x->retain == y->retain && x->superuser == y->superuser);
    CHECK(b->groups_given == c->groups_given && b->superuser_given == c->superuser_given);
    CHECK(x->ngroups == y->ngroups);
    for (size_t i = 0; i < x->ngroups; i++)
        CHECK(same_bytes(x->groups[i].ptr, x->groups[i].len, y->groups[i].ptr, y->groups[i].len));
    exh_batch_req_free(c);
    free(text);
}

static void check_result(const exh_request *r, const exh_result *res)
{
    CHECK(res->decision == EXH_ALLOW || res->decision == EXH_DENY || res->decision == EXH_IGNORE);
    switch (res->basis) {
    case EXH_BY_RULE: {
        const exh_rule_info *ri = exh_policy_rule(policy, res->rule);
        CHECK(ri != NULL);
        CHECK(ri->effect == res->decision);
        CHECK(ri->actions & r->action);
        break;
    }
    case EXH_BY_DEFAULT:
        CHECK(r->action != EXH_CONNECT);
        CHECK(res->decision == exh_policy_default(policy));
        break;
    case EXH_BY_SUPERUSER:
        CHECK(r->superuser && r->action != EXH_CONNECT && res->decision == EXH_ALLOW);
        break;
    case EXH_BY_INVALID:
        CHECK(res->decision == EXH_DENY && res->reason && res->reason[0]);
        break;
    case EXH_BY_CREDENTIALS:
    case EXH_BY_ANONYMOUS:
        CHECK(r->action == EXH_CONNECT);
        break;
    default:
        CHECK(!"an unknown basis");
    }
}

/* Answer the request as `check --batch` does without a store. */
static void answer(const exh_batch_req *b)
{
    const exh_request *r = &b->req;
    if (r->action != EXH_CONNECT) {
        exh_result a, l;
        exh_eval(policy, r, ctx, &a);
        exh_eval_linear(policy, r, ctx, &l);
        CHECK(a.decision == l.decision && a.basis == l.basis);
        CHECK(a.basis != EXH_BY_RULE || a.rule == l.rule);
        check_result(r, &a);
        return;
    }
    exh_auth_request ar = {.username = r->username,
                           .username_len = r->username_len,
                           .clientid = r->clientid,
                           .clientid_len = r->clientid_len,
                           .password = b->password,
                           .password_len = b->password_len,
                           .peerhost = r->peerhost,
                           .check_password = b->password != NULL,
                           .groups_given = b->groups_given,
                           .groups = r->groups,
                           .ngroups = r->ngroups};
    exh_auth_result auth;
    exh_error err;
    exh_authenticate(NULL, cache, policy, ctx, &ar, &auth, &err);
    if (auth.rules_ran) {
        check_result(r, &auth.rule);
    } else {
        /* Without a store only a password to check, or a name no store
         * could hold, stops the rules from running. */
        CHECK(b->password || memchr(r->username, '\0', r->username_len));
        CHECK(auth.decision == EXH_DENY);
    }
    exh_auth_result_clear(&auth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!policy) setup();
    if (size > 65536) return 0;
    char *copy = malloc(size ? size : 1);
    CHECK(copy != NULL);
    if (size) memcpy(copy, data, size);

    exh_batch_req *b;
    exh_error err;
    memset(&err, 0xA5, sizeof(err)); /* every field read on failure must be written */
    memset(&b, 0xA5, sizeof(b));     /* and the request pointer is written either way */
    exh_status st = exh_batch_parse(copy, size, &b, &err);
    free(copy); /* from here on, a string still in the input is a use after free */

    if (st != EXH_OK) {
        CHECK(st == EXH_ESYNTAX || st == EXH_EINVAL || st == EXH_ENOMEM);
        CHECK(err.status == st);
        CHECK(err.message[0] != '\0');
        CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
        CHECK(err.file[0] == '\0');
        CHECK(st == EXH_ESYNTAX ? err.line >= 1 : err.line == 0 && err.col == 0);
        CHECK(b == NULL);
        char buf[1024];
        CHECK(exh_error_format(&err, buf, sizeof(buf)) > 0);
        exh_batch_req_free(b);
        return 0;
    }
    CHECK(err.status == EXH_OK);
    check_shape(b, size);
    check_round_trip(b);
    answer(b);
    exh_batch_req_free(b);
    return 0;
}
