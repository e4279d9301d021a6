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

#include "log.h"

struct svc_policy {
    exh_policy *p;
    atomic_int refs;
};

static pthread_mutex_t policy_lock = PTHREAD_MUTEX_INITIALIZER;
static svc_policy *current;
static char policy_path[PATH_MAX];

svc_policy *svc_policy_get(void)
{
    pthread_mutex_lock(&policy_lock);
    svc_policy *h = current;
    atomic_fetch_add(&h->refs, 1);
    pthread_mutex_unlock(&policy_lock);
    return h;
}

const exh_policy *svc_policy_of(const svc_policy *h)
{
    return h->p;
}

void svc_policy_put(svc_policy *h)
{
    if (h && atomic_fetch_sub(&h->refs, 1) == 1) {
        exh_policy_free(h->p);
        free(h);
    }
}

static int install(exh_policy *p)
{
    svc_policy *h = malloc(sizeof(*h));
    if (!h) return -1;
    h->p = p;
    atomic_init(&h->refs, 1);
    pthread_mutex_lock(&policy_lock);
    svc_policy *old = current;
    current = h;
    pthread_mutex_unlock(&policy_lock);
    svc_policy_put(old);
    return 0;
}

exh_status svc_policy_load(const char *path, exh_error *err)
{
    if (path != policy_path) snprintf(policy_path, sizeof(policy_path), "%s", path);
    exh_policy *p;
    exh_status st = exh_policy_load(path, &p, err);
    if (st != EXH_OK) return st;
    exh_policy_drop_texts(p);
    if (install(p) < 0) {
        exh_policy_free(p);
        return EXH_ENOMEM;
    }
    malloc_trim(0); /* compiling leaves many small freed blocks: give them back */
    return EXH_OK;
}

void svc_policy_release(void)
{
    pthread_mutex_lock(&policy_lock);
    svc_policy *old = current;
    current = NULL;
    pthread_mutex_unlock(&policy_lock);
    svc_policy_put(old);
}

static void reload(const char *why)
{
    exh_error err;
    exh_status st = svc_policy_load(policy_path, &err);
    if (st == EXH_ENOMEM) {
        svc_log(LOG_ERROR, "policy reload: out of memory, keeping the old policy");
    } else if (st != EXH_OK) {
        svc_log_error(LOG_ERROR, "policy reload failed, keeping the old policy", &err);
        malloc_trim(0); /* the failed compile's freed blocks go back too */
    } else {
        svc_policy *h = svc_policy_get();
        svc_log(LOG_INFO, "policy reloaded (%s): %u rules", why, exh_policy_rule_count(h->p));
        svc_policy_put(h);
    }
}

static int stop_pipe[2] = {-1, -1};
static int sig_fd = -1;
static pthread_t watcher;
static bool watching;

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
    (void)arg;
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd >= 0) {
        /* Watch the directory: editors replace files by renaming. */
        struct stat sb;
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", policy_path);
        if (stat(policy_path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
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
        struct pollfd fds[3] = {{stop_pipe[0], POLLIN, 0}, {sig_fd, POLLIN, 0}, {ifd, POLLIN, 0}};
        if (poll(fds, ifd >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents) break;
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sig_fd, &si, sizeof(si)) == sizeof(si))
                ;
            reload("SIGHUP");
        }
        if (ifd >= 0 && (fds[2].revents & POLLIN) && policy_events(ifd)) {
            /* Let a burst of policy edits settle, then compile once: only
             * policy events extend the wait, and never past 2 s, so a
             * busy neighbour file cannot hold reloads (or a stop) back. */
            bool stop = false;
            for (int round = 0; round < 10; round++) {
                struct pollfd w[2] = {{stop_pipe[0], POLLIN, 0}, {ifd, POLLIN, 0}};
                if (poll(w, 2, 200) <= 0) break;
                if (w[0].revents) {
                    stop = true;
                    break;
                }
                if (!policy_events(ifd)) break;
            }
            if (stop) break;
            reload("files changed");
        }
    }
    if (ifd >= 0) close(ifd);
    return NULL;
}

int svc_policy_watch_start(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd < 0 || pipe2(stop_pipe, O_CLOEXEC) < 0 ||
        pthread_create(&watcher, NULL, watch_main, NULL) != 0) {
        svc_log(LOG_ERROR, "cannot set up policy reload: %s", strerror(errno));
        return -1;
    }
    watching = true;
    return 0;
}

void svc_policy_watch_stop(void)
{
    if (!watching) return;
    if (write(stop_pipe[1], "x", 1) < 0) { /* the watcher wakes on POLLHUP too */
    }
    pthread_join(watcher, NULL);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    close(sig_fd);
    watching = false;
}
