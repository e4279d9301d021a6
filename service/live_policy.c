/*
 * live_policy.c -- see live_policy.h.
 */
#define _GNU_SOURCE /* pipe2 */
#include "live_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"

struct svc_policy {
    exh_policy *p;
    uint32_t gen;
    bool one_thread; /* not counted: nobody holds it across a reload */
    atomic_int refs;
};

struct svc_live_policy {
    pthread_mutex_t lock;
    bool one_thread;
    svc_policy *current;
    uint32_t gen;
    atomic_uint current_gen; /* current->gen, readable without the lock */
    char path[PATH_MAX];
    /* the watcher, if started */
    int stop_pipe[2];
    int sig_fd;
    pthread_t watcher;
    bool watching;
    /* for metrics (svc_live_policy_stats) */
    atomic_ulong reloads_ok, reloads_failed;
    atomic_llong load_ns; /* the current policy's compile time */
    atomic_uint rules;
};

svc_policy *svc_policy_get(svc_live_policy *lp)
{
    if (lp->one_thread) return lp->current; /* a reload only happens between calls */
    pthread_mutex_lock(&lp->lock);
    svc_policy *h = lp->current;
    atomic_fetch_add(&h->refs, 1);
    pthread_mutex_unlock(&lp->lock);
    return h;
}

const exh_policy *svc_policy_of(const svc_policy *h)
{
    return h->p;
}

uint32_t svc_policy_gen(const svc_policy *h)
{
    return h->gen;
}

uint32_t svc_live_policy_gen(svc_live_policy *lp)
{
    return atomic_load_explicit(&lp->current_gen, memory_order_acquire);
}

void svc_policy_put(svc_policy *h)
{
    if (h && !h->one_thread && atomic_fetch_sub(&h->refs, 1) == 1) {
        exh_policy_free(h->p);
        free(h);
    }
}

/* The live policy's own reference. */
static void release(svc_policy *h)
{
    if (h && h->one_thread) {
        exh_policy_free(h->p);
        free(h);
    } else {
        svc_policy_put(h);
    }
}

static exh_status load(svc_live_policy *lp, exh_error *err)
{
    exh_policy *p;
    int64_t t0 = svc_now_ns();
    exh_status st = exh_policy_load(lp->path, &p, err);
    if (st != EXH_OK) return st;
    atomic_store(&lp->load_ns, svc_now_ns() - t0);
    atomic_store(&lp->rules, exh_policy_rule_count(p));
    exh_policy_drop_texts(p);
    svc_policy *h = malloc(sizeof(*h));
    if (!h) {
        exh_policy_free(p);
        return EXH_ENOMEM;
    }
    h->p = p;
    h->one_thread = lp->one_thread;
    atomic_init(&h->refs, 1);
    pthread_mutex_lock(&lp->lock);
    if (++lp->gen == 0) lp->gen = 1;
    h->gen = lp->gen;
    svc_policy *old = lp->current;
    lp->current = h;
    atomic_store_explicit(&lp->current_gen, h->gen, memory_order_release);
    pthread_mutex_unlock(&lp->lock);
    release(old);
    /* Compiling leaves many small freed blocks: give them back -- but not
     * from a broker's heap (the plugin), where trimming walks every arena
     * of the broker's and stalls its one thread. */
    if (!lp->one_thread) malloc_trim(0);
    return EXH_OK;
}

exh_status svc_live_policy_new(const char *path, bool one_thread, svc_live_policy **out,
                               exh_error *err)
{
    *out = NULL;
    svc_live_policy *lp = calloc(1, sizeof(*lp));
    if (!lp) return EXH_ENOMEM;
    pthread_mutex_init(&lp->lock, NULL);
    lp->stop_pipe[0] = lp->stop_pipe[1] = lp->sig_fd = -1;
    lp->one_thread = one_thread;
    snprintf(lp->path, sizeof(lp->path), "%s", path);
    exh_status st = load(lp, err);
    if (st != EXH_OK) {
        pthread_mutex_destroy(&lp->lock);
        free(lp);
        return st;
    }
    *out = lp;
    return EXH_OK;
}

int svc_live_policy_reload(svc_live_policy *lp, const char *why)
{
    exh_error err;
    exh_status st = load(lp, &err);
    if (st == EXH_ENOMEM) {
        svc_log(LOG_ERROR, "policy reload failed (%s), keeping the old one: out of memory", why);
        atomic_fetch_add(&lp->reloads_failed, 1);
        return -1;
    }
    if (st != EXH_OK) {
        char what[128];
        snprintf(what, sizeof(what), "policy reload failed (%s), keeping the old one", why);
        svc_log_error(LOG_ERROR, what, &err);
        if (!lp->one_thread) malloc_trim(0); /* the failed compile's blocks go back too */
        atomic_fetch_add(&lp->reloads_failed, 1);
        return -1;
    }
    atomic_fetch_add(&lp->reloads_ok, 1);
    svc_policy *h = svc_policy_get(lp);
    svc_log(LOG_INFO, "policy reloaded (%s): %u rules", why, exh_policy_rule_count(h->p));
    svc_policy_put(h);
    return 0;
}

/* Reads every pending event; true if one concerns a *.policy file (or
 * events were lost: the kernel's queue overflowed). */
static bool policy_events(int ifd)
{
    char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool relevant = false;
    ssize_t n;
    while ((n = read(ifd, ev, sizeof(ev))) > 0)
        for (char *p = ev; p < ev + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            size_t l = e->len ? strlen(e->name) : 0;
            if ((e->mask & IN_Q_OVERFLOW) ||
                (l > 7 && !strcmp(e->name + l - 7, ".policy") && e->name[0] != '.'))
                relevant = true;
            p += sizeof(*e) + e->len;
        }
    return relevant;
}

static void *watch_main(void *arg)
{
    svc_live_policy *lp = arg;
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd >= 0) {
        /* Watch the directory: editors replace files by renaming. */
        struct stat sb;
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", lp->path);
        if (stat(lp->path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            else
                strcpy(dir, ".");
        }
        /* Closed after writing, renamed in, deleted: never IN_CREATE or a
         * write in progress, or a half-written file would be compiled --
         * and a file cut after a complete token can be a broader rule. */
        if (inotify_add_watch(ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) <
            0)
            svc_log(LOG_WARN, "cannot watch %s (%s): reload on SIGHUP only", dir, strerror(errno));
    }
    for (;;) {
        struct pollfd fds[3] = {
            {lp->stop_pipe[0], POLLIN, 0}, {lp->sig_fd, POLLIN, 0}, {ifd, POLLIN, 0}};
        if (poll(fds, ifd >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents) break;
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(lp->sig_fd, &si, sizeof(si)) == sizeof(si))
                ;
            svc_live_policy_reload(lp, "SIGHUP");
        }
        if (ifd >= 0 && (fds[2].revents & POLLIN) && policy_events(ifd)) {
            /* Let a burst of policy edits settle, then compile once: only
             * policy events extend the wait, and never past 2 s, so a
             * busy neighbour file cannot hold reloads (or a stop) back. */
            bool stop = false;
            for (int round = 0; round < 10; round++) {
                struct pollfd w[2] = {{lp->stop_pipe[0], POLLIN, 0}, {ifd, POLLIN, 0}};
                if (poll(w, 2, 200) <= 0) break;
                if (w[0].revents) {
                    stop = true;
                    break;
                }
                if (!policy_events(ifd)) break;
            }
            if (stop) break;
            svc_live_policy_reload(lp, "files changed");
        }
    }
    if (ifd >= 0) close(ifd);
    return NULL;
}

int svc_live_policy_watch(svc_live_policy *lp)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    lp->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (lp->sig_fd < 0 || pipe2(lp->stop_pipe, O_CLOEXEC) < 0 ||
        pthread_create(&lp->watcher, NULL, watch_main, lp) != 0) {
        svc_log(LOG_ERROR, "cannot set up policy reload: %s", strerror(errno));
        return -1;
    }
    lp->watching = true;
    return 0;
}

void svc_live_policy_free(svc_live_policy *lp)
{
    if (!lp) return;
    if (lp->watching) {
        if (write(lp->stop_pipe[1], "x", 1) < 0) { /* the watcher wakes on POLLHUP too */
        }
        pthread_join(lp->watcher, NULL);
    }
    if (lp->stop_pipe[0] >= 0) close(lp->stop_pipe[0]);
    if (lp->stop_pipe[1] >= 0) close(lp->stop_pipe[1]);
    if (lp->sig_fd >= 0) close(lp->sig_fd);
    release(lp->current);
    pthread_mutex_destroy(&lp->lock);
    free(lp);
}

void svc_live_policy_stats(svc_live_policy *lp, svc_policy_stats *out)
{
    out->reloads_ok = atomic_load(&lp->reloads_ok);
    out->reloads_failed = atomic_load(&lp->reloads_failed);
    out->load_ns = atomic_load(&lp->load_ns);
    out->rules = atomic_load(&lp->rules);
    out->gen = svc_live_policy_gen(lp);
}
