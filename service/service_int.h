/*
 * service_int.h -- what the service's own files share (service.h is what
 * the front ends see).
 */
#ifndef EXHOOK_SERVICE_SERVICE_INT_H
#define EXHOOK_SERVICE_SERVICE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "service.h"

/* A store fault, reported once when it starts and once when it clears. */
typedef struct svc_incident {
    atomic_int active;
    atomic_long dropped; /* history events lost during the incident */
} svc_incident;

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
    pthread_mutex_t incident_lock;
    /* svc_revalidate: the store's data_version when last looked at */
    int64_t data_version;
    bool have_version;
    bool revalidate_again; /* the last walk hit a fault: walk again */
    /* After a slow failed open, no connection tries again before
     * reopen_ms (connection.c): calls in between fail closed at once. */
    atomic_ullong reopen_ms;
    atomic_uint reopen_backoff_ms;
    /* Steps that heard change notices (watch.c): a login that read the
     * store before one and ends after it has its user checked again. */
    atomic_ullong notice_seq;
};

struct svc_conn {
    svc *s;
    exh_store *store;
    bool fresh; /* store (re)opened since svc_revalidate last looked */
    exh_evalctx *ctx;
};

/* incidents.c */
void svc_store_failed(svc *s, const exh_error *err);
void svc_store_ok(svc *s);
void svc_history_failed(svc *s, const exh_error *err, size_t lost);
void svc_history_overflow(svc *s, int max_events, int max_mib);
void svc_history_ok(svc *s);

/* connection.c */
exh_store *svc_open_store(svc *s, exh_error *err);
/* The connection's store, opened if it is not (NULL: a fault, said). */
exh_store *svc_conn_store(svc_conn *c);
/* A read failed: the connection is closed, so the next request opens the
 * store again and a restored file, a released lock or a remount is seen. */
void svc_conn_drop_store(svc_conn *c, const exh_error *err);
/* SVC_IGNORE with failed_action = ignore, else SVC_DENY. */
svc_answer svc_failed(const svc *s);

/* history.c */
svc_watch *svc_watch_new(void);
/* Check the verified logins of this user at the next step (a login that
 * may have read the store before a notice about it was heard). */
void svc_watch_recheck(svc *s, const char *name, size_t len);
int svc_watch_start(svc *s);
void svc_watch_free(svc *s); /* stops its thread first */

svc_history *svc_history_new(void);
int svc_history_start(svc *s);
void svc_history_free(svc *s); /* writes what is queued first */

#endif
