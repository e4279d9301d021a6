/*
 * exhook-driver -- the EMQX extension-hook port program (DESIGN §5).
 *
 * Threads:
 *   main     reads frames, answers ACL checks on the spot (a policy lookup,
 *            no SQLite unless a client was never seen), hands
 *            authentications to the workers;
 *   workers  check passwords (argon2id is slow by design) and reply out of
 *            order, so a burst of logins never holds up an ACL check;
 *   history  writes connect/disconnect events to the store in batches;
 *   reload   recompiles the policy on SIGHUP or when its files change and
 *            swaps it in; a policy that fails keeps the old one.
 * Replies go out under one lock, a whole frame at a time, exactly once per
 * call.  Only frames are ever written to the output fd; logs go to stderr.
 */
#define _GNU_SOURCE /* strndup, pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "etf.h"
#include "exhook/auth.h"
#include "exhook/eval.h"

/* ---- logging ---- */

static int log_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void logmsg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logmsg(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > log_level) return;
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "exhook-driver: %s: ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&log_lock);
}

static void log_error_value(const char *what, const exh_error *err)
{
    char buf[2048];
    exh_error_format(err, buf, sizeof(buf));
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    logmsg(LOG_ERROR, "%s: %s", what, buf);
}

/* ---- replies ---- */

static int out_fd = 1;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Replies are gathered and written together: the reader sends what it
 * gathered when it is about to wait for input, workers at once.  One
 * write() then answers a whole pipelined burst. */
static char obuf[1 << 16];
static size_t obuf_len;
static pthread_t reader;

static int flush_locked(void)
{
    size_t off = 0;
    int rc = 0;
    while (off < obuf_len) {
        ssize_t w = write(out_fd, obuf + off, obuf_len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = -1;
            break;
        }
        off += (size_t)w;
    }
    obuf_len = 0;
    return rc;
}

static void send_term(ei_x_buff *x, int built)
{
    if (built < 0) {
        logmsg(LOG_ERROR, "could not encode a reply");
        ei_x_free(x);
        return;
    }
    size_t n = (size_t)x->index;
    int rc = 0;
    pthread_mutex_lock(&out_lock);
    if (obuf_len + n + 4 > sizeof(obuf)) rc = flush_locked();
    if (n + 4 > sizeof(obuf)) {
        rc = etf_write_frame(out_fd, x->buff, n);
    } else {
        unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                              (unsigned char)(n >> 8), (unsigned char)n};
        memcpy(obuf + obuf_len, h, 4);
        memcpy(obuf + obuf_len + 4, x->buff, n);
        obuf_len += n + 4;
        if (!pthread_equal(pthread_self(), reader)) rc = flush_locked();
    }
    pthread_mutex_unlock(&out_lock);
    if (rc < 0) logmsg(LOG_ERROR, "writing a reply: %s", strerror(errno));
    ei_x_free(x);
}

static void reply_ok(const etf_call *c)
{
    ei_x_buff x;
    send_term(&x, etf_reply_ok(&x, c));
}

static void reply_bool(const etf_call *c, bool v)
{
    ei_x_buff x;
    send_term(&x, etf_reply_bool(&x, c, v));
}

static void reply_error(const etf_call *c, const char *msg)
{
    ei_x_buff x;
    send_term(&x, etf_reply_error(&x, c, msg));
}

/* ---- the policy in use: swapped whole, freed when its last user lets go ---- */

typedef struct held_policy {
    exh_policy *p;
    atomic_int refs;
} held_policy;

static pthread_mutex_t policy_lock = PTHREAD_MUTEX_INITIALIZER;
static held_policy *current_policy;

static held_policy *policy_get(void)
{
    pthread_mutex_lock(&policy_lock);
    held_policy *h = current_policy;
    atomic_fetch_add(&h->refs, 1);
    pthread_mutex_unlock(&policy_lock);
    return h;
}

static void policy_put(held_policy *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1) {
        exh_policy_free(h->p);
        free(h);
    }
}

static int policy_install(exh_policy *p)
{
    held_policy *h = malloc(sizeof(*h));
    if (!h) return -1;
    h->p = p;
    atomic_init(&h->refs, 1);
    pthread_mutex_lock(&policy_lock);
    held_policy *old = current_policy;
    current_policy = h;
    pthread_mutex_unlock(&policy_lock);
    if (old) policy_put(old);
    return 0;
}

/* ---- per-client records: what authentication learned, for ACL checks ---- */

typedef struct client {
    char *clientid;
    size_t clientid_len;
    char *username; /* who authenticated; a check by anyone else ignores the record */
    size_t username_len;
    bool superuser;
    char **groups;
    exh_str *gstr; /* the groups as the evaluator takes them */
    size_t ngroups;
    struct client *next;
} client;

#define CLIENT_BUCKETS 65536
static client *clients[CLIENT_BUCKETS];
static pthread_rwlock_t clients_lock = PTHREAD_RWLOCK_INITIALIZER;

static size_t cid_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 32)) & (CLIENT_BUCKETS - 1);
}

static void client_free(client *c)
{
    for (size_t i = 0; i < c->ngroups; i++)
        free(c->groups[i]);
    free(c->groups);
    free(c->gstr);
    free(c->clientid);
    free(c->username);
    free(c);
}

/* Remember (or forget, with c NULL) what a client may do. */
static void clients_set(const char *cid, size_t len, client *c)
{
    size_t b = cid_hash(cid, len);
    pthread_rwlock_wrlock(&clients_lock);
    client **pp = &clients[b];
    while (*pp && ((*pp)->clientid_len != len || memcmp((*pp)->clientid, cid, len)))
        pp = &(*pp)->next;
    client *old = *pp;
    if (old) *pp = old->next;
    if (c) {
        c->next = clients[b];
        clients[b] = c;
    }
    pthread_rwlock_unlock(&clients_lock);
    if (old) client_free(old);
}

/* ---- configuration and shared state ---- */

static driver_config cfg;
static exh_auth_cache *cache;

/* A fault is reported once when it starts and once when it clears, never
 * per request: a broker asking thousands of times a second must not flood
 * the log with one line per denied call.  Reads (credentials, groups) and
 * history writes are separate incidents: a full disk stops the history but
 * not the logins, and one must not announce the other's recovery. */
typedef struct incident {
    atomic_int active;
    atomic_long dropped; /* history events lost during the incident */
} incident;

static incident read_incident, history_incident;

static void store_failed(const exh_error *err)
{
    if (!atomic_exchange(&read_incident.active, 1))
        log_error_value(cfg.failed_ignore ? "credential store unavailable (answering ok: "
                                            "failed_action = ignore)"
                                          : "credential store unavailable (failing closed)",
                        err);
}

static void store_ok(void)
{
    if (atomic_load(&read_incident.active) && atomic_exchange(&read_incident.active, 0))
        logmsg(LOG_INFO, "credential store available again");
}

static void history_failed(const exh_error *err, size_t lost)
{
    atomic_fetch_add(&history_incident.dropped, (long)lost);
    if (!atomic_exchange(&history_incident.active, 1))
        log_error_value("session history not written (events are dropped until the store "
                        "accepts writes again)",
                        err);
}

static void history_ok(void)
{
    if (atomic_load(&history_incident.active) && atomic_exchange(&history_incident.active, 0))
        logmsg(LOG_INFO, "session history written again (%ld events were dropped)",
               atomic_exchange(&history_incident.dropped, 0));
}

static exh_store *open_store(exh_error *err)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    o.hash = cfg.hash;
    o.cache_kib = 512; /* one connection per thread: keep their caches small */
    o.busy_timeout_ms = cfg.busy_timeout_ms;
    exh_store *s = NULL;
    if (exh_store_open(cfg.db, &o, &s, err) != EXH_OK) return NULL;
    return s;
}

/* ---- a job queue (authentications, history events) ---- */

typedef struct job {
    struct job *next;
    etf_call call;
    char *frame; /* owns call.buf */
    etf_clientinfo ci;
    int connected; /* history: 1 connect, 0 disconnect */
    char *reason;
    int64_t at;
} job;

typedef struct queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    int closed;
} queue;

static void q_init(queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->head = q->tail = NULL;
    q->closed = 0;
}

static void q_push(queue *q, job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* Wait for a job (NULL when closed and empty); with a timeout, NULL also
 * when it passes. */
static job *q_pop(queue *q, int timeout_ms)
{
    pthread_mutex_lock(&q->lock);
    while (!q->head && !q->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&q->cond, &q->lock);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)timeout_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) == ETIMEDOUT) break;
        }
    }
    job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head) q->tail = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    return j;
}

static void q_close(queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static void job_free(job *j)
{
    free(j->frame);
    etf_clientinfo_clear(&j->ci);
    free(j->reason);
    free(j);
}

static queue auth_q, history_q;

/* ---- authentication (workers) ---- */

static void parse_peer(const etf_clientinfo *ci, exh_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (ci->peerhost && ci->peerhost_len) exh_addr_parse(ci->peerhost, ci->peerhost_len, a);
}

/* Keep a client's groups and superuser flag for its ACL checks; takes
 * ownership of groups (and frees them if it cannot keep them). */
static void remember(const char *cid, size_t len, const char *user, size_t ulen, bool superuser,
                     char **groups, size_t ngroups)
{
    client *c = calloc(1, sizeof(*c));
    if (c) {
        c->groups = groups;
        c->ngroups = ngroups;
        groups = NULL;
    }
    if (!c || !(c->clientid = malloc(len + 1)) || !(c->username = malloc(ulen + 1)) ||
        (c->ngroups && !(c->gstr = malloc(c->ngroups * sizeof(*c->gstr))))) {
        if (c)
            client_free(c);
        else if (groups) {
            for (size_t i = 0; i < ngroups; i++)
                free(groups[i]);
            free(groups);
        }
        return; /* the client is looked up again on its next ACL check */
    }
    memcpy(c->clientid, cid, len);
    c->clientid[len] = '\0';
    c->clientid_len = len;
    memcpy(c->username, user, ulen);
    c->username[ulen] = '\0';
    c->username_len = ulen;
    c->superuser = superuser;
    for (size_t i = 0; i < c->ngroups; i++)
        c->gstr[i] = (exh_str){c->groups[i], strlen(c->groups[i])};
    clients_set(c->clientid, c->clientid_len, c);
}

static void authenticate(job *j, exh_store **store, exh_evalctx *ctx)
{
    const etf_clientinfo *ci = &j->ci;
    /* A new login on this client id ends whatever an earlier one was
     * allowed: only an allowed login makes a new record below. */
    if (ci->clientid) clients_set(ci->clientid, ci->clientid_len, NULL);
    exh_error err;
    exh_error_clear(&err);
    if (!*store && !(*store = open_store(&err))) { /* failed_action decides */
        store_failed(&err);
        cfg.failed_ignore ? reply_ok(&j->call) : reply_bool(&j->call, false);
        return;
    }
    /* A username means credentials to check, whatever the `anonymous` flag
     * says: EMQX 4.x sets it true before authentication has run. */
    exh_auth_request rq = {.username = ci->has_username ? ci->username : NULL,
                           .username_len = ci->username_len,
                           .clientid = ci->clientid ? ci->clientid : "",
                           .clientid_len = ci->clientid_len,
                           .password = ci->has_password ? ci->password : NULL,
                           .password_len = ci->password_len,
                           .check_password = true};
    parse_peer(ci, &rq.peerhost);
    exh_auth_result r;
    held_policy *hp = policy_get();
    exh_status st = exh_authenticate(*store, cache, hp->p, ctx, &rq, &r, &err);
    policy_put(hp);
    if (r.reason == EXH_AUTH_STORE_ERROR) {
        store_failed(&err);
        if (st == EXH_ESTORE) { /* reconnect next time: the file may be back */
            exh_store_close(*store);
            *store = NULL;
        }
        cfg.failed_ignore ? reply_ok(&j->call) : reply_bool(&j->call, false);
        exh_auth_result_clear(&r);
        return;
    }
    store_ok();
    if (r.reason == EXH_AUTH_BAD_HASH)
        logmsg(LOG_WARN, "user '%.*s' has an unreadable password hash (refused)",
               (int)ci->username_len, ci->username);
    logmsg(LOG_DEBUG, "authenticate %s: %s, %s", ci->clientid ? ci->clientid : "",
           exh_auth_reason_str(r.reason), exh_decision_str(r.decision));
    if (r.reason == EXH_AUTH_UNKNOWN_USER && cfg.unknown_ignore)
        reply_ok(&j->call);
    else
        reply_bool(&j->call, r.decision == EXH_ALLOW);
    if (r.decision == EXH_ALLOW && ci->clientid && rq.username) {
        remember(ci->clientid, ci->clientid_len, rq.username, rq.username_len, r.superuser,
                 r.groups, r.ngroups);
        r.groups = NULL;
        r.ngroups = 0;
    }
    exh_auth_result_clear(&r);
}

static void *worker_main(void *arg)
{
    (void)arg;
    exh_evalctx *ctx = exh_evalctx_new();
    exh_error err;
    exh_store *store = open_store(&err);
    if (!store) store_failed(&err); /* said at start-up, not at the first login */
    job *j;
    while ((j = q_pop(&auth_q, -1))) {
        if (ctx)
            authenticate(j, &store, ctx);
        else
            reply_bool(&j->call, false);
        job_free(j);
    }
    exh_store_close(store);
    exh_evalctx_free(ctx);
    return NULL;
}

/* ---- history (one thread, batched) ---- */

static void write_history(exh_store **store, job **batch, size_t n)
{
    exh_error err;
    if (!*store && !(*store = open_store(&err))) {
        history_failed(&err, n); /* dropped: history is best effort, decisions are not */
        return;
    }
    /* On a failed write the connection stays open: SQLite recovers from a
     * full disk or a lock at the next transaction, while closing it would
     * checkpoint and truncate the WAL, free a little space and make the
     * history flap between written and not written. */
    if (exh_store_begin(*store, &err) != EXH_OK) {
        history_failed(&err, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const etf_clientinfo *ci = &batch[i]->ci;
        exh_session_event ev = {.clientid = ci->clientid ? ci->clientid : "",
                                .username = ci->has_username ? ci->username : NULL,
                                .peerhost = ci->peerhost,
                                .node = ci->node[0] ? ci->node : NULL,
                                .reason = batch[i]->reason,
                                .at = batch[i]->at,
                                .connected = batch[i]->connected};
        if (exh_store_record_session(*store, &ev, &err) != EXH_OK) {
            history_failed(&err, n);
            exh_store_rollback(*store);
            return;
        }
    }
    if (exh_store_commit(*store, &err) != EXH_OK) {
        history_failed(&err, n);
        exh_store_rollback(*store);
        return;
    }
    history_ok();
}

static void *history_main(void *arg)
{
    (void)arg;
    exh_store *store = NULL;
    job *batch[256];
    for (;;) {
        size_t n = 0;
        job *j = q_pop(&history_q, -1);
        if (!j) break;
        batch[n++] = j;
        /* gather what else arrives within 100 ms, up to a batch */
        while (n < 256 && (j = q_pop(&history_q, 100)))
            batch[n++] = j;
        write_history(&store, batch, n);
        for (size_t i = 0; i < n; i++)
            job_free(batch[i]);
    }
    exh_store_close(store);
    return NULL;
}

/* ---- reload ---- */

static int reload_stop[2] = {-1, -1};

static void reload_policy(const char *why)
{
    exh_policy *p;
    exh_error err;
    if (exh_policy_load(cfg.policy, &p, &err) != EXH_OK) {
        log_error_value("policy reload failed, keeping the old policy", &err);
        return;
    }
    exh_policy_drop_texts(p); /* the driver never shows rule texts */
    if (policy_install(p) < 0) {
        exh_policy_free(p);
        logmsg(LOG_ERROR, "policy reload: out of memory");
        return;
    }
    logmsg(LOG_INFO, "policy reloaded (%s): %u rules", why, exh_policy_rule_count(p));
    malloc_trim(0); /* compiling leaves many small freed blocks: give them back */
}

static void *reload_main(void *arg)
{
    int sfd = *(int *)arg;
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd >= 0) {
        /* Watch the directory: editors replace files by renaming. */
        struct stat sb;
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", cfg.policy);
        if (stat(cfg.policy, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            else
                strcpy(dir, ".");
        }
        if (inotify_add_watch(
                ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0)
            logmsg(LOG_WARN, "cannot watch %s (%s): reload on SIGHUP only", dir, strerror(errno));
    }
    for (;;) {
        struct pollfd fds[3] = {{reload_stop[0], POLLIN, 0}, {sfd, POLLIN, 0}, {ifd, POLLIN, 0}};
        if (poll(fds, ifd >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents) break;
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == sizeof(si))
                ;
            reload_policy("SIGHUP");
        }
        if (ifd >= 0 && (fds[2].revents & POLLIN)) {
            char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            int relevant = 0;
            /* Let a burst of writes settle, then compile once. */
            do {
                ssize_t n;
                while ((n = read(ifd, ev, sizeof(ev))) > 0)
                    for (char *p = ev; p < ev + n;) {
                        struct inotify_event *e = (struct inotify_event *)p;
                        size_t l = e->len ? strlen(e->name) : 0;
                        if (l > 7 && !strcmp(e->name + l - 7, ".policy") && e->name[0] != '.')
                            relevant = 1;
                        p += sizeof(*e) + e->len;
                    }
            } while (poll(&(struct pollfd){ifd, POLLIN, 0}, 1, 50) > 0);
            if (relevant) reload_policy("files changed");
        }
    }
    if (ifd >= 0) close(ifd);
    return NULL;
}

/* ---- ACL checks (main thread) ---- */

/* A client's record; the caller holds clients_lock. */
static client *find_client(const char *cid, size_t len)
{
    client *c = clients[cid_hash(cid, len)];
    while (c && (c->clientid_len != len || memcmp(c->clientid, cid, len)))
        c = c->next;
    return c;
}

static void decide_acl(const etf_call *call, const exh_request *r, exh_evalctx *ctx)
{
    exh_result res;
    held_policy *hp = policy_get();
    exh_eval(hp->p, r, ctx, &res);
    policy_put(hp);
    if (res.decision == EXH_IGNORE)
        reply_ok(call);
    else
        reply_bool(call, res.decision == EXH_ALLOW);
}

/*
 * on_client_check_acl: groups and the superuser flag come from the
 * client's record (made when it authenticated); a client not seen since
 * this driver started is looked up in the store once, by username.
 */
static void check_acl(const etf_call *call, exh_evalctx *ctx, exh_store **store)
{
    int idx = call->args, n;
    etf_clientinfo ci;
    const char *why = "on_client_check_acl(ClientInfo, publish|subscribe, Topic, Bool, State)";
    char action[MAXATOMLEN_UTF8];
    char *topic = NULL;
    size_t tlen = 0;
    if (call->nargs != 5 || ei_decode_list_header(call->buf, &idx, &n) < 0 ||
        etf_decode_clientinfo(call->buf, &idx, &ci, &why) < 0) {
        reply_error(call, why);
        return;
    }
    if (etf_decode_atom(call->buf, &idx, action) < 0 ||
        (strcmp(action, "publish") && strcmp(action, "subscribe")) ||
        etf_decode_text(call->buf, &idx, &topic, &tlen) < 0 || !topic) {
        etf_clientinfo_clear(&ci);
        free(topic);
        reply_error(call, "on_client_check_acl: the action must be publish or subscribe and "
                          "the topic a binary");
        return;
    }
    exh_request r;
    exh_request_init(&r, action[0] == 'p' ? EXH_PUBLISH : EXH_SUBSCRIBE);
    if (ci.has_username) { /* the `anonymous` flag is not evidence: see authenticate() */
        r.username = ci.username;
        r.username_len = ci.username_len;
    }
    r.clientid = ci.clientid ? ci.clientid : "";
    r.clientid_len = ci.clientid_len;
    parse_peer(&ci, &r.peerhost);
    r.topic = topic;
    r.topic_len = tlen;
    /* qos and retain stay unknown: EMQX's ACL hook does not pass them. */

    pthread_rwlock_rdlock(&clients_lock);
    client *c = find_client(r.clientid, r.clientid_len);
    /* The record is this client's only if the same user logged in. */
    if (c && !(r.username && c->username_len == r.username_len &&
               !memcmp(c->username, r.username, r.username_len)))
        c = NULL;
    /* No stored name holds a NUL: such a user has no record and no groups
     * (looking it up would cut the name at the NUL). */
    int nul = r.username && memchr(r.username, '\0', r.username_len) != NULL;
    if (c || !r.username || nul) {
        if (c) {
            r.superuser = c->superuser;
            r.groups = c->gstr;
            r.ngroups = c->ngroups;
        }
        decide_acl(call, &r, ctx);
        pthread_rwlock_unlock(&clients_lock);
        goto out;
    }
    pthread_rwlock_unlock(&clients_lock);

    /* Not seen since this driver started: ask the store once. */
    exh_user u = {0};
    exh_error err;
    exh_error_clear(&err);
    if (!*store) *store = open_store(&err);
    char *name = strndup(r.username, r.username_len);
    exh_status st = !name    ? EXH_ENOMEM
                    : *store ? exh_store_get_user(*store, name, &u, &err)
                             : EXH_ESTORE;
    free(name);
    exh_str *g = NULL;
    if (st == EXH_OK || st == EXH_ENOTFOUND) store_ok();
    if (st == EXH_OK && u.ngroups && !(g = malloc(u.ngroups * sizeof(*g)))) st = EXH_ENOMEM;
    if (st == EXH_OK) {
        for (size_t i = 0; i < u.ngroups; i++)
            g[i] = (exh_str){u.groups[i], strlen(u.groups[i])};
        r.superuser = u.superuser;
        r.groups = g;
        r.ngroups = u.ngroups;
        decide_acl(call, &r, ctx);
        remember(r.clientid, r.clientid_len, r.username, r.username_len, u.superuser, u.groups,
                 u.ngroups);
        u.groups = NULL; /* now the record's */
        u.ngroups = 0;
    } else if (st == EXH_ENOTFOUND) {
        decide_acl(call, &r, ctx); /* no groups, not a superuser */
    } else {
        if (st == EXH_ESTORE) {
            store_failed(&err);
            exh_store_close(*store); /* reopened next time: the file may be back */
            *store = NULL;
        }
        cfg.failed_ignore ? reply_ok(call) : reply_bool(call, false);
    }
    free(g);
    exh_user_clear(&u);
out:
    etf_clientinfo_clear(&ci);
    free(topic);
}

/* ---- connected / disconnected ---- */

static void session_event(etf_call *call, char *frame, int connected)
{
    job *j = calloc(1, sizeof(*j));
    int idx = call->args, n;
    const char *why = "bad arguments";
    if (!j || ei_decode_list_header(call->buf, &idx, &n) < 0 ||
        etf_decode_clientinfo(call->buf, &idx, &j->ci, &why) < 0) {
        free(j);
        reply_error(call, why);
        free(frame);
        return;
    }
    if (!connected && call->nargs >= 3) {
        size_t l;
        if (etf_decode_text(call->buf, &idx, &j->reason, &l) < 0) j->reason = NULL;
    }
    reply_ok(call);
    if (!connected && j->ci.clientid) clients_set(j->ci.clientid, j->ci.clientid_len, NULL);
    j->connected = connected;
    j->at = (int64_t)time(NULL);
    free(frame);
    j->frame = NULL;
    q_push(&history_q, j);
}

/* ---- dispatch ---- */

static void handle_frame(char *frame, uint32_t len, exh_evalctx *ctx, exh_store **store)
{
    char *inflated = NULL;
    size_t ilen = 0;
    const char *why = NULL;
    if (etf_inflate(frame, len, &inflated, &ilen, &why) < 0) {
        logmsg(LOG_WARN, "dropped a frame of %u bytes: %s", len, why);
        free(frame);
        return;
    }
    if (inflated) {
        free(frame);
        frame = inflated;
        len = (uint32_t)ilen;
    }
    etf_call c;
    int rc = etf_decode_call(frame, len, &c, &why);
    if (rc == 1) { /* {'M', _} */
        free(frame);
        return;
    }
    if (rc < 0) {
        logmsg(LOG_WARN, "bad frame of %u bytes: %s", len, why);
        if (c.id_start >= 0) reply_error(&c, why);
        free(frame);
        return;
    }
    const char *fn = c.fn;
    if (!strcmp(fn, "on_client_check_acl")) {
        check_acl(&c, ctx, store);
    } else if (!strcmp(fn, "on_client_authenticate")) {
        job *j = calloc(1, sizeof(*j));
        int idx = c.args, n;
        why = "on_client_authenticate(ClientInfo, Bool, State)";
        if (!j || c.nargs != 3 || ei_decode_list_header(frame, &idx, &n) < 0 ||
            etf_decode_clientinfo(frame, &idx, &j->ci, &why) < 0) {
            free(j);
            reply_error(&c, why);
        } else {
            j->call = c;
            j->frame = frame;
            q_push(&auth_q, j);
            return; /* the worker replies and frees the frame */
        }
    } else if (!strcmp(fn, "on_client_connected") || !strcmp(fn, "on_client_disconnected")) {
        int connected = fn[10] == 'c';
        if (c.nargs != (connected ? 2 : 3)) {
            reply_error(&c, connected ? "on_client_connected(ClientInfo, State)"
                                      : "on_client_disconnected(ClientInfo, Reason, State)");
        } else {
            session_event(&c, frame, connected);
            return;
        }
    } else if (!strcmp(fn, "init")) {
        ei_x_buff x;
        send_term(&x, etf_reply_init(&x, &c));
    } else if (!strcmp(fn, "deinit") || !strncmp(fn, "on_", 3)) {
        reply_ok(&c); /* every other hook: no opinion */
    } else {
        char msg[MAXATOMLEN_UTF8 + 32];
        snprintf(msg, sizeof(msg), "unknown function %s", fn);
        reply_error(&c, msg);
    }
    free(frame);
}

int main(int argc, char **argv)
{
    int status = config_load(argc, argv, &cfg);
    if (status >= 0) return status;
    log_level = cfg.log_level;
    /* argon2id takes 19 MiB per hash on each worker: with glibc's default
     * (a threshold that rises after the first free) those blocks would stay
     * resident in every worker's arena; a fixed threshold returns them. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    ei_init();
    int in_fd = 0;
    out_fd = 1;
    if (cfg.nouse_stdio) {
        in_fd = 3;
        out_fd = 4;
    }
    /* Nothing but frames may reach the broker: stdout goes to stderr when
     * it is not the frame channel, and never to a library's printf. */
    if (!cfg.nouse_stdio) {
        out_fd = dup(1);
        dup2(2, 1);
    }

    exh_policy *p;
    exh_error err;
    if (exh_policy_load(cfg.policy, &p, &err) != EXH_OK) {
        log_error_value("cannot load the policy", &err);
        return 2;
    }
    exh_policy_drop_texts(p); /* the driver never shows rule texts */
    policy_install(p);
    malloc_trim(0); /* compiling leaves many small freed blocks: give them back */
    cache = exh_auth_cache_new(cfg.cache_ttl, cfg.cache_max);

    /* SIGHUP is read by the reload thread through a signalfd; SIGPIPE
     * must not kill us when the broker goes away mid-reply, nor SIGXFSZ
     * when a file size limit stops the store growing (the write fails
     * instead, and the history reports it like a full disk). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (pipe2(reload_stop, O_CLOEXEC) < 0 || sfd < 0) {
        logmsg(LOG_ERROR, "cannot set up reload: %s", strerror(errno));
        return 1;
    }

    q_init(&auth_q);
    q_init(&history_q);
    pthread_t *workers = calloc((size_t)cfg.workers, sizeof(*workers));
    pthread_t hist, rel;
    for (int i = 0; i < cfg.workers; i++)
        pthread_create(&workers[i], NULL, worker_main, NULL);
    pthread_create(&hist, NULL, history_main, NULL);
    pthread_create(&rel, NULL, reload_main, &sfd);
    logmsg(LOG_INFO, "serving: policy %s (%u rules), store %s, %d workers", cfg.policy,
           exh_policy_rule_count(p), cfg.db, cfg.workers);

    exh_evalctx *ctx = exh_evalctx_new();
    exh_store *store = NULL;
    reader = pthread_self();
    int rc = 0;
    for (;;) {
        char *frame;
        uint32_t len;
        if (!etf_input_has_frame()) { /* about to wait: send what we have */
            pthread_mutex_lock(&out_lock);
            if (flush_locked() < 0) logmsg(LOG_ERROR, "writing replies: %s", strerror(errno));
            pthread_mutex_unlock(&out_lock);
        }
        errno = 0;
        int r = etf_read_frame(in_fd, &frame, &len);
        if (r == 0) break;
        if (r == -2) {
            etf_call c;
            logmsg(LOG_WARN, "skipped an oversized frame of %u bytes", len);
            if (frame && etf_decode_id(frame, 4096, &c) == 0) reply_error(&c, "frame too large");
            free(frame);
            continue;
        }
        if (r < 0) {
            logmsg(LOG_ERROR, "input ended inside a frame%s%s", errno ? ": " : "",
                   errno ? strerror(errno) : "");
            break;
        }
        handle_frame(frame, len, ctx, &store);
    }
    pthread_mutex_lock(&out_lock);
    flush_locked();
    pthread_mutex_unlock(&out_lock);

    /* End of input: finish in-flight authentications, flush history. */
    q_close(&auth_q);
    for (int i = 0; i < cfg.workers; i++)
        pthread_join(workers[i], NULL);
    q_close(&history_q);
    pthread_join(hist, NULL);
    if (write(reload_stop[1], "x", 1) < 0)
        logmsg(LOG_WARN, "stopping the reload thread: %s", strerror(errno));
    pthread_join(rel, NULL);
    exh_store_close(store);
    exh_evalctx_free(ctx);
    exh_auth_cache_free(cache);
    policy_put(current_policy);
    free(workers);
    for (size_t b = 0; b < CLIENT_BUCKETS; b++)
        while (clients[b]) {
            client *c = clients[b];
            clients[b] = c->next;
            client_free(c);
        }
    logmsg(LOG_INFO, "input closed; exiting");
    return rc;
}
