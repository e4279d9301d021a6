/*
 * test_policytest.c -- reading `expect` lines: every attribute, the
 * defaults (qos 0, retain false, anonymous, unknown peer), unknown qos and
 * retain and the EMQX forms (`emqx`, `also emqx`), and errors at
 * their exact position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "exhook/policytest.h"

typedef struct seen {
    exh_expectation e[8];
    char user[8][64], topic[8][64];
    int n;
} seen;

static int keep(const exh_expectation *e, void *user)
{
    seen *s = user;
    assert_true(s->n < 8);
    s->e[s->n] = *e;
    /* strings live only during the callback: copy what we check */
    snprintf(s->user[s->n], 64, "%.*s", e->request.username ? (int)e->request.username_len : 0,
             e->request.username ? e->request.username : "");
    snprintf(s->topic[s->n], 64, "%.*s", e->request.topic ? (int)e->request.topic_len : 0,
             e->request.topic ? e->request.topic : "");
    s->n++;
    return 0;
}

static void test_attributes_and_defaults(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "expect allow publish username \"alice\" clientid \"c1\" topic \"a/b\"\n"
                       "\n"
                       "expect deny subscribe topic \"#\" qos 2 group \"ops\" group \"dev\" \\\n"
                       "       peerhost 10.0.0.1 superuser\n"
                       "expect ignore publish anonymous topic \"t\" retain\n"
                       "expect allow publish username \"u\" topic \"t\" retain false\n"
                       "expect allow connect anonymous peerhost ::1\n";
    seen s = {.n = 0};
    exh_error err;
    assert_int_equal(exh_testfile_parse("x.test", text, strlen(text), keep, &s, &err), EXH_OK);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.e[0].expected, EXH_ALLOW);
    assert_int_equal(s.e[0].request.action, EXH_PUBLISH);
    assert_string_equal(s.user[0], "alice");
    assert_string_equal(s.topic[0], "a/b");
    assert_int_equal(s.e[0].request.qos, 0);
    assert_int_equal(s.e[0].request.retain, 0);
    assert_int_equal(s.e[0].request.peerhost.family, 0);
    assert_int_equal(s.e[0].line, 2);
    assert_int_equal(s.e[1].expected, EXH_DENY);
    assert_int_equal(s.e[1].request.qos, 2);
    assert_int_equal(s.e[1].request.ngroups, 2);
    assert_int_equal(s.e[1].request.peerhost.family, 4);
    assert_true(s.e[1].request.superuser);
    assert_int_equal(s.e[1].line, 4);
    assert_int_equal(s.e[2].expected, EXH_IGNORE);
    assert_null(s.e[2].request.username);
    assert_int_equal(s.e[2].request.retain, 1);
    assert_int_equal(s.e[3].request.retain, 0);
    assert_int_equal(s.e[4].request.action, EXH_CONNECT);
    assert_int_equal(s.e[4].request.peerhost.family, 6);
}

/* Unknown QoS/retain, and the request as EMQX sends it: `emqx` alone, or
 * `also emqx` for the line as written and then again as EMQX sends it. */
static void test_unknown_and_emqx(void **state)
{
    (void)state;
    const char *text = "expect allow publish topic \"t\" qos unknown\n"
                       "expect allow publish topic \"t\" retain unknown qos 1\n"
                       "expect deny publish topic \"t\" emqx\n"
                       "expect allow subscribe topic \"t\" qos 2 also emqx\n"
                       "expect allow publish also emqx topic \"t\" retain\n";
    seen s = {.n = 0};
    exh_error err;
    assert_int_equal(exh_testfile_parse("u.test", text, strlen(text), keep, &s, &err), EXH_OK);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.e[0].request.qos, -1);
    assert_int_equal(s.e[0].request.retain, 0);
    assert_false(s.e[0].emqx);
    assert_int_equal(s.e[1].request.qos, 1);
    assert_int_equal(s.e[1].request.retain, -1);
    assert_false(s.e[1].emqx);
    /* emqx: both unknown */
    assert_int_equal(s.e[2].request.qos, -1);
    assert_int_equal(s.e[2].request.retain, -1);
    assert_true(s.e[2].emqx);
    assert_int_equal(s.e[2].line, 3);
    /* also emqx: as written, then the EMQX run of the same line */
    assert_int_equal(s.e[3].request.qos, 2);
    assert_false(s.e[3].emqx);
    assert_int_equal(s.e[4].request.qos, -1);
    assert_int_equal(s.e[4].request.retain, -1);
    assert_true(s.e[4].emqx);
    assert_int_equal(s.e[4].line, 4);
    assert_int_equal(s.e[4].expected, EXH_ALLOW);
    assert_int_equal(s.e[4].request.action, EXH_SUBSCRIBE);
    assert_string_equal(s.topic[4], "t");
    assert_int_equal(s.e[5].request.retain, 1);
    assert_int_equal(s.e[5].request.qos, 0);
    assert_false(s.e[5].emqx);
    assert_int_equal(s.e[6].request.retain, -1);
    assert_int_equal(s.e[6].request.qos, -1);
    assert_true(s.e[6].emqx);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned line, col;
        const char *msg;
    } bad[] = {
        {"expect\n", 1, 7, "'allow', 'deny' or 'ignore'"},
        {"allow publish topic \"t\"\n", 1, 1, "'expect'"},
        {"expect allow jump topic \"t\"\n", 1, 14, "an action"},
        {"expect allow publish username alice topic \"t\"\n", 1, 31, "a quoted value"},
        {"expect allow publish topic \"t\" qos 3\n", 1, 36, "QoS level"},
        {"expect allow publish topic \"t\" peerhost 10.0.0.0/8\n", 1, 41, "IPv4 or IPv6"},
        {"expect allow publish topic \"t\" color \"red\"\n", 1, 32, "request attribute"},
        {"expect allow publish username \"u\"\n", 1, 34, "a 'topic'"},
        {"expect allow connect topic \"t\"\n", 1, 22, "takes no topic"},
        {"expect allow publish anonymous username \"u\" topic \"t\"\n", 1, 1, "contradict"},
        {"expect allow publish topic \"t\"\nexpect deny\n", 2, 12, "an action"},
        {"expect allow publish topic \"t\" qos maybe\n", 1, 36, "'unknown'"},
        {"expect allow connect username \"u\" emqx\n", 1, 35, "publish and subscribe"},
        {"expect allow connect username \"u\" also emqx\n", 1, 35, "publish and subscribe"},
        {"expect allow publish topic \"t\" qos 1 emqx\n", 1, 32, "no QoS or retain"},
        {"expect allow publish topic \"t\" emqx retain false\n", 1, 37, "no QoS or retain"},
        {"expect allow publish topic \"t\" also\n", 1, 36, "'emqx' after 'also'"},
        {"expect allow publish topic \"t\" also mosquitto\n", 1, 37, "'emqx' after 'also'"},
        {"expect allow publish topic \"t\" emqx also emqx\n", 1, 37, "given twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seen s = {.n = 0};
        exh_error err;
        exh_status st =
            exh_testfile_parse("b.test", bad[i].text, strlen(bad[i].text), keep, &s, &err);
        if (st != EXH_ESYNTAX || err.line != bad[i].line || err.col != bad[i].col ||
            !strstr(err.message, bad[i].msg))
            fail_msg("case %zu: got %d at %u:%u '%s'", i, st, err.line, err.col, err.message);
        assert_string_equal(err.file, "b.test");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attributes_and_defaults),
        cmocka_unit_test(test_unknown_and_emqx),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
