/*
 * readfile.c -- the one whole-file reader (readfile.h).
 */
#include "readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error_int.h"

/* "1 GiB", "256 MiB" or "1000 bytes": a limit as an operator wrote it. */
static void size_text(size_t n, char *buf, size_t size)
{
    if (n >= ((size_t)1 << 30) && n % ((size_t)1 << 30) == 0)
        snprintf(buf, size, "%zu GiB", n >> 30);
    else if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
        snprintf(buf, size, "%zu MiB", n >> 20);
    else
        snprintf(buf, size, "%zu bytes", n);
}

static exh_status no_memory(exh_error *err, const char *path, const char *what)
{
    return exh_error_set(err, EXH_ENOMEM, path, 0, 0, "%s: out of memory", what);
}

static exh_status too_large(exh_error *err, const char *path, const char *what, size_t max)
{
    char lim[32];
    size_text(max, lim, sizeof(lim));
    return exh_error_set(err, EXH_EINVAL, path, 0, 0, "%s: larger than %s (the limit)", what, lim);
}

/* Read to EOF into buf (capacity *cap, *len used), growing it by doubling
 * and keeping one byte for the NUL.  A full buffer is grown only once a
 * one-byte read shows there is more: a regular file sized exactly right
 * is then read without a copy. */
static exh_status read_fd(int fd, char **buf, size_t *cap, size_t *len, size_t max,
                          const char *path, const char *what, exh_error *err)
{
    for (;;) {
        ssize_t r;
        if (*len + 1 == *cap) {
            char probe;
            r = read(fd, &probe, 1);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) break;
            if (r == 0) return EXH_OK;
            if (*len >= max) return too_large(err, path, what, max);
            if (*cap > SIZE_MAX / 2) return no_memory(err, path, what);
            char *nb = realloc(*buf, *cap * 2);
            if (!nb) return no_memory(err, path, what);
            *buf = nb;
            *cap *= 2;
            (*buf)[(*len)++] = probe;
            continue;
        }
        r = read(fd, *buf + *len, *cap - *len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) return EXH_OK;
        *len += (size_t)r;
        if (*len > max) return too_large(err, path, what, max);
    }
    return exh_error_set(err, EXH_EIO, path, 0, 0, "%s: %s", what, strerror(errno));
}

exh_status exh_read_file(const char *path, exh_read_kind kind, size_t max, const char *what,
                         char **text, size_t *len, exh_error *err)
{
    *text = NULL;
    *len = 0;
    if (!what) what = "cannot read";
    /* O_NONBLOCK when only a regular file will do: opening a FIFO must not
     * wait for a writer just to be refused.  A FIFO that is wanted is
     * opened blocking, so its writer is waited for as a shell user
     * expects. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | (kind == EXH_READ_REGULAR ? O_NONBLOCK : 0));
    if (fd < 0) return exh_error_set(err, EXH_EIO, path, 0, 0, "%s: %s", what, strerror(errno));
    struct stat sb;
    const char *why = NULL;
    if (fstat(fd, &sb) != 0)
        why = strerror(errno);
    else if (S_ISDIR(sb.st_mode))
        why = "is a directory";
    else if (!S_ISREG(sb.st_mode) && kind != EXH_READ_ANY &&
             !(kind == EXH_READ_OR_FIFO && S_ISFIFO(sb.st_mode)))
        why = "not a regular file";
    if (why) {
        exh_error_set(err, EXH_EIO, path, 0, 0, "%s: %s", what, why);
        close(fd);
        return EXH_EIO;
    }
    if (S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > max) {
        close(fd);
        return too_large(err, path, what, max);
    }
    /* A regular file's size is known: one buffer of that size, grown only
     * if the file grew meanwhile.  A pipe starts at 64 KiB. */
    size_t cap = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : 65536;
    size_t n = 0;
    char *buf = malloc(cap);
    exh_status st =
        buf ? read_fd(fd, &buf, &cap, &n, max, path, what, err) : no_memory(err, path, what);
    close(fd);
    if (st) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return EXH_OK;
}
