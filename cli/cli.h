/*
 * cli.h -- what exhookctl's commands share.
 */
#ifndef EXH_CLI_H
#define EXH_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "exhook/error.h"
#include "exhook/policy.h"
#include "exhook/hash.h"
#include "exhook/store.h"

/* Exit statuses (DESIGN §3). */
#define EXIT_ALLOW 0
#define EXIT_DENY  1
#define EXIT_USAGE 2

typedef struct cli {
    const char *prog;
    const char *db;       /* --db, $EXHOOK_DB, ./exhook.db: a path or a PostgreSQL URI */
    char db_shown[512];   /* db as messages show it: a URI without its password */
    const char *policy;   /* --policy, $EXHOOK_POLICY, ./policies */
    bool policy_given;    /* from --policy or $EXHOOK_POLICY rather than the default */
    exh_hash_params hash; /* --argon2: the cost of the hashes this run writes */
} cli;

/* Argument scanning: "--name value" and "--name=value". */
typedef struct args {
    int argc;
    char **argv;
    int i;
    const char *val; /* value of the option just matched */
} args;

/* Is argv[i] the flag `name` (no value)? */
bool arg_flag(args *a, const char *name);
/* Is argv[i] the option `name` with a value?  Prints an error and sets
 * *bad when the value is missing. */
bool arg_value(args *a, const char *name, bool *bad);

void print_error(const exh_error *err);
int usage_error(const cli *c, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Compile c->policy (or path when non-NULL); prints the error and returns
 * NULL on failure. */
exh_policy *load_policy(const cli *c, const char *path);

struct exh_result;
/* What decided a request: "file:line: text" (or "file:line" without
 * with_text), "default", "superuser", ... or "invalid: <reason>". */
void describe_result(const exh_policy *p, const struct exh_result *r, char *buf, size_t size,
                     bool with_text);

/* Write s as a JSON string (quotes included), bytes as given. */
void json_put_string(FILE *f, const char *s, size_t len);

/* ---- the credential store (db.c) ---- */

/* Open c->db for a command that manages it.  The file must exist: only
 * `init` creates one, so a mistyped --db never leaves a stray database.
 * Prints the error and returns NULL on failure. */
exh_store *open_store(const cli *c, const char *cmd);
/* Open c->db for check: *out is NULL when the file does not exist (check,
 * test and lint need no database and never create one).  Returns 0, or
 * EXIT_USAGE after printing why an existing file could not be opened. */
int open_store_if_exists(const cli *c, exh_store **out);
/* Exit status for a failed store call: 1 for "no such user" and "already
 * exists", 2 for everything else. */
int exit_for_status(exh_status st);
/* Unix seconds as "2024-05-01T12:00:00Z". */
void format_time(int64_t t, char *buf, size_t size);
/* Parse "true" / "false"; false when s is neither. */
bool parse_bool(const char *s, bool *out);

/* ---- passwords (password.c) ---- */

#define PASSWORD_MAX 4096
/* Room a password buffer needs. */
#define PASSWORD_BUF (PASSWORD_MAX + 2)

/* Read a password into buf (PASSWORD_BUF bytes): with from_stdin one line
 * of stdin, else twice from the terminal with echo off.  Never from argv.
 * Returns 0, or EXIT_USAGE after printing why. */
int read_password(const cli *c, const char *cmd, const char *user, bool from_stdin, char *buf,
                  size_t *len);
/* Overwrite memory that held a password, in a way the compiler keeps. */
void wipe(void *p, size_t n);

/* ---- commands ---- */

int cmd_check(cli *c, int argc, char **argv);
int cmd_test(cli *c, int argc, char **argv);
int cmd_lint(cli *c, int argc, char **argv);
int cmd_init(cli *c, int argc, char **argv);
int cmd_add_user(cli *c, int argc, char **argv);
int cmd_passwd(cli *c, int argc, char **argv);
int cmd_del_user(cli *c, int argc, char **argv);
int cmd_set_user(cli *c, int argc, char **argv);
int cmd_list_users(cli *c, int argc, char **argv);
int cmd_show_user(cli *c, int argc, char **argv);
int cmd_list_groups(cli *c, int argc, char **argv);
int cmd_import(cli *c, int argc, char **argv);
int cmd_sessions(cli *c, int argc, char **argv);
int cmd_migrate(cli *c, int argc, char **argv);
int cmd_lockouts(cli *c, int argc, char **argv);
int cmd_list_rules(cli *c, int argc, char **argv);
int cmd_add_rule(cli *c, int argc, char **argv);
int cmd_del_rule(cli *c, int argc, char **argv);
int cmd_fmt(cli *c, int argc, char **argv);

#endif
