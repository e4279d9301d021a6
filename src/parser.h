/*
 * parser.h -- policy statements and test expectations.  Internal.
 *
 * A recursive-descent parser over one statement's tokens at a time, in the
 * manner of Lua's lparser.c: one state struct, one function per grammar
 * rule, every error raised at the token it is about.
 */
#ifndef EXH_PARSER_H
#define EXH_PARSER_H

#include "exhook/eval.h"
#include "lexer.h"
#include "rule.h"

/* What parsing a policy builds up, file after file. */
typedef struct policy_builder {
    exh_rule *rules;
    uint32_t nrules, cap;
    bool has_default;
    exh_decision def;
    char *def_file;
    uint32_t def_line, def_col;
} policy_builder;

/* Parse one policy file's text and append its rules.  name must outlive
 * the builder (it is stored in each rule's info.file). */
exh_status parse_policy_text(policy_builder *b, const char *name, const char *text, size_t len,
                             exh_error *err);

/* Compile one parsed rule (regexes, captures, topic filters); compile.c.
 * Runs while its statement's tokens are still alive, so errors can point
 * into them. */
exh_status compile_rule(const lexer *L, exh_rule *r, exh_error *err);

#endif
