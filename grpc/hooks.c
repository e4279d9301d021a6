/*
 * hooks.c -- see hooks.h.  Field numbers and their meaning: proto/ and the
 * README's gRPC section.
 */
#include "hooks.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "exhook_v3.pb-c.h"
#include "log.h"

#define M(v, rpc, kind)                                                                            \
    {                                                                                              \
        v, "/emqx.exhook.v" #v ".HookProvider/" rpc, kind                                          \
    }
#define COMMON(v)                                                                                  \
    M(v, "OnProviderLoaded", HOOK_LOADED), M(v, "OnProviderUnloaded", HOOK_EMPTY),                 \
        M(v, "OnClientConnect", HOOK_EMPTY), M(v, "OnClientConnack", HOOK_EMPTY),                  \
        M(v, "OnClientConnected", HOOK_CONNECTED),                                                 \
        M(v, "OnClientDisconnected", HOOK_DISCONNECTED),                                           \
        M(v, "OnClientAuthenticate", HOOK_AUTHENTICATE), M(v, "OnClientSubscribe", HOOK_EMPTY),    \
        M(v, "OnClientUnsubscribe", HOOK_EMPTY), M(v, "OnSessionCreated", HOOK_EMPTY),             \
        M(v, "OnSessionSubscribed", HOOK_EMPTY), M(v, "OnSessionUnsubscribed", HOOK_EMPTY),        \
        M(v, "OnSessionResumed", HOOK_EMPTY), M(v, "OnSessionDiscarded", HOOK_EMPTY),              \
        M(v, "OnSessionTerminated", HOOK_EMPTY), M(v, "OnMessagePublish", HOOK_EMPTY),             \
        M(v, "OnMessageDelivered", HOOK_EMPTY), M(v, "OnMessageDropped", HOOK_EMPTY),              \
        M(v, "OnMessageAcked", HOOK_EMPTY)

/* OnMessagePublish is declared to return a ValuedResponse; its empty
 * answer decodes as one ({type = CONTINUE}, no value: the broker keeps the
 * message as it is).  It is never listed in OnProviderLoaded, so a broker
 * does not call it anyway. */
const hook_method hook_methods[] = {
    COMMON(1), M(1, "OnClientCheckAcl", HOOK_AUTHORIZE),  M(1, "OnSessionTakeovered", HOOK_EMPTY),
    COMMON(2), M(2, "OnClientAuthorize", HOOK_AUTHORIZE), M(2, "OnSessionTakenover", HOOK_EMPTY),
    COMMON(3), M(3, "OnClientAuthorize", HOOK_AUTHORIZE), M(3, "OnSessionTakenover", HOOK_EMPTY),
};
const size_t hook_nmethods = sizeof(hook_methods) / sizeof(hook_methods[0]);

/* ---- responses ---- */

static hook_status pack(const ProtobufCMessage *m, uint8_t **out, size_t *outlen)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (!(*out = malloc(n ? n : 1))) return HOOK_NOMEM;
    *outlen = protobuf_c_message_pack(m, *out);
    return HOOK_OK;
}

/* EmptySuccess: no bytes (a 1-byte block, so *out is never NULL on OK). */
static hook_status empty(uint8_t **out, size_t *outlen)
{
    *outlen = 0;
    return (*out = malloc(1)) ? HOOK_OK : HOOK_NOMEM;
}

static hook_status answer(svc_answer a, uint8_t **out, size_t *outlen)
{
    Emqx__Exhook__V3__ValuedResponse r = EMQX__EXHOOK__V3__VALUED_RESPONSE__INIT;
    if (a == SVC_IGNORE) {
        r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__IGNORE;
    } else {
        /* The value is set explicitly, false included: a STOP_AND_RETURN
         * without one is logged and ignored by the broker. */
        r.type = EMQX__EXHOOK__V3__VALUED_RESPONSE__RESPONSED_TYPE__STOP_AND_RETURN;
        r.value_case = EMQX__EXHOOK__V3__VALUED_RESPONSE__VALUE_BOOL_RESULT;
        r.bool_result = a == SVC_ALLOW;
    }
    return pack(&r.base, out, outlen);
}

static hook_status loaded(int version, uint8_t **out, size_t *outlen)
{
    /* A name the broker does not know makes it refuse the whole provider:
     * v1 (EMQX 4.x) calls the ACL hook client.check_acl, v2/v3 (5.x)
     * client.authorize. */
    const char *names[] = {"client.authenticate",
                           version == 1 ? "client.check_acl" : "client.authorize",
                           "client.connected", "client.disconnected"};
    Emqx__Exhook__V3__HookSpec specs[4], *sp[4];
    for (int i = 0; i < 4; i++) {
        emqx__exhook__v3__hook_spec__init(&specs[i]);
        specs[i].name.data = (uint8_t *)names[i];
        specs[i].name.len = strlen(names[i]);
        sp[i] = &specs[i];
    }
    Emqx__Exhook__V3__LoadedResponse lr = EMQX__EXHOOK__V3__LOADED_RESPONSE__INIT;
    lr.n_hooks = 4;
    lr.hooks = sp;
    return pack(&lr.base, out, outlen);
}

/* ---- requests ---- */

/* A field as a NUL-terminated string (a copy: protobuf-c's bytes are not
 * terminated).  Empty is "not given", as the broker sends `undefined`. */
typedef struct text {
    char *s;
    size_t len;
} text;

static bool take(const ProtobufCBinaryData *b, text *t)
{
    t->len = b->len;
    t->s = NULL;
    if (!b->len) return true;
    if (!(t->s = malloc(b->len + 1))) return false;
    memcpy(t->s, b->data, b->len);
    t->s[b->len] = '\0';
    return true;
}

typedef struct client_text {
    text clientid, username, password, peerhost, node;
} client_text;

static void client_text_free(client_text *c)
{
    if (c->password.s) OPENSSL_cleanse(c->password.s, c->password.len);
    free(c->clientid.s);
    free(c->username.s);
    free(c->password.s);
    free(c->peerhost.s);
    free(c->node.s);
}

static bool client_text_take(const Emqx__Exhook__V3__ClientInfo *ci, client_text *c)
{
    memset(c, 0, sizeof(*c));
    if (!ci) return true;
    return take(&ci->clientid, &c->clientid) && take(&ci->username, &c->username) &&
           take(&ci->password, &c->password) && take(&ci->peerhost, &c->peerhost) &&
           take(&ci->node, &c->node);
}

struct hook_login {
    client_text c;
    exh_auth_request rq; /* points into c */
    svc *s;
    uint64_t gen;
};

hook_status hook_login_decode(svc *s, const uint8_t *in, size_t n, hook_login **out,
                              const char **why)
{
    *out = NULL;
    Emqx__Exhook__V3__ClientAuthenticateRequest *rq =
        emqx__exhook__v3__client_authenticate_request__unpack(NULL, n, in);
    if (!rq) {
        *why = "ClientAuthenticateRequest: not a valid protobuf message";
        return HOOK_BAD;
    }
    hook_login *l = calloc(1, sizeof(*l));
    bool ok = l && client_text_take(rq->clientinfo, &l->c);
    emqx__exhook__v3__client_authenticate_request__free_unpacked(rq, NULL);
    if (!ok) {
        hook_login_free(l);
        return HOOK_NOMEM;
    }
    client_text *c = &l->c;
    /* A username means credentials to check, whatever `anonymous` says. */
    l->rq = (exh_auth_request){.username = c->username.s,
                               .username_len = c->username.len,
                               .clientid = c->clientid.s ? c->clientid.s : "",
                               .clientid_len = c->clientid.len,
                               .password = c->password.s,
                               .password_len = c->password.len,
                               .check_password = true};
    if (c->peerhost.s) exh_addr_parse(c->peerhost.s, c->peerhost.len, &l->rq.peerhost);
    l->s = s;
    l->gen = svc_login_begin(s, l->rq.clientid, l->rq.clientid_len, &l->rq);
    *out = l;
    return HOOK_OK;
}

svc_answer hook_login_check(hook_login *l, svc_conn *conn, svc_grant *g)
{
    return svc_login_check(conn, &l->rq, g);
}

void hook_login_answered(hook_login *l, svc_conn *conn, const svc_grant *g, svc_answer a,
                         int64_t started_ns)
{
    svc_login_answered(l->s, conn, &l->rq, g, a, started_ns);
}

void hook_login_refused_late(hook_login *l, int64_t started_ns)
{
    if (l) svc_login_refused_late(l->s, &l->rq, started_ns);
}

void hook_login_end(hook_login *l, svc_grant *g)
{
    svc_login_end(l->s, l->rq.clientid, l->rq.clientid_len, &l->rq, l->gen, g);
}

void hook_login_free(hook_login *l)
{
    if (!l) return;
    client_text_free(&l->c);
    free(l);
}

hook_status hook_encode_answer(svc_answer a, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    return answer(a, out, outlen);
}

static hook_status authenticate(svc_conn *conn, const uint8_t *in, size_t n, uint8_t **out,
                                size_t *outlen, const char **why)
{
    hook_login *l;
    hook_status hs = hook_login_decode(svc_conn_service(conn), in, n, &l, why);
    if (hs != HOOK_OK) return hs;
    svc_grant g;
    int64_t t0 = svc_now_ns();
    svc_answer ans = hook_login_check(l, conn, &g);
    hook_login_answered(l, conn, &g, ans, t0);
    hook_login_end(l, &g);
    hook_login_free(l);
    return answer(ans, out, outlen);
}

static hook_status authorize(svc_conn *conn, const uint8_t *in, size_t n, uint8_t **out,
                             size_t *outlen, const char **why)
{
    Emqx__Exhook__V3__ClientAuthorizeRequest *rq =
        emqx__exhook__v3__client_authorize_request__unpack(NULL, n, in);
    if (!rq) {
        *why = "ClientAuthorizeRequest: not a valid protobuf message";
        return HOOK_BAD;
    }
    svc_answer ans = SVC_DENY; /* an action we do not know is refused */
    int type = (int)rq->type;
    if (type == EMQX__EXHOOK__V3__CLIENT_AUTHORIZE_REQUEST__AUTHORIZE_REQ_TYPE__PUBLISH ||
        type == EMQX__EXHOOK__V3__CLIENT_AUTHORIZE_REQUEST__AUTHORIZE_REQ_TYPE__SUBSCRIBE) {
        /* Fields are read in place: the evaluator and the client records
         * take (pointer, length), so the hot call copies nothing.  An
         * empty username is an anonymous client. */
        const Emqx__Exhook__V3__ClientInfo *ci = rq->clientinfo;
        exh_request r;
        exh_request_init(&r, type ? EXH_SUBSCRIBE : EXH_PUBLISH);
        r.username = ci && ci->username.len ? (const char *)ci->username.data : NULL;
        r.username_len = ci ? ci->username.len : 0;
        r.clientid = ci && ci->clientid.len ? (const char *)ci->clientid.data : "";
        r.clientid_len = ci ? ci->clientid.len : 0;
        if (ci && ci->peerhost.len)
            exh_addr_parse((const char *)ci->peerhost.data, ci->peerhost.len, &r.peerhost);
        r.topic = rq->topic.len ? (const char *)rq->topic.data : "";
        r.topic_len = rq->topic.len;
        /* qos and retain stay unknown: the hook does not carry them. */
        ans = svc_authorize(conn, &r);
    } else {
        svc_log(LOG_WARN, "authorize: unknown request type %d (refused)", type);
    }
    emqx__exhook__v3__client_authorize_request__free_unpacked(rq, NULL);
    return answer(ans, out, outlen);
}

static hook_status session(svc *s, bool connected, const uint8_t *in, size_t n, uint8_t **out,
                           size_t *outlen, const char **why)
{
    const Emqx__Exhook__V3__ClientInfo *ci;
    ProtobufCMessage *msg;
    ProtobufCBinaryData reason = {0, NULL};
    if (connected) {
        Emqx__Exhook__V3__ClientConnectedRequest *rq =
            emqx__exhook__v3__client_connected_request__unpack(NULL, n, in);
        msg = rq ? &rq->base : NULL;
        ci = rq ? rq->clientinfo : NULL;
    } else {
        Emqx__Exhook__V3__ClientDisconnectedRequest *rq =
            emqx__exhook__v3__client_disconnected_request__unpack(NULL, n, in);
        msg = rq ? &rq->base : NULL;
        ci = rq ? rq->clientinfo : NULL;
        if (rq) reason = rq->reason;
    }
    if (!msg) {
        *why = connected ? "ClientConnectedRequest: not a valid protobuf message"
                         : "ClientDisconnectedRequest: not a valid protobuf message";
        return HOOK_BAD;
    }
    client_text c;
    text why_text = {0};
    bool ok = client_text_take(ci, &c) && take(&reason, &why_text);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (ok) {
        exh_session_event ev = {.clientid = c.clientid.s ? c.clientid.s : "",
                                .username = c.username.s,
                                .peerhost = c.peerhost.s,
                                .node = c.node.s,
                                .reason = why_text.s,
                                .at = (int64_t)time(NULL),
                                .connected = connected};
        svc_session(s, &ev, c.clientid.len);
    }
    client_text_free(&c);
    free(why_text.s);
    return ok ? empty(out, outlen) : HOOK_NOMEM;
}

hook_status hook_answer(const hook_method *m, svc_conn *conn, const uint8_t *in, size_t n,
                        uint8_t **out, size_t *outlen, const char **why)
{
    *out = NULL;
    *outlen = 0;
    *why = NULL;
    switch (m->kind) {
    case HOOK_LOADED:
        svc_log(LOG_INFO, "provider loaded by a broker speaking emqx.exhook.v%d", m->version);
        return loaded(m->version, out, outlen);
    case HOOK_AUTHENTICATE:
        return authenticate(conn, in, n, out, outlen, why);
    case HOOK_AUTHORIZE:
        return authorize(conn, in, n, out, outlen, why);
    case HOOK_CONNECTED:
    case HOOK_DISCONNECTED:
        return session(svc_conn_service(conn), m->kind == HOOK_CONNECTED, in, n, out, outlen, why);
    case HOOK_EMPTY:
        break;
    }
    return empty(out, outlen);
}
