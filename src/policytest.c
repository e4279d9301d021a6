/*
 * policytest.c -- the `expect` lines of policy test files.  Shares the
 * policy lexer, so quoting, comments and continuations work the same and
 * errors point at file:line:col the same way.
 */
#include "exhook/policytest.h"

#include <string.h>

#include "lexer.h"

typedef struct tparser {
    const lexer *L;
    size_t i;
    exh_error *err;
} tparser;

static const token *peek(const tparser *P)
{
    return lex_tok(P->L, P->i);
}

static exh_status fail(tparser *P, const char *what)
{
    return lex_expected(P->L, P->i, P->err, what);
}

static const token *string_arg(tparser *P, const char *what)
{
    const token *t = peek(P);
    if (!t || t->type != TOK_STRING) {
        fail(P, what);
        return NULL;
    }
    P->i++;
    return t;
}

/* What a line says beyond the request's plain attributes. */
typedef struct line_flags {
    int anon;
    const token *qos, *retain; /* the attribute keywords, when given */
    const token *emqx;         /* `emqx` or the `also` of `also emqx` */
    int also;                  /* `also emqx`: run as written and as EMQX sends it */
} line_flags;

/* `emqx` / `also emqx`: EMQX's ACL hook (4.x) and authorize request (gRPC
 * ExHook) carry no QoS and no retain flag, so the front end evaluates with
 * both unknown.  Tests say so explicitly, to check what a broker there
 * really decides. */
static exh_status parse_emqx(tparser *P, const token *kw, line_flags *f)
{
    if (f->emqx) {
        lex_error_at(P->L, P->err, kw->line, kw->col, "'emqx' given twice on one line");
        return EXH_ESYNTAX;
    }
    if (tok_is(kw, "also")) {
        const token *v = peek(P);
        if (!v || !tok_is(v, "emqx")) return fail(P, "'emqx' after 'also'");
        P->i++;
        f->also = 1;
    }
    f->emqx = kw;
    return EXH_OK;
}

static exh_status parse_attr(tparser *P, exh_expectation *e, const token *kw, line_flags *f)
{
    exh_request *r = &e->request;
    const token *v;
    if (tok_is(kw, "username") || tok_is(kw, "clientid") || tok_is(kw, "topic") ||
        tok_is(kw, "group")) {
        if (!(v = string_arg(P, "a quoted value"))) return EXH_ESYNTAX;
        const char *s = tok_str(P->L, v);
        if (tok_is(kw, "username")) {
            r->username = s;
            r->username_len = v->slen;
        } else if (tok_is(kw, "clientid")) {
            r->clientid = s;
            r->clientid_len = v->slen;
        } else if (tok_is(kw, "topic")) {
            r->topic = s;
            r->topic_len = v->slen;
        } else {
            if (r->ngroups == EXH_TEST_MAX_GROUPS) {
                lex_error_at(P->L, P->err, kw->line, kw->col, "more than %d groups",
                             EXH_TEST_MAX_GROUPS);
                return EXH_ESYNTAX;
            }
            e->groups[r->ngroups].ptr = s;
            e->groups[r->ngroups++].len = v->slen;
        }
    } else if (tok_is(kw, "peerhost")) {
        v = peek(P);
        if (!v || !exh_addr_parse(tok_str(P->L, v), v->slen, &r->peerhost))
            return fail(P, "an IPv4 or IPv6 address after 'peerhost'");
        P->i++;
    } else if (tok_is(kw, "qos")) {
        v = peek(P);
        const char *s = v ? tok_str(P->L, v) : "";
        if (v && tok_is(v, "unknown")) {
            r->qos = -1;
        } else {
            if (!v || v->slen != 1 || s[0] < '0' || s[0] > '2')
                return fail(P, "a QoS level 0, 1 or 2, or 'unknown', after 'qos'");
            r->qos = s[0] - '0';
        }
        f->qos = kw;
        P->i++;
    } else if (tok_is(kw, "retain")) {
        r->retain = 1;
        if ((v = peek(P)) && (tok_is(v, "true") || tok_is(v, "false") || tok_is(v, "unknown"))) {
            r->retain = tok_is(v, "unknown") ? -1 : tok_is(v, "true");
            P->i++;
        }
        f->retain = kw;
    } else if (tok_is(kw, "superuser")) {
        r->superuser = true;
    } else if (tok_is(kw, "anonymous")) {
        f->anon = 1;
    } else if (tok_is(kw, "emqx") || tok_is(kw, "also")) {
        return parse_emqx(P, kw, f);
    } else {
        P->i--;
        return fail(P, "a request attribute (username, clientid, peerhost, group, superuser, "
                       "anonymous, topic, qos, retain, emqx, also emqx)");
    }
    return EXH_OK;
}

static exh_status parse_expect(tparser *P, exh_expectation *e, line_flags *f)
{
    const token *t = peek(P);
    if (!tok_is(t, "expect")) return fail(P, "'expect'");
    P->i++;
    if ((t = peek(P)) && tok_is(t, "allow"))
        e->expected = EXH_ALLOW;
    else if (t && tok_is(t, "deny"))
        e->expected = EXH_DENY;
    else if (t && tok_is(t, "ignore"))
        e->expected = EXH_IGNORE;
    else
        return fail(P, "'allow', 'deny' or 'ignore' after 'expect'");
    P->i++;
    exh_action a;
    if ((t = peek(P)) && tok_is(t, "publish"))
        a = EXH_PUBLISH;
    else if (t && tok_is(t, "subscribe"))
        a = EXH_SUBSCRIBE;
    else if (t && tok_is(t, "connect"))
        a = EXH_CONNECT;
    else
        return fail(P, "an action (publish, subscribe or connect)");
    P->i++;
    exh_request_init(&e->request, a);
    e->request.qos = 0; /* absent qos/retain are 0/false, as in `check` */
    e->request.retain = 0;
    e->request.groups = e->groups;
    const token *topic_kw = NULL;
    while ((t = peek(P))) {
        P->i++;
        if (tok_is(t, "topic")) topic_kw = t;
        exh_status st = parse_attr(P, e, t, f);
        if (st) return st;
    }
    if (f->emqx && a == EXH_CONNECT) {
        lex_error_at(P->L, P->err, f->emqx->line, f->emqx->col,
                     "'emqx' applies to publish and subscribe expectations (a connect carries "
                     "no QoS or retain flag anywhere)");
        return EXH_ESYNTAX;
    }
    /* A bare `emqx` line is EMQX's request only: a QoS or retain flag on
     * it would be a value EMQX never sends (`also emqx` keeps them for
     * the run as written). */
    if (f->emqx && !f->also && (f->qos || f->retain)) {
        const token *o = f->qos ? f->qos : f->retain;
        lex_error_at(P->L, P->err, o->line, o->col,
                     "an 'emqx' request has no QoS or retain flag; drop '%s' or write 'also "
                     "emqx' to test both",
                     f->qos ? "qos" : "retain");
        return EXH_ESYNTAX;
    }
    if (f->anon && e->request.username) {
        lex_error_at(P->L, P->err, e->line, e->col,
                     "'anonymous' and 'username' contradict each other");
        return EXH_ESYNTAX;
    }
    if (a != EXH_CONNECT && !topic_kw)
        return fail(P, "a 'topic' for a publish or subscribe expectation");
    if (a == EXH_CONNECT && topic_kw) {
        lex_error_at(P->L, P->err, topic_kw->line, topic_kw->col,
                     "a connect expectation takes no topic");
        return EXH_ESYNTAX;
    }
    return EXH_OK;
}

exh_status exh_testfile_parse(const char *name, const char *text, size_t len, exh_expectation_fn fn,
                              void *user, exh_error *err)
{
    exh_error scratch;
    if (!err) err = &scratch;
    exh_error_clear(err);
    lexer L;
    lex_init(&L, name, text, len);
    tparser P = {.L = &L, .err = err};
    exh_status st = EXH_OK;
    int rc;
    while ((rc = lex_statement(&L, err)) > 0) {
        exh_expectation e;
        line_flags f = {0};
        memset(&e, 0, sizeof(e));
        P.i = 0;
        e.file = name;
        e.line = L.toks[0].line;
        e.col = L.toks[0].col;
        if ((st = parse_expect(&P, &e, &f))) break;
        if (f.emqx && !f.also) {
            e.request.qos = e.request.retain = -1;
            e.emqx = true;
        }
        if (fn(&e, user)) break;
        if (f.also) { /* the same expectation again, as EMQX sends the request */
            e.request.qos = e.request.retain = -1;
            e.emqx = true;
            if (fn(&e, user)) break;
        }
    }
    if (rc < 0) st = err->status ? err->status : EXH_ESYNTAX;
    lex_free(&L);
    return st;
}
