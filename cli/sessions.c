/*
 * sessions -- the clients online now, or the connect/disconnect history,
 * as recorded by the driver.
 */
#include <string.h>

#include "cli.h"

static const char sessions_help[] =
    "usage: exhookctl sessions [--history] [--json]\n"
    "\n"
    "List the clients online now (newest connection first), or with --history\n"
    "the bounded connect/disconnect history, newest first.  Times are UTC.\n"
    "\n"
    "  --history  the history instead of the online clients\n"
    "  --json     a JSON array of objects\n";

typedef struct listing {
    bool json, history;
    size_t count;
} listing;

static void put_field(const char *key, const char *v)
{
    printf(",\"%s\":", key);
    if (v)
        json_put_string(stdout, v, strlen(v));
    else
        fputs("null", stdout);
}

static int one_session(const exh_session_event *ev, void *user)
{
    listing *l = user;
    char at[32];
    format_time(ev->at, at, sizeof(at));
    if (!l->json) {
        if (l->history)
            printf("%-20s  %-10s  %-24s  %-16s  %-15s  %-12s  %s\n", at,
                   ev->connected ? "connect" : "disconnect", ev->clientid,
                   ev->username ? ev->username : "-", ev->peerhost ? ev->peerhost : "-",
                   ev->node ? ev->node : "-", ev->reason ? ev->reason : "-");
        else
            printf("%-24s  %-16s  %-15s  %-12s  %s\n", ev->clientid,
                   ev->username ? ev->username : "-", ev->peerhost ? ev->peerhost : "-",
                   ev->node ? ev->node : "-", at);
    } else {
        fputs(l->count ? ",\n{" : "\n{", stdout);
        printf("\"%s\":\"%s\"", l->history ? "at" : "connected_at", at);
        if (l->history) printf(",\"event\":\"%s\"", ev->connected ? "connect" : "disconnect");
        put_field("clientid", ev->clientid);
        put_field("username", ev->username);
        put_field("peerhost", ev->peerhost);
        put_field("node", ev->node);
        if (l->history) put_field("reason", ev->reason);
        fputc('}', stdout);
    }
    l->count++;
    return 0;
}

int cmd_sessions(cli *c, int argc, char **argv)
{
    listing l = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(sessions_help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json"))
            l.json = true;
        else if (!strcmp(argv[i], "--history"))
            l.history = true;
        else
            return usage_error(c, "sessions", "unexpected argument '%s'", argv[i]);
    }
    exh_store *s = open_store(c, "sessions");
    if (!s) return EXIT_USAGE;
    if (l.json)
        fputc('[', stdout);
    else if (l.history)
        printf("%-20s  %-10s  %-24s  %-16s  %-15s  %-12s  %s\n", "TIME", "EVENT", "CLIENTID",
               "USERNAME", "PEERHOST", "NODE", "REASON");
    else
        printf("%-24s  %-16s  %-15s  %-12s  %s\n", "CLIENTID", "USERNAME", "PEERHOST", "NODE",
               "CONNECTED");
    exh_error err;
    int rc = 0;
    if (exh_store_list_sessions(s, !l.history, one_session, &l, &err) != EXH_OK) {
        print_error(&err);
        rc = EXIT_USAGE;
    }
    if (l.json) fputs(l.count ? "\n]\n" : "]\n", stdout);
    exh_store_close(s);
    return rc;
}
