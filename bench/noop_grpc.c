/*
 * noop_grpc -- a do-nothing EMQX ExHook gRPC server: the floor exhook-grpc's
 * authorize throughput is compared with (bench/grpc_bench.sh).
 *
 * Same gRPC core C API and the same shape as grpc/exhook_grpc.c:
 *   - methods registered with GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER (the
 *     request arrives with the new-call event, no RECV_MESSAGE op);
 *   - `threads` completion queues (one thread each) for authorize and
 *     unknown methods, one more for OnClientAuthenticate only, drained by
 *     `workers` threads;
 *   - 64 calls requested ahead per method per queue, one re-posted on
 *     each arrival before answering;
 *   - one reply batch: initial metadata, message, status, close.
 * What it leaves out is exhook's own work: the request is never read or
 * decoded, no policy is evaluated, nothing is encoded.  Every authorize and
 * authenticate call gets the same ValuedResponse {type STOP_AND_RETURN,
 * bool_result true} (bytes 08 02 18 01); other paths get UNIMPLEMENTED.
 *
 *   noop_grpc [--listen HOST:PORT] [--threads N] [--workers N]
 *
 * Prints "listening on HOST:PORT" once serving; SIGTERM/SIGINT stop it.
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { AHEAD_HOT = 64 }; /* as exhook_grpc.c */

static const char *const authorize_paths[] = {
    "/emqx.exhook.v1.HookProvider/OnClientCheckAcl",
    "/emqx.exhook.v2.HookProvider/OnClientAuthorize",
    "/emqx.exhook.v3.HookProvider/OnClientAuthorize",
};
static const char *const authenticate_paths[] = {
    "/emqx.exhook.v1.HookProvider/OnClientAuthenticate",
    "/emqx.exhook.v2.HookProvider/OnClientAuthenticate",
    "/emqx.exhook.v3.HookProvider/OnClientAuthenticate",
};
enum { NPATHS = 3 };

/* ValuedResponse{type = STOP_AND_RETURN (2), bool_result (3) = true} */
static const char allow_reply[] = {0x08, 0x02, 0x18, 0x01};

static grpc_server *server;
static void *authorize_h[NPATHS], *authenticate_h[NPATHS];
static atomic_int busy, closing;

typedef struct call {
    void *handle; /* NULL: an unregistered method */
    grpc_completion_queue *cq;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details; /* unregistered methods only */
    grpc_byte_buffer *request, *response;
    grpc_slice status_details;
    int cancelled;
    bool replying;
} call;

static void call_free(call *c)
{
    if (c->call) grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->md);
    if (!c->handle) grpc_call_details_destroy(&c->details);
    if (c->request) grpc_byte_buffer_destroy(c->request);
    if (c->response) grpc_byte_buffer_destroy(c->response);
    grpc_slice_unref(c->status_details);
    free(c);
}

static void request(void *handle, grpc_completion_queue *cq)
{
    call *c = calloc(1, sizeof(*c));
    if (!c) return;
    c->handle = handle;
    c->cq = cq;
    c->status_details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md);
    grpc_call_error e;
    if (handle) {
        e = grpc_server_request_registered_call(server, handle, &c->call, &c->deadline, &c->md,
                                                &c->request, cq, cq, c);
    } else {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(server, &c->call, &c->details, &c->md, cq, cq, c);
    }
    if (e != GRPC_CALL_OK) {
        c->call = NULL;
        call_free(c);
    }
}

static void reply(call *c)
{
    grpc_status_code status = GRPC_STATUS_OK;
    if (c->handle) {
        grpc_slice s = grpc_slice_from_static_buffer(allow_reply, sizeof(allow_reply));
        c->response = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
    } else {
        status = GRPC_STATUS_UNIMPLEMENTED;
        c->status_details = grpc_slice_from_static_string("noop_grpc: not served");
    }
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
    if (grpc_call_start_batch(c->call, ops, k, c, NULL) != GRPC_CALL_OK) call_free(c);
}

static void *serve(void *arg)
{
    grpc_completion_queue *cq = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE || !ev.tag) continue;
        call *c = ev.tag;
        if (c->replying || !ev.success) {
            call_free(c);
            continue;
        }
        atomic_fetch_add(&busy, 1);
        if (atomic_load(&closing) < 2) {
            if (!atomic_load(&closing)) request(c->handle, cq);
            reply(c);
        } else {
            call_free(c);
        }
        atomic_fetch_sub(&busy, 1);
    }
    return NULL;
}

static int count(const char *v, int lo, int hi)
{
    char *end;
    long n = strtol(v, &end, 10);
    return *v && !*end && n >= lo && n <= hi ? (int)n : -1;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:9001";
    int threads = 2, workers = 4; /* exhook-grpc's defaults */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--listen") && v) {
            listen = v;
        } else if (!strcmp(a, "--threads") && v && (threads = count(v, 1, 64)) > 0) {
        } else if (!strcmp(a, "--workers") && v && (workers = count(v, 1, 256)) > 0) {
        } else {
            fprintf(stderr, "usage: noop_grpc [--listen HOST:PORT] [--threads N] [--workers N]\n");
            return 2;
        }
        i++;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    grpc_init();
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
         .value.integer = 1},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
         .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_MAX_PING_STRIKES, .value.integer = 0},
    };
    grpc_channel_args cargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
    server = grpc_server_create(&cargs, NULL);
    for (int i = 0; i < NPATHS; i++) {
        authorize_h[i] = grpc_server_register_method(server, authorize_paths[i], NULL,
                                                     GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        authenticate_h[i] = grpc_server_register_method(
            server, authenticate_paths[i], NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    int nq = threads + 1, nth = threads + workers;
    grpc_completion_queue **cqs = calloc((size_t)nq, sizeof(*cqs));
    pthread_t *th = calloc((size_t)nth, sizeof(*th));
    if (!cqs || !th) return 1;
    grpc_completion_queue *shutdown_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server, shutdown_cq, NULL);
    for (int q = 0; q < nq; q++) {
        cqs[q] = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(server, cqs[q], NULL);
    }
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(server, listen, creds);
    grpc_server_credentials_release(creds);
    if (!port) {
        fprintf(stderr, "noop_grpc: cannot listen on %s\n", listen);
        return 1;
    }
    grpc_server_start(server);
    for (int q = 0; q < nq; q++) {
        bool auth = q >= threads;
        for (int i = 0; i < NPATHS; i++)
            for (int k = 0; k < AHEAD_HOT; k++)
                request(auth ? authenticate_h[i] : authorize_h[i], cqs[q]);
        if (!auth) request(NULL, cqs[q]);
    }
    for (int t = 0; t < nth; t++)
        pthread_create(&th[t], NULL, serve, cqs[t < threads ? t : threads]);
    printf("listening on %s (port %d): %d threads, %d authentication workers\n", listen, port,
           threads, workers);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    atomic_store(&closing, 1);
    grpc_server_shutdown_and_notify(server, shutdown_cq, NULL);
    grpc_server_cancel_all_calls(server);
    grpc_completion_queue_next(shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    atomic_store(&closing, 2);
    while (atomic_load(&busy) > 0)
        sched_yield();
    for (int q = 0; q < nq; q++)
        grpc_completion_queue_shutdown(cqs[q]);
    for (int t = 0; t < nth; t++)
        pthread_join(th[t], NULL);
    for (int q = 0; q < nq; q++)
        grpc_completion_queue_destroy(cqs[q]);
    grpc_completion_queue_shutdown(shutdown_cq);
    while (grpc_completion_queue_next(shutdown_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(shutdown_cq);
    grpc_server_destroy(server);
    grpc_shutdown();
    free(cqs);
    free(th);
    return 0;
}
