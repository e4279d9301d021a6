/*
 * live_policy.h -- the policy a running front end decides with: compiled
 * once, swapped whole on SIGHUP or when a *.policy file changes, and freed
 * when the last request still using the old one lets go.  A policy that
 * fails to compile is logged (file:line:col) and the old one stays.
 */
#ifndef EXHOOK_SERVICE_LIVE_POLICY_H
#define EXHOOK_SERVICE_LIVE_POLICY_H

#include <stdbool.h>

#include "exhook/policy.h"

typedef struct svc_policy svc_policy;

/* Compile PATH (a file or a directory of *.policy) and make it current,
 * without its rule texts (a server never shows them).  EXH_OK, or the
 * compile error in *err. */
exh_status svc_policy_load(const char *path, exh_error *err);

/* The current policy, held until svc_policy_put. */
svc_policy *svc_policy_get(void);
const exh_policy *svc_policy_of(const svc_policy *h);
void svc_policy_put(svc_policy *h);

/* Reload on SIGHUP and on changes in the policy's directory, on a thread
 * of its own.  The caller must have blocked SIGHUP in every thread (do it
 * before starting any).  Returns 0, or -1 (logged). */
int svc_policy_watch_start(void);
void svc_policy_watch_stop(void);

/* Drops the current policy (at exit). */
void svc_policy_release(void);

#endif
