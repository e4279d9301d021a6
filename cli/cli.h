/*
 * cli.h -- what exhookctl's commands share.
 */
#ifndef EXH_CLI_H
#define EXH_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "exhook/error.h"
#include "exhook/policy.h"

/* Exit statuses (DESIGN §3). */
#define EXIT_ALLOW 0
#define EXIT_DENY  1
#define EXIT_USAGE 2

typedef struct cli {
    const char *prog;
    const char *db;     /* --db, $EXHOOK_DB, ./exhook.db */
    const char *policy; /* --policy, $EXHOOK_POLICY, ./policies */
    bool policy_given;  /* from --policy or $EXHOOK_POLICY rather than the default */
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

int cmd_check(cli *c, int argc, char **argv);
int cmd_test(cli *c, int argc, char **argv);
int cmd_lint(cli *c, int argc, char **argv);

#endif
