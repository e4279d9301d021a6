/*
 * lexer.h -- splitting policy and test files into statements of tokens.
 *
 * Internal.  One call returns one logical line (a statement): comments
 * dropped, `\` continuations joined, strings decoded.  Tokens remember the
 * physical line and column they started on so every error can point there.
 */
#ifndef EXH_LEXER_H
#define EXH_LEXER_H

#include <stddef.h>
#include <stdint.h>

#include "exhook/error.h"

typedef enum tok_type { TOK_WORD, TOK_STRING } tok_type;

typedef struct token {
    tok_type type;
    const char *raw; /* the token as written (strings include quotes) */
    size_t rawlen;
    size_t sval; /* decoded bytes: offset into lexer->sbuf */
    size_t slen;
    uint32_t line, col;
} token;

typedef struct lexer {
    const char *name; /* file name for errors */
    const char *text;
    size_t len;
    size_t pos;
    uint32_t line;     /* current physical line, 1-based */
    size_t line_start; /* offset of the current physical line */
    /* The current statement. */
    token *toks;
    size_t ntoks, captoks;
    char *sbuf; /* decoded string bytes of the current statement */
    size_t slen, scap;
    uint32_t end_line, end_col; /* where the statement ends, for "expected X" */
} lexer;

void lex_init(lexer *L, const char *name, const char *text, size_t len);
void lex_free(lexer *L);

/* Read the next statement.  Returns 1 when one was read, 0 at end of
 * input, -1 on error (err filled). */
int lex_statement(lexer *L, exh_error *err);

/* Decoded string of a token (not NUL-terminated; use slen). */
static inline const char *tok_str(const lexer *L, const token *t)
{
    return L->sbuf + t->sval;
}

/* Fill err for a position in this lexer's text; message is printf-like. */
void lex_error_at(const lexer *L, exh_error *err, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The column (1-based) in the source of byte `off` of a string token's
 * decoded value, accounting for the quote and escapes before it. */
uint32_t tok_value_col(const token *t, size_t off);

/* The i-th token of the statement, or NULL past its end. */
static inline const token *lex_tok(const lexer *L, size_t i)
{
    return i < L->ntoks ? &L->toks[i] : NULL;
}

/* "expected <what>, found '<token i>'", or "... at end of line" when the
 * statement has no token i; the token is shown escaped and cut short.
 * Returns EXH_ESYNTAX. */
exh_status lex_expected(const lexer *L, size_t i, exh_error *err, const char *what);

/* Does a word token spell exactly kw? */
int tok_is(const token *t, const char *kw);

#endif
