/*
 * service_int.h -- what the service's own files share (service.h is what
 * the front ends see).
 */
#ifndef EXHOOK_SERVICE_SERVICE_INT_H
#define EXHOOK_SERVICE_SERVICE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "audit.h"
#include "metrics.h"
#include "service.h"

/* A store fault, reported once when it starts and once when it clears. */
typedef struct svc_incident {
    atomic_int active;
    atomic_long dropped; /* history events lost during the incident */
} svc_incident;

/* A back-off after failures: no new attempt before next_ms (svc_now_ms);
 * the wait starts at min_ms and doubles up to max_ms while attempts keep
 * failing; a success clears it.  Atomic: a service's connections share
 * one (connection.c). */
typedef struct svc_backoff {
    atomic_ullong next_ms;
    atomic_uint delay_ms; /* the next wait; 0: min_ms */
} svc_backoff;

static inline bool svc_backoff_waiting(svc_backoff *b, uint64_t now_ms)
{
    return now_ms < atomic_load(&b->next_ms);
}

static inline void svc_backoff_failed(svc_backoff *b, uint64_t now_ms, unsigned min_ms,
                                      unsigned max_ms)
{
    unsigned d = atomic_load(&b->delay_ms);
    if (d < min_ms) d = min_ms;
    atomic_store(&b->next_ms, now_ms + d);
    atomic_store(&b->delay_ms, d * 2 > max_ms ? max_ms : d * 2);
}

static inline void svc_backoff_ok(svc_backoff *b)
{
    atomic_store(&b->next_ms, 0);
    atomic_store(&b->delay_ms, 0);
}

typedef struct svc_history svc_history;
typedef struct svc_watch svc_watch;

struct svc {
    svc_config cfg;
    bool per_connection; /* keys are connections (the plugin) */
    exh_auth_cache *cache;
    svc_clients *clients;
    svc_live_policy *policy;
    svc_history *history;
    svc_watch *watch; /* change notices (watch.c) */
    /* Reads (credentials, groups) and history writes are separate
     * incidents: a full disk stops the history but not the logins, and
     * one must not announce the other's recovery. */
    svc_incident read_incident, history_incident;
    svc_incident lockout_incident; /* lock-out counts not written */
    pthread_mutex_t incident_lock;
    /* svc_revalidate: the store's data_version when last looked at */
    int64_t data_version;
    bool have_version;
    bool revalidate_again; /* the last walk hit a fault: walk again */
    /* After a slow failed open of a PostgreSQL store, no connection
     * tries again before its time (connection.c): calls in between fail
     * closed at once. */
    svc_backoff reopen;
    /* Steps that heard change notices (watch.c): a login that read the
     * store before one and ends after it has its user checked again. */
    atomic_ullong notice_seq;
    svc_metrics metrics;
    svc_audit *audit;     /* NULL: no audit_log */
    bool audit_samples;   /* audit_sample > 0: allows are drawn for the log */
    svc_kept_fn log_kept; /* with audit: writes a deny or ignore the decision cache kept */
    void *metrics_daemon; /* struct MHD_Daemon (metrics_http.c) */
};

struct svc_conn {
    svc *s;
    exh_store *store;
    bool fresh; /* store (re)opened since svc_revalidate last looked */
    exh_evalctx *ctx;
    svc_metrics_shard *shard; /* this thread's ACL counts (NULL: metrics off) */
    uint64_t rng;             /* audit_sample's coin */
    int forced_draw;          /* the plugin's cached path drew for the next check: 0/1; -1 none */
    char *audit_buf;          /* where this thread formats audit records */
    size_t audit_cap;
};

/* incidents.c */
void svc_store_failed(svc *s, const exh_error *err);
void svc_store_ok(svc *s);
void svc_history_failed(svc *s, const exh_error *err, size_t lost);
void svc_history_overflow(svc *s, int max_events, int max_mib);
void svc_history_ok(svc *s);
void svc_lockout_write_failed(svc *s, const exh_error *err);
void svc_lockout_write_ok(svc *s);

/* connection.c */
exh_store *svc_open_store(svc *s, exh_error *err);
/* The connection's store, opened if it is not (NULL: a fault, said). */
exh_store *svc_conn_store(svc_conn *c);
/* A read failed: the connection is closed, so the next request opens the
 * store again and a restored file, a released lock or a remount is seen. */
void svc_conn_drop_store(svc_conn *c, const exh_error *err);
/* SVC_IGNORE with failed_action = ignore, else SVC_DENY. */
svc_answer svc_failed(const svc *s);

/* authorize.c: a deny the decision cache kept, written to the audit log
 * (s->log_kept; arg the svc_conn). */
void svc_authorize_log_kept(const svc_client_view *v, const svc_decision *d, const svc_probe *q,
                            void *arg);

/* watch.c */
svc_watch *svc_watch_new(bool notices); /* notices: the store sends them (PostgreSQL) */
/* Check the verified logins of this user at the next step (a login that
 * may have read the store before a notice about it was heard). */
void svc_watch_recheck(svc *s, const char *name, size_t len);
int svc_watch_start(svc *s);
void svc_watch_free(svc *s); /* stops its thread first */

/* lockout.c: a login's lock-out keys, and what the store said of them
 * before its credential check. */
typedef struct svc_lockout {
    bool on;          /* lock-outs apply to this login (it has a key) */
    bool locked;      /* refuse it: a key is locked now */
    const char *user; /* the user name key (the request's), or NULL */
    size_t user_len;
    char addr[48];  /* the address key, or "" */
    int64_t now_ms; /* wall clock, read once for the login */
    exh_lockout_state st;
} svc_lockout;
/* Before the credential check: fills *lk (lk->locked: refuse at once,
 * EXH_AUTH_LOCKED_OUT, no hash).  A status but EXH_OK is a store fault. */
exh_status svc_lockout_check(svc *s, exh_store *store, const exh_auth_request *rq, svc_lockout *lk,
                             exh_error *err);
/* After it, with its reason: a failure counted, or a success resetting the
 * user's count.  A status but EXH_OK is a store fault. */
exh_status svc_lockout_count(svc *s, exh_store *store, svc_lockout *lk, exh_auth_reason reason,
                             exh_error *err);
/* Test hook: ms added to the wall clock the lock-outs read. */
extern atomic_llong svc_lockout_skew_ms;

/* history.c */
svc_history *svc_history_new(void);
int svc_history_start(svc *s);
void svc_history_free(svc *s); /* writes what is queued first */

#endif
