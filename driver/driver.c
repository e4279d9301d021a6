/*
 * exhook-driver -- the EMQX extension-hook port program (DESIGN §5).
 *
 * A thin layer over service/ (decide.h): this file speaks the Erlang port
 * protocol, decide.c answers.
 *
 * Threads:
 *   main     reads frames, answers ACL checks on the spot (a policy lookup,
 *            no SQLite unless a client was never seen), hands
 *            authentications to the workers;
 *   workers  check passwords (argon2id is slow by design) and reply out of
 *            order, so a burst of logins never holds up an ACL check;
 *   history  (decide.c) writes connect/disconnect events in batches;
 *   reload   (live_policy.c) recompiles the policy on SIGHUP or when its
 *            files change and swaps it in; a policy that fails keeps the
 *            old one.
 * Replies go out under one lock, a whole frame at a time, exactly once per
 * call.  Only frames are ever written to the output fd; logs go to stderr.
 */
#define _DEFAULT_SOURCE /* explicit_bzero */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "deadline.h"
#include "service.h"
#include "etf.h"
#include "exhook/eval.h"
#include "exhook/hash.h"
#include "live_policy.h"
#include "log.h"

static svc_config cfg;
static svc *service; /* svc_run_start */

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

static void send_bytes(const char *term, size_t n)
{
    int rc = 0;
    pthread_mutex_lock(&out_lock);
    if (obuf_len + n + 4 > sizeof(obuf)) rc = flush_locked();
    if (n + 4 > sizeof(obuf)) {
        rc = etf_write_frame(out_fd, term, n);
    } else {
        unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                              (unsigned char)(n >> 8), (unsigned char)n};
        memcpy(obuf + obuf_len, h, 4);
        memcpy(obuf + obuf_len + 4, term, n);
        obuf_len += n + 4;
        if (!pthread_equal(pthread_self(), reader)) rc = flush_locked();
    }
    pthread_mutex_unlock(&out_lock);
    if (rc < 0) svc_log(LOG_ERROR, "writing a reply: %s", strerror(errno));
}

static void send_term(ei_x_buff *x, int built)
{
    if (built < 0)
        svc_log(LOG_ERROR, "could not encode a reply");
    else
        send_bytes(x->buff, (size_t)x->index);
    ei_x_free(x);
}

/* ok (value < 0) or {0, Bool}: the answer to nearly every call, so it is
 * built on the stack; ei_x_buff (malloc) only for an Id too long for it. */
static void reply_answer_value(const etf_call *c, int value)
{
    char b[256];
    int n = etf_encode_answer(b, sizeof(b), c, value);
    if (n >= 0) {
        send_bytes(b, (size_t)n);
        return;
    }
    ei_x_buff x;
    send_term(&x, value < 0 ? etf_reply_ok(&x, c) : etf_reply_bool(&x, c, value > 0));
}

static void reply_ok(const etf_call *c)
{
    reply_answer_value(c, -1);
}

static void reply_bool(const etf_call *c, bool v)
{
    reply_answer_value(c, v);
}

static void reply_error(const etf_call *c, const char *msg)
{
    ei_x_buff x;
    send_term(&x, etf_reply_error(&x, c, msg));
}

/* A call that could not be read.  EMQX 4.1's extension hook reads an
 * error reply to a hook as "no opinion" (its do_call matches only
 * {'r', Id, Result}: emqx-extension-hook, src/emqx_extension_hook_driver.erl),
 * and its defaults (allow_anonymous, acl_nomatch = allow) then let the
 * client in: a login or ACL check we cannot read is refused instead.
 * Anything else gets erlport's error form. */
static void reply_unreadable(const etf_call *c, const char *why)
{
    if (!strcmp(c->fn, "on_client_authenticate") || !strcmp(c->fn, "on_client_check_acl")) {
        svc_log(LOG_WARN, "%s: %s: refused", c->fn, why);
        reply_bool(c, false);
    } else {
        reply_error(c, why);
    }
}

/* ---- authentications waiting for a worker ---- */

/* One login: answered exactly once, by a worker or, at the deadline, by
 * the watcher (deadline.h); freed when both have let go. */
typedef struct job {
    svc_pending pending; /* first: the watcher's callbacks get the job back */
    struct job *next;
    etf_call call;
    char *frame; /* owns call.buf; ci's strings point into it */
    etf_clientinfo ci;
    exh_auth_request rq; /* points into ci */
    uint64_t gen;        /* svc_login_begin's */
} job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    size_t len;
    bool closed;
} auth_q = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void q_push(job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&auth_q.lock);
    if (auth_q.tail)
        auth_q.tail->next = j;
    else
        auth_q.head = j;
    auth_q.tail = j;
    auth_q.len++;
    pthread_cond_signal(&auth_q.cond);
    pthread_mutex_unlock(&auth_q.lock);
}

static size_t q_len(void)
{
    pthread_mutex_lock(&auth_q.lock);
    size_t n = auth_q.len;
    pthread_mutex_unlock(&auth_q.lock);
    return n;
}

/* The next job; NULL when closed and empty. */
static job *q_pop(void)
{
    pthread_mutex_lock(&auth_q.lock);
    while (!auth_q.head && !auth_q.closed)
        pthread_cond_wait(&auth_q.cond, &auth_q.lock);
    job *j = auth_q.head;
    if (j) {
        auth_q.head = j->next;
        if (!auth_q.head) auth_q.tail = NULL;
        auth_q.len--;
    }
    pthread_mutex_unlock(&auth_q.lock);
    return j;
}

static void q_close(void)
{
    pthread_mutex_lock(&auth_q.lock);
    auth_q.closed = true;
    pthread_cond_broadcast(&auth_q.cond);
    pthread_mutex_unlock(&auth_q.lock);
}

static void job_destroy(svc_pending *p)
{
    job *j = (job *)p;
    /* The password is in the frame: it leaves no copy in freed memory. */
    if (j->ci.password) explicit_bzero(j->frame + (j->ci.password - j->frame), j->ci.password_len);
    free(j->frame);
    free(j);
}

/* The deadline came first: refused, and the login's record keeps
 * granting nothing (it is never ended). */
static void job_expire(svc_pending *p)
{
    job *j = (job *)p;
    reply_bool(&j->call, false);
    svc_login_refused_late(service, &j->rq, p->received);
}

static void reply_answer(const etf_call *c, svc_answer a)
{
    if (a == SVC_IGNORE)
        reply_ok(c);
    else
        reply_bool(c, a == SVC_ALLOW);
}

static void parse_peer(const etf_clientinfo *ci, exh_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (ci->peerhost && ci->peerhost_len) exh_addr_parse(ci->peerhost, ci->peerhost_len, a);
}

/* ---- authentication (workers) ---- */

static void authenticate(job *j, svc_conn *conn)
{
    if (!svc_deadline_can_start(&j->pending)) {
        /* Waited in the queue too long: a check now would end after the
         * broker stopped waiting. */
        if (svc_pending_claim(&j->pending)) {
            reply_bool(&j->call, false);
            svc_deadline_refused();
            svc_login_refused_late(service, &j->rq, j->pending.received);
        }
        return;
    }
    svc_grant g;
    int64_t t0 = svc_now_ns();
    svc_answer a = conn ? svc_login_check(conn, &j->rq, &g) : SVC_DENY;
    if (!conn) g = (svc_grant){.state = SVC_CLIENT_REFUSED, .reason = EXH_AUTH_NO_MEMORY};
    svc_deadline_observe(svc_now_ns() - t0);
    if (svc_pending_claim(&j->pending)) {
        svc_login_answered(service, conn, &j->rq, &g, a, j->pending.received);
        svc_login_end(service, j->rq.clientid, j->rq.clientid_len, &j->rq, j->gen,
                      &g); /* before the reply: its ACL checks follow it */
        reply_answer(&j->call, a);
    } else {
        svc_grant_clear(&g); /* refused at the deadline already */
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    /* Password hashes yield the CPU to ACL checks and to the deadline's
     * refusals: 10 nicer than the rest (the nice value is per thread). */
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, 0);
    if (!errno) setpriority(PRIO_PROCESS, 0, prio + 10 > 19 ? 19 : prio + 10);
    svc_conn *conn = svc_conn_new(service); /* NULL (out of memory): logins are refused */
    job *j;
    while ((j = q_pop())) {
        authenticate(j, conn);
        svc_pending_release(&j->pending);
        if (q_len() == 0) exh_hash_thread_release(); /* idle: argon2id's 19 MiB go back */
    }
    svc_conn_free(conn);
    return NULL;
}

/* on_client_authenticate on the reader thread: the client id's record
 * grants nothing from now until the login ends; the login is refused at
 * once if the workers cannot answer it in time, else queued.  The job
 * outlives the read buffer c->buf lies in: it takes `owned` (c->buf
 * itself, when the caller allocated it) or a copy. */
static void start_login(const etf_call *c, char *owned, int64_t received)
{
    job *j = calloc(1, sizeof(*j));
    char *frame = owned ? owned : malloc(c->len ? c->len : 1);
    if (j && frame && !owned) memcpy(frame, c->buf, c->len);
    int idx = c->args, n;
    const char *why = "on_client_authenticate(ClientInfo, Bool, State)";
    if (!j || !frame || c->nargs != 3 || ei_decode_list_header(frame, &idx, &n) < 0 ||
        etf_decode_clientinfo(frame, &idx, &j->ci, &why) < 0) {
        /* EMQX 4.x reads an error reply as "no opinion", which its
         * defaults turn into a login: a login we cannot read is refused. */
        svc_log(LOG_WARN, "on_client_authenticate: %s: refused",
                j && frame ? why : "out of memory");
        /* If the broker lets it in anyway, its client id gets nothing. */
        const char *cid;
        size_t cidlen;
        idx = c->args;
        if (ei_decode_list_header(c->buf, &idx, &n) == 0 &&
            etf_find_clientid(c->buf, idx, &cid, &cidlen) == 0)
            svc_login_unreadable(service, cid, cidlen);
        free(j);
        reply_bool(c, false);
        free(frame);
        return;
    }
    const etf_clientinfo *ci = &j->ci;
    /* A username means credentials to check, whatever the `anonymous` flag
     * says: EMQX 4.x sets it true before authentication has run. */
    j->rq = (exh_auth_request){.username = ci->has_username ? ci->username : NULL,
                               .username_len = ci->username_len,
                               .clientid = ci->clientid ? ci->clientid : "",
                               .clientid_len = ci->clientid_len,
                               .password = ci->has_password ? ci->password : NULL,
                               .password_len = ci->password_len,
                               .check_password = true};
    parse_peer(ci, &j->rq.peerhost);
    j->call = *c;
    j->call.buf = frame;
    j->frame = frame;
    j->gen = svc_login_begin(service, j->rq.clientid, j->rq.clientid_len, &j->rq);
    j->pending.expire = job_expire;
    j->pending.destroy = job_destroy;
    int64_t deadline = svc_deadline_for(received, 0);
    if (!svc_deadline_admit(deadline, q_len(), cfg.workers)) {
        reply_bool(&j->call, false); /* it could not be checked in time */
        svc_deadline_refused();
        svc_login_refused_late(service, &j->rq, received);
        job_destroy(&j->pending);
        return;
    }
    svc_pending_add(&j->pending, received, deadline);
    q_push(j);
}

/* ---- ACL checks (main thread) ---- */

/*
 * on_client_check_acl: groups and the superuser flag come from the
 * client's record (made when it authenticated); a client not seen since
 * this driver started is looked up in the store once, by username.
 */
static void check_acl(const etf_call *call, svc_conn *conn)
{
    int idx = call->args, n;
    etf_clientinfo ci;
    const char *why = "on_client_check_acl(ClientInfo, publish|subscribe, Topic, Bool, State)";
    char action[MAXATOMLEN_UTF8];
    const char *topic = NULL;
    size_t tlen = 0;
    /* EMQX 4.x reads an error reply as "no opinion", which its defaults
     * turn into an allow: a check we cannot read is refused. */
    if (call->nargs != 5 || ei_decode_list_header(call->buf, &idx, &n) < 0 ||
        etf_decode_clientinfo(call->buf, &idx, &ci, &why) < 0) {
        svc_log(LOG_WARN, "on_client_check_acl: %s: refused", why);
        reply_bool(call, false);
        return;
    }
    if (etf_decode_atom(call->buf, &idx, action) < 0 ||
        (strcmp(action, "publish") && strcmp(action, "subscribe")) ||
        etf_decode_text(call->buf, &idx, &topic, &tlen) < 0 || !topic) {
        svc_log(LOG_WARN, "on_client_check_acl: the action must be publish or subscribe and "
                          "the topic a binary: refused");
        reply_bool(call, false);
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
    /* qos and retain stay unknown: EMQX's ACL hook does not pass them.
     * Every string points into the frame, which lives until the reply is
     * sent; svc_authorize reads them by their lengths. */
    reply_answer(call, conn ? svc_authorize(conn, &r) : SVC_DENY);
}

/* ---- connected / disconnected ---- */

/* A text from the frame as a C string (malloc'd; NULL: out of memory). */
static char *text_dup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void session_event(etf_call *call, int connected)
{
    etf_clientinfo ci;
    int idx = call->args, n;
    const char *why = "bad arguments";
    if (ei_decode_list_header(call->buf, &idx, &n) < 0 ||
        etf_decode_clientinfo(call->buf, &idx, &ci, &why) < 0) {
        reply_error(call, why);
        return;
    }
    const char *reason = NULL;
    size_t reason_len = 0;
    bool unreadable = false;
    if (!connected && call->nargs >= 3 &&
        etf_decode_text(call->buf, &idx, &reason, &reason_len) < 0) {
        /* EMQX turns the reason into text before it calls (its hooks'
         * stringfy/1); anything else is malformed input: the event is still
         * recorded, its reason as "unreadable", and that is said. */
        reason = NULL;
        unreadable = true;
        svc_log(LOG_WARN, "%s: the disconnect reason is not text: recorded as unreadable",
                call->fn);
    }
    reply_ok(call);
    /* The history takes C strings: copies, NUL-terminated (a name with a
     * NUL in it is cut there, as the store would cut it). */
    char *cid = text_dup(ci.clientid ? ci.clientid : "", ci.clientid_len);
    char *user = ci.has_username ? text_dup(ci.username, ci.username_len) : NULL;
    char *peer = ci.peerhost ? text_dup(ci.peerhost, ci.peerhost_len) : NULL;
    char *why_text = reason ? text_dup(reason, reason_len) : NULL;
    if (!cid || (ci.has_username && !user) || (ci.peerhost && !peer) || (reason && !why_text)) {
        svc_log(LOG_ERROR, "%s: out of memory: the event is not recorded", call->fn);
    } else {
        exh_session_event ev = {.clientid = cid,
                                .username = user,
                                .peerhost = peer,
                                .node = ci.node[0] ? ci.node : NULL,
                                .reason = unreadable ? "unreadable" : why_text,
                                .at = (int64_t)time(NULL),
                                .connected = connected};
        svc_session(service, &ev, ci.clientid ? ci.clientid_len : 0);
    }
    free(cid);
    free(user);
    free(peer);
    free(why_text);
}

/* ---- dispatch ---- */

/* frame is borrowed (etf_read_frame's): everything it is needed for is
 * done before this returns, but a login's job, which copies it. */
static void handle_frame(const char *frame, uint32_t len, svc_conn *conn, int64_t received)
{
    char *inflated = NULL;
    size_t ilen = 0;
    const char *why = NULL;
    if (etf_inflate(frame, len, &inflated, &ilen, &why) < 0) {
        svc_log(LOG_WARN, "dropped a frame of %u bytes: %s", len, why);
        return;
    }
    if (inflated) {
        frame = inflated;
        len = (uint32_t)ilen;
    }
    etf_call c;
    int rc = etf_decode_call(frame, len, &c, &why);
    if (rc == 1) { /* {'M', _} */
        free(inflated);
        return;
    }
    if (rc < 0) {
        svc_log(LOG_WARN, "bad frame of %u bytes: %s", len, why);
        if (c.id_start >= 0) reply_unreadable(&c, why);
        free(inflated);
        return;
    }
    const char *fn = c.fn;
    if (!strcmp(fn, "on_client_check_acl")) {
        check_acl(&c, conn);
    } else if (!strcmp(fn, "on_client_authenticate")) {
        start_login(&c, inflated, received);
        return; /* an inflated frame is the login's now */
    } else if (!strcmp(fn, "on_client_connected") || !strcmp(fn, "on_client_disconnected")) {
        int connected = fn[10] == 'c';
        if (c.nargs != (connected ? 2 : 3)) {
            reply_error(&c, connected ? "on_client_connected(ClientInfo, State)"
                                      : "on_client_disconnected(ClientInfo, Reason, State)");
        } else {
            session_event(&c, connected);
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
    free(inflated);
}

static const char usage[] =
    "usage: exhook-driver [--config FILE] [--db PATH] [--policy PATH] [--workers N]\n"
    "                     [--cache-ttl SECONDS] [--cache-max N] [--unknown-user deny|ignore]\n"
    "                     [--failed-action deny|ignore] [--busy-timeout MS]\n"
    "                     [--upgrade-hashes true|false]\n"
    "                     [--lockout-failures N] [--lockout-window T] [--lockout-backoff T]\n"
    "                     [--lockout-backoff-max T]\n"
    "                     [--call-timeout MS|Ns]\n"
    "                     [--log-level error|warn|info|debug]\n"
    "                     [--nouse_stdio] [--check-config]\n"
    "\n"
    "The EMQX extension-hook port program: the broker spawns it with\n"
    "open_port({spawn, Cmd}, [{packet,4}, binary, exit_status]) and calls it for\n"
    "client_authenticate, client_check_acl, client_connected and\n"
    "client_disconnected.  Frames on stdin/stdout (fds 3/4 with --nouse_stdio),\n"
    "logs on stderr.  SIGHUP or a change to the policy files reloads the policy.\n"
    "--check-config validates the settings, the policy and the store, then exits.\n"
    "--call-timeout is the broker's exhook.drivers.<type>.call_timeout (default 5s):\n"
    "a login not decided a margin before it is refused, never left to the broker.\n"
    "--lockout-failures failed logins (default 10; 0: off) within --lockout-window\n"
    "(default 300 s) lock the user name or address out for --lockout-backoff\n"
    "(default 60 s), doubling up to --lockout-backoff-max (default 1h); T: seconds,\n"
    "or a number with ms, s, m or h.\n";

int main(int argc, char **argv)
{
    static const svc_program prog = {"exhook-driver", usage, SVC_FOR_DRIVER};
    int status = svc_config_load(argc, argv, &prog, &cfg);
    if (status >= 0) return status;
    svc_log_init("exhook-driver", cfg.log_level);
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

    /* SIGHUP goes to the reload thread; SIGPIPE must not kill us when the
     * broker goes away mid-reply (svc_run_start). */
    if ((status = svc_run_start(&cfg, NULL, 0, &service)) >= 0) return status;
    svc_set_queue_depth(service, q_len);

    pthread_t *workers = calloc((size_t)cfg.workers, sizeof(*workers));
    if (!workers) {
        svc_log(LOG_ERROR, "out of memory");
        return 1;
    }
    int started = 0;
    while (started < cfg.workers && pthread_create(&workers[started], NULL, worker_main, NULL) == 0)
        started++;
    if (started < cfg.workers) {
        svc_log(LOG_ERROR, "cannot start worker threads: %s", strerror(errno));
        q_close();
        for (int i = 0; i < started; i++)
            pthread_join(workers[i], NULL);
        svc_run_stop(service);
        free(workers);
        return 1;
    }
    char shown[4096]; /* a PostgreSQL URI without its password */
    exh_store_display_name(cfg.db, shown, sizeof(shown));
    svc_policy *hp = svc_policy_get(svc_live(service));
    svc_log(LOG_INFO, "serving: policy %s (%u rules), store %s, %d workers", cfg.policy,
            exh_policy_rule_count(svc_policy_of(hp)), shown, cfg.workers);
    svc_policy_put(hp);

    svc_conn *conn = svc_conn_new(service); /* NULL (out of memory): every ACL check is denied */
    reader = pthread_self();
    int rc = 0;
    for (;;) {
        const char *frame;
        uint32_t len;
        if (!etf_input_has_frame()) { /* about to wait: send what we have */
            pthread_mutex_lock(&out_lock);
            if (flush_locked() < 0) svc_log(LOG_ERROR, "writing replies: %s", strerror(errno));
            pthread_mutex_unlock(&out_lock);
        }
        errno = 0;
        int r = etf_read_frame(in_fd, &frame, &len);
        if (r == 0) break;
        if (r == -2) {
            etf_call c;
            svc_log(LOG_WARN, "skipped an oversized frame of %u bytes", len);
            if (frame && etf_decode_id(frame, 4096, &c) == 0)
                reply_unreadable(&c, "frame too large");
            continue;
        }
        if (r < 0) {
            /* Not the broker closing the port between calls: say so in the
             * exit status too (1), as a truncated file piped in would. */
            svc_log(LOG_ERROR, "input ended inside a frame%s%s", errno ? ": " : "",
                    errno ? strerror(errno) : "");
            rc = 1;
            break;
        }
        handle_frame(frame, len, conn, svc_now_ns());
    }
    pthread_mutex_lock(&out_lock);
    flush_locked();
    pthread_mutex_unlock(&out_lock);

    /* End of input: finish in-flight authentications, flush history. */
    q_close();
    for (int i = 0; i < cfg.workers; i++)
        pthread_join(workers[i], NULL);
    svc_conn_free(conn);
    svc_run_stop(service);
    free(workers);
    etf_read_release();
    svc_log(LOG_INFO, "input closed; exiting");
    return rc;
}
