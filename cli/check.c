/*
 * check -- decide one request, or a stream of JSON-lines requests.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exhook/eval.h"

static const char check_help[] =
    "usage: exhookctl check --action ACTION [--username U] [--clientid C]\n"
    "                       [--peerhost IP] [--topic T] [--qos N] [--retain]\n"
    "                       [--group G]... [--superuser] [--json]\n"
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
    "  --group G      the user's groups (repeatable); --superuser likewise\n"
    "  --json         print {\"decision\":...,\"rule\":...} instead\n"
    "  --batch        JSON lines on stdin, one JSON decision a line on stdout:\n"
    "                 {\"action\":\"publish\",\"username\":\"u\",\"clientid\":\"c\",\n"
    "                  \"peerhost\":\"1.2.3.4\",\"topic\":\"t\",\"qos\":0,\"retain\":false,\n"
    "                  \"groups\":[\"g\"],\"superuser\":false}\n"
    "\n"
    "A connect request is decided by the connect rules as if its credentials had\n"
    "been verified.  Exit status: 0 allow, 1 deny or ignore, 2 bad input.\n";

static int exit_for(exh_decision d)
{
    return d == EXH_ALLOW ? EXIT_ALLOW : EXIT_DENY;
}

static bool parse_action(const char *s, exh_action *a)
{
    if (!strcmp(s, "publish"))
        *a = EXH_PUBLISH;
    else if (!strcmp(s, "subscribe"))
        *a = EXH_SUBSCRIBE;
    else if (!strcmp(s, "connect"))
        *a = EXH_CONNECT;
    else
        return false;
    return true;
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

/*
 * Turn one batch object into a request.  Strings keep their exact bytes
 * (NUL included: jansson is told to allow it) so the engine, not the
 * reader, decides what is invalid.  Returns NULL or a reason.
 */
static const char *batch_request(json_t *o, exh_request *rq, exh_str *groups, char *why,
                                 size_t whysize)
{
    if (!json_is_object(o)) return "a request must be a JSON object";
    json_t *v = json_object_get(o, "action");
    exh_action a;
    if (!json_is_string(v) || !parse_action(json_string_value(v), &a))
        return "\"action\" must be \"publish\", \"subscribe\" or \"connect\"";
    exh_request_init(rq, a);
    rq->qos = 0;
    rq->retain = 0;
    rq->groups = groups;
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        if (!strcmp(key, "action")) continue;
        if (!strcmp(key, "username") || !strcmp(key, "clientid") || !strcmp(key, "topic") ||
            !strcmp(key, "peerhost")) {
            if (json_is_null(val) && strcmp(key, "topic") != 0) continue;
            if (!json_is_string(val)) {
                snprintf(why, whysize, "\"%s\" must be a string", key);
                return why;
            }
            const char *s = json_string_value(val);
            size_t n = json_string_length(val);
            if (key[0] == 'u') {
                rq->username = s;
                rq->username_len = n;
            } else if (key[0] == 'c') {
                rq->clientid = s;
                rq->clientid_len = n;
            } else if (key[0] == 't') {
                rq->topic = s;
                rq->topic_len = n;
            } else if (!exh_addr_parse(s, n, &rq->peerhost)) {
                return "\"peerhost\" is not an IPv4 or IPv6 address";
            }
        } else if (!strcmp(key, "qos")) {
            if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > 2)
                return "\"qos\" must be 0, 1 or 2";
            rq->qos = (int)json_integer_value(val);
        } else if (!strcmp(key, "retain") || !strcmp(key, "superuser")) {
            if (!json_is_boolean(val)) {
                snprintf(why, whysize, "\"%s\" must be true or false", key);
                return why;
            }
            if (key[0] == 'r')
                rq->retain = json_is_true(val);
            else
                rq->superuser = json_is_true(val);
        } else if (!strcmp(key, "groups")) {
            size_t i;
            json_t *g;
            if (!json_is_array(val)) return "\"groups\" must be an array of strings";
            if (json_array_size(val) > MAX_GROUPS) return "too many groups (at most 256)";
            json_array_foreach(val, i, g)
            {
                if (!json_is_string(g)) return "\"groups\" must be an array of strings";
                groups[i].ptr = json_string_value(g);
                groups[i].len = json_string_length(g);
            }
            rq->ngroups = json_array_size(val);
        } else if (!strcmp(key, "password")) {
            /* Verifying a password needs the credential store, which this
             * build does not have: refuse rather than pretend it passed. */
            return "password verification needs the credential store, which this build "
                   "lacks";
        } else {
            snprintf(why, whysize, "unknown field \"%.64s\"", key);
            return why;
        }
    }
    if (a != EXH_CONNECT && !rq->topic) return "\"topic\" is required for publish and subscribe";
    return NULL;
}

static int run_batch(const exh_policy *p)
{
    exh_evalctx *ctx = exh_evalctx_new();
    if (!ctx) {
        fprintf(stderr, "exhookctl check: out of memory\n");
        return EXIT_USAGE;
    }
    /* Answers go out a line at a time so a caller can converse over a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;
    unsigned long lineno = 0;
    static exh_str groups[MAX_GROUPS];
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == len) continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
        if (!o) {
            char reason[256];
            snprintf(reason, sizeof(reason), "invalid JSON at line %lu, column %d: %s", lineno,
                     jerr.column, jerr.text);
            print_json_invalid(reason);
            status = EXIT_USAGE;
            continue;
        }
        exh_request rq;
        char why[128];
        const char *bad = batch_request(o, &rq, groups, why, sizeof(why));
        if (bad) {
            print_json_invalid(bad);
            status = EXIT_USAGE;
        } else {
            exh_result res;
            exh_eval(p, &rq, ctx, &res);
            print_json_result(p, &res);
        }
        json_decref(o);
    }
    free(line);
    exh_evalctx_free(ctx);
    return status;
}

int cmd_check(cli *c, int argc, char **argv)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false, json = false, batch = false;
    bool have_action = false, have_qos = false;
    exh_request rq;
    exh_action action = EXH_PUBLISH;
    const char *username = NULL, *clientid = NULL, *topic = NULL, *peer = NULL;
    int qos = 0, retain = 0, superuser = 0;
    exh_str groups[MAX_GROUPS];
    size_t ngroups = 0;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(check_help, stdout);
            return 0;
        }
        if (arg_flag(&a, "--json")) {
            json = true;
        } else if (arg_flag(&a, "--batch")) {
            batch = true;
        } else if (arg_flag(&a, "--retain")) {
            retain = 1;
        } else if (arg_flag(&a, "--superuser")) {
            superuser = 1;
        } else if (arg_value(&a, "--action", &bad)) {
            if (!bad && !parse_action(a.val, &action))
                return usage_error(
                    c, "check", "--action must be publish, subscribe or connect, not '%s'", a.val);
            have_action = true;
        } else if (arg_value(&a, "--username", &bad)) {
            username = a.val;
        } else if (arg_value(&a, "--clientid", &bad)) {
            clientid = a.val;
        } else if (arg_value(&a, "--topic", &bad)) {
            topic = a.val;
        } else if (arg_value(&a, "--peerhost", &bad)) {
            peer = a.val;
        } else if (arg_value(&a, "--qos", &bad)) {
            if (!bad && (strlen(a.val) != 1 || a.val[0] < '0' || a.val[0] > '2'))
                return usage_error(c, "check", "--qos must be 0, 1 or 2, not '%s'", a.val);
            if (!bad) qos = a.val[0] - '0';
            have_qos = true;
        } else if (arg_value(&a, "--group", &bad)) {
            if (ngroups == MAX_GROUPS) return usage_error(c, "check", "too many --group options");
            if (!bad) {
                groups[ngroups].ptr = a.val;
                groups[ngroups++].len = strlen(a.val);
            }
        } else {
            return usage_error(c, "check", "unknown argument '%s'", argv[a.i]);
        }
        if (bad) return EXIT_USAGE;
    }
    (void)have_qos;
    if (batch) {
        if (have_action || username || clientid || topic || peer || ngroups)
            return usage_error(c, "check", "--batch reads requests from stdin; give no others");
        exh_policy *p = load_policy(c, NULL);
        if (!p) return EXIT_USAGE;
        int st = run_batch(p);
        exh_policy_free(p);
        return st;
    }
    if (!have_action) return usage_error(c, "check", "--action is required");
    if (action != EXH_CONNECT && !topic)
        return usage_error(c, "check", "--topic is required for %s",
                           action == EXH_PUBLISH ? "publish" : "subscribe");
    exh_request_init(&rq, action);
    if (username) {
        rq.username = username;
        rq.username_len = strlen(username);
    }
    if (clientid) {
        rq.clientid = clientid;
        rq.clientid_len = strlen(clientid);
    }
    if (topic) {
        rq.topic = topic;
        rq.topic_len = strlen(topic);
    }
    if (peer && !exh_addr_parse(peer, strlen(peer), &rq.peerhost))
        return usage_error(c, "check", "--peerhost '%s' is not an IPv4 or IPv6 address", peer);
    rq.qos = qos;
    rq.retain = retain;
    rq.superuser = superuser;
    rq.groups = groups;
    rq.ngroups = ngroups;

    exh_policy *p = load_policy(c, NULL);
    if (!p) return EXIT_USAGE;
    exh_evalctx *ctx = exh_evalctx_new();
    if (!ctx) {
        exh_policy_free(p);
        fprintf(stderr, "exhookctl check: out of memory\n");
        return EXIT_USAGE;
    }
    exh_result res;
    exh_eval(p, &rq, ctx, &res);
    if (json) {
        print_json_result(p, &res);
    } else {
        char buf[4096];
        describe_result(p, &res, buf, sizeof(buf), true);
        printf("%s\n%s\n", exh_decision_str(res.decision), buf);
    }
    exh_evalctx_free(ctx);
    exh_policy_free(p);
    return exit_for(res.decision);
}
