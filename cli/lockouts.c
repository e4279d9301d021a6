/*
 * lockouts -- the user names and peer addresses the front ends have
 * locked out after repeated failed logins (store.h: lock-outs), and
 * clearing one.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "exhook/addr.h"

static const char lockouts_help[] =
    "usage: exhookctl lockouts [--json] [--all] [--clear NAME]\n"
    "\n"
    "List the user names and peer addresses locked out now after repeated failed\n"
    "logins (the front ends' lockout_failures, lockout_window, lockout_backoff and\n"
    "lockout_backoff_max): kind (user or addr), name, failures counted since,\n"
    "strikes (lock-outs in a row: the next one lasts twice as long), when the\n"
    "lock-out ends (UTC) and the seconds left.  Every front end on the store\n"
    "shares them; a user's verified password ends its count.\n"
    "\n"
    "  --all         also the names and addresses with failures counted that are\n"
    "                not locked now\n"
    "  --clear NAME  remove the lock-out and the count of the user name NAME and\n"
    "                of the address NAME (both, where both exist), and say which\n"
    "  --json        a JSON array of objects\n"
    "\n"
    "Exit status: 0 listed or cleared, 1 --clear found nothing to clear, 2 usage\n"
    "or store error.\n";

typedef struct listing {
    bool json;
    int64_t now;
    size_t count;
} listing;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whole seconds, rounded up: a lock-out never shows as ending earlier
 * than it does. */
static int64_t ceil_s(int64_t ms)
{
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}

static int one_lockout(const exh_lockout *l, void *arg)
{
    listing *x = arg;
    bool locked = l->locked_until > x->now;
    char until[32] = "-", last[32];
    if (locked) format_time(ceil_s(l->locked_until), until, sizeof(until));
    format_time(l->last_failure / 1000, last, sizeof(last));
    int64_t left = locked ? ceil_s(l->locked_until - x->now) : 0;
    if (x->json) {
        fputs(x->count ? ",\n{\"kind\":" : "\n{\"kind\":", stdout);
        json_put_string(stdout, l->kind, strlen(l->kind));
        fputs(",\"name\":", stdout);
        json_put_string(stdout, l->name, strlen(l->name));
        printf(",\"failures\":%u,\"strikes\":%u,\"locked\":%s,", l->failures, l->strikes,
               locked ? "true" : "false");
        if (locked)
            printf("\"locked_until\":\"%s\"", until);
        else
            fputs("\"locked_until\":null", stdout);
        printf(",\"seconds_left\":%lld,\"last_failure\":\"%s\"}", (long long)left, last);
    } else {
        char secs[24] = "-";
        if (locked) snprintf(secs, sizeof(secs), "%lld", (long long)left);
        printf("%-4s  %-32s  %8u  %7u  %-20s  %s\n", l->kind, l->name, l->failures, l->strikes,
               until, secs);
    }
    x->count++;
    return 0;
}

static int clear(cli *c, exh_store *s, const char *name)
{
    /* An address as the listing shows it: "::FFFF:10.0.0.1" is 10.0.0.1. */
    exh_addr a;
    char canon[64] = "";
    if (exh_addr_parse(name, strlen(name), &a)) exh_addr_format(&a, canon, sizeof(canon));
    const char *addr = canon[0] ? canon : name;
    exh_error err;
    exh_lockout_state st;
    int64_t n = 0, m = 0;
    if (exh_store_lockout_state(s, name, strlen(name), addr, wall_ms(), &st, &err) ||
        exh_store_lockout_clear(s, "user", name, &n, &err) ||
        exh_store_lockout_clear(s, "addr", addr, &m, &err)) {
        print_error(&err);
        return exit_for_status(err.status);
    }
    if (!n && !m) {
        fprintf(stderr, "%s lockouts: nothing to clear for '%s' (no user name or address)\n",
                c->prog, name);
        return EXIT_DENY;
    }
    /* What was deleted; whether it was locked, as read just before. */
    st.user.exists = n > 0;
    st.addr.exists = m > 0;
    if (st.user.exists)
        printf("cleared user '%s'%s\n", name, st.user.locked ? " (was locked out)" : "");
    if (st.addr.exists)
        printf("cleared address %s%s\n", addr, st.addr.locked ? " (was locked out)" : "");
    return 0;
}

int cmd_lockouts(cli *c, int argc, char **argv)
{
    listing x = {0};
    bool all = false, bad = false;
    const char *to_clear = NULL;
    args a = {.argc = argc, .argv = argv, .i = 1};
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(lockouts_help, stdout);
            return 0;
        }
        if (arg_flag(&a, "--json")) {
            x.json = true;
        } else if (arg_flag(&a, "--all")) {
            all = true;
        } else if (arg_value(&a, "--clear", &bad)) {
            if (bad) return EXIT_USAGE;
            if (!*a.val) return usage_error(c, "lockouts", "--clear needs a user name or address");
            to_clear = a.val;
        } else {
            return usage_error(c, "lockouts", "unexpected argument '%s'", argv[a.i]);
        }
    }
    if (to_clear && (x.json || all))
        return usage_error(c, "lockouts", "--clear lists nothing: no --json or --all with it");
    exh_store *s = open_store(c, "lockouts");
    if (!s) return EXIT_USAGE;
    int rc = 0;
    if (to_clear) {
        rc = clear(c, s, to_clear);
        exh_store_close(s);
        return rc;
    }
    x.now = wall_ms();
    if (x.json)
        fputc('[', stdout);
    else
        printf("%-4s  %-32s  %8s  %7s  %-20s  %s\n", "KIND", "NAME", "FAILURES", "STRIKES",
               "LOCKED-UNTIL", "SECONDS-LEFT");
    exh_error err;
    if (exh_store_lockouts(s, all, x.now, one_lockout, &x, &err) != EXH_OK) {
        print_error(&err);
        rc = exit_for_status(err.status);
    }
    if (x.json) fputs(x.count ? "\n]\n" : "]\n", stdout);
    exh_store_close(s);
    return rc;
}
