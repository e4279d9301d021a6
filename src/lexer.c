/*
 * lexer.c -- the policy language's tokens.
 *
 * Tokens are words (a run of bytes that are not blank, '"' or '#') and
 * double-quoted strings.  Inside strings `\"` and `\\` are escapes; any
 * other backslash is kept as written, so a regex like "dev-\d+" reads as
 * an operator expects.  A line whose last non-blank byte is a `\` outside
 * a string continues on the next line.
 */
#include "lexer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error_int.h"

void lex_init(lexer *L, const char *name, const char *text, size_t len)
{
    memset(L, 0, sizeof(*L));
    L->name = name;
    L->text = text;
    L->len = len;
    L->line = 1;
}

void lex_free(lexer *L)
{
    free(L->toks);
    free(L->sbuf);
    L->toks = NULL;
    L->sbuf = NULL;
}

static uint32_t col_of(const lexer *L, size_t pos)
{
    return (uint32_t)(pos - L->line_start + 1);
}

/* Copy the physical line that contains byte `pos` of the text. */
static void copy_line(const lexer *L, uint32_t line, char *out, size_t size)
{
    size_t start = 0;
    uint32_t cur = 1;
    for (size_t i = 0; i < L->len && cur < line; i++)
        if (L->text[i] == '\n') {
            cur++;
            start = i + 1;
        }
    size_t end = start;
    while (end < L->len && L->text[end] != '\n' && L->text[end] != '\r')
        end++;
    size_t n = end - start;
    if (n >= size) n = size - 1;
    memcpy(out, L->text + start, n);
    /* A NUL inside the line would cut the display short; show it as '?'. */
    for (size_t i = 0; i < n; i++)
        if (out[i] == '\0') out[i] = '?';
    out[n] = '\0';
}

void lex_error_at(const lexer *L, exh_error *err, uint32_t line, uint32_t col, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    exh_error_vset(err, EXH_ESYNTAX, L->name, line, col, fmt, ap);
    va_end(ap);
    copy_line(L, line, err->source, sizeof(err->source));
}

static int push_tok(lexer *L, exh_error *err, token *t)
{
    if (L->ntoks == L->captoks) {
        size_t cap = L->captoks ? L->captoks * 2 : 16;
        token *nt = realloc(L->toks, cap * sizeof(*nt));
        if (!nt) {
            exh_error_nomem(err);
            return -1;
        }
        L->toks = nt;
        L->captoks = cap;
    }
    L->toks[L->ntoks++] = *t;
    return 0;
}

static int push_byte(lexer *L, exh_error *err, char c)
{
    if (L->slen == L->scap) {
        size_t cap = L->scap ? L->scap * 2 : 256;
        char *nb = realloc(L->sbuf, cap);
        if (!nb) {
            exh_error_nomem(err);
            return -1;
        }
        L->sbuf = nb;
        L->scap = cap;
    }
    L->sbuf[L->slen++] = c;
    return 0;
}

static void newline(lexer *L)
{
    L->line++;
    L->line_start = L->pos;
}

/* Is the `\` at pos the last non-blank byte of its line? */
static int is_continuation(const lexer *L, size_t pos)
{
    size_t i = pos + 1;
    while (i < L->len && (L->text[i] == ' ' || L->text[i] == '\t' || L->text[i] == '\r'))
        i++;
    return i >= L->len || L->text[i] == '\n';
}

static int lex_string(lexer *L, exh_error *err)
{
    token t = {.type = TOK_STRING,
               .raw = L->text + L->pos,
               .line = L->line,
               .col = col_of(L, L->pos),
               .sval = L->slen};
    size_t start = L->pos++;
    for (;;) {
        if (L->pos >= L->len || L->text[L->pos] == '\n') {
            lex_error_at(L, err, t.line, t.col, "unterminated string (a closing '\"' is missing)");
            return -1;
        }
        char c = L->text[L->pos];
        if (c == '"') break;
        if (L->slen - t.sval >= 65535) {
            lex_error_at(L, err, t.line, t.col, "string longer than 65535 bytes");
            return -1;
        }
        if (c == '\0') {
            lex_error_at(L, err, L->line, col_of(L, L->pos), "NUL byte inside a string");
            return -1;
        }
        if (c == '\\' && L->pos + 1 < L->len &&
            (L->text[L->pos + 1] == '"' || L->text[L->pos + 1] == '\\')) {
            L->pos++;
            c = L->text[L->pos];
        }
        if (push_byte(L, err, c) < 0) return -1;
        L->pos++;
    }
    L->pos++; /* closing quote */
    t.rawlen = L->pos - start;
    t.slen = L->slen - t.sval;
    return push_tok(L, err, &t);
}

int lex_statement(lexer *L, exh_error *err)
{
    L->ntoks = 0;
    L->slen = 0;
    /* Some editors start a UTF-8 file with a byte order mark; unreported it
     * would read as part of the first word, where nobody can see it. */
    if (L->pos == 0 && L->len >= 3 && !memcmp(L->text, "\xef\xbb\xbf", 3)) {
        lex_error_at(L, err, 1, 1,
                     "the file starts with a UTF-8 byte order mark (bytes EF BB BF); save it "
                     "without one");
        return -1;
    }
    for (;;) {
        if (L->pos >= L->len) {
            /* A continuation that swallowed the last newline ends the
             * statement on the line before, not on a line that is not there. */
            int past = L->pos == L->line_start && L->line > 1 && L->ntoks &&
                       L->toks[L->ntoks - 1].line < L->line;
            L->end_line = past ? L->line - 1 : L->line;
            L->end_col = past ? L->toks[L->ntoks - 1].col + (uint32_t)L->toks[L->ntoks - 1].rawlen
                              : col_of(L, L->pos);
            return L->ntoks ? 1 : 0;
        }
        char c = L->text[L->pos];
        if (c == '\n') {
            L->end_line = L->line;
            L->end_col = col_of(L, L->pos);
            L->pos++;
            newline(L);
            if (L->ntoks) return 1;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            L->pos++;
            continue;
        }
        if (c == '#') { /* comment to end of the physical line */
            while (L->pos < L->len && L->text[L->pos] != '\n')
                L->pos++;
            continue;
        }
        if (c == '\0') {
            lex_error_at(L, err, L->line, col_of(L, L->pos), "NUL byte in policy text");
            return -1;
        }
        if (c == '\\' && is_continuation(L, L->pos)) {
            while (L->pos < L->len && L->text[L->pos] != '\n')
                L->pos++;
            if (L->pos < L->len) {
                L->pos++;
                newline(L);
            }
            continue;
        }
        if (c == '"') {
            if (lex_string(L, err) < 0) return -1;
            continue;
        }
        token t = {.type = TOK_WORD,
                   .raw = L->text + L->pos,
                   .line = L->line,
                   .col = col_of(L, L->pos),
                   .sval = L->slen};
        size_t start = L->pos;
        while (L->pos < L->len) {
            c = L->text[L->pos];
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' || c == '#' ||
                c == '\0' || c == '\f' || c == '\v')
                break;
            if (c == '\\' && is_continuation(L, L->pos)) break;
            if (push_byte(L, err, c) < 0) return -1;
            L->pos++;
        }
        t.rawlen = L->pos - start;
        t.slen = L->slen - t.sval;
        if (push_tok(L, err, &t) < 0) return -1;
    }
}

uint32_t tok_value_col(const token *t, size_t off)
{
    if (t->type != TOK_STRING) return t->col + (uint32_t)off;
    size_t raw = 1, dec = 0; /* skip the opening quote */
    while (dec < off && raw + 1 < t->rawlen) {
        if (t->raw[raw] == '\\' && (t->raw[raw + 1] == '"' || t->raw[raw + 1] == '\\')) raw++;
        raw++;
        dec++;
    }
    return t->col + (uint32_t)raw;
}

int tok_is(const token *t, const char *kw)
{
    size_t n = strlen(kw);
    return t->type == TOK_WORD && t->rawlen == n && memcmp(t->raw, kw, n) == 0;
}

/* Show a token in a message: words as written, strings with quotes,
 * both cut short and with unprintable bytes escaped. */
static const char *tok_show(const token *t, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t k = 0; k < t->rawlen && n + 5 < size; k++) {
        unsigned char c = (unsigned char)t->raw[k];
        if (k == 40) {
            n += (size_t)snprintf(buf + n, size - n, "...");
            break;
        }
        if (c < 0x20 || c == 0x7f)
            n += (size_t)snprintf(buf + n, size - n, "\\x%02x", c);
        else
            buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return buf;
}

/* "expected <what>, found 'tok'" at the current token, or at the end of
 * the statement when there is none. */
exh_status lex_expected(const lexer *L, size_t i, exh_error *err, const char *what)
{
    const token *t = lex_tok(L, i);
    if (!t) {
        lex_error_at(L, err, L->end_line, L->end_col, "expected %s at end of line", what);
    } else {
        char buf[64];
        lex_error_at(L, err, t->line, t->col, "expected %s, found '%s'", what,
                     tok_show(t, buf, sizeof(buf)));
    }
    return EXH_ESYNTAX;
}
