/*
 * format.c -- the canonical layout of policy files (see format.h).
 *
 * The lexer gives each statement's tokens and physical lines; everything
 * between statements (blank lines, comment lines) is copied byte for byte.
 */
#include "exhook/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/policy.h"
#include "lexer.h"
#include "utf8.h"
#include "error_int.h"

typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void pad(buf *b, size_t n)
{
    while (n--)
        put(b, " ", 1);
}

/*
 * Quote a string value: `"` and a backslash that would otherwise start an
 * escape (before `"`, `\` or the end) are escaped; any other backslash is
 * kept single, so regexes read as written ("dev-\d+").
 */
static void quote(buf *b, const char *v, size_t n)
{
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '"')
            put(b, "\\\"", 2);
        else if (v[i] == '\\' && (i + 1 == n || v[i + 1] == '"' || v[i + 1] == '\\'))
            put(b, "\\\\", 2);
        else
            put(b, &v[i], 1);
    }
    put(b, "\"", 1);
}

/* One statement, cut into the columns a block aligns. */
typedef struct stmt {
    uint32_t first, last; /* physical lines */
    uint32_t tok_last;    /* line of its last token; lines after it up to `last` (blank or
                             comment lines a trailing `\` swallowed) are copied as they are */
    int is_rule;
    buf col[5];       /* effect, action, conditions, topics, options */
    char *comment;    /* trailing "# ..." on the last line, or NULL */
    int multiline;    /* 0: one line; 1: break before topic; 2: also one filter a line */
    size_t *spec_off; /* where each filter starts in col[C_TOPICS] */
    size_t nspec;
} stmt;

enum { C_EFFECT, C_ACTION, C_CONDS, C_TOPICS, C_OPTS };

static void stmt_free(stmt *s)
{
    for (int i = 0; i < 5; i++)
        free(s->col[i].p);
    free(s->comment);
    free(s->spec_off);
}

/* Sort the statement's tokens into columns. */
static void split_columns(const lexer *L, stmt *s)
{
    int c = C_EFFECT;
    for (size_t i = 0; i < L->ntoks; i++) {
        const token *t = &L->toks[i];
        if (i == 1)
            c = C_ACTION;
        else if (i == 2)
            c = C_CONDS;
        if (i >= 2 && tok_is(t, "topic") && c < C_TOPICS) c = C_TOPICS;
        if (i >= 2 && (tok_is(t, "qos") || tok_is(t, "retain")) && c < C_OPTS) c = C_OPTS;
        buf *b = &s->col[c];
        if (b->n) put(b, " ", 1);
        /* A filter starts at `eq` or at a string not right after `eq`. */
        if (c == C_TOPICS && (tok_is(t, "eq") || (t->type == TOK_STRING && !tok_is(t - 1, "eq")))) {
            if ((s->nspec & (s->nspec - 1)) == 0) { /* room doubles at powers of two */
                size_t *no = realloc(s->spec_off, (s->nspec ? 2 * s->nspec : 1) * sizeof(*no));
                if (!no) {
                    b->oom = 1;
                    return;
                }
                s->spec_off = no;
            }
            s->spec_off[s->nspec++] = b->n;
        }
        if (t->type == TOK_STRING)
            quote(b, tok_str(L, t), t->slen);
        else
            put(b, t->raw, t->rawlen);
    }
}

/* The comment on a statement's last line: text from a '#' outside quotes
 * after the last token (or from the line's start if no token is on it). */
static char *trailing_comment(const lexer *L, uint32_t last, const char *const *lines,
                              const size_t *lens)
{
    const char *line = lines[last - 1];
    size_t len = lens[last - 1], from = 0;
    const token *t = &L->toks[L->ntoks - 1];
    if (t->line == last) from = (size_t)(t->raw + t->rawlen - line);
    for (size_t i = from; i < len; i++)
        if (line[i] == '#') {
            size_t end = len;
            while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t'))
                end--;
            char *c = malloc(end - i + 1);
            if (c) {
                memcpy(c, line + i, end - i);
                c[end - i] = '\0';
            }
            return c;
        }
    return NULL;
}

static void emit_comment(buf *out, const stmt *s)
{
    if (s->comment) {
        put(out, "  ", 2);
        puts_(out, s->comment);
    }
}

/* How wide a column's text is on screen: its characters, not its bytes
 * (the policy compiled, so its strings are UTF-8). */
static size_t width(const buf *b)
{
    return exh_utf8_chars(b->p, b->n);
}

/* Rules first..end-1 form one block of consecutive one-line rules. */
static void emit_block(buf *out, stmt *v, size_t first, size_t end)
{
    size_t w[4] = {0};
    for (size_t i = first; i < end; i++)
        for (int c = 0; c < 4; c++)
            if (width(&v[i].col[c]) > w[c]) w[c] = width(&v[i].col[c]);
    for (size_t i = first; i < end; i++) {
        buf line = {0};
        for (int c = 0; c < 5; c++) {
            if (c && w[c < 4 ? c : 3] == 0 && c < 4)
                continue; /* a column no rule of the block uses */
            if (c == C_OPTS && !v[i].col[c].n) continue;
            if (line.n) put(&line, " ", 1);
            put(&line, v[i].col[c].p ? v[i].col[c].p : "", v[i].col[c].n);
            if (c < 4) pad(&line, w[c] - width(&v[i].col[c]));
        }
        while (line.n && line.p[line.n - 1] == ' ')
            line.n--;
        put(out, line.p ? line.p : "", line.n);
        line.oom ? (out->oom = 1) : 0;
        free(line.p);
        emit_comment(out, &v[i]);
        put(out, "\n", 1);
    }
}

static void emit_multiline(buf *out, const stmt *s)
{
    size_t n0 = out->n;
    put(out, s->col[C_EFFECT].p, s->col[C_EFFECT].n);
    put(out, " ", 1);
    put(out, s->col[C_ACTION].p, s->col[C_ACTION].n);
    size_t indent = out->n - n0 + 1;
    if (s->col[C_CONDS].n) {
        put(out, " ", 1);
        put(out, s->col[C_CONDS].p, s->col[C_CONDS].n);
    }
    put(out, " \\\n", 3);
    pad(out, indent);
    const buf *t = &s->col[C_TOPICS];
    if (t->n && s->multiline == 2 && s->nspec > 1) {
        /* One filter a line, each under the first. */
        size_t first = s->spec_off[0];
        for (size_t k = 0; k < s->nspec; k++) {
            size_t a = s->spec_off[k], e = k + 1 < s->nspec ? s->spec_off[k + 1] - 1 : t->n;
            if (k) {
                put(out, " \\\n", 3);
                pad(out, indent + first);
            } else {
                put(out, t->p, a);
            }
            put(out, t->p + a, e - a);
        }
        if (s->col[C_OPTS].n) put(out, " ", 1);
    } else if (t->n) {
        put(out, t->p, t->n);
        if (s->col[C_OPTS].n) put(out, " ", 1);
    }
    if (s->col[C_OPTS].n) put(out, s->col[C_OPTS].p, s->col[C_OPTS].n);
    emit_comment(out, s);
    put(out, "\n", 1);
}

static void emit_default(buf *out, const stmt *s)
{
    put(out, s->col[C_EFFECT].p, s->col[C_EFFECT].n);
    put(out, " ", 1);
    put(out, s->col[C_ACTION].p, s->col[C_ACTION].n);
    emit_comment(out, s);
    put(out, "\n", 1);
}

exh_status exh_format(const char *name, const char *text, size_t len, char **out, size_t *outlen,
                      exh_error *err)
{
    *out = NULL;
    exh_policy *p;
    exh_status st = exh_policy_parse(name, text, len, &p, err);
    if (st) return st; /* only a policy that compiles is reformatted */
    exh_policy_free(p);

    /* Physical lines. */
    size_t nlines = 1;
    for (size_t i = 0; i < len; i++)
        nlines += text[i] == '\n';
    const char **lines = malloc(nlines * sizeof(*lines));
    size_t *lens = malloc(nlines * sizeof(*lens));
    stmt *v = NULL;
    size_t nv = 0, capv = 0;
    buf o = {0};
    lexer L;
    lex_init(&L, name, text, len);
    if (!lines || !lens) goto oom;
    for (size_t i = 0, start = 0, k = 0; i <= len; i++)
        if (i == len || text[i] == '\n') {
            lines[k] = text + start;
            lens[k++] = i - start - (i > start && text[i - 1] == '\r');
            start = i + 1;
        }

    int rc;
    while ((rc = lex_statement(&L, err)) > 0) {
        if (nv == capv) {
            capv = capv ? capv * 2 : 64;
            stmt *nvp = realloc(v, capv * sizeof(*nvp));
            if (!nvp) goto oom;
            v = nvp;
        }
        stmt *s = &v[nv++];
        memset(s, 0, sizeof(*s));
        s->first = L.toks[0].line;
        s->last = L.end_line;
        s->tok_last = L.toks[L.ntoks - 1].line;
        s->is_rule = !tok_is(&L.toks[0], "default");
        split_columns(&L, s);
        s->comment = trailing_comment(&L, s->tok_last, lines, lens);
        s->multiline =
            s->is_rule && s->tok_last > s->first && (s->col[C_TOPICS].n || s->col[C_OPTS].n);
        if (s->multiline && s->tok_last > s->first + 1 && s->nspec > 1)
            s->multiline = 2; /* written a filter a line: kept that way */
    }
    if (rc < 0) {
        st = err && err->status ? err->status : EXH_ESYNTAX;
        goto out;
    }

    size_t line = 1, i = 0;
    while (i < nv || line <= nlines) {
        if (i < nv && line == v[i].first) {
            size_t end = i + 1;
            if (!v[i].is_rule) {
                emit_default(&o, &v[i]);
            } else if (v[i].multiline) {
                emit_multiline(&o, &v[i]);
            } else {
                /* A block: consecutive one-line rules with nothing between. */
                while (end < nv && v[end].is_rule && !v[end].multiline &&
                       v[end - 1].last == v[end - 1].tok_last &&
                       v[end].first == v[end - 1].last + 1)
                    end++;
                emit_block(&o, v, i, end);
            }
            const stmt *s = &v[end - 1];
            for (uint32_t k = s->tok_last + 1; k <= s->last && k <= nlines; k++) {
                put(&o, lines[k - 1], lens[k - 1]);
                put(&o, "\n", 1);
            }
            line = s->last + 1;
            i = end;
            continue;
        }
        if (line > nlines) break;
        /* Between statements: copied as it is (a last line without a
         * newline gets one only if it has text). */
        put(&o, lines[line - 1], lens[line - 1]);
        if (line < nlines || lens[line - 1]) put(&o, "\n", 1);
        line++;
    }
    if (o.oom) goto oom;
    if (!o.p) put(&o, "", 0);
    if (o.oom) goto oom;
    *out = o.p;
    *outlen = o.n;
    o.p = NULL;
    st = EXH_OK;
    goto out;
oom:
    st = EXH_ENOMEM;
    exh_error_nomem(err);
out:
    lex_free(&L);
    for (size_t k = 0; k < nv; k++)
        stmt_free(&v[k]);
    free(v);
    free(lines);
    free(lens);
    free(o.p);
    return st;
}
