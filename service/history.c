/*
 * history.c -- session history: events queued by any thread, written in
 * batches by one thread of their own, so a decision never waits for a
 * store write.
 */
#define _GNU_SOURCE /* strdup */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "log.h"
#include "service_int.h"

/* More events waiting than this, or more bytes, and new ones are dropped:
 * a reconnect storm against a slow or locked store must not grow memory
 * without bound (client ids and usernames may be 64 KiB each). */
enum { HISTORY_QUEUE_MAX = 100000, HISTORY_QUEUE_BYTES = 64 << 20, BATCH = 256 };

typedef struct event {
    struct event *next;
    size_t bytes; /* what it holds, for the queue's byte cap */
    char *clientid, *username, *peerhost, *node, *reason;
    int64_t at;
    bool connected;
} event;

struct svc_history {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    event *head, *tail;
    size_t len, bytes;
    bool closed;
    pthread_t thread;
    bool running;
};

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

svc_history *svc_history_new(void)
{
    svc_history *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    return h;
}

void svc_history_add(svc *s, const exh_session_event *ev)
{
    svc_history *h = s->history;
    if (!h->running) return; /* no writer (svc_start without SVC_THREAD_HISTORY) */
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
    pthread_mutex_lock(&h->lock);
    bool full = h->len >= HISTORY_QUEUE_MAX || h->bytes + e->bytes > HISTORY_QUEUE_BYTES;
    if (!full) {
        if (h->tail)
            h->tail->next = e;
        else
            h->head = e;
        h->tail = e;
        h->len++;
        h->bytes += e->bytes;
        pthread_cond_signal(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
    if (full) {
        event_free(e);
        svc_history_overflow(s, HISTORY_QUEUE_MAX, HISTORY_QUEUE_BYTES >> 20);
    }
}

void svc_session(svc *s, const exh_session_event *ev, size_t clientid_len)
{
    if (!ev->connected && ev->clientid)
        svc_clients_disconnected(s->clients, ev->clientid, clientid_len, ev->username,
                                 ev->username ? strlen(ev->username) : 0);
    svc_history_add(s, ev);
}

/* The next event (NULL when closed and empty); with timeout_ms >= 0 also
 * NULL when nothing came in time. */
static event *pop(svc_history *h, int timeout_ms)
{
    pthread_mutex_lock(&h->lock);
    while (!h->head && !h->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&h->cond, &h->lock);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)timeout_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            if (pthread_cond_timedwait(&h->cond, &h->lock, &ts) == ETIMEDOUT) break;
        }
    }
    event *e = h->head;
    if (e) {
        h->head = e->next;
        if (!h->head) h->tail = NULL;
        h->len--;
        h->bytes -= e->bytes;
    }
    pthread_mutex_unlock(&h->lock);
    return e;
}

/* The history thread's attempts to open its store: after a failed open
 * the next waits REOPEN_FIRST_MS, doubling up to REOPEN_MAX_MS, and the
 * batches in between are dropped (counted, said once) without trying:
 * a server that is down is not asked again for every batch, and a batch
 * does not wait a connect timeout each. */
enum { REOPEN_FIRST_MS = 250, REOPEN_MAX_MS = 4000 };

typedef struct reopen {
    svc_backoff wait;
    exh_error err; /* why the last open failed */
} reopen;

/* The store to write to, opened if it is not; NULL: the batch of n is
 * dropped (counted and said). */
static exh_store *store_for(svc *s, exh_store **store, reopen *r, size_t n)
{
    if (*store) return *store;
    if (r && svc_backoff_waiting(&r->wait, svc_now_ms())) {
        svc_history_failed(s, &r->err, n);
        return NULL;
    }
    exh_error err;
    if ((*store = svc_open_store(s, &err))) {
        if (r) svc_backoff_ok(&r->wait);
        return *store;
    }
    svc_history_failed(s, &err, n); /* dropped: history is best effort, decisions are not */
    if (r) {
        r->err = err;
        svc_backoff_failed(&r->wait, svc_now_ms(), REOPEN_FIRST_MS, REOPEN_MAX_MS);
    }
    return NULL;
}

/* A failed write: counted and said; a PostgreSQL store is closed, so the
 * next batch opens it again (its connection may be gone: the server
 * restarted, the network cut, a call's deadline passed).  An SQLite
 * store keeps its connection: SQLite recovers from a full disk or a lock
 * at the next transaction, while closing it would checkpoint and
 * truncate the WAL, free a little space and make the history flap
 * between written and not written. */
static bool write_failed(svc *s, exh_store **store, const exh_error *err, size_t n, bool began)
{
    svc_history_failed(s, err, n);
    if (began) exh_store_rollback(*store);
    if (exh_store_location_is_pg(s->cfg.db)) {
        exh_store_close(*store);
        *store = NULL;
    }
    return false;
}

static bool write_batch(svc *s, exh_store **store, reopen *r, const exh_session_event *const *batch,
                        size_t n)
{
    exh_error err;
    if (!store_for(s, store, r, n)) return false;
    if (exh_store_begin(*store, &err) != EXH_OK) return write_failed(s, store, &err, n, false);
    for (size_t i = 0; i < n; i++)
        if (exh_store_record_session(*store, batch[i], &err) != EXH_OK)
            return write_failed(s, store, &err, n, true);
    if (exh_store_commit(*store, &err) != EXH_OK) return write_failed(s, store, &err, n, true);
    svc_history_ok(s);
    return true;
}

static void *history_main(void *arg)
{
    svc *s = arg;
    svc_history *h = s->history;
    exh_store *store = NULL;
    reopen r = {0};
    event *batch[BATCH];
    exh_session_event evs[BATCH];
    const exh_session_event *pevs[BATCH];
    for (;;) {
        size_t n = 0;
        event *e = pop(h, -1);
        if (!e) break;
        batch[n++] = e;
        /* gather what else arrives within 100 ms, up to a batch */
        while (n < BATCH && (e = pop(h, 100)))
            batch[n++] = e;
        for (size_t i = 0; i < n; i++) {
            evs[i] = (exh_session_event){.clientid = batch[i]->clientid,
                                         .username = batch[i]->username,
                                         .peerhost = batch[i]->peerhost,
                                         .node = batch[i]->node,
                                         .reason = batch[i]->reason,
                                         .at = batch[i]->at,
                                         .connected = batch[i]->connected};
            pevs[i] = &evs[i];
        }
        bool written = write_batch(s, &store, &r, pevs, n);
        if (written) atomic_fetch_add(&s->metrics.history_written, n);
        for (size_t i = 0; i < n; i++)
            event_free(batch[i]);
        /* Stopping, and the store refuses writes: drop what is left rather
         * than wait a busy timeout per batch of it. */
        pthread_mutex_lock(&h->lock);
        bool give_up = !written && h->closed;
        size_t left = give_up ? h->len : 0;
        atomic_fetch_add(&s->metrics.history_dropped, left);
        while (give_up && h->head) {
            event *d = h->head;
            h->head = d->next;
            event_free(d);
        }
        if (give_up) {
            h->tail = NULL;
            h->len = h->bytes = 0;
        }
        pthread_mutex_unlock(&h->lock);
        if (left) svc_log(LOG_WARN, "stopping: %zu session events not written", left);
    }
    exh_store_close(store);
    return NULL;
}

void svc_history_write(svc_conn *c, const exh_session_event *ev)
{
    exh_session_event e = *ev;
    if (!e.at) e.at = (int64_t)time(NULL);
    const exh_session_event *one = &e;
    /* Opened as the logins open it (svc_conn_store): after a slow failed
     * open, not again before the back-off -- the plugin writes on the
     * broker's thread, which must not wait out a connect per event. */
    if (!svc_conn_store(c)) {
        exh_error err;
        exh_error_clear(&err);
        err.status = EXH_ESTORE;
        snprintf(err.message, sizeof(err.message), "the credential store could not be opened");
        svc_history_failed(c->s, &err, 1);
        return;
    }
    write_batch(c->s, &c->store, NULL, &one, 1);
}

int svc_history_start(svc *s)
{
    svc_history *h = s->history;
    h->closed = false;
    if (pthread_create(&h->thread, NULL, history_main, s) != 0) {
        svc_log(LOG_ERROR, "cannot start the history thread: %s", strerror(errno));
        return -1;
    }
    h->running = true;
    return 0;
}

void svc_history_free(svc *s)
{
    svc_history *h = s->history;
    if (!h) return;
    if (h->running) {
        pthread_mutex_lock(&h->lock);
        h->closed = true;
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
        h->running = false;
    }
    while (h->head) { /* never started: nothing writes them */
        event *d = h->head;
        h->head = d->next;
        event_free(d);
    }
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
    s->history = NULL;
}
