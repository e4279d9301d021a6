/*
 * deadline.c -- see deadline.h.  One watcher thread sleeps until the
 * soonest deadline on a list; arrivals are nearly in deadline order (the
 * timeout is the same for every call), so inserting from the tail is
 * almost always one step.
 */
#include "deadline.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log.h"

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    svc_pending *head, *tail;
    bool running, stopping;
    pthread_t thread;
    int timeout_ms, margin_ms;
} w = {.lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_llong cost_ns; /* the checks' moving average */
static atomic_long refused, refused_said;
static _Atomic int64_t last_said; /* ns */

int64_t svc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

uint64_t svc_now_ms(void)
{
    return (uint64_t)(svc_now_ns() / 1000000);
}

int svc_deadline_margin_ms(int t)
{
    int m = t / 4;
    return m < 50 ? 50 : m > 1000 ? 1000 : m;
}

int64_t svc_deadline_for(int64_t received_ns, int64_t limit_ns)
{
    int64_t margin = (int64_t)w.margin_ms * 1000000LL;
    int64_t d = received_ns + (int64_t)w.timeout_ms * 1000000LL - margin;
    if (limit_ns > 0 && limit_ns - margin < d) d = limit_ns - margin;
    return d;
}

static void unlink_locked(svc_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        w.head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        w.tail = p->prev;
    p->prev = p->next = NULL;
    p->listed = false;
}

void svc_pending_add(svc_pending *p, int64_t received, int64_t deadline)
{
    p->received = received;
    p->deadline = deadline;
    p->claimed = false;
    atomic_store(&p->refs, 2);
    pthread_mutex_lock(&w.lock);
    svc_pending *q = w.tail;
    while (q && q->deadline > deadline)
        q = q->prev;
    p->prev = q;
    p->next = q ? q->next : w.head;
    if (p->next)
        p->next->prev = p;
    else
        w.tail = p;
    if (q)
        q->next = p;
    else
        w.head = p;
    p->listed = true;
    if (w.head == p) pthread_cond_signal(&w.cond); /* sooner than what it sleeps for */
    pthread_mutex_unlock(&w.lock);
}

void svc_pending_release(svc_pending *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) p->destroy(p);
}

bool svc_pending_claim(svc_pending *p)
{
    pthread_mutex_lock(&w.lock);
    bool mine = !p->claimed;
    p->claimed = true;
    bool listed = p->listed;
    if (listed) unlink_locked(p);
    pthread_mutex_unlock(&w.lock);
    /* Off the list: the watcher's reference goes with it (the caller
     * still holds its own, so this is never the last). */
    if (listed) atomic_fetch_sub(&p->refs, 1);
    return mine;
}

static void *watch(void *arg)
{
    (void)arg;
    /* The refusals must go out on time when the password checks hold every
     * core: ahead of the other threads where the process may (as root; on
     * Linux the nice value is per thread), else as it is. */
    setpriority(PRIO_PROCESS, 0, -10);
    pthread_mutex_lock(&w.lock);
    while (!w.stopping) {
        svc_pending *p = w.head;
        int64_t now = svc_now_ns();
        if (p && p->deadline <= now) {
            unlink_locked(p);
            p->claimed = true;
            pthread_mutex_unlock(&w.lock);
            p->expire(p);
            svc_deadline_refused();
            svc_pending_release(p); /* the watcher's reference */
            pthread_mutex_lock(&w.lock);
            continue;
        }
        if (!p) {
            pthread_cond_wait(&w.cond, &w.lock);
        } else {
            struct timespec ts = {.tv_sec = (time_t)(p->deadline / 1000000000LL),
                                  .tv_nsec = (long)(p->deadline % 1000000000LL)};
            pthread_cond_timedwait(&w.cond, &w.lock, &ts);
        }
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

int svc_deadline_start(int call_timeout_ms)
{
    w.timeout_ms = call_timeout_ms;
    w.margin_ms = svc_deadline_margin_ms(call_timeout_ms);
    w.stopping = false;
    atomic_store(&last_said, svc_now_ns() - 10000000000LL); /* the first is said at once */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cond, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&w.thread, NULL, watch, NULL);
    if (e) {
        svc_log(LOG_ERROR, "cannot start the deadline thread: %s", strerror(e));
        return -1;
    }
    w.running = true;
    return 0;
}

void svc_deadline_stop(void)
{
    if (!w.running) return;
    pthread_mutex_lock(&w.lock);
    w.stopping = true;
    pthread_cond_signal(&w.cond);
    pthread_mutex_unlock(&w.lock);
    pthread_join(w.thread, NULL);
    w.running = false;
    long n = atomic_load(&refused) - atomic_load(&refused_said);
    if (n > 0)
        svc_log(LOG_WARN, "%ld more logins were refused at their deadline (call_timeout %d ms)", n,
                w.timeout_ms);
}

bool svc_deadline_can_start(const svc_pending *p)
{
    int64_t now = svc_now_ns();
    if (now >= p->deadline) return false;
    if (now - p->received < (p->deadline - p->received) / 2) return true;
    return now + atomic_load(&cost_ns) <= p->deadline;
}

bool svc_deadline_admit(int64_t deadline, size_t queued, int workers)
{
    if (workers < 1) workers = 1;
    if (queued < (size_t)workers) return true;
    int64_t rounds = (int64_t)(queued / (size_t)workers) + 1;
    return svc_now_ns() + rounds * atomic_load(&cost_ns) <= deadline;
}

void svc_deadline_observe(int64_t ns)
{
    /* An average over the last few checks (weight 1/8): a burst of slow
     * checks raises it within a handful of them. */
    int64_t old = atomic_load(&cost_ns);
    atomic_store(&cost_ns, old ? old + (ns - old) / 8 : ns);
}

void svc_deadline_refused(void)
{
    long total = atomic_fetch_add(&refused, 1) + 1;
    int64_t now = svc_now_ns(), last = atomic_load(&last_said);
    if (now - last < 10000000000LL || !atomic_compare_exchange_strong(&last_said, &last, now))
        return;
    long before = atomic_exchange(&refused_said, total);
    svc_log(LOG_WARN,
            "%ld logins refused in the last %lld s: not decided %d ms before the broker's "
            "call_timeout of %d ms (a password check takes about %lld ms; more workers, a "
            "cheaper hash or a longer timeout would let them finish)",
            total - before, (long long)((now - last) / 1000000000LL), w.margin_ms, w.timeout_ms,
            (long long)(atomic_load(&cost_ns) / 1000000LL));
}

long svc_deadline_refused_total(void)
{
    return atomic_load(&refused);
}
