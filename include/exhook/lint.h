/*
 * lint.h -- warnings about policies that compile but are probably wrong.
 */
#ifndef EXHOOK_LINT_H
#define EXHOOK_LINT_H

#include <stdint.h>

#include "exhook/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef enum exh_lint_kind {
    EXH_LINT_SHADOWED, /* an earlier rule already decides every request this one could match */
    EXH_LINT_UNUSED_CAPTURE, /* a named group no placeholder of the rule uses */
    EXH_LINT_OVERBROAD,      /* an allow that grants every topic (to every client) */
    EXH_LINT_UNKNOWN_OPTION, /* note: qos/retain are unknown on EMQX's hooks */
    EXH_LINT_DEFAULT_IGNORE, /* `default ignore`: the broker's next source decides (fails open
                                on EMQX's default configurations); about the default statement */

    /* `deny pubsub|all ... retain true`: retain constrains publishes only, so
     * the rule denies every subscribe it matches (almost always meant publish) */
    EXH_LINT_RETAIN_SUBSCRIBE,
    /* note: `%u`/`%c` inside a topic level are text, not placeholders */
    EXH_LINT_PERCENT_TEXT,
} exh_lint_kind;

/* exh_lint_diag.rule of a finding about the `default` statement rather
 * than a rule (see exh_policy_default_file for where it is). */
#define EXH_LINT_NO_RULE UINT32_MAX

typedef struct exh_lint_diag {
    exh_lint_kind kind;
    int is_note;    /* 1 = informational note, 0 = warning */
    uint32_t rule;  /* 0-based index of the rule the diagnostic is about, or EXH_LINT_NO_RULE */
    uint32_t other; /* for EXH_LINT_SHADOWED: the shadowing rule's index */
    uint32_t col;   /* column in the rule's first line, 0 = whole rule */
    char message[512];
} exh_lint_diag;

typedef void (*exh_lint_fn)(const exh_lint_diag *diag, void *user);

/* Run every check; calls fn once per finding: one about the `default`
 * statement first, then the rules' in rule order.  Returns the number of
 * warnings (notes not counted). */
uint32_t exh_lint(const exh_policy *p, exh_lint_fn fn, void *user);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
