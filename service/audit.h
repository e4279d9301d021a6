/*
 * audit.h -- the decision audit log: one JSON object a line (the format is
 * in the README, "Decision audit log"), written to the file named by the
 * setting audit_log.  Denies and logins always; allows sampled at
 * audit_sample.  Never the password.
 *
 * An ACL decision copies what it decided, in binary, into a bounded queue
 * under a short lock; a thread of the log's own takes the queue (a buffer
 * swap), formats the JSON and writes it out.  A login formats its own
 * record (logins are rare).  Nothing on a decision's path waits for the
 * file: when the queue is full the record is dropped, counted, said once
 * per episode in the service's log, and written into the audit log itself
 * as an {"event":"dropped",...} line when there is room again.
 *
 * The file is opened again on SIGUSR1 (exhook-driver, exhook-grpc), on the
 * broker's reload (the plugin: Mosquitto keeps SIGUSR1 for itself), and
 * when the writer finds the path no longer names the file it has open
 * (logrotate's move-and-create, checked once a second).
 */
#ifndef EXHOOK_SERVICE_AUDIT_H
#define EXHOOK_SERVICE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/auth.h"
#include "exhook/eval.h"

typedef struct svc_audit svc_audit;
struct svc;
struct svc_conn;
struct svc_grant;

/* The log for s's settings (audit_log, audit_sample, audit_queue); NULL
 * when audit_log is not set.  front: "grpc", "driver" or "mosquitto". */
int svc_audit_new(const struct svc *s, const char *front, svc_audit **out);
/* The writer thread: opens the file (an error is logged, and retried). */
int svc_audit_start(struct svc *s);
/* Writes what is queued (a writer stuck on the file is given 2 s), then
 * frees. */
void svc_audit_free(struct svc *s);
/* Open the file again at the writer's next step (any thread; async-signal
 * safe). */
void svc_audit_reopen(svc_audit *a);

/* Draw: is this allow to be written?  (audit_sample, per connection.)
 * Only called when svc_audit_samples says allows are sampled at all. */
bool svc_audit_draw(struct svc_conn *c);
bool svc_audit_samples(const svc_audit *a);

/* What a decision's record needs beyond the request. */
typedef struct svc_audit_acl {
    int answer;               /* svc_answer */
    const exh_result *res;    /* NULL: the policy did not decide (rule says why) */
    const exh_policy *policy; /* res's */
    const char *rule;         /* with res NULL: "no login", "store fault", "unverified" */
    uint32_t gen;
    bool sampled; /* an allow written by sampling */
} svc_audit_acl;

void svc_audit_acl_record(struct svc_conn *c, const exh_request *r, const svc_audit_acl *d);

/* A login answered (or refused at its deadline: g NULL, why "deadline"). */
void svc_audit_login(struct svc *s, struct svc_conn *c, const exh_auth_request *rq,
                     const struct svc_grant *g, int answer, const char *why);

#endif
