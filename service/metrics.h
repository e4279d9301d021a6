/*
 * metrics.h -- what a running front end counts, and its Prometheus text
 * exposition (format 0.0.4), served by metrics_http.c when the setting
 * metrics_listen is given.
 *
 * The ACL path counts into a shard of its own thread's connection
 * (svc_conn): one writer per shard, so a count is a plain load and store
 * of a relaxed atomic -- no lock, no locked instruction, no shared cache
 * line.  A scrape adds the shards up.  Everything rarer (logins, reloads,
 * store incidents, history, audit) uses shared atomics.
 *
 * ACL latency is timed on one decision in 128 per thread (the histogram's
 * _count says how many were timed): reading the clock twice costs about as
 * much as a decision from the client's record, and a histogram's quantiles
 * are the same from a steady sample.  Logins are all timed.
 */
#ifndef EXHOOK_SERVICE_METRICS_H
#define EXHOOK_SERVICE_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* In the order of exh_action's values and of svc_answer's (authorize.c
 * checks it): the ACL path indexes its counts with them as they are. */
enum { SVC_ACL_DELIVER, SVC_ACL_PUBLISH, SVC_ACL_SUBSCRIBE, SVC_ACL_KINDS };
enum { SVC_OUT_DENY, SVC_OUT_ALLOW, SVC_OUT_IGNORE, SVC_OUT_INVALID, SVC_OUTCOMES };

/* How a login ended, as metrics and the audit log name it (svc_login_why_str). */
typedef enum svc_login_why {
    SVC_WHY_OK,
    SVC_WHY_OK_CACHED,
    SVC_WHY_ANONYMOUS,
    SVC_WHY_UNKNOWN_USER,
    SVC_WHY_DISABLED,
    SVC_WHY_CLIENTID_MISMATCH,
    SVC_WHY_WRONG_PASSWORD,
    SVC_WHY_NO_PASSWORD,
    SVC_WHY_BAD_HASH,
    SVC_WHY_STORE_FAULT,
    SVC_WHY_THROTTLED,
    SVC_WHY_LOCKED_OUT,
    SVC_WHY_DEADLINE,
    SVC_WHY_OUT_OF_MEMORY,
    SVC_WHY_HASH_ERROR,
    SVC_WHY_COUNT
} svc_login_why;
const char *svc_login_why_str(svc_login_why w);

enum { SVC_ACL_BUCKETS = 16, SVC_LOGIN_BUCKETS = 14, SVC_ACL_TIME_EVERY = 128 };

/* One thread's ACL counts (one writer: svc_metrics_bump). */
typedef struct svc_metrics_shard {
    /* One row more than there are kinds: the ACL path indexes with two bits
     * of the action, so no value can land outside (the spare row is never
     * shown). */
    _Alignas(64) atomic_ulong acl[SVC_ACL_KINDS + 1][SVC_OUTCOMES];
    atomic_ulong lat[SVC_ACL_BUCKETS + 1]; /* the last: +Inf */
    atomic_ulong lat_sum_ns;
    unsigned tick; /* decisions until the next timed one (counted down: a decrement and a
                      jump on the path every check takes) */
    bool taken;
    struct svc_metrics_shard *next;
} svc_metrics_shard;

/* The only writer's increment: no read-modify-write instruction. */
static inline void svc_metrics_bump(atomic_ulong *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Time this decision?  One in SVC_ACL_TIME_EVERY. */
static inline bool svc_metrics_time_this(svc_metrics_shard *sh)
{
    if (--sh->tick) return false;
    sh->tick = SVC_ACL_TIME_EVERY;
    return true;
}

void svc_metrics_acl_latency(svc_metrics_shard *sh, int64_t ns);

typedef size_t (*svc_depth_fn)(void);

typedef struct svc_metrics {
    bool on;              /* metrics_listen given: count (off: nothing is counted) */
    pthread_mutex_t lock; /* the shard list (taken at svc_conn_new/free only) */
    svc_metrics_shard *shards;
    atomic_ulong logins[3][SVC_WHY_COUNT]; /* [svc_answer][why] */
    atomic_ulong login_lat[SVC_LOGIN_BUCKETS + 1];
    atomic_ulong login_lat_sum_ns;
    atomic_ulong hashes, cache_hits, cache_misses;
    atomic_ulong incidents_read, incidents_history, incidents_lockout;
    atomic_ulong history_written, history_dropped;
    atomic_ulong audit_written, audit_dropped_acl, audit_dropped_login, audit_lost;
    atomic_ulong http_scrapes;
    _Atomic svc_depth_fn queue_depth; /* the front end's worker queue (NULL: none) */
} svc_metrics;

struct svc;
void svc_metrics_init(svc_metrics *m, bool on);
void svc_metrics_destroy(svc_metrics *m);
/* A shard for a new connection (a free one is reused: counts only grow);
 * NULL when metrics are off or memory ran out (then nothing is counted). */
svc_metrics_shard *svc_metrics_shard_take(svc_metrics *m);
void svc_metrics_shard_give(svc_metrics *m, svc_metrics_shard *sh);

void svc_metrics_login(svc_metrics *m, int answer, svc_login_why why, int64_t ns);

/* The exposition of everything, malloc'd in *out (NUL-terminated);
 * its length, or -1 when memory ran out. */
long svc_metrics_render(struct svc *s, char **out);

/* The HTTP listener (metrics_http.c): GET /metrics.  0, or -1 (logged). */
int svc_metrics_listen(struct svc *s, const char *host_port);
void svc_metrics_stop(struct svc *s);

#endif
