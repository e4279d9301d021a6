/*
 * error.h -- errors as values.
 *
 * Every fallible library call returns an exh_status and, where the caller
 * passed one, fills an exh_error.  Policy errors carry the file, line and
 * column they point at and a copy of the offending source line, so a front
 * end can show them the way a C compiler does.  The library never prints.
 */
#ifndef EXHOOK_ERROR_H
#define EXHOOK_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef enum exh_status {
    EXH_OK = 0,
    EXH_ENOMEM,    /* out of memory */
    EXH_EIO,       /* a file could not be read or written */
    EXH_ESYNTAX,   /* a policy or test file is malformed */
    EXH_EINVAL,    /* an argument or request is invalid */
    EXH_ENOTFOUND, /* no such user (or group membership) */
    EXH_EEXIST,    /* already exists */
    EXH_ESTORE,    /* the credential store failed (SQLite error, corruption, busy) */
} exh_status;

typedef struct exh_error {
    exh_status status;
    char file[512];    /* "" when the error is not about a file */
    unsigned line;     /* 1-based; 0 when not applicable */
    unsigned col;      /* 1-based byte column; 0 when not applicable */
    char message[512]; /* what was wrong and what was expected */
    char source[512];  /* the physical line the error points into */
} exh_error;

/* Reset an error to "no error". */
void exh_error_clear(exh_error *err);

/*
 * Render "file:line:col: error: message", then the source line and a caret
 * under the column, each line ending in '\n'.  Returns the length the full
 * text needs (like snprintf); the output is always NUL-terminated.
 */
size_t exh_error_format(const exh_error *err, char *buf, size_t size);

/* A short name for a status ("syntax error", "out of memory", ...). */
const char *exh_status_str(exh_status status);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
