/*
 * check -- decide one request, or a stream of JSON-lines requests.
 *
 * The credential store is consulted when its file exists (never created
 * here): for a user's groups and superuser flag, and to verify a password.
 * Without it everything works as on an empty store.
 */
#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exhook/auth.h"
#include "exhook/batch.h"
#include "exhook/eval.h"

static const char check_help[] =
    "usage: exhookctl check --action ACTION [--username U] [--clientid C]\n"
    "                       [--peerhost IP] [--topic T] [--qos N] [--retain]\n"
    "                       [--group G]... [--superuser] [--password-stdin] [--json]\n"
    "       exhookctl check --batch   < requests.jsonl\n"
    "\n"
    "Decide one request against the policy.  Prints the decision (allow, deny or\n"
    "ignore) on the first line and what decided it on the next: the rule as\n"
    "'file:line: text', or 'default', 'superuser', 'credentials', 'anonymous',\n"
    "or 'invalid: <reason>'.\n"
    "\n"
    "  --action A     publish, subscribe or connect\n"
    "  --username U   absent: the client is anonymous\n"
    "  --peerhost IP  absent: unknown (rules that need it fail closed)\n"
    "  --qos N        0..2 (default 0)    --retain   publish with retain set\n"
    "  --group G      the user's groups (repeatable); --superuser likewise.  Absent:\n"
    "                 the user's groups and flag in the credential store, if any\n"
    "  --password-stdin  connect: verify the password (one line of stdin) against\n"
    "                 the store; a refusal prints 'credentials: <why>'\n"
    "  --json         print {\"decision\":...,\"rule\":...} instead\n"
    "  --batch        JSON lines on stdin, one JSON decision a line on stdout:\n"
    "                 {\"action\":\"publish\",\"username\":\"u\",\"clientid\":\"c\",\n"
    "                  \"peerhost\":\"1.2.3.4\",\"topic\":\"t\",\"qos\":0,\"retain\":false,\n"
    "                  \"groups\":[\"g\"],\"superuser\":false,\"password\":\"p\"}\n"
    "\n"
    "The store (--db) is read only if its file exists; it is never created.  A\n"
    "connect without a password is decided by the connect rules as if its\n"
    "credentials had been verified.  Exit status: 0 allow, 1 deny or ignore,\n"
    "2 bad input or an unreadable store.\n";

static int exit_for(exh_decision d)
{
    return d == EXH_ALLOW ? EXIT_ALLOW : EXIT_DENY;
}

static void print_json_result(const exh_policy *p, const exh_result *res)
{
    char buf[512];
    printf("{\"decision\":\"%s\",\"rule\":", exh_decision_str(res->decision));
    if (res->basis == EXH_BY_INVALID) {
        fputs("null,\"reason\":", stdout);
        json_put_string(stdout, res->reason, strlen(res->reason));
    } else {
        describe_result(p, res, buf, sizeof(buf), false);
        json_put_string(stdout, buf, strlen(buf));
        if (res->basis == EXH_BY_RULE) {
            const char *t = exh_policy_rule(p, res->rule)->text;
            fputs(",\"text\":", stdout);
            json_put_string(stdout, t, strlen(t));
        }
    }
    fputs("}\n", stdout);
}

static void print_json_invalid(const char *reason)
{
    fputs("{\"decision\":\"deny\",\"rule\":null,\"reason\":", stdout);
    json_put_string(stdout, reason, strlen(reason));
    fputs("}\n", stdout);
}

#define MAX_GROUPS 256

/* What a request says beyond exh_request. */
typedef struct check_extra {
    const char *password; /* connect: verify it against the store */
    size_t password_len;
    bool groups_given, superuser_given; /* these override the store's */
} check_extra;

/* How a request came out. */
typedef struct verdict {
    exh_result res;      /* the evaluation, unless the credentials refused */
    bool by_credentials; /* the credential check refused: see reason */
    exh_auth_reason reason;
    bool store_failed; /* the store could not be read: err says why */
} verdict;

/* A user's groups and superuser flag from the store, where the request did
 * not give its own.  Returns 0 (found or not), -1 when the store failed. */
static int store_attrs(exh_store *s, exh_request *rq, const check_extra *x, exh_user *u,
                       exh_str **groups, exh_error *err)
{
    if (!s || !rq->username || (x->groups_given && x->superuser_given)) return 0;
    if (memchr(rq->username, '\0', rq->username_len)) return 0; /* no stored name has one */
    char *name = strndup(rq->username, rq->username_len);
    if (!name) return -1;
    exh_status st = exh_store_get_user(s, name, u, err);
    free(name);
    if (st == EXH_ENOTFOUND) return 0;
    if (st) return -1;
    if (!x->superuser_given) rq->superuser = u->superuser;
    if (x->groups_given) return 0;
    *groups = u->ngroups ? calloc(u->ngroups, sizeof(**groups)) : NULL;
    if (u->ngroups && !*groups) return -1;
    for (size_t i = 0; i < u->ngroups; i++)
        (*groups)[i] = (exh_str){u->groups[i], strlen(u->groups[i])};
    rq->groups = *groups;
    rq->ngroups = u->ngroups;
    return 0;
}

static void decide_topic(const exh_policy *p, exh_store *s, exh_evalctx *ctx, exh_request *rq,
                         const check_extra *x, verdict *v, exh_error *err)
{
    exh_user u = {0};
    exh_str *groups = NULL;
    if (store_attrs(s, rq, x, &u, &groups, err) == 0)
        exh_eval(p, rq, ctx, &v->res);
    else
        v->store_failed = true;
    free(groups);
    exh_user_clear(&u);
}

/* A connect: the credential check (a password, or with none as if it had
 * passed), then the connect rules. */
static void decide_connect(const exh_policy *p, exh_store *s, exh_auth_cache *cache,
                           exh_evalctx *ctx, const exh_request *rq, const check_extra *x,
                           verdict *v, exh_error *err)
{
    exh_auth_request ar = {.username = rq->username,
                           .username_len = rq->username_len,
                           .clientid = rq->clientid,
                           .clientid_len = rq->clientid_len,
                           .password = x->password,
                           .password_len = x->password_len,
                           .peerhost = rq->peerhost,
                           .check_password = x->password != NULL,
                           .groups_given = x->groups_given,
                           .groups = rq->groups,
                           .ngroups = rq->ngroups};
    exh_auth_result auth;
    exh_error_clear(err);
    exh_status st = exh_authenticate(s, cache, p, ctx, &ar, &auth, err);
    if (!auth.rules_ran) {
        v->by_credentials = true;
        v->reason = auth.reason;
        v->store_failed = st != EXH_OK && err->message[0];
    } else {
        v->res = auth.rule;
    }
    exh_auth_result_clear(&auth);
}

static void decide(const exh_policy *p, exh_store *s, exh_auth_cache *cache, exh_evalctx *ctx,
                   exh_request *rq, const check_extra *x, verdict *v, exh_error *err)
{
    memset(v, 0, sizeof(*v));
    if (rq->action == EXH_CONNECT)
        decide_connect(p, s, cache, ctx, rq, x, v, err);
    else
        decide_topic(p, s, ctx, rq, x, v, err);
}

/* The password, or the store's absence, makes these lines' answers. */
static void print_json_credentials(exh_auth_reason why)
{
    const char *r = exh_auth_reason_str(why);
    fputs("{\"decision\":\"deny\",\"rule\":\"credentials\",\"reason\":", stdout);
    json_put_string(stdout, r, strlen(r));
    fputs("}\n", stdout);
}

/*
 * Batch lines may carry passwords, and jansson (under exh_batch_parse)
 * copies strings through buffers of its own: every block it frees is
 * wiped first.  The size sits in a header aligned like malloc's result.
 */
typedef union wipe_header {
    size_t size;
    max_align_t align;
} wipe_header;

static void *wiping_malloc(size_t n)
{
    wipe_header *h = malloc(sizeof(*h) + n);
    if (!h) return NULL;
    h->size = n;
    return h + 1;
}

static void wiping_free(void *p)
{
    if (!p) return;
    wipe_header *h = (wipe_header *)p - 1;
    wipe(p, h->size);
    free(h);
}

/* A line that is no request: its answer on stdout.  jansson's messages
 * come from its json_error_t, whose text holds at most 159 bytes. */
static void print_json_unparsed(unsigned long lineno, const exh_error *err)
{
    if (err->status == EXH_ESYNTAX) {
        char reason[256];
        snprintf(reason, sizeof(reason), "invalid JSON at line %lu, column %u: %.159s", lineno,
                 err->col, err->message);
        print_json_invalid(reason);
    } else {
        print_json_invalid(err->message);
    }
}

/* One batch request: its answer on stdout; returns the exit status it asks
 * for (0 or EXIT_USAGE). */
static int batch_line(const exh_policy *p, exh_store *s, exh_auth_cache *cache, exh_evalctx *ctx,
                      exh_batch_req *b)
{
    if (b->password && !s) {
        print_json_invalid(
            "password verification needs the credential store, and there is none (see --db)");
        return EXIT_USAGE;
    }
    check_extra x = {.password = b->password,
                     .password_len = b->password_len,
                     .groups_given = b->groups_given,
                     .superuser_given = b->superuser_given};
    verdict v;
    exh_error err;
    decide(p, s, cache, ctx, &b->req, &x, &v, &err);
    if (v.store_failed) {
        char reason[600];
        snprintf(reason, sizeof(reason), "credential store: %s", err.message);
        print_json_invalid(reason);
        return EXIT_USAGE;
    }
    if (v.by_credentials)
        print_json_credentials(v.reason);
    else
        print_json_result(p, &v.res);
    return 0;
}

static int run_batch(const exh_policy *p, exh_store *s)
{
    exh_evalctx *ctx = exh_evalctx_new();
    exh_auth_cache *cache = exh_auth_cache_new(0, 1);
    if (!ctx || !cache) {
        exh_evalctx_free(ctx);
        exh_auth_cache_free(cache);
        fprintf(stderr, "exhookctl check: out of memory\n");
        return EXIT_USAGE;
    }
    /* stdin's buffer is ours, so the passwords that pass through it can be
     * wiped; answers go out a line at a time so a caller can converse over
     * a pipe. */
    static char inbuf[65536];
    setvbuf(stdin, inbuf, _IOFBF, sizeof(inbuf));
    setvbuf(stdout, NULL, _IOLBF, 0);
    json_set_alloc_funcs(wiping_malloc, wiping_free);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;
    unsigned long lineno = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == len) continue;
        exh_batch_req *b;
        exh_error err;
        exh_status st = exh_batch_parse(line, len, &b, &err);
        wipe(line, (size_t)n);
        if (st != EXH_OK) {
            print_json_unparsed(lineno, &err);
            wipe(&err, sizeof(err)); /* jansson's message quotes the line */
            status = EXIT_USAGE;
            continue;
        }
        if (batch_line(p, s, cache, ctx, b)) status = EXIT_USAGE;
        exh_batch_req_free(b);
    }
    if (line) wipe(line, cap);
    free(line);
    wipe(inbuf, sizeof(inbuf));
    exh_auth_cache_free(cache);
    exh_evalctx_free(ctx);
    return status;
}

/* The options of a single check. */
typedef struct check_opts {
    bool json, batch, have_action, password_stdin;
    exh_action action;
    const char *username, *clientid, *topic, *peer;
    int qos, retain, superuser;
    exh_str groups[MAX_GROUPS];
    size_t ngroups;
} check_opts;

/* Returns 0, -1 after --help, or an exit status. */
static int scan_check(cli *c, int argc, char **argv, check_opts *o)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(check_help, stdout);
            return -1;
        }
        if (arg_flag(&a, "--json")) {
            o->json = true;
        } else if (arg_flag(&a, "--batch")) {
            o->batch = true;
        } else if (arg_flag(&a, "--retain")) {
            o->retain = 1;
        } else if (arg_flag(&a, "--superuser")) {
            o->superuser = 1;
        } else if (arg_flag(&a, "--password-stdin")) {
            o->password_stdin = true;
        } else if (arg_value(&a, "--action", &bad)) {
            if (!bad && !exh_action_parse(a.val, strlen(a.val), &o->action))
                return usage_error(
                    c, "check", "--action must be publish, subscribe or connect, not '%s'", a.val);
            o->have_action = true;
        } else if (arg_value(&a, "--username", &bad)) {
            o->username = a.val;
        } else if (arg_value(&a, "--clientid", &bad)) {
            o->clientid = a.val;
        } else if (arg_value(&a, "--topic", &bad)) {
            o->topic = a.val;
        } else if (arg_value(&a, "--peerhost", &bad)) {
            o->peer = a.val;
        } else if (arg_value(&a, "--qos", &bad)) {
            if (!bad && (strlen(a.val) != 1 || a.val[0] < '0' || a.val[0] > '2'))
                return usage_error(c, "check", "--qos must be 0, 1 or 2, not '%s'", a.val);
            if (!bad) o->qos = a.val[0] - '0';
        } else if (arg_value(&a, "--group", &bad)) {
            if (o->ngroups == MAX_GROUPS)
                return usage_error(c, "check", "too many --group options");
            if (!bad) {
                o->groups[o->ngroups].ptr = a.val;
                o->groups[o->ngroups++].len = strlen(a.val);
            }
        } else {
            return usage_error(c, "check", "unknown argument '%s'", argv[a.i]);
        }
        if (bad) return EXIT_USAGE;
    }
    return 0;
}

static int check_usage(cli *c, const check_opts *o)
{
    if (o->batch) {
        if (o->have_action || o->username || o->clientid || o->topic || o->peer || o->ngroups ||
            o->password_stdin)
            return usage_error(c, "check", "--batch reads requests from stdin; give no others");
        return 0;
    }
    if (!o->have_action) return usage_error(c, "check", "--action is required");
    if (o->action != EXH_CONNECT && !o->topic)
        return usage_error(c, "check", "--topic is required for %s",
                           o->action == EXH_PUBLISH ? "publish" : "subscribe");
    if (o->password_stdin && o->action != EXH_CONNECT)
        return usage_error(c, "check", "--password-stdin is only for --action connect");
    if (o->password_stdin && !o->username)
        return usage_error(c, "check", "--password-stdin needs --username");
    return 0;
}

static int build_request(cli *c, const check_opts *o, exh_request *rq, check_extra *x)
{
    exh_request_init(rq, o->action);
    if (o->username) {
        rq->username = o->username;
        rq->username_len = strlen(o->username);
    }
    if (o->clientid) {
        rq->clientid = o->clientid;
        rq->clientid_len = strlen(o->clientid);
    }
    if (o->topic) {
        rq->topic = o->topic;
        rq->topic_len = strlen(o->topic);
    }
    if (o->peer && !exh_addr_parse(o->peer, strlen(o->peer), &rq->peerhost))
        return usage_error(c, "check", "--peerhost '%s' is not an IPv4 or IPv6 address", o->peer);
    rq->qos = o->qos;
    rq->retain = o->retain;
    rq->superuser = o->superuser;
    rq->groups = o->groups;
    rq->ngroups = o->ngroups;
    memset(x, 0, sizeof(*x));
    x->groups_given = o->ngroups > 0;
    x->superuser_given = o->superuser;
    return 0;
}

static int print_verdict(const exh_policy *p, const check_opts *o, const verdict *v,
                         const exh_error *err)
{
    if (v->store_failed) {
        print_error(err);
        return EXIT_USAGE;
    }
    if (v->by_credentials) {
        if (o->json)
            print_json_credentials(v->reason);
        else
            printf("deny\ncredentials: %s\n", exh_auth_reason_str(v->reason));
        return EXIT_DENY;
    }
    if (o->json) {
        print_json_result(p, &v->res);
    } else {
        char buf[4096];
        describe_result(p, &v->res, buf, sizeof(buf), true);
        printf("%s\n%s\n", exh_decision_str(v->res.decision), buf);
    }
    return exit_for(v->res.decision);
}

/* One request from the command line. */
static int check_one(cli *c, const check_opts *o, const exh_policy *p, exh_store *s,
                     exh_request *rq, check_extra *x)
{
    int rc;
    char pw[PASSWORD_BUF];
    if (o->password_stdin) {
        if (!s) {
            fprintf(stderr,
                    "%s check: --password-stdin needs the credential store, and %s does not "
                    "exist\n",
                    c->prog, c->db_shown);
            return EXIT_USAGE;
        }
        if ((rc = read_password(c, "check", o->username, true, pw, &x->password_len))) {
            wipe(pw, sizeof(pw));
            return rc;
        }
        x->password = pw;
    }
    exh_evalctx *ctx = exh_evalctx_new();
    exh_auth_cache *cache = exh_auth_cache_new(0, 1);
    if (ctx && cache) {
        verdict v;
        exh_error err;
        decide(p, s, cache, ctx, rq, x, &v, &err);
        rc = print_verdict(p, o, &v, &err);
    } else {
        fprintf(stderr, "exhookctl check: out of memory\n");
        rc = EXIT_USAGE;
    }
    if (o->password_stdin) wipe(pw, sizeof(pw));
    x->password = NULL;
    exh_auth_cache_free(cache);
    exh_evalctx_free(ctx);
    return rc;
}

int cmd_check(cli *c, int argc, char **argv)
{
    check_opts o = {.action = EXH_PUBLISH};
    exh_request rq;
    check_extra x;
    int rc = scan_check(c, argc, argv, &o);
    if (!rc) rc = check_usage(c, &o);
    if (!rc && !o.batch) rc = build_request(c, &o, &rq, &x);
    if (rc) return rc < 0 ? 0 : rc;
    exh_policy *p = load_policy(c, NULL);
    if (!p) return EXIT_USAGE;
    exh_store *s = NULL;
    rc = open_store_if_exists(c, &s);
    if (!rc) rc = o.batch ? run_batch(p, s) : check_one(c, &o, p, s, &rq, &x);
    exh_store_close(s);
    exh_policy_free(p);
    return rc;
}
