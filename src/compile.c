/*
 * compile.c -- turning a parsed rule into its evaluable form: regexes
 * compiled once (PCRE2, JIT when the machine has it), named captures given
 * fixed slots, topic filters split into levels with their placeholders
 * resolved.  Everything that can be wrong with a rule is found here, so the
 * evaluator never meets a surprise.
 */
#include "exhook/topic.h"
#include "parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error_int.h"

static exh_status at_value(const lexer *L, exh_error *err, const token *t, size_t off,
                           const char *msg, const char *arg)
{
    lex_error_at(L, err, t->line, tok_value_col(t, off), msg, arg);
    return EXH_ESYNTAX;
}

static int find_slot(const exh_rule *r, const char *name, size_t len)
{
    for (int s = 0; s < r->nslots; s++)
        if (strlen(r->slot_names[s]) == len && memcmp(r->slot_names[s], name, len) == 0) return s;
    return -1;
}

/*
 * How many leading bytes of a pattern every match must start with: the
 * literal characters before the first metacharacter.  Only a class or a
 * dot may follow them as they are; anything else -- a quantifier, but also
 * `\E`, `\Q\E` or `(?#...)`, which PCRE2 skips so that a quantifier after
 * them applies to the last literal -- costs the last literal character,
 * all of its bytes (in UTF mode `é?` makes the whole `é` optional).  Any
 * '|' could be a top-level alternation, so then there is no prefix.  The
 * evaluator compares these bytes before calling PCRE2, which keeps
 * mismatching ids from touching the (cold) compiled pattern at all.
 */
static uint8_t literal_prefix(const char *re, size_t len)
{
    if (memchr(re, '|', len)) return 0;
    size_t n = 0;
    while (n < len && n < 255 && !strchr("\\^$.[]()?*+{}", re[n]) && re[n] != '\0')
        n++;
    if (n < len && n > 0 && re[n] != '[' && re[n] != '.') {
        n--;
        while (n > 0 && ((unsigned char)re[n] & 0xC0) == 0x80) /* back to its lead byte */
            n--;
    }
    return (uint8_t)n;
}

/* Parse "{n}", "{n,}" or "{n,m}" at s; returns its length or 0. */
static size_t parse_braces(const char *s, size_t len, uint32_t *lo, uint32_t *hi)
{
    size_t i = 1;
    uint64_t a = 0, b = 0;
    if (len < 3 || s[0] != '{' || s[1] < '0' || s[1] > '9') return 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && a < 65536)
        a = a * 10 + (uint64_t)(s[i++] - '0');
    if (i < len && s[i] == '}') {
        *lo = *hi = (uint32_t)a;
        return a < 65536 ? i + 1 : 0;
    }
    if (i >= len || s[i++] != ',') return 0;
    if (i < len && s[i] == '}') {
        *lo = (uint32_t)a;
        *hi = UINT32_MAX;
        return a < 65536 ? i + 1 : 0;
    }
    size_t start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9' && b < 65536)
        b = b * 10 + (uint64_t)(s[i++] - '0');
    if (i == start || i >= len || s[i] != '}' || a >= 65536 || b >= 65536 || b < a) return 0;
    *lo = (uint32_t)a;
    *hi = (uint32_t)b;
    return i + 1;
}

/*
 * Recognise LITERAL or LITERAL CLASS QUANTIFIER (see simple_re in rule.h).
 * Anything else -- escapes, groups, alternation, several classes, a
 * quantifier on the literal, POSIX classes, a class naming a non-ASCII
 * character -- is left to PCRE2.  `.` is taken only under PCRE2's LF
 * newline convention, where it is every character but '\n'.
 *
 * PCRE2 counts characters (UTF mode), the fast path bytes, and subjects
 * are valid UTF-8.  A class of ASCII characters only matches single bytes,
 * so there the counts agree.  `.` and a negated class also hold every
 * non-ASCII character, i.e. every byte from 0x80: a character of n bytes
 * then passes as n class bytes, so only a quantifier blind to the count --
 * at least 0 or 1, no upper bound (`*`, `+`) -- gives PCRE2's answer.
 */
static int simple_form(const char *s, size_t len, size_t i, simple_re *out)
{
    int high = 0; /* the class holds the bytes from 0x80: every non-ASCII character */
    memset(out, 0, sizeof(*out));
    if (i == len) { /* all literal: exactly one string */
        out->qmin = out->qmax = 0;
        return 1;
    }
    if (s[i] == '?' || s[i] == '*' || s[i] == '+' || s[i] == '{')
        return 0; /* a quantifier on the literal's last byte */
    if (s[i] == '.') {
        uint32_t nl = 0; /* the library's default: such a pattern cannot set its own */
        pcre2_config(PCRE2_CONFIG_NEWLINE, &nl);
        if (nl != PCRE2_NEWLINE_LF) return 0;
        memset(out->cls, 0xff, sizeof(out->cls));
        out->cls['\n' / 8] &= (uint8_t) ~(1u << ('\n' % 8));
        i++;
        high = 1;
    } else if (s[i] == '[') {
        int neg = 0;
        i++;
        if (i < len && s[i] == '^') {
            neg = 1;
            i++;
        }
        size_t first = i;
        for (;;) {
            if (i >= len) return 0;
            unsigned char a = (unsigned char)s[i];
            if (a == ']' && i > first) break;
            if (a == ']' || a == '\\' || a == '[' || a >= 0x80) return 0;
            unsigned char b = a;
            if (i + 2 < len && s[i + 1] == '-' && s[i + 2] != ']') {
                b = (unsigned char)s[i + 2];
                if (b == '\\' || b == '[' || b < a || b >= 0x80) return 0;
                i += 2;
            }
            for (unsigned v = a; v <= b; v++)
                out->cls[v / 8] |= (uint8_t)(1u << (v % 8));
            i++;
        }
        i++; /* ']' */
        if (neg)
            for (int k = 0; k < 32; k++)
                out->cls[k] = (uint8_t)~out->cls[k];
        high = neg;
    } else {
        return 0;
    }
    out->qmin = out->qmax = 1;
    if (i < len) {
        size_t q = 1;
        if (s[i] == '+')
            out->qmax = UINT32_MAX;
        else if (s[i] == '*')
            out->qmin = 0, out->qmax = UINT32_MAX;
        else if (s[i] == '?')
            out->qmin = 0;
        else if (!(q = parse_braces(s + i, len - i, &out->qmin, &out->qmax)))
            return 0;
        i += q;
    }
    if (i != len) return 0; /* something after: a possessive/lazy suffix, more items */
    return !high || (out->qmin <= 1 && out->qmax == UINT32_MAX);
}

/*
 * LITERAL(?<name>CLASS QUANTIFIER), the usual form of an id pattern with a
 * capture (`dev-(?<serial>[0-9a-f]{8})`): the group is the whole subject
 * after the literal, so the fast path matches it and takes the capture
 * without PCRE2.  Called once PCRE2 has compiled the pattern and found one
 * group, so only the shape needs checking here.
 */
static void simple_capture(exh_cond *c)
{
    const char *s = c->str;
    size_t len = c->len, i = 0;
    if (memchr(s, '|', len) || len >= 255) return;
    while (i < len && !strchr("\\^$.[]()?*+{}", s[i]) && s[i] != '\0')
        i++;
    size_t lit = i;
    if (len - i < 6 || memcmp(s + i, "(?<", 3) != 0 || s[len - 1] != ')') return;
    i += 3;
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_')) return;
    while (i < len && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                       (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        i++;
    if (i >= len || s[i] != '>') return;
    simple_re sre;
    if (!simple_form(s, len - 1, i + 1, &sre) || sre.qmax == 0) return;
    if (!(c->sre = malloc(sizeof(sre)))) return; /* PCRE2 still matches it */
    *c->sre = sre;
    c->prefix_len = (uint8_t)lit;
    c->capture = true;
}

/*
 * Compile a username/clientid regex: whole-string match by construction
 * (PCRE2_ANCHORED | PCRE2_ENDANCHORED) rather than by wrapping it in ^...$,
 * which an alternation inside the pattern could escape.  UTF mode: MQTT
 * names are UTF-8 and authors write patterns over characters, so `.`,
 * classes, quantifiers and captures take whole characters (the evaluator
 * refuses a name that is not UTF-8 before any rule).  `\C`, one byte
 * whatever the mode, could split a character, so it is refused.  No UCP:
 * `\d`, `\w` and POSIX classes stay ASCII, as an id pattern expects.
 */
static exh_status compile_regex(const lexer *L, exh_rule *r, exh_cond *c, char **negated_names,
                                int *nneg, exh_error *err)
{
    const token *t = c->str_tok;
    int code;
    PCRE2_SIZE off;
    /* A simple form is a valid pattern without groups by construction, and
     * is matched without PCRE2: it is never compiled (UTF mode makes
     * pcre2_compile dearer, and a 100k-rule policy has tens of thousands of
     * these).  The tests hold the recogniser to PCRE2's verdict. */
    c->prefix_len = literal_prefix(c->str, c->len);
    simple_re sre;
    if (c->len < 255 && simple_form(c->str, c->len, c->prefix_len, &sre)) {
        c->sre = malloc(sizeof(sre));
        if (!c->sre) return exh_error_nomem(err);
        *c->sre = sre;
        return EXH_OK;
    }
    c->re = pcre2_compile((PCRE2_SPTR)c->str, c->len,
                          PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C | PCRE2_ANCHORED | PCRE2_ENDANCHORED,
                          &code, &off, NULL);
    if (!c->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return at_value(L, err, t, off, "bad regular expression: %s", (const char *)msg);
    }
    uint32_t groups = 0, count = 0, esize = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(c->re, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups > EXH_MAX_GROUPS) {
        lex_error_at(L, err, t->line, t->col,
                     "regular expression has %u groups; at most %d are allowed (use (?:...))",
                     groups, EXH_MAX_GROUPS);
        return EXH_ESYNTAX;
    }
    pcre2_pattern_info(c->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(c->re, PCRE2_INFO_NAMEENTRYSIZE, &esize);
    pcre2_pattern_info(c->re, PCRE2_INFO_NAMETABLE, &table);
    if (!count) return EXH_OK;
    c->map = calloc(count, sizeof(*c->map));
    if (!c->map) return exh_error_nomem(err);
    for (uint32_t k = 0; k < count; k++) {
        PCRE2_SPTR e = table + (size_t)k * esize;
        uint16_t group = (uint16_t)((e[0] << 8) | e[1]);
        const char *name = (const char *)e + 2;
        if (!strcmp(name, "username") || !strcmp(name, "clientid")) {
            lex_error_at(L, err, t->line, t->col,
                         "capture name '%s' is reserved for the built-in placeholder", name);
            return EXH_ESYNTAX;
        }
        if (c->negated) {
            if (*nneg < EXH_MAX_SLOTS) negated_names[(*nneg)++] = (char *)name;
            continue;
        }
        if (find_slot(r, name, strlen(name)) >= 0) {
            lex_error_at(L, err, t->line, t->col,
                         "capture '%s' is defined twice in this rule; names must be unique", name);
            return EXH_ESYNTAX;
        }
        if (r->nslots == EXH_MAX_SLOTS) {
            lex_error_at(L, err, t->line, t->col, "more than %d named captures in one rule",
                         EXH_MAX_SLOTS);
            return EXH_ESYNTAX;
        }
        if (!r->slot_names && !(r->slot_names = calloc(EXH_MAX_SLOTS, sizeof(char *))))
            return exh_error_nomem(err);
        r->slot_names[r->nslots] = strdup(name);
        if (!r->slot_names[r->nslots]) return exh_error_nomem(err);
        c->map[c->nmap].group = group;
        c->map[c->nmap].slot = r->nslots++;
        c->nmap++;
    }
    if (groups == 1) simple_capture(c);
    return EXH_OK;
}

static exh_status push_part(exh_part **parts, uint32_t *n, exh_part p, exh_error *err)
{
    if ((*n & (*n - 1)) == 0) { /* room doubles at powers of two */
        exh_part *np = realloc(*parts, (*n ? 2 * (size_t)*n : 1) * sizeof(*np));
        if (!np) return exh_error_nomem(err);
        *parts = np;
    }
    (*parts)[(*n)++] = p;
    return EXH_OK;
}

/* Where the placeholders of a text go and what they may name. */
typedef struct part_target {
    exh_part **parts;
    uint32_t *nparts;
    int percent; /* `%u`/`%c` filling [start, end) are aliases (topic levels) */
    int self;    /* the built-in placeholder a condition may not use on its own field, or -1 */
    const char *field; /* its name, for that error */
} part_target;

/*
 * Literal runs and ${name} references of x[start, end), in order: one
 * level of a rule's filter, or the whole string of an exact username or
 * clientid condition.  `%u`/`%c` count only when they are the whole level
 * (as in Mosquitto's ACL files); elsewhere they are text.
 */
static exh_status compile_pattern(const lexer *L, exh_rule *r, const token *t, const char *x,
                                  uint32_t start, uint32_t end, const part_target *pt,
                                  char **negated, int nneg, exh_error *err)
{
    exh_status st;
    if (pt->percent && end - start == 2 && x[start] == '%' &&
        (x[start + 1] == 'u' || x[start + 1] == 'c')) {
        exh_part p = {.kind = x[start + 1] == 'u' ? PART_USERNAME : PART_CLIENTID};
        return push_part(pt->parts, pt->nparts, p, err);
    }
    uint32_t lit = start;
    for (uint32_t i = start; i < end;) {
        if (!(x[i] == '$' && i + 1 < end && x[i + 1] == '{')) {
            i++;
            continue;
        }
        uint32_t close = i + 2;
        while (close < end && x[close] != '}')
            close++;
        if (close >= end)
            return at_value(L, err, t, i, "unterminated placeholder%s (a '}' is missing)", "");
        const char *name = x + i + 2;
        size_t nlen = close - i - 2;
        if (nlen == 0) return at_value(L, err, t, i, "empty placeholder%s", " '${}'");
        for (size_t k = 0; k < nlen; k++) {
            char ch = name[k];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                  (k && ch >= '0' && ch <= '9')))
                return at_value(L, err, t, i, "bad placeholder name%s (letters, digits, '_')", "");
        }
        if (i > lit &&
            (st = push_part(pt->parts, pt->nparts,
                            (exh_part){.kind = PART_LIT, .off = lit, .len = i - lit}, err)))
            return st;
        exh_part p = {0};
        if (nlen == 8 && !memcmp(name, "username", 8)) {
            p.kind = PART_USERNAME;
        } else if (nlen == 8 && !memcmp(name, "clientid", 8)) {
            p.kind = PART_CLIENTID;
        } else {
            int slot = find_slot(r, name, nlen);
            if (slot < 0) {
                char nm[128];
                snprintf(nm, sizeof(nm), "%.*s", (int)(nlen < 100 ? nlen : 100), name);
                for (int k = 0; k < nneg; k++)
                    if (strlen(negated[k]) == nlen && !memcmp(negated[k], name, nlen))
                        return at_value(L, err, t, i,
                                        "capture '%s' is defined under 'not' and never has a "
                                        "value",
                                        nm);
                return at_value(L, err, t, i,
                                "placeholder '${%s}' names no capture of this rule's "
                                "conditions (define it with (?<name>...) in a username or "
                                "clientid regex)",
                                nm);
            }
            p.kind = PART_SLOT;
            p.slot = (uint8_t)slot;
            r->slot_used |= (uint16_t)(1u << slot);
        }
        /* `username "x${username}"` could only ever compare the name with
         * itself: always true or always false, never what was meant. */
        if ((int)p.kind == pt->self)
            return at_value(L, err, t, i,
                            "a %s condition cannot use its own value as a placeholder", pt->field);
        if ((st = push_part(pt->parts, pt->nparts, p, err))) return st;
        i = close + 1;
        lit = i;
    }
    if (end > lit)
        return push_part(pt->parts, pt->nparts,
                         (exh_part){.kind = PART_LIT, .off = lit, .len = end - lit}, err);
    return EXH_OK;
}

static int has_placeholder(const char *x, uint32_t start, uint32_t end)
{
    if (end - start == 2 && x[start] == '%' && (x[start + 1] == 'u' || x[start + 1] == 'c'))
        return 1;
    for (uint32_t i = start; i + 1 < end; i++)
        if (x[i] == '$' && x[i + 1] == '{') return 1;
    return 0;
}

/* Split a rule's topic filter into levels and check it is a valid filter
 * (placeholders stand for level text that can never hold a wildcard). */
static exh_status compile_spec(const lexer *L, exh_rule *r, exh_spec *s, char **negated, int nneg,
                               exh_error *err)
{
    const token *t = s->tok;
    const char *x = s->text;
    /* Requests are matched with $share/<group>/ or $queue/ removed, so a
     * rule naming one (plain or eq) could never match: refuse it. */
    if (s->len >= 7 && (!memcmp(x, "$share/", 7) || !memcmp(x, "$queue/", 7)))
        return at_value(L, err, t, 0,
                        "rule filters match the filter inside a shared subscription%s; write "
                        "it without $share/<group>/ or $queue/",
                        "");
    if (s->eq) return EXH_OK;
    exh_topic_status ts = exh_topic_check_filter(x, s->len);
    if (ts != EXH_TOPIC_OK && ts != EXH_TOPIC_BAD_WILDCARD)
        return at_value(L, err, t, 0, "invalid topic filter: %s", exh_topic_status_str(ts));
    uint32_t start = 0;
    for (uint32_t i = 0; i <= s->len; i++) {
        if (i < s->len && x[i] != '/') continue;
        exh_level lv = {0};
        uint32_t n = i - start;
        if (n == 1 && x[start] == '+') {
            lv.kind = LVL_PLUS;
        } else if (n == 1 && x[start] == '#') {
            if (i != s->len)
                return at_value(L, err, t, start, "'#' must be the last level of a filter%s", "");
            lv.kind = LVL_HASH;
        } else {
            for (uint32_t k = start; k < i; k++)
                if (x[k] == '+' || x[k] == '#')
                    return at_value(L, err, t, k,
                                    "wildcard '%s' must fill a whole level (write a/+/b, not "
                                    "a/x+/b)",
                                    x[k] == '+' ? "+" : "#");
            if (has_placeholder(x, start, i)) {
                lv.kind = LVL_PATTERN;
                lv.off = s->nparts;
                part_target pt = {&s->parts, &s->nparts, 1, -1, NULL};
                exh_status st = compile_pattern(L, r, t, x, start, i, &pt, negated, nneg, err);
                if (st) return st;
                lv.len = s->nparts - lv.off;
                s->has_placeholder = true;
            } else {
                lv.kind = LVL_LIT;
                lv.off = start;
                lv.len = n;
            }
        }
        if ((s->nlevels & (s->nlevels - 1)) == 0) { /* room doubles at powers of two */
            exh_level *nl =
                realloc(s->levels, (s->nlevels ? 2 * (size_t)s->nlevels : 1) * sizeof(*nl));
            if (!nl) return exh_error_nomem(err);
            s->levels = nl;
        }
        s->levels[s->nlevels++] = lv;
        start = i + 1;
    }
    return EXH_OK;
}

static int is_pattern_cond(const exh_cond *c)
{
    return c->kind == COND_USERNAME_PAT || c->kind == COND_CLIENTID_PAT;
}

exh_status compile_rule(const lexer *L, exh_rule *r, exh_error *err)
{
    char *negated[EXH_MAX_SLOTS];
    int nneg = 0;
    exh_status st;
    /* Conditions with placeholders go last, in their written order: the
     * evaluator then meets every regex (and sets its captures) before any
     * comparison that uses them, whatever order the rule was written in.
     * A rule's conditions are a conjunction, so the order changes no answer. */
    for (uint16_t i = 0, w = 0; i < r->nconds; i++) {
        if (is_pattern_cond(&r->conds[i])) continue;
        exh_cond c = r->conds[i];
        memmove(&r->conds[w + 1], &r->conds[w], (size_t)(i - w) * sizeof(c));
        r->conds[w++] = c;
    }
    for (uint16_t i = 0; i < r->nconds; i++) {
        exh_cond *c = &r->conds[i];
        if (c->kind == COND_USERNAME_RE || c->kind == COND_CLIENTID_RE)
            if ((st = compile_regex(L, r, c, negated, &nneg, err))) return st;
    }
    /* Only now are all the rule's captures known: a placeholder may name a
     * capture of a condition written after it. */
    for (uint16_t i = 0; i < r->nconds; i++) {
        exh_cond *c = &r->conds[i];
        if (!is_pattern_cond(c)) continue;
        int user = c->kind == COND_USERNAME_PAT;
        part_target pt = {&c->parts, &c->nparts, 0, user ? PART_USERNAME : PART_CLIENTID,
                          user ? "username" : "clientid"};
        if ((st = compile_pattern(L, r, c->str_tok, c->str, 0, c->len, &pt, negated, nneg, err)))
            return st;
    }
    for (uint16_t i = 0; i < r->nspecs; i++)
        if ((st = compile_spec(L, r, &r->specs[i], negated, nneg, err))) return st;
    /* JIT every regex once, here.  (Measured with bench_eval: PCRE2's
     * interpreter costs fewer cache misses when a rule is cold, but about
     * twice as much when it is hot, and hot is what a busy client is.)  If
     * this machine cannot JIT, the interpreter gives the same answers. */
    for (uint16_t i = 0; i < r->nconds; i++) {
        exh_cond *cd = &r->conds[i];
        if (cd->re) cd->jit = pcre2_jit_compile(cd->re, PCRE2_JIT_COMPLETE) == 0;
    }

    /* Token pointers die with the statement. */
    for (uint16_t i = 0; i < r->nconds; i++)
        r->conds[i].str_tok = NULL;
    for (uint16_t i = 0; i < r->nspecs; i++)
        r->specs[i].tok = NULL;
    return EXH_OK;
}

void exh_rule_free(exh_rule *r)
{
    for (uint16_t i = 0; i < r->nconds; i++) {
        if (!r->packed) {
            free(r->conds[i].str);
            free(r->conds[i].map);
            free(r->conds[i].sre);
            free(r->conds[i].parts);
        }
        pcre2_code_free(r->conds[i].re);
    }
    for (uint16_t i = 0; !r->packed && i < r->nspecs; i++) {
        free(r->specs[i].text);
        free(r->specs[i].levels);
        free(r->specs[i].parts);
    }
    if (!r->packed) {
        free(r->conds);
        free(r->specs);
    }
    for (int i = 0; i < r->nslots; i++)
        free(r->slot_names[i]);
    free(r->slot_names);
    if (!r->packed) free((char *)r->info.text);
    memset(r, 0, sizeof(*r));
}

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

static size_t packed_size(const exh_rule *r)
{
    size_t n = ALIGN8(sizeof(rule_head)) + ALIGN8(r->nconds * sizeof(exh_cond)) +
               ALIGN8(r->nspecs * sizeof(exh_spec));
    for (uint16_t i = 0; i < r->nconds; i++)
        n += ALIGN8(r->conds[i].len + 1) + ALIGN8(r->conds[i].nmap * sizeof(slot_map)) +
             (r->conds[i].sre ? ALIGN8(sizeof(simple_re)) : 0) +
             ALIGN8(r->conds[i].nparts * sizeof(exh_part));
    for (uint16_t i = 0; i < r->nspecs; i++)
        n += ALIGN8(r->specs[i].nlevels * sizeof(exh_level)) +
             ALIGN8(r->specs[i].nparts * sizeof(exh_part)) + ALIGN8(r->specs[i].len + 1);
    return n;
}

/* Copy n bytes to the arena cursor and free the original. */
static void *move(char **cur, void *src, size_t n)
{
    if (!src) return NULL; /* e.g. the string of a peerhost condition */
    void *dst = *cur;
    if (n) memcpy(dst, src, n);
    free(src);
    *cur += ALIGN8(n);
    return dst;
}

/* Rule texts are read only by listings and error reports: they go to an
 * arena of their own, away from the blobs the evaluator reads. */
static exh_status pack_texts(exh_policy *p)
{
    size_t total = 0;
    for (uint32_t i = 0; i < p->nrules; i++)
        total += strlen(p->rules[i].info.text) + 1;
    if (!(p->texts = malloc(total ? total : 1))) return EXH_ENOMEM;
    char *cur = p->texts;
    for (uint32_t i = 0; i < p->nrules; i++) {
        size_t n = strlen(p->rules[i].info.text) + 1;
        memcpy(cur, p->rules[i].info.text, n);
        free((char *)p->rules[i].info.text);
        p->rules[i].info.text = cur;
        cur += n;
    }
    return EXH_OK;
}

exh_status exh_rules_pack(exh_policy *p)
{
    size_t total = 0;
    for (uint32_t i = 0; i < p->nrules; i++)
        total += packed_size(&p->rules[i]);
    if (total >= EXH_REF_LIST) return EXH_ENOMEM; /* blob offsets must fit in a ref */
    p->arena = malloc(total ? total : 1);
    if (!p->arena) return EXH_ENOMEM;
    /* Both allocations before any rule changes: a failure leaves the
     * rules as they were, for exh_rule_free. */
    if (pack_texts(p)) {
        free(p->arena);
        p->arena = NULL;
        return EXH_ENOMEM;
    }
    char *cur = p->arena;
    for (uint32_t i = 0; i < p->nrules; i++) {
        exh_rule *r = &p->rules[i];
        rule_head *h = (rule_head *)cur;
        r->blob = (uint32_t)(cur - p->arena);
        cur += ALIGN8(sizeof(rule_head));
        /* In the order the evaluator reads them: each condition and its
         * string, then each filter's levels, parts and text. */
        exh_cond *conds = move(&cur, r->conds, r->nconds * sizeof(exh_cond));
        for (uint16_t k = 0; k < r->nconds; k++) {
            conds[k].str = move(&cur, conds[k].str, conds[k].len + 1);
            conds[k].map = move(&cur, conds[k].map, conds[k].nmap * sizeof(slot_map));
            conds[k].sre = move(&cur, conds[k].sre, sizeof(simple_re));
            conds[k].parts = move(&cur, conds[k].parts, conds[k].nparts * sizeof(exh_part));
        }
        exh_spec *specs = move(&cur, r->specs, r->nspecs * sizeof(exh_spec));
        for (uint16_t k = 0; k < r->nspecs; k++) {
            specs[k].levels = move(&cur, specs[k].levels, specs[k].nlevels * sizeof(exh_level));
            specs[k].parts = move(&cur, specs[k].parts, specs[k].nparts * sizeof(exh_part));
            specs[k].text = move(&cur, specs[k].text, specs[k].len + 1);
        }
        r->conds = conds;
        r->specs = specs;
        r->packed = true;
        size_t bytes = (size_t)(cur - (char *)h);
        *h = (rule_head){.index = i,
                         .effect = r->effect,
                         .actions = r->actions,
                         .qos_lo = r->qos_lo,
                         .qos_hi = r->qos_hi,
                         .retain = r->retain,
                         .lines = (uint8_t)(bytes / 64 + 1 > 6 ? 6 : bytes / 64 + 1),
                         .nconds = r->nconds,
                         .nspecs = r->nspecs,
                         .conds = conds,
                         .specs = specs};
    }
    return EXH_OK;
}
