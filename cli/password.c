/*
 * password -- reading a password without it ever touching argv, stdio
 * buffers or the screen.
 *
 * Bytes are read with read(2) one at a time straight into the caller's
 * buffer: a stdio buffer would keep a copy we cannot wipe, and reading
 * past the line would swallow input that is not ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

void wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

typedef enum { LINE_OK, LINE_EMPTY, LINE_LONG, LINE_ERROR } line_status;

/* One line from fd into buf (PASSWORD_BUF bytes), without its "\n" or
 * "\r\n".  End of input ends the line too. */
static line_status read_line(int fd, char *buf, size_t *len)
{
    size_t n = 0;
    bool newline = false;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            wipe(buf, n);
            errno = e;
            return LINE_ERROR;
        }
        if (r == 0) break;
        if (ch == '\n') {
            newline = true;
            break;
        }
        /* One byte over the limit is still kept: it may be the '\r' of
         * "\r\n". */
        if (n == PASSWORD_MAX + 1) {
            wipe(buf, n);
            return LINE_LONG;
        }
        buf[n++] = ch;
    }
    if (newline && n && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    *len = n;
    if (n > PASSWORD_MAX) {
        wipe(buf, n);
        return LINE_LONG;
    }
    return n ? LINE_OK : LINE_EMPTY;
}

static int line_error(const cli *c, const char *cmd, line_status st, const char *from)
{
    switch (st) {
    case LINE_EMPTY:
        fprintf(stderr, "%s %s: empty password on %s\n", c->prog, cmd, from);
        break;
    case LINE_LONG:
        fprintf(stderr, "%s %s: password longer than %d bytes on %s\n", c->prog, cmd, PASSWORD_MAX,
                from);
        break;
    default:
        fprintf(stderr, "%s %s: cannot read the password from %s: %s\n", c->prog, cmd, from,
                strerror(errno));
    }
    return EXIT_USAGE;
}

/* ---- the terminal, with echo off ---- */

/* What a signal handler needs to give the terminal its echo back. */
static volatile sig_atomic_t tty_fd = -1;
static struct termios tty_saved;
/* Not SIGTSTP: after a stop and continue we would be reading with echo on. */
static const int tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NSIG_HANDLED (sizeof(tty_signals) / sizeof(tty_signals[0]))
static struct sigaction tty_old_actions[NSIG_HANDLED];

static void tty_restore_on_signal(int sig)
{
    if (tty_fd >= 0) tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void echo_on(int fd)
{
    tcsetattr(fd, TCSAFLUSH, &tty_saved);
    tty_fd = -1;
    for (size_t i = 0; i < NSIG_HANDLED; i++)
        sigaction(tty_signals[i], &tty_old_actions[i], NULL);
}

/* Returns -1 with the terminal as it was when echo cannot be turned off. */
static int echo_off(int fd)
{
    if (tcgetattr(fd, &tty_saved) != 0) return -1;
    tty_fd = fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tty_restore_on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSIG_HANDLED; i++)
        sigaction(tty_signals[i], &sa, &tty_old_actions[i]);
    struct termios t = tty_saved;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
    t.c_lflag |= ECHONL; /* the user still sees the Enter they typed */
    if (tcsetattr(fd, TCSAFLUSH, &t) == 0) return 0;
    int e = errno;
    echo_on(fd);
    errno = e;
    return -1;
}

static line_status prompt(int fd, const char *text, char *buf, size_t *len)
{
    if (write(fd, text, strlen(text)) < 0) return LINE_ERROR;
    return read_line(fd, buf, len);
}

/* Ask twice and insist on the same answer: a typo in a password nobody
 * can see would lock the user out. */
static int read_from_tty(const cli *c, const char *cmd, const char *user, char *buf, size_t *len)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s %s: cannot open the terminal: %s\n", c->prog, cmd, strerror(errno));
        return EXIT_USAGE;
    }
    if (echo_off(fd) != 0) {
        fprintf(stderr, "%s %s: cannot turn off echo: %s\n", c->prog, cmd, strerror(errno));
        close(fd);
        return EXIT_USAGE;
    }
    char text[256];
    snprintf(text, sizeof(text), "Password for %s: ", user);
    char again[PASSWORD_BUF];
    size_t again_len = 0;
    line_status st = prompt(fd, text, buf, len);
    if (st == LINE_OK) st = prompt(fd, "Retype password: ", again, &again_len);
    echo_on(fd);
    close(fd);
    int rc = 0;
    if (st != LINE_OK) {
        rc = line_error(c, cmd, st, "the terminal");
    } else if (again_len != *len || CRYPTO_memcmp(again, buf, *len) != 0) {
        fprintf(stderr, "%s %s: the passwords do not match\n", c->prog, cmd);
        rc = EXIT_USAGE;
    }
    wipe(again, sizeof(again));
    if (rc) wipe(buf, PASSWORD_BUF);
    return rc;
}

int read_password(const cli *c, const char *cmd, const char *user, bool from_stdin, char *buf,
                  size_t *len)
{
    if (from_stdin) {
        line_status st = read_line(STDIN_FILENO, buf, len);
        return st == LINE_OK ? 0 : line_error(c, cmd, st, "stdin");
    }
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr, "%s %s: no password: use --password-stdin or a terminal\n", c->prog, cmd);
        return EXIT_USAGE;
    }
    return read_from_tty(c, cmd, user, buf, len);
}
