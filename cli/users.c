/*
 * users -- init, add-user, passwd, del-user, set-user, list-users,
 * show-user, list-groups: managing the credential store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "store_int.h"

static const char init_help[] =
    "usage: exhookctl [--db PATH] init [--runtime-role ROLE]\n"
    "\n"
    "Create the credential store at --db ($EXHOOK_DB, else ./exhook.db), mode\n"
    "0600, or migrate an existing one to this version's schema.  Prints the path\n"
    "and the schema version.  Running it again is harmless.  With a PostgreSQL\n"
    "URI (postgresql://USER@HOST:PORT/DB) the store is the database's tables:\n"
    "init creates or migrates them there (the database must exist).\n"
    "\n"
    "  --runtime-role ROLE  PostgreSQL only: grant the existing role ROLE what\n"
    "                       a front end needs and nothing more: read users,\n"
    "                       groups and the schema version; record sessions,\n"
    "                       history and lock-outs.  It cannot add, change or\n"
    "                       delete users (nor upgrade a hash at login).  Run\n"
    "                       init as the tables' owner; give the role its\n"
    "                       password with CREATE ROLE.  A role granted so before\n"
    "                       an upgrade keeps what it needs: the migration grants\n"
    "                       it the new tables.\n"
    "\n"
    "Exit status: 0 done, 2 the file cannot be created or is not an exhook\n"
    "database.\n";

static const char add_user_help[] =
    "usage: exhookctl add-user USER [--password-stdin] [--superuser] [--group G]...\n"
    "                          [--clientid-pattern RE]\n"
    "\n"
    "Add a user.  The password is asked for twice on the terminal (not echoed)\n"
    "or, with --password-stdin, read as one line of stdin (a trailing \\n or\n"
    "\\r\\n is dropped; at most 4096 bytes).  It is never taken from the command\n"
    "line, where other users could see it.  It is stored as an argon2id hash.\n"
    "\n"
    "  --password-stdin       read the password from stdin\n"
    "  --superuser            may publish and subscribe to every topic\n"
    "  --group G              member of group G (repeatable)\n"
    "  --clientid-pattern RE  may only connect with a client id matching the\n"
    "                         PCRE2 regex RE as a whole\n"
    "\n"
    "Exit status: 0 added, 1 the user exists, 2 usage, input or store error.\n";

static const char passwd_help[] =
    "usage: exhookctl passwd USER [--password-stdin]\n"
    "\n"
    "Set a user's password: asked for twice on the terminal (not echoed) or,\n"
    "with --password-stdin, read as one line of stdin.  Never from the command\n"
    "line.\n"
    "\n"
    "Exit status: 0 changed, 1 no such user, 2 usage, input or store error.\n";

static const char del_user_help[] = "usage: exhookctl del-user USER\n"
                                    "\n"
                                    "Delete a user and its group memberships.\n"
                                    "\n"
                                    "Exit status: 0 deleted, 1 no such user, 2 usage or store "
                                    "error.\n";

static const char set_user_help[] =
    "usage: exhookctl set-user USER [--superuser true|false] [--disabled true|false]\n"
    "                          [--add-group G]... [--del-group G]...\n"
    "                          [--clientid-pattern RE | --no-clientid-pattern]\n"
    "\n"
    "Change a user.  All changes of one call are made together or not at all.\n"
    "A disabled user cannot connect; its record and groups are kept.\n"
    "\n"
    "Exit status: 0 changed, 1 no such user (or not in a --del-group group),\n"
    "2 usage or store error.\n";

static const char list_users_help[] =
    "usage: exhookctl list-users [--json]\n"
    "\n"
    "List the users in name order: name, superuser, disabled, created and\n"
    "updated times (UTC), groups, clientid pattern.  Never the password hash.\n"
    "\n"
    "  --json   a JSON array of objects\n";

static const char show_user_help[] =
    "usage: exhookctl show-user USER [--json] [--show-hash]\n"
    "\n"
    "Show one user, with the format of its password hash (argon2id, bcrypt,\n"
    "mosquitto-sha512-pbkdf2, ...).  The hash itself only with --show-hash.\n"
    "\n"
    "Exit status: 0 shown, 1 no such user, 2 usage or store error.\n";

static const char list_groups_help[] = "usage: exhookctl list-groups [--json]\n"
                                       "\n"
                                       "List the groups that have members, with member counts.\n"
                                       "\n"
                                       "  --json   a JSON array of objects\n";

/* ---- argument scanning shared by the user commands ---- */

typedef struct user_args {
    const char *user;
    bool json, password_stdin, show_hash;
} user_args;

/* Options every user command understands: --help (returns -1 after
 * printing help) and the positional USER.  "--" ends the options, for a
 * user whose name starts with '-'. */
static int take_positional(cli *c, const char *cmd, args *a, bool *dashdash, user_args *u)
{
    const char *s = a->argv[a->i];
    if (!*dashdash && !strcmp(s, "--")) {
        *dashdash = true;
        return 0;
    }
    if ((*dashdash || s[0] != '-') && !u->user) {
        u->user = s;
        return 0;
    }
    return usage_error(c, cmd, "unexpected argument '%s'", s);
}

static bool want_help(args *a, bool dashdash)
{
    return !dashdash && (arg_flag(a, "--help") || arg_flag(a, "-h"));
}

/* The simple commands: flags only, and maybe a USER. */
static int scan_simple(cli *c, const char *cmd, const char *help, int argc, char **argv,
                       bool need_user, user_args *u)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool dashdash = false;
    for (; a.i < argc; a.i++) {
        if (want_help(&a, dashdash)) {
            fputs(help, stdout);
            return -1;
        }
        if (!dashdash && arg_flag(&a, "--json")) {
            u->json = true;
        } else if (!dashdash && arg_flag(&a, "--password-stdin")) {
            u->password_stdin = true;
        } else if (!dashdash && arg_flag(&a, "--show-hash")) {
            u->show_hash = true;
        } else if (need_user) {
            int rc = take_positional(c, cmd, &a, &dashdash, u);
            if (rc) return rc;
        } else {
            return usage_error(c, cmd, "unexpected argument '%s'", argv[a.i]);
        }
    }
    if (need_user && !u->user) return usage_error(c, cmd, "USER is required");
    return 0;
}

/* Refuse flags a command does not take (scan_simple accepts all three). */
static int only_flags(cli *c, const char *cmd, const user_args *u, bool json, bool pw, bool hash)
{
    if (u->json && !json) return usage_error(c, cmd, "unexpected argument '--json'");
    if (u->password_stdin && !pw)
        return usage_error(c, cmd, "unexpected argument '--password-stdin'");
    if (u->show_hash && !hash) return usage_error(c, cmd, "unexpected argument '--show-hash'");
    return 0;
}

static int store_failed(const exh_error *err)
{
    print_error(err);
    return exit_for_status(err->status);
}

/* ---- init ---- */

int cmd_init(cli *c, int argc, char **argv)
{
    const char *role = NULL;
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(init_help, stdout);
            return 0;
        }
        if (arg_value(&a, "--runtime-role", &bad)) {
            if (bad) return EXIT_USAGE;
            role = a.val;
        } else {
            return usage_error(c, "init", "unexpected argument '%s'", argv[a.i]);
        }
    }
    struct stat sb;
    bool pg = store_is_pg_uri(c->db);
    if (role && !pg)
        return usage_error(c, "init",
                           "--runtime-role is for a PostgreSQL store (an SQLite file's access "
                           "is its mode)");
    if (role && !*role) return usage_error(c, "init", "--runtime-role needs a role name");
    bool existed = !pg && stat(c->db, &sb) == 0;
    exh_store_opts o;
    exh_store_opts_default(&o);
    exh_store *s = NULL;
    exh_error err;
    if (pg) {
        /* A database always exists; the store is its schema.  Without
         * one, this open fails with EXH_EIO (store_pg.c), and the next
         * creates it. */
        o.create = false;
        exh_status st = exh_store_open(c->db, &o, &s, &err);
        if (st && st != EXH_EIO) return store_failed(&err);
        existed = !st;
    }
    o.create = true;
    if (!s && exh_store_open(c->db, &o, &s, &err) != EXH_OK) return store_failed(&err);
    printf("%s: schema version %d%s\n", c->db_shown, exh_store_schema_version(s),
           existed ? "" : " (created)");
    if (role) {
        if (store_pg_grant_runtime(s, role, &err) != EXH_OK) {
            exh_store_close(s);
            return store_failed(&err);
        }
        printf("granted role '%s': read users, groups and meta; write sessions, history and "
               "lock-outs\n",
               role);
    }
    exh_store_close(s);
    /* The store creates files 0600; one made by other means may not be.
     * (A PostgreSQL store has no file: its access is the server's roles.) */
    if (!pg && existed && (sb.st_mode & 077))
        fprintf(stderr, "%s: warning: readable by other users (mode %04o); chmod 600 it\n", c->db,
                (unsigned)(sb.st_mode & 07777));
    return 0;
}

/* ---- add-user, passwd, del-user ---- */

typedef struct add_args {
    user_args u;
    bool superuser;
    const char *pattern;
    const char **groups;
    size_t ngroups;
} add_args;

static int scan_add_user(cli *c, int argc, char **argv, add_args *x)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool dashdash = false, bad = false;
    for (; a.i < argc; a.i++) {
        if (want_help(&a, dashdash)) {
            fputs(add_user_help, stdout);
            return -1;
        }
        if (dashdash) {
            if (take_positional(c, "add-user", &a, &dashdash, &x->u)) return EXIT_USAGE;
        } else if (arg_flag(&a, "--password-stdin")) {
            x->u.password_stdin = true;
        } else if (arg_flag(&a, "--superuser")) {
            x->superuser = true;
        } else if (arg_value(&a, "--group", &bad)) {
            if (!bad) x->groups[x->ngroups++] = a.val;
        } else if (arg_value(&a, "--clientid-pattern", &bad)) {
            x->pattern = a.val;
        } else if (take_positional(c, "add-user", &a, &dashdash, &x->u)) {
            return EXIT_USAGE;
        }
        if (bad) return EXIT_USAGE;
    }
    if (!x->u.user) return usage_error(c, "add-user", "USER is required");
    return 0;
}

/* Fail early, before asking for a password, when the user's existence is
 * not what the command needs. */
static int expect_user(exh_store *s, const char *name, bool want, const cli *c, const char *cmd)
{
    exh_user u;
    exh_error err;
    exh_status st = exh_store_get_user(s, name, &u, &err);
    exh_user_clear(&u);
    if (st == EXH_OK && !want) {
        fprintf(stderr, "%s %s: user '%s' already exists\n", c->prog, cmd, name);
        return EXIT_DENY;
    }
    if (st == EXH_ENOTFOUND && want) {
        fprintf(stderr, "%s %s: no user '%s'\n", c->prog, cmd, name);
        return EXIT_DENY;
    }
    if (st != EXH_OK && st != EXH_ENOTFOUND) return store_failed(&err);
    return 0;
}

int cmd_add_user(cli *c, int argc, char **argv)
{
    add_args x = {.groups = calloc((size_t)argc, sizeof(char *))};
    if (!x.groups) return EXIT_USAGE;
    int rc = scan_add_user(c, argc, argv, &x);
    exh_store *s = rc ? NULL : open_store(c, "add-user");
    if (!rc && !s) rc = EXIT_USAGE;
    if (!rc) rc = expect_user(s, x.u.user, false, c, "add-user");
    char pw[PASSWORD_BUF];
    size_t pwlen = 0;
    if (!rc) rc = read_password(c, "add-user", x.u.user, x.u.password_stdin, pw, &pwlen);
    if (!rc) {
        exh_new_user nu = {.name = x.u.user,
                           .password = pw,
                           .password_len = pwlen,
                           .superuser = x.superuser,
                           .clientid_pattern = x.pattern,
                           .groups = x.groups,
                           .ngroups = x.ngroups};
        exh_error err;
        if (exh_store_add_user(s, &nu, &err) != EXH_OK)
            rc = store_failed(&err);
        else
            printf("added user '%s'\n", x.u.user);
    }
    wipe(pw, sizeof(pw));
    exh_store_close(s);
    free(x.groups);
    return rc < 0 ? 0 : rc;
}

int cmd_passwd(cli *c, int argc, char **argv)
{
    user_args u = {0};
    int rc = scan_simple(c, "passwd", passwd_help, argc, argv, true, &u);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = only_flags(c, "passwd", &u, false, true, false))) return rc;
    exh_store *s = open_store(c, "passwd");
    if (!s) return EXIT_USAGE;
    rc = expect_user(s, u.user, true, c, "passwd");
    char pw[PASSWORD_BUF];
    size_t pwlen = 0;
    if (!rc) rc = read_password(c, "passwd", u.user, u.password_stdin, pw, &pwlen);
    if (!rc) {
        exh_error err;
        if (exh_store_set_password(s, u.user, pw, pwlen, &err) != EXH_OK)
            rc = store_failed(&err);
        else
            printf("changed the password of '%s'\n", u.user);
    }
    wipe(pw, sizeof(pw));
    exh_store_close(s);
    return rc;
}

int cmd_del_user(cli *c, int argc, char **argv)
{
    user_args u = {0};
    int rc = scan_simple(c, "del-user", del_user_help, argc, argv, true, &u);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = only_flags(c, "del-user", &u, false, false, false))) return rc;
    exh_store *s = open_store(c, "del-user");
    if (!s) return EXIT_USAGE;
    exh_error err;
    if (exh_store_del_user(s, u.user, &err) != EXH_OK)
        rc = store_failed(&err);
    else
        printf("deleted user '%s'\n", u.user);
    exh_store_close(s);
    return rc;
}

/* ---- set-user ---- */

typedef struct set_args {
    const char *user;
    int superuser, disabled; /* -1: unchanged */
    const char *pattern;
    bool set_pattern;
    const char **add, **del;
    size_t nadd, ndel;
} set_args;

static int scan_bool(cli *c, const char *opt, const char *val, int *out)
{
    bool b;
    if (!parse_bool(val, &b))
        return usage_error(c, "set-user", "%s takes true or false, not '%s'", opt, val);
    *out = b;
    return 0;
}

static int scan_set_option(cli *c, args *a, set_args *x, bool *bad)
{
    if (arg_value(a, "--superuser", bad))
        return *bad ? EXIT_USAGE : scan_bool(c, "--superuser", a->val, &x->superuser);
    if (arg_value(a, "--disabled", bad))
        return *bad ? EXIT_USAGE : scan_bool(c, "--disabled", a->val, &x->disabled);
    if (arg_value(a, "--add-group", bad)) {
        if (!*bad) x->add[x->nadd++] = a->val;
    } else if (arg_value(a, "--del-group", bad)) {
        if (!*bad) x->del[x->ndel++] = a->val;
    } else if (arg_value(a, "--clientid-pattern", bad)) {
        if (x->set_pattern && !x->pattern)
            return usage_error(c, "set-user",
                               "--clientid-pattern and --no-clientid-pattern "
                               "exclude each other");
        x->pattern = a->val;
        x->set_pattern = true;
    } else if (arg_flag(a, "--no-clientid-pattern")) {
        if (x->pattern)
            return usage_error(c, "set-user",
                               "--clientid-pattern and --no-clientid-pattern "
                               "exclude each other");
        x->set_pattern = true;
    } else {
        return 1; /* not an option of ours */
    }
    return *bad ? EXIT_USAGE : 0;
}

static int scan_set_user(cli *c, int argc, char **argv, set_args *x)
{
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool dashdash = false, bad = false;
    user_args u = {0};
    for (; a.i < argc; a.i++) {
        if (want_help(&a, dashdash)) {
            fputs(set_user_help, stdout);
            return -1;
        }
        int rc = dashdash ? 1 : scan_set_option(c, &a, x, &bad);
        if (rc == 1) rc = take_positional(c, "set-user", &a, &dashdash, &u);
        if (rc) return rc;
    }
    x->user = u.user;
    if (!x->user) return usage_error(c, "set-user", "USER is required");
    if (x->superuser < 0 && x->disabled < 0 && !x->set_pattern && !x->nadd && !x->ndel)
        return usage_error(c, "set-user", "nothing to change");
    return 0;
}

static exh_status apply_changes(exh_store *s, const set_args *x, exh_error *err)
{
    exh_user u;
    exh_status st = exh_store_get_user(s, x->user, &u, err);
    exh_user_clear(&u);
    if (!st && (x->superuser >= 0 || x->disabled >= 0))
        st = exh_store_set_flags(s, x->user, x->superuser, x->disabled, err);
    if (!st && x->set_pattern) st = exh_store_set_clientid_pattern(s, x->user, x->pattern, err);
    for (size_t i = 0; !st && i < x->nadd; i++)
        st = exh_store_add_to_group(s, x->user, x->add[i], err);
    for (size_t i = 0; !st && i < x->ndel; i++)
        st = exh_store_del_from_group(s, x->user, x->del[i], err);
    return st;
}

int cmd_set_user(cli *c, int argc, char **argv)
{
    set_args x = {.superuser = -1,
                  .disabled = -1,
                  .add = calloc((size_t)argc, sizeof(char *)),
                  .del = calloc((size_t)argc, sizeof(char *))};
    int rc = x.add && x.del ? scan_set_user(c, argc, argv, &x) : EXIT_USAGE;
    exh_store *s = rc ? NULL : open_store(c, "set-user");
    if (!rc && !s) rc = EXIT_USAGE;
    if (!rc) {
        exh_error err;
        exh_status st = exh_store_begin(s, &err);
        if (!st) st = apply_changes(s, &x, &err);
        if (!st) st = exh_store_commit(s, &err);
        if (st) {
            exh_store_rollback(s);
            rc = store_failed(&err);
        } else {
            printf("updated user '%s'\n", x.user);
        }
    }
    exh_store_close(s);
    free(x.add);
    free(x.del);
    return rc < 0 ? 0 : rc;
}

/* ---- list-users, show-user ---- */

static const char *yes_no(bool b)
{
    return b ? "yes" : "no";
}

static void put_key(FILE *f, const char *key, bool first)
{
    fprintf(f, "%s\"%s\":", first ? "" : ",", key);
}

static void put_str_or_null(FILE *f, const char *s)
{
    if (s)
        json_put_string(f, s, strlen(s));
    else
        fputs("null", f);
}

/* One user as a JSON object; the hash only when asked for. */
static void user_json(const exh_user *u, bool with_hash)
{
    char created[32], updated[32];
    format_time(u->created, created, sizeof(created));
    format_time(u->updated, updated, sizeof(updated));
    fputc('{', stdout);
    put_key(stdout, "name", true);
    put_str_or_null(stdout, u->name);
    printf(",\"superuser\":%s,\"disabled\":%s", u->superuser ? "true" : "false",
           u->disabled ? "true" : "false");
    put_key(stdout, "groups", false);
    fputc('[', stdout);
    for (size_t i = 0; i < u->ngroups; i++) {
        if (i) fputc(',', stdout);
        put_str_or_null(stdout, u->groups[i]);
    }
    fputc(']', stdout);
    put_key(stdout, "clientid_pattern", false);
    put_str_or_null(stdout, u->clientid_pattern);
    put_key(stdout, "hash_format", false);
    put_str_or_null(stdout, exh_hash_alg_name(exh_hash_identify(u->hash)));
    printf(",\"created\":\"%s\",\"updated\":\"%s\"", created, updated);
    if (with_hash) {
        put_key(stdout, "hash", false);
        put_str_or_null(stdout, u->hash);
    }
    fputc('}', stdout);
}

/* "a,b,c", or "-" for none; truncated with "..." if it does not fit. */
static void join_groups(const exh_user *u, const char *sep, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < u->ngroups && n < size; i++) {
        int w = snprintf(buf + n, size - n, "%s%s", i ? sep : "", u->groups[i]);
        n += w > 0 ? (size_t)w : 0;
    }
    if (n >= size && size > 4) strcpy(buf + size - 4, "...");
    if (!u->ngroups) snprintf(buf, size, "-");
}

typedef struct lister {
    bool json;
    size_t count;
} lister;

static int list_one(const exh_user *u, void *user)
{
    lister *l = user;
    if (l->json) {
        fputs(l->count ? ",\n" : "\n", stdout);
        user_json(u, false);
    } else {
        char created[32], updated[32], groups[1024];
        format_time(u->created, created, sizeof(created));
        format_time(u->updated, updated, sizeof(updated));
        join_groups(u, ",", groups, sizeof(groups));
        printf("%-16s  %-9s  %-8s  %-20s  %-20s  %-16s  %s\n", u->name, yes_no(u->superuser),
               yes_no(u->disabled), created, updated, groups,
               u->clientid_pattern ? u->clientid_pattern : "-");
    }
    l->count++;
    return 0;
}

int cmd_list_users(cli *c, int argc, char **argv)
{
    user_args u = {0};
    int rc = scan_simple(c, "list-users", list_users_help, argc, argv, false, &u);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = only_flags(c, "list-users", &u, true, false, false))) return rc;
    exh_store *s = open_store(c, "list-users");
    if (!s) return EXIT_USAGE;
    lister l = {.json = u.json};
    if (l.json)
        fputc('[', stdout);
    else
        printf("%-16s  %-9s  %-8s  %-20s  %-20s  %-16s  %s\n", "NAME", "SUPERUSER", "DISABLED",
               "CREATED", "UPDATED", "GROUPS", "CLIENTID-PATTERN");
    exh_error err;
    if (exh_store_list_users(s, list_one, &l, &err) != EXH_OK) rc = store_failed(&err);
    if (l.json) fputs(l.count ? "\n]\n" : "]\n", stdout);
    exh_store_close(s);
    return rc;
}

static void show_text(const exh_user *u, bool with_hash)
{
    char created[32], updated[32], groups[4096];
    format_time(u->created, created, sizeof(created));
    format_time(u->updated, updated, sizeof(updated));
    join_groups(u, ", ", groups, sizeof(groups));
    const char *fmt = exh_hash_alg_name(exh_hash_identify(u->hash));
    printf("name:              %s\n", u->name);
    printf("superuser:         %s\n", yes_no(u->superuser));
    printf("disabled:          %s\n", yes_no(u->disabled));
    printf("groups:            %s\n", groups);
    printf("clientid-pattern:  %s\n", u->clientid_pattern ? u->clientid_pattern : "- (any)");
    printf("hash-format:       %s\n", fmt ? fmt : "unknown");
    printf("created:           %s\n", created);
    printf("updated:           %s\n", updated);
    if (with_hash) printf("hash:              %s\n", u->hash);
}

int cmd_show_user(cli *c, int argc, char **argv)
{
    user_args a = {0};
    int rc = scan_simple(c, "show-user", show_user_help, argc, argv, true, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = only_flags(c, "show-user", &a, true, false, true))) return rc;
    exh_store *s = open_store(c, "show-user");
    if (!s) return EXIT_USAGE;
    exh_user u;
    exh_error err;
    exh_status st = exh_store_get_user(s, a.user, &u, &err);
    if (st == EXH_ENOTFOUND) {
        fprintf(stderr, "%s show-user: no user '%s'\n", c->prog, a.user);
        rc = EXIT_DENY;
    } else if (st) {
        rc = store_failed(&err);
    } else if (a.json) {
        user_json(&u, a.show_hash);
        fputc('\n', stdout);
    } else {
        show_text(&u, a.show_hash);
    }
    exh_user_clear(&u);
    exh_store_close(s);
    return rc;
}

/* ---- list-groups ---- */

static int group_one(const char *group, int64_t members, void *user)
{
    lister *l = user;
    if (l->json) {
        fputs(l->count ? ",\n{\"group\":" : "\n{\"group\":", stdout);
        json_put_string(stdout, group, strlen(group));
        printf(",\"members\":%lld}", (long long)members);
    } else {
        printf("%-24s  %lld\n", group, (long long)members);
    }
    l->count++;
    return 0;
}

int cmd_list_groups(cli *c, int argc, char **argv)
{
    user_args u = {0};
    int rc = scan_simple(c, "list-groups", list_groups_help, argc, argv, false, &u);
    if (rc) return rc < 0 ? 0 : rc;
    if ((rc = only_flags(c, "list-groups", &u, true, false, false))) return rc;
    exh_store *s = open_store(c, "list-groups");
    if (!s) return EXIT_USAGE;
    lister l = {.json = u.json};
    if (l.json)
        fputc('[', stdout);
    else
        printf("%-24s  %s\n", "GROUP", "MEMBERS");
    exh_error err;
    if (exh_store_list_groups(s, group_one, &l, &err) != EXH_OK) rc = store_failed(&err);
    if (l.json) fputs(l.count ? "\n]\n" : "]\n", stdout);
    exh_store_close(s);
    return rc;
}
