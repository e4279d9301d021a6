/*
 * decide.h -- the answers a broker front end gives, whatever its wire:
 * authenticate (store, credential cache, connect rules), authorize (the
 * policy, with what the client's login learned), and session events (the
 * store's connect/disconnect history, written in batches by a thread of
 * its own).  exhook-driver (Erlang port) and exhook-grpc (gRPC ExHook)
 * are thin layers over this.
 *
 * Store faults fail closed, or answer SVC_IGNORE with failed_action =
 * ignore; each is logged once when it starts and once when it clears.
 * Reads and history writes are separate incidents.
 */
#ifndef EXHOOK_SERVICE_DECIDE_H
#define EXHOOK_SERVICE_DECIDE_H

#include <stdbool.h>
#include <stdint.h>

#include "clients.h"
#include "exhook/auth.h"
#include "exhook/eval.h"
#include "exhook/hash.h"
#include "exhook/store.h"

typedef struct svc_settings {
    const char *db;
    int busy_timeout_ms;
    bool unknown_ignore; /* unknown users: no opinion instead of deny */
    bool failed_ignore;  /* store unavailable: no opinion instead of deny */
    uint32_t cache_ttl, cache_max;
    exh_hash_params hash; /* what upgrade on login rehashes to */
} svc_settings;

typedef enum svc_answer { SVC_DENY, SVC_ALLOW, SVC_IGNORE } svc_answer;

/* Starts the history thread and the credential cache; the policy must be
 * loaded (live_policy.h).  0, or -1 (logged). */
int svc_start(const svc_settings *s);
/* Writes what history is queued, stops the thread, frees the rest. */
void svc_stop(void);

struct svc_config;
/* What every front end does before serving, in order: load the policy
 * (rule texts dropped), block SIGHUP plus `also` (e.g. SIGTERM for a
 * sigwait) in every thread to come, ignore SIGPIPE and SIGXFSZ (a full
 * pipe or a file size limit is an error value, not death), start the
 * policy watcher and svc_start.  Returns -1 to go on, or the exit status
 * (logged). */
int svc_run_start(const struct svc_config *cfg, const int *also, int nalso);
/* svc_stop, the watcher stopped, the policy released. */
void svc_run_stop(void);

/* One per thread: a store connection (opened lazily, reopened after a
 * failure) and an evaluation context. */
typedef struct svc_conn svc_conn;
svc_conn *svc_conn_new(void);
void svc_conn_free(svc_conn *c);

/* What a login grants, for the client's record (clients.h). */
typedef struct svc_grant {
    svc_client_state state;
    bool superuser;
    char **groups;
    size_t ngroups;
} svc_grant;
void svc_grant_clear(svc_grant *g);

/* A login in three steps, for front ends that may answer before the check
 * ends (a deadline): begin when the call arrives (the client id's record
 * then grants nothing until the login ends), check (the store, the
 * password, the connect rules; fills *g), and end, only when the check's
 * own answer was the one sent: the record then holds what *g grants.  A
 * login answered otherwise (refused at a deadline) is never ended: its
 * record keeps granting nothing. */
uint64_t svc_login_begin(const exh_auth_request *rq);
svc_answer svc_login_check(svc_conn *c, const exh_auth_request *rq, svc_grant *g);
void svc_login_end(const exh_auth_request *rq, uint64_t gen, svc_grant *g);

/* A login that could not be read (refused): every name on that client id
 * without a verified login of its own gets nothing (clients.h). */
void svc_login_unreadable(const char *cid, size_t len);

/* The three at once. */
svc_answer svc_authenticate(svc_conn *c, const exh_auth_request *rq);

/* A publish or subscribe (r's action, topic, client).  Groups and the
 * superuser flag come from the client's record, or from the store (once)
 * for a client not seen since start; r's groups are overwritten. */
svc_answer svc_authorize(svc_conn *c, exh_request *r);

/* A connect or disconnect for the history (copied; best effort).  A
 * disconnect also forgets the client's record if it holds a finished
 * login by the same user (clients.h). */
void svc_session(const exh_session_event *ev, size_t clientid_len);

#endif
