/*
 * exhookctl -- the operator's tool: manages the credential store; checks,
 * tests, lints, edits and formats policies.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exhook/eval.h"
#include "store_int.h"

static const char usage_text[] =
    "usage: exhookctl [--db PATH] [--policy PATH] COMMAND [ARGS...]\n"
    "\n"
    "Credential store:\n"
    "  init          create or migrate the database\n"
    "  add-user      add a user (password from the terminal or --password-stdin)\n"
    "  passwd        change a user's password\n"
    "  del-user      delete a user\n"
    "  set-user      change a user's flags, groups, clientid pattern\n"
    "  list-users    list the users (never their hashes)\n"
    "  show-user     show one user\n"
    "  list-groups   list the groups and their member counts\n"
    "  import        import users from mosquitto_passwd or EMQX exports\n"
    "  sessions      online clients, or the connect/disconnect history\n"
    "  migrate       copy an SQLite store into PostgreSQL (--to URI)\n"
    "  lockouts      names and addresses locked out after failed logins (--clear)\n"
    "\n"
    "Policies:\n"
    "  check         decide one request (or --batch: JSON lines on stdin)\n"
    "  test          run policy test files (*.test); last line 'N passed, N failed'\n"
    "  lint          compile the policy and warn about shadowed rules, unused\n"
    "                captures, over-broad grants\n"
    "  list-rules    every rule in policy order: number, file:line, text\n"
    "  add-rule      check a rule, then insert it into a policy file (atomic write)\n"
    "  del-rule      remove one rule (FILE:LINE or --position N)\n"
    "  fmt           rewrite policy files in the canonical layout (--check for CI)\n"
    "  replay        re-decide a decision audit log under a candidate policy; print\n"
    "                what would change (exit 1 on a changed decision: a CI gate)\n"
    "\n"
    "Decision audit log:\n"
    "  audit         print the logged decisions that match a filter\n"
    "\n"
    "Options:\n"
    "  --db PATH      credential store (default $EXHOOK_DB, then ./exhook.db): an\n"
    "                 SQLite file, or a postgresql:// URI (its password, if any,\n"
    "                 in PGPASSFILE, never on the command line)\n"
    "  --policy PATH  policy file or directory of *.policy files\n"
    "                 (default $EXHOOK_POLICY, then ./policies)\n"
    "  --argon2 m=KIB,t=N,p=N\n"
    "                 the argon2id cost of the passwords add-user, passwd and\n"
    "                 import hash (default m=19456,t=2,p=1); set the front end's\n"
    "                 own cost (plugin_opt_argon2_m_kib, argon2_m_kib) to the\n"
    "                 same values, or it rehashes them at the next login\n"
    "  --help         this text; 'exhookctl COMMAND --help' for a command\n"
    "  --version      print the version\n"
    "\n"
    "Exit status: 0 success or allow, 1 deny, failed tests, no such user or a user\n"
    "that already exists, 2 usage, input or config error.\n";

bool arg_flag(args *a, const char *name)
{
    return strcmp(a->argv[a->i], name) == 0;
}

bool arg_value(args *a, const char *name, bool *bad)
{
    const char *s = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(s, name, n) != 0) return false;
    if (s[n] == '=') {
        a->val = s + n + 1;
        return true;
    }
    if (s[n] != '\0') return false;
    if (a->i + 1 >= a->argc) {
        fprintf(stderr, "exhookctl: option %s needs a value\n", name);
        *bad = true;
        return true;
    }
    a->val = a->argv[++a->i];
    return true;
}

void print_error(const exh_error *err)
{
    char buf[2048];
    exh_error_format(err, buf, sizeof(buf));
    fprintf(stderr, "%s", buf);
}

int usage_error(const cli *c, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s%s%s: ", c->prog, cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(try '%s%s%s --help')\n", c->prog, cmd ? " " : "", cmd ? cmd : "");
    return EXIT_USAGE;
}

exh_policy *load_policy(const cli *c, const char *path)
{
    exh_policy *p = NULL;
    exh_error err;
    if (exh_policy_load(path ? path : c->policy, &p, &err) != EXH_OK) {
        print_error(&err);
        return NULL;
    }
    return p;
}

/* What decided: the text `check` prints on its second line. */
void describe_result(const exh_policy *p, const exh_result *r, char *buf, size_t size,
                     bool with_text)
{
    const exh_rule_info *ri;
    switch (r->basis) {
    case EXH_BY_RULE:
        ri = exh_policy_rule(p, r->rule);
        if (with_text)
            snprintf(buf, size, "%s:%u: %s", ri->file, ri->line, ri->text);
        else
            snprintf(buf, size, "%s:%u", ri->file, ri->line);
        return;
    case EXH_BY_INVALID:
        snprintf(buf, size, "invalid: %s", r->reason ? r->reason : "invalid request");
        return;
    default:
        snprintf(buf, size, "%s", exh_basis_str(r->basis));
    }
}

void json_put_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* "m=19456,t=2,p=1" (any subset, any order) onto p.  The library checks
 * the ranges when it hashes, and says which one is wrong. */
static bool parse_argon2(const char *v, exh_hash_params *p)
{
    if (!*v) return false;
    while (*v) {
        uint32_t *dst = v[0] == 'm'   ? &p->m_kib
                        : v[0] == 't' ? &p->t_cost
                        : v[0] == 'p' ? &p->lanes
                                      : NULL;
        if (!dst || v[1] != '=' || v[2] < '0' || v[2] > '9') return false;
        char *end;
        errno = 0;
        unsigned long n = strtoul(v + 2, &end, 10);
        if (errno || n == 0 || n > UINT32_MAX || (*end && *end != ',')) return false;
        *dst = (uint32_t)n;
        v = *end ? end + 1 : end;
        if (*end && !*v) return false; /* a trailing comma */
    }
    return true;
}

int main(int argc, char **argv)
{
    cli c = {.prog = "exhookctl"};
    exh_hash_params_default(&c.hash);
    const char *env;
    c.db = (env = getenv("EXHOOK_DB")) && *env ? env : "./exhook.db";
    if ((env = getenv("EXHOOK_POLICY")) && *env) {
        c.policy = env;
        c.policy_given = true;
    } else {
        c.policy = "./policies";
    }
    args a = {.argc = argc, .argv = argv, .i = 1};
    bool bad = false;
    for (; a.i < argc; a.i++) {
        if (arg_flag(&a, "--help") || arg_flag(&a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (arg_flag(&a, "--version")) {
            puts("exhookctl 0.1.0");
            return 0;
        }
        if (arg_value(&a, "--db", &bad)) {
            c.db = a.val;
            /* Said every time, not refused: the operator may have no
             * other way today, and must know what it costs. */
            if (exh_store_location_has_password(c.db))
                fprintf(stderr,
                        "%s: warning: the --db URI holds a password, which every local user can "
                        "read in the process list; put it in PGPASSFILE (~/.pgpass) or use "
                        "$EXHOOK_DB\n",
                        c.prog);
        } else if (arg_value(&a, "--argon2", &bad)) {
            if (!parse_argon2(a.val, &c.hash))
                return usage_error(&c, NULL,
                                   "--argon2 wants m=KIB,t=PASSES,p=LANES (each a positive "
                                   "number, any of them), not '%s'",
                                   a.val);
        } else if (arg_value(&a, "--policy", &bad)) {
            c.policy = a.val;
            c.policy_given = true;
        } else if (a.argv[a.i][0] == '-') {
            return usage_error(&c, NULL, "unknown option '%s'", a.argv[a.i]);
        } else {
            break;
        }
        if (bad) return EXIT_USAGE;
    }
    if (a.i >= argc) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    exh_store_display_name(c.db, c.db_shown, sizeof(c.db_shown));
    const char *cmd = argv[a.i];
    int sub_argc = argc - a.i;
    char **sub_argv = argv + a.i;
    static const struct {
        const char *name;
        int (*fn)(cli *, int, char **);
    } commands[] = {
        {"check", cmd_check},
        {"test", cmd_test},
        {"lint", cmd_lint},
        {"init", cmd_init},
        {"add-user", cmd_add_user},
        {"passwd", cmd_passwd},
        {"del-user", cmd_del_user},
        {"set-user", cmd_set_user},
        {"list-users", cmd_list_users},
        {"show-user", cmd_show_user},
        {"list-groups", cmd_list_groups},
        {"import", cmd_import},
        {"sessions", cmd_sessions},
        {"migrate", cmd_migrate},
        {"lockouts", cmd_lockouts},
        {"list-rules", cmd_list_rules},
        {"add-rule", cmd_add_rule},
        {"del-rule", cmd_del_rule},
        {"fmt", cmd_fmt},
        {"replay", cmd_replay},
        {"audit", cmd_audit},
    };
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(&c, sub_argc, sub_argv);
    if (!strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    return usage_error(&c, NULL, "unknown command '%s'", cmd);
}
