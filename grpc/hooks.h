/*
 * hooks.h -- EMQX's HookProvider RPCs, wire-independent: one request's
 * protobuf bytes in, the response's bytes out.  exhook_grpc.c carries them
 * over gRPC; tests/fuzz/fuzz_hooks.c feeds them garbage.
 *
 * One decoder serves the three wire versions (emqx.exhook.v1, v2, v3):
 * every field read here has the same number and type in all three, so the
 * v3 messages (the newest, a superset) decode what older brokers send, and
 * fields a version lacks arrive empty.  What differs is named per version
 * below: the authorize RPC (OnClientCheckAcl in v1), the session-takeover
 * RPC, and the hook names OnProviderLoaded returns.
 */
#ifndef EXHOOK_GRPC_HOOKS_H
#define EXHOOK_GRPC_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "service.h"

typedef enum hook_kind {
    HOOK_LOADED,       /* OnProviderLoaded: the hooks served */
    HOOK_AUTHENTICATE, /* ValuedResponse: STOP_AND_RETURN bool, or IGNORE */
    HOOK_AUTHORIZE,    /* ditto */
    HOOK_CONNECTED,    /* session history; EmptySuccess */
    HOOK_DISCONNECTED, /* ditto */
    HOOK_EMPTY,        /* every other RPC: EmptySuccess */
} hook_kind;

typedef struct hook_method {
    int version;      /* 1, 2 or 3: emqx.exhook.v<version> */
    const char *path; /* "/emqx.exhook.v2.HookProvider/OnClientAuthorize" */
    hook_kind kind;
} hook_method;

extern const hook_method hook_methods[];
extern const size_t hook_nmethods;

typedef enum hook_status {
    HOOK_OK,  /* *out (malloc'd, may be empty) is the response */
    HOOK_BAD, /* the request could not be decoded: *why says why */
    HOOK_NOMEM,
} hook_status;

/* Answer one call.  conn: this thread's store connection (svc_conn_new). */
hook_status hook_answer(const hook_method *m, svc_conn *conn, const uint8_t *in, size_t n,
                        uint8_t **out, size_t *outlen, const char **why);

/* OnClientAuthenticate in steps, for a server that answers at a deadline
 * (decide.h's svc_login_*): decode (the client id's record then grants
 * nothing until the login ends), check, and end only when the check's own
 * answer is the one sent. */
typedef struct hook_login hook_login;
hook_status hook_login_decode(svc *s, const uint8_t *in, size_t n, hook_login **out,
                              const char **why);
svc_answer hook_login_check(hook_login *l, svc_conn *conn, svc_grant *g);
/* The check's answer was sent (before hook_login_end) / the login was
 * refused at its deadline: counted and audited (svc_login_answered). */
void hook_login_answered(hook_login *l, svc_conn *conn, const svc_grant *g, svc_answer a,
                         int64_t started_ns);
void hook_login_refused_late(hook_login *l, int64_t started_ns);
void hook_login_end(hook_login *l, svc_grant *g);
void hook_login_free(hook_login *l);
/* A ValuedResponse for a login or ACL answer. */
hook_status hook_encode_answer(svc_answer a, uint8_t **out, size_t *outlen);

#endif
