/*
 * exhook_mosquitto.so -- the engine inside Mosquitto 2.0 (plugin API v5).
 *
 * Thin glue, as Mosquitto's own dynamic-security plugin is: each broker
 * event becomes one library call and its answer one return code.
 *
 *   MOSQ_EVT_BASIC_AUTH  -> exh_authenticate (store, cache, connect rules)
 *   MOSQ_EVT_ACL_CHECK   -> exh_eval: WRITE = publish (qos, retain known),
 *                           SUBSCRIBE = subscribe; READ allowed (the
 *                           subscription was checked) unless read_check;
 *                           UNSUBSCRIBE allowed
 *   MOSQ_EVT_RELOAD      -> recompile the policy; a failure keeps the old one
 *   MOSQ_EVT_DISCONNECT  -> forget the client, record the session
 *
 * Options (mosquitto.conf, after `plugin .../exhook_mosquitto.so`):
 *   plugin_opt_database (or plugin_opt_db where the broker allows a
 *   two-letter name), plugin_opt_policy, plugin_opt_unknown_user deny|ignore,
 *   plugin_opt_failed_action deny|ignore, plugin_opt_cache_ttl SECONDS,
 *   plugin_opt_cache_max N, plugin_opt_read_check true|false,
 *   plugin_opt_decision_cache true|false (a connection's last decisions),
 *   plugin_opt_busy_timeout MS (a locked store: wait, then fail; 5000),
 *   plugin_opt_argon2_m_kib, plugin_opt_argon2_t, plugin_opt_argon2_p.
 *
 * Mosquitto calls plugins on its one thread, so there are no locks here;
 * a cold argon2id check (~40 ms at the default cost) stalls the broker for
 * that long, which the credential cache avoids for reconnecting clients.
 * Answers are only ever SUCCESS, ACL_DENIED / AUTH or PLUGIN_DEFER: an
 * internal error fails closed (or defers, per failed_action) and never
 * returns a code that would make the broker drop a client by accident.
 */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exhook/auth.h"
#include "exhook/eval.h"
#include "exhook/policy.h"

/* What a connection's login gave it.  Every connection logs in through
 * MOSQ_EVT_BASIC_AUTH (anonymous ones too), and each outcome is kept, so a
 * connection let in by another plugin or by the broker after this one
 * refused or deferred it never gets the stored user's rights. */
enum {
    C_KNOWN,      /* verified here: its groups and superuser flag */
    C_NOOPINION,  /* an unknown name, deferred (unknown_user ignore): the policy alone */
    C_UNVERIFIED, /* deferred because the store failed (failed_action ignore): defer */
    C_REFUSED,    /* refused here: nothing */
};

/* A connection's last decisions, so that a device publishing to the same
 * topics, and a subscriber receiving them, costs a compare instead of an
 * evaluation per message.  What a decision depends on is fixed for a
 * record: its identity (client id, username, address: a new login makes a
 * new record), its groups and superuser flag (cleared when a store change
 * refreshes them), the policy (each entry carries the generation it was
 * decided under; a reload moves it on) and the request (the topic, compared
 * whole, the access, and for a publish its QoS and retain flag).  Topics
 * longer than DC_TOPIC are evaluated every time. */
enum { DC_WAYS = 4, DC_TOPIC = 55 };

typedef struct decision {
    uint32_t gen;   /* plugin.gen it was decided under; 0 = empty */
    uint8_t access; /* MOSQ_ACL_WRITE or MOSQ_ACL_READ */
    int8_t qos, retain, rc;
    uint8_t len;
    char topic[DC_TOPIC];
} decision;

_Static_assert(sizeof(decision) == 64, "a decision is one cache line");

typedef struct client {
    char *id;
    char *username;               /* who logged in (NULL: anonymous) */
    const struct mosquitto *conn; /* the connection it belongs to (ids can be taken over) */
    int state;                    /* C_* */
    bool kicked;                  /* revoked: disconnect asked for, nothing granted meanwhile */
    exh_auth_digest digest;       /* of the verified password (no re-hash at reload) */
    int64_t user_rev;             /* the store's revision of the user when last checked */
    exh_addr peer;                /* parsed once, at login: not on every check */
    size_t id_len, username_len;
    bool superuser;
    char **groups;
    exh_str *gstr;
    size_t ngroups;
    uint8_t dc_next; /* the way the next miss replaces */
    decision dc[DC_WAYS];
    struct client *next;
} client;

#define BUCKETS 4096

typedef struct plugin {
    mosquitto_plugin_id_t *pid;
    char db[4096], policy[4096];
    bool unknown_ignore, failed_ignore, read_check, decision_cache;
    uint32_t gen; /* the policy's generation: moves on at every load, never 0 */
    uint32_t cache_ttl, cache_max;
    exh_hash_params hash;
    exh_policy *pol;
    exh_evalctx *ctx;
    exh_store *store;
    exh_auth_cache *cache;
    int busy_timeout_ms;
    /* Faults are logged when they start and when they clear, not per
     * request; reads and history writes are separate incidents (a full
     * disk stops the history, not the logins). */
    bool read_failing, history_failing;
    long history_dropped;
    /* Live store changes (on_tick): SQLite's data_version, looked at every
     * WATCH_MS; when it moved, every verified connection is checked again. */
    int64_t data_version;
    bool have_version;
    uint64_t next_watch_ms;
    /* The broker's one thread spends at most max_hashes password hashes a
     * second (a token bucket); past that a login is refused without one. */
    uint32_t max_hashes;
    double tokens;
    uint64_t tokens_at_ms;
    long throttled, throttled_said; /* refused without a hash; said every 10 s */
    uint64_t throttle_said_ms;
    long rechecked, rehashed; /* logins of connected clients (a reload), and hashes for them */
    bool reloading;           /* between MOSQ_EVT_RELOAD and the next tick */
    client *clients[BUCKETS];
} plugin;

enum { WATCH_MS = 250 };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Records are per connection (its struct mosquitto): a refused login never
 * touches the record of another connection on the same client id, and a
 * connection's checks only ever see what its own login gave it. */
static size_t hash(const struct mosquitto *conn)
{
    uint64_t h = (uint64_t)(uintptr_t)conn * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 40) & (BUCKETS - 1);
}

static void client_free(client *c)
{
    for (size_t i = 0; i < c->ngroups; i++)
        free(c->groups[i]);
    free(c->groups);
    free(c->gstr);
    free(c->id);
    free(c->username);
    free(c);
}

static client *find(plugin *p, const struct mosquitto *conn)
{
    client *c = p->clients[hash(conn)];
    while (c && c->conn != conn)
        c = c->next;
    return c;
}

static void forget(plugin *p, const struct mosquitto *conn)
{
    client **pp = &p->clients[hash(conn)];
    while (*pp && (*pp)->conn != conn)
        pp = &(*pp)->next;
    if (*pp) {
        client *c = *pp;
        *pp = c->next;
        client_free(c);
    }
}

/* Keep what a connection's login gave it (replacing what it had); takes
 * the groups. */
static client *remember(plugin *p, const struct mosquitto *conn, const char *id,
                        const char *username, int state, bool superuser, char **groups, size_t n)
{
    forget(p, conn);
    client *c = calloc(1, sizeof(*c));
    if (!c || !(c->id = strdup(id)) || (username && !(c->username = strdup(username))) ||
        (n && !(c->gstr = malloc(n * sizeof(*c->gstr))))) {
        if (c) {
            c->groups = groups;
            c->ngroups = n;
            client_free(c);
        }
        return NULL; /* looked up again at the next check */
    }
    c->conn = conn;
    c->state = state;
    c->superuser = superuser;
    c->id_len = strlen(id);
    c->username_len = username ? strlen(username) : 0;
    const char *addr = mosquitto_client_address(conn);
    if (addr) exh_addr_parse(addr, strlen(addr), &c->peer);
    c->groups = groups;
    c->ngroups = n;
    for (size_t i = 0; i < n; i++)
        c->gstr[i] = (exh_str){groups[i], strlen(groups[i])};
    c->next = p->clients[hash(conn)];
    p->clients[hash(conn)] = c;
    return c;
}

static void log_fault(const char *what, const exh_error *err)
{
    char buf[1024];
    exh_error_format(err, buf, sizeof(buf));
    buf[strcspn(buf, "\n")] = '\0';
    mosquitto_log_printf(MOSQ_LOG_ERR, "exhook: %s: %s", what, buf);
}

/* A read failed: fail closed (or defer) and reopen at the next use, since
 * the fault may clear (file restored, lock released). */
static void store_failed(plugin *p, const exh_error *err)
{
    if (!p->read_failing)
        log_fault(p->failed_ignore ? "credential store unavailable (deferring)"
                                   : "credential store unavailable (failing closed)",
                  err);
    p->read_failing = true;
    exh_store_close(p->store);
    p->store = NULL;
}

static void store_ok(plugin *p)
{
    if (p->read_failing)
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "exhook: credential store available again");
    p->read_failing = false;
}

static exh_store *store(plugin *p, exh_error *err)
{
    if (p->store) return p->store;
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    o.hash = p->hash;
    o.busy_timeout_ms = p->busy_timeout_ms;
    if (exh_store_open(p->db, &o, &p->store, err) != EXH_OK) return NULL;
    return p->store;
}

/* Session history is best effort: a failed write drops the event, never a
 * client. */
static void record(plugin *p, struct mosquitto *cl, bool connected, const char *reason)
{
    exh_session_event ev = {.clientid = mosquitto_client_id(cl),
                            .username = mosquitto_client_username(cl),
                            .peerhost = mosquitto_client_address(cl),
                            .reason = reason,
                            .at = (int64_t)time(NULL),
                            .connected = connected};
    if (!ev.clientid) return;
    exh_error err;
    exh_store *s = store(p, &err);
    if (s && exh_store_record_session(s, &ev, &err) == EXH_OK) {
        if (p->history_failing)
            mosquitto_log_printf(MOSQ_LOG_NOTICE,
                                 "exhook: session history written again (%ld events were dropped)",
                                 p->history_dropped);
        p->history_failing = false;
        p->history_dropped = 0;
        return;
    }
    if (!p->history_failing)
        log_fault("session history not written (events are dropped until the store accepts "
                  "writes again)",
                  &err);
    p->history_failing = true;
    p->history_dropped++;
    /* The connection stays open: SQLite recovers from a full disk or a
     * lock at the next transaction, while closing it would checkpoint and
     * truncate the WAL, free a little space and make the history flap
     * between written and not written, one log line each time. */
}

/* ---- the broker thread's budget of password hashes ---- */

/* A failed login costs its address; after ADDR_FAILS failures within
 * ADDR_WINDOW_MS its next logins get no hash for a back-off that doubles
 * up to ADDR_MAX_BLOCK_MS (a cached or already verified password still gets
 * in).  A small table, overwritten on collision: it guards the budget, it
 * does not ban anyone for long. */
enum { ADDR_SLOTS = 4096, ADDR_FAILS = 5, ADDR_WINDOW_MS = 60000, ADDR_MAX_BLOCK_MS = 60000 };

typedef struct addr_slot {
    char addr[48];
    uint32_t fails;
    uint64_t window_ms, blocked_until_ms, block_ms;
} addr_slot;

static addr_slot addrs[ADDR_SLOTS];

static addr_slot *addr_find(const char *addr, bool make)
{
    if (!addr) return NULL;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *c = addr; *c; c++)
        h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
    addr_slot *a = &addrs[(h ^ (h >> 31)) & (ADDR_SLOTS - 1)];
    if (strncmp(a->addr, addr, sizeof(a->addr)) == 0) return a;
    if (!make) return NULL;
    memset(a, 0, sizeof(*a));
    snprintf(a->addr, sizeof(a->addr), "%s", addr);
    return a;
}

static bool addr_blocked(const char *addr, uint64_t now)
{
    addr_slot *a = addr_find(addr, false);
    return a && now < a->blocked_until_ms;
}

static void addr_failed(const char *addr, uint64_t now)
{
    addr_slot *a = addr_find(addr, true);
    if (!a) return;
    if (now - a->window_ms > ADDR_WINDOW_MS) {
        a->window_ms = now;
        a->fails = 0;
    }
    if (++a->fails >= ADDR_FAILS) {
        a->block_ms = a->block_ms ? a->block_ms * 2 : 1000;
        if (a->block_ms > ADDR_MAX_BLOCK_MS) a->block_ms = ADDR_MAX_BLOCK_MS;
        a->blocked_until_ms = now + a->block_ms;
        a->fails = 0;
        a->window_ms = now;
    }
}

static void addr_ok(const char *addr)
{
    addr_slot *a = addr_find(addr, false);
    if (a) memset(a, 0, sizeof(*a));
}

/* May a hash be spent now?  Tokens refill at max_hashes a second, at most
 * one second's worth saved up. */
static bool hash_budget(plugin *p, uint64_t now)
{
    if (!p->max_hashes) return true; /* plugin_opt_max_hashes_per_second 0: no limit */
    p->tokens += (double)(now - p->tokens_at_ms) * p->max_hashes / 1000.0;
    p->tokens_at_ms = now;
    if (p->tokens > p->max_hashes) p->tokens = p->max_hashes;
    return p->tokens >= 1.0;
}

static void say_throttled(plugin *p, uint64_t now)
{
    if (p->throttled == p->throttled_said || now - p->throttle_said_ms < 10000) return;
    mosquitto_log_printf(MOSQ_LOG_WARNING,
                         "exhook: %ld logins refused without a password check in the last %llu s "
                         "(the broker's thread checks at most %u passwords a second "
                         "(plugin_opt_max_hashes_per_second), and an address that keeps failing "
                         "waits; cached and already verified logins still get in)",
                         p->throttled - p->throttled_said,
                         (unsigned long long)((now - p->throttle_said_ms) / 1000), p->max_hashes);
    p->throttled_said = p->throttled;
    p->throttle_said_ms = now;
}

static bool hashed(const exh_auth_result *r)
{
    return !r->from_digest && (r->reason == EXH_AUTH_OK || r->reason == EXH_AUTH_BAD_PASSWORD ||
                               r->reason == EXH_AUTH_UNKNOWN_USER);
}

static int on_basic_auth(int event, void *data, void *user)
{
    (void)event;
    plugin *p = user;
    struct mosquitto_evt_basic_auth *ev = data;
    const char *cid = mosquitto_client_id(ev->client);
    const char *addr = mosquitto_client_address(ev->client);
    uint64_t now = now_ms();
    /* A record for this very connection: the broker asks again (it re-runs
     * basic auth for every client at each reload).  Its verified digest
     * stands for the password, so a reload costs no hash. */
    client *prev = find(p, ev->client);
    if (p->reloading && !prev) {
        /* A reload asks about every persistent session too, and an offline
         * one has no record (records go at disconnect).  It is not a login:
         * nobody is connected, and its next CONNECT is checked in full.
         * Refusing it would only "disconnect" a session that is not
         * connected, which in Mosquitto 2.0 can free an MQTT 5 session
         * with a finite expiry that the broker later uses again. */
        return MOSQ_ERR_SUCCESS;
    }
    exh_auth_request rq = {.username = ev->username,
                           .username_len = ev->username ? strlen(ev->username) : 0,
                           .clientid = cid ? cid : "",
                           .clientid_len = cid ? strlen(cid) : 0,
                           .password = ev->password,
                           .password_len = ev->password ? strlen(ev->password) : 0,
                           .check_password = true,
                           .verified =
                               prev && prev->state == C_KNOWN && !prev->kicked && prev->digest.set
                                   ? &prev->digest
                                   : NULL,
                           .no_hash = !hash_budget(p, now) || addr_blocked(addr, now)};
    if (addr) exh_addr_parse(addr, strlen(addr), &rq.peerhost);
    exh_error err;
    exh_error_clear(&err);
    exh_store *s = store(p, &err);
    if (!s) {
        store_failed(p, &err);
        if (cid)
            remember(p, ev->client, cid, ev->username, p->failed_ignore ? C_UNVERIFIED : C_REFUSED,
                     false, NULL, 0);
        return p->failed_ignore ? MOSQ_ERR_PLUGIN_DEFER : MOSQ_ERR_AUTH;
    }
    exh_auth_result r;
    exh_status st = exh_authenticate(s, p->cache, p->pol, p->ctx, &rq, &r, &err);
    if (hashed(&r) && p->max_hashes) p->tokens -= 1.0;
    if (prev) {
        p->rechecked++;
        if (hashed(&r)) p->rehashed++;
    }
    int rc, state = C_REFUSED;
    if (r.reason == EXH_AUTH_STORE_ERROR && st == EXH_ESTORE) {
        store_failed(p, &err);
        rc = p->failed_ignore ? MOSQ_ERR_PLUGIN_DEFER : MOSQ_ERR_AUTH;
        if (p->failed_ignore) state = C_UNVERIFIED;
    } else if (r.reason == EXH_AUTH_STORE_ERROR) {
        /* The store answered but the password could not be checked (out
         * of memory, the hash library failed): no store fault for
         * failed_action to excuse; an unchecked login stays out. */
        mosquitto_log_printf(MOSQ_LOG_ERR, "exhook: %s: the password could not be checked: refused",
                             ev->username ? ev->username : "");
        rc = MOSQ_ERR_AUTH;
    } else {
        store_ok(p);
        if (r.reason == EXH_AUTH_THROTTLED) {
            p->throttled++;
            say_throttled(p, now);
            rc = MOSQ_ERR_AUTH; /* never deferred: that would reveal the name is unknown */
        } else if (r.reason == EXH_AUTH_UNKNOWN_USER && p->unknown_ignore) {
            rc = MOSQ_ERR_PLUGIN_DEFER;
            state = C_NOOPINION;
        } else if (r.decision == EXH_ALLOW) {
            rc = MOSQ_ERR_SUCCESS;
            state = C_KNOWN;
        } else {
            rc = MOSQ_ERR_AUTH;
        }
        if (r.reason == EXH_AUTH_BAD_PASSWORD || r.reason == EXH_AUTH_UNKNOWN_USER)
            addr_failed(addr, now);
        else if (r.reason == EXH_AUTH_OK)
            addr_ok(addr);
    }
    mosquitto_log_printf(MOSQ_LOG_DEBUG, "exhook: connect %s (%s): %s%s", cid ? cid : "",
                         ev->username ? ev->username : "anonymous", exh_auth_reason_str(r.reason),
                         r.from_digest ? " (this connection's earlier login)" : "");
    /* A new login ends an earlier one's record, whatever its outcome. */
    if (cid) {
        client *c;
        if (state == C_KNOWN) {
            c = remember(p, ev->client, cid, ev->username, C_KNOWN, r.superuser, r.groups,
                         r.ngroups);
            r.groups = NULL;
            r.ngroups = 0;
            if (c) {
                c->digest = r.digest;
                c->user_rev = -1; /* looked up at the next store change */
            }
        } else {
            remember(p, ev->client, cid, ev->username, state, false, NULL, 0);
        }
    }
    if (rc == MOSQ_ERR_SUCCESS && cid && !prev) record(p, ev->client, true, NULL);
    exh_auth_result_clear(&r);
    return rc;
}

/* The connection's record; or, for a connection with none, what the store
 * says of its user now, in *tmp (to be freed with tmp_clear): Mosquitto
 * also checks a connection that has gone -- a queued message for an
 * offline persistent session, a will sent after the disconnect, a retained
 * message's source -- and a record made for it would never be freed.
 * *deny: its login was refused here, or revoked; *failed: a store fault,
 * or a login the store could not check. */
static void tmp_clear(client *t)
{
    for (size_t i = 0; i < t->ngroups; i++)
        free(t->groups[i]);
    free(t->groups);
    free(t->gstr);
}

static client *client_for(plugin *p, struct mosquitto *cl, const char *cid, int *failed, int *deny,
                          client *tmp)
{
    client *c = find(p, cl);
    if (c) {
        if (c->state == C_REFUSED || c->kicked) {
            *deny = 1;
            return NULL;
        }
        if (c->state == C_UNVERIFIED) {
            *failed = 1;
            return NULL;
        }
        return c->state == C_KNOWN ? c : NULL; /* C_NOOPINION: the policy alone */
    }
    const char *user = mosquitto_client_username(cl);
    if (!user) return NULL;
    exh_error err;
    exh_store *s = store(p, &err);
    if (!s) {
        store_failed(p, &err);
        *failed = 1;
        return NULL;
    }
    exh_user u;
    exh_status st = exh_store_get_user(s, user, &u, &err);
    if (st == EXH_OK || st == EXH_ENOTFOUND) store_ok(p);
    if (st == EXH_ENOTFOUND) return NULL;
    if (st != EXH_OK) {
        store_failed(p, &err);
        *failed = 1;
        return NULL;
    }
    /* Not logged in through this plugin (it was reloaded): a user who
     * could not log in now gets no rights from the store. */
    if (u.disabled || !exh_user_may_use_clientid(&u, cid, strlen(cid))) {
        exh_user_clear(&u);
        return NULL;
    }
    memset(tmp, 0, sizeof(*tmp));
    tmp->gstr = u.ngroups ? malloc(u.ngroups * sizeof(*tmp->gstr)) : NULL;
    if (u.ngroups && !tmp->gstr) {
        exh_user_clear(&u);
        *deny = 1; /* out of memory: nothing granted */
        return NULL;
    }
    tmp->superuser = u.superuser;
    tmp->groups = u.groups;
    tmp->ngroups = u.ngroups;
    for (size_t i = 0; i < u.ngroups; i++)
        tmp->gstr[i] = (exh_str){u.groups[i], strlen(u.groups[i])};
    u.groups = NULL;
    u.ngroups = 0;
    exh_user_clear(&u);
    return tmp;
}

/* Was the record's cache filled for the username the broker has now?  (A
 * plugin may change it; only a login does in practice, and a login makes
 * a new record.) */
static bool same_user(const client *c, const char *username)
{
    if (!username || !c->username) return !username && !c->username;
    return strcmp(username, c->username) == 0;
}

/* The cached answer to this check, or NULL with *slot set to the way a
 * fresh decision may be kept in (NULL: not cacheable). */
static const decision *dc_find(plugin *p, client *rec, const struct mosquitto_evt_acl_check *ev,
                               size_t tlen, const char *username, decision **slot)
{
    *slot = NULL;
    if (!rec || !p->decision_cache || !ev->topic || tlen > DC_TOPIC || rec->kicked ||
        (rec->state != C_KNOWN && rec->state != C_NOOPINION) ||
        (ev->access != MOSQ_ACL_WRITE && ev->access != MOSQ_ACL_READ) || !same_user(rec, username))
        return NULL;
    int qos = ev->access == MOSQ_ACL_WRITE ? ev->qos : -1;
    int retain = ev->access == MOSQ_ACL_WRITE ? ev->retain : -1;
    for (int i = 0; i < DC_WAYS; i++) {
        const decision *d = &rec->dc[i];
        if (d->gen == p->gen && d->len == tlen && d->access == ev->access && d->qos == qos &&
            d->retain == retain && memcmp(d->topic, ev->topic, tlen) == 0)
            return d;
    }
    decision *d = &rec->dc[rec->dc_next];
    rec->dc_next = (uint8_t)((rec->dc_next + 1) % DC_WAYS);
    d->gen = 0; /* empty until it is filled */
    d->access = (uint8_t)ev->access;
    d->qos = (int8_t)qos;
    d->retain = (int8_t)retain;
    d->len = (uint8_t)tlen;
    memcpy(d->topic, ev->topic, tlen);
    *slot = d;
    return NULL;
}

static int on_acl_check(int event, void *data, void *user)
{
    (void)event;
    plugin *p = user;
    struct mosquitto_evt_acl_check *ev = data;
    exh_action action;
    if (ev->access == MOSQ_ACL_WRITE)
        action = EXH_PUBLISH;
    else if (ev->access == MOSQ_ACL_SUBSCRIBE || (ev->access == MOSQ_ACL_READ && p->read_check))
        action = EXH_SUBSCRIBE; /* READ: the topic name as a subscription it must fit */
    else
        return MOSQ_ERR_SUCCESS; /* READ (subscription already checked), UNSUBSCRIBE */
    const char *username = mosquitto_client_username(ev->client);
    /* The connection's record (its login's) has the lengths and the parsed
     * address: the hot path parses nothing. */
    client *rec = find(p, ev->client);
    size_t tlen = ev->topic ? strlen(ev->topic) : 0;
    decision *slot;
    const decision *hit = dc_find(p, rec, ev, tlen, username, &slot);
    if (hit) return hit->rc;
    const char *cid = mosquitto_client_id(ev->client);
    exh_request r;
    exh_request_init(&r, action);
    r.queue_is_topic = true; /* Mosquitto has $share/ only: `$queue/x` is a topic */
    if (username) {
        r.username = username;
        r.username_len = strlen(username); /* another plugin may have set a new one */
    }
    r.clientid = cid ? cid : "";
    r.clientid_len = cid ? (rec ? rec->id_len : strlen(cid)) : 0;
    if (rec) {
        r.peerhost = rec->peer;
    } else {
        const char *addr = mosquitto_client_address(ev->client);
        if (addr) exh_addr_parse(addr, strlen(addr), &r.peerhost);
    }
    r.topic = ev->topic;
    r.topic_len = tlen;
    r.qos = ev->qos;
    r.retain = action == EXH_PUBLISH ? ev->retain : -1;
    r.delivery = ev->access == MOSQ_ACL_READ; /* ev->qos is the message's, not the subscription's */
    int failed = 0, deny = 0;
    client tmp;
    client *c = cid ? client_for(p, ev->client, cid, &failed, &deny, &tmp) : NULL;
    if (deny) return MOSQ_ERR_ACL_DENIED;
    if (failed) return p->failed_ignore ? MOSQ_ERR_PLUGIN_DEFER : MOSQ_ERR_ACL_DENIED;
    if (c) {
        r.superuser = c->superuser;
        r.groups = c->gstr;
        r.ngroups = c->ngroups;
    }
    exh_result res;
    exh_eval(p->pol, &r, p->ctx, &res);
    if (c == &tmp) tmp_clear(&tmp);
    int rc = res.decision == EXH_ALLOW    ? MOSQ_ERR_SUCCESS
             : res.decision == EXH_IGNORE ? MOSQ_ERR_PLUGIN_DEFER
                                          : MOSQ_ERR_ACL_DENIED;
    /* Only a decision from the record (not from the store, for a
     * connection without one) is kept with it. */
    if (slot && c != &tmp) {
        slot->rc = (int8_t)rc;
        slot->gen = p->gen;
    }
    return rc;
}

/* ---- live store changes ---- */

/* One verified connection against the store as it is now: refused (kicked,
 * its will not published) if its user is gone, disabled, bound to other
 * client ids or refused by the connect rules; else its groups and
 * superuser flag are refreshed, so the next check -- a delivery included
 * -- sees them.  Returns true to kick. */
static bool recheck(plugin *p, exh_store *s, client *c)
{
    exh_user u;
    exh_error err;
    exh_status st = exh_store_get_user(s, c->username, &u, &err);
    if (st == EXH_ENOTFOUND) return true;
    if (st != EXH_OK) return false; /* a store fault: said by store_failed, decided at the next */
    bool gone = u.disabled || !exh_user_may_use_clientid(&u, c->id, strlen(c->id));
    bool same = !gone && u.rev == c->user_rev;
    if (!gone && !same) {
        /* The connect rules with the user's groups now. */
        exh_auth_request rq = {.username = c->username,
                               .username_len = strlen(c->username),
                               .clientid = c->id,
                               .clientid_len = strlen(c->id),
                               .check_password = false};
        const char *addr = mosquitto_client_address(c->conn);
        if (addr) exh_addr_parse(addr, strlen(addr), &rq.peerhost);
        exh_auth_result r;
        if (exh_authenticate(s, NULL, p->pol, p->ctx, &rq, &r, &err) != EXH_OK) {
            exh_user_clear(&u);
            return false;
        }
        if (r.decision != EXH_ALLOW) {
            gone = true;
        } else {
            char **g = r.groups;
            size_t n = r.ngroups;
            exh_str *gs = n ? malloc(n * sizeof(*gs)) : NULL;
            if (n && !gs) {
                gone = true; /* out of memory: no stale rights */
            } else {
                for (size_t i = 0; i < c->ngroups; i++)
                    free(c->groups[i]);
                free(c->groups);
                free(c->gstr);
                for (size_t i = 0; i < n; i++)
                    gs[i] = (exh_str){g[i], strlen(g[i])};
                c->groups = g;
                c->gstr = gs;
                c->ngroups = n;
                c->superuser = r.superuser;
                c->user_rev = u.rev;
                memset(c->dc, 0, sizeof(c->dc)); /* decided with the old groups */
                r.groups = NULL;
                r.ngroups = 0;
            }
        }
        exh_auth_result_clear(&r);
    }
    exh_user_clear(&u);
    return gone;
}

/* Every WATCH_MS, on the broker's thread but off the message path: when
 * another process (exhookctl, a second broker) changed the store, every
 * verified connection is checked against it, and those that may no longer
 * log in are disconnected, without their will. */
static int on_tick(int event, void *data, void *user)
{
    (void)event;
    (void)data;
    plugin *p = user;
    uint64_t now = now_ms();
    p->reloading = false;
    if (now < p->next_watch_ms) return MOSQ_ERR_SUCCESS;
    p->next_watch_ms = now + WATCH_MS;
    p->reloading = false;
    say_throttled(p, now);
    if (p->rechecked) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "exhook: %ld connected clients logged in again (a reload): %ld "
                             "password hashes computed",
                             p->rechecked, p->rehashed);
        p->rechecked = p->rehashed = 0;
    }
    exh_error err;
    exh_store *s = store(p, &err);
    int64_t v;
    if (!s || exh_store_data_version(s, &v, &err) != EXH_OK) return MOSQ_ERR_SUCCESS;
    if (p->have_version && v == p->data_version) return MOSQ_ERR_SUCCESS;
    bool first = !p->have_version;
    p->data_version = v;
    p->have_version = true;
    if (first) return MOSQ_ERR_SUCCESS;
    /* Kicking runs the disconnect callback, which edits the table: collect
     * first, kick after. */
    size_t nkick = 0, cap = 0;
    char **kick = NULL;
    long checked = 0;
    for (size_t b = 0; b < BUCKETS; b++)
        for (client *c = p->clients[b]; c; c = c->next) {
            if (c->state != C_KNOWN || c->kicked || !c->username) continue;
            checked++;
            if (!recheck(p, s, c)) continue;
            c->kicked = true; /* nothing granted from now on */
            if (nkick == cap) {
                size_t nc = cap ? cap * 2 : 16;
                char **nk = realloc(kick, nc * sizeof(*nk));
                if (!nk) continue; /* still denied everything (kicked) */
                kick = nk;
                cap = nc;
            }
            if ((kick[nkick] = strdup(c->id))) nkick++;
        }
    for (size_t i = 0; i < nkick; i++) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "exhook: client %s disconnected: its user changed in the store and "
                             "may no longer log in",
                             kick[i]);
        mosquitto_kick_client_by_clientid(kick[i], false);
        free(kick[i]);
    }
    free(kick);
    mosquitto_log_printf(MOSQ_LOG_DEBUG, "exhook: store changed: %ld clients checked, %zu kicked",
                         checked, nkick);
    return MOSQ_ERR_SUCCESS;
}

static int load_policy(plugin *p)
{
    exh_policy *np;
    exh_error err;
    if (exh_policy_load(p->policy, &np, &err) != EXH_OK) {
        char buf[2048];
        exh_error_format(&err, buf, sizeof(buf));
        buf[strcspn(buf, "\n")] = '\0';
        mosquitto_log_printf(MOSQ_LOG_ERR, "exhook: policy not loaded%s: %s",
                             p->pol ? " (keeping the old one)" : "", buf);
        return -1;
    }
    exh_policy_free(p->pol); /* one thread: nobody is using it now */
    p->pol = np;
    if (++p->gen == 0) p->gen = 1; /* every cached decision is now stale */
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "exhook: policy %s loaded: %u rules", p->policy,
                         exh_policy_rule_count(np));
    return 0;
}

static int on_reload(int event, void *data, void *user)
{
    (void)event;
    (void)data;
    plugin *p = user;
    load_policy(p);
    /* Mosquitto re-runs basic auth for every client and persistent session
     * next, in this loop iteration (loop.c: the RELOAD event, then
     * mosquitto_security_apply_default); the next tick ends it. */
    p->reloading = true;
    /* Not SUCCESS: the RELOAD chain stops at the first callback that does
     * not defer, and a plugin loaded after this one must hear it too. */
    return MOSQ_ERR_PLUGIN_DEFER;
}

static int on_disconnect(int event, void *data, void *user)
{
    (void)event;
    plugin *p = user;
    struct mosquitto_evt_disconnect *ev = data;
    client *c = find(p, ev->client);
    if (!c) return MOSQ_ERR_SUCCESS;
    /* Only a login allowed here was recorded as connected. */
    if (c->state == C_KNOWN) {
        char reason[32];
        /* Mosquitto 2.0 passes -1 when it has no reason to give. */
        if (ev->reason >= 0) snprintf(reason, sizeof(reason), "reason %d", ev->reason);
        record(p, ev->client, false, ev->reason >= 0 ? reason : NULL);
    }
    forget(p, ev->client);
    return MOSQ_ERR_SUCCESS;
}

static int set_option(plugin *p, const char *key, const char *v)
{
    char *end;
    /* Mosquitto 2.0.11 refuses option names under three characters, so
     * plugin_opt_db is also accepted as plugin_opt_database. */
    if (!strcmp(key, "db") || !strcmp(key, "database"))
        snprintf(p->db, sizeof(p->db), "%s", v);
    else if (!strcmp(key, "policy"))
        snprintf(p->policy, sizeof(p->policy), "%s", v);
    else if (!strcmp(key, "unknown_user") && (!strcmp(v, "deny") || !strcmp(v, "ignore")))
        p->unknown_ignore = !strcmp(v, "ignore");
    else if (!strcmp(key, "failed_action") && (!strcmp(v, "deny") || !strcmp(v, "ignore")))
        p->failed_ignore = !strcmp(v, "ignore");
    else if (!strcmp(key, "read_check") && (!strcmp(v, "true") || !strcmp(v, "false")))
        p->read_check = !strcmp(v, "true");
    else if (!strcmp(key, "decision_cache") && (!strcmp(v, "true") || !strcmp(v, "false")))
        p->decision_cache = !strcmp(v, "true");
    else if (!strcmp(key, "max_hashes_per_second") &&
             (p->max_hashes = (uint32_t)strtoul(v, &end, 10), !*end && *v) &&
             p->max_hashes <= 10000)
        ;
    else if (!strcmp(key, "busy_timeout") &&
             (p->busy_timeout_ms = (int)strtol(v, &end, 10), !*end && *v) &&
             p->busy_timeout_ms >= 0)
        ;
    else if (!strcmp(key, "cache_ttl") && (p->cache_ttl = (uint32_t)strtoul(v, &end, 10), !*end))
        ;
    else if (!strcmp(key, "cache_max") && (p->cache_max = (uint32_t)strtoul(v, &end, 10), !*end) &&
             p->cache_max)
        ;
    else if (!strcmp(key, "argon2_m_kib") &&
             (p->hash.m_kib = (uint32_t)strtoul(v, &end, 10), !*end))
        ;
    else if (!strcmp(key, "argon2_t") && (p->hash.t_cost = (uint32_t)strtoul(v, &end, 10), !*end))
        ;
    else if (!strcmp(key, "argon2_p") && (p->hash.lanes = (uint32_t)strtoul(v, &end, 10), !*end))
        ;
    else {
        mosquitto_log_printf(MOSQ_LOG_ERR, "exhook: bad option plugin_opt_%s %s", key, v);
        return -1;
    }
    return 0;
}

__attribute__((visibility("default"))) int mosquitto_plugin_version(int count, const int *versions)
{
    for (int i = 0; i < count; i++)
        if (versions[i] == 5) return 5;
    return -1;
}

__attribute__((visibility("default"))) int mosquitto_plugin_init(mosquitto_plugin_id_t *pid,
                                                                 void **userdata,
                                                                 struct mosquitto_opt *opts,
                                                                 int nopts)
{
    plugin *p = calloc(1, sizeof(*p));
    if (!p) return MOSQ_ERR_NOMEM;
    p->pid = pid;
    snprintf(p->db, sizeof(p->db), "exhook.db");
    snprintf(p->policy, sizeof(p->policy), "policies");
    p->cache_ttl = 300;
    p->busy_timeout_ms = 5000;
    p->cache_max = 100000;
    /* Delivery checks on: a subscription granted earlier (a session taken
     * over, a policy or group changed since) never delivers what the
     * policy refuses now, as Mosquitto's own acl_file behaves. */
    p->read_check = true;
    p->decision_cache = true;
    /* ~30 ms each: at most ~0.6 s of the broker's thread a second */
    p->max_hashes = 20;
    exh_hash_params_default(&p->hash);
    for (int i = 0; i < nopts; i++)
        if (set_option(p, opts[i].key, opts[i].value) < 0) {
            free(p);
            return MOSQ_ERR_INVAL;
        }
    p->ctx = exh_evalctx_new();
    p->cache = exh_auth_cache_new(p->cache_ttl, p->cache_max);
    if (!p->ctx || !p->cache || load_policy(p) < 0) {
        exh_evalctx_free(p->ctx);
        exh_auth_cache_free(p->cache);
        free(p);
        return MOSQ_ERR_INVAL; /* without a policy the broker must not start open */
    }
    exh_error err;
    if (!store(p, &err)) store_failed(p, &err); /* said at start-up, not at the first login */
    /* "No opinion" hands the decision to the next plugin, password_file or
     * allow_anonymous: say so where an operator looks. */
    if (p->unknown_ignore)
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "exhook: warning: plugin_opt_unknown_user ignore: a name that is not "
                             "in the store is left to the next plugin, password_file or "
                             "allow_anonymous, which may let it in");
    if (p->failed_ignore)
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "exhook: warning: plugin_opt_failed_action ignore: while the store "
                             "cannot be read, every login and check is left to the next plugin, "
                             "password_file or allow_anonymous, which may let everyone in");
    if (exh_policy_default(p->pol) == EXH_IGNORE)
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "exhook: warning: the policy's `default ignore`: a publish or "
                             "subscribe no rule decides is left to the broker's other sources");
    *userdata = p;
    if (mosquitto_callback_register(pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_RELOAD, on_reload, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_TICK, on_tick, NULL, p))
        return MOSQ_ERR_UNKNOWN;
    return MOSQ_ERR_SUCCESS;
}

__attribute__((visibility("default"))) int
mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int nopts)
{
    (void)opts;
    (void)nopts;
    plugin *p = userdata;
    if (!p) return MOSQ_ERR_SUCCESS;
    mosquitto_callback_unregister(p->pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
    mosquitto_callback_unregister(p->pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
    mosquitto_callback_unregister(p->pid, MOSQ_EVT_RELOAD, on_reload, NULL);
    mosquitto_callback_unregister(p->pid, MOSQ_EVT_TICK, on_tick, NULL);
    mosquitto_callback_unregister(p->pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
    /* The broker is stopping: its clients are going offline too. */
    exh_error err;
    exh_store *s = store(p, &err);
    for (size_t b = 0; b < BUCKETS; b++)
        while (p->clients[b]) {
            client *c = p->clients[b];
            p->clients[b] = c->next;
            exh_session_event ev = {.clientid = c->id,
                                    .reason = "broker shutdown",
                                    .at = (int64_t)time(NULL),
                                    .connected = false};
            if (s) exh_store_record_session(s, &ev, &err);
            client_free(c);
        }
    exh_store_close(p->store);
    exh_auth_cache_free(p->cache);
    exh_evalctx_free(p->ctx);
    exh_policy_free(p->pol);
    free(p);
    return MOSQ_ERR_SUCCESS;
}
