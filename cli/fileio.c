/*
 * fileio.c -- atomic replacement, the edit lock, unified diffs (fileio.h).
 */
#define _DEFAULT_SOURCE /* flock(2) */

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The directory part of path ("." when there is none); malloc'd. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Make the rename itself durable: without this a crash can bring back
 * the old directory entry. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Give the temporary file what the original had.  A non-root user cannot
 * give a file away (EPERM); the file then stays theirs, as an editor's
 * save would leave it. */
static int copy_attrs(int fd, const struct stat *sb)
{
    if (fchown(fd, sb->st_uid, sb->st_gid) != 0 && errno != EPERM) return -1;
    return fchmod(fd, sb->st_mode & 07777);
}

static int replace(const char *real, const char *text, size_t len)
{
    struct stat sb;
    if (stat(real, &sb) != 0) return -1;
    char *dir = dir_of(real);
    const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
    size_t tn = dir ? strlen(dir) + strlen(base) + 16 : 0;
    char *tmp = dir ? malloc(tn) : NULL;
    if (!tmp) {
        free(dir);
        errno = ENOMEM;
        return -1;
    }
    snprintf(tmp, tn, "%s/.%s.XXXXXX", dir, base);
    int fd = mkstemp(tmp);
    int rc = fd < 0 ? -1 : 0;
    if (rc == 0 && (write_all(fd, text, len) || copy_attrs(fd, &sb) || fsync(fd))) rc = -1;
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0) rc = -1, e = errno;
    if (rc == 0 && rename(tmp, real) != 0) rc = -1, e = errno;
    if (rc != 0 && fd >= 0) unlink(tmp);
    /* The file is replaced by now; only its durability is in doubt. */
    if (rc == 0 && sync_dir(dir) != 0)
        fprintf(stderr, "%s: warning: cannot fsync the directory: %s\n", dir, strerror(errno));
    free(tmp);
    free(dir);
    errno = e;
    return rc;
}

int write_atomic(const char *path, const char *text, size_t len)
{
    char *real = realpath(path, NULL);
    int rc = real ? replace(real, text, len) : -1;
    if (rc != 0) fprintf(stderr, "%s: error: cannot write: %s\n", path, strerror(errno));
    free(real);
    return rc;
}

int edit_lock(const char *path)
{
    char *dir = is_dir(path) ? strdup(path) : dir_of(path);
    size_t n = dir ? strlen(dir) + sizeof("/.exhookctl.lock") : 0;
    char *lock = dir ? malloc(n) : NULL;
    if (!lock) {
        free(dir);
        fprintf(stderr, "exhookctl: out of memory\n");
        return -1;
    }
    snprintf(lock, n, "%s/.exhookctl.lock", dir);
    free(dir);
    /* Read-only: flock needs no write access, and closing it then is no
     * "file written" event for a front end watching the directory. */
    int fd = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : 0;
    while (rc == 0 && flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) rc = -1;
    if (rc != 0) {
        fprintf(stderr, "%s: error: cannot lock: %s\n", lock, strerror(errno));
        if (fd >= 0) close(fd);
        fd = -1;
    }
    free(lock);
    return fd;
}

void edit_unlock(int fd)
{
    if (fd >= 0) close(fd); /* closing the only descriptor releases the flock */
}

size_t line_offset(const char *text, size_t len, unsigned line)
{
    size_t off = 0;
    for (unsigned l = 1; l < line; l++) {
        const char *nl = memchr(text + off, '\n', len - off);
        if (!nl) return len;
        off = (size_t)(nl - text) + 1;
    }
    return off;
}

unsigned line_at(const char *text, size_t off)
{
    unsigned line = 1;
    for (size_t i = 0; i < off; i++)
        line += text[i] == '\n';
    return line;
}

/* ---- unified diff ---- */

typedef struct lines {
    const char **at; /* start of each line */
    size_t *len;     /* its length, newline included */
    size_t n;
} lines;

static int split(const char *t, size_t n, lines *l)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += t[i] == '\n';
    count += n && t[n - 1] != '\n';
    l->at = malloc((count + 1) * sizeof(*l->at));
    l->len = malloc((count + 1) * sizeof(*l->len));
    if (!l->at || !l->len) return -1;
    l->n = 0;
    for (size_t i = 0, start = 0; i < n; i++)
        if (t[i] == '\n' || i + 1 == n) {
            l->at[l->n] = t + start;
            l->len[l->n++] = i + 1 - start;
            start = i + 1;
        }
    return 0;
}

static bool same(const lines *a, size_t i, const lines *b, size_t j)
{
    return a->len[i] == b->len[j] && !memcmp(a->at[i], b->at[j], a->len[i]);
}

static void put_line(FILE *out, char mark, const lines *l, size_t i)
{
    fputc(mark, out);
    fwrite(l->at[i], 1, l->len[i], out);
    if (l->at[i][l->len[i] - 1] != '\n') fputs("\n\\ No newline at end of file\n", out);
}

/* "-start,count" as diff writes it: count 1 is left out, and an empty
 * range names the line before it. */
static void put_range(FILE *out, char mark, size_t start, size_t count)
{
    fprintf(out, " %c%zu", mark, count ? start + 1 : start);
    if (count != 1) fprintf(out, ",%zu", count);
}

void unified_diff(FILE *out, const char *name, const char *a, size_t alen, const char *b,
                  size_t blen)
{
    lines la = {0}, lb = {0};
    if (split(a, alen, &la) || split(b, blen, &lb)) {
        fprintf(stderr, "exhookctl: out of memory\n");
        goto done;
    }
    size_t pre = 0, suf = 0;
    while (pre < la.n && pre < lb.n && same(&la, pre, &lb, pre))
        pre++;
    while (suf < la.n - pre && suf < lb.n - pre && same(&la, la.n - 1 - suf, &lb, lb.n - 1 - suf))
        suf++;
    if (pre == la.n && pre == lb.n) goto done;
    size_t from = pre > 3 ? pre - 3 : 0;
    size_t ctx_after = suf < 3 ? suf : 3;
    size_t a_end = la.n - suf + ctx_after, b_end = lb.n - suf + ctx_after;
    fprintf(out, "--- %s\n+++ %s\n@@", name, name);
    put_range(out, '-', from, a_end - from);
    put_range(out, '+', from, b_end - from);
    fputs(" @@\n", out);
    for (size_t i = from; i < pre; i++)
        put_line(out, ' ', &la, i);
    for (size_t i = pre; i < la.n - suf; i++)
        put_line(out, '-', &la, i);
    for (size_t i = pre; i < lb.n - suf; i++)
        put_line(out, '+', &lb, i);
    for (size_t i = la.n - suf; i < a_end; i++)
        put_line(out, ' ', &la, i);
done:
    free(la.at);
    free(la.len);
    free(lb.at);
    free(lb.len);
}
