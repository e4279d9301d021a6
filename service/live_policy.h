/*
 * live_policy.h -- the policy a running front end decides with: compiled
 * once, swapped whole on a reload (SIGHUP, a changed *.policy file, or the
 * broker's own reload for the Mosquitto plugin), and freed when the last
 * request still using the old one lets go.  A policy that fails to compile
 * is logged (file:line:col) and the old one stays.
 */
#ifndef EXHOOK_SERVICE_LIVE_POLICY_H
#define EXHOOK_SERVICE_LIVE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "exhook/policy.h"

typedef struct svc_live_policy svc_live_policy;
typedef struct svc_policy svc_policy;

/* Compile PATH (a file or a directory of *.policy) and make it current,
 * without its rule texts (a server never shows them).  one_thread: one
 * thread gets, puts and reloads (the Mosquitto plugin): no lock, no
 * reference counts.  EXH_OK, or the compile error in *err (and *out NULL). */
exh_status svc_live_policy_new(const char *path, bool one_thread, svc_live_policy **out,
                               exh_error *err);
/* Stops the watcher, drops the current policy (requests holding it keep
 * it until they let go). */
void svc_live_policy_free(svc_live_policy *lp);

/* Compile the path again; on success it becomes current (logged either
 * way, `why` says what asked).  0 or -1. */
int svc_live_policy_reload(svc_live_policy *lp, const char *why);

/* The current policy, held until svc_policy_put. */
svc_policy *svc_policy_get(svc_live_policy *lp);
const exh_policy *svc_policy_of(const svc_policy *h);
/* Moves on at every load and is never 0: what was decided under another
 * generation is stale. */
uint32_t svc_policy_gen(const svc_policy *h);
void svc_policy_put(svc_policy *h);
/* The current policy's generation, without holding it: an answer decided
 * under it is still the policy's answer (a decision cache's check). */
uint32_t svc_live_policy_gen(svc_live_policy *lp);

/* Reload on SIGHUP and on changes in the policy's directory, on a thread
 * of its own.  The caller must have blocked SIGHUP in every thread (do it
 * before starting any).  Returns 0, or -1 (logged). */
int svc_live_policy_watch(svc_live_policy *lp);

/* For metrics: reloads since start (the first load is not one), the
 * current policy's rule count, compile time and generation. */
typedef struct svc_policy_stats {
    unsigned long reloads_ok, reloads_failed;
    int64_t load_ns;
    uint32_t rules, gen;
} svc_policy_stats;
void svc_live_policy_stats(svc_live_policy *lp, svc_policy_stats *out);

#endif
