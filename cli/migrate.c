/*
 * migrate -- copy an SQLite credential store into PostgreSQL (a node
 * becoming a cluster): users as they are, groups, sessions and history.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error_int.h"
#include "store_int.h"

static const char migrate_help[] =
    "usage: exhookctl [--db PATH] migrate --to URI\n"
    "\n"
    "Copy the SQLite store at --db into the PostgreSQL store at URI\n"
    "(postgresql://USER@HOST:PORT/DB): every user with its password hash\n"
    "unchanged (no password is needed or re-hashed), its flags, clientid\n"
    "pattern, created and updated times and revision, its groups; the online\n"
    "clients and the connect/disconnect history, in order.  All of it lands in\n"
    "one transaction on URI: a failure (or a kill) part-way leaves URI as it\n"
    "was.  Nothing is written to the SQLite file.  Lock-outs and failure counts\n"
    "(exhookctl lockouts) are not copied: they start afresh on URI.\n"
    "\n"
    "URI must already hold the schema: create it first with\n"
    "'exhookctl --db URI init' (as the role that is to own the tables).  It\n"
    "must hold no users and no sessions: migrate never merges into a store in\n"
    "use.  To start again, drop the tables (or the database) and init again.\n"
    "\n"
    "Revisions are kept, so the user records are the same on both sides; the\n"
    "front ends read the store named in their configuration at start, so move\n"
    "them over (restart) after the copy.\n"
    "\n"
    "  --to URI   the PostgreSQL store (its password in PGPASSFILE, not here)\n"
    "\n"
    "Exit status: 0 copied, 2 usage, a store that cannot be read or written,\n"
    "or a target that is not empty.\n";

typedef struct events {
    exh_session_event *ev;
    size_t n, cap;
    bool oom;
} events;

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

/* The listing's strings live only for the callback: keep copies. */
static int keep_event(const exh_session_event *ev, void *arg)
{
    events *e = arg;
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        exh_session_event *nv = realloc(e->ev, cap * sizeof(*nv));
        if (!nv) {
            e->oom = true;
            return 1;
        }
        e->ev = nv;
        e->cap = cap;
    }
    exh_session_event *d = &e->ev[e->n++];
    *d = *ev;
    d->clientid = dup_or_null(ev->clientid, &e->oom);
    d->username = dup_or_null(ev->username, &e->oom);
    d->peerhost = dup_or_null(ev->peerhost, &e->oom);
    d->node = dup_or_null(ev->node, &e->oom);
    d->reason = dup_or_null(ev->reason, &e->oom);
    return e->oom;
}

static void free_events(events *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free((char *)e->ev[i].clientid);
        free((char *)e->ev[i].username);
        free((char *)e->ev[i].peerhost);
        free((char *)e->ev[i].node);
        free((char *)e->ev[i].reason);
    }
    free(e->ev);
    memset(e, 0, sizeof(*e));
}

typedef struct copy {
    exh_store *to;
    exh_error *err;
    exh_status st;
    int64_t users, memberships;
} copy;

static int copy_user(const exh_user *u, void *arg)
{
    copy *k = arg;
    if ((k->st = store_pg_put_user(k->to, u, k->err))) return 1;
    k->users++;
    k->memberships += (int64_t)u->ngroups;
    return 0;
}

/* Everything on the target between its BEGIN and COMMIT. */
static exh_status copy_all(exh_store *from, exh_store *to, const char *shown, copy *k, events *hist,
                           events *online, exh_error *err)
{
    int64_t users = 0, sessions = 0;
    exh_status st = store_pg_count(to, &users, &sessions, err);
    if (st) return st;
    if (users || sessions) {
        exh_error_set(err, EXH_EEXIST, shown, 0, 0,
                      "the target store is not empty (%lld users, %lld session rows): migrate "
                      "copies into an empty store only, and wrote nothing",
                      (long long)users, (long long)sessions);
        return EXH_EEXIST;
    }
    if ((st = exh_store_list_users(from, copy_user, k, err)) || (st = k->st)) return st;
    /* History comes newest first: inserted oldest first, its order (the
     * ids) is the source's. */
    for (size_t i = hist->n; !st && i-- > 0;)
        st = store_pg_put_session(to, &hist->ev[i], false, err);
    for (size_t i = 0; !st && i < online->n; i++)
        st = store_pg_put_session(to, &online->ev[i], true, err);
    return st;
}

int cmd_migrate(cli *c, int argc, char **argv)
{
    const char *to_uri = NULL;
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(migrate_help, stdout);
            return 0;
        }
        if (arg_value(&a, "--to", &bad)) {
            if (bad) return EXIT_USAGE;
            to_uri = a.val;
        } else {
            return usage_error(c, "migrate", "unexpected argument '%s'", argv[a.i]);
        }
    }
    if (!to_uri) return usage_error(c, "migrate", "--to URI is required");
    if (store_is_pg_uri(c->db))
        return usage_error(c, "migrate",
                           "--db must be an SQLite store to copy from, not a PostgreSQL URI");
    if (!store_is_pg_uri(to_uri))
        return usage_error(c, "migrate",
                           "--to must be a PostgreSQL URI (postgresql://USER@HOST:PORT/DB)");
    char to_shown[512];
    exh_store_display_name(to_uri, to_shown, sizeof(to_shown));
    if (exh_store_location_has_password(to_uri))
        fprintf(stderr,
                "%s: warning: the --to URI holds a password, which every local user can read in "
                "the process list; put it in PGPASSFILE (~/.pgpass)\n",
                c->prog);

    exh_store *from = open_store(c, "migrate");
    if (!from) return EXIT_USAGE;
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false; /* the schema is init's job, as its owner */
    exh_store *to = NULL;
    exh_error err;
    exh_status st = exh_store_open(to_uri, &o, &to, &err);
    if (st == EXH_EIO) {
        fprintf(stderr, "%s migrate: no exhook schema at %s (create it with '%s --db %s init')\n",
                c->prog, to_shown, c->prog, to_shown);
        exh_store_close(from);
        return EXIT_USAGE;
    }
    if (st) {
        print_error(&err);
        exh_store_close(from);
        return EXIT_USAGE;
    }

    /* Sessions are read before the target's transaction opens: the copy
     * holds PostgreSQL's locks no longer than the writes take. */
    events hist = {0}, online = {0};
    if ((st = exh_store_list_sessions(from, false, keep_event, &hist, &err)) ||
        (st = exh_store_list_sessions(from, true, keep_event, &online, &err)))
        ;
    else if (hist.oom || online.oom)
        st = exh_error_nomem(&err);
    copy k = {.to = to, .err = &err};
    if (!st && !(st = exh_store_begin(to, &err))) {
        st = copy_all(from, to, to_shown, &k, &hist, &online, &err);
        if (!st) st = exh_store_commit(to, &err);
        if (st) exh_store_rollback(to);
    }
    int rc = 0;
    if (st) {
        print_error(&err);
        fprintf(stderr, "%s migrate: nothing was written to %s\n", c->prog, to_shown);
        rc = EXIT_USAGE;
    } else {
        printf("migrated %lld users, %lld group memberships, %zu session events (%zu clients "
               "online) to %s\n",
               (long long)k.users, (long long)k.memberships, hist.n, online.n, to_shown);
    }
    free_events(&hist);
    free_events(&online);
    exh_store_close(to);
    exh_store_close(from);
    return rc;
}
