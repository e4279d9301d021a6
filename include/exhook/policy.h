/*
 * policy.h -- compiling policy files into an indexed rule set.
 *
 * A policy is one file or a directory whose *.policy files are read in
 * byte order of their names.  Compilation is all or nothing: on error no
 * policy is returned and *err points at file:line:col.  A compiled policy
 * is immutable and may be shared by any number of evaluating threads.
 */
#ifndef EXHOOK_POLICY_H
#define EXHOOK_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef struct exh_policy exh_policy;

/* Actions are bits so a rule can hold several. */
typedef enum exh_action {
    EXH_PUBLISH = 1,
    EXH_SUBSCRIBE = 2,
    EXH_CONNECT = 4,
} exh_action;

typedef enum exh_decision {
    EXH_DENY = 0,
    EXH_ALLOW = 1,
    EXH_IGNORE = 2, /* no opinion: the broker's next source decides */
} exh_decision;

/* What a front end may show about a rule. */
typedef struct exh_rule_info {
    uint32_t number;     /* 1-based position in policy order */
    const char *file;    /* the file it came from, as given/found */
    uint32_t line;       /* its first physical line */
    uint32_t end_line;   /* its last physical line (continuations included) */
    uint32_t col;        /* column of its first token */
    const char *text;    /* the statement, continuations joined, comment dropped */
    exh_decision effect; /* EXH_ALLOW or EXH_DENY */
    unsigned actions;    /* exh_action bits */
} exh_rule_info;

/* Compile a file or a directory of *.policy files. */
exh_status exh_policy_load(const char *path, exh_policy **out, exh_error *err);

/* Compile a file or directory as exh_policy_load does, but with the file
 * named `file` (exactly as the policy names it, e.g. "policies/10-x.policy")
 * read from text instead of disk: "would the policy still compile with
 * this edit?"  EXH_EINVAL if the policy has no such file. */
exh_status exh_policy_load_with(const char *path, const char *file, const char *text, size_t len,
                                exh_policy **out, exh_error *err);

/* The files a compiled policy was read from, in order. */
uint32_t exh_policy_file_count(const exh_policy *p);
const char *exh_policy_file(const exh_policy *p, uint32_t index);

/* Compile policy text held in memory; name is used in errors. */
exh_status exh_policy_parse(const char *name, const char *text, size_t len, exh_policy **out,
                            exh_error *err);

void exh_policy_free(exh_policy *p);

/* Release the rules' texts (exh_rule_info.text becomes ""), for a
 * long-running front end that never shows them: about 80 bytes a rule. */
void exh_policy_drop_texts(exh_policy *p);

uint32_t exh_policy_rule_count(const exh_policy *p);

/* Rule by 0-based index (rule number - 1); NULL when out of range. */
const exh_rule_info *exh_policy_rule(const exh_policy *p, uint32_t index);

/* The `default` statement's decision (EXH_DENY when absent). */
exh_decision exh_policy_default(const exh_policy *p);

/* Where the `default` statement is; line 0 when the policy has none. */
const char *exh_policy_default_file(const exh_policy *p, uint32_t *line);

const char *exh_decision_str(exh_decision d); /* "allow" | "deny" | "ignore" */
const char *exh_action_str(unsigned actions); /* "publish", "pubsub", ... */

/* The action of one request, by name: "publish", "subscribe" or "connect",
 * exactly n bytes from s (s NUL-terminated at n).  False for anything else,
 * including the rule-only names "pubsub" and "all" and a name with a NUL
 * inside.  *a is set only on success. */
bool exh_action_parse(const char *s, size_t n, exh_action *a);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
