/*
 * lint.c -- rules that compile but are probably not what the author meant.
 *
 * Shadowing is decided conservatively: a rule is reported only when an
 * earlier rule provably decides every request it could match, so a warning
 * is always real (a missed case is possible, a false alarm is not meant to
 * be).  Candidates come from the same index the evaluator uses, so linting
 * a 100k-rule policy does not compare every pair.
 */
#include "exhook/lint.h"

#include <stdio.h>
#include <string.h>

#include "exhook/topic.h"
#include "rule.h"

static int same_cond(const exh_cond *a, const exh_cond *b)
{
    if (a->kind != b->kind || a->negated != b->negated) return 0;
    if (a->kind == COND_ANONYMOUS) return 1;
    if (a->kind == COND_PEERHOST)
        return a->cidr.prefix == b->cidr.prefix &&
               !memcmp(&a->cidr.addr, &b->cidr.addr, sizeof(a->cidr.addr));
    return a->len == b->len && !memcmp(a->str, b->str, a->len);
}

/* Does condition a hold whenever the conditions of rule j all hold? */
static int implied(const exh_cond *a, const exh_rule *j, int a_has_slots, exh_lint_diag *d)
{
    (void)d;
    for (uint16_t k = 0; k < j->nconds; k++) {
        const exh_cond *b = &j->conds[k];
        if (same_cond(a, b)) return 1;
        if (a->negated || b->negated) continue;
        /* A wider block holds for every address of a narrower one. */
        if (a->kind == COND_PEERHOST && b->kind == COND_PEERHOST &&
            a->cidr.prefix <= b->cidr.prefix && exh_cidr_contains(&a->cidr, &b->cidr.addr))
            return 1;
        /* A regex holds for an exact name it matches (captures would differ
         * in meaning, so only for rules without them). */
        if (!a_has_slots && ((a->kind == COND_USERNAME_RE && b->kind == COND_USERNAME) ||
                             (a->kind == COND_CLIENTID_RE && b->kind == COND_CLIENTID))) {
            if (a->sre) {
                if (exh_simple_match(a, b->str, b->len)) return 1;
                continue;
            }
            pcre2_match_data *md = pcre2_match_data_create_from_pattern(a->re, NULL);
            int rc = md ? pcre2_match(a->re, (PCRE2_SPTR)b->str, b->len, 0, 0, md, NULL) : -1;
            pcre2_match_data_free(md);
            if (rc >= 0) return 1;
        }
    }
    return 0;
}

/* Is every topic spec s of rule j covered by some spec of rule i? */
static int spec_covered(const exh_spec *s, const exh_rule *i)
{
    for (uint16_t k = 0; k < i->nspecs; k++) {
        const exh_spec *f = &i->specs[k];
        if (f->eq) {
            if (s->eq && s->len == f->len && !memcmp(s->text, f->text, s->len)) return 1;
            continue;
        }
        if (f->has_placeholder) {
            if (!s->eq && s->len == f->len && !memcmp(s->text, f->text, s->len)) return 1;
            continue;
        }
        /* A first level that starts with a placeholder may start with '$'
         * (`%u` for the user `$SYS`), and a wildcard first level never
         * covers that (MQTT's `$` rule). */
        if (!s->eq && s->levels[0].kind == LVL_PATTERN &&
            s->parts[s->levels[0].off].kind != PART_LIT && (f->text[0] == '+' || f->text[0] == '#'))
            continue;
        /* Placeholder levels of s act as literals i's literals never equal;
         * i's wildcards cover them. */
        if (exh_topic_subset(s->text, s->len, f->text, f->len)) return 1;
    }
    return 0;
}

static int has_unknowable(const exh_rule *r)
{
    if (r->qos_lo >= 0 || r->retain >= 0) return 1;
    for (uint16_t k = 0; k < r->nconds; k++)
        if (r->conds[k].kind == COND_PEERHOST || r->conds[k].kind == COND_USERNAME_PAT ||
            r->conds[k].kind == COND_CLIENTID_PAT)
            return 1; /* no address, or a placeholder without a value */
    return 0;
}

/* Does rule i decide every request that rule j could match? */
static int covers(const exh_rule *i, const exh_rule *j)
{
    if (j->actions & ~i->actions) return 0;
    /* With facts unknown, an allow and a deny rule part ways. */
    if (i->effect != j->effect && has_unknowable(i)) return 0;
    for (uint16_t k = 0; k < i->nconds; k++)
        if (!implied(&i->conds[k], j, i->nslots > 0, NULL)) return 0;
    if (i->nspecs) {
        if (!j->nspecs) return 0;
        /* A deny refuses every subscription it overlaps, an allow grants
         * only those it contains: j reaches requests i does not. */
        if (i->effect == EXH_ALLOW && j->effect == EXH_DENY && (j->actions & EXH_SUBSCRIBE))
            return 0;
        for (uint16_t k = 0; k < j->nspecs; k++)
            if (!spec_covered(&j->specs[k], i)) return 0;
    }
    if (i->qos_lo >= 0 && (j->qos_lo < i->qos_lo || j->qos_hi > i->qos_hi || j->qos_lo < 0))
        return 0;
    if (i->retain >= 0 && (j->actions & EXH_PUBLISH) && j->retain != i->retain) return 0;
    return 1;
}

typedef struct cands {
    cand_range r[4 + EXH_INDEX_DEPTH];
    int n;
} cands;

static void add(const exh_policy *p, cands *c, const uint32_t *where, int pair)
{
    if (c->n < 4 + EXH_INDEX_DEPTH && exh_ref_range(p, where, &c->r[c->n])) {
        if (pair && where[1] != EXH_NO_REF)
            c->r[c->n].end++; /* a second single rule sits beside the first */
        c->n++;
    }
}

/* The earliest rule before j, filed in action index a, that covers j. */
static int64_t find_shadow(const exh_policy *p, int a, uint32_t j)
{
    const exh_rule *r = &p->rules[j];
    const action_index *ix = &p->idx[a];
    const strmap_slot *s;
    cands c = {.n = 0};
    for (uint16_t k = 0; k < r->nconds; k++) {
        const exh_cond *cd = &r->conds[k];
        if (cd->negated || (cd->kind != COND_USERNAME && cd->kind != COND_CLIENTID)) continue;
        const strmap *m = cd->kind == COND_USERNAME ? &ix->users : &ix->clients;
        if ((s = strmap_find(m, strmap_hash(0, cd->str, cd->len)))) add(p, &c, s->v, 1);
    }
    add(p, &c, &ix->root[0], 0);
    /* Any coverer of the first filter is filed on that filter's trie path. */
    if (a != EXH_IDX_CONN && r->nspecs) {
        const exh_spec *sp = &r->specs[0];
        uint32_t depth = exh_spec_prefix(sp, EXH_INDEX_DEPTH);
        for (uint32_t k = 1; k <= depth; k++) {
            s = strmap_find(&ix->trie, strmap_hash(k, sp->text, exh_spec_prefix_len(sp, k)));
            if (!s) break;
            add(p, &c, &s->v[0], 0);
        }
    }
    int64_t best = -1;
    for (int k = 0; k < c.n; k++)
        for (const uint32_t *q = c.r[k].p; q < c.r[k].end; q++) {
            uint32_t i = exh_blob(p, *q)->index;
            if (i < j && (best < 0 || i < best) && covers(&p->rules[i], r)) best = i;
        }
    return best;
}

static void emit(exh_lint_fn fn, void *user, exh_lint_kind kind, int note, uint32_t rule,
                 uint32_t other, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

#include <stdarg.h>
static void emit(exh_lint_fn fn, void *user, exh_lint_kind kind, int note, uint32_t rule,
                 uint32_t other, uint32_t col, const char *fmt, ...)
{
    exh_lint_diag d = {.kind = kind, .is_note = note, .rule = rule, .other = other, .col = col};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d.message, sizeof(d.message), fmt, ap);
    va_end(ap);
    if (fn) fn(&d, user);
}

static uint32_t slot_col(const exh_rule *r, int slot)
{
    for (uint16_t k = 0; k < r->nconds; k++)
        for (uint8_t m = 0; m < r->conds[k].nmap; m++)
            if (r->conds[k].map[m].slot == slot) return r->conds[k].col;
    return r->info.col;
}

/*
 * The note for a rule with qos/retain options, which EMQX's ACL hook (4.x)
 * and authorize request (gRPC ExHook) never carry: there the options are
 * unknown, so an allow rule stops granting what they constrain and a deny
 * rule refuses it whatever the values.  `retain` constrains publishes only,
 * so a pubsub allow with just `retain` still grants subscribes there.
 */
static void emqx_note(const exh_rule *r, uint32_t j, exh_lint_fn fn, void *user)
{
    int qos = r->qos_lo >= 0, retain = r->retain >= 0;
    if (!qos && !retain) return;
    /* What the options constrain: every action of the rule for qos,
     * publishes only for retain. */
    unsigned hit = qos ? r->actions : r->actions & EXH_PUBLISH;
    const char *what = hit == (EXH_PUBLISH | EXH_SUBSCRIBE) ? "publish or subscribe"
                       : hit == EXH_PUBLISH                 ? "publish"
                                                            : "subscribe";
    const char *facts = qos && retain ? "QoS and retain flag" : qos ? "QoS" : "retain flag";
    uint32_t col = qos ? r->qos_col : r->retain_col;
    if (r->effect == EXH_ALLOW)
        emit(fn, user, EXH_LINT_UNKNOWN_OPTION, 1, j, 0, col,
             "EMQX's hooks pass no QoS or retain flag: there this allow rule never grants a %s, "
             "its %s being unknown%s; keep such refinements for front ends that pass them "
             "(Mosquitto)",
             what, facts, hit != r->actions ? " (subscribes are decided without retain)" : "");
    else
        emit(fn, user, EXH_LINT_UNKNOWN_OPTION, 1, j, 0, col,
             "EMQX's hooks pass no QoS or retain flag: there this deny rule refuses every %s it "
             "matches, whatever the %s",
             what, facts);
}

/*
 * `%u`/`%c` are placeholders only as a whole level; inside one they are the
 * two characters, which is almost always a slip for ${username} or
 * ${clientid}.  A note (the text may be meant), once per rule, at the first
 * such `%` -- or at the rule when the filter is not on its first line or
 * escapes make the column a guess.
 */
static void percent_note(const exh_rule *r, uint32_t j, exh_lint_fn fn, void *user)
{
    for (uint16_t k = 0; k < r->nspecs; k++) {
        const exh_spec *sp = &r->specs[k];
        if (sp->eq) continue; /* eq text is literal by definition */
        const char *x = sp->text;
        uint32_t start = 0;
        for (uint32_t i = 0; i <= sp->len; i++) {
            if (i < sp->len && x[i] != '/') continue;
            for (uint32_t at = start; i - start != 2 && at + 1 < i; at++) {
                if (x[at] != '%' || (x[at + 1] != 'u' && x[at + 1] != 'c')) continue;
                int is_user = x[at + 1] == 'u';
                uint32_t col = sp->line == r->info.line ? sp->col + 1 + at : 0;
                for (uint32_t b = 0; b < at && col; b++)
                    if (x[b] == '"' || x[b] == '\\') col = sp->col;
                emit(fn, user, EXH_LINT_PERCENT_TEXT, 1, j, 0, col,
                     "'%s' inside a topic level is the text \"%s\", not the %s: %%u and %%c are "
                     "placeholders only when they fill a whole level; write %s to put the %s "
                     "inside a level",
                     is_user ? "%u" : "%c", is_user ? "%u" : "%c",
                     is_user ? "username" : "client id", is_user ? "${username}" : "${clientid}",
                     is_user ? "username" : "client id");
                return;
            }
            start = i + 1;
        }
    }
}

uint32_t exh_lint(const exh_policy *p, exh_lint_fn fn, void *user)
{
    uint32_t warnings = 0;
    static const unsigned bits[3] = {EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT};
    if (p->def == EXH_IGNORE) {
        emit(fn, user, EXH_LINT_DEFAULT_IGNORE, 0, EXH_LINT_NO_RULE, 0, p->def_col,
             "`default ignore` answers \"no opinion\" when no rule matches, and the broker's "
             "next source then decides: on EMQX's default configuration that allows (4.x "
             "acl_nomatch = allow, 5.x authorization.no_match = allow), so anything this policy "
             "forgets to deny is granted (fails open); prefer `default deny`, or make sure every "
             "node's next source denies");
        warnings++;
    }
    for (uint32_t j = 0; j < p->nrules; j++) {
        const exh_rule *r = &p->rules[j];
        int64_t by = -1;
        for (int a = 0; a < 3 && by < 0; a++)
            if (r->actions & bits[a]) by = find_shadow(p, a, j);
        /* find_shadow per action finds a coverer for that action; covers()
         * already demands it decides all of the rule's actions. */
        if (by >= 0) {
            const exh_rule_info *o = &p->rules[by].info;
            emit(fn, user, EXH_LINT_SHADOWED, 0, j, (uint32_t)by, r->info.col,
                 "rule is shadowed by rule %u at %s:%u, which already decides every request "
                 "this one could match",
                 o->number, o->file, o->line);
            warnings++;
        }
        for (int s = 0; s < r->nslots; s++)
            if (!(r->slot_used & (1u << s))) {
                emit(fn, user, EXH_LINT_UNUSED_CAPTURE, 0, j, 0, slot_col(r, s),
                     "capture '%s' is not used by any placeholder of this rule (use (?:...) "
                     "or drop the name)",
                     r->slot_names[s]);
                warnings++;
            }
        if (r->effect == EXH_ALLOW && (r->actions & (EXH_PUBLISH | EXH_SUBSCRIBE))) {
            int all = r->nspecs == 0;
            for (uint16_t k = 0; k < r->nspecs && !all; k++)
                all = !r->specs[k].eq && r->specs[k].nlevels == 1 &&
                      r->specs[k].levels[0].kind == LVL_HASH;
            if (all) {
                emit(fn, user, EXH_LINT_OVERBROAD, 0, j, 0, r->info.col,
                     "over-broad grant: this rule allows %s on every topic%s",
                     exh_action_str(r->actions & (EXH_PUBLISH | EXH_SUBSCRIBE)),
                     r->nconds ? "" : " to every client");
                warnings++;
            }
        }
        /* `retain` constrains publishes only and a subscribe is decided
         * without it, so this denies every subscribe it matches: nearly
         * always `deny publish ... retain true` was meant. */
        if (r->effect == EXH_DENY && r->retain == 1 && (r->actions & EXH_SUBSCRIBE)) {
            emit(fn, user, EXH_LINT_RETAIN_SUBSCRIBE, 0, j, 0, r->retain_col,
                 "`retain true` constrains publishes only, and a subscribe is decided without "
                 "it: this deny rule refuses every subscribe it matches as well as retained "
                 "publishes; if only retained publishes are meant, make it `deny publish`");
            warnings++;
        }
        emqx_note(r, j, fn, user);
        percent_note(r, j, fn, user);
    }
    return warnings;
}
