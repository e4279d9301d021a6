/*
 * error.c -- rendering errors as values for front ends.
 */
#include "exhook/error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error_int.h"
#include "invariant.h"

void exh_error_clear(exh_error *err)
{
    if (!err) return;
    memset(err, 0, sizeof(*err));
}

exh_status exh_error_vset(exh_error *err, exh_status st, const char *file, unsigned line,
                          unsigned col, const char *fmt, va_list ap)
{
    if (!err) return st;
    exh_error_clear(err);
    err->status = st;
    if (file) snprintf(err->file, sizeof(err->file), "%s", file);
    err->line = line;
    err->col = col;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    return st;
}

exh_status exh_error_set(exh_error *err, exh_status st, const char *file, unsigned line,
                         unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    exh_error_vset(err, st, file, line, col, fmt, ap);
    va_end(ap);
    return st;
}

exh_status exh_error_nomem(exh_error *err)
{
    return exh_error_set(err, EXH_ENOMEM, NULL, 0, 0, "out of memory");
}

const char *exh_status_str(exh_status status)
{
    switch (status) {
    case EXH_OK:
        return "ok";
    case EXH_ENOMEM:
        return "out of memory";
    case EXH_EIO:
        return "i/o error";
    case EXH_ESYNTAX:
        return "syntax error";
    case EXH_EINVAL:
        return "invalid argument";
    case EXH_ENOTFOUND:
        return "not found";
    case EXH_EEXIST:
        return "already exists";
    case EXH_ESTORE:
        return "credential store error";
    }
    return "unknown error";
}

/*
 * The caret line copies the source line's tabs so the caret lands under
 * the right character whatever the terminal's tab width is, and takes one
 * blank per UTF-8 character, not per byte (columns count bytes).
 */
size_t exh_error_format(const exh_error *err, char *buf, size_t size)
{
    size_t n = 0;
    int w;
    char tmp[1];
    if (!buf || size == 0) {
        buf = tmp;
        size = 1;
    }
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        w = snprintf(buf + (n < size ? n : size - 1), n < size ? size - n : 1, __VA_ARGS__);       \
        if (w > 0) n += (size_t)w;                                                                 \
    } while (0)
    if (err->file[0] && err->line)
        EMIT("%s:%u:%u: error: %s\n", err->file, err->line, err->col ? err->col : 1, err->message);
    else if (err->file[0])
        EMIT("%s: error: %s\n", err->file, err->message);
    else
        EMIT("error: %s\n", err->message);
    if (err->line && err->source[0]) {
        EMIT("%s\n", err->source);
        size_t srclen = strlen(err->source);
        /* A very long line is shown cut short: a caret past its end would
         * be a screen of blanks, so point at the cut and name the column. */
        bool past = err->col > srclen + 1 && srclen + 1 >= sizeof(err->source);
        unsigned col = past ? (unsigned)srclen + 1 : err->col;
        for (unsigned i = 1; i < col; i++) {
            unsigned char b = i - 1 < srclen ? (unsigned char)err->source[i - 1] : ' ';
            if ((b & 0xC0) == 0x80) continue; /* continues the character before */
            EMIT("%c", b == '\t' ? '\t' : ' ');
        }
        if (past)
            EMIT("^ (column %u: past the %zu bytes of the line shown)\n", err->col, srclen);
        else
            EMIT("^\n");
    }
#undef EMIT
    return n;
}

/* Out of line and cold, so a check costs its test and a never-taken
 * branch.  The volatile copies keep the arguments in the core even when
 * the caller's frame is optimized. */
static const char *volatile failed_expr, *volatile failed_file;
static volatile int failed_line;

void exh_assert_fail(const char *expr, const char *file, int line)
{
    failed_expr = expr;
    failed_file = file;
    failed_line = line;
    abort();
}
