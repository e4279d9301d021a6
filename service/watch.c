/*
 * watch.c -- verified logins kept current with a store shared by a
 * cluster (service.h: svc_watch_step, SVC_THREAD_WATCH).
 *
 * A PostgreSQL store names every user changed by anyone, on any node, as
 * the change commits (store.h: exh_store_listen).  One connection of the
 * service's own listens; each step reads what arrived and checks again
 * the verified logins of exactly those users (svc_revalidate_users), so a
 * user disabled or deleted on one node is refused on every node within a
 * step (250 ms), and a change to one user costs one store read per login
 * of that user, not one per connected client.
 *
 * Notices sent while the listener is down are lost: after every (re)open
 * every verified login is checked.  A lost listener is reopened with a
 * back-off (250 ms doubling to 8 s), and said once when lost and once
 * when back.
 *
 * An SQLite store has no notices: the step is svc_revalidate (its data
 * version), which only the Mosquitto plugin takes (exhook-driver and
 * exhook-grpc check a client's user at its next login -- their history
 * thread's writes would move the data version on every batch -- and start
 * no watch thread).
 */
#define _GNU_SOURCE /* strndup */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "service_int.h"

enum {
    STEP_MS = 250,
    BACKOFF_MIN_MS = 250,
    BACKOFF_MAX_MS = 8000,
    /* More names than this at once (an import): one walk of everyone. */
    NAMES_MAX = 1024,
};

struct svc_watch {
    exh_store *listener; /* NULL: not open */
    bool no_notices;     /* the store has none (SQLite): svc_revalidate */
    bool everyone;       /* check every login at the next walk */
    bool lost_said;
    svc_backoff reopen; /* the listener's */
    char **names;       /* NAMES_MAX, allocated with the first */
    size_t n;
    /* svc_watch_recheck's, from the threads that end logins */
    pthread_mutex_t lock;
    char **again;
    size_t nagain;
    bool again_everyone;
    /* SVC_THREAD_WATCH */
    pthread_t thread;
    bool running;
    int stop_pipe[2];
};

svc_watch *svc_watch_new(bool notices)
{
    svc_watch *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    pthread_mutex_init(&w->lock, NULL);
    w->no_notices = !notices;
    w->everyone = true; /* the first listen: nothing heard before it */
    return w;
}

static void forget_names(svc_watch *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->names[i]);
    w->n = 0;
}

/* Takes name (malloc'd; NULL: out of memory) into the names to check;
 * "" (everyone), too many or no memory make it a walk of everyone. */
static void keep_name(svc_watch *w, char *name)
{
    if (!w->everyone && name && name[0] && w->n < NAMES_MAX &&
        (w->names || (w->names = malloc(NAMES_MAX * sizeof(*w->names))))) {
        w->names[w->n++] = name;
        return;
    }
    w->everyone = true;
    free(name);
}

static void on_notice(const char *name, void *arg)
{
    svc_watch *w = arg;
    if (!w->everyone) keep_name(w, strdup(name));
}

static void lost(svc *s, svc_watch *w, const exh_error *err)
{
    exh_store_close(w->listener);
    w->listener = NULL;
    w->everyone = true;
    svc_backoff_failed(&w->reopen, svc_now_ms(), BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    if (!w->lost_said) {
        char where[256];
        exh_store_display_name(s->cfg.db, where, sizeof(where));
        svc_log(LOG_ERROR,
                "%s: change notices lost (%s); users changed on other nodes are checked again "
                "when they are back",
                where, err->message);
        w->lost_said = true;
    }
}

/* Opens the listener when it is time; false: no notices to read now. */
static bool listening(svc *s, svc_watch *w)
{
    if (w->listener) return true;
    /* Nor while the service's connections are backing off a store that
     * does not answer (connection.c): the plugin's tick would wait out a
     * connect on the broker's thread each time. */
    uint64_t now = svc_now_ms();
    if (svc_backoff_waiting(&w->reopen, now) || svc_backoff_waiting(&s->reopen, now)) return false;
    exh_error err;
    exh_error_clear(&err);
    exh_store *st = svc_open_store(s, &err);
    if (!st || exh_store_listen(st, &err) != EXH_OK) {
        exh_store_close(st);
        lost(s, w, &err);
        return false;
    }
    w->listener = st;
    w->everyone = true; /* what was sent before now was not heard */
    svc_backoff_ok(&w->reopen);
    if (w->lost_said) {
        svc_log(LOG_WARN, "change notices from the store resumed: every login checked again");
        w->lost_said = false;
    }
    return true;
}

void svc_watch_recheck(svc *s, const char *name, size_t len)
{
    svc_watch *w = s->watch;
    if (!w || memchr(name, '\0', len)) return; /* no stored name holds a NUL */
    pthread_mutex_lock(&w->lock);
    if (!w->again_everyone) {
        char **na = w->nagain < NAMES_MAX ? realloc(w->again, (w->nagain + 1) * sizeof(*na)) : NULL;
        char *copy = na ? strndup(name, len) : NULL;
        if (na) w->again = na;
        if (copy)
            w->again[w->nagain++] = copy;
        else
            w->again_everyone = true; /* too many, or out of memory: everyone */
    }
    pthread_mutex_unlock(&w->lock);
}

/* The rechecks asked for since the last step, as if they were notices. */
static void take_rechecks(svc_watch *w)
{
    pthread_mutex_lock(&w->lock);
    if (w->again_everyone) w->everyone = true;
    for (size_t i = 0; i < w->nagain; i++)
        keep_name(w, w->again[i]); /* taken as it is: no second copy */
    w->nagain = 0;
    w->again_everyone = false;
    pthread_mutex_unlock(&w->lock);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

long svc_watch_step(svc_conn *c, void (*kick)(const char *cid, void *arg), void *arg)
{
    svc *s = c->s;
    svc_watch *w = s->watch;
    if (!w) return -1;
    if (w->no_notices) /* the plugin's alone: see the top of this file */
        return s->cfg.kind == SVC_FOR_PLUGIN ? svc_revalidate(c, kick, arg) : 0;
    if (!listening(s, w)) return 0; /* not yet */
    exh_error err;
    exh_error_clear(&err);
    size_t before = w->n;
    if (exh_store_notices(w->listener, on_notice, w, &err) != EXH_OK) {
        lost(s, w, &err);
        forget_names(w);
        return -1;
    }
    /* Counted before the walk -- for notices heard and for the walk of
     * everyone after a (re)open, not for rechecks (which would feed
     * themselves under a steady flow of logins): a login that read the
     * store before this and ends after the walk sees it moved
     * (svc_login_end). */
    if (w->n != before || w->everyone) atomic_fetch_add(&s->notice_seq, 1);
    take_rechecks(w);
    if (!w->everyone && !w->n) return 0;
    long r;
    if (w->everyone) {
        r = svc_revalidate_users(c, NULL, 0, kick, arg);
    } else {
        qsort(w->names, w->n, sizeof(*w->names), cmp_names);
        r = svc_revalidate_users(c, (const char *const *)w->names, w->n, kick, arg);
    }
    /* A walk a store fault cut short is walked again, whole, next step. */
    w->everyone = r < 0;
    forget_names(w);
    return r;
}

/* The listener's socket (readable: a step has notices to read), or -1. */
static int watch_fd(const svc *s)
{
    return s->watch && s->watch->listener ? exh_store_notice_fd(s->watch->listener) : -1;
}

/* ---- SVC_THREAD_WATCH: exhook-driver's and exhook-grpc's ---- */

static void *watch_main(void *arg)
{
    svc *s = arg;
    svc_watch *w = s->watch;
    svc_conn *c = svc_conn_new(s);
    if (!c) {
        svc_log(LOG_ERROR, "change notices: out of memory; users changed on other nodes are "
                           "checked at their next login only");
        return NULL;
    }
    for (;;) {
        svc_watch_step(c, NULL, NULL);
        struct pollfd fds[2] = {{.fd = w->stop_pipe[0], .events = POLLIN},
                                {.fd = watch_fd(s), .events = POLLIN}};
        int r = poll(fds, fds[1].fd >= 0 ? 2 : 1, STEP_MS);
        if (r < 0 && errno != EINTR) break;
        if (r > 0 && fds[0].revents) break;
    }
    svc_conn_free(c);
    return NULL;
}

int svc_watch_start(svc *s)
{
    svc_watch *w = s->watch;
    if (w->no_notices) return 0; /* SQLite: nothing to listen to (see the top) */
    if (pipe2(w->stop_pipe, O_CLOEXEC) != 0) {
        svc_log(LOG_ERROR, "cannot start the store watch: %s", strerror(errno));
        return -1;
    }
    if (pthread_create(&w->thread, NULL, watch_main, s) != 0) {
        svc_log(LOG_ERROR, "cannot start the store watch thread");
        return -1;
    }
    w->running = true;
    return 0;
}

void svc_watch_free(svc *s)
{
    svc_watch *w = s->watch;
    if (!w) return;
    if (w->running) {
        ssize_t n = write(w->stop_pipe[1], "x", 1);
        (void)n;
        pthread_join(w->thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (w->stop_pipe[i] >= 0) close(w->stop_pipe[i]);
    exh_store_close(w->listener);
    forget_names(w);
    free(w->names);
    for (size_t i = 0; i < w->nagain; i++)
        free(w->again[i]);
    free(w->again);
    pthread_mutex_destroy(&w->lock);
    free(w);
    s->watch = NULL;
}
