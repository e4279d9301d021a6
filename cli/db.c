/*
 * db -- opening the credential store the way each command needs it.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

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

exh_store *open_store(const cli *c, const char *cmd)
{
    struct stat sb;
    if (stat(c->db, &sb) != 0) {
        if (errno == ENOENT)
            fprintf(stderr, "%s %s: no credential store at %s (create it with '%s --db %s init')\n",
                    c->prog, cmd, c->db, c->prog, c->db);
        else
            fprintf(stderr, "%s: error: %s\n", c->db, strerror(errno));
        return NULL;
    }
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    o.hash = c->hash; /* add-user, passwd and imports write at this cost */
    return open_with(c, &o);
}

int open_store_if_exists(const cli *c, exh_store **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(c->db, &sb) != 0) {
        if (errno == ENOENT) return 0;
        fprintf(stderr, "%s: error: %s\n", c->db, strerror(errno));
        return EXIT_USAGE;
    }
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    /* A check is a question, not a login: it must not rewrite the hash it
     * was asked about. */
    o.upgrade_on_login = false;
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
