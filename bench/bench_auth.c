/*
 * bench_auth.c -- what a connect costs: a full argon2id verification (the
 * store's default cost) against the verified-credential cache that spares
 * a reconnecting client that cost.  A benchmark, not a test.
 *
 *   bench_auth [--logins N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exhook/auth.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    int n = 20;
    if (argc == 3 && !strcmp(argv[1], "--logins")) n = atoi(argv[2]);
    if (n < 3 || n > 100000) {
        fprintf(stderr, "usage: bench_auth [--logins N (3..100000)]\n");
        return 2;
    }
    char dir[] = "/tmp/exh-bench-auth-XXXXXX", path[128];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof(path), "%s/b.db", dir);
    exh_store_opts o;
    exh_store_opts_default(&o);
    exh_store *s;
    exh_policy *p;
    exh_error err;
    if (exh_store_open(path, &o, &s, &err) || exh_policy_parse("p", "", 0, &p, &err)) {
        fprintf(stderr, "bench_auth: %s\n", err.message);
        return 1;
    }
    exh_new_user u = {.name = "device", .password = "correct horse", .password_len = 13};
    if (exh_store_add_user(s, &u, &err)) {
        fprintf(stderr, "bench_auth: %s\n", err.message);
        return 1;
    }
    exh_evalctx *ctx = exh_evalctx_new();
    exh_auth_cache *cache = exh_auth_cache_new(300, 100000);
    exh_auth_cache *none = exh_auth_cache_new(0, 1);
    double *cold = malloc(sizeof(double) * (size_t)n), *warm = malloc(sizeof(double) * (size_t)n);
    exh_auth_request rq = {.username = "device",
                           .username_len = 6,
                           .clientid = "c",
                           .clientid_len = 1,
                           .password = "correct horse",
                           .password_len = 13,
                           .check_password = true};
    for (int i = 0; i < 2 * n; i++) {
        exh_auth_result r;
        int cached = i >= n;
        double t0 = now_us();
        exh_authenticate(s, cached ? cache : none, p, ctx, &rq, &r, &err);
        double t1 = now_us();
        if (r.decision != EXH_ALLOW) {
            fprintf(stderr, "bench_auth: login refused: %s\n", exh_auth_reason_str(r.reason));
            return 1;
        }
        if (cached && i > n && r.reason != EXH_AUTH_OK_CACHED) {
            fprintf(stderr, "bench_auth: expected a cache hit\n");
            return 1;
        }
        (cached ? warm : cold)[cached ? i - n : i] = t1 - t0;
        exh_auth_result_clear(&r);
    }
    double c = median(cold, n), w = median(warm + 1, n - 1); /* warm[0] fills the cache */
    printf("argon2id m=%u KiB t=%u p=%u: full verification p50_us=%.0f; cached p50_us=%.1f;"
           " ratio=%.0f (%d logins each)\n",
           o.hash.m_kib, o.hash.t_cost, o.hash.lanes, c, w, c / w, n);
    /* A refused login must not tell whether the name exists: a wrong
     * password and an unknown user should take the same time. */
    double *wrong = cold, *unknown = warm;
    for (int i = 0; i < 2 * n; i++) {
        exh_auth_request bad = rq;
        bad.password = "wrong horse";
        bad.password_len = 11;
        if (i >= n) {
            bad.username = "nobody";
            bad.username_len = 6;
        }
        exh_auth_result r;
        double t0 = now_us();
        exh_authenticate(s, none, p, ctx, &bad, &r, &err);
        double t1 = now_us();
        if (r.decision != EXH_DENY) {
            fprintf(stderr, "bench_auth: a bad login was let in\n");
            return 1;
        }
        (i >= n ? unknown : wrong)[i >= n ? i - n : i] = t1 - t0;
        exh_auth_result_clear(&r);
    }
    /* unknown[0] also hashes the store's dummy password once */
    double wr = median(wrong, n), un = median(unknown + 1, n - 1);
    printf("refused logins: wrong password p50_us=%.0f; unknown user p50_us=%.0f; ratio=%.2f\n", wr,
           un, un / wr);
    exh_auth_cache_free(cache);
    exh_auth_cache_free(none);
    exh_evalctx_free(ctx);
    exh_policy_free(p);
    exh_store_close(s);
    free(cold);
    free(warm);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) != 0;
}
