/*
 * readfile.h -- reading a whole file into memory, for the library's own
 * modules and exhookctl (which links the static library).  Not public API.
 *
 * Policies, test files and import files are all parsed from memory, and
 * each used to be read by its own loop with its own idea of what a
 * directory, a FIFO or a huge file deserves.  This is the one reader.
 */
#ifndef EXH_READFILE_H
#define EXH_READFILE_H

#include <stddef.h>

#include "exhook/error.h"

/* A policy or test file larger than this is refused unread: lines and
 * columns are 32-bit, and the whole text is held while it is compiled.
 * The largest policy DESIGN §6 plans for (100k rules) is about 15 MB. */
#define EXH_TEXT_FILE_MAX ((size_t)256 << 20)

/* What kinds of file a read accepts.  A directory never is. */
typedef enum exh_read_kind {
    /* A regular file only: a FIFO would wait for a writer forever and a
     * device may never end (/dev/zero).  Opening does not block. */
    EXH_READ_REGULAR,
    /* Also a FIFO or pipe, for a path named on purpose (`--policy <(...)`). */
    EXH_READ_OR_FIFO,
    /* Anything but a directory (`import /dev/stdin`); the cap bounds it. */
    EXH_READ_ANY,
} exh_read_kind;

/*
 * Read path whole into a malloc'd buffer, NUL-terminated (the NUL is not
 * counted in *len; the text itself may contain NULs).  At most max bytes:
 * a larger file is refused with EXH_EINVAL, a regular file before any of
 * it is read.
 *
 * On failure *text is NULL and err names the file, with the message
 * "<what>: <why>" -- what is the caller's verb ("cannot read policy";
 * NULL means "cannot read"), why the system's errno text or "is a
 * directory", "not a regular file", "larger than N MiB (the limit)", "out
 * of memory".  Status: EXH_EIO, EXH_EINVAL (too large) or EXH_ENOMEM.
 */
exh_status exh_read_file(const char *path, exh_read_kind kind, size_t max, const char *what,
                         char **text, size_t *len, exh_error *err);

#endif
