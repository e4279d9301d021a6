/*
 * deadline.h -- answer a login before the broker stops waiting for it.
 *
 * EMQX gives each hook call a deadline (4.x: exhook.drivers.<type>.
 * call_timeout, default 5 s; 4.3+/5.x: exhook's request_timeout, default
 * 5 s).  A call it has stopped waiting for is skipped and the client gets
 * the broker's default result, which on a default EMQX 4.1 configuration
 * (allow_anonymous = true) lets it in -- a wrong password included.  So a
 * login that is not decided by the broker's timeout minus a safety margin
 * is refused at once, here, by a watcher thread, even while its password
 * check still runs; the check's own answer then goes nowhere.  And work
 * that cannot finish in time is refused before it starts: a login that
 * waited in the queue too long, or that would queue behind more checks
 * than the workers can do in time.
 *
 * Each pending login is an svc_pending that the front end embeds in its
 * job: exactly one of the worker (svc_pending_claim) and the watcher (its
 * expire callback) answers it, and the job is freed when both have let go
 * (svc_pending_release).
 */
#ifndef EXHOOK_SERVICE_DEADLINE_H
#define EXHOOK_SERVICE_DEADLINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct svc_pending svc_pending;
struct svc_pending {
    svc_pending *prev, *next;   /* on the watcher's list, soonest deadline first */
    int64_t received, deadline; /* CLOCK_MONOTONIC, ns */
    bool claimed, listed;       /* under the watcher's lock */
    atomic_int refs;
    /* Answer "refused", on the watcher thread (may take a lock of the
     * front end's, never the watcher's). */
    void (*expire)(svc_pending *p);
    void (*destroy)(svc_pending *p); /* the last reference went */
};

/* Monotonic now, ns; and ms. */
int64_t svc_now_ns(void);
uint64_t svc_now_ms(void);

/* Start the watcher for a broker timeout of call_timeout_ms (> 0).
 * 0, or -1 (logged). */
int svc_deadline_start(int call_timeout_ms);
/* Stop it; every pending login must have been claimed or released. */
void svc_deadline_stop(void);

/* The margin kept before the broker's timeout, ms: a quarter of it, at
 * least 50 ms and at most 1 s (pipe or network delay, a busy machine). */
int svc_deadline_margin_ms(int call_timeout_ms);

/* The deadline of a call received at received_ns: its answer must be
 * sent by then.  limit_ns (0: none) is a deadline the call itself carries
 * (a gRPC deadline), minus the margin too; the sooner one counts. */
int64_t svc_deadline_for(int64_t received_ns, int64_t limit_ns);

/* Watch p, a call received then (refs becomes 2: the caller's and the
 * watcher's). */
void svc_pending_add(svc_pending *p, int64_t received, int64_t deadline);
/* The right to answer p: true once, for whoever comes first (the worker
 * here, or the watcher at the deadline). */
bool svc_pending_claim(svc_pending *p);
/* Drop the caller's reference (destroy at the last). */
void svc_pending_release(svc_pending *p);

/* May p's check start now?  No when its deadline has passed, or when it
 * has waited more than half its time and the checks seen so far take
 * longer than what is left.  A fresh login is always tried (the watcher
 * still answers it in time): the estimate must keep learning, or one slow
 * spell would refuse every login after it. */
bool svc_deadline_can_start(const svc_pending *p);
/* May a login join a queue of `queued` others drained by `workers`
 * threads and still be answered by its deadline?  Always while a worker
 * is free. */
bool svc_deadline_admit(int64_t deadline, size_t queued, int workers);
/* A check took this long (ns): the estimate the two above use. */
void svc_deadline_observe(int64_t ns);

/* A login refused at or before its deadline: counted, and said at most
 * once every 10 s with the count since the last line. */
void svc_deadline_refused(void);
/* How many so far (tests and logs). */
long svc_deadline_refused_total(void);

#endif
