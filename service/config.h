/*
 * config.h -- the front ends' settings: a small "key = value" file
 * (--config FILE) and flags (--key value) that override it.  One set of
 * keys for every front end; those that only mean something to one of them
 * (nouse_stdio for the driver, listen and tls_* for the gRPC server,
 * read_check, decision_cache and max_hashes_per_second for the Mosquitto
 * plugin, which sets them as plugin_opt_<key>) are refused by the others.
 */
#ifndef EXHOOK_SERVICE_CONFIG_H
#define EXHOOK_SERVICE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "exhook/hash.h"
#include "log.h"

enum { SVC_TLS_CLIENT_NONE, SVC_TLS_CLIENT_OPTIONAL, SVC_TLS_CLIENT_REQUIRED };

typedef struct svc_config {
    int kind; /* SVC_FOR_*: which front end's keys are accepted */
    char db[4096];
    char policy[4096];
    int workers; /* password-checking threads */
    uint32_t cache_ttl;
    uint32_t cache_max;  /* entries; ~150 bytes each */
    int busy_timeout_ms; /* a locked store: wait this long, then fail */
    int call_timeout_ms; /* the broker's timeout for a hook call (deadline.h) */
    bool unknown_ignore; /* unknown users: `ok` (no opinion) instead of deny */
    bool failed_ignore;  /* store unavailable: `ok` instead of deny */
    int log_level;
    exh_hash_params hash;
    /* Lock-outs (lockout.c): failures that lock a user name or peer
     * address (0: off), the window they must fall in, the first lock-out
     * and the longest (each next one doubles), all times in ms. */
    uint32_t lockout_failures;
    int64_t lockout_window_ms, lockout_backoff_ms, lockout_backoff_max_ms;
    /* Rehash a weaker stored hash after a good login (the store's
     * upgrade_on_login).  Off for a runtime role that may not write users
     * (exhookctl init --runtime-role): each try would cost a hash and a
     * refused write. */
    bool upgrade_hashes;
    /* observability (every front end) */
    char metrics_listen[512]; /* host:port for GET /metrics; "": off */
    char audit_log[4096];     /* the decision audit log; "": off */
    double audit_sample;      /* 0..1: the share of allows written */
    size_t audit_queue;       /* bytes of records waiting for the file */
    /* exhook-driver */
    bool nouse_stdio; /* frames on fds 3/4 */
    /* exhook-grpc */
    char listen[512];    /* host:port */
    int threads;         /* threads for authorize and everything but authenticate */
    char tls_cert[4096]; /* PEM chain; with tls_key: TLS on */
    char tls_key[4096];
    char tls_ca[4096]; /* PEM CAs for client certificates */
    int tls_client;    /* SVC_TLS_CLIENT_* */
    /* the Mosquitto plugin (plugin_opt_<key>) */
    bool read_check;     /* check deliveries (MOSQ_ACL_READ) against the policy */
    bool decision_cache; /* keep each connection's last decisions (clients.h) */
    uint32_t max_hashes; /* password hashes a second on the broker's thread; 0: no limit */
    char node[256];      /* the node named in its session history ("": the host name) */
} svc_config;

enum { SVC_FOR_DRIVER = 1, SVC_FOR_GRPC = 2, SVC_FOR_PLUGIN = 3 };

/* The defaults for a front end of that kind (no environment, no file). */
void svc_config_defaults(svc_config *c, int kind);

/* One setting ("cache_ttl" or "cache-ttl") with the ranges every front end
 * gets; 0, or non-zero with what was wrong in msg. */
int svc_config_set(svc_config *c, const char *key, const char *value, char *msg, size_t cap);

typedef struct svc_program {
    const char *name;  /* prefix of every message */
    const char *usage; /* printed by --help and after a bad argument */
    int kind;          /* SVC_FOR_* */
} svc_program;

/* Defaults, then the config file (--config), then flags.  Returns -1 to
 * go on serving, or the exit status (after --help, --check-config or an
 * error, which it has printed to stderr). */
int svc_config_load(int argc, char **argv, const svc_program *prog, svc_config *c);

/* Settings (and a policy: NULL to skip) that can answer "no opinion",
 * which some EMQX versions read as "let the client in": one sentence
 * each, in plain words, up to max.  Said at start-up and by
 * --check-config. */
struct exh_policy;
int svc_config_risks(const svc_config *c, const struct exh_policy *p, const char **out, int max);

#endif
