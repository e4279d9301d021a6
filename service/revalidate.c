/*
 * revalidate.c -- live store changes: when another process (exhookctl, a
 * second broker) changed the store, every verified login is checked
 * against it again (service.h: svc_revalidate).
 */
#define _GNU_SOURCE /* strndup */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "service_int.h"

typedef struct pass {
    svc_conn *c;
    const char *const *only; /* sorted: the users to check; NULL: everyone */
    size_t nonly;
    exh_store *store;
    const exh_policy *pol;
    long checked;
    bool fault;
    exh_error err; /* the fault's, said after the walk (never under the table's lock) */
    char **kick;
    size_t nkick, cap;
} pass;

static void to_kick(pass *p, const svc_client_info *ci)
{
    if (p->nkick == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        char **nk = realloc(p->kick, nc * sizeof(*nk));
        if (!nk) return; /* still revoked: denied everything until it goes */
        p->kick = nk;
        p->cap = nc;
    }
    if ((p->kick[p->nkick] = strndup(ci->cid, ci->cidlen))) p->nkick++;
}

/* ci->user is not NUL-terminated in general, but a record's name is a
 * copy ending in one (clients.c dup_bytes); a name with a NUL inside is
 * never in a notice. */
static int cmp_name(const void *key, const void *elem)
{
    return strcmp(*(const char *const *)key, *(const char *const *)elem);
}

/* Is user one of the names to check?  (Under the table's read lock.) */
static bool wanted(const char *user, size_t ulen, void *arg)
{
    (void)ulen;
    const pass *p = arg;
    return !p->only || bsearch(&user, p->only, p->nonly, sizeof(*p->only), cmp_name);
}

/* One verified login against the store as it is now: revoked if its user
 * is gone, disabled, bound to other client ids or refused by the connect
 * rules; else its groups and superuser flag are refreshed, so the next
 * check -- a delivery included -- sees them. */
static svc_visit visit(const svc_client_info *ci, svc_refresh *out, void *arg)
{
    pass *p = arg;
    if (p->fault) return SVC_VISIT_KEEP; /* decided at the next change */
    p->checked++;
    exh_user u;
    exh_error err;
    exh_status st = exh_store_get_user(p->store, ci->user, &u, &err);
    if (st == EXH_ENOTFOUND) {
        to_kick(p, ci);
        return SVC_VISIT_REVOKE;
    }
    if (st != EXH_OK) {
        p->fault = true;
        p->err = err;
        return SVC_VISIT_KEEP;
    }
    bool gone =
        u.disabled || !exh_user_may_use_clientid_cached(p->c->s->cache, &u, ci->cid, ci->cidlen);
    svc_visit what = SVC_VISIT_KEEP;
    if (!gone && u.rev != ci->rev) {
        /* The connect rules with the user's groups now (no password). */
        exh_auth_request rq = {.username = ci->user,
                               .username_len = ci->ulen,
                               .clientid = ci->cid,
                               .clientid_len = ci->cidlen,
                               .check_password = false};
        exh_auth_result r;
        if (exh_authenticate(p->store, NULL, p->pol, p->c->ctx, &rq, &r, &err) != EXH_OK) {
            exh_auth_result_clear(&r);
            exh_user_clear(&u);
            p->fault = true; /* looked at again at the next walk */
            p->err = err;
            return SVC_VISIT_KEEP;
        }
        if (r.decision != EXH_ALLOW) {
            gone = true;
        } else {
            out->superuser = r.superuser;
            out->groups = r.groups;
            out->ngroups = r.ngroups;
            out->rev = u.rev;
            r.groups = NULL;
            r.ngroups = 0;
            what = SVC_VISIT_REFRESH;
        }
        exh_auth_result_clear(&r);
    }
    exh_user_clear(&u);
    if (gone) {
        to_kick(p, ci);
        return SVC_VISIT_REVOKE;
    }
    return what;
}

long svc_revalidate_users(svc_conn *c, const char *const *only, size_t nonly,
                          void (*kick)(const char *cid, void *arg), void *arg)
{
    svc *s = c->s;
    exh_store *store = svc_conn_store(c);
    if (!store) return -1;
    svc_policy *hp = svc_policy_get(s->policy);
    pass p = {
        .c = c, .only = only, .nonly = only ? nonly : 0, .store = store, .pol = svc_policy_of(hp)};
    svc_clients_each_known(s->clients, wanted, visit, &p);
    svc_policy_put(hp);
    if (p.fault) svc_conn_drop_store(c, &p.err);
    /* Kicking may call back into the table (a disconnect): after the walk. */
    for (size_t i = 0; i < p.nkick; i++) {
        if (kick) {
            svc_log(LOG_INFO,
                    "client %s disconnected: its user changed in the store and may no longer "
                    "log in",
                    p.kick[i]);
            kick(p.kick[i], arg);
        } else {
            svc_log(LOG_INFO,
                    "client %s: its user changed in the store and may no longer log in: its "
                    "checks are denied from now on",
                    p.kick[i]);
        }
        free(p.kick[i]);
    }
    free(p.kick);
    if (p.checked) /* the first walk, at start, has nobody to check: nothing to say */
        svc_log(LOG_DEBUG, "store changed: %ld clients checked, %zu kicked", p.checked, p.nkick);
    return p.fault ? -1 : p.checked ? p.checked : 1;
}

long svc_revalidate(svc_conn *c, void (*kick)(const char *cid, void *arg), void *arg)
{
    svc *s = c->s;
    exh_store *store = svc_conn_store(c);
    if (!store) return -1;
    exh_error err;
    int64_t v;
    if (exh_store_data_version(store, &v, &err) != EXH_OK) {
        svc_conn_drop_store(c, &err);
        return -1;
    }
    svc_store_ok(s);
    /* A SQLite data_version from another connection (the store reopened)
     * means nothing here (PostgreSQL's is one counter for all: a reopen
     * costs one walk too many), and a walk a fault cut short must run
     * again. */
    bool changed = !s->have_version || v != s->data_version || s->revalidate_again || c->fresh;
    s->data_version = v;
    s->have_version = true;
    c->fresh = false;
    if (!changed) return 0;
    long r = svc_revalidate_users(c, NULL, 0, kick, arg);
    s->revalidate_again = r < 0;
    return r;
}
