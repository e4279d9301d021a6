/*
 * metrics.c -- counting (metrics.h) and the Prometheus text exposition,
 * version 0.0.4: for each family a HELP and a TYPE line, then its samples
 * `name{label="value",...} number`; a histogram's buckets are cumulative
 * and end with le="+Inf", equal to its _count.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service_int.h"

static const char *const why_names[SVC_WHY_COUNT] = {
    [SVC_WHY_OK] = "ok",
    [SVC_WHY_OK_CACHED] = "ok cached",
    [SVC_WHY_ANONYMOUS] = "anonymous",
    [SVC_WHY_UNKNOWN_USER] = "unknown user",
    [SVC_WHY_DISABLED] = "disabled",
    [SVC_WHY_CLIENTID_MISMATCH] = "clientid mismatch",
    [SVC_WHY_WRONG_PASSWORD] = "wrong password",
    [SVC_WHY_NO_PASSWORD] = "no password",
    [SVC_WHY_BAD_HASH] = "bad hash",
    [SVC_WHY_STORE_FAULT] = "store fault",
    [SVC_WHY_THROTTLED] = "throttled",
    [SVC_WHY_LOCKED_OUT] = "locked out",
    [SVC_WHY_DEADLINE] = "deadline",
    [SVC_WHY_OUT_OF_MEMORY] = "out of memory",
    [SVC_WHY_HASH_ERROR] = "hash error",
};

const char *svc_login_why_str(svc_login_why w)
{
    return (unsigned)w < SVC_WHY_COUNT ? why_names[w] : "unknown";
}

/* Upper bounds in ns.  ACL: from a record hit (well under 1 us) to a
 * store read; logins: from a cache hit to argon2id behind a queue. */
static const int64_t acl_bounds[SVC_ACL_BUCKETS] = {
    250,    500,    1000,   2500,    5000,    10000,    25000,     50000,
    100000, 250000, 500000, 1000000, 2500000, 10000000, 100000000, 1000000000};
static const int64_t login_bounds[SVC_LOGIN_BUCKETS] = {
    100000,    1000000,   5000000,    10000000,   25000000,   50000000,    100000000,
    250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000, 30000000000};

static int bucket(const int64_t *bounds, int n, int64_t ns)
{
    int i = 0;
    while (i < n && ns > bounds[i])
        i++;
    return i;
}

void svc_metrics_acl_latency(svc_metrics_shard *sh, int64_t ns)
{
    svc_metrics_bump(&sh->lat[bucket(acl_bounds, SVC_ACL_BUCKETS, ns)]);
    atomic_store_explicit(&sh->lat_sum_ns,
                          atomic_load_explicit(&sh->lat_sum_ns, memory_order_relaxed) +
                              (unsigned long)(ns > 0 ? ns : 0),
                          memory_order_relaxed);
}

void svc_metrics_init(svc_metrics *m, bool on)
{
    memset(m, 0, sizeof(*m));
    m->on = on;
    pthread_mutex_init(&m->lock, NULL);
}

void svc_metrics_destroy(svc_metrics *m)
{
    svc_metrics_shard *sh = m->shards;
    while (sh) {
        svc_metrics_shard *next = sh->next;
        free(sh);
        sh = next;
    }
    m->shards = NULL;
    pthread_mutex_destroy(&m->lock);
}

svc_metrics_shard *svc_metrics_shard_take(svc_metrics *m)
{
    if (!m->on) return NULL;
    pthread_mutex_lock(&m->lock);
    svc_metrics_shard *sh = m->shards;
    while (sh && sh->taken)
        sh = sh->next;
    if (!sh && (sh = aligned_alloc(64, sizeof(*sh)))) {
        memset(sh, 0, sizeof(*sh));
        sh->next = m->shards;
        m->shards = sh;
    }
    if (sh) {
        sh->taken = true;
        sh->tick = SVC_ACL_TIME_EVERY;
    }
    pthread_mutex_unlock(&m->lock);
    return sh;
}

void svc_metrics_shard_give(svc_metrics *m, svc_metrics_shard *sh)
{
    if (!sh) return;
    pthread_mutex_lock(&m->lock);
    sh->taken = false; /* its counts stay in the sums */
    pthread_mutex_unlock(&m->lock);
}

void svc_metrics_login(svc_metrics *m, int answer, svc_login_why why, int64_t ns)
{
    if (!m->on) return;
    if (answer < 0 || answer > 2 || (unsigned)why >= SVC_WHY_COUNT) return;
    atomic_fetch_add_explicit(&m->logins[answer][why], 1, memory_order_relaxed);
    if (ns < 0) return; /* not timed */
    atomic_fetch_add_explicit(&m->login_lat[bucket(login_bounds, SVC_LOGIN_BUCKETS, ns)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&m->login_lat_sum_ns, (unsigned long)ns, memory_order_relaxed);
}

/* ---- the exposition ---- */

typedef struct out {
    char *buf;
    size_t len, cap;
    bool failed;
} out;

__attribute__((format(printf, 2, 3))) static void put(out *o, const char *fmt, ...)
{
    if (o->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->failed = true;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

static void family(out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(out *o, const char *name, const int64_t *bounds, int n,
                      const unsigned long *counts, unsigned long sum_ns)
{
    unsigned long cum = 0;
    for (int i = 0; i < n; i++) {
        cum += counts[i];
        put(o, "%s_bucket{le=\"%g\"} %lu\n", name, (double)bounds[i] / 1e9, cum);
    }
    cum += counts[n];
    put(o, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.9f\n%s_count %lu\n", name, cum, name,
        (double)sum_ns / 1e9, name, cum);
}

static const char *const acl_kinds[SVC_ACL_KINDS] = {[SVC_ACL_PUBLISH] = "publish",
                                                     [SVC_ACL_SUBSCRIBE] = "subscribe",
                                                     [SVC_ACL_DELIVER] = "deliver"};
static const char *const outcomes[SVC_OUTCOMES] = {[SVC_OUT_ALLOW] = "allow",
                                                   [SVC_OUT_DENY] = "deny",
                                                   [SVC_OUT_IGNORE] = "ignore",
                                                   [SVC_OUT_INVALID] = "invalid"};
static const char *const answers[3] = {"deny", "allow", "ignore"}; /* svc_answer order */

long svc_metrics_render(svc *s, char **result)
{
    svc_metrics *m = &s->metrics;
    out o = {.cap = 8192};
    *result = NULL;
    if (!(o.buf = malloc(o.cap))) return -1;
    o.buf[0] = '\0';

    unsigned long acl[SVC_ACL_KINDS][SVC_OUTCOMES] = {{0}};
    unsigned long lat[SVC_ACL_BUCKETS + 1] = {0}, lat_sum = 0;
    pthread_mutex_lock(&m->lock);
    for (svc_metrics_shard *sh = m->shards; sh; sh = sh->next) {
        for (int k = 0; k < SVC_ACL_KINDS; k++)
            for (int r = 0; r < SVC_OUTCOMES; r++)
                acl[k][r] += atomic_load_explicit(&sh->acl[k][r], memory_order_relaxed);
        for (int i = 0; i <= SVC_ACL_BUCKETS; i++)
            lat[i] += atomic_load_explicit(&sh->lat[i], memory_order_relaxed);
        lat_sum += atomic_load_explicit(&sh->lat_sum_ns, memory_order_relaxed);
    }
    pthread_mutex_unlock(&m->lock);

    family(&o, "exhook_acl_decisions_total", "counter",
           "Publish, subscribe and delivery checks answered, by action and outcome (invalid: "
           "an invalid topic, denied).");
    /* shown in this order, whatever the indexes' */
    static const int kshow[] = {SVC_ACL_PUBLISH, SVC_ACL_SUBSCRIBE, SVC_ACL_DELIVER};
    static const int oshow[] = {SVC_OUT_ALLOW, SVC_OUT_DENY, SVC_OUT_IGNORE, SVC_OUT_INVALID};
    for (int i = 0; i < SVC_ACL_KINDS; i++)
        for (int j = 0; j < SVC_OUTCOMES; j++)
            put(&o, "exhook_acl_decisions_total{action=\"%s\",outcome=\"%s\"} %lu\n",
                acl_kinds[kshow[i]], outcomes[oshow[j]], acl[kshow[i]][oshow[j]]);
    family(&o, "exhook_acl_latency_seconds", "histogram",
           "Time to decide an ACL check, timed on one check in 128 per thread.");
    histogram(&o, "exhook_acl_latency_seconds", acl_bounds, SVC_ACL_BUCKETS, lat, lat_sum);

    family(&o, "exhook_logins_total", "counter",
           "Logins answered, by the answer given and how the credential check ended.");
    for (int a = 0; a < 3; a++)
        for (int w = 0; w < SVC_WHY_COUNT; w++)
            put(&o, "exhook_logins_total{outcome=\"%s\",reason=\"%s\"} %lu\n", answers[a],
                why_names[w], atomic_load(&m->logins[a][w]));
    unsigned long llat[SVC_LOGIN_BUCKETS + 1];
    for (int i = 0; i <= SVC_LOGIN_BUCKETS; i++)
        llat[i] = atomic_load(&m->login_lat[i]);
    family(&o, "exhook_login_latency_seconds", "histogram",
           "Time from a login's arrival to its answer.");
    histogram(&o, "exhook_login_latency_seconds", login_bounds, SVC_LOGIN_BUCKETS, llat,
              atomic_load(&m->login_lat_sum_ns));

    family(&o, "exhook_password_hashes_total", "counter",
           "Password hashes computed (verifications, an unknown name's dummy hash included).");
    put(&o, "exhook_password_hashes_total %lu\n", atomic_load(&m->hashes));
    family(&o, "exhook_credential_cache_hits_total", "counter",
           "Logins whose password was verified from the credential cache.");
    put(&o, "exhook_credential_cache_hits_total %lu\n", atomic_load(&m->cache_hits));
    family(&o, "exhook_credential_cache_misses_total", "counter",
           "Logins whose password needed a hash (not in the credential cache).");
    put(&o, "exhook_credential_cache_misses_total %lu\n", atomic_load(&m->cache_misses));

    svc_depth_fn depth = atomic_load(&m->queue_depth);
    if (depth) {
        family(&o, "exhook_worker_queue_depth", "gauge",
               "Logins waiting for a password-checking worker.");
        put(&o, "exhook_worker_queue_depth %zu\n", depth());
    }

    family(&o, "exhook_store_incidents_total", "counter",
           "Credential store faults begun, by kind (read: logins and ACL lookups; history: "
           "session history writes; lockout: lock-out counts).");
    put(&o, "exhook_store_incidents_total{kind=\"read\"} %lu\n", atomic_load(&m->incidents_read));
    put(&o, "exhook_store_incidents_total{kind=\"history\"} %lu\n",
        atomic_load(&m->incidents_history));
    put(&o, "exhook_store_incidents_total{kind=\"lockout\"} %lu\n",
        atomic_load(&m->incidents_lockout));
    family(&o, "exhook_store_incident_active", "gauge",
           "1 while a store fault of that kind lasts.");
    put(&o, "exhook_store_incident_active{kind=\"read\"} %d\n",
        atomic_load(&s->read_incident.active) ? 1 : 0);
    put(&o, "exhook_store_incident_active{kind=\"history\"} %d\n",
        atomic_load(&s->history_incident.active) ? 1 : 0);
    put(&o, "exhook_store_incident_active{kind=\"lockout\"} %d\n",
        atomic_load(&s->lockout_incident.active) ? 1 : 0);

    svc_policy_stats ps;
    svc_live_policy_stats(s->policy, &ps);
    family(&o, "exhook_policy_reloads_total", "counter",
           "Policy reloads since start, by result (failed: the old policy was kept).");
    put(&o, "exhook_policy_reloads_total{result=\"ok\"} %lu\n", ps.reloads_ok);
    put(&o, "exhook_policy_reloads_total{result=\"failed\"} %lu\n", ps.reloads_failed);
    family(&o, "exhook_policy_rules", "gauge", "Rules in the loaded policy.");
    put(&o, "exhook_policy_rules %u\n", ps.rules);
    family(&o, "exhook_policy_load_seconds", "gauge", "Time the loaded policy took to compile.");
    put(&o, "exhook_policy_load_seconds %.6f\n", (double)ps.load_ns / 1e9);
    family(&o, "exhook_policy_generation", "gauge",
           "The loaded policy's generation (1 at start, one more per successful reload).");
    put(&o, "exhook_policy_generation %u\n", ps.gen);

    family(&o, "exhook_history_events_written_total", "counter",
           "Session history events written to the store.");
    put(&o, "exhook_history_events_written_total %lu\n", atomic_load(&m->history_written));
    family(&o, "exhook_history_events_dropped_total", "counter",
           "Session history events lost (queue full or the store refusing writes).");
    put(&o, "exhook_history_events_dropped_total %lu\n", atomic_load(&m->history_dropped));

    family(&o, "exhook_audit_records_written_total", "counter",
           "Decision audit log records written.");
    put(&o, "exhook_audit_records_written_total %lu\n", atomic_load(&m->audit_written));
    family(&o, "exhook_audit_records_dropped_total", "counter",
           "Decision audit log records dropped because the queue was full, by event.");
    put(&o, "exhook_audit_records_dropped_total{event=\"acl\"} %lu\n",
        atomic_load(&m->audit_dropped_acl));
    put(&o, "exhook_audit_records_dropped_total{event=\"login\"} %lu\n",
        atomic_load(&m->audit_dropped_login));
    family(&o, "exhook_audit_records_lost_total", "counter",
           "Decision audit log records the file refused (a failed write), any event.");
    put(&o, "exhook_audit_records_lost_total %lu\n", atomic_load(&m->audit_lost));
    if (o.failed) {
        free(o.buf);
        return -1;
    }
    *result = o.buf;
    return (long)o.len;
}
