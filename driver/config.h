/*
 * config.h -- exhook-driver's settings: a small config file and flags.
 */
#ifndef EXH_DRIVER_CONFIG_H
#define EXH_DRIVER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "exhook/hash.h"

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

typedef struct driver_config {
    char db[4096];
    char policy[4096];
    int workers;
    uint32_t cache_ttl;
    uint32_t cache_max;  /* entries; ~150 bytes each */
    int busy_timeout_ms; /* a locked store: wait this long, then fail */
    bool unknown_ignore; /* unknown users: `ok` (no opinion) instead of deny */
    bool failed_ignore;  /* store unavailable: `ok` instead of deny */
    int log_level;
    bool nouse_stdio; /* frames on fds 3/4 */
    exh_hash_params hash;
} driver_config;

/* Defaults, then the config file (--config), then flags.  Returns -1 to
 * go on serving, or the exit status (after --help, --check-config or an
 * error, which it has printed to stderr). */
int config_load(int argc, char **argv, driver_config *c);

#endif
