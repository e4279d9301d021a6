/*
 * config.c -- exhook-driver's settings (see config.h and the README).
 *
 *   # /etc/exhook/driver.conf
 *   db = /var/lib/exhook/exhook.db
 *   policy = /etc/exhook/policies
 *   workers = 4
 *   cache_ttl = 300
 *   cache_max = 100000
 *   busy_timeout = 5000        # ms to wait for a locked store, then fail
 *   unknown_user = deny        # deny | ignore
 *   failed_action = deny       # deny | ignore
 *   log_level = info           # error | warn | info | debug
 *   argon2_m_kib = 19456       # cost of rehashed passwords
 *   argon2_t = 2
 *   argon2_p = 1
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/policy.h"
#include "exhook/store.h"

static const char usage[] =
    "usage: exhook-driver [--config FILE] [--db PATH] [--policy PATH] [--workers N]\n"
    "                     [--cache-ttl SECONDS] [--cache-max N] [--unknown-user deny|ignore]\n"
    "                     [--failed-action deny|ignore] [--busy-timeout MS]\n"
    "                     [--log-level error|warn|info|debug]\n"
    "                     [--nouse_stdio] [--check-config]\n"
    "\n"
    "The EMQX extension-hook port program: the broker spawns it with\n"
    "open_port({spawn, Cmd}, [{packet,4}, binary, exit_status]) and calls it for\n"
    "client_authenticate, client_check_acl, client_connected and\n"
    "client_disconnected.  Frames on stdin/stdout (fds 3/4 with --nouse_stdio),\n"
    "logs on stderr.  SIGHUP or a change to the policy files reloads the policy.\n"
    "--check-config validates the settings, the policy and the store, then exits.\n";

static int bad(const char *what, const char *value)
{
    fprintf(stderr, "exhook-driver: bad %s: '%s'\n", what, value);
    return 2;
}

/* Apply one setting, from the file or a flag. */
static int set(driver_config *c, const char *key, const char *v)
{
    char *end;
    if (!strcmp(key, "db")) {
        snprintf(c->db, sizeof(c->db), "%s", v);
    } else if (!strcmp(key, "policy")) {
        snprintf(c->policy, sizeof(c->policy), "%s", v);
    } else if (!strcmp(key, "workers")) {
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 256) return bad("workers (1..256)", v);
        c->workers = (int)n;
    } else if (!strcmp(key, "cache_ttl") || !strcmp(key, "cache-ttl")) {
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 86400) return bad("cache_ttl (0..86400 seconds)", v);
        c->cache_ttl = (uint32_t)n;
    } else if (!strcmp(key, "cache_max") || !strcmp(key, "cache-max")) {
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 10000000) return bad("cache_max (1..10000000 entries)", v);
        c->cache_max = (uint32_t)n;
    } else if (!strcmp(key, "busy_timeout") || !strcmp(key, "busy-timeout")) {
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 600000) return bad("busy_timeout (0..600000 ms)", v);
        c->busy_timeout_ms = (int)n;
    } else if (!strcmp(key, "unknown_user") || !strcmp(key, "unknown-user")) {
        if (strcmp(v, "deny") && strcmp(v, "ignore")) return bad("unknown_user (deny|ignore)", v);
        c->unknown_ignore = !strcmp(v, "ignore");
    } else if (!strcmp(key, "failed_action") || !strcmp(key, "failed-action")) {
        if (strcmp(v, "deny") && strcmp(v, "ignore")) return bad("failed_action (deny|ignore)", v);
        c->failed_ignore = !strcmp(v, "ignore");
    } else if (!strcmp(key, "log_level") || !strcmp(key, "log-level")) {
        static const char *const lv[] = {"error", "warn", "info", "debug"};
        int k = 0;
        while (k < 4 && strcmp(v, lv[k]))
            k++;
        if (k == 4) return bad("log_level (error|warn|info|debug)", v);
        c->log_level = k;
    } else if (!strcmp(key, "argon2_m_kib") || !strcmp(key, "argon2_t") ||
               !strcmp(key, "argon2_p")) {
        unsigned long n = strtoul(v, &end, 10);
        if (*end || !*v || n == 0 || n > (1ul << 22)) return bad(key, v);
        if (key[7] == 'm')
            c->hash.m_kib = (uint32_t)n;
        else if (key[7] == 't')
            c->hash.t_cost = (uint32_t)n;
        else
            c->hash.lanes = (uint32_t)n;
    } else {
        fprintf(stderr, "exhook-driver: unknown setting '%s'\n", key);
        return 2;
    }
    return 0;
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

static int read_file(driver_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "exhook-driver: %s: %s\n", path, strerror(errno));
        return 2;
    }
    char line[8192];
    unsigned lineno = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "exhook-driver: %s:%u: expected 'key = value'\n", path, lineno);
            rc = 2;
            break;
        }
        *eq = '\0';
        rc = set(c, trim(s), trim(eq + 1));
        if (rc) fprintf(stderr, "exhook-driver: (in %s:%u)\n", path, lineno);
    }
    fclose(f);
    return rc;
}

/* Validate everything the driver needs before serving. */
static int check(const driver_config *c)
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
    exh_policy_free(p);
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
    fprintf(stderr, "exhook-driver: configuration ok: policy %s (%u rules), store %s\n", c->policy,
            rules, c->db);
    return 0;
}

int config_load(int argc, char **argv, driver_config *c)
{
    memset(c, 0, sizeof(*c));
    const char *env;
    snprintf(c->db, sizeof(c->db), "%s", (env = getenv("EXHOOK_DB")) && *env ? env : "./exhook.db");
    snprintf(c->policy, sizeof(c->policy), "%s",
             (env = getenv("EXHOOK_POLICY")) && *env ? env : "./policies");
    c->workers = 4;
    c->cache_ttl = 300;
    c->busy_timeout_ms = 5000;
    c->cache_max = 100000; /* bounds the cache at ~15 MiB whatever the user count */
    c->log_level = LOG_INFO;
    exh_hash_params_default(&c->hash);
    int check_only = 0, rc;
    /* The config file first, so flags override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") && (rc = read_file(c, argv[i + 1]))) return rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stderr);
            return 0;
        }
        if (!strcmp(a, "--check-config")) {
            check_only = 1;
        } else if (!strcmp(a, "--nouse_stdio")) {
            c->nouse_stdio = true;
        } else if (!strncmp(a, "--", 2) && i + 1 < argc) {
            if (strcmp(a, "--config") && (rc = set(c, a + 2, argv[i + 1]))) return rc;
            i++;
        } else {
            fprintf(stderr, "exhook-driver: unknown or incomplete argument '%s'\n%s", a, usage);
            return 2;
        }
    }
    return check_only ? check(c) : -1;
}
