/*
 * test_lint.c -- what lint warns about, and what it must not: a table of
 * small policies with the exact findings expected for each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "exhook/lint.h"

typedef struct finding {
    int kind;       /* exh_lint_kind, -1 ends the list */
    uint32_t rule;  /* 1-based rule number */
    uint32_t other; /* shadowing rule number, 0 if n/a */
} finding;

typedef struct lint_case {
    const char *policy;
    finding want[8];
} lint_case;

#define END                                                                                        \
    {                                                                                              \
        -1, 0, 0                                                                                   \
    }
#define SH(r, o)                                                                                   \
    {                                                                                              \
        EXH_LINT_SHADOWED, r, o                                                                    \
    }
#define UC(r)                                                                                      \
    {                                                                                              \
        EXH_LINT_UNUSED_CAPTURE, r, 0                                                              \
    }
#define OB(r)                                                                                      \
    {                                                                                              \
        EXH_LINT_OVERBROAD, r, 0                                                                   \
    }
#define NOTE(r)                                                                                    \
    {                                                                                              \
        EXH_LINT_UNKNOWN_OPTION, r, 0                                                              \
    }
#define RS(r)                                                                                      \
    {                                                                                              \
        EXH_LINT_RETAIN_SUBSCRIBE, r, 0                                                            \
    }
#define PCT(r)                                                                                     \
    {                                                                                              \
        EXH_LINT_PERCENT_TEXT, r, 0                                                                \
    }
/* about the `default` statement: rule EXH_LINT_NO_RULE, shown as 0 */
#define DEF_IGNORE                                                                                 \
    {                                                                                              \
        EXH_LINT_DEFAULT_IGNORE, 0, 0                                                              \
    }

static const lint_case cases[] = {
    /* shadowing by a wider filter, same identity */
    {"allow publish username \"a\" topic \"x/#\"\n"
     "allow publish username \"a\" topic \"x/y\"\n",
     {SH(2, 1), END}},
    /* not shadowed: narrower first */
    {"allow publish username \"a\" topic \"x/y\"\n"
     "allow publish username \"a\" topic \"x/#\"\n",
     {END}},
    /* not shadowed: the earlier rule needs a condition the later lacks */
    {"allow publish username \"a\" group \"g\" topic \"x/#\"\n"
     "allow publish username \"a\" topic \"x/y\"\n",
     {END}},
    /* a rule without conditions covers any identity; deny shadows deny */
    {"deny publish topic \"x/#\"\n"
     "deny publish username \"a\" clientid \"c\" topic \"x/y/z\" \"x/q\"\n",
     {SH(2, 1), END}},
    /* an action the earlier rule lacks keeps the later one alive */
    {"allow publish username \"a\" topic \"x/#\"\n"
     "allow pubsub username \"a\" topic \"x/y\"\n",
     {END}},
    /* a regex covers an exact name it matches */
    {"allow publish username ~ \"dev-[0-9]+\" topic \"d/#\"\n"
     "allow publish username \"dev-42\" topic \"d/1\"\n",
     {SH(2, 1), END}},
    {"allow publish username ~ \"dev-[0-9]+\" topic \"d/#\"\n"
     "allow publish username \"dev-x\" topic \"d/1\"\n",
     {END}},
    /* a wider CIDR covers a narrower one with the same effect... */
    {"deny subscribe peerhost 10.0.0.0/8 topic \"x/#\"\n"
     "deny subscribe peerhost 10.1.0.0/16 topic \"x/y\"\n",
     {SH(2, 1), END}},
    /* ...but not across effects: with the address unknown they part ways */
    {"deny subscribe peerhost 10.0.0.0/8 topic \"x/#\"\n"
     "allow subscribe peerhost 10.1.0.0/16 topic \"x/y\"\n",
     {END}},
    /* an allow never shadows a deny on subscribe: the deny refuses overlaps */
    {"allow subscribe topic \"a/#\"\n"
     "deny subscribe topic \"a/b\"\n",
     {END}},
    /* qos ranges */
    {"allow publish topic \"q/#\" qos 0-1\n"
     "allow publish topic \"q/x\" qos 1\n"
     "allow publish topic \"q/y\" qos 2\n",
     {NOTE(1), SH(2, 1), NOTE(2), NOTE(3), END}},
    /* eq only covers the same eq */
    {"deny subscribe topic eq \"#\"\n"
     "deny subscribe topic eq \"#\"\n"
     "deny subscribe topic \"#\"\n",
     {SH(2, 1), END}},
    /* a placeholder filter covers the same placeholder filter */
    {"allow pubsub topic \"u/${username}/#\"\n"
     "allow publish topic \"u/${username}/#\"\n",
     {SH(2, 1), END}},
    /* unused captures, and the used one is fine */
    {"allow publish username ~ \"(?<t>[a-z]+):(?<u>.+)\" topic \"t/${t}/x\"\n", {UC(1), END}},
    /* over-broad grants */
    {"allow subscribe topic \"#\"\n", {OB(1), END}},
    {"allow all username \"root\"\n", {OB(1), END}},
    {"deny all topic \"#\"\n", {END}},
    {"allow connect anonymous\n", {END}},
    /* connect rules shadow too */
    {"deny connect group \"bad\"\n"
     "deny connect group \"bad\" peerhost 1.2.3.4\n",
     {SH(2, 1), END}},
    /* one EMQX note per rule with qos/retain, however many options it has */
    {"allow publish topic \"q\" qos 0-1 retain false\n"
     "allow pubsub topic \"s/#\" retain false\n"
     "deny publish topic \"x\" qos 2\n"
     "deny pubsub topic \"y\" qos 2 retain true\n"
     "allow subscribe topic \"z\"\n",
     {NOTE(1), NOTE(2), NOTE(3), RS(4), NOTE(4), END}},
    /* default ignore: a warning about the default statement, before the rules' */
    {"allow publish topic \"t/#\" qos 1\n"
     "default ignore\n",
     {DEF_IGNORE, NOTE(1), END}},
    {"default allow\n", {END}},
    /* placeholders in exact names: the same condition (with its capture)
     * shadows the same effect... */
    {"deny connect clientid ~ \"dev-(?<s>.+)\" not username \"d-${s}\"\n"
     "deny connect clientid ~ \"dev-(?<s>.+)\" not username \"d-${s}\" peerhost 10.0.0.0/8\n",
     {SH(2, 1), END}},
    /* ...but an allow never shadows a deny with it: an empty capture makes
     * it unknown, and there the deny still matches */
    {"allow publish clientid ~ \"e(?<e>.*)\" username \"u${e}\" topic \"t\"\n"
     "deny publish clientid ~ \"e(?<e>.*)\" username \"u${e}\" topic \"t\"\n",
     {END}},
    /* written in either order, the same conditions */
    {"allow publish clientid ~ \"(?<s>.+)\" username \"d-${s}\" topic \"t\"\n"
     "allow publish username \"d-${s}\" clientid ~ \"(?<s>.+)\" topic \"t\"\n",
     {SH(2, 1), END}},
    /* an exact name does not stand for a condition with placeholders, nor
     * the other way round (conservative: no warning either way) */
    {"allow publish username \"d-x\" clientid \"x\" topic \"t\"\n"
     "allow publish clientid ~ \"(?<s>.+)\" username \"d-${s}\" topic \"t\"\n"
     "allow publish username \"d-y\" clientid \"y\" topic \"t\"\n",
     {END}},
    {"allow publish username \"u\" topic \"a/#\"\n"
     "allow publish username \"u\" clientid \"c-${username}\" topic \"a/b\"\n",
     {SH(2, 1), END}},
    /* `deny pubsub/all ... retain true` denies every matching subscribe
     * (retain constrains publishes only): almost certainly meant publish */
    {"deny pubsub topic \"r/#\" retain true\n"
     "deny all topic \"s/#\" retain true\n"
     "deny publish topic \"p/#\" retain true\n"
     "deny pubsub topic \"q/#\" retain false\n"
     "allow pubsub topic \"a/#\" retain true\n",
     {RS(1), NOTE(1), RS(2), NOTE(2), NOTE(3), NOTE(4), NOTE(5), END}},
    /* %u/%c inside a level are text: a note, once per rule (not for a
     * whole level, `eq` text or an exact name, where they mean what they say) */
    {"allow publish topic \"x%u/y\" \"a/%c-b\" \"%u/ok\" eq \"e%u\"\n"
     "allow subscribe topic \"c/${username}%c\"\n"
     "allow subscribe topic \"%c/d\" \"50%/e\" \"f/%x\" eq \"%u%c\"\n"
     "allow publish username \"a%u\" topic \"g\"\n",
     {PCT(1), PCT(2), END}},
    /* a whole-level %u or ${username} may be "$SYS": a filter starting
     * with a wildcard never covers it (MQTT's `$` rule) */
    {"allow publish topic \"+/x\"\n"
     "allow publish topic \"%u/x\"\n"
     "allow publish topic \"${clientid}/x\"\n"
     "allow subscribe topic \"#\"\n"
     "allow subscribe topic \"%c/y\"\n",
     {OB(4), END}},
    /* ...but a wildcard below the first level does, and text before it
     * fixes the first character */
    {"allow publish topic \"a/+\" \"#\"\n"
     "allow publish topic \"a/%u\" \"b${username}/x\"\n",
     {OB(1), SH(2, 1), END}},
};

typedef struct got {
    finding f[16];
    int n;
} got;

static void collect(const exh_lint_diag *d, void *user)
{
    got *g = user;
    assert_true(g->n < 16);
    g->f[g->n].kind = (int)d->kind;
    g->f[g->n].rule = d->rule + 1;
    g->f[g->n].other = d->kind == EXH_LINT_SHADOWED ? d->other + 1 : 0;
    assert_true(strlen(d->message) > 10);
    assert_int_equal(d->is_note,
                     d->kind == EXH_LINT_UNKNOWN_OPTION || d->kind == EXH_LINT_PERCENT_TEXT);
    g->n++;
}

static void test_lint_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exh_policy *p;
        exh_error err;
        assert_int_equal(
            exh_policy_parse("l.policy", cases[i].policy, strlen(cases[i].policy), &p, &err),
            EXH_OK);
        got g = {.n = 0};
        uint32_t warnings = exh_lint(p, collect, &g);
        int n = 0, nwarn = 0;
        while (cases[i].want[n].kind != -1) {
            nwarn += cases[i].want[n].kind != EXH_LINT_UNKNOWN_OPTION &&
                     cases[i].want[n].kind != EXH_LINT_PERCENT_TEXT;
            n++;
        }
        if (g.n != n) {
            for (int k = 0; k < g.n; k++)
                print_message("  got kind %d rule %u other %u\n", g.f[k].kind, g.f[k].rule,
                              g.f[k].other);
            fail_msg("case %zu: %d findings, want %d\n%s", i, g.n, n, cases[i].policy);
        }
        for (int k = 0; k < n; k++)
            if (g.f[k].kind != cases[i].want[k].kind || g.f[k].rule != cases[i].want[k].rule ||
                g.f[k].other != cases[i].want[k].other)
                fail_msg("case %zu finding %d: kind %d rule %u other %u, want %d %u %u\n%s", i, k,
                         g.f[k].kind, g.f[k].rule, g.f[k].other, cases[i].want[k].kind,
                         cases[i].want[k].rule, cases[i].want[k].other, cases[i].policy);
        assert_int_equal(warnings, nwarn);
        exh_policy_free(p);
    }
}

typedef struct texts {
    exh_lint_diag d[8];
    int n;
} texts;

static void keep(const exh_lint_diag *d, void *user)
{
    texts *t = user;
    assert_true(t->n < 8);
    t->d[t->n++] = *d;
}

/* What the EMQX notes and the default-ignore warning say, and where. */
static void test_messages(void **state)
{
    (void)state;
    const char *pol = "allow publish topic \"q\" qos 0-1 retain false\n"
                      "allow pubsub topic \"s/#\" retain false\n"
                      "deny subscribe topic \"x\" qos 2\n"
                      "  default ignore\n";
    exh_policy *p;
    assert_int_equal(exh_policy_parse("m.policy", pol, strlen(pol), &p, NULL), EXH_OK);
    texts t = {.n = 0};
    assert_int_equal(exh_lint(p, keep, &t), 1);
    assert_int_equal(t.n, 4);
    assert_int_equal(t.d[0].kind, EXH_LINT_DEFAULT_IGNORE);
    assert_int_equal(t.d[0].rule, EXH_LINT_NO_RULE);
    assert_int_equal(t.d[0].col, 3);
    assert_false(t.d[0].is_note);
    assert_non_null(strstr(t.d[0].message, "next source"));
    assert_non_null(strstr(t.d[0].message, "acl_nomatch = allow"));
    assert_non_null(strstr(t.d[0].message, "no_match = allow"));
    assert_non_null(strstr(t.d[0].message, "fails open"));
    /* rule 1: the note points at its first option, `qos` */
    assert_int_equal(t.d[1].rule, 0);
    assert_int_equal(t.d[1].col, 25);
    assert_non_null(strstr(t.d[1].message, "never grants a publish, its QoS and retain flag"));
    /* rule 2: retain constrains publishes only; subscribes still granted */
    assert_int_equal(t.d[2].rule, 1);
    assert_int_equal(t.d[2].col, 26);
    assert_non_null(strstr(t.d[2].message, "never grants a publish, its retain flag"));
    assert_non_null(strstr(t.d[2].message, "subscribes are decided without retain"));
    /* rule 3: a deny refuses whatever the QoS */
    assert_int_equal(t.d[3].rule, 2);
    assert_non_null(strstr(t.d[3].message, "refuses every subscribe it matches, whatever the QoS"));
    exh_policy_free(p);
}

/* The retain warning and the %u/%c note: what they say, and where. */
static void test_retain_and_percent_messages(void **state)
{
    (void)state;
    const char *pol = "deny all topic \"s/#\" retain true\n"
                      "allow publish topic \"a/x%u\" \"b/%c\"\n"
                      "allow publish \\\n  topic \"c/%c-1\"\n";
    exh_policy *p;
    assert_int_equal(exh_policy_parse("m.policy", pol, strlen(pol), &p, NULL), EXH_OK);
    texts t = {.n = 0};
    assert_int_equal(exh_lint(p, keep, &t), 1);
    assert_int_equal(t.n, 4);
    assert_int_equal(t.d[0].kind, EXH_LINT_RETAIN_SUBSCRIBE);
    assert_false(t.d[0].is_note);
    assert_int_equal(t.d[0].rule, 0);
    assert_int_equal(t.d[0].col, 22); /* at `retain` */
    assert_non_null(strstr(t.d[0].message, "every subscribe"));
    assert_non_null(strstr(t.d[0].message, "deny publish"));
    assert_int_equal(t.d[1].kind, EXH_LINT_UNKNOWN_OPTION);
    assert_int_equal(t.d[2].kind, EXH_LINT_PERCENT_TEXT);
    assert_true(t.d[2].is_note);
    assert_int_equal(t.d[2].rule, 1);
    assert_int_equal(t.d[2].col, 25); /* at the '%' */
    assert_non_null(strstr(t.d[2].message, "'%u'"));
    assert_non_null(strstr(t.d[2].message, "${username}"));
    /* a filter on a continuation line: the rule's column */
    assert_int_equal(t.d[3].kind, EXH_LINT_PERCENT_TEXT);
    assert_int_equal(t.d[3].rule, 2);
    assert_int_equal(t.d[3].col, 0);
    assert_non_null(strstr(t.d[3].message, "'%c'"));
    assert_non_null(strstr(t.d[3].message, "${clientid}"));
    exh_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lint_table),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_retain_and_percent_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
