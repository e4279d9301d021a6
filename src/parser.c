/*
 * parser.c -- policy statements (DESIGN §2).
 *
 *   statement := 'default' ('allow'|'deny'|'ignore')
 *              | effect action {condition} ['topic' spec {spec}] {option}
 *   condition := ('username'|'clientid') ['~'] STRING | 'peerhost' CIDR
 *              | 'group' STRING | 'anonymous' | 'not' condition
 *   spec      := STRING | 'eq' STRING
 *   option    := 'qos' N['-'M] | 'retain' ('true'|'false')
 *
 * Conditions come before `topic` and options last: one order makes rules
 * easy to read in a diff, and a misplaced word gets a precise error.
 */
#include "parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "error_int.h"

typedef struct parser {
    const lexer *L;
    size_t i;
    exh_error *err;
} parser;

static const token *peek(const parser *P)
{
    return lex_tok(P->L, P->i);
}

static exh_status expected(parser *P, const char *what)
{
    return lex_expected(P->L, P->i, P->err, what);
}

static exh_status error_at(parser *P, const token *t, const char *msg)
{
    lex_error_at(P->L, P->err, t->line, t->col, "%s", msg);
    return EXH_ESYNTAX;
}

static char *dup_value(const lexer *L, const token *t)
{
    char *s = malloc(t->slen + 1);
    if (s) {
        memcpy(s, tok_str(L, t), t->slen);
        s[t->slen] = '\0';
    }
    return s;
}

static const token *accept_word(parser *P, const char *kw)
{
    const token *t = peek(P);
    if (t && tok_is(t, kw)) {
        P->i++;
        return t;
    }
    return NULL;
}

/* Every policy string is UTF-8, as MQTT's names and topics are: a byte
 * that is not could never equal a request's (those are refused first), and
 * a regex is compiled in UTF mode. */
static const token *expect_string(parser *P, const char *what)
{
    const token *t = peek(P);
    if (!t || t->type != TOK_STRING) {
        expected(P, what);
        return NULL;
    }
    size_t bad = exh_utf8_bad(tok_str(P->L, t), t->slen);
    if (bad < t->slen) {
        lex_error_at(P->L, P->err, t->line, tok_value_col(t, bad),
                     "string is not valid UTF-8 (byte 0x%02x here); policy strings are UTF-8, "
                     "like MQTT names and topics",
                     (unsigned char)tok_str(P->L, t)[bad]);
        return NULL;
    }
    P->i++;
    return t;
}

static int is_condition_word(const token *t)
{
    return tok_is(t, "username") || tok_is(t, "clientid") || tok_is(t, "peerhost") ||
           tok_is(t, "group") || tok_is(t, "anonymous") || tok_is(t, "not");
}

static exh_status parse_condition(parser *P, exh_rule *r, int negated, const token *not_tok);

/* Counters are 16-bit: refuse rather than wrap (a wrapped counter would
 * silently drop conditions or filters, and with them a deny). */
#define MAX_CONDS 1024
#define MAX_SPECS 65535

static exh_status add_cond(parser *P, exh_rule *r, exh_cond **out)
{
    if (r->nconds >= MAX_CONDS) {
        const token *t = lex_tok(P->L, P->i ? P->i - 1 : 0);
        return error_at(P, t, "more than 1024 conditions in one rule");
    }
    exh_cond *c = realloc(r->conds, (r->nconds + 1u) * sizeof(*c));
    if (!c) return exh_error_nomem(P->err);
    r->conds = c;
    *out = &c[r->nconds++];
    memset(*out, 0, sizeof(**out));
    return EXH_OK;
}

/* username/clientid: exact string, or `~` and a regex. */
static exh_status parse_identity(parser *P, exh_rule *r, const token *kw, int negated,
                                 const token *not_tok)
{
    int is_user = tok_is(kw, "username");
    int regex = accept_word(P, "~") != NULL;
    const token *s = expect_string(P, regex ? "a quoted regular expression after '~'"
                                            : "a quoted string or '~' after the condition name");
    if (!s) return EXH_ESYNTAX;
    exh_cond *c;
    exh_status st = add_cond(P, r, &c);
    if (st) return st;
    c->negated = negated;
    c->col = (not_tok ? not_tok : kw)->col;
    c->str = dup_value(P->L, s);
    c->len = (uint32_t)s->slen;
    c->str_tok = s;
    if (!c->str) return exh_error_nomem(P->err);
    /* `${` starts a placeholder in an exact name, as in a topic filter
     * (compile.c resolves it); `%u`/`%c` stay literal text here, since a
     * `%` is an ordinary character of MQTT names. */
    int pat = 0;
    for (uint32_t k = 0; !regex && k + 1 < c->len && !pat; k++)
        pat = c->str[k] == '$' && c->str[k + 1] == '{';
    if (regex)
        c->kind = is_user ? COND_USERNAME_RE : COND_CLIENTID_RE;
    else if (pat)
        c->kind = is_user ? COND_USERNAME_PAT : COND_CLIENTID_PAT;
    else
        c->kind = is_user ? COND_USERNAME : COND_CLIENTID;
    return EXH_OK;
}

static exh_status parse_condition(parser *P, exh_rule *r, int negated, const token *not_tok)
{
    const token *kw = peek(P);
    if (!kw || !is_condition_word(kw))
        return expected(P, "a condition (username, clientid, peerhost, group, anonymous)");
    P->i++;
    if (tok_is(kw, "not")) {
        if (negated) return error_at(P, kw, "'not' cannot be doubled; drop both");
        return parse_condition(P, r, 1, kw);
    }
    if (tok_is(kw, "username") || tok_is(kw, "clientid"))
        return parse_identity(P, r, kw, negated, not_tok);
    exh_cond *c;
    exh_status st;
    if (tok_is(kw, "anonymous")) {
        if ((st = add_cond(P, r, &c))) return st;
        c->kind = COND_ANONYMOUS;
    } else if (tok_is(kw, "group")) {
        const token *s = expect_string(P, "a quoted group name after 'group'");
        if (!s) return EXH_ESYNTAX;
        if ((st = add_cond(P, r, &c))) return st;
        c->kind = COND_GROUP;
        c->str = dup_value(P->L, s);
        c->len = s->slen;
        if (!c->str) return exh_error_nomem(P->err);
    } else { /* peerhost */
        const token *a = peek(P);
        if (!a) return expected(P, "an address or CIDR block after 'peerhost'");
        P->i++;
        const char *why = NULL;
        exh_cidr cidr;
        if (!exh_cidr_parse(tok_str(P->L, a), a->slen, &cidr, &why)) {
            lex_error_at(P->L, P->err, a->line, a->col, "bad peerhost address: %s",
                         why ? why : "not an IPv4 or IPv6 address or CIDR block");
            return EXH_ESYNTAX;
        }
        if ((st = add_cond(P, r, &c))) return st;
        c->kind = COND_PEERHOST;
        c->cidr = cidr;
    }
    c->negated = negated;
    c->col = (not_tok ? not_tok : kw)->col;
    return EXH_OK;
}

static exh_status parse_spec(parser *P, exh_rule *r)
{
    const token *eq = accept_word(P, "eq");
    const token *s = expect_string(P, eq ? "a quoted topic after 'eq'" : "a quoted topic filter");
    if (!s) return EXH_ESYNTAX;
    if (s->slen == 0)
        return error_at(P, s, "empty topic filter (a topic has at least one character)");
    if (r->nspecs >= MAX_SPECS)
        return error_at(P, s, "more than 65535 topic filters in one rule; split the rule");
    /* Room doubles when nspecs reaches a power of two: one realloc per new
     * spec would copy the array 65535 times for the longest rule. */
    if ((r->nspecs & (r->nspecs - 1u)) == 0) {
        exh_spec *grown = realloc(r->specs, (r->nspecs ? 2u * r->nspecs : 1u) * sizeof(*grown));
        if (!grown) return exh_error_nomem(P->err);
        r->specs = grown;
    }
    exh_spec *sp = &r->specs[r->nspecs++];
    memset(sp, 0, sizeof(*sp));
    sp->eq = eq != NULL;
    sp->text = dup_value(P->L, s);
    sp->len = (uint32_t)s->slen;
    sp->line = (eq ? eq : s)->line;
    sp->col = (eq ? eq : s)->col;
    sp->tok = s;
    return sp->text ? EXH_OK : exh_error_nomem(P->err);
}

/* qos N or qos N-M, N and M in 0..2. */
static exh_status parse_qos(parser *P, exh_rule *r, const token *kw)
{
    const token *t = peek(P);
    const char *v = t ? tok_str(P->L, t) : NULL;
    if (!t || t->type != TOK_WORD ||
        !((t->slen == 1 && v[0] >= '0' && v[0] <= '2') ||
          (t->slen == 3 && v[0] >= '0' && v[0] <= '2' && v[1] == '-' && v[2] >= '0' &&
           v[2] <= '2')))
        return expected(P, "a QoS level 0, 1 or 2, or a range like 0-1, after 'qos'");
    if (r->qos_lo >= 0) return error_at(P, kw, "'qos' given twice in one rule");
    r->qos_lo = (int8_t)(v[0] - '0');
    r->qos_hi = t->slen == 3 ? (int8_t)(v[2] - '0') : r->qos_lo;
    if (r->qos_lo > r->qos_hi)
        return error_at(P, t, "QoS range is backwards (write the lower level first)");
    r->qos_col = kw->col;
    P->i++;
    return EXH_OK;
}

static exh_status parse_retain(parser *P, exh_rule *r, const token *kw)
{
    if (r->retain >= 0) return error_at(P, kw, "'retain' given twice in one rule");
    if (accept_word(P, "true"))
        r->retain = 1;
    else if (accept_word(P, "false"))
        r->retain = 0;
    else
        return expected(P, "'true' or 'false' after 'retain'");
    r->retain_col = kw->col;
    if (!(r->actions & EXH_PUBLISH)) return error_at(P, kw, "'retain' applies to publish only");
    return EXH_OK;
}

static exh_status parse_options(parser *P, exh_rule *r)
{
    const token *t;
    exh_status st;
    while ((t = peek(P))) {
        if (tok_is(t, "qos") || tok_is(t, "retain")) {
            if (r->actions & EXH_CONNECT)
                return error_at(P, t, "connect rules take no 'qos' or 'retain'");
            P->i++;
            st = tok_is(t, "qos") ? parse_qos(P, r, t) : parse_retain(P, r, t);
            if (st) return st;
            continue;
        }
        if (is_condition_word(t)) return error_at(P, t, "conditions go before 'topic' and options");
        if (tok_is(t, "topic"))
            return error_at(P, t, "'topic' given twice; list every filter after one 'topic'");
        if (t->type == TOK_STRING || tok_is(t, "eq"))
            return error_at(P, t, "topic filters go before options");
        return expected(P, "'qos', 'retain' or end of line");
    }
    return EXH_OK;
}

static int parse_action(const token *t, unsigned *actions)
{
    if (tok_is(t, "publish"))
        *actions = EXH_PUBLISH;
    else if (tok_is(t, "subscribe"))
        *actions = EXH_SUBSCRIBE;
    else if (tok_is(t, "pubsub") || tok_is(t, "all"))
        *actions = EXH_PUBLISH | EXH_SUBSCRIBE;
    else if (tok_is(t, "connect"))
        *actions = EXH_CONNECT;
    else
        return 0;
    return 1;
}

/* The rule's text for listings: its tokens as written, one space apart. */
static char *rule_text(const lexer *L)
{
    size_t n = 0;
    for (size_t k = 0; k < L->ntoks; k++)
        n += L->toks[k].rawlen + 1;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t k = 0; k < L->ntoks; k++) {
        if (k) s[o++] = ' ';
        memcpy(s + o, L->toks[k].raw, L->toks[k].rawlen);
        o += L->toks[k].rawlen;
    }
    s[o] = '\0';
    return s;
}

static exh_status parse_rule(parser *P, exh_rule *r, const char *file)
{
    const token *eff = peek(P);
    r->qos_lo = r->qos_hi = -1;
    r->retain = -1;
    r->effect = tok_is(eff, "allow") ? EXH_ALLOW : EXH_DENY;
    P->i++;
    const token *act = peek(P);
    unsigned actions;
    if (!act || !parse_action(act, &actions))
        return expected(P, "an action (publish, subscribe, pubsub, all or connect)");
    P->i++;
    r->actions = (uint8_t)actions;
    exh_status st;
    const token *t;
    while ((t = peek(P)) && is_condition_word(t))
        if ((st = parse_condition(P, r, 0, NULL))) return st;
    if ((t = accept_word(P, "topic"))) {
        if (actions & EXH_CONNECT) return error_at(P, t, "connect rules take no 'topic'");
        do {
            if ((st = parse_spec(P, r))) return st;
        } while ((t = peek(P)) && (t->type == TOK_STRING || tok_is(t, "eq")));
    } else if ((t = peek(P)) && t->type == TOK_STRING) {
        return error_at(P, t, "a topic filter needs the 'topic' keyword before it");
    }
    if ((st = parse_options(P, r))) return st;
    r->info.file = file;
    r->info.line = eff->line;
    r->info.end_line = P->L->end_line;
    r->info.col = eff->col;
    r->info.effect = (exh_decision)r->effect;
    r->info.actions = r->actions;
    r->info.text = rule_text(P->L);
    return r->info.text ? EXH_OK : exh_error_nomem(P->err);
}

static exh_status parse_default(parser *P, policy_builder *b, const token *kw, const char *file)
{
    P->i++;
    exh_decision d;
    if (accept_word(P, "allow"))
        d = EXH_ALLOW;
    else if (accept_word(P, "deny"))
        d = EXH_DENY;
    else if (accept_word(P, "ignore"))
        d = EXH_IGNORE;
    else
        return expected(P, "'allow', 'deny' or 'ignore' after 'default'");
    if (peek(P)) return expected(P, "end of line after the default decision");
    if (b->has_default) {
        lex_error_at(P->L, P->err, kw->line, kw->col,
                     "'default' given twice (the first is at %s:%u)", b->def_file, b->def_line);
        return EXH_ESYNTAX;
    }
    b->has_default = true;
    b->def = d;
    b->def_file = (char *)file;
    b->def_line = kw->line;
    b->def_col = kw->col;
    return EXH_OK;
}

static exh_status parse_statement(parser *P, policy_builder *b, const char *file)
{
    const token *t = peek(P);
    if (tok_is(t, "default")) return parse_default(P, b, t, file);
    if (!tok_is(t, "allow") && !tok_is(t, "deny")) {
        if (t->type == TOK_WORD && t->rawlen && t->raw[0] >= 'A' && t->raw[0] <= 'Z')
            return error_at(P, t, "keywords are lower case");
        return expected(P, "'allow', 'deny' or 'default' at the start of a statement");
    }
    if (b->nrules == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 64;
        exh_rule *nr = realloc(b->rules, cap * sizeof(*nr));
        if (!nr) return exh_error_nomem(P->err);
        b->rules = nr;
        b->cap = cap;
    }
    exh_rule *r = &b->rules[b->nrules];
    memset(r, 0, sizeof(*r));
    exh_status st = parse_rule(P, r, file);
    if (!st) st = compile_rule(P->L, r, P->err);
    if (st) {
        exh_rule_free(r);
        return st;
    }
    r->info.number = ++b->nrules;
    return EXH_OK;
}

exh_status parse_policy_text(policy_builder *b, const char *name, const char *text, size_t len,
                             exh_error *err)
{
    lexer L;
    lex_init(&L, name, text, len);
    parser P = {.L = &L, .err = err};
    exh_status st = EXH_OK;
    int rc;
    while ((rc = lex_statement(&L, err)) > 0) {
        P.i = 0;
        if ((st = parse_statement(&P, b, name))) break;
    }
    if (rc < 0) st = err->status ? err->status : EXH_ESYNTAX;
    lex_free(&L);
    return st;
}
