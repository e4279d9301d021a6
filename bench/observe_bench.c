/*
 * observe_bench.c -- what metrics and the decision audit log cost an ACL
 * check, in process, through the service layer the front ends call: the
 * same checks with everything off, with metrics on, with metrics and the
 * audit log of denies only, and with metrics and every decision audited.
 * A benchmark, not a test.
 *
 *   observe_bench [--checks N] [--rounds R] [--deny-every K] [--front grpc|plugin]
 *                 [--topics T] [--only V]
 *
 * --only V runs variant V (0 off, 1 metrics, 2 audit denies, 3 audit all)
 * alone, one round, for bench/observe_bench.sh: under callgrind, the
 * instructions the deciding thread spends per check, which a busy
 * machine does not change.
 *
 * One client (logged in once) publishes to T topics (default 50) its
 * policy allows, in turn, and every K-th check to one it denies.  The
 * plugin's decision cache keeps 4 topics a connection: T = 3 is a device
 * with a few topics (mostly hits), 50 one that misses every time.  grpc: svc_authorize_key, the
 * path of exhook-grpc and exhook-driver (client table under its lock, no decision cache).  plugin:
 * the Mosquitto plugin's svc_authorize_cached, then svc_authorize_key on a miss, with its decision
 * cache.  The variants run in turn, R rounds of N checks each, so a noisy neighbour hits all of
 * them alike; each variant's figure is its median round.  Latency is each
 * check timed on its own (the clock's cost is in every variant alike).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "service.h"

enum { VARIANTS = 4 };
static const char *const names[VARIANTS] = {"off", "metrics", "metrics+audit denies",
                                            "metrics+audit all"};

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_l(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct client client;

typedef struct variant {
    svc *s;
    svc_conn *c;
    double ns_per_check[64];
    int64_t *lat;
    size_t nlat;
    client *cl;
    long allows, denies;
} variant;

/* A client of the bench: its client id, and for the plugin the key the
 * broker gives it (its connection: 8 bytes, here an address). */
struct client {
    char cid[32];
    size_t clen;
    const char *key;
    size_t klen;
};

/* One publish check as the front end makes it: grpc/driver build the
 * request and call svc_authorize; the plugin asks its decision cache
 * first (on_acl_check's two steps), with QoS and retain known, keyed by
 * the connection. */
static svc_answer check(svc_conn *c, const client *cl, const char *t, int plugin)
{
    if (plugin) {
        svc_probe q = {
            .username = "alice", .topic = t, .action = EXH_PUBLISH, .qos = 0, .retain = 0};
        int hit = svc_authorize_cached(c, cl->key, cl->klen, &q);
        if (hit >= 0) return (svc_answer)hit;
    }
    exh_request rq;
    exh_request_init(&rq, EXH_PUBLISH);
    rq.username = "alice";
    rq.username_len = 5;
    rq.clientid = cl->cid;
    rq.clientid_len = cl->clen;
    rq.topic = t;
    rq.topic_len = strlen(t);
    if (!plugin) return svc_authorize(c, &rq);
    rq.qos = 0;
    rq.retain = 0;
    rq.queue_is_topic = true;
    return svc_authorize_key(c, cl->key, cl->klen, &rq, NULL);
}

/* A login as the front end makes it (the plugin: begin, check, end on its
 * connection's key); from an address, as every broker gives one. */
static svc_answer login(svc *s, svc_conn *c, const client *cl, int plugin)
{
    exh_auth_request rq = {.username = "alice",
                           .username_len = 5,
                           .clientid = cl->cid,
                           .clientid_len = cl->clen,
                           .password = "alicepw",
                           .password_len = 7,
                           .check_password = true};
    exh_addr_parse("192.0.2.10", 10, &rq.peerhost);
    if (!plugin) return svc_authenticate(c, &rq);
    uint64_t gen = svc_login_begin(s, cl->key, cl->klen, &rq);
    svc_grant g;
    svc_answer a = svc_login_check(c, &rq, &g);
    svc_login_answered(s, c, &rq, &g, a, 0);
    svc_login_end(s, cl->key, cl->klen, &rq, gen, &g);
    return a;
}

static void die(const char *what)
{
    fprintf(stderr, "observe_bench: %s\n", what);
    exit(1);
}

int main(int argc, char **argv)
{
    long checks = 200000;
    int rounds = 9, deny_every = 100, plugin = 0, only = -1, ntopics = 50, nclients = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--checks"))
            checks = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--deny-every"))
            deny_every = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--front"))
            plugin = !strcmp(argv[i + 1], "plugin");
        else if (!strcmp(argv[i], "--topics"))
            ntopics = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            only = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients"))
            nclients = atoi(argv[i + 1]);
        else
            die("usage: observe_bench [--checks N] [--rounds R (1..64)] [--deny-every K] "
                "[--front grpc|plugin] [--topics T] [--clients C] [--only V]");
    }
    if (checks < 1000 || rounds < 1 || rounds > 64 || deny_every < 1 || only >= VARIANTS ||
        ntopics < 1 || ntopics > 50 || nclients < 1 || nclients > 1024)
        die("bad arguments");
    if (only >= 0) rounds = 1;
    svc_log_init("observe_bench", LOG_WARN);

    char dir[] = "/tmp/exh-observe-bench-XXXXXX", path[256];
    if (!mkdtemp(dir)) die("mkdtemp");
    /* A policy of 100 users' grants, a deny before them, alice's grant. */
    snprintf(path, sizeof(path), "%s/bench.policy", dir);
    FILE *f = fopen(path, "w");
    if (!f) die("policy file");
    fprintf(f, "default deny\ndeny publish topic \"alice/secret/#\"\n");
    for (int i = 0; i < 100; i++)
        fprintf(f, "allow pubsub username \"u%d\" topic \"t/%d/#\"\n", i, i);
    fprintf(f, "allow pubsub username \"alice\" topic \"alice/#\"\n");
    fclose(f);
    char db[256];
    snprintf(db, sizeof(db), "%s/bench.db", dir);
    exh_store_opts o;
    exh_store_opts_default(&o);
    exh_store *st;
    exh_error err;
    exh_new_user u = {.name = "alice", .password = "alicepw", .password_len = 7};
    if (exh_store_open(db, &o, &st, &err) || exh_store_add_user(st, &u, &err)) die(err.message);
    exh_store_close(st);

    variant v[VARIANTS];
    memset(v, 0, sizeof(v));
    for (int k = 0; k < VARIANTS; k++) {
        if (only >= 0 && k != only) continue;
        svc_config cfg;
        svc_config_defaults(&cfg, plugin ? SVC_FOR_PLUGIN : SVC_FOR_GRPC);
        snprintf(cfg.db, sizeof(cfg.db), "%s", db);
        snprintf(cfg.policy, sizeof(cfg.policy), "%s", path);
        cfg.log_level = LOG_WARN;
        if (k >= 1) snprintf(cfg.metrics_listen, sizeof(cfg.metrics_listen), "127.0.0.1:0");
        if (k >= 2) snprintf(cfg.audit_log, sizeof(cfg.audit_log), "%s/audit-%d.jsonl", dir, k);
        if (k == 3) cfg.audit_sample = 1.0;
        if (!(v[k].s = svc_new(&cfg)) || !(v[k].c = svc_conn_new(v[k].s)) ||
            svc_start(v[k].s, 0) < 0)
            die("service");
        /* Logged in once each (the first login hashes; the credential
         * cache answers the rest). */
        if (!(v[k].cl = calloc((size_t)nclients, sizeof(client)))) die("memory");
        for (int i = 0; i < nclients; i++) {
            client *cl = &v[k].cl[i];
            snprintf(cl->cid, sizeof(cl->cid), "bench-%d-%d", k, i);
            cl->clen = strlen(cl->cid);
            cl->key = plugin ? (const char *)&cl->key : cl->cid; /* a unique 8-byte key */
            cl->klen = plugin ? sizeof(cl->key) : cl->clen;
            if (login(v[k].s, v[k].c, cl, plugin) != SVC_ALLOW) die("alice's login");
        }
        if (!(v[k].lat = malloc(sizeof(int64_t) * (size_t)checks * (size_t)rounds))) die("memory");
    }
    /* The topics, made once: 50 allowed ones and the denied one. */
    char topics[51][32];
    for (int i = 0; i < 50; i++)
        snprintf(topics[i], sizeof(topics[i]), "alice/%d/x", i);
    snprintf(topics[50], sizeof(topics[50]), "alice/secret/x");

    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < VARIANTS; k++) {
            if (only >= 0 && k != only) continue;
            variant *x = &v[k];
            int64_t t0 = svc_now_ns();
            for (long i = 0; i < checks; i++) {
                /* client by client; each its topics in turn */
                const client *cl = &x->cl[i % nclients];
                long j = i / nclients;
                const char *t = i % deny_every == deny_every - 1 ? topics[50] : topics[j % ntopics];
                int64_t a0 = only < 0 ? svc_now_ns() : 0; /* callgrind: the check alone */
                svc_answer a = check(x->c, cl, t, plugin);
                if (only < 0) x->lat[x->nlat++] = svc_now_ns() - a0;
                if (a == SVC_ALLOW)
                    x->allows++;
                else
                    x->denies++;
            }
            x->ns_per_check[r] = (double)(svc_now_ns() - t0) / (double)checks;
            /* Let the audit writer drain between rounds, off the clock. */
            usleep(20000);
        }
    }
    if (only >= 0) {
        printf("observe_bench: variant %s, %ld checks\n", names[only], checks);
        rounds = 0; /* the report below is for the interleaved run */
    }
    if (rounds)
        printf("observe_bench: front %s, %ld checks x %d rounds per variant, 1 deny in %d\n",
               plugin ? "plugin (decision cache)" : "grpc/driver", checks, rounds, deny_every);
    if (rounds)
        printf("%-22s %12s %10s %9s %9s %9s\n", "variant", "checks/s", "ns/check", "vs off",
               "p50 ns", "p99 ns");
    double base = 0;
    for (int k = 0; k < VARIANTS && rounds; k++) {
        variant *x = &v[k];
        qsort(x->ns_per_check, (size_t)rounds, sizeof(double), cmp_d);
        double med = x->ns_per_check[rounds / 2];
        if (k == 0) base = med;
        qsort(x->lat, x->nlat, sizeof(int64_t), cmp_l);
        printf("%-22s %12.0f %10.1f %+8.1f%% %9lld %9lld\n", names[k], 1e9 / med, med,
               (med / base - 1) * 100, (long long)x->lat[x->nlat / 2],
               (long long)x->lat[x->nlat * 99 / 100]);
        if (x->allows + x->denies != checks * rounds || x->denies != (checks / deny_every) * rounds)
            die("an answer was not the policy's");
    }
    for (int k = 0; k < VARIANTS; k++) {
        if (!v[k].s) continue;
        svc_conn_free(v[k].c);
        svc_free(v[k].s); /* the audit writer drains first */
        free(v[k].lat);
        free(v[k].cl);
        if (k < 2 || only >= 0) continue;
        char a[300];
        snprintf(a, sizeof(a), "%s/audit-%d.jsonl", dir, k);
        FILE *af = fopen(a, "r");
        long lines = 0;
        for (int ch; af && (ch = getc(af)) != EOF;)
            lines += ch == '\n';
        if (af) fclose(af);
        long made = nclients + (k == 3 ? checks * rounds : (checks / deny_every) * rounds);
        printf("%-22s audit records written %ld of %ld%s\n", names[k], lines, made,
               lines < made ? " (the rest dropped: the file did not keep up)" : "");
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "observe_bench: could not remove %s\n", dir);
    return 0;
}
