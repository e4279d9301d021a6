/*
 * config.c -- the front ends' settings (see config.h and the README).
 *
 *   # /etc/exhook/exhook.conf
 *   db = /var/lib/exhook/exhook.db
 *   policy = /etc/exhook/policies
 *   workers = 4                # password-checking threads
 *   cache_ttl = 300
 *   cache_max = 100000
 *   busy_timeout = 5000        # ms to wait for a locked store, then fail
 *   call_timeout = 5s          # the broker's: 4.x exhook.drivers.<type>.call_timeout,
 *                              # 4.3+/5.x exhook request_timeout (ms, or Ns / Nms)
 *   unknown_user = deny        # deny | ignore
 *   failed_action = deny       # deny | ignore
 *   log_level = info           # error | warn | info | debug
 *   argon2_m_kib = 19456       # cost of rehashed passwords
 *   argon2_t = 2
 *   argon2_p = 1
 *   lockout_failures = 10      # failed logins that lock a user name or address (0: off)
 *   lockout_window = 300       # ... within this time (seconds, or with ms, s, m, h)
 *   lockout_backoff = 60       # the first lock-out; each next one twice as long
 *   lockout_backoff_max = 1h   # ... up to this; also the quiet time that forgets them
 *   upgrade_hashes = true      # false for a runtime role that may not write users
 *   metrics_listen = 127.0.0.1:9100   # Prometheus /metrics (unset: off)
 *   audit_log = /var/log/exhook/audit.jsonl   # decision audit log (unset: off)
 *   audit_sample = 0           # share of allows written (denies and logins: all)
 *   audit_queue_kib = 8192     # records waiting for the file; more are dropped (counted)
 *   # exhook-grpc only
 *   listen = 127.0.0.1:9000
 *   threads = 2                # for authorize, sessions and the rest
 *   tls_cert = /etc/exhook/server.pem
 *   tls_key = /etc/exhook/server.key
 *   tls_ca = /etc/exhook/ca.pem          # client certificates' CA
 *   tls_client = none          # none | optional | required
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/policy.h"
#include "exhook/store.h"

static const svc_program *prog;

/* Where set() says what was wrong (no printing: the plugin's messages go
 * to the broker's log). */
typedef struct why {
    char *buf;
    size_t cap;
} why;

static int bad(why *w, const char *what, const char *value)
{
    snprintf(w->buf, w->cap, "bad %s: '%s'", what, value);
    return 2;
}

static int number(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi) return -1;
    *out = n;
    return 0;
}

/* A duration in ms: "500", "500ms" or "5s" (EMQX writes its timeouts
 * with a unit). */
static int duration_ms(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || errno || n < 0) return -1;
    if (!strcmp(end, "s")) {
        if (n > hi / 1000) return -1;
        n *= 1000;
    } else if (*end && strcmp(end, "ms")) {
        return -1;
    }
    if (n < lo || n > hi) return -1;
    *out = n;
    return 0;
}

/* A duration in ms, for settings counted in seconds: "300" (seconds),
 * or with a unit: "200ms", "30s", "5m", "1h". */
static int seconds_ms(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || errno || n < 0 || *v == '-' || *v == '+' || *v == ' ') return -1;
    long long unit = !*end || !strcmp(end, "s") ? 1000
                     : !strcmp(end, "ms")       ? 1
                     : !strcmp(end, "m")        ? 60000
                     : !strcmp(end, "h")        ? 3600000
                                                : 0;
    if (!unit || n > hi / unit || n * unit < lo) return -1;
    *out = n * unit;
    return 0;
}

static int path(why *w, char *dst, size_t cap, const char *key, const char *v)
{
    if (strlen(v) >= cap) return bad(w, key, v);
    snprintf(dst, cap, "%s", v);
    return 0;
}

/* Apply one setting, from the file or a flag ("cache-ttl" = "cache_ttl"). */
static int set(svc_config *c, const char *key_in, const char *v, why *w)
{
    char key[64];
    if (strlen(key_in) >= sizeof(key)) return bad(w, "setting", key_in);
    snprintf(key, sizeof(key), "%s", key_in);
    for (char *p = key; *p; p++)
        if (*p == '-') *p = '_';
    bool grpc = c->kind == SVC_FOR_GRPC, plugin = c->kind == SVC_FOR_PLUGIN;
    long n;
    if (!strcmp(key, "db") || (plugin && !strcmp(key, "database"))) {
        /* Mosquitto 2.0.11 refuses plugin option names under three
         * characters: plugin_opt_database is plugin_opt_db. */
        return path(w, c->db, sizeof(c->db), "db", v);
    } else if (!strcmp(key, "policy")) {
        return path(w, c->policy, sizeof(c->policy), "policy", v);
    } else if (!strcmp(key, "workers")) {
        if (number(v, 1, 256, &n)) return bad(w, "workers (1..256)", v);
        c->workers = (int)n;
    } else if (!strcmp(key, "cache_ttl")) {
        if (number(v, 0, 86400, &n)) return bad(w, "cache_ttl (0..86400 seconds)", v);
        c->cache_ttl = (uint32_t)n;
    } else if (!strcmp(key, "cache_max")) {
        if (number(v, 1, 10000000, &n)) return bad(w, "cache_max (1..10000000 entries)", v);
        c->cache_max = (uint32_t)n;
    } else if (!strcmp(key, "busy_timeout")) {
        if (number(v, 0, 600000, &n)) return bad(w, "busy_timeout (0..600000 ms)", v);
        c->busy_timeout_ms = (int)n;
    } else if (!strcmp(key, "call_timeout")) {
        if (duration_ms(v, 100, 600000, &n))
            return bad(w, "call_timeout (100ms..600s: the broker's hook call timeout)", v);
        c->call_timeout_ms = (int)n;
    } else if (!strcmp(key, "unknown_user")) {
        if (strcmp(v, "deny") && strcmp(v, "ignore"))
            return bad(w, "unknown_user (deny|ignore)", v);
        c->unknown_ignore = !strcmp(v, "ignore");
    } else if (!strcmp(key, "failed_action")) {
        if (strcmp(v, "deny") && strcmp(v, "ignore"))
            return bad(w, "failed_action (deny|ignore)", v);
        c->failed_ignore = !strcmp(v, "ignore");
    } else if (!strcmp(key, "log_level")) {
        static const char *const lv[] = {"error", "warn", "info", "debug"};
        int k = 0;
        while (k < 4 && strcmp(v, lv[k]))
            k++;
        if (k == 4) return bad(w, "log_level (error|warn|info|debug)", v);
        c->log_level = k;
    } else if (!strcmp(key, "argon2_m_kib") || !strcmp(key, "argon2_t") ||
               !strcmp(key, "argon2_p")) {
        if (number(v, 1, 1l << 22, &n)) return bad(w, key, v);
        if (key[7] == 'm')
            c->hash.m_kib = (uint32_t)n;
        else if (key[7] == 't')
            c->hash.t_cost = (uint32_t)n;
        else
            c->hash.lanes = (uint32_t)n;
    } else if (!strcmp(key, "lockout_failures")) {
        if (number(v, 0, 1000000, &n))
            return bad(w, "lockout_failures (0..1000000 failed logins; 0: lock-outs off)", v);
        c->lockout_failures = (uint32_t)n;
    } else if (!strcmp(key, "lockout_window") || !strcmp(key, "lockout_backoff") ||
               !strcmp(key, "lockout_backoff_max")) {
        /* 30 days at most: lock-out lengths stay under 2^32 ms (store.h) */
        int64_t ms;
        if (seconds_ms(v, 1, 30 * 86400000LL, &ms)) {
            char what[160];
            snprintf(what, sizeof(what),
                     "%s (1ms..30 days: seconds, or a number with ms, s, m or h)", key);
            return bad(w, what, v);
        }
        *(!strcmp(key, "lockout_window")    ? &c->lockout_window_ms
          : !strcmp(key, "lockout_backoff") ? &c->lockout_backoff_ms
                                            : &c->lockout_backoff_max_ms) = ms;
    } else if (!strcmp(key, "upgrade_hashes")) {
        if (strcmp(v, "true") && strcmp(v, "false"))
            return bad(w, "upgrade_hashes (true|false)", v);
        c->upgrade_hashes = !strcmp(v, "true");
    } else if (!strcmp(key, "metrics_listen")) {
        if (*v && !strchr(v, ':')) return bad(w, "metrics_listen (host:port, or empty: off)", v);
        return path(w, c->metrics_listen, sizeof(c->metrics_listen), "metrics_listen", v);
    } else if (!strcmp(key, "audit_log")) {
        return path(w, c->audit_log, sizeof(c->audit_log), "audit_log", v);
    } else if (!strcmp(key, "audit_sample")) {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        /* 0, or at least one in a million: a rate replay can scale by */
        if (!*v || *end || errno || !(d >= 0.0 && d <= 1.0) || (d > 0 && d < 1e-6))
            return bad(w, "audit_sample (0, or 0.000001..1: the share of allows written)", v);
        c->audit_sample = d;
    } else if (!strcmp(key, "audit_queue_kib")) {
        if (number(v, 64, 1 << 20, &n)) return bad(w, "audit_queue_kib (64..1048576)", v);
        c->audit_queue = (size_t)n << 10;
    } else if (grpc && !strcmp(key, "listen")) {
        if (!*v || !strchr(v, ':')) return bad(w, "listen (host:port)", v);
        return path(w, c->listen, sizeof(c->listen), "listen", v);
    } else if (grpc && !strcmp(key, "threads")) {
        if (number(v, 1, 64, &n)) return bad(w, "threads (1..64)", v);
        c->threads = (int)n;
    } else if (grpc && !strcmp(key, "tls_cert")) {
        return path(w, c->tls_cert, sizeof(c->tls_cert), "tls_cert", v);
    } else if (grpc && !strcmp(key, "tls_key")) {
        return path(w, c->tls_key, sizeof(c->tls_key), "tls_key", v);
    } else if (grpc && !strcmp(key, "tls_ca")) {
        return path(w, c->tls_ca, sizeof(c->tls_ca), "tls_ca", v);
    } else if (grpc && !strcmp(key, "tls_client")) {
        if (!strcmp(v, "none"))
            c->tls_client = SVC_TLS_CLIENT_NONE;
        else if (!strcmp(v, "optional"))
            c->tls_client = SVC_TLS_CLIENT_OPTIONAL;
        else if (!strcmp(v, "required"))
            c->tls_client = SVC_TLS_CLIENT_REQUIRED;
        else
            return bad(w, "tls_client (none|optional|required)", v);
    } else if (plugin && (!strcmp(key, "read_check") || !strcmp(key, "decision_cache"))) {
        if (strcmp(v, "true") && strcmp(v, "false")) return bad(w, key, v);
        *(key[0] == 'r' ? &c->read_check : &c->decision_cache) = !strcmp(v, "true");
    } else if (plugin && !strcmp(key, "node")) {
        /* EMQX names its node in every session event; Mosquitto has no
         * such name, and brokers sharing one store need one apart. */
        return path(w, c->node, sizeof(c->node), "node", v);
    } else if (plugin && !strcmp(key, "max_hashes_per_second")) {
        if (number(v, 0, 10000, &n)) return bad(w, "max_hashes_per_second (0..10000)", v);
        c->max_hashes = (uint32_t)n;
    } else {
        snprintf(w->buf, w->cap, "unknown setting '%s'", key_in);
        return 2;
    }
    return 0;
}

int svc_config_set(svc_config *c, const char *key, const char *value, char *msg, size_t cap)
{
    why w = {msg, cap};
    return set(c, key, value, &w);
}

void svc_config_defaults(svc_config *c, int kind)
{
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    snprintf(c->db, sizeof(c->db), "./exhook.db");
    snprintf(c->policy, sizeof(c->policy), "./policies");
    c->workers = 4;
    c->cache_ttl = 300;
    c->busy_timeout_ms = 5000;
    c->call_timeout_ms = 5000; /* EMQX's default, 4.x and 5.x alike */
    c->cache_max = 100000;     /* bounds the cache at ~15 MiB whatever the user count */
    c->log_level = LOG_INFO;
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:9000");
    c->threads = 2;
    /* Lock-outs on: 10 failures in 5 minutes lock a name or an address for
     * a minute, then 2, 4, ... up to an hour. */
    c->lockout_failures = 10;
    c->lockout_window_ms = 300000;
    c->lockout_backoff_ms = 60000;
    c->lockout_backoff_max_ms = 3600000;
    exh_hash_params_default(&c->hash);
    c->upgrade_hashes = true;
    c->audit_queue = 8u << 20; /* ~20,000 records of ~400 bytes */
    /* Delivery checks on: a subscription granted earlier (a session taken
     * over, a policy or group changed since) never delivers what the
     * policy refuses now, as Mosquitto's own acl_file behaves. */
    c->read_check = true;
    c->decision_cache = true;
    /* ~30 ms each: at most ~0.6 s of the broker's thread a second */
    c->max_hashes = 20;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int read_file(svc_config *c, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog->name, file, strerror(errno));
        return 2;
    }
    char line[8192];
    unsigned lineno = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof(line), f)) {
        lineno++;
        /* A comment starts a line or follows a blank: "policies#v2" is a
         * path, not "policies" and a comment. */
        for (char *h = line; (h = strchr(h, '#')); h++)
            if (h == line || h[-1] == ' ' || h[-1] == '\t') {
                *h = '\0';
                break;
            }
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "%s: %s:%u: expected 'key = value'\n", prog->name, file, lineno);
            rc = 2;
            break;
        }
        *eq = '\0';
        char msg[512];
        why w = {msg, sizeof(msg)};
        rc = set(c, trim(s), trim(eq + 1), &w);
        if (rc) fprintf(stderr, "%s: %s (in %s:%u)\n", prog->name, msg, file, lineno);
    }
    fclose(f);
    return rc;
}

int svc_config_risks(const svc_config *c, const exh_policy *p, const char **out, int max)
{
    int n = 0;
    if (c->unknown_ignore && n < max)
        out[n++] = "unknown_user = ignore: a login by a name that is not in the store gets no "
                   "answer (\"ignore\"), and the broker then decides alone: EMQX 4.x with its "
                   "default allow_anonymous = true, and EMQX 5.9+ without a built-in "
                   "authenticator, let that client in whatever its password (README: \"What "
                   "an ignore answer does\")";
    if (c->failed_ignore && n < max)
        out[n++] = "failed_action = ignore: while the store cannot be read, every login and "
                   "every ACL check of an unseen client gets no answer (\"ignore\"); on EMQX "
                   "4.x (allow_anonymous = true, acl_nomatch = allow by default) and 5.9+ "
                   "without a built-in authenticator everyone then gets in, wrong passwords "
                   "included";
    if (exh_store_location_has_password(c->db) && n < max)
        out[n++] = "the db URI holds a password, which every local user can read in the "
                   "process list (and anyone who can read the configuration): put it in a "
                   "password file (PGPASSFILE, ~/.pgpass) or connect over the Unix socket with "
                   "peer authentication";
    if (p && exh_policy_default(p) == EXH_IGNORE && n < max)
        out[n++] = "the policy's `default ignore`: a publish or subscribe no rule decides gets "
                   "no answer, and EMQX's own defaults (4.x acl_nomatch = allow, 5.x "
                   "authorization.no_match = allow) then allow it";
    return n;
}

/* Validate everything the program needs before serving. */
static int check(const svc_config *c)
{
    exh_policy *p;
    exh_error err;
    char buf[2048];
    if (exh_policy_load(c->policy, &p, &err) != EXH_OK) {
        exh_error_format(&err, buf, sizeof(buf));
        fprintf(stderr, "%s", buf);
        return 2;
    }
    unsigned rules = exh_policy_rule_count(p);
    const char *risks[8];
    int nrisks = svc_config_risks(c, p, risks, 8);
    exh_policy_free(p);
    for (int i = 0; i < nrisks; i++)
        fprintf(stderr, "%s: warning: %s\n", prog->name, risks[i]);
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    exh_store *s;
    if (exh_store_open(c->db, &o, &s, &err) != EXH_OK) {
        exh_error_format(&err, buf, sizeof(buf));
        fprintf(stderr, "%s", buf);
        return 2;
    }
    exh_store_close(s);
    if (c->kind == SVC_FOR_GRPC) {
        const char *files[] = {c->tls_cert, c->tls_key, c->tls_ca};
        for (int i = 0; i < 3; i++) {
            FILE *f = *files[i] ? fopen(files[i], "r") : NULL;
            if (*files[i] && !f) {
                fprintf(stderr, "%s: %s: %s\n", prog->name, files[i], strerror(errno));
                return 2;
            }
            if (f) fclose(f);
        }
    }
    char shown[4096]; /* a PostgreSQL URI without its password */
    exh_store_display_name(c->db, shown, sizeof(shown));
    fprintf(stderr, "%s: configuration ok: policy %s (%u rules), store %s\n", prog->name, c->policy,
            rules, shown);
    return 0;
}

/* Settings that only make sense together. */
static int consistent(const svc_config *c)
{
    if (c->kind != SVC_FOR_GRPC) return 0;
    if (!*c->tls_cert != !*c->tls_key) {
        fprintf(stderr, "%s: tls_cert and tls_key go together\n", prog->name);
        return 2;
    }
    if (*c->tls_ca && c->tls_client == SVC_TLS_CLIENT_NONE) {
        fprintf(stderr,
                "%s: tls_ca is only used to check client certificates: set tls_client "
                "optional or required (or drop tls_ca)\n",
                prog->name);
        return 2;
    }
    if (c->tls_client != SVC_TLS_CLIENT_NONE && (!*c->tls_cert || !*c->tls_ca)) {
        fprintf(stderr, "%s: tls_client %s needs tls_cert, tls_key and tls_ca\n", prog->name,
                c->tls_client == SVC_TLS_CLIENT_REQUIRED ? "required" : "optional");
        return 2;
    }
    return 0;
}

int svc_config_load(int argc, char **argv, const svc_program *program, svc_config *c)
{
    prog = program;
    svc_config_defaults(c, program->kind);
    const char *env;
    if ((env = getenv("EXHOOK_DB")) && *env) snprintf(c->db, sizeof(c->db), "%s", env);
    if ((env = getenv("EXHOOK_POLICY")) && *env) snprintf(c->policy, sizeof(c->policy), "%s", env);
    int check_only = 0, rc;
    /* The config file first, so flags override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") && (rc = read_file(c, argv[i + 1]))) return rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(prog->usage, stderr);
            return 0;
        }
        if (!strcmp(a, "--check-config")) {
            check_only = 1;
        } else if (c->kind == SVC_FOR_DRIVER && !strcmp(a, "--nouse_stdio")) {
            c->nouse_stdio = true;
        } else if (!strncmp(a, "--", 2) && i + 1 < argc) {
            char msg[512];
            why w = {msg, sizeof(msg)};
            if (strcmp(a, "--config") && (rc = set(c, a + 2, argv[i + 1], &w))) {
                fprintf(stderr, "%s: %s\n", prog->name, msg);
                return rc;
            }
            i++;
        } else {
            fprintf(stderr, "%s: unknown or incomplete argument '%s'\n%s", prog->name, a,
                    prog->usage);
            return 2;
        }
    }
    if ((rc = consistent(c))) return rc;
    return check_only ? check(c) : -1;
}
