/*
 * eval.h -- answering one request against a compiled policy.
 *
 * exh_eval() is the hot path: it allocates nothing, takes no lock and only
 * reads the policy.  (One exception: on a machine where PCRE2 cannot JIT,
 * its interpreter allocates backtracking memory on a context's first use
 * and when a pattern needs more.)  Per-thread scratch (PCRE2 match data, capture slots,
 * topic level offsets) lives in an exh_evalctx made once per thread.
 *
 * Unknown facts fail closed.  When the front end cannot know the QoS, the
 * retain flag or the peer address, a condition or option that needs it is
 * "unknown": an `allow` rule with it does not match, a `deny` rule with it
 * does (if everything else holds).  A regex that hits PCRE2's match limit
 * is treated the same way.
 */
#ifndef EXHOOK_EVAL_H
#define EXHOOK_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/addr.h"
#include "exhook/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef struct exh_str {
    const char *ptr;
    size_t len;
} exh_str;

typedef struct exh_request {
    exh_action action;    /* exactly one of EXH_PUBLISH/SUBSCRIBE/CONNECT */
    const char *username; /* NULL = anonymous (no username given) */
    size_t username_len;
    const char *clientid; /* NULL is taken as "" */
    size_t clientid_len;
    exh_addr peerhost;     /* family 0 = unknown */
    const exh_str *groups; /* the user's groups (from the store or the request) */
    size_t ngroups;
    bool superuser;
    const char *topic; /* publish: topic name; subscribe: filter (may be $share/...) */
    size_t topic_len;
    int qos;    /* 0..2, or -1 = unknown */
    int retain; /* 0 or 1, or -1 = unknown */
    /* A subscription's shared prefix is the front end's to say: EMQX has
     * $share/<group>/ and $queue/, Mosquitto only $share/<group>/ -- there
     * `$queue/a/#` is the literal filter it subscribes to, and is checked
     * as that, not as `a/#`.  false (exh_request_init): both are prefixes. */
    bool queue_is_topic;
    /* A subscribe request that is really a delivery (Mosquitto's
     * MOSQ_ACL_READ): a message's topic on a subscription granted earlier,
     * checked as a filter.  A rule's `qos` option constrains the QoS a
     * subscription asks for, which was checked when it was granted, so it
     * does not apply here (the message's own QoS says nothing about it). */
    bool delivery;
} exh_request;

/* Why the decision is what it is. */
typedef enum exh_basis {
    EXH_BY_RULE,        /* result.rule decided */
    EXH_BY_DEFAULT,     /* no rule matched; the policy's default decided */
    EXH_BY_SUPERUSER,   /* superusers may publish and subscribe to anything */
    EXH_BY_CREDENTIALS, /* connect: no connect rule matched; the credential check stands */
    EXH_BY_ANONYMOUS,   /* connect: anonymous and no `allow connect ... anonymous` rule */
    EXH_BY_INVALID,     /* the request itself is invalid (see result.reason) */
} exh_basis;

typedef struct exh_result {
    exh_decision decision;
    exh_basis basis;
    uint32_t rule;      /* 0-based rule index when basis == EXH_BY_RULE */
    const char *reason; /* static text for EXH_BY_INVALID, else NULL */
} exh_result;

typedef struct exh_evalctx exh_evalctx;

/* Make scratch for one evaluating thread (usable with any policy). */
exh_evalctx *exh_evalctx_new(void);
void exh_evalctx_free(exh_evalctx *ctx);

/* Decide one request.  Returns result->decision. */
exh_decision exh_eval(const exh_policy *p, const exh_request *req, exh_evalctx *ctx,
                      exh_result *result);

/* Initialise a request to "anonymous, unknown everything" for action. */
void exh_request_init(exh_request *req, exh_action action);

/* A short text for a basis: "rule", "default", "superuser", ... */
const char *exh_basis_str(exh_basis b);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
