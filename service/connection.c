/*
 * connection.c -- a thread's store connection and evaluation context
 * (service.h: svc_conn).
 */
#include <stdlib.h>

#include "service_int.h"

exh_store *svc_open_store(svc *s, exh_error *err)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    o.hash = s->cfg.hash;
    o.cache_kib = 512; /* one connection per thread: keep their caches small */
    o.busy_timeout_ms = s->cfg.busy_timeout_ms;
    o.upgrade_on_login = s->cfg.upgrade_hashes;
    exh_store *st = NULL;
    if (exh_store_open(s->cfg.db, &o, &st, err) != EXH_OK) return NULL;
    return st;
}

svc_conn *svc_conn_new(svc *s)
{
    svc_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->s = s;
    if (!(c->ctx = exh_evalctx_new())) {
        free(c);
        return NULL;
    }
    exh_error err;
    if (!(c->store = svc_open_store(s, &err))) svc_store_failed(s, &err); /* said at start-up */
    c->fresh = true;
    return c;
}

void svc_conn_free(svc_conn *c)
{
    if (!c) return;
    exh_store_close(c->store);
    exh_evalctx_free(c->ctx);
    free(c);
}

svc *svc_conn_service(const svc_conn *c)
{
    return c->s;
}

exh_store *svc_conn_store(svc_conn *c)
{
    if (c->store) return c->store;
    exh_error err;
    exh_error_clear(&err);
    if (!(c->store = svc_open_store(c->s, &err)))
        svc_store_failed(c->s, &err);
    else
        c->fresh = true;
    return c->store;
}

void svc_conn_drop_store(svc_conn *c, const exh_error *err)
{
    svc_store_failed(c->s, err);
    exh_store_close(c->store);
    c->store = NULL;
}

svc_answer svc_failed(const svc *s)
{
    return s->cfg.failed_ignore ? SVC_IGNORE : SVC_DENY;
}
