/*
 * replay -- re-decide the logged decisions of a decision audit log under
 * a candidate policy and print what would change: "what does this policy
 * pull request do to last week's traffic?"
 *
 * Each record carries the decision's inputs as they were (the client's
 * groups and superuser flag included), so the credential store is never
 * consulted: a user changed since then is replayed as he was.  Logins are
 * replayed only where the password check passed (or the client was
 * anonymous): their connect rules run again, the password does not.
 *
 * Rules are compared by their file's base name and line, since the log
 * names files as the running engine loaded them (/etc/exhook/policies/
 * 10-devices.policy:4) and the candidate is usually another checkout
 * (policies/10-devices.policy:4).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char replay_help[] =
    "usage: exhookctl replay --log FILE [--log FILE]... [--policy PATH] [--json]\n"
    "\n"
    "Re-decide every ACL decision and every login's connect rules in a decision\n"
    "audit log under a candidate policy, and print those that would change: one\n"
    "group per (old decision -> new decision, old rule -> new rule) with its\n"
    "count and an example or two, decision changes first; then a summary.\n"
    "\n"
    "  --log FILE     the audit log ('-': stdin); repeat it for rotated files\n"
    "  --policy PATH  the candidate policy (default: exhookctl's --policy,\n"
    "                 $EXHOOK_POLICY, then ./policies)\n"
    "  --json         one JSON object a line: one per group, then the summary\n"
    "\n"
    "What is replayed.  Each record holds the request as decided then: client\n"
    "id, username, peer, groups, superuser flag, topic, QoS and retain where the\n"
    "front end knew them.  The credential store is not read.  A login is\n"
    "replayed only when its credential check passed (reason ok, ok cached or\n"
    "anonymous): its connect rules run again as if the password were right;\n"
    "logins refused for their credentials are counted as 'the password decided'.\n"
    "Answers the policy did not give (rule 'no login', 'store fault',\n"
    "'unverified', 'out of memory') are counted, not compared, and so are\n"
    "'lossy' records (a name or topic that was not UTF-8, logged with U+FFFD for\n"
    "the bad bytes).  Where the writer had to drop records (its queue full), the\n"
    "summary says how many and when.  A rule is compared by its file's base name and line, since "
    "the\n"
    "log names the file as the running engine loaded it:\n"
    "/etc/exhook/policies/10-x.policy:4 is policies/10-x.policy:4.\n"
    "\n"
    "Allows are logged only as a sample (audit_sample, 0 by default): with a\n"
    "rate below 1 the counts of changed allows are estimates, and the output\n"
    "says so and shows the estimate (count / rate); with no allow in the log at\n"
    "all, an allow that would become a deny cannot be seen.\n"
    "\n"
    "Exit status: 0 no decision would change (rules alone may); 1 a decision\n"
    "would change: allow <-> deny, and any change to or from ignore, since an\n"
    "ignored login or ACL check lets the client in on some EMQX versions (a\n"
    "login on 4.4, or on 5.9+ without an authenticator) and not on others;\n"
    "2 usage error, a policy that does not compile, an unreadable or empty log,\n"
    "or any unreadable line (each reported as FILE:LINE: why), so a damaged log\n"
    "never passes a CI gate.\n";

#define MAX_LOGS 64
#define NBUCKETS 4096

/* Why a record is not replayed: the order of the summary's counts. */
enum {
    NR_PASSWORD,
    NR_NO_LOGIN,
    NR_STORE_FAULT,
    NR_UNVERIFIED,
    NR_OUT_OF_MEMORY,
    NR_LOSSY,
    NR_COUNT
};
static const char *const nr_names[NR_COUNT] = {
    "the password decided", "no login", "store fault", "unverified", "out of memory", "lossy"};

/* A record shown as an example: copies, the record is gone by then. */
typedef struct example {
    char *time, *front, *node;
    exh_str clientid, username, topic; /* ptr NULL: absent */
    exh_action action;
    bool login;
} example;

typedef struct group {
    struct group *next; /* in its bucket */
    uint64_t hash;
    exh_decision old_dec, new_dec;
    char *old_rule, *new_rule;
    const char *new_text; /* the candidate's rule text; NULL for a basis */
    unsigned long count, sampled, first;
    double estimate; /* each record counts 1/its sample rate (1 unsampled) */
    double rate_min, rate_max;
    example ex[2];
    size_t nex;
} group;

typedef struct replay {
    const exh_policy *p;
    exh_evalctx *ctx;
    group *buckets[NBUCKETS];
    group **all;
    size_t ngroups, cap;
    unsigned long read, replayed, decision_changes, rule_changes, unreadable;
    unsigned long not_replayed[NR_COUNT];
    unsigned long acl_allows, sampled_allows;
    unsigned long dropped_acl, dropped_login; /* the writer's notes of records it dropped */
    char dropped_from[32], dropped_to[32];
    double rate_min, rate_max, est_changed_allows;
    bool oom;
} replay;

/* ---- comparing ---- */

/* The part of a rule label compared: "10-x.policy:4" of
 * "/etc/exhook/policies/10-x.policy:4"; a basis word whole. */
static const char *rule_key(const char *label)
{
    const char *colon = strrchr(label, ':');
    if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)) return label;
    const char *base = label;
    for (const char *s = label; s < colon; s++)
        if (*s == '/') base = s + 1;
    return base;
}

/* 0: between allow and deny; 1: to or from ignore; 2: the rule alone. */
static int category(exh_decision from, exh_decision to)
{
    if (from == to) return 2;
    return from != EXH_IGNORE && to != EXH_IGNORE ? 0 : 1;
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL; /* a separator: "ab","c" is not "a","bc" */
}

/* ---- collecting ---- */

static char *dup_str(exh_str s, bool *oom)
{
    if (!s.ptr) return NULL;
    char *d = malloc(s.len + 1);
    if (!d) {
        *oom = true;
        return NULL;
    }
    memcpy(d, s.ptr, s.len);
    d[s.len] = '\0';
    return d;
}

static char *dup0(const char *s, bool *oom)
{
    return s ? dup_str((exh_str){s, strlen(s)}, oom) : NULL;
}

static void keep_example(group *g, const audit_record *r, bool *oom)
{
    if (g->nex == 2) return;
    example *e = &g->ex[g->nex++];
    e->time = dup0(r->time, oom);
    e->front = dup0(r->front, oom);
    e->node = dup0(r->node, oom);
    e->clientid = (exh_str){dup_str(r->clientid, oom), r->clientid.len};
    e->username = (exh_str){dup_str(r->username, oom), r->username.len};
    e->topic = (exh_str){dup_str(r->topic, oom), r->topic.len};
    e->action = r->action;
    e->login = r->login;
}

static void free_group(group *g)
{
    for (size_t i = 0; i < g->nex; i++) {
        free(g->ex[i].time);
        free(g->ex[i].front);
        free(g->ex[i].node);
        free((char *)g->ex[i].clientid.ptr);
        free((char *)g->ex[i].username.ptr);
        free((char *)g->ex[i].topic.ptr);
    }
    free(g->old_rule);
    free(g->new_rule);
    free(g);
}

/* The group of (old, new decision; old, new rule), made on first use. */
static group *find_group(replay *rp, exh_decision od, exh_decision nd, const char *orule,
                         const char *nrule)
{
    uint64_t h = fnv(fnv(0xcbf29ce484222325ULL ^ (od * 3 + nd), orule), nrule);
    group **b = &rp->buckets[h % NBUCKETS];
    for (group *g = *b; g; g = g->next)
        if (g->hash == h && g->old_dec == od && g->new_dec == nd && !strcmp(g->old_rule, orule) &&
            !strcmp(g->new_rule, nrule))
            return g;
    if (rp->ngroups == rp->cap) {
        size_t cap = rp->cap ? rp->cap * 2 : 64;
        group **all = realloc(rp->all, cap * sizeof(*all));
        if (!all) return NULL;
        rp->all = all;
        rp->cap = cap;
    }
    group *g = calloc(1, sizeof(*g));
    if (!g) return NULL;
    bool oom = false;
    g->old_rule = dup0(orule, &oom);
    g->new_rule = dup0(nrule, &oom);
    if (oom) {
        free_group(g);
        return NULL;
    }
    g->hash = h;
    g->old_dec = od;
    g->new_dec = nd;
    g->first = rp->ngroups;
    g->next = *b;
    *b = g;
    rp->all[rp->ngroups++] = g;
    return g;
}

/* Why a record is not replayed, or -1 when it is. */
static int not_replayable(const audit_record *r)
{
    if (!strcmp(r->rule, "no login")) return NR_NO_LOGIN;
    if (!strcmp(r->rule, "store fault")) return NR_STORE_FAULT;
    if (!strcmp(r->rule, "unverified")) return NR_UNVERIFIED;
    if (!strcmp(r->rule, "out of memory")) return NR_OUT_OF_MEMORY;
    /* Its names or topic were not UTF-8 and were logged with U+FFFD in
     * place of the bad bytes: the request cannot be rebuilt. */
    if (r->lossy) return NR_LOSSY;
    if (r->login && strcmp(r->reason, "ok") && strcmp(r->reason, "ok cached") &&
        strcmp(r->reason, "anonymous"))
        return NR_PASSWORD;
    return -1;
}

/*
 * The record's request, decided again.  A login's connect rules run
 * through the evaluator directly, with the record's groups: what
 * exh_authenticate does once the credentials are taken as verified (as
 * `check --batch` does for a connect without a password).
 */
static void decide_again(replay *rp, const audit_record *r, exh_result *res)
{
    static const exh_str no_groups[1];
    exh_request rq;
    exh_request_init(&rq, r->action);
    rq.username = r->username.ptr;
    rq.username_len = r->username.len;
    rq.clientid = r->clientid.ptr;
    rq.clientid_len = r->clientid.len;
    if (r->peer) rq.peerhost = r->peer_addr;
    rq.groups = r->groups ? r->groups : no_groups;
    rq.ngroups = r->ngroups;
    rq.superuser = r->superuser;
    if (!r->login) {
        rq.topic = r->topic.ptr;
        rq.topic_len = r->topic.len;
        rq.qos = r->qos;
        rq.retain = r->retain;
        rq.delivery = r->delivery;
        /* Mosquitto has no $queue/ prefix: there it is a topic level. */
        rq.queue_is_topic = !strcmp(r->front, "mosquitto");
    }
    exh_eval(rp->p, &rq, rp->ctx, res);
}

static void note_rate(double *lo, double *hi, double rate, bool first)
{
    if (first || rate < *lo) *lo = rate;
    if (first || rate > *hi) *hi = rate;
}

/* The writer's note that its queue was full: the earliest and latest time
 * of all such notes (fixed-width times: text order is time order). */
static void note_dropped(replay *rp, const audit_record *r)
{
    const char *from = r->from ? r->from : r->time, *to = r->to ? r->to : r->time;
    if (!rp->dropped_from[0] || strcmp(from, rp->dropped_from) < 0)
        snprintf(rp->dropped_from, sizeof(rp->dropped_from), "%s", from);
    if (strcmp(to, rp->dropped_to) > 0) snprintf(rp->dropped_to, sizeof(rp->dropped_to), "%s", to);
    rp->dropped_acl += r->dropped_acl;
    rp->dropped_login += r->dropped_login;
}

static void replay_record(replay *rp, const audit_record *r)
{
    if (r->dropped) {
        note_dropped(rp, r);
        return;
    }
    rp->read++;
    int why = not_replayable(r);
    if (why >= 0) {
        rp->not_replayed[why]++;
        return;
    }
    exh_result res;
    decide_again(rp, r, &res);
    rp->replayed++;
    if (!r->login && r->decision == EXH_ALLOW) rp->acl_allows++;
    if (r->sample > 0) note_rate(&rp->rate_min, &rp->rate_max, r->sample, !rp->sampled_allows++);

    char label[1200];
    const char *text = NULL;
    if (res.basis == EXH_BY_RULE) {
        const exh_rule_info *ri = exh_policy_rule(rp->p, res.rule);
        snprintf(label, sizeof(label), "%s:%u", ri->file, ri->line);
        text = ri->text;
    } else {
        snprintf(label, sizeof(label), "%s", exh_basis_str(res.basis));
    }
    if (res.decision == r->decision && !strcmp(rule_key(label), rule_key(r->rule))) return;

    group *g = find_group(rp, r->decision, res.decision, r->rule, label);
    if (!g) {
        rp->oom = true;
        return;
    }
    g->new_text = text;
    double weight = r->sample > 0 ? 1 / r->sample : 1;
    if (r->sample > 0) note_rate(&g->rate_min, &g->rate_max, r->sample, !g->sampled++);
    g->count++;
    g->estimate += weight;
    keep_example(g, r, &rp->oom);
    if (res.decision == r->decision) {
        rp->rule_changes++;
    } else {
        rp->decision_changes++;
        if (r->decision == EXH_ALLOW) rp->est_changed_allows += weight;
    }
}

/* ---- reading ---- */

/* Progress on stderr, as import shows it: rewritten in place on a
 * terminal, a line per million records in a log; nothing for a small
 * log. */
typedef struct progress {
    bool tty, shown;
} progress;

static void show_progress(progress *pg, unsigned long n)
{
    if (pg->tty && n % 100000 == 0) {
        fprintf(stderr, "\rreplayed %lu records...", n);
        pg->shown = true;
    } else if (!pg->tty && n % 1000000 == 0) {
        fprintf(stderr, "replayed %lu records...\n", n);
    }
}

/* Replay every record of one log.  Returns false when it could not be
 * opened or read. */
static bool replay_log(replay *rp, cli *c, const char *path, progress *pg)
{
    audit_reader rd;
    if (audit_open(&rd, c, "replay", path)) return false;
    audit_record rec;
    int got = 0;
    while (!rp->oom && (got = audit_next(&rd, &rec)) > 0) {
        replay_record(rp, &rec);
        audit_record_clear(&rec);
        show_progress(pg, rp->read);
    }
    rp->unreadable += rd.unreadable;
    audit_close(&rd);
    return !rp->oom && got >= 0;
}

/* ---- printing ---- */

static int by_importance(const void *a, const void *b)
{
    const group *x = *(const group *const *)a, *y = *(const group *const *)b;
    int cx = category(x->old_dec, x->new_dec), cy = category(y->old_dec, y->new_dec);
    if (cx != cy) return cx - cy;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* A whole estimate for people; to a thousandth for programs. */
static double rounded(double x, double unit)
{
    /* A damaged log's sample of 1e-300 must not overflow the cast. */
    if (!(x < 1e15)) return x;
    return (double)(long long)(x / unit + 0.5) * unit;
}

static void print_rates(double lo, double hi)
{
    if (lo == hi)
        printf("%g", lo);
    else
        printf("%g to %g", lo, hi);
}

static void print_example(const example *e)
{
    fputs(e->time, stdout);
    fputs("  ", stdout);
    fputs(e->login ? "login" : "acl", stdout);
    fputs("  ", stdout);
    put_shown(stdout, e->clientid.ptr, e->clientid.len);
    fputs("  ", stdout);
    put_shown(stdout, e->username.ptr, e->username.len);
    printf("  %s  ", exh_action_str(e->action));
    put_shown(stdout, e->topic.ptr, e->topic.len);
    fputc('\n', stdout);
}

static void print_group(const group *g)
{
    if (g->old_dec != g->new_dec)
        printf("%s -> %s: ", exh_decision_str(g->old_dec), exh_decision_str(g->new_dec));
    else
        printf("%s, rule changed: ", exh_decision_str(g->old_dec));
    printf("%lu record%s", g->count, g->count == 1 ? "" : "s");
    if (g->sampled) {
        if (g->sampled == g->count)
            fputs(" (a sample at rate ", stdout);
        else
            printf(" (%lu of them a sample at rate ", g->sampled);
        print_rates(g->rate_min, g->rate_max);
        printf(": ~%.0f estimated)", rounded(g->estimate, 1));
    }
    fputc('\n', stdout);
    fputs("    was: ", stdout);
    put_shown(stdout, g->old_rule, strlen(g->old_rule));
    printf("\n    now: %s", g->new_rule);
    if (g->new_text) printf(": %s", g->new_text);
    fputc('\n', stdout);
    for (size_t i = 0; i < g->nex; i++) {
        fputs(i ? "         " : "    e.g. ", stdout);
        print_example(&g->ex[i]);
    }
}

static void print_summary(const replay *rp)
{
    unsigned long nr = 0;
    for (int i = 0; i < NR_COUNT; i++)
        nr += rp->not_replayed[i];
    if (!rp->decision_changes && !rp->rule_changes && rp->read) puts("no changes");
    printf("\nreplay: %lu record%s read, %lu replayed, %lu changed (%lu decision change%s, %lu "
           "rule-only), %lu not replayed",
           rp->read, rp->read == 1 ? "" : "s", rp->replayed,
           rp->decision_changes + rp->rule_changes, rp->decision_changes,
           rp->decision_changes == 1 ? "" : "s", rp->rule_changes, nr);
    const char *sep = " (";
    for (int i = 0; i < NR_COUNT; i++)
        if (rp->not_replayed[i]) {
            printf("%s%lu %s", sep, rp->not_replayed[i], nr_names[i]);
            sep = ", ";
        }
    printf("%s, %lu unreadable line%s\n", nr ? ")" : "", rp->unreadable,
           rp->unreadable == 1 ? "" : "s");
    if (rp->sampled_allows) {
        printf("note: the allows in this log are a sample: %lu replayed allow%s logged at sample "
               "rate ",
               rp->sampled_allows, rp->sampled_allows == 1 ? " was" : "s were");
        print_rates(rp->rate_min, rp->rate_max);
        printf(",\n      so the counts of changed allows are estimates (~N: each sampled allow "
               "counted 1/rate);\n      ");
        if (rp->est_changed_allows > 0)
            printf("about %.0f allows would change their decision in all\n",
                   rounded(rp->est_changed_allows, 1));
        else
            puts("no allow in the log would change its decision");
    }
    if (rp->dropped_acl || rp->dropped_login)
        printf("note: the log is incomplete: its writer dropped %lu ACL and %lu login records "
               "(its queue\n      was full) between %s and %s; they were not replayed\n",
               rp->dropped_acl, rp->dropped_login, rp->dropped_from, rp->dropped_to);
    if (!rp->acl_allows && rp->replayed)
        puts("note: the log holds no ACL allows (audit_sample is 0 by default): an allow that\n"
             "      would become a deny cannot be seen here");
}

static void json_group(const group *g)
{
    printf("{\"type\":\"group\",\"change\":\"%s\",\"old_decision\":\"%s\",\"new_decision\":\"%s\","
           "\"old_rule\":",
           g->old_dec == g->new_dec ? "rule" : "decision", exh_decision_str(g->old_dec),
           exh_decision_str(g->new_dec));
    json_put_string(stdout, g->old_rule, strlen(g->old_rule));
    fputs(",\"new_rule\":", stdout);
    json_put_string(stdout, g->new_rule, strlen(g->new_rule));
    if (g->new_text) {
        fputs(",\"new_rule_text\":", stdout);
        json_put_string(stdout, g->new_text, strlen(g->new_text));
    }
    printf(",\"count\":%lu", g->count);
    if (g->sampled)
        printf(",\"sampled\":%lu,\"sample_rate_min\":%.17g,\"sample_rate_max\":%.17g,"
               "\"estimate\":%.15g",
               g->sampled, g->rate_min, g->rate_max, rounded(g->estimate, 0.001));
    fputs(",\"examples\":[", stdout);
    for (size_t i = 0; i < g->nex; i++) {
        const example *e = &g->ex[i];
        printf("%s{\"time\":\"%s\",\"front\":\"%s\"", i ? "," : "", e->time, e->front);
        if (e->node) {
            fputs(",\"node\":", stdout);
            json_put_string(stdout, e->node, strlen(e->node));
        }
        printf(",\"event\":\"%s\",\"clientid\":", e->login ? "login" : "acl");
        json_put_string(stdout, e->clientid.ptr, e->clientid.len);
        if (e->username.ptr) {
            fputs(",\"username\":", stdout);
            json_put_string(stdout, e->username.ptr, e->username.len);
        }
        printf(",\"action\":\"%s\"", exh_action_str(e->action));
        if (e->topic.ptr) {
            fputs(",\"topic\":", stdout);
            json_put_string(stdout, e->topic.ptr, e->topic.len);
        }
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

static void json_summary(const replay *rp)
{
    printf("{\"type\":\"summary\",\"records\":%lu,\"replayed\":%lu,\"changed\":%lu,"
           "\"decision_changes\":%lu,\"rule_changes\":%lu,\"not_replayed\":{",
           rp->read, rp->replayed, rp->decision_changes + rp->rule_changes, rp->decision_changes,
           rp->rule_changes);
    for (int i = 0; i < NR_COUNT; i++)
        printf("%s\"%s\":%lu", i ? "," : "", nr_names[i], rp->not_replayed[i]);
    printf("},\"unreadable\":%lu,\"dropped_acl\":%lu,\"dropped_login\":%lu", rp->unreadable,
           rp->dropped_acl, rp->dropped_login);
    printf(",\"acl_allows\":%lu,\"sampled_allows\":%lu", rp->acl_allows, rp->sampled_allows);
    if (rp->sampled_allows)
        printf(",\"sample_rate_min\":%.17g,\"sample_rate_max\":%.17g", rp->rate_min, rp->rate_max);
    printf(",\"estimated_changed_allows\":%.15g}\n", rounded(rp->est_changed_allows, 0.001));
}

/* ---- the command ---- */

typedef struct replay_args {
    const char *logs[MAX_LOGS];
    size_t nlogs;
    const char *policy;
    bool json;
} replay_args;

static int scan_replay(cli *c, int argc, char **argv, replay_args *x)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(replay_help, stdout);
            return -1;
        }
        if (arg_flag(&a, "--json")) {
            x->json = true;
        } else if (arg_value(&a, "--log", &bad)) {
            if (x->nlogs == MAX_LOGS) return usage_error(c, "replay", "too many --log options");
            if (!bad) x->logs[x->nlogs++] = a.val;
        } else if (arg_value(&a, "--policy", &bad)) {
            x->policy = a.val;
        } else {
            return usage_error(c, "replay", "unknown argument '%s'", argv[a.i]);
        }
        if (bad) return EXIT_USAGE;
    }
    if (!x->nlogs) return usage_error(c, "replay", "--log FILE is required");
    return 0;
}

/* Print the groups, most important first, and the summary; returns the
 * exit status the decisions ask for. */
static int report_changes(replay *rp, bool json)
{
    if (rp->ngroups) /* qsort wants an array, even of none */
        qsort(rp->all, rp->ngroups, sizeof(*rp->all), by_importance);
    int rc = EXIT_ALLOW;
    for (size_t i = 0; i < rp->ngroups; i++) {
        if (category(rp->all[i]->old_dec, rp->all[i]->new_dec) < 2) rc = EXIT_DENY;
        json ? json_group(rp->all[i]) : print_group(rp->all[i]);
    }
    json ? json_summary(rp) : print_summary(rp);
    return rc;
}

int cmd_replay(cli *c, int argc, char **argv)
{
    replay_args x = {0};
    int rc = scan_replay(c, argc, argv, &x);
    if (rc) return rc < 0 ? 0 : rc;
    exh_policy *p = load_policy(c, x.policy);
    if (!p) return EXIT_USAGE;
    replay *rp = calloc(1, sizeof(*rp));
    exh_evalctx *ctx = exh_evalctx_new();
    if (!rp || !ctx) {
        fprintf(stderr, "%s replay: out of memory\n", c->prog);
        free(rp);
        exh_evalctx_free(ctx);
        exh_policy_free(p);
        return EXIT_USAGE;
    }
    rp->p = p;
    rp->ctx = ctx;
    progress pg = {.tty = isatty(STDERR_FILENO) == 1};
    bool read_ok = true;
    for (size_t i = 0; i < x.nlogs && !rp->oom; i++)
        if (!replay_log(rp, c, x.logs[i], &pg)) read_ok = false;
    if (pg.shown) fputs("\r\033[K", stderr);
    if (rp->oom) {
        fprintf(stderr, "%s replay: out of memory\n", c->prog);
        rc = EXIT_USAGE;
    } else {
        rc = report_changes(rp, x.json);
        if (rp->unreadable)
            fprintf(stderr, "%s replay: %lu unreadable line%s (reported above): exit status 2\n",
                    c->prog, rp->unreadable, rp->unreadable == 1 ? "" : "s");
        /* An empty log vouches for nothing: a CI gate fed an empty file
         * (a failed download, a front end without audit_log) must fail. */
        if (read_ok && !rp->read && !rp->unreadable)
            fprintf(stderr, "%s replay: the log holds no records: nothing to replay\n", c->prog);
        if (!read_ok || rp->unreadable || !rp->read) rc = EXIT_USAGE;
    }
    for (size_t i = 0; i < rp->ngroups; i++)
        free_group(rp->all[i]);
    free(rp->all);
    free(rp);
    exh_evalctx_free(ctx);
    exh_policy_free(p);
    return rc;
}
