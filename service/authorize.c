/*
 * authorize.c -- a publish or subscribe: the client's record (what its
 * login granted), or the store for a client never seen, then the policy.
 * Each answer is counted (metrics.h) and, when it is a deny or a sampled
 * allow, written to the audit log (audit.h) where the groups it used are
 * still at hand.
 */
#define _GNU_SOURCE /* strndup */
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "service_int.h"

static svc_answer answer_of(exh_decision d)
{
    return d == EXH_IGNORE ? SVC_IGNORE : d == EXH_ALLOW ? SVC_ALLOW : SVC_DENY;
}

typedef struct check {
    svc_conn *c;
    exh_request *r;
    const char *peer_text; /* parsed only if neither r nor the record has an address */
    bool sampled;          /* an allow is written to the audit log */
    bool invalid;          /* the request was invalid (counted apart) */
} check;

/* The policy answered: noted while r still holds the groups it used. */
static void decided(check *k, const exh_policy *p, uint32_t gen, const exh_result *res,
                    svc_answer a)
{
    k->invalid = res->basis == EXH_BY_INVALID;
    if (k->c->s->audit && (a != SVC_ALLOW || k->sampled)) {
        svc_audit_acl d = {.answer = a,
                           .res = res,
                           .policy = p,
                           .gen = gen,
                           .sampled = k->sampled && a == SVC_ALLOW};
        svc_audit_acl_record(k->c, k->r, &d);
    }
}

/* Answered without the policy (no login, a store fault): why, in words. */
static svc_answer answered(check *k, svc_answer a, const char *why)
{
    if (k->c->s->audit && (a != SVC_ALLOW || k->sampled)) {
        svc_audit_acl d = {.answer = a, .rule = why, .gen = svc_live_policy_gen(k->c->s->policy)};
        svc_audit_acl_record(k->c, k->r, &d);
    }
    return a;
}

static svc_answer eval(check *k)
{
    exh_result res;
    svc_policy *hp = svc_policy_get(k->c->s->policy);
    exh_eval(svc_policy_of(hp), k->r, k->c->ctx, &res);
    svc_answer a = answer_of(res.decision);
    decided(k, svc_policy_of(hp), svc_policy_gen(hp), &res, a);
    svc_policy_put(hp);
    return a;
}

enum { ASK_STORE = -1 };

static void peer_from_text(check *k)
{
    if (!k->r->peerhost.family && k->peer_text)
        exh_addr_parse(k->peer_text, strlen(k->peer_text), &k->r->peerhost);
}

/* Under the client table's read lock (clients.h): decide from the record,
 * or ASK_STORE. */
static int from_record(const svc_client_view *v, void *arg)
{
    check *k = arg;
    exh_request *r = k->r;
    switch (v->state) {
    case SVC_CLIENT_KNOWN:
    case SVC_CLIENT_NOOPINION: { /* NOOPINION: the policy alone, no groups, not a superuser */
        /* The way svc_authorize_cached's miss took for this check, if it
         * did (the decision cache is looked up there only). */
        svc_decision *slot = v->slot;
        uint32_t gen = slot ? svc_live_policy_gen(k->c->s->policy) : 0;
        if (!r->peerhost.family && v->peer) r->peerhost = *v->peer;
        peer_from_text(k);
        r->superuser = v->superuser;
        r->groups = v->groups;
        r->ngroups = v->ngroups;
        exh_result res;
        svc_policy *hp = svc_policy_get(k->c->s->policy);
        exh_eval(svc_policy_of(hp), r, k->c->ctx, &res);
        uint32_t used = svc_policy_gen(hp);
        int a = (int)answer_of(res.decision);
        decided(k, svc_policy_of(hp), used, &res, (svc_answer)a);
        svc_policy_put(hp);
        r->superuser = false;
        r->groups = NULL; /* the record's: valid only under the lock */
        r->ngroups = 0;
        /* Not if a reload came in between; not an invalid request (it is
         * counted apart). */
        if (slot && used == gen && !k->invalid) svc_decision_fill(slot, gen, a, &res);
        return a;
    }
    case SVC_CLIENT_UNVERIFIED:
        return (int)answered(k, svc_failed(k->c->s), "unverified");
    case SVC_CLIENT_REFUSED:    /* refused, unfinished or revoked: the broker let it in anyway */
    case SVC_CLIENT_OTHER_USER: /* a login this process never saw for this name */
        return (int)answered(k, SVC_DENY, "no login");
    case SVC_CLIENT_NONE:
        break;
    }
    /* No stored name holds a NUL: such a user has no record and no groups
     * (looking it up would cut the name at the NUL). */
    peer_from_text(k);
    if (!r->username || memchr(r->username, '\0', r->username_len)) return (int)eval(k);
    return ASK_STORE;
}

/* No record: not seen since start, or its verified login disconnected (a
 * takeover's old connection, a will, a queued message): ask the store. */
static svc_answer from_store(check *k, const char *key, size_t klen)
{
    svc_conn *c = k->c;
    exh_request *r = k->r;
    svc *s = c->s;
    exh_user u = {0};
    exh_error err;
    exh_error_clear(&err);
    exh_store *store = svc_conn_store(c);
    if (!store) return answered(k, svc_failed(s), "store fault");
    char *name = strndup(r->username, r->username_len);
    exh_status st = name ? exh_store_get_user(store, name, &u, &err) : EXH_ENOMEM;
    free(name);
    if (st == EXH_OK || st == EXH_ENOTFOUND) svc_store_ok(s);
    /* This login was not verified here (the broker let it in some other
     * way, or before a restart): a user who could not log in now -- one
     * disabled, or bound to other client ids -- gets no rights from the
     * store. */
    if (st == EXH_OK && (u.disabled || !exh_user_may_use_clientid_cached(s->cache, &u, r->clientid,
                                                                         r->clientid_len))) {
        exh_user_clear(&u);
        st = EXH_ENOTFOUND;
    }
    exh_str *g = NULL;
    if (st == EXH_OK && u.ngroups && !(g = malloc(u.ngroups * sizeof(*g)))) st = EXH_ENOMEM;
    svc_answer a;
    if (st == EXH_OK) {
        for (size_t i = 0; i < u.ngroups; i++)
            g[i] = (exh_str){u.groups[i], strlen(u.groups[i])};
        r->superuser = u.superuser;
        r->groups = g;
        r->ngroups = u.ngroups;
        a = eval(k);
        r->groups = NULL;
        r->ngroups = 0;
        r->superuser = false;
        svc_clients_remember(s->clients, key, klen, r->username, r->username_len, u.superuser,
                             u.groups, u.ngroups);
        u.groups = NULL; /* now the record's */
        u.ngroups = 0;
    } else if (st == EXH_ENOTFOUND) {
        a = eval(k); /* no groups, not a superuser */
    } else if (st == EXH_ESTORE) {
        svc_conn_drop_store(c, &err);
        a = answered(k, svc_failed(s), "store fault");
    } else {
        a = answered(k, SVC_DENY, "out of memory"); /* no store fault for failed_action to excuse */
    }
    free(g);
    exh_user_clear(&u);
    return a;
}

/* The counts are indexed with the action and the answer as they are
 * (metrics.h): no branch on the decision cache's hit path. */
_Static_assert((int)SVC_ACL_PUBLISH == (int)EXH_PUBLISH &&
                   (int)SVC_ACL_SUBSCRIBE == (int)EXH_SUBSCRIBE && SVC_ACL_DELIVER == 0,
               "ACL kinds are exh_action's values");
_Static_assert((int)SVC_OUT_DENY == (int)SVC_DENY && (int)SVC_OUT_ALLOW == (int)SVC_ALLOW &&
                   (int)SVC_OUT_IGNORE == (int)SVC_IGNORE,
               "ACL outcomes are svc_answer's values");

static int kind_of(exh_action action, bool delivery)
{
    /* delivery ? SVC_ACL_DELIVER : action, without a branch; two bits, so
     * never outside the shard's table whatever action holds (metrics.h) */
    return (int)action & 3 & -(int)!delivery;
}

svc_answer svc_authorize_key(svc_conn *c, const char *key, size_t klen, exh_request *r,
                             const char *peer_text)
{
    svc_metrics_shard *sh = c->shard;
    int64_t t0 = sh && svc_metrics_time_this(sh) ? svc_now_ns() : 0;
    r->superuser = false;
    r->groups = NULL;
    r->ngroups = 0;
    if (!key) {
        key = r->clientid ? r->clientid : "";
        klen = r->clientid ? r->clientid_len : 0;
    }
    check k = {c, r, peer_text, false, false};
    if (c->s->audit_samples) {
        k.sampled = c->forced_draw >= 0 ? c->forced_draw == 1 : svc_audit_draw(c);
        c->forced_draw = -1;
    }
    int a =
        svc_clients_with(c->s->clients, key, klen, r->username, r->username_len, from_record, &k);
    if (a == ASK_STORE) a = (int)from_store(&k, key, klen);
    if (sh) {
        svc_metrics_bump(
            &sh->acl[kind_of(r->action, r->delivery)][k.invalid ? SVC_OUT_INVALID : a]);
        if (t0) svc_metrics_acl_latency(sh, svc_now_ns() - t0);
    }
    return (svc_answer)a;
}

/* A deny (or ignore) the decision cache kept, written to the audit log as
 * the full path writes it (from_record), with the rule the way keeps: a
 * device that keeps publishing where it may not costs a record per try,
 * not an evaluation as well.  (s->log_kept when the audit log is on.) */
void svc_authorize_log_kept(const svc_client_view *v, const svc_decision *d, const svc_probe *q,
                            void *arg)
{
    svc_conn *c = arg;
    exh_request r = {.action = q->action,
                     .username = q->username,
                     .username_len = q->username ? strlen(q->username) : 0,
                     .clientid = v->cid ? v->cid : "",
                     .clientid_len = v->cid ? v->cidlen : 0,
                     .topic = q->topic,
                     .topic_len = strlen(q->topic),
                     .qos = q->qos,
                     .retain = q->retain,
                     .delivery = q->delivery,
                     .superuser = v->superuser,
                     .groups = v->groups,
                     .ngroups = v->ngroups};
    if (v->peer) r.peerhost = *v->peer;
    exh_result res = {.decision = d->answer == SVC_IGNORE ? EXH_IGNORE : EXH_DENY,
                      .basis = (exh_basis)d->basis,
                      .rule = d->rule};
    /* The way's rule index is the policy's of its generation: another
     * policy's rules are not named (one thread reloads and decides, so
     * it is the current one). */
    uint32_t gen = (uint32_t)d->what;
    svc_policy *hp = svc_policy_get(c->s->policy);
    svc_audit_acl rec = {.answer = d->answer == SVC_IGNORE ? SVC_IGNORE : SVC_DENY,
                         .res = &res,
                         .policy = svc_policy_gen(hp) == gen ? svc_policy_of(hp) : NULL,
                         .gen = gen};
    svc_audit_acl_record(c, &r, &rec);
    svc_policy_put(hp);
}

/* The decision cache's answer for q (clients.h), kept denies and ignores
 * logged when the audit log is on. */
static int cached(svc_conn *c, const char *key, size_t klen, const svc_probe *q)
{
    svc *s = c->s;
    return svc_clients_cached(s->clients, key, klen, svc_live_policy_gen(s->policy), q, s->log_kept,
                              c);
}

/* One check in SVC_ACL_TIME_EVERY (metrics on): timed, apart from the
 * path every other hit takes. */
static __attribute__((noinline)) int cached_timed(svc_conn *c, const char *key, size_t klen,
                                                  const svc_probe *q)
{
    svc_metrics_shard *sh = c->shard;
    sh->tick = SVC_ACL_TIME_EVERY;
    int64_t t0 = svc_now_ns();
    int a = cached(c, key, klen, q);
    if (a >= 0) {
        svc_metrics_bump(&sh->acl[kind_of(q->action, q->delivery)][a]);
        svc_metrics_acl_latency(sh, svc_now_ns() - t0);
    } else {
        sh->tick = 1; /* the full decision that follows is timed */
    }
    return a;
}

int svc_authorize_cached(svc_conn *c, const char *key, size_t klen, const svc_probe *q)
{
    svc *s = c->s;
    /* An allow drawn for the audit log is decided in full (the cache
     * keeps how denies were decided only).  A draw that comes out "no"
     * stays in forced_draw after a hit: svc_authorize_key reads it only
     * after the miss of the next svc_authorize_cached, which draws again. */
    if (s->audit_samples && (c->forced_draw = svc_audit_draw(c))) return -1;
    svc_metrics_shard *sh = c->shard;
    if (!sh) return cached(c, key, klen, q);
    if (!--sh->tick) return cached_timed(c, key, klen, q);
    int a = cached(c, key, klen, q);
    if (a >= 0) svc_metrics_bump(&sh->acl[kind_of(q->action, q->delivery)][a]);
    return a;
}

svc_answer svc_authorize(svc_conn *c, exh_request *r)
{
    return svc_authorize_key(c, NULL, 0, r, NULL);
}
