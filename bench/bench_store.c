/*
 * bench_store.c -- what the credential store carries, per backend: the
 * store work of a cluster's front ends, measured through the library as
 * they use it.  A benchmark, not a test; bench/store_bench.sh runs it on
 * SQLite and on a throwaway PostgreSQL in the same run.
 *
 *   bench_store LOCATION [--threads T] [--users N] [--seconds S] [--cold C]
 *
 * Each thread has its own store connection, as each front-end worker has.
 * Printed, one line each:
 *   cold logins/s   full verifications (argon2id at the store's default
 *                   cost): a reconnect storm after the credential cache
 *                   expired or a node restarted; C logins in all
 *   warm logins/s   logins the credential cache verifies: one user read
 *                   (with groups) and a MAC each, for S seconds
 *   lookups/s       an unseen client's ACL lookup: one user read with
 *                   its groups (exh_store_get_user), for S seconds
 *   history ev/s    session events written as the history thread writes
 *                   them: 256 a transaction, one writer, for S seconds
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exhook/auth.h"

static const char *loc;
static int nthreads = 4, nusers = 1000, seconds = 3, ncold = 40;
static exh_auth_cache *warm_cache;
static exh_policy *pol;
static atomic_long done;
static atomic_int stop, next_cold;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const exh_error *err)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

static exh_store *open_store(bool create)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = create;
    o.upgrade_on_login = false;
    exh_store *s;
    exh_error err;
    if (exh_store_open(loc, &o, &s, &err)) die(loc, &err);
    return s;
}

static void name_of(int i, char *out, size_t n)
{
    snprintf(out, n, "dev-%06d", i);
}

static void login(exh_store *s, exh_auth_cache *cache, exh_evalctx *ctx, int i)
{
    char name[32];
    name_of(i, name, sizeof(name));
    exh_auth_request rq = {.username = name,
                           .username_len = strlen(name),
                           .clientid = name,
                           .clientid_len = strlen(name),
                           .password = "correct horse",
                           .password_len = 13,
                           .check_password = true};
    exh_auth_result r;
    exh_error err;
    if (exh_authenticate(s, cache, pol, ctx, &rq, &r, &err) != EXH_OK) die("login", &err);
    if (r.decision != EXH_ALLOW) {
        fprintf(stderr, "bench_store: %s refused: %s\n", name, exh_auth_reason_str(r.reason));
        exit(1);
    }
    exh_auth_result_clear(&r);
}

typedef enum { COLD, FILL, WARM, LOOKUP } kind;

static void *worker(void *arg)
{
    kind k = (kind)(intptr_t)arg;
    exh_store *s = open_store(false);
    exh_evalctx *ctx = exh_evalctx_new();
    exh_auth_cache *none = exh_auth_cache_new(0, 1);
    unsigned seed = (unsigned)(uintptr_t)&seed;
    if (k == COLD || k == FILL) { /* FILL: every user verified once, into the warm cache */
        int i;
        while ((i = atomic_fetch_add(&next_cold, 1)) < (k == COLD ? ncold : nusers)) {
            login(s, k == COLD ? none : warm_cache, ctx, i % nusers);
            atomic_fetch_add(&done, 1);
        }
    } else {
        while (!atomic_load(&stop)) {
            int i = (int)(rand_r(&seed) % (unsigned)nusers);
            if (k == WARM) {
                login(s, warm_cache, ctx, i);
            } else {
                char name[32];
                name_of(i, name, sizeof(name));
                exh_user u;
                exh_error err;
                if (exh_store_get_user(s, name, &u, &err)) die("lookup", &err);
                exh_user_clear(&u);
            }
            atomic_fetch_add(&done, 1);
        }
    }
    exh_auth_cache_free(none);
    exh_evalctx_free(ctx);
    exh_store_close(s);
    return NULL;
}

static double run(kind k)
{
    pthread_t t[64];
    atomic_store(&done, 0);
    atomic_store(&stop, 0);
    atomic_store(&next_cold, 0);
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)k);
    if (k == WARM || k == LOOKUP) {
        sleep((unsigned)seconds);
        atomic_store(&stop, 1);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    return (double)atomic_load(&done) / (now_s() - t0);
}

static double history(void)
{
    exh_store *s = open_store(false);
    exh_error err;
    long n = 0;
    double t0 = now_s(), end = t0 + seconds;
    while (now_s() < end) {
        if (exh_store_begin(s, &err)) die("history", &err);
        for (int i = 0; i < 256; i++, n++) {
            char cid[32];
            name_of((int)(n / 2 % nusers), cid, sizeof(cid));
            exh_session_event ev = {.clientid = cid,
                                    .username = cid,
                                    .peerhost = "192.0.2.1",
                                    .node = "emqx@bench",
                                    .reason = n % 2 ? "normal" : NULL,
                                    .at = (int64_t)time(NULL),
                                    .connected = n % 2 == 0};
            if (exh_store_record_session(s, &ev, &err)) die("history", &err);
        }
        if (exh_store_commit(s, &err)) die("history", &err);
    }
    double r = (double)n / (now_s() - t0);
    exh_store_close(s);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_store LOCATION [--threads T] [--users N] [--seconds S] "
                        "[--cold C]\n");
        return 2;
    }
    loc = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--threads"))
            nthreads = v;
        else if (!strcmp(argv[i], "--users"))
            nusers = v;
        else if (!strcmp(argv[i], "--seconds"))
            seconds = v;
        else if (!strcmp(argv[i], "--cold"))
            ncold = v;
    }
    if (nthreads < 1 || nthreads > 64 || nusers < 1 || seconds < 1 || ncold < 1) {
        fprintf(stderr, "bench_store: bad arguments\n");
        return 2;
    }
    exh_error err;
    if (exh_policy_parse("p", "", 0, &pol, &err)) die("policy", &err);
    /* The users, each in two groups, with one hash computed once: adding
     * N users must not take N argon2id runs. */
    exh_store *s = open_store(true);
    exh_user first;
    exh_new_user u = {.password = "correct horse", .password_len = 13};
    const char *groups[] = {"fleet", "eu-west"};
    u.groups = groups;
    u.ngroups = 2;
    if (exh_store_begin(s, &err)) die("adding users", &err);
    for (int i = 0; i < nusers; i++) {
        char name[32];
        name_of(i, name, sizeof(name));
        u.name = name;
        if (exh_store_add_user(s, &u, &err)) die("adding users", &err);
        if (i == 0) {
            if (exh_store_get_user(s, name, &first, &err)) die("adding users", &err);
            u.password = NULL;
            u.hash = first.hash;
        }
    }
    if (exh_store_commit(s, &err)) die("adding users", &err);
    exh_store_close(s);
    warm_cache = exh_auth_cache_new(300, (size_t)nusers * 2);
    run(FILL);
    char shown[256];
    exh_store_display_name(loc, shown, sizeof(shown));
    double cold = run(COLD), warm = run(WARM), look = run(LOOKUP), hist = history();
    printf("%s: %d users, %d threads: cold logins/s %.1f; warm logins/s %.0f; lookups/s %.0f; "
           "history ev/s %.0f\n",
           shown, nusers, nthreads, cold, warm, look, hist);
    exh_user_clear(&first);
    exh_auth_cache_free(warm_cache);
    exh_policy_free(pol);
    return 0;
}
