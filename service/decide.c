/*
 * decide.c -- see decide.h.
 */
#define _GNU_SOURCE /* strndup */
#include "decide.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <signal.h>

#include "clients.h"
#include "config.h"
#include "deadline.h"
#include "live_policy.h"
#include "log.h"

static svc_settings set;
static exh_auth_cache *cache;

/* ---- store faults: reported once when they start and once when they clear ---- */

/* A broker asking thousands of times a second must not flood the log with
 * one line per denied call.  Reads (credentials, groups) and history
 * writes are separate incidents: a full disk stops the history but not the
 * logins, and one must not announce the other's recovery. */
typedef struct incident {
    atomic_int active;
    atomic_long dropped; /* history events lost during the incident */
} incident;

static incident read_incident, history_incident;

/* A transition and its log line happen under one lock, so the log never
 * ends on the wrong state ("available again" printed before the
 * "unavailable" it answers).  Checked without the lock first: the common
 * case, nothing changing, stays lock-free. */
static pthread_mutex_t incident_lock = PTHREAD_MUTEX_INITIALIZER;

static void store_failed(const exh_error *err)
{
    if (atomic_load(&read_incident.active)) return;
    pthread_mutex_lock(&incident_lock);
    if (!atomic_exchange(&read_incident.active, 1))
        svc_log_error(LOG_ERROR,
                      set.failed_ignore
                          ? "credential store unavailable (answering ok: failed_action = ignore)"
                          : "credential store unavailable (failing closed)",
                      err);
    pthread_mutex_unlock(&incident_lock);
}

static void store_ok(void)
{
    if (!atomic_load(&read_incident.active)) return;
    pthread_mutex_lock(&incident_lock);
    if (atomic_exchange(&read_incident.active, 0))
        svc_log(LOG_INFO, "credential store available again");
    pthread_mutex_unlock(&incident_lock);
}

static void history_failed(const exh_error *err, size_t lost)
{
    atomic_fetch_add(&history_incident.dropped, (long)lost);
    if (atomic_load(&history_incident.active)) return;
    pthread_mutex_lock(&incident_lock);
    if (!atomic_exchange(&history_incident.active, 1))
        svc_log_error(LOG_ERROR,
                      "session history not written (events are dropped until the store "
                      "accepts writes again)",
                      err);
    pthread_mutex_unlock(&incident_lock);
}

/* More events waiting than this, or more bytes, and new ones are dropped:
 * a reconnect storm against a slow or locked store must not grow memory
 * without bound (client ids and usernames may be 64 KiB each). */
enum { HISTORY_QUEUE_MAX = 100000, HISTORY_QUEUE_BYTES = 64 << 20 };

static void history_overflow(void)
{
    atomic_fetch_add(&history_incident.dropped, 1);
    if (atomic_load(&history_incident.active)) return;
    pthread_mutex_lock(&incident_lock);
    if (!atomic_exchange(&history_incident.active, 1))
        svc_log(LOG_ERROR,
                "session history not written: the queue for the store is full (%d events or "
                "%d MiB; the store is too slow or locked); new events are dropped until it "
                "catches up",
                HISTORY_QUEUE_MAX, HISTORY_QUEUE_BYTES >> 20);
    pthread_mutex_unlock(&incident_lock);
}

static void history_ok(void)
{
    if (!atomic_load(&history_incident.active)) return;
    pthread_mutex_lock(&incident_lock);
    if (atomic_exchange(&history_incident.active, 0))
        svc_log(LOG_INFO, "session history written again (%ld events were dropped)",
                atomic_exchange(&history_incident.dropped, 0));
    pthread_mutex_unlock(&incident_lock);
}

static exh_store *open_store(exh_error *err)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    o.hash = set.hash;
    o.cache_kib = 512; /* one connection per thread: keep their caches small */
    o.busy_timeout_ms = set.busy_timeout_ms;
    exh_store *s = NULL;
    if (exh_store_open(set.db, &o, &s, err) != EXH_OK) return NULL;
    return s;
}

/* A read failed: close the connection, so the next request opens the
 * store again and a restored file, a released lock or a remount is seen. */
static void drop_store(exh_store **s, const exh_error *err)
{
    store_failed(err);
    exh_store_close(*s);
    *s = NULL;
}

struct svc_conn {
    exh_store *store;
    exh_evalctx *ctx;
};

svc_conn *svc_conn_new(void)
{
    svc_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    if (!(c->ctx = exh_evalctx_new())) {
        free(c);
        return NULL;
    }
    exh_error err;
    if (!(c->store = open_store(&err))) store_failed(&err); /* said at start-up */
    return c;
}

void svc_conn_free(svc_conn *c)
{
    if (!c) return;
    exh_store_close(c->store);
    exh_evalctx_free(c->ctx);
    free(c);
}

static svc_answer failed(void)
{
    return set.failed_ignore ? SVC_IGNORE : SVC_DENY;
}

/* ---- authenticate ---- */

void svc_grant_clear(svc_grant *g)
{
    for (size_t i = 0; i < g->ngroups; i++)
        free(g->groups[i]);
    free(g->groups);
    g->groups = NULL;
    g->ngroups = 0;
}

uint64_t svc_login_begin(const exh_auth_request *rq)
{
    if (!rq->clientid) return 0;
    return svc_clients_begin(rq->clientid, rq->clientid_len, rq->username, rq->username_len);
}

void svc_login_end(const exh_auth_request *rq, uint64_t gen, svc_grant *g)
{
    if (!rq->clientid) {
        svc_grant_clear(g);
        return;
    }
    svc_clients_end(rq->clientid, rq->clientid_len, gen, rq->username, rq->username_len, g->state,
                    g->superuser, g->groups, g->ngroups);
    g->groups = NULL; /* the record's now */
    g->ngroups = 0;
}

void svc_login_unreadable(const char *cid, size_t len)
{
    /* A name no client can have (no stored or MQTT username holds a NUL):
     * the record only makes the client id "seen", so that other names on
     * it are denied, and is never ended. */
    svc_clients_begin(cid, len, "\0unreadable login", 17);
}

/* A login the store could not check.  With failed_action = ignore the
 * broker may let it in: its ACL checks then get no opinion too, rather
 * than the stored user's groups and superuser flag once the store is back
 * (the password was never verified). */
static svc_answer failed_login(svc_grant *g)
{
    g->state = set.failed_ignore ? SVC_CLIENT_UNVERIFIED : SVC_CLIENT_REFUSED;
    return failed();
}

svc_answer svc_login_check(svc_conn *c, const exh_auth_request *rq, svc_grant *g)
{
    *g = (svc_grant){.state = SVC_CLIENT_REFUSED};
    exh_error err;
    exh_error_clear(&err);
    if (!c->store && !(c->store = open_store(&err))) {
        store_failed(&err);
        return failed_login(g);
    }
    exh_auth_result r;
    svc_policy *hp = svc_policy_get();
    exh_status st = exh_authenticate(c->store, cache, svc_policy_of(hp), c->ctx, rq, &r, &err);
    svc_policy_put(hp);
    if (r.reason == EXH_AUTH_STORE_ERROR) {
        exh_auth_result_clear(&r);
        if (st != EXH_ESTORE) {
            /* The store answered, the password could not be checked (out
             * of memory, the hash library failed): that is no store fault
             * for failed_action to excuse, and a login never checked must
             * not get in. */
            svc_log(LOG_ERROR,
                    "authenticate %.*s: the password could not be checked (%s): "
                    "refused",
                    (int)rq->username_len, rq->username ? rq->username : "",
                    err.message[0] ? err.message : "out of memory or hash failure");
            return SVC_DENY;
        }
        drop_store(&c->store, &err);
        return failed_login(g);
    }
    store_ok();
    if (r.reason == EXH_AUTH_BAD_HASH)
        svc_log(LOG_WARN, "user '%.*s' has an unreadable password hash (refused)",
                (int)rq->username_len, rq->username);
    svc_log(LOG_DEBUG, "authenticate %.*s: %s, %s", (int)rq->clientid_len,
            rq->clientid ? rq->clientid : "", exh_auth_reason_str(r.reason),
            exh_decision_str(r.decision));
    svc_answer a;
    if (r.reason == EXH_AUTH_UNKNOWN_USER && set.unknown_ignore) {
        /* Another source may let it in; the store has no rights for it. */
        a = SVC_IGNORE;
        g->state = SVC_CLIENT_NOOPINION;
    } else if (r.decision == EXH_ALLOW) {
        a = SVC_ALLOW;
        g->state = SVC_CLIENT_KNOWN;
        g->superuser = r.superuser;
        g->groups = r.groups;
        g->ngroups = r.ngroups;
        r.groups = NULL; /* the grant's now */
        r.ngroups = 0;
    } else {
        a = SVC_DENY;
    }
    exh_auth_result_clear(&r);
    return a;
}

svc_answer svc_authenticate(svc_conn *c, const exh_auth_request *rq)
{
    uint64_t gen = svc_login_begin(rq);
    svc_grant g;
    svc_answer a = svc_login_check(c, rq, &g);
    svc_login_end(rq, gen, &g);
    return a;
}

/* ---- authorize ---- */

static svc_answer eval(exh_request *r, exh_evalctx *ctx)
{
    exh_result res;
    svc_policy *hp = svc_policy_get();
    exh_eval(svc_policy_of(hp), r, ctx, &res);
    svc_policy_put(hp);
    return res.decision == EXH_IGNORE  ? SVC_IGNORE
           : res.decision == EXH_ALLOW ? SVC_ALLOW
                                       : SVC_DENY;
}

svc_answer svc_authorize(svc_conn *c, exh_request *r)
{
    r->superuser = false;
    r->groups = NULL;
    r->ngroups = 0;
    svc_answer a;
    switch (svc_clients_lookup(r)) {
    case SVC_CLIENT_KNOWN:
    case SVC_CLIENT_NOOPINION: /* the policy alone: no groups, not a superuser */
        a = eval(r, c->ctx);
        svc_clients_unlock();
        return a;
    case SVC_CLIENT_UNVERIFIED:
        svc_clients_unlock();
        return failed();
    case SVC_CLIENT_REFUSED:    /* refused or unfinished here: the broker let it in anyway */
    case SVC_CLIENT_OTHER_USER: /* a login this process never saw for this name */
        svc_clients_unlock();
        return SVC_DENY;
    case SVC_CLIENT_NONE:
        break;
    }
    /* No stored name holds a NUL: such a user has no record and no groups
     * (looking it up would cut the name at the NUL). */
    bool nul = r->username && memchr(r->username, '\0', r->username_len) != NULL;
    if (!r->username || nul) {
        a = eval(r, c->ctx);
        svc_clients_unlock();
        return a;
    }
    svc_clients_unlock();

    /* No record: not seen since start, or its verified login disconnected
     * (a takeover's old connection): ask the store once. */
    exh_user u = {0};
    exh_error err;
    exh_error_clear(&err);
    if (!c->store) c->store = open_store(&err);
    char *name = strndup(r->username, r->username_len);
    exh_status st = !name      ? EXH_ENOMEM
                    : c->store ? exh_store_get_user(c->store, name, &u, &err)
                               : EXH_ESTORE;
    free(name);
    if (st == EXH_OK || st == EXH_ENOTFOUND) store_ok();
    /* This login was not verified here (the broker let it in some other
     * way, or before a restart): a user who could not log in now -- one
     * disabled, or bound to other client ids -- gets no rights from the
     * store. */
    if (st == EXH_OK &&
        (u.disabled || !exh_user_may_use_clientid(&u, r->clientid, r->clientid_len))) {
        exh_user_clear(&u);
        st = EXH_ENOTFOUND;
    }
    exh_str *g = NULL;
    if (st == EXH_OK && u.ngroups && !(g = malloc(u.ngroups * sizeof(*g)))) st = EXH_ENOMEM;
    if (st == EXH_OK) {
        for (size_t i = 0; i < u.ngroups; i++)
            g[i] = (exh_str){u.groups[i], strlen(u.groups[i])};
        r->superuser = u.superuser;
        r->groups = g;
        r->ngroups = u.ngroups;
        a = eval(r, c->ctx);
        r->groups = NULL;
        r->ngroups = 0;
        r->superuser = false;
        svc_clients_remember(r->clientid, r->clientid_len, r->username, r->username_len,
                             u.superuser, u.groups, u.ngroups);
        u.groups = NULL; /* now the record's */
        u.ngroups = 0;
    } else if (st == EXH_ENOTFOUND) {
        a = eval(r, c->ctx); /* no groups, not a superuser */
    } else if (st == EXH_ESTORE) {
        if (c->store)
            drop_store(&c->store, &err);
        else
            store_failed(&err);
        a = failed();
    } else {
        a = SVC_DENY; /* out of memory: no store fault for failed_action to excuse */
    }
    free(g);
    exh_user_clear(&u);
    return a;
}

/* ---- session history: one thread, batched ---- */

typedef struct event {
    struct event *next;
    size_t bytes; /* what it holds, for the queue's byte cap */
    char *clientid, *username, *peerhost, *node, *reason;
    int64_t at;
    bool connected;
} event;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    event *head, *tail;
    size_t len, bytes;
    bool closed;
    pthread_t thread;
    bool running;
} hq = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void event_free(event *e)
{
    free(e->clientid);
    free(e->username);
    free(e->peerhost);
    free(e->node);
    free(e->reason);
    free(e);
}

static char *maybe_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void svc_session(const exh_session_event *ev, size_t clientid_len)
{
    if (!ev->connected && ev->clientid)
        svc_clients_disconnected(ev->clientid, clientid_len, ev->username,
                                 ev->username ? strlen(ev->username) : 0);
    event *e = calloc(1, sizeof(*e));
    if (!e) return; /* best effort: a decision never waits for the history */
    e->clientid = strdup(ev->clientid ? ev->clientid : "");
    e->username = maybe_dup(ev->username);
    e->peerhost = maybe_dup(ev->peerhost);
    e->node = maybe_dup(ev->node);
    e->reason = maybe_dup(ev->reason);
    e->at = ev->at ? ev->at : (int64_t)time(NULL);
    e->connected = ev->connected;
    if (!e->clientid || (ev->username && !e->username) || (ev->peerhost && !e->peerhost) ||
        (ev->node && !e->node) || (ev->reason && !e->reason)) {
        event_free(e);
        return;
    }
    e->bytes = sizeof(*e) + strlen(e->clientid);
    e->bytes += (e->username ? strlen(e->username) : 0) + (e->peerhost ? strlen(e->peerhost) : 0) +
                (e->node ? strlen(e->node) : 0) + (e->reason ? strlen(e->reason) : 0);
    pthread_mutex_lock(&hq.lock);
    bool full = hq.len >= HISTORY_QUEUE_MAX || hq.bytes + e->bytes > HISTORY_QUEUE_BYTES;
    if (!full) {
        if (hq.tail)
            hq.tail->next = e;
        else
            hq.head = e;
        hq.tail = e;
        hq.len++;
        hq.bytes += e->bytes;
        pthread_cond_signal(&hq.cond);
    }
    pthread_mutex_unlock(&hq.lock);
    if (full) {
        event_free(e);
        history_overflow();
    }
}

/* The next event (NULL when closed and empty); with timeout_ms >= 0 also
 * NULL when nothing came in time. */
static event *pop(int timeout_ms)
{
    pthread_mutex_lock(&hq.lock);
    while (!hq.head && !hq.closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&hq.cond, &hq.lock);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)timeout_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            if (pthread_cond_timedwait(&hq.cond, &hq.lock, &ts) == ETIMEDOUT) break;
        }
    }
    event *e = hq.head;
    if (e) {
        hq.head = e->next;
        if (!hq.head) hq.tail = NULL;
        hq.len--;
        hq.bytes -= e->bytes;
    }
    pthread_mutex_unlock(&hq.lock);
    return e;
}

static bool write_history(exh_store **store, event **batch, size_t n)
{
    exh_error err;
    if (!*store && !(*store = open_store(&err))) {
        history_failed(&err, n); /* dropped: history is best effort, decisions are not */
        return false;
    }
    /* On a failed write the connection stays open: SQLite recovers from a
     * full disk or a lock at the next transaction, while closing it would
     * checkpoint and truncate the WAL, free a little space and make the
     * history flap between written and not written. */
    if (exh_store_begin(*store, &err) != EXH_OK) {
        history_failed(&err, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        exh_session_event ev = {.clientid = batch[i]->clientid,
                                .username = batch[i]->username,
                                .peerhost = batch[i]->peerhost,
                                .node = batch[i]->node,
                                .reason = batch[i]->reason,
                                .at = batch[i]->at,
                                .connected = batch[i]->connected};
        if (exh_store_record_session(*store, &ev, &err) != EXH_OK) {
            history_failed(&err, n);
            exh_store_rollback(*store);
            return false;
        }
    }
    if (exh_store_commit(*store, &err) != EXH_OK) {
        history_failed(&err, n);
        exh_store_rollback(*store);
        return false;
    }
    history_ok();
    return true;
}

static void *history_main(void *arg)
{
    (void)arg;
    exh_store *store = NULL;
    event *batch[256];
    for (;;) {
        size_t n = 0;
        event *e = pop(-1);
        if (!e) break;
        batch[n++] = e;
        /* gather what else arrives within 100 ms, up to a batch */
        while (n < 256 && (e = pop(100)))
            batch[n++] = e;
        bool written = write_history(&store, batch, n);
        for (size_t i = 0; i < n; i++)
            event_free(batch[i]);
        /* Stopping, and the store refuses writes: drop what is left rather
         * than wait a busy timeout per batch of it. */
        pthread_mutex_lock(&hq.lock);
        bool give_up = !written && hq.closed;
        size_t left = give_up ? hq.len : 0;
        while (give_up && hq.head) {
            event *d = hq.head;
            hq.head = d->next;
            event_free(d);
        }
        if (give_up) {
            hq.tail = NULL;
            hq.len = hq.bytes = 0;
        }
        pthread_mutex_unlock(&hq.lock);
        if (left) svc_log(LOG_WARN, "stopping: %zu session events not written", left);
    }
    exh_store_close(store);
    return NULL;
}

/* ---- start, stop ---- */

int svc_start(const svc_settings *s)
{
    set = *s;
    if (!(cache = exh_auth_cache_new(set.cache_ttl, set.cache_max))) {
        svc_log(LOG_ERROR, "out of memory");
        return -1;
    }
    hq.closed = false;
    if (pthread_create(&hq.thread, NULL, history_main, NULL) != 0) {
        svc_log(LOG_ERROR, "cannot start the history thread: %s", strerror(errno));
        return -1;
    }
    hq.running = true;
    return 0;
}

void svc_stop(void)
{
    if (hq.running) {
        pthread_mutex_lock(&hq.lock);
        hq.closed = true;
        pthread_cond_broadcast(&hq.cond);
        pthread_mutex_unlock(&hq.lock);
        pthread_join(hq.thread, NULL);
        hq.running = false;
    }
    exh_auth_cache_free(cache);
    cache = NULL;
    svc_clients_clear();
}

int svc_run_start(const svc_config *cfg, const int *also, int nalso)
{
    exh_error err;
    exh_status st = svc_policy_load(cfg->policy, &err);
    if (st != EXH_OK) {
        if (st == EXH_ENOMEM)
            svc_log(LOG_ERROR, "cannot load the policy: out of memory");
        else
            svc_log_error(LOG_ERROR, "cannot load the policy", &err);
        return 2;
    }
    /* Blocked before any thread starts, so all inherit the mask: SIGHUP is
     * read by the reload thread through a signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    for (int i = 0; i < nalso; i++)
        sigaddset(&set, also[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    svc_policy *hp = svc_policy_get();
    const char *risks[8];
    int nrisks = svc_config_risks(cfg, svc_policy_of(hp), risks, 8);
    svc_policy_put(hp);
    for (int i = 0; i < nrisks; i++)
        svc_log(LOG_WARN, "%s", risks[i]);
    /* A call must be answered before the broker's timeout (deadline.h):
     * waiting for a locked store longer than half the time a call has
     * would push answers past it, so the wait is capped. */
    int budget = cfg->call_timeout_ms - svc_deadline_margin_ms(cfg->call_timeout_ms);
    int busy = cfg->busy_timeout_ms;
    if (busy > budget / 2) {
        busy = budget / 2;
        svc_log(LOG_INFO,
                "busy_timeout %d ms lowered to %d ms: half of what a call has before the "
                "broker's call_timeout of %d ms (less a %d ms margin)",
                cfg->busy_timeout_ms, busy, cfg->call_timeout_ms,
                svc_deadline_margin_ms(cfg->call_timeout_ms));
    }
    svc_settings ss = {.db = cfg->db,
                       .busy_timeout_ms = busy,
                       .unknown_ignore = cfg->unknown_ignore,
                       .failed_ignore = cfg->failed_ignore,
                       .cache_ttl = cfg->cache_ttl,
                       .cache_max = cfg->cache_max,
                       .hash = cfg->hash};
    if (svc_policy_watch_start() < 0 || svc_start(&ss) < 0 ||
        svc_deadline_start(cfg->call_timeout_ms) < 0)
        return 1;
    return -1;
}

void svc_run_stop(void)
{
    svc_deadline_stop();
    svc_stop();
    svc_policy_watch_stop();
    svc_policy_release();
}
