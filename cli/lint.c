/*
 * lint -- compile errors, then warnings about rules that are probably wrong.
 */
#include <string.h>

#include "cli.h"
#include "exhook/lint.h"

static const char lint_help[] =
    "usage: exhookctl lint [--json] [PATH]\n"
    "\n"
    "Compile the policy (PATH, else --policy / $EXHOOK_POLICY / ./policies) and\n"
    "report, in rule order:\n"
    "  warning: a rule shadowed by an earlier rule that already decides every\n"
    "           request it could match (it can never decide anything);\n"
    "  warning: a named capture that no placeholder of its rule uses;\n"
    "  warning: an allow that grants every topic ('#' or no topic);\n"
    "  warning: `deny pubsub|all ... retain true`: retain constrains publishes\n"
    "           only, so it also denies every subscribe it matches;\n"
    "  warning: `default ignore`, which lets the broker's next source decide\n"
    "           (on EMQX's default configuration: allow, so it fails open);\n"
    "  note:    a rule with qos/retain options, which EMQX's hooks cannot\n"
    "           supply (there an allow with them never grants what they\n"
    "           constrain, a deny refuses it whatever the values).\n"
    "  note:    `%u`/`%c` inside a topic level, where they are text (they are\n"
    "           placeholders only as a whole level; use ${username}/${clientid}).\n"
    "\n"
    "Exit status: 0 clean (notes allowed), 1 warnings, 2 the policy does not\n"
    "compile.\n";

typedef struct ctx {
    const exh_policy *p;
    bool json;
    bool first;
} ctx;

static void show(const exh_lint_diag *d, void *user)
{
    ctx *c = user;
    const exh_rule_info *r = exh_policy_rule(c->p, d->rule);
    exh_rule_info def = {0};
    if (d->rule == EXH_LINT_NO_RULE) { /* about the `default` statement */
        def.file = exh_policy_default_file(c->p, &def.line);
        def.col = 1;
        def.text = "default ignore";
        r = &def;
    }
    const char *sev = d->is_note ? "note" : "warning";
    if (c->json) {
        char loc[600];
        snprintf(loc, sizeof(loc), "%s:%u:%u", r->file, r->line, d->col ? d->col : r->col);
        printf("%s{\"severity\":\"%s\",\"at\":", c->first ? "" : ",", sev);
        json_put_string(stdout, loc, strlen(loc));
        fputs(",\"message\":", stdout);
        json_put_string(stdout, d->message, strlen(d->message));
        fputs(",\"rule\":", stdout);
        json_put_string(stdout, r->text, strlen(r->text));
        fputs("}", stdout);
        c->first = false;
        return;
    }
    printf("%s:%u:%u: %s: %s\n    %s\n", r->file, r->line, d->col ? d->col : r->col, sev,
           d->message, r->text);
}

int cmd_lint(cli *c, int argc, char **argv)
{
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(lint_help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (argv[i][0] == '-' || path)
            return usage_error(c, "lint", "unexpected argument '%s'", argv[i]);
        else
            path = argv[i];
    }
    exh_policy *p = load_policy(c, path);
    if (!p) return EXIT_USAGE;
    ctx x = {.p = p, .json = json, .first = true};
    if (json) fputs("{\"diagnostics\":[", stdout);
    uint32_t warnings = exh_lint(p, show, &x);
    if (json)
        printf("],\"rules\":%u,\"warnings\":%u}\n", exh_policy_rule_count(p), warnings);
    else
        printf("%u rules, %u warning%s\n", exh_policy_rule_count(p), warnings,
               warnings == 1 ? "" : "s");
    exh_policy_free(p);
    return warnings ? EXIT_DENY : 0;
}
