/*
 * log.c -- see log.h.  Lines from several threads never interleave.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *prog_name = "exhook";
static int max_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*sink)(int level, const char *line);

void svc_log_sink(void (*fn)(int level, const char *line))
{
    sink = fn;
}

void svc_log_init(const char *prog, int level)
{
    prog_name = prog;
    max_level = level;
}

void svc_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > max_level) return;
    if (sink) {
        char line[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        sink(level, line);
        return;
    }
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s: %s: ", prog_name, names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&log_lock);
}

void svc_log_error(int level, const char *what, const exh_error *err)
{
    char buf[2048];
    exh_error_format(err, buf, sizeof(buf));
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    svc_log(level, "%s: %s", what, buf);
}
