/*
 * error_int.h -- filling an exh_error, for the library's own modules (and
 * exhookctl, which links the static library).  Not public API: a caller
 * of the library reads errors, it does not make them.
 */
#ifndef EXH_ERROR_INT_H
#define EXH_ERROR_INT_H

#include <stdarg.h>

#include "exhook/error.h"

/*
 * Clear err, then set its status, file (NULL: not about a file), line and
 * column (0: not applicable) and the printf-style message.  A NULL err is
 * allowed (the caller did not ask for details).  Returns st, so a failing
 * path reads `return exh_error_set(err, EXH_EIO, path, 0, 0, "...")`.
 * Fields too long for the error are cut, never overflowed.
 */
exh_status exh_error_set(exh_error *err, exh_status st, const char *file, unsigned line,
                         unsigned col, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* exh_error_set with the message's arguments as a va_list. */
exh_status exh_error_vset(exh_error *err, exh_status st, const char *file, unsigned line,
                          unsigned col, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

/* The common case: out of memory, about nothing in particular. */
exh_status exh_error_nomem(exh_error *err);

#endif
