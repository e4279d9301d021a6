/*
 * cli.h -- what exhookctl's commands share.
 */
#ifndef EXH_CLI_H
#define EXH_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "exhook/addr.h"
#include "exhook/error.h"
#include "exhook/eval.h"
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

/* ---- the decision audit log (audit.c; format: notes/audit_format.md) ---- */

/* A longer line is reported and skipped without being held: the longest a
 * writer can make (a 65535-byte topic, client id and username, each byte
 * escaped as \u00XX, and the groups) is well under it. */
#define AUDIT_LINE_MAX ((size_t)8 << 20)

/*
 * One record, checked against the format.  The strings point into the
 * parsed JSON tree (root), so they live until audit_record_clear.
 * clientid, username and topic keep their exact bytes (NUL included: the
 * evaluator, not the reader, judges them); every other string is free of
 * NULs.
 */
typedef struct audit_record {
    struct json_t *root;
    const char *time;  /* "2026-12-03T07:09:43.123456Z" (checked shape) */
    const char *front; /* "grpc", "driver" or "mosquitto" */
    const char *node;  /* NULL when absent */
    bool login;        /* "event": "login"; false: "acl" (or "dropped") */
    /* "event": "dropped": the writer's queue was full and it dropped
     * dropped_acl and dropped_login records between from and to.  Such a
     * record has time, front, node and these only. */
    bool dropped;
    unsigned long dropped_acl, dropped_login;
    const char *from, *to; /* NULL when absent */
    exh_action action;     /* publish/subscribe (acl), connect (login) */
    exh_str clientid;      /* "" when absent */
    exh_str username;      /* ptr NULL: anonymous */
    const char *peer;      /* NULL: unknown */
    exh_addr peer_addr;
    exh_str *groups; /* owned (freed by audit_record_clear); NULL when none */
    size_t ngroups;
    bool superuser, delivery;
    exh_str topic; /* acl only; ptr NULL on a login */
    int qos;       /* 0..2, -1 unknown */
    int retain;    /* 0/1, -1 unknown */
    exh_decision decision;
    const char *rule;   /* FILE:LINE or a basis word (checked) */
    const char *reason; /* NULL when absent */
    double sample;      /* the sampling rate of an allow, 0 when not sampled */
    /* The writer replaced bytes that were not UTF-8 with U+FFFD: the names
     * and topic logged are not what the broker sent, so not replayable. */
    bool lossy;
} audit_record;

/* Reads the log a line at a time: never the whole file. */
typedef struct audit_reader {
    const char *path; /* as given; "-" is stdin */
    FILE *f;
    char *line; /* the current line, without its line ending */
    size_t len, cap;
    unsigned long lineno;
    unsigned long unreadable; /* lines reported on stderr and skipped */
} audit_reader;

/* Open path ("-": stdin).  Returns 0, or EXIT_USAGE after printing why. */
int audit_open(audit_reader *r, const cli *c, const char *cmd, const char *path);
/* The next well-formed record into *rec (clear it with audit_record_clear).
 * Returns 1 for a record, 0 at the end, -1 when the file could not be read
 * (printed).  A line that is no record is reported as PATH:LINE: why on
 * stderr, counted in r->unreadable and skipped; blank lines are skipped. */
int audit_next(audit_reader *r, audit_record *rec);
void audit_record_clear(audit_record *rec);
void audit_close(audit_reader *r);

/* Print s for a person: bare when it is plain text, else as a JSON string
 * (control characters escaped, so a client id cannot drive the terminal);
 * "-" when s is NULL. */
void put_shown(FILE *f, const char *s, size_t len);

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
int cmd_replay(cli *c, int argc, char **argv);
int cmd_audit(cli *c, int argc, char **argv);

#endif
