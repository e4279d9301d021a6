/*
 * exhook_mosquitto.so -- the engine inside Mosquitto 2.0 (plugin API v5).
 *
 * Thin glue over the service layer (service/service.h), as exhook-driver
 * and exhook-grpc are: each broker event becomes one service call and its
 * answer one return code.
 *
 *   MOSQ_EVT_BASIC_AUTH  -> svc_login_*: store, cache, connect rules
 *   MOSQ_EVT_ACL_CHECK   -> svc_authorize_key: WRITE = publish (qos, retain
 *                           known), SUBSCRIBE = subscribe; READ is a
 *                           delivery, checked as a subscription unless
 *                           read_check is off; UNSUBSCRIBE allowed
 *   MOSQ_EVT_RELOAD      -> recompile the policy; a failure keeps the old one
 *   MOSQ_EVT_DISCONNECT  -> forget the connection, record the session
 *   MOSQ_EVT_TICK        -> svc_revalidate: live store changes
 *
 * Records in the service's client table are keyed by connection (its
 * struct mosquitto), not by client id: a refused login never touches the
 * record of another connection on the same client id, and a connection's
 * checks only ever see what its own login gave it (clients.h).
 *
 * Options (mosquitto.conf, after `plugin .../exhook_mosquitto.so`) are the
 * front ends' settings (service/config.h, same names and ranges) as
 * plugin_opt_<key>: database (or db where the broker allows a two-letter
 * name), policy, unknown_user, failed_action, cache_ttl, cache_max,
 * busy_timeout, argon2_m_kib, argon2_t, argon2_p, log_level, lockout_failures,
 * lockout_window, lockout_backoff, lockout_backoff_max, and the plugin's own
 * read_check, decision_cache and max_hashes_per_second.
 *
 * Mosquitto calls plugins on its one thread: the service starts no thread
 * here (the broker says when to reload, and the few history events are
 * written on the spot).  A cold argon2id check (~40 ms at the default
 * cost) stalls the broker for that long, which the credential cache avoids
 * for reconnecting clients and the hash budget bounds.  Answers are only
 * ever SUCCESS, ACL_DENIED / AUTH or PLUGIN_DEFER: an internal error fails
 * closed (or defers, per failed_action) and never returns a code that
 * would make the broker drop a client by accident.
 */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exhook/auth.h"
#include "exhook/eval.h"
#include "exhook/policy.h"
#include "deadline.h"
#include "log.h"
#include "service.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct plugin {
    mosquitto_plugin_id_t *pid;
    svc *s;
    svc_conn *conn; /* the broker's one thread's */
    uint64_t next_watch_ms;
    /* The broker's one thread spends at most max_hashes password hashes a
     * second (a token bucket); past that a login is refused without one. */
    double tokens;
    uint64_t tokens_at_ms;
    long throttled, throttled_said; /* refused without a hash; said every 10 s */
    uint64_t throttle_said_ms;
    long rechecked, rehashed; /* logins of connected clients (a reload), and hashes for them */
    bool reloading;           /* between MOSQ_EVT_RELOAD and the next tick */
    char node[256];           /* plugin_opt_node, or the host name: sessions name it */
} plugin;

/* Live store changes are looked for every WATCH_MS (svc_revalidate). */
enum { WATCH_MS = 250 };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A connection's key in the client table: the bytes of its pointer. */
typedef struct conn_key {
    const struct mosquitto *conn;
} conn_key;
#define KEY(k) ((const char *)&(k).conn), sizeof((k).conn)

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* The service's log lines, in the broker's log -- but never written while
 * the service is inside a call: with `log_dest topic` Mosquitto publishes
 * each line at once (2.0.11 src/logging.c:329, db__messages_easy_queue),
 * which runs an ACL check of every subscriber to $SYS/broker/log/#
 * (src/subs.c:72, MOSQ_ACL_READ), back into this plugin, while the service
 * may hold a lock of its own (the client table's, the incidents').  Lines are queued
 * and written at the end of each callback, outside the service. */
enum { LOG_QUEUE = 64, LOG_LINE = 1024 };
static struct {
    int level;
    char line[LOG_LINE];
} log_queue[LOG_QUEUE];
static int log_queued;
static long log_lost;
static bool log_flushing;

static void to_broker_log(int level, const char *line)
{
    if (log_queued == LOG_QUEUE) {
        log_lost++;
        return;
    }
    log_queue[log_queued].level = level;
    snprintf(log_queue[log_queued].line, LOG_LINE, "%s", line);
    log_queued++;
}

static void flush_log(void)
{
    static const int mosq[] = {MOSQ_LOG_ERR, MOSQ_LOG_WARNING, MOSQ_LOG_NOTICE, MOSQ_LOG_DEBUG};
    if (log_flushing) return; /* a callback run by our own log line: the outer flush goes on */
    log_flushing = true;
    for (int i = 0; i < log_queued; i++) { /* lines a nested callback adds are written too */
        int l = log_queue[i].level;
        mosquitto_log_printf(mosq[l < 0 ? 0 : l > 3 ? 3 : l], "exhook: %s", log_queue[i].line);
    }
    log_queued = 0;
    if (log_lost)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "exhook: %ld log lines dropped (too many at once)",
                             log_lost);
    log_lost = 0;
    log_flushing = false;
}

/* Session history is best effort: a failed write drops the event, never a
 * client (service.h: svc_history_write says it once). */
static void record(plugin *p, struct mosquitto *cl, bool connected, const char *reason)
{
    exh_session_event ev = {.clientid = mosquitto_client_id(cl),
                            .username = mosquitto_client_username(cl),
                            .peerhost = mosquitto_client_address(cl),
                            .node = p->node[0] ? p->node : NULL,
                            .reason = reason,
                            .at = (int64_t)time(NULL),
                            .connected = connected};
    if (ev.clientid) svc_history_write(p->conn, &ev);
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
    uint32_t max = svc_settings(p->s)->max_hashes;
    if (!max) return true; /* plugin_opt_max_hashes_per_second 0: no limit */
    p->tokens += (double)(now - p->tokens_at_ms) * max / 1000.0;
    p->tokens_at_ms = now;
    if (p->tokens > max) p->tokens = max;
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
                         (unsigned long long)((now - p->throttle_said_ms) / 1000),
                         svc_settings(p->s)->max_hashes);
    p->throttled_said = p->throttled;
    p->throttle_said_ms = now;
}

static int on_basic_auth_(int event, void *data, void *user)
{
    (void)event;
    plugin *p = user;
    struct mosquitto_evt_basic_auth *ev = data;
    const char *cid = mosquitto_client_id(ev->client);
    const char *addr = mosquitto_client_address(ev->client);
    uint64_t now = now_ms();
    conn_key k = {ev->client};
    /* A record for this very connection: the broker asks again (it re-runs
     * basic auth for every client at each reload).  Its verified digest
     * stands for the password, so a reload costs no hash. */
    bool prev = svc_clients_seen(svc_client_table(p->s), KEY(k));
    if (p->reloading && !prev) {
        /* A reload asks about every persistent session too, and an offline
         * one has no record (records go at disconnect).  It is not a login:
         * nobody is connected, and its next CONNECT is checked in full.
         * Refusing it would only "disconnect" a session that is not
         * connected, which in Mosquitto 2.0 can free an MQTT 5 session
         * with a finite expiry that the broker later uses again. */
        return MOSQ_ERR_SUCCESS;
    }
    exh_auth_digest digest;
    bool have_digest = prev && svc_clients_digest(svc_client_table(p->s), KEY(k), ev->username,
                                                  slen(ev->username), &digest);
    exh_auth_request rq = {.username = ev->username,
                           .username_len = slen(ev->username),
                           .clientid = cid ? cid : "",
                           .clientid_len = slen(cid),
                           .password = ev->password,
                           .password_len = slen(ev->password),
                           .check_password = true,
                           .verified = have_digest ? &digest : NULL,
                           .no_hash = !hash_budget(p, now) || addr_blocked(addr, now)};
    if (addr) exh_addr_parse(addr, strlen(addr), &rq.peerhost);
    /* No client id, no record (Mosquitto always has one by now). */
    uint64_t gen = cid ? svc_login_begin(p->s, KEY(k), &rq) : 0;
    svc_grant g;
    int64_t t0 = svc_now_ns();
    svc_answer a = svc_login_check(p->conn, &rq, &g);
    svc_login_answered(p->s, p->conn, &rq, &g, a, t0);
    if (g.hashed && svc_settings(p->s)->max_hashes) p->tokens -= 1.0;
    if (prev) {
        p->rechecked++;
        if (g.hashed) p->rehashed++;
    }
    if (g.reason == EXH_AUTH_THROTTLED) {
        p->throttled++;
        say_throttled(p, now);
    } else if (g.reason == EXH_AUTH_BAD_PASSWORD || g.reason == EXH_AUTH_UNKNOWN_USER) {
        addr_failed(addr, now);
    } else if (g.reason == EXH_AUTH_OK) {
        addr_ok(addr);
    }
    if (cid)
        svc_login_end(p->s, KEY(k), &rq, gen, &g);
    else
        svc_grant_clear(&g);
    int rc = a == SVC_ALLOW    ? MOSQ_ERR_SUCCESS
             : a == SVC_IGNORE ? MOSQ_ERR_PLUGIN_DEFER
                               : MOSQ_ERR_AUTH;
    if (rc == MOSQ_ERR_SUCCESS && cid && !prev) record(p, ev->client, true, NULL);
    return rc;
}

static int answer_rc(int a)
{
    return a == SVC_ALLOW    ? MOSQ_ERR_SUCCESS
           : a == SVC_IGNORE ? MOSQ_ERR_PLUGIN_DEFER
                             : MOSQ_ERR_ACL_DENIED;
}

static int on_acl_check_(int event, void *data, void *user)
{
    (void)event;
    plugin *p = user;
    struct mosquitto_evt_acl_check *ev = data;
    exh_action action;
    if (ev->access == MOSQ_ACL_WRITE)
        action = EXH_PUBLISH;
    else if (ev->access == MOSQ_ACL_SUBSCRIBE ||
             (ev->access == MOSQ_ACL_READ && svc_settings(p->s)->read_check))
        action = EXH_SUBSCRIBE; /* READ: the topic name as a subscription it must fit */
    else
        return MOSQ_ERR_SUCCESS; /* READ (subscription already checked), UNSUBSCRIBE */
    conn_key k = {ev->client};
    /* What the decision cache compares, first: a hit builds and measures
     * nothing else.  A delivery's (READ) ev->qos is the message's, not the
     * subscription's. */
    svc_probe q = {.username = mosquitto_client_username(ev->client),
                   .topic = ev->topic,
                   .action = action,
                   .qos = ev->qos,
                   .retain = action == EXH_PUBLISH ? ev->retain : -1,
                   .delivery = ev->access == MOSQ_ACL_READ};
    int hit = svc_authorize_cached(p->conn, KEY(k), &q);
    if (hit >= 0) return answer_rc(hit);
    exh_request r = {.action = q.action,
                     .username = q.username,
                     .username_len = slen(q.username), /* another plugin may have set a new one */
                     .topic = q.topic,
                     .topic_len = slen(q.topic),
                     .qos = q.qos,
                     .retain = q.retain,
                     .delivery = q.delivery};
    const char *cid = mosquitto_client_id(ev->client);
    r.queue_is_topic = true; /* Mosquitto has $share/ only: `$queue/x` is a topic */
    r.clientid = cid ? cid : "";
    r.clientid_len = slen(cid);
    /* The address comes from the connection's record (parsed once, at
     * login); a connection without one (gone: a will, a queued message)
     * has its text parsed. */
    return answer_rc(svc_authorize_key(p->conn, KEY(k), &r, mosquitto_client_address(ev->client)));
}

/* ---- live store changes ---- */

static void kick(const char *cid, void *arg)
{
    (void)arg;
    /* Without its will: the client did not choose to go. */
    mosquitto_kick_client_by_clientid(cid, false);
}

/* Every WATCH_MS, on the broker's thread but off the message path: when
 * another process (exhookctl, a second broker) changed the store, every
 * verified connection is checked against it, and those that may no longer
 * log in are disconnected (svc_revalidate). */
static int on_tick_(int event, void *data, void *user)
{
    (void)event;
    (void)data;
    plugin *p = user;
    uint64_t now = now_ms();
    p->reloading = false;
    if (now < p->next_watch_ms) return MOSQ_ERR_SUCCESS;
    p->next_watch_ms = now + WATCH_MS;
    say_throttled(p, now);
    if (p->rechecked) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "exhook: %ld connected clients logged in again (a reload): %ld "
                             "password hashes computed",
                             p->rechecked, p->rehashed);
        p->rechecked = p->rehashed = 0;
    }
    svc_watch_step(p->conn, kick, p);
    return MOSQ_ERR_SUCCESS;
}

static int on_reload_(int event, void *data, void *user)
{
    (void)event;
    (void)data;
    plugin *p = user;
    svc_live_policy_reload(svc_live(p->s), "mosquitto reload");
    svc_reopen_logs(p->s); /* logrotate's postrotate: Mosquitto keeps SIGUSR1 for itself */
    /* Mosquitto re-runs basic auth for every client and persistent session
     * next, in this loop iteration (loop.c: the RELOAD event, then
     * mosquitto_security_apply_default); the next tick ends it. */
    p->reloading = true;
    /* Not SUCCESS: the RELOAD chain stops at the first callback that does
     * not defer, and a plugin loaded after this one must hear it too. */
    return MOSQ_ERR_PLUGIN_DEFER;
}

/* Was the connection's connect recorded (a verified login, revoked since
 * or not)? */
static int was_verified(const svc_client_view *v, void *arg)
{
    (void)arg;
    return v->state == SVC_CLIENT_KNOWN || v->revoked;
}

static int on_disconnect_(int event, void *data, void *user)
{
    (void)event;
    plugin *p = user;
    struct mosquitto_evt_disconnect *ev = data;
    conn_key k = {ev->client};
    const char *username = mosquitto_client_username(ev->client);
    svc_clients *t = svc_client_table(p->s);
    /* Only a login allowed here was recorded as connected (a user
     * changed by another plugin since finds no record: not recorded). */
    if (svc_clients_with(t, KEY(k), username, slen(username), was_verified, NULL)) {
        char reason[32];
        /* Mosquitto 2.0 passes -1 when it has no reason to give. */
        if (ev->reason >= 0) snprintf(reason, sizeof(reason), "reason %d", ev->reason);
        record(p, ev->client, false, ev->reason >= 0 ? reason : NULL);
    }
    svc_clients_disconnected(t, KEY(k), username, slen(username));
    return MOSQ_ERR_SUCCESS;
}

/* Each callback, then the log lines it queued (to_broker_log). */
#define WITH_LOG_FLUSH(name)                                                                       \
    static int name(int event, void *data, void *user)                                             \
    {                                                                                              \
        int rc = name##_(event, data, user);                                                       \
        if (log_queued) flush_log();                                                               \
        return rc;                                                                                 \
    }
WITH_LOG_FLUSH(on_basic_auth)
WITH_LOG_FLUSH(on_acl_check)
WITH_LOG_FLUSH(on_tick)
WITH_LOG_FLUSH(on_reload)
WITH_LOG_FLUSH(on_disconnect)

EXPORT int mosquitto_plugin_version(int count, const int *versions)
{
    for (int i = 0; i < count; i++)
        if (versions[i] == 5) return 5;
    return -1;
}

/* The settings, as plugin_opt_<key> (service/config.h): the same names and
 * ranges as the other front ends' config files; the defaults are theirs,
 * with the store and the policies relative to the broker's directory. */
static int read_options(svc_config *cfg, struct mosquitto_opt *opts, int nopts)
{
    svc_config_defaults(cfg, SVC_FOR_PLUGIN);
    snprintf(cfg->db, sizeof(cfg->db), "exhook.db");
    snprintf(cfg->policy, sizeof(cfg->policy), "policies");
    cfg->log_level = LOG_DEBUG; /* the broker's log_type decides what is shown */
    for (int i = 0; i < nopts; i++) {
        char msg[512];
        if (svc_config_set(cfg, opts[i].key, opts[i].value ? opts[i].value : "", msg,
                           sizeof(msg))) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "exhook: bad option plugin_opt_%s %s: %s",
                                 opts[i].key, opts[i].value ? opts[i].value : "", msg);
            return -1;
        }
    }
    return 0;
}

/* "No opinion" hands the decision to the next plugin, password_file or
 * allow_anonymous: say so where an operator looks. */
static void say_risks(plugin *p)
{
    const svc_config *cfg = svc_settings(p->s);
    if (cfg->unknown_ignore)
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "exhook: warning: plugin_opt_unknown_user ignore: a name that is not "
                             "in the store is left to the next plugin, password_file or "
                             "allow_anonymous, which may let it in");
    if (cfg->failed_ignore)
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "exhook: warning: plugin_opt_failed_action ignore: while the store "
                             "cannot be read, every login and check is left to the next plugin, "
                             "password_file or allow_anonymous, which may let everyone in");
    svc_policy *hp = svc_policy_get(svc_live(p->s));
    if (exh_policy_default(svc_policy_of(hp)) == EXH_IGNORE)
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "exhook: warning: the policy's `default ignore`: a publish or "
                             "subscribe no rule decides is left to the broker's other sources");
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "exhook: policy %s loaded: %u rules", cfg->policy,
                         exh_policy_rule_count(svc_policy_of(hp)));
    svc_policy_put(hp);
}

EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *pid, void **userdata,
                                 struct mosquitto_opt *opts, int nopts)
{
    svc_config cfg;
    if (read_options(&cfg, opts, nopts) < 0) return MOSQ_ERR_INVAL;
    svc_log_init("exhook", cfg.log_level);
    svc_log_sink(to_broker_log);
    plugin *p = calloc(1, sizeof(*p));
    if (!p) return MOSQ_ERR_NOMEM;
    p->pid = pid;
    /* Sessions name their node: brokers sharing one store are told apart. */
    if (cfg.node[0])
        snprintf(p->node, sizeof(p->node), "%s", cfg.node);
    else if (gethostname(p->node, sizeof(p->node) - 1) != 0)
        p->node[0] = '\0';
    /* Without a policy the broker must not start open: svc_new says why. */
    if (!(p->s = svc_new(&cfg))) {
        free(p);
        flush_log();
        return MOSQ_ERR_INVAL;
    }
    /* The store is opened now: a fault is said at start-up, not at the
     * first login.  Then the audit log's writer and the metrics listener,
     * if set (the service's only threads in the broker). */
    if (!(p->conn = svc_conn_new(p->s)) || svc_start(p->s, 0) < 0) {
        svc_conn_free(p->conn);
        svc_free(p->s);
        free(p);
        flush_log();
        return MOSQ_ERR_NOMEM;
    }
    flush_log();
    say_risks(p);
    *userdata = p;
    if (mosquitto_callback_register(pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_RELOAD, on_reload, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, p) ||
        mosquitto_callback_register(pid, MOSQ_EVT_TICK, on_tick, NULL, p))
        return MOSQ_ERR_UNKNOWN;
    return MOSQ_ERR_SUCCESS;
}

static void shutdown_event(const char *cid, const char *user, void *arg)
{
    (void)user;
    plugin *p = arg;
    exh_session_event ev = {.clientid = cid,
                            .reason = "broker shutdown",
                            .at = (int64_t)time(NULL),
                            .connected = false};
    svc_history_write(p->conn, &ev);
}

EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int nopts)
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
    svc_clients_each_online(svc_client_table(p->s), shutdown_event, p);
    svc_conn_free(p->conn);
    svc_free(p->s);
    flush_log();
    svc_log_sink(NULL);
    free(p);
    return MOSQ_ERR_SUCCESS;
}
