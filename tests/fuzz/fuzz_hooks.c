/*
 * fuzz_hooks.c -- libFuzzer target for exhook-grpc's request decoding
 * (grpc/hooks.c): arbitrary bytes as the protobuf body of every RPC of the
 * three wire versions.
 *
 * The first byte picks the method, the rest is the request.  Checked: no
 * crash, leak or hang; an answer is either an error (undecodable) or a
 * response that decodes as what the method returns -- for authenticate
 * and authorize a ValuedResponse that is IGNORE without a value, or
 * STOP_AND_RETURN with bool_result set; and an authorize answer never
 * allows what the policy below refuses to everyone (its default is deny
 * and its only grant is for user "alice" on "alice/#").
 *
 * Build and run: tests/fuzz/run.sh SECONDS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service.h"
#include "exhook_v3.pb-c.h"
#include "hooks.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static svc_conn *conn;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/fuzz_hooks.XXXXXX";
    if (!mkdtemp(dir)) abort();
    static char pol[64], db[64];
    snprintf(pol, sizeof(pol), "%s/p.policy", dir);
    snprintf(db, sizeof(db), "%s/s.db", dir);
    FILE *f = fopen(pol, "w");
    if (!f) abort();
    fputs("default deny\nallow pubsub username \"alice\" topic \"alice/#\"\n", f);
    fclose(f);
    exh_store_opts o;
    exh_store_opts_default(&o);
    exh_store *s;
    exh_error err;
    if (exh_store_open(db, &o, &s, &err) != EXH_OK) abort(); /* created empty: no users */
    exh_store_close(s);
    svc_log_init("fuzz_hooks", LOG_ERROR);
    svc_config ss;
    svc_config_defaults(&ss, SVC_FOR_GRPC);
    snprintf(ss.db, sizeof(ss.db), "%s", db);
    snprintf(ss.policy, sizeof(ss.policy), "%s", pol);
    ss.busy_timeout_ms = 1000;
    ss.cache_ttl = 0;
    ss.cache_max = 1;
    /* An unknown user's password is checked against a dummy hash of this
     * cost (no name enumeration by timing): keep it cheap, or every input
     * with a username costs a full argon2id. */
    ss.hash.m_kib = 8;
    ss.hash.t_cost = 1;
    svc *service = svc_new(&ss);
    if (!service || svc_start(service, SVC_THREAD_HISTORY) < 0 || !(conn = svc_conn_new(service)))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    const hook_method *m = &hook_methods[data[0] % hook_nmethods];
    uint8_t *out;
    size_t outlen;
    const char *why;
    hook_status st = hook_answer(m, conn, data + 1, size - 1, &out, &outlen, &why);
    if (st == HOOK_BAD) {
        if (!why || out) abort();
        return 0;
    }
    if (st != HOOK_OK || !out) abort();
    if (m->kind == HOOK_AUTHENTICATE || m->kind == HOOK_AUTHORIZE) {
        Emqx__Exhook__V3__ValuedResponse *r =
            emqx__exhook__v3__valued_response__unpack(NULL, outlen, out);
        if (!r) abort();
        bool ignore = r->type == EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__IGNORE;
        bool stop = r->type == EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__STOP_AND_RETURN;
        bool has = r->value_case == EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_BOOL_RESULT;
        if (!(ignore && !has) && !(stop && has)) abort();
        if (m->kind == HOOK_AUTHORIZE && stop && r->bool_result) {
            /* only alice on alice/# ... may be allowed */
            Emqx__Exhook__V3__ClientAuthorizeRequest *rq =
                emqx__exhook__v3__client_authorize_request__unpack(NULL, size - 1, data + 1);
            if (!rq || !rq->clientinfo || rq->clientinfo->username.len != 5 ||
                memcmp(rq->clientinfo->username.data, "alice", 5) != 0 || rq->topic.len < 5 ||
                memcmp(rq->topic.data, "alice", 5) != 0)
                abort();
            emqx__exhook__v3__client_authorize_request__free_unpacked(rq, NULL);
        }
        if (m->kind == HOOK_AUTHENTICATE && stop && r->bool_result) abort(); /* no users */
        emqx__exhook__v3__valued_response__free_unpacked(r, NULL);
    } else if (m->kind == HOOK_LOADED) {
        Emqx__Exhook__V3__LoadedResponse *r =
            emqx__exhook__v3__loaded_response__unpack(NULL, outlen, out);
        if (!r || r->n_hooks != 4) abort();
        emqx__exhook__v3__loaded_response__free_unpacked(r, NULL);
    } else if (outlen != 0) {
        abort(); /* EmptySuccess */
    }
    free(out);
    return 0;
}
