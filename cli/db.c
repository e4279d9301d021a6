/*
 * db -- opening the credential store the way each command needs it.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "store_int.h"

static exh_store *open_with(const cli *c, const exh_store_opts *o)
{
    exh_store *s = NULL;
    exh_error err;
    if (exh_store_open(c->db, o, &s, &err) != EXH_OK) {
        print_error(&err);
        return NULL;
    }
    return s;
}

/* A PostgreSQL store without its schema opens as EXH_EIO, as a missing
 * SQLite file does (store_pg.c); any other failure is a real one. */
static exh_store *open_uri(const cli *c, const exh_store_opts *o, bool *absent)
{
    exh_store *s = NULL;
    exh_error err;
    exh_status st = exh_store_open(c->db, o, &s, &err);
    *absent = st == EXH_EIO;
    if (st && !*absent) print_error(&err);
    return s;
}

static void say_absent(const cli *c, const char *cmd)
{
    /* The --db shown is the location without a password: the operator
     * retypes theirs. */
    fprintf(stderr, "%s %s: no credential store at %s (create it with '%s --db %s init')\n",
            c->prog, cmd, c->db_shown, c->prog, c->db_shown);
}

exh_store *open_store(const cli *c, const char *cmd)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    o.hash = c->hash; /* add-user, passwd and imports write at this cost */
    if (store_is_pg_uri(c->db)) {
        bool absent;
        exh_store *s = open_uri(c, &o, &absent);
        if (absent) say_absent(c, cmd);
        return s;
    }
    struct stat sb;
    if (stat(c->db, &sb) != 0) {
        if (errno == ENOENT)
            say_absent(c, cmd);
        else
            fprintf(stderr, "%s: error: %s\n", c->db, strerror(errno));
        return NULL;
    }
    return open_with(c, &o);
}

int open_store_if_exists(const cli *c, exh_store **out)
{
    *out = NULL;
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    /* A check is a question, not a login: it must not rewrite the hash it
     * was asked about. */
    o.upgrade_on_login = false;
    if (store_is_pg_uri(c->db)) {
        bool absent;
        *out = open_uri(c, &o, &absent);
        return *out || absent ? 0 : EXIT_USAGE;
    }
    struct stat sb;
    if (stat(c->db, &sb) != 0) {
        if (errno == ENOENT) return 0;
        fprintf(stderr, "%s: error: %s\n", c->db, strerror(errno));
        return EXIT_USAGE;
    }
    *out = open_with(c, &o);
    return *out ? 0 : EXIT_USAGE;
}

int exit_for_status(exh_status st)
{
    return st == EXH_ENOTFOUND || st == EXH_EEXIST ? EXIT_DENY : EXIT_USAGE;
}

void format_time(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "%lld", (long long)t);
}

bool parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true"))
        *out = true;
    else if (!strcmp(s, "false"))
        *out = false;
    else
        return false;
    return true;
}
