/*
 * connection.c -- a thread's store connection and evaluation context
 * (service.h: svc_conn).
 */
#include <stdint.h>
#include <stdlib.h>

#include "deadline.h"
#include "service_int.h"

/* Reopening a PostgreSQL store that failed (one back-off for all of a
 * service's connections): a failure that was quick to come (a refused
 * connection) is tried again at the next call, so recovery is seen at
 * once; one that took a while (a host that does not answer: the connect
 * waits out its deadline) is tried again only after 250 ms doubling to
 * 4 s while it keeps failing, and each call in between fails closed at
 * once instead of waiting that long too.  An SQLite file is simply opened
 * again at the next call: a lock held on it is short and local. */
enum { BACKOFF_MIN_MS = 250, BACKOFF_MAX_MS = 4000, SLOW_OPEN_MS = 50 };

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

/* Opens c's store now; a slow failure starts (or lengthens) the back-off. */
static void open_now(svc_conn *c, uint64_t now)
{
    svc *s = c->s;
    exh_error err;
    exh_error_clear(&err);
    if (!(c->store = svc_open_store(s, &err))) {
        svc_store_failed(s, &err);
        uint64_t done = svc_now_ms();
        if (done - now >= SLOW_OPEN_MS && exh_store_location_is_pg(s->cfg.db))
            svc_backoff_failed(&s->reopen, done, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    } else {
        svc_backoff_ok(&s->reopen);
    }
    c->fresh = true;
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
    c->shard = svc_metrics_shard_take(&s->metrics);
    c->forced_draw = -1;
    c->rng = (uint64_t)svc_now_ns() ^ ((uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ULL);
    if (!c->rng) c->rng = 1;
    open_now(c, svc_now_ms()); /* a fault is said at start-up */
    return c;
}

void svc_conn_free(svc_conn *c)
{
    if (!c) return;
    exh_store_close(c->store);
    exh_evalctx_free(c->ctx);
    svc_metrics_shard_give(&c->s->metrics, c->shard);
    free(c->audit_buf);
    free(c);
}

svc *svc_conn_service(const svc_conn *c)
{
    return c->s;
}

exh_store *svc_conn_store(svc_conn *c)
{
    if (c->store) return c->store;
    uint64_t now = svc_now_ms();
    if (svc_backoff_waiting(&c->s->reopen, now)) return NULL; /* the incident is already said */
    open_now(c, now);
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
