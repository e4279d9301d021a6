/*
 * service.h -- the answers a broker front end gives, whatever its wire:
 * authenticate (store, credential cache, connect rules), authorize (the
 * policy, with what the client's login learned), and session events (the
 * store's connect/disconnect history, written in batches by a thread of
 * its own).  exhook-driver (Erlang port), exhook-grpc (gRPC ExHook) and
 * the Mosquitto plugin are thin layers over this.
 *
 * One svc holds everything a running front end decides with: its settings
 * (svc_config), the live policy, the credential cache, the client table,
 * the store-fault incidents and the history queue.  Its threads are
 * optional: the plugin runs on the broker's thread and reloads when the
 * broker says so, so it starts the history writer only.
 *
 * Store faults fail closed, or answer SVC_IGNORE with failed_action =
 * ignore; each is logged once when it starts and once when it clears.
 * Reads and history writes are separate incidents.
 *
 * Files: service.c (the context, start-up), connection.c (a thread's
 * store connection), incidents.c, authenticate.c, authorize.c, history.c,
 * revalidate.c (live store changes), clients.c, live_policy.c.
 */
#ifndef EXHOOK_SERVICE_SERVICE_H
#define EXHOOK_SERVICE_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "clients.h"
#include "config.h"
#include "exhook/auth.h"
#include "exhook/eval.h"
#include "exhook/hash.h"
#include "exhook/store.h"
#include "live_policy.h"

typedef struct svc svc;

typedef enum svc_answer { SVC_DENY, SVC_ALLOW, SVC_IGNORE } svc_answer;

/* Threads svc_start may start. */
enum {
    SVC_THREAD_HISTORY = 1, /* writes session history in batches */
    SVC_THREAD_RELOAD = 2,  /* reloads the policy on SIGHUP and file changes */
    SVC_THREAD_WATCH = 4,   /* keeps verified logins current: store change notices (watch.c) */
};

/* A service for cfg (copied): the policy compiled, the credential cache
 * and the client table made; no thread yet.  Keys are connections for the
 * Mosquitto plugin (cfg->kind SVC_FOR_PLUGIN, clients.h).  NULL when the
 * policy does not compile or memory runs out (logged). */
svc *svc_new(const svc_config *cfg);
/* Starts the threads asked for.  0, or -1 (logged). */
int svc_start(svc *s, unsigned threads);
/* Writes what history is queued, stops the threads, frees everything. */
void svc_free(svc *s);

const svc_config *svc_settings(const svc *s);
/* The audit log opened again at its writer's next step (any thread). */
void svc_reopen_logs(svc *s);
/* The front end's login queue, shown as a metric (fn: thread-safe). */
void svc_set_queue_depth(svc *s, size_t (*fn)(void));
svc_live_policy *svc_live(svc *s);
svc_clients *svc_client_table(svc *s);

/* What exhook-driver and exhook-grpc do before serving, in order: the
 * service made, SIGHUP plus `also` (e.g. SIGTERM for a sigwait) blocked in
 * every thread to come, SIGPIPE and SIGXFSZ ignored (a full pipe or a file
 * size limit is an error value, not death), the settings' risks said,
 * busy_timeout capped to the broker's call timeout, then every thread and
 * the deadline watcher started.  Returns -1 to go on (*out set), or the
 * exit status (logged). */
int svc_run_start(const svc_config *cfg, const int *also, int nalso, svc **out);
/* The deadline watcher stopped, then svc_free. */
void svc_run_stop(svc *s);

/* One per thread: a store connection (opened lazily, reopened after a
 * failure) and an evaluation context. */
typedef struct svc_conn svc_conn;
svc_conn *svc_conn_new(svc *s);
void svc_conn_free(svc_conn *c);
svc *svc_conn_service(const svc_conn *c);

/* A login in three steps, for front ends that may answer before the check
 * ends (a deadline): begin when the call arrives (the key's record then
 * grants nothing until the login ends), check (the store, the password,
 * the connect rules; fills *g), and end, only when the check's own answer
 * was the one sent: the record then holds what *g grants.  A login
 * answered otherwise (refused at a deadline) is never ended: its record
 * keeps granting nothing.  key: the client id, or the connection (clients.h);
 * NULL: a login without a client id, which leaves no record. */
uint64_t svc_login_begin(svc *s, const char *key, size_t klen, const exh_auth_request *rq);
svc_answer svc_login_check(svc_conn *c, const exh_auth_request *rq, svc_grant *g);
void svc_login_end(svc *s, const char *key, size_t klen, const exh_auth_request *rq, uint64_t gen,
                   svc_grant *g);

/* The check's answer a was the one sent (call it where svc_login_end is
 * called, before it: g still holds the groups): counted, its time since
 * started_ns (svc_now_ns when the call arrived; 0: not timed) observed, and
 * written to the audit log.  c: the thread's connection (NULL: none). */
void svc_login_answered(svc *s, svc_conn *c, const exh_auth_request *rq, const svc_grant *g,
                        svc_answer a, int64_t started_ns);
/* Refused at its deadline, checked or not: counted and audited as such. */
void svc_login_refused_late(svc *s, const exh_auth_request *rq, int64_t started_ns);

/* A login that could not be read (refused): every name on that key
 * without a verified login of its own gets nothing (clients.h). */
void svc_login_unreadable(svc *s, const char *key, size_t len);

/* The three at once, keyed by the request's client id. */
svc_answer svc_authenticate(svc_conn *c, const exh_auth_request *rq);

/* A publish or subscribe (r's action, topic, client), keyed by key (NULL:
 * the request's client id).  peer_text (NULL: none) is the client's
 * address, parsed only when neither r nor the client's record has one.  Groups and the superuser
 * flag come from the client's record, or from the store (once) for a client not seen since start;
 * r's groups are overwritten. */
svc_answer svc_authorize_key(svc_conn *c, const char *key, size_t klen, exh_request *r,
                             const char *peer_text);
svc_answer svc_authorize(svc_conn *c, exh_request *r);
/* The decision cache's answer (an svc_answer) to the check q describes,
 * or -1: then svc_authorize_key, called next for the same check (the
 * request built in full, the same username, action, topic, QoS, retain and
 * delivery flags), decides and keeps the answer in the way this miss
 * reserved (the cache is read and filled only through this pair).  For a
 * front end on one thread with decision_cache on. */
int svc_authorize_cached(svc_conn *c, const char *key, size_t klen, const svc_probe *q);

/* A connect or disconnect for the history (copied; best effort).  A
 * disconnect also forgets the client's record if it holds a finished
 * login by the same user (clients.h), keyed by the client id. */
void svc_session(svc *s, const exh_session_event *ev, size_t clientid_len);
/* Only the history: queued for the history thread. */
void svc_history_add(svc *s, const exh_session_event *ev);
/* Only the history, written now through c's store connection: for a
 * front end without the history thread (the plugin: its writes then do
 * not move the data_version svc_revalidate watches on that connection). */
void svc_history_write(svc_conn *c, const exh_session_event *ev);

/* When another process (exhookctl, a second broker) changed the store
 * since the last call, every verified login is checked against it: a user
 * gone, disabled, bound to other client ids or refused by the connect
 * rules now has its record revoked (it grants nothing) and kick() is
 * called with its client id; the others get their groups and superuser
 * flag refreshed.  Returns the number of logins checked (0: nothing
 * changed), or -1 on a store fault (logged as an incident). */
long svc_revalidate(svc_conn *c, void (*kick)(const char *cid, void *arg), void *arg);
/* The same check, now, of the verified logins of the users named (sorted
 * in strcmp order; NULL: every user), whatever the data version says. */
long svc_revalidate_users(svc_conn *c, const char *const *names, size_t n,
                          void (*kick)(const char *cid, void *arg), void *arg);

/* One step of keeping verified logins current, never waiting: with a
 * store that sends change notices (PostgreSQL), the users named since the
 * last step are checked (svc_revalidate_users; everyone after the
 * listener was (re)opened); without (SQLite), svc_revalidate -- for the
 * Mosquitto plugin only.  Returns as svc_revalidate.  The plugin calls it
 * from its tick; SVC_THREAD_WATCH calls it for the other front ends. */
long svc_watch_step(svc_conn *c, void (*kick)(const char *cid, void *arg), void *arg);

#endif
