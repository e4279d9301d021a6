/*
 * exhook-grpc -- EMQX's gRPC ExHook server (HookProvider) on the engine.
 *
 * A thin layer: gRPC core's C API carries the calls, hooks.c decodes them
 * and service/decide.c answers.  One server answers every wire version at
 * once (the package is part of each method's path): emqx.exhook.v1 (EMQX
 * 4.3.3+, 4.4), v2 (5.0-5.8) and v3 (5.9+).
 *
 * Threads, each draining a completion queue of its own:
 *   `threads`  authorize, connected/disconnected and every other RPC;
 *   `workers`  OnClientAuthenticate only: a password check (argon2id, tens
 *              of milliseconds by design) never holds up an authorize call;
 *   history    (decide.c) writes connect/disconnect events in batches;
 *   reload     (live_policy.c) SIGHUP or a changed *.policy file.
 * The main thread waits for SIGTERM/SIGINT, then shuts down in order:
 * no new calls, in-flight calls finished (for up to 5 s), history flushed.
 */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "deadline.h"
#include "exhook/hash.h"
#include "service.h"
#include "hooks.h"
#include "live_policy.h"
#include "log.h"

static const char usage[] =
    "usage: exhook-grpc [--config FILE] [--listen HOST:PORT] [--db PATH] [--policy PATH]\n"
    "                   [--threads N] [--workers N] [--cache-ttl SECONDS] [--cache-max N]\n"
    "                   [--unknown-user deny|ignore] [--failed-action deny|ignore]\n"
    "                   [--busy-timeout MS] [--call-timeout MS|Ns] [--upgrade-hashes true|false]\n"
    "                   [--log-level error|warn|info|debug]\n"
    "                   [--lockout-failures N] [--lockout-window T] [--lockout-backoff T]\n"
    "                   [--lockout-backoff-max T]\n"
    "                   [--tls-cert PEM --tls-key PEM [--tls-ca PEM]\n"
    "                    [--tls-client none|optional|required]] [--check-config]\n"
    "\n"
    "EMQX's gRPC ExHook server (HookProvider, packages emqx.exhook.v1, v2 and v3):\n"
    "client.authenticate, client.authorize / client.check_acl, client.connected\n"
    "and client.disconnected.  Logs on stderr.  SIGHUP or a change to the policy\n"
    "files reloads the policy; SIGTERM stops it cleanly.\n"
    "--lockout-failures failed logins (default 10; 0: off) within --lockout-window\n"
    "(default 300 s) lock the user name or address out for --lockout-backoff\n"
    "(default 60 s), doubling up to --lockout-backoff-max (default 1h); T: seconds,\n"
    "or a number with ms, s, m or h.\n";

static svc_config cfg;
static svc *service; /* svc_run_start */
static grpc_server *server;

/* Calls requested ahead on each queue, per method: enough that a burst
 * never waits for a new request to be posted. */
enum { AHEAD_HOT = 64, AHEAD_COLD = 2 };

/* Shutdown handshake: once a queue is shut down no batch may start on it
 * (gRPC core asserts).  Handlers count themselves in `busy`; main sets
 * `closing` to 1 (stop requesting), then 2 (drop new calls) and waits for
 * busy == 0 before shutting the queues down. */
static atomic_int busy, closing;

typedef struct call {
    svc_pending pending; /* first; logins only (watched): see deadline.h */
    bool watched;
    struct call *next; /* logins waiting for a worker */
    hook_login *login;
    const hook_method *m; /* NULL: a method we do not serve */
    grpc_completion_queue *cq;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details; /* unknown methods only */
    grpc_byte_buffer *request, *response;
    grpc_slice status_details;
    int cancelled;
    bool replying;
} call;

static void *handles[64];

static void call_free(call *c)
{
    hook_login_free(c->login);
    if (c->call) grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->md);
    if (!c->m) grpc_call_details_destroy(&c->details);
    if (c->request) grpc_byte_buffer_destroy(c->request);
    if (c->response) grpc_byte_buffer_destroy(c->response);
    grpc_slice_unref(c->status_details);
    free(c);
}

/* Ask for the next call of method m (NULL: any unregistered one) on cq. */
static void request(const hook_method *m, grpc_completion_queue *cq)
{
    call *c = calloc(1, sizeof(*c));
    if (!c) {
        svc_log(LOG_ERROR, "out of memory: a call slot was not posted");
        return;
    }
    c->m = m;
    c->cq = cq;
    c->status_details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md);
    grpc_call_error e;
    if (m) {
        e = grpc_server_request_registered_call(server, handles[m - hook_methods], &c->call,
                                                &c->deadline, &c->md, &c->request, cq, cq, c);
    } else {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(server, &c->call, &c->details, &c->md, cq, cq, c);
    }
    if (e != GRPC_CALL_OK) { /* shutting down */
        c->call = NULL;
        call_free(c);
    }
}

/* The request as one contiguous buffer (gRPC may hand it in slices). */
static grpc_slice request_bytes(grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    if (!bb || !grpc_byte_buffer_reader_init(&r, bb)) return grpc_empty_slice();
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return s;
}

/* A call is done with (its reply went out, or failed): a login's call is
 * shared with the deadline watcher and goes when both let go. */
static void done(call *c)
{
    if (c->watched)
        svc_pending_release(&c->pending);
    else
        call_free(c);
}

static void call_destroy(svc_pending *p)
{
    call_free((call *)p);
}

/* Send the status, and the response if there is one. */
static void send_reply(call *c, grpc_status_code status, const char *why)
{
    if (why) c->status_details = grpc_slice_from_static_string(why);
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t k = 0;
    ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->response) {
        ops[k].op = GRPC_OP_SEND_MESSAGE;
        ops[k++].data.send_message.send_message = c->response;
    }
    ops[k].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[k].data.send_status_from_server.status = status;
    ops[k++].data.send_status_from_server.status_details = &c->status_details;
    ops[k].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[k++].data.recv_close_on_server.cancelled = &c->cancelled;
    c->replying = true;
    if (c->watched) atomic_fetch_add(&c->pending.refs, 1); /* the completion's */
    if (grpc_call_start_batch(c->call, ops, k, c, NULL) != GRPC_CALL_OK) done(c);
}

static void send_response(call *c, hook_status hs, uint8_t *out, size_t outlen)
{
    if (hs == HOOK_OK) {
        grpc_slice sl = grpc_slice_from_copied_buffer((const char *)out, outlen);
        c->response = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
        send_reply(c, GRPC_STATUS_OK, NULL);
    } else {
        send_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    free(out);
}

/* The deadline came first (on the watcher thread): refused.  The login's
 * record keeps granting nothing (it is never ended). */
static void call_expire(svc_pending *p)
{
    uint8_t *out;
    size_t outlen;
    hook_status hs = hook_encode_answer(SVC_DENY, &out, &outlen);
    send_response((call *)p, hs, out, outlen);
    hook_login_refused_late(((call *)p)->login, p->received);
}

/* ---- logins: one intake thread stamps and queues them, workers check ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    call *head, *tail;
    size_t len;
    bool closed;
} jobs = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void jobs_push(call *c)
{
    c->next = NULL;
    pthread_mutex_lock(&jobs.lock);
    if (jobs.tail)
        jobs.tail->next = c;
    else
        jobs.head = c;
    jobs.tail = c;
    jobs.len++;
    pthread_cond_signal(&jobs.cond);
    pthread_mutex_unlock(&jobs.lock);
}

static size_t jobs_len(void)
{
    pthread_mutex_lock(&jobs.lock);
    size_t n = jobs.len;
    pthread_mutex_unlock(&jobs.lock);
    return n;
}

static call *jobs_pop(void)
{
    pthread_mutex_lock(&jobs.lock);
    while (!jobs.head && !jobs.closed)
        pthread_cond_wait(&jobs.cond, &jobs.lock);
    call *c = jobs.head;
    if (c) {
        jobs.head = c->next;
        if (!jobs.head) jobs.tail = NULL;
        jobs.len--;
    }
    pthread_mutex_unlock(&jobs.lock);
    return c;
}

static void jobs_close(void)
{
    pthread_mutex_lock(&jobs.lock);
    jobs.closed = true;
    pthread_cond_broadcast(&jobs.cond);
    pthread_mutex_unlock(&jobs.lock);
}

/* OnClientAuthenticate, on the intake thread, as soon as it arrives: the
 * client id's record grants nothing until the login ends, the deadline is
 * set, and the login is refused at once if the workers cannot answer it in
 * time, else queued.  The deadline is the sooner of call_timeout from now
 * and what the call carries: EMQX 4.3.8+ and 5.x send their
 * request_timeout as the gRPC deadline (grpc-erl's client turns the call's
 * timeout option into the grpc-timeout header, rounded down to whole
 * seconds above 1 s); 4.3.3-4.3.7 send none. */
static void login_arrived(call *c)
{
    grpc_slice in = request_bytes(c->request);
    const char *why = NULL;
    hook_status hs = hook_login_decode(service, GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in),
                                       &c->login, &why);
    grpc_slice_unref(in);
    if (hs != HOOK_OK) {
        if (hs == HOOK_BAD) svc_log(LOG_WARN, "%s: %s", c->m->path, why);
        send_reply(c,
                   hs == HOOK_BAD ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_RESOURCE_EXHAUSTED,
                   hs == HOOK_BAD ? why : "out of memory");
        atomic_fetch_sub(&busy, 1);
        return;
    }
    int64_t now = svc_now_ns(), limit = 0;
    gpr_timespec left = gpr_time_sub(c->deadline, gpr_now(c->deadline.clock_type));
    if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) != 0 &&
        left.tv_sec < 86400 * 365)
        limit = now + (int64_t)left.tv_sec * 1000000000LL + left.tv_nsec;
    c->watched = true;
    c->pending.expire = call_expire;
    c->pending.destroy = call_destroy;
    int64_t deadline = svc_deadline_for(now, limit);
    if (!svc_deadline_admit(deadline, jobs_len(), cfg.workers)) {
        atomic_store(&c->pending.refs, 1);
        c->pending.claimed = true;
        svc_deadline_refused();
        hook_login_refused_late(c->login, now);
        uint8_t *out = NULL;
        size_t outlen = 0;
        hs = hook_encode_answer(SVC_DENY, &out, &outlen);
        send_response(c, hs, out, outlen);
        svc_pending_release(&c->pending);
        atomic_fetch_sub(&busy, 1);
        return;
    }
    svc_pending_add(&c->pending, now, deadline);
    jobs_push(c); /* the worker's reference, and busy, go with it */
}

/* On a worker: the check, answered unless the deadline came first. */
static void login_check(call *c, svc_conn *conn)
{
    uint8_t *out = NULL;
    size_t outlen = 0;
    hook_status hs;
    if (!svc_deadline_can_start(&c->pending)) {
        /* Waited too long: a check now would end after the broker gave up. */
        if (svc_pending_claim(&c->pending)) {
            svc_deadline_refused();
            hook_login_refused_late(c->login, c->pending.received);
            hs = hook_encode_answer(SVC_DENY, &out, &outlen);
            send_response(c, hs, out, outlen);
        }
    } else {
        svc_grant g = {.state = SVC_CLIENT_REFUSED, .reason = EXH_AUTH_NO_MEMORY}; /* no conn */
        int64_t t0 = svc_now_ns();
        svc_answer a = conn ? hook_login_check(c->login, conn, &g) : SVC_DENY;
        svc_deadline_observe(svc_now_ns() - t0);
        if (svc_pending_claim(&c->pending)) {
            hook_login_answered(c->login, conn, &g, a, c->pending.received);
            hook_login_end(c->login, &g); /* before the reply: ACL checks follow it */
            hs = hook_encode_answer(a, &out, &outlen);
            send_response(c, hs, out, outlen);
        } else {
            svc_grant_clear(&g); /* refused at the deadline already */
        }
    }
    svc_pending_release(&c->pending); /* this thread's */
}

static void *worker(void *arg)
{
    (void)arg;
    /* Password hashes yield the CPU to authorize calls: 10 nicer than the
     * rest (on Linux the nice value is per thread, 0 the caller). */
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, 0);
    if (!errno) setpriority(PRIO_PROCESS, 0, prio + 10 > 19 ? 19 : prio + 10);
    svc_conn *conn = svc_conn_new(service); /* NULL: every login refused */
    call *c;
    while ((c = jobs_pop())) {
        login_check(c, conn);
        atomic_fetch_sub(&busy, 1);
        if (jobs_len() == 0) exh_hash_thread_release(); /* idle: argon2id's memory goes back */
    }
    svc_conn_free(conn);
    return NULL;
}

static void reply(call *c, svc_conn *conn)
{
    if (!c->m) {
        send_reply(c, GRPC_STATUS_UNIMPLEMENTED,
                   "exhook-grpc serves emqx.exhook.v1, v2 and v3 HookProvider only");
        return;
    }
    if (!conn) {
        send_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    grpc_slice in = request_bytes(c->request);
    uint8_t *out = NULL;
    size_t outlen = 0;
    const char *why = NULL;
    hook_status hs = hook_answer(c->m, conn, GRPC_SLICE_START_PTR(in), GRPC_SLICE_LENGTH(in), &out,
                                 &outlen, &why);
    grpc_slice_unref(in);
    if (hs == HOOK_BAD) {
        svc_log(LOG_WARN, "%s: %s", c->m->path, why);
        free(out);
        send_reply(c, GRPC_STATUS_INVALID_ARGUMENT, why);
        return;
    }
    send_response(c, hs, out, outlen); /* the response, or RESOURCE_EXHAUSTED */
}

static grpc_completion_queue *auth_cq;

/* Every queue but the logins': answered on the spot. */
static void *serve(void *arg)
{
    grpc_completion_queue *cq = arg;
    svc_conn *conn = svc_conn_new(service); /* NULL: every call answered RESOURCE_EXHAUSTED */
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE || !ev.tag) continue;
        call *c = ev.tag;
        if (c->replying || !ev.success) { /* the reply went out, or shutdown cancelled it */
            done(c);
            continue;
        }
        atomic_fetch_add(&busy, 1);
        if (atomic_load(&closing) < 2) {
            if (!atomic_load(&closing)) request(c->m, cq); /* keep the slots full */
            reply(c, conn);
        } else {
            call_free(c);
        }
        atomic_fetch_sub(&busy, 1);
    }
    svc_conn_free(conn);
    return NULL;
}

/* The logins' queue: taken at once, so each login's deadline starts when
 * it arrives, not when a worker is free. */
static void *intake(void *arg)
{
    (void)arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(auth_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE || !ev.tag) continue;
        call *c = ev.tag;
        if (c->replying || !ev.success) {
            done(c);
            continue;
        }
        atomic_fetch_add(&busy, 1);
        if (atomic_load(&closing) < 2) {
            if (!atomic_load(&closing)) request(c->m, auth_cq);
            login_arrived(c); /* busy goes down when the login is answered */
        } else {
            call_free(c);
            atomic_fetch_sub(&busy, 1);
        }
    }
    return NULL;
}

/* Shut a queue nobody else drains, empty it and free it. */
static void queue_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        svc_log(LOG_ERROR, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            /* grown by hand, not realloc: the old block may hold a key */
            char *nb = cap <= (1u << 24) ? malloc(cap) : NULL;
            if (nb && buf) {
                memcpy(nb, buf, len);
                OPENSSL_cleanse(buf, len);
                free(buf);
            }
            if (!nb) {
                if (buf) OPENSSL_cleanse(buf, len);
                svc_log(LOG_ERROR, "%s: too large or out of memory", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096) break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Plaintext unless a certificate is configured; NULL when the
 * certificate, key or CA cannot be read or used (logged by read_pem). */
static grpc_server_credentials *tls_credentials(void)
{
    if (!*cfg.tls_cert) return grpc_insecure_server_credentials_create();
    char *cert = read_pem(cfg.tls_cert), *key = read_pem(cfg.tls_key);
    char *ca = *cfg.tls_ca ? read_pem(cfg.tls_ca) : NULL;
    grpc_server_credentials *creds = NULL;
    if (cert && key && (ca || !*cfg.tls_ca)) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        /* EMQX's exhook.servers[].ssl: a client certificate (certfile and
         * keyfile there) is checked against tls_ca when given. */
        grpc_ssl_client_certificate_request_type want =
            cfg.tls_client == SVC_TLS_CLIENT_REQUIRED
                ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : cfg.tls_client == SVC_TLS_CLIENT_OPTIONAL
                ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
        creds = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, want, NULL);
    }
    if (key) OPENSSL_cleanse(key, strlen(key)); /* a memset here would be optimised away */
    free(cert);
    free(key);
    free(ca);
    return creds;
}

/* What main builds and shut_down takes apart. */
typedef struct server_parts {
    grpc_completion_queue **cqs; /* `threads` serving queues, then the logins' */
    int nq;
    grpc_completion_queue *shutdown_cq;
    pthread_t *th;
    int nth; /* threads started (or to start, before start_serving) */
} server_parts;

/* Settings from the command line and config file, logging, and the
 * service started (policy loaded, SIGHUP to the reload thread, SIGTERM and
 * SIGINT blocked for main's sigwait).  -1 to go on, or the exit status. */
static int load_settings(int argc, char **argv)
{
    static const svc_program prog = {"exhook-grpc", usage, SVC_FOR_GRPC};
    int status = svc_config_load(argc, argv, &prog, &cfg);
    if (status >= 0) return status;
    svc_log_init("exhook-grpc", cfg.log_level);
    mallopt(M_MMAP_THRESHOLD, 1 << 20); /* argon2id's 19 MiB blocks go back at once */

    /* SIGHUP goes to the reload thread, SIGTERM and SIGINT to main. */
    static const int stops[] = {SIGTERM, SIGINT};
    int rc = svc_run_start(&cfg, stops, 2, &service);
    if (rc < 0) svc_set_queue_depth(service, jobs_len);
    return rc;
}

/* The gRPC server with its methods, queues and listening port, not yet
 * started.  -1 to go on, or the exit status (a port that cannot be had
 * undoes everything, the service included, for a clean exit). */
static int build_server(server_parts *p)
{
    grpc_init();
    /* EMQX's HTTP/2 client pings every 60 s even when idle; gRPC core's
     * defaults count such pings as abuse and close the connection after a
     * few (GOAWAY too_many_pings), so idle pings are allowed here. */
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
         .value.integer = 1},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PING_STRIKES, .value.integer = 0},
        /* gRPC core sets SO_REUSEPORT by default: a second server on the
         * same port would start and silently take half the connections
         * (with its own policy and store).  Without it, that is an error. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
    };
    grpc_channel_args cargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
    server = grpc_server_create(&cargs, NULL);
    if (hook_nmethods > sizeof(handles) / sizeof(handles[0])) return 1;
    for (size_t i = 0; i < hook_nmethods; i++)
        handles[i] = grpc_server_register_method(server, hook_methods[i].path, NULL,
                                                 GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    /* One queue per authorize thread, and one queue that every
     * authentication worker drains: gRPC core hands a new call to the
     * first queue, from its connection's, that has a request posted, so
     * with a queue per worker nearly every login lands on the same one. */
    p->nq = cfg.threads + 1;
    p->nth = cfg.threads + 1 + cfg.workers;
    p->cqs = calloc((size_t)p->nq, sizeof(*p->cqs));
    p->th = calloc((size_t)p->nth, sizeof(*p->th));
    if (!p->cqs || !p->th) {
        svc_log(LOG_ERROR, "out of memory");
        return 1;
    }
    p->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server, p->shutdown_cq, NULL);
    for (int i = 0; i < p->nq; i++) {
        p->cqs[i] = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(server, p->cqs[i], NULL);
    }
    grpc_server_credentials *creds = tls_credentials();
    const char *hint = !creds          ? " (TLS certificate or key unusable)"
                       : *cfg.tls_cert ? " (address in use or not local, or TLS certificate or key "
                                         "unusable)"
                                       : " (address in use or not local)";
    int port = creds ? grpc_server_add_http2_port(server, cfg.listen, creds) : 0;
    if (creds) grpc_server_credentials_release(creds);
    if (!port) {
        svc_log(LOG_ERROR, "cannot listen on %s%s", cfg.listen, hint);
        /* Nothing serves yet: undo the set-up for a clean exit. */
        grpc_server_destroy(server);
        for (int q = 0; q <= p->nq; q++)
            queue_destroy(q < p->nq ? p->cqs[q] : p->shutdown_cq);
        grpc_shutdown();
        svc_run_stop(service);
        free(p->cqs);
        free(p->th);
        return 1;
    }
    return -1;
}

/* Start the server, post the first requests on every queue and start the
 * threads.  0, or -1 (logged) when a thread could not be started: p->nth
 * then counts those that were, for shut_down. */
static int start_serving(server_parts *p)
{
    grpc_server_start(server);
    /* The first `threads` queues serve everything but authentication, the
     * others authentication only. */
    for (int q = 0; q < p->nq; q++) {
        bool auth = q >= cfg.threads;
        for (size_t i = 0; i < hook_nmethods; i++) {
            const hook_method *m = &hook_methods[i];
            if ((m->kind == HOOK_AUTHENTICATE) != auth) continue;
            int ahead = m->kind == HOOK_AUTHENTICATE || m->kind == HOOK_AUTHORIZE ? AHEAD_HOT
                        : m->kind == HOOK_EMPTY || m->kind == HOOK_LOADED         ? AHEAD_COLD
                                                                                  : AHEAD_HOT / 4;
            for (int k = 0; k < ahead; k++)
                request(m, p->cqs[q]);
        }
        if (!auth) request(NULL, p->cqs[q]);
    }
    auth_cq = p->cqs[cfg.threads];
    int started = 0, e = 0;
    /* threads serving the other queues, the intake thread, the workers */
    while (started < p->nth) {
        e = started < cfg.threads    ? pthread_create(&p->th[started], NULL, serve, p->cqs[started])
            : started == cfg.threads ? pthread_create(&p->th[started], NULL, intake, NULL)
                                     : pthread_create(&p->th[started], NULL, worker, NULL);
        if (e) break;
        started++;
    }
    if (started < p->nth) {
        svc_log(LOG_ERROR, "cannot start threads: %s", strerror(e));
        p->nth = started;
        return -1;
    }
    return 0;
}

/* Say what is served, then wait for SIGTERM or SIGINT (blocked in every
 * thread by load_settings, so only this sigwait takes them). */
static void serve_until_signal(void)
{
    char shown[4096]; /* a PostgreSQL URI without its password */
    exh_store_display_name(cfg.db, shown, sizeof(shown));
    svc_policy *hp = svc_policy_get(svc_live(service));
    svc_log(LOG_INFO,
            "serving emqx.exhook.v1, v2, v3 on %s (%s): policy %s (%u rules), store %s, "
            "%d threads, %d authentication workers",
            cfg.listen,
            !*cfg.tls_cert                              ? "plaintext"
            : cfg.tls_client == SVC_TLS_CLIENT_REQUIRED ? "TLS, client certificate required"
            : cfg.tls_client == SVC_TLS_CLIENT_OPTIONAL ? "TLS, client certificate optional"
                                                        : "TLS",
            cfg.policy, exh_policy_rule_count(svc_policy_of(hp)), shown, cfg.threads, cfg.workers);
    svc_policy_put(hp);

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    int sig = 0;
    sigwait(&stop, &sig);
    svc_log(LOG_INFO, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
}

/* In order: no new calls, in-flight calls finished (for up to 5 s, then
 * cancelled), the threads joined, the queues and server freed, the
 * service stopped (history flushed). */
static void shut_down(server_parts *p)
{
    atomic_store(&closing, 1);
    grpc_server_shutdown_and_notify(server, p->shutdown_cq, NULL);
    /* In-flight calls get 5 s to finish, then are cancelled. */
    grpc_event ev = grpc_completion_queue_next(
        p->shutdown_cq,
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(5, GPR_TIMESPAN)), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        grpc_server_cancel_all_calls(server);
        grpc_completion_queue_next(p->shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    atomic_store(&closing, 2);
    while (atomic_load(&busy) > 0)
        sched_yield();
    /* No login is pending now; the watcher may still be sending a refusal,
     * which must be done before the queues go. */
    svc_deadline_stop();
    jobs_close();
    for (int q = 0; q < p->nq; q++)
        grpc_completion_queue_shutdown(p->cqs[q]);
    for (int t = 0; t < p->nth; t++)
        pthread_join(p->th[t], NULL);
    for (int q = 0; q < p->nq; q++)
        grpc_completion_queue_destroy(p->cqs[q]);
    queue_destroy(p->shutdown_cq);
    grpc_server_destroy(server);
    grpc_shutdown();
    svc_run_stop(service);
    free(p->cqs);
    free(p->th);
    svc_log(LOG_INFO, "stopped");
}

int main(int argc, char **argv)
{
    int status = load_settings(argc, argv);
    if (status >= 0) return status;
    server_parts p = {0};
    if ((status = build_server(&p)) >= 0) return status;
    int rc = 0;
    if (start_serving(&p) < 0)
        rc = 1; /* stop at once, as on SIGTERM */
    else
        serve_until_signal();
    shut_down(&p);
    return rc;
}
