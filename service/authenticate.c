/*
 * authenticate.c -- a login: the store, the password, the connect rules
 * (exh_authenticate), what the answer is under the settings, and what the
 * client's record keeps for its ACL checks.
 */
#include <stdio.h>
#include <string.h>

#include "deadline.h"
#include "log.h"
#include "service_int.h"

uint64_t svc_login_begin(svc *s, const char *key, size_t klen, const exh_auth_request *rq)
{
    if (!key) return 0;
    return svc_clients_begin(s->clients, key, klen, rq->clientid, rq->clientid_len,
                             rq->peerhost.family ? &rq->peerhost : NULL, rq->username,
                             rq->username_len);
}

void svc_login_end(svc *s, const char *key, size_t klen, const exh_auth_request *rq, uint64_t gen,
                   svc_grant *g)
{
    if (!key) {
        svc_grant_clear(g);
        return;
    }
    bool known = g->state == SVC_CLIENT_KNOWN;
    uint64_t seq = g->notice_seq;
    svc_clients_end(s->clients, key, klen, gen, rq->clientid, rq->clientid_len,
                    rq->peerhost.family ? &rq->peerhost : NULL, rq->username, rq->username_len, g);
    /* A notice heard while this login was being checked (its store read,
     * its hash) found no finished login to check: its user is checked
     * again at the next step, so what it read cannot outlive the change. */
    if (known && rq->username && atomic_load(&s->notice_seq) != seq)
        svc_watch_recheck(s, rq->username, rq->username_len);
}

void svc_login_unreadable(svc *s, const char *key, size_t len)
{
    /* A name no client can have (no stored or MQTT username holds a NUL):
     * the record only makes the key "seen", so that other names on it are
     * denied, and is never ended. */
    svc_clients_begin(s->clients, key, len, key, len, NULL, "\0unreadable login", 17);
}

/* A login the store could not check.  With failed_action = ignore the
 * broker may let it in: its ACL checks then get no opinion too, rather
 * than the stored user's groups and superuser flag once the store is back
 * (the password was never verified). */
static svc_answer failed_login(svc *s, svc_grant *g)
{
    g->state = s->cfg.failed_ignore ? SVC_CLIENT_UNVERIFIED : SVC_CLIENT_REFUSED;
    return svc_failed(s);
}

static bool hashed(const exh_auth_result *r)
{
    return !r->from_digest && (r->reason == EXH_AUTH_OK || r->reason == EXH_AUTH_BAD_PASSWORD ||
                               r->reason == EXH_AUTH_UNKNOWN_USER);
}

/* The credential check could not be made.  A store fault is what
 * failed_action excuses; anything else (out of memory, no store, the hash
 * library failed) is not, and a login never checked must not get in. */
static bool unchecked(exh_auth_reason r)
{
    return r == EXH_AUTH_STORE_ERROR || r == EXH_AUTH_NO_MEMORY || r == EXH_AUTH_NO_STORE ||
           r == EXH_AUTH_HASH_ERROR;
}

static svc_answer not_checked(svc_conn *c, const exh_auth_request *rq, exh_auth_reason reason,
                              const exh_error *err, svc_grant *g)
{
    if (reason == EXH_AUTH_STORE_ERROR) {
        svc_conn_drop_store(c, err);
        return failed_login(c->s, g);
    }
    svc_log(LOG_ERROR, "authenticate %.*s: the password could not be checked (%s%s%s): refused",
            (int)rq->username_len, rq->username ? rq->username : "", exh_auth_reason_str(reason),
            err->message[0] ? ": " : "", err->message);
    return SVC_DENY;
}

/* For the audit log: what decided, as the record names it. */
static void note_rule(svc_grant *g, const exh_policy *p, uint32_t gen, const exh_auth_result *r)
{
    g->gen = gen;
    const exh_rule_info *ri =
        r->rules_ran && r->rule.basis == EXH_BY_RULE ? exh_policy_rule(p, r->rule.rule) : NULL;
    if (ri)
        snprintf(g->rule, sizeof(g->rule), "%s:%u", ri->file, ri->line);
    else
        snprintf(g->rule, sizeof(g->rule), "%s",
                 r->rules_ran ? exh_basis_str(r->rule.basis) : "credentials");
}

static void count_hashing(svc *s, const svc_grant *g)
{
    svc_metrics *m = &s->metrics;
    if (!m->on) return;
    if (g->hashed) atomic_fetch_add_explicit(&m->hashes, 1, memory_order_relaxed);
    if (g->reason == EXH_AUTH_OK_CACHED)
        atomic_fetch_add_explicit(&m->cache_hits, 1, memory_order_relaxed);
    else if (g->hashed && (g->reason == EXH_AUTH_OK || g->reason == EXH_AUTH_BAD_PASSWORD))
        atomic_fetch_add_explicit(&m->cache_misses, 1, memory_order_relaxed);
}

static svc_login_why why_of(exh_auth_reason r)
{
    switch (r) {
    case EXH_AUTH_OK:
        return SVC_WHY_OK;
    case EXH_AUTH_OK_CACHED:
        return SVC_WHY_OK_CACHED;
    case EXH_AUTH_ANONYMOUS:
    case EXH_AUTH_UNCHECKED:
        return SVC_WHY_ANONYMOUS;
    case EXH_AUTH_UNKNOWN_USER:
        return SVC_WHY_UNKNOWN_USER;
    case EXH_AUTH_DISABLED:
        return SVC_WHY_DISABLED;
    case EXH_AUTH_CLIENTID_MISMATCH:
        return SVC_WHY_CLIENTID_MISMATCH;
    case EXH_AUTH_BAD_PASSWORD:
        return SVC_WHY_WRONG_PASSWORD;
    case EXH_AUTH_NO_PASSWORD:
        return SVC_WHY_NO_PASSWORD;
    case EXH_AUTH_BAD_HASH:
        return SVC_WHY_BAD_HASH;
    case EXH_AUTH_STORE_ERROR:
    case EXH_AUTH_NO_STORE:
        return SVC_WHY_STORE_FAULT;
    case EXH_AUTH_THROTTLED:
        return SVC_WHY_THROTTLED;
    case EXH_AUTH_NO_MEMORY:
        return SVC_WHY_OUT_OF_MEMORY;
    case EXH_AUTH_HASH_ERROR:
        return SVC_WHY_HASH_ERROR;
    case EXH_AUTH_LOCKED_OUT:
        return SVC_WHY_LOCKED_OUT;
    }
    return SVC_WHY_HASH_ERROR;
}

void svc_login_answered(svc *s, svc_conn *c, const exh_auth_request *rq, const svc_grant *g,
                        svc_answer a, int64_t started_ns)
{
    svc_login_why why = why_of(g->reason);
    svc_metrics_login(&s->metrics, (int)a, why, started_ns ? svc_now_ns() - started_ns : -1);
    if (s->audit) svc_audit_login(s, c, rq, g, (int)a, svc_login_why_str(why));
}

void svc_login_refused_late(svc *s, const exh_auth_request *rq, int64_t started_ns)
{
    svc_metrics_login(&s->metrics, SVC_DENY, SVC_WHY_DEADLINE,
                      started_ns ? svc_now_ns() - started_ns : -1);
    if (s->audit) svc_audit_login(s, NULL, rq, NULL, SVC_DENY, "deadline");
}

svc_answer svc_login_check(svc_conn *c, const exh_auth_request *rq, svc_grant *g)
{
    svc *s = c->s;
    *g = (svc_grant){.state = SVC_CLIENT_REFUSED, .notice_seq = atomic_load(&s->notice_seq)};
    exh_store *store = svc_conn_store(c);
    if (!store) {
        g->reason = EXH_AUTH_STORE_ERROR; /* not "verified": no caller may take it as a success */
        return failed_login(s, g);
    }
    exh_error err;
    exh_error_clear(&err);
    /* Lock-outs (lockout.c): a locked name or address is refused before
     * any hash is spent. */
    svc_lockout lk;
    if (svc_lockout_check(s, store, rq, &lk, &err) != EXH_OK) {
        g->reason = EXH_AUTH_STORE_ERROR;
        return not_checked(c, rq, g->reason, &err, g);
    }
    if (lk.locked) {
        g->reason = EXH_AUTH_LOCKED_OUT;
        return SVC_DENY; /* never "no opinion": that would tell the name is unknown */
    }
    exh_auth_result r;
    svc_policy *hp = svc_policy_get(s->policy);
    exh_authenticate(store, s->cache, svc_policy_of(hp), c->ctx, rq, &r, &err);
    if (s->audit) note_rule(g, svc_policy_of(hp), svc_policy_gen(hp), &r);
    svc_policy_put(hp);
    g->reason = r.reason;
    g->hashed = hashed(&r);
    g->from_digest = r.from_digest;
    count_hashing(s, g);
    if (unchecked(r.reason)) {
        exh_auth_result_clear(&r);
        return not_checked(c, rq, r.reason, &err, g);
    }
    /* Lock-outs: a failure counted, a success resetting the user's count.
     * A store that takes reads but no writes (full, write-locked) does not
     * change the answer: the credential check was made; a wrong password is
     * refused anyway and a right one must not be.  It is an incident of its
     * own, said loudly: while it lasts, guesses are not counted. */
    exh_error werr;
    exh_error_clear(&werr);
    if (svc_lockout_count(s, store, &lk, r.reason, &werr) != EXH_OK)
        svc_lockout_write_failed(s, &werr);
    else if (lk.on)
        svc_lockout_write_ok(s);
    svc_store_ok(s);
    if (r.reason == EXH_AUTH_BAD_HASH)
        svc_log(LOG_WARN, "user '%.*s' has an unreadable password hash (refused)",
                (int)rq->username_len, rq->username);
    svc_log(LOG_DEBUG, "connect %.*s (%.*s): %s%s", (int)rq->clientid_len,
            rq->clientid ? rq->clientid : "", rq->username ? (int)rq->username_len : 9,
            rq->username ? rq->username : "anonymous", exh_auth_reason_str(r.reason),
            r.from_digest ? " (this connection's earlier login)" : "");
    svc_answer a;
    if (r.reason == EXH_AUTH_THROTTLED) {
        a = SVC_DENY; /* never "no opinion": that would tell the name is unknown */
    } else if (r.reason == EXH_AUTH_UNKNOWN_USER && s->cfg.unknown_ignore) {
        /* Another source may let it in; the store has no rights for it. */
        a = SVC_IGNORE;
        g->state = SVC_CLIENT_NOOPINION;
    } else if (r.decision == EXH_ALLOW) {
        a = SVC_ALLOW;
        g->state = SVC_CLIENT_KNOWN;
        g->superuser = r.superuser;
        g->groups = r.groups;
        g->ngroups = r.ngroups;
        g->digest = r.digest;
        r.groups = NULL; /* the grant's now */
        r.ngroups = 0;
    } else {
        a = SVC_DENY;
    }
    exh_auth_result_clear(&r);
    return a;
}

svc_answer svc_authenticate(svc_conn *c, const exh_auth_request *rq)
{
    svc *s = c->s;
    int64_t t0 = svc_now_ns();
    uint64_t gen = svc_login_begin(s, rq->clientid, rq->clientid_len, rq);
    svc_grant g;
    svc_answer a = svc_login_check(c, rq, &g);
    svc_login_answered(s, c, rq, &g, a, t0);
    svc_login_end(s, rq->clientid, rq->clientid_len, rq, gen, &g);
    return a;
}
