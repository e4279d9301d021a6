/*
 * log.h -- the front ends' log: one line per event on stderr, prefixed
 * with the program's name and the level, or into the broker's own log (the
 * Mosquitto plugin sets a sink).  The library never prints; the front ends
 * built on it say what happened here.
 */
#ifndef EXHOOK_SERVICE_LOG_H
#define EXHOOK_SERVICE_LOG_H

#include "exhook/error.h"

enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* prog: e.g. "exhook-driver"; level: the most verbose level written. */
void svc_log_init(const char *prog, int level);

/* Lines go to fn (without the program's name and level: the sink adds
 * what its log wants) instead of stderr; NULL: stderr again. */
void svc_log_sink(void (*fn)(int level, const char *line));

void svc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "what: <the error as exh_error_format prints it, on one line>" */
void svc_log_error(int level, const char *what, const exh_error *err);

#endif
