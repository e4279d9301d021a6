/*
 * test_parser.c -- the policy language's syntax and compile errors: each
 * error kind with its exact file:line:col, and what compiles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exhook/lint.h"
#include "exhook/policy.h"

typedef struct bad_case {
    const char *text;
    unsigned line, col;
    const char *msg; /* a substring of the message */
} bad_case;

static const bad_case bad[] = {
    /* statements */
    {"Allow publish topic \"a\"\n", 1, 1, "lower case"},
    {"permit publish\n", 1, 1, "expected 'allow', 'deny' or 'default'"},
    {"allow\n", 1, 6, "expected an action"},
    {"allow jump\n", 1, 7, "expected an action"},
    {"default\n", 1, 8, "'allow', 'deny' or 'ignore' after 'default'"},
    {"default maybe\n", 1, 9, "'allow', 'deny' or 'ignore'"},
    {"default deny extra\n", 1, 14, "end of line"},
    {"default deny\n\ndefault allow\n", 3, 1, "'default' given twice"},
    /* conditions */
    {"allow publish username\n", 1, 23, "quoted string or '~'"},
    {"allow publish username alice\n", 1, 24, "quoted string or '~'"},
    {"allow publish username ~ alice\n", 1, 26, "regular expression"},
    {"allow publish clientid ~ \"a(b\"\n", 1, 30, "bad regular expression"},
    {"allow publish username ~ \"[z-a]\"\n", 1, 30, "bad regular expression"},
    {"allow publish peerhost\n", 1, 23, "address"},
    {"allow publish peerhost 300.1.1.1\n", 1, 24, "bad peerhost"},
    {"allow publish peerhost 10.0.0.0/33\n", 1, 24, "bad peerhost"},
    {"allow publish peerhost 10.0.0.1/8\n", 1, 24, "bad peerhost"},
    {"allow publish peerhost fe80::/129\n", 1, 24, "bad peerhost"},
    {"allow publish group ops\n", 1, 21, "quoted group name"},
    {"allow publish not\n", 1, 18, "expected a condition"},
    {"allow publish not not anonymous\n", 1, 19, "cannot be doubled"},
    {"allow publish not topic \"a\"\n", 1, 19, "expected a condition"},
    /* topics */
    {"allow publish \"a/b\"\n", 1, 15, "needs the 'topic' keyword"},
    {"allow publish topic\n", 1, 20, "quoted topic filter"},
    {"allow publish topic a/b\n", 1, 21, "quoted topic filter"},
    {"allow publish topic \"\"\n", 1, 21, "empty topic filter"},
    {"allow publish topic eq\n", 1, 23, "quoted topic after 'eq'"},
    {"allow publish topic \"a/b#\"\n", 1, 25, "must fill a whole level"},
    {"allow publish topic \"a/#/b\"\n", 1, 24, "'#' must be the last level"},
    {"allow publish topic \"a/x+y\"\n", 1, 25, "must fill a whole level"},
    {"allow subscribe topic \"$share/g/a\"\n", 1, 24, "shared subscription"},
    {"deny subscribe topic eq \"$queue/a\"\n", 1, 26, "shared subscription"},
    {"allow publish topic \"a\" username \"u\"\n", 1, 25, "conditions go before 'topic'"},
    {"allow publish topic \"a\" topic \"b\"\n", 1, 25, "'topic' given twice"},
    {"allow publish topic \"a\" qos 1 \"b\"\n", 1, 31, "topic filters go before options"},
    {"allow connect topic \"a\"\n", 1, 15, "connect rules take no 'topic'"},
    /* placeholders */
    {"allow publish topic \"a/${nope}\"\n", 1, 24, "names no capture"},
    {"allow publish topic \"a/${x\"\n", 1, 24, "unterminated placeholder"},
    {"allow publish topic \"a/${}\"\n", 1, 24, "empty placeholder"},
    {"allow publish topic \"a/${1x}\"\n", 1, 24, "bad placeholder name"},
    {"allow publish username ~ \"(?<t>.+)\" clientid ~ \"(?<t>.+)\" topic \"${t}\"\n", 1, 48,
     "defined twice"},
    {"allow publish not username ~ \"(?<t>.+)\" topic \"x/${t}\"\n", 1, 50, "defined under 'not'"},
    {"allow publish username ~ \"(?<username>.+)\" topic \"x\"\n", 1, 26, "reserved"},
    /* placeholders in exact username/clientid conditions: at the '$' */
    {"deny connect not username \"d-${serial}\"\n", 1, 30, "names no capture"},
    {"deny connect clientid \"x\" not username \"a\\\"${s}\"\n", 1, 44, "names no capture"},
    {"deny connect not clientid ~ \"dev-(?<s>.+)\" username \"d-${s}\"\n", 1, 56,
     "defined under 'not'"},
    {"allow publish username \"x-${username}\" topic \"a\"\n", 1, 27, "its own value"},
    {"allow connect clientid \"${clientid}\"\n", 1, 25, "its own value"},
    {"allow connect clientid \"c-${s\"\n", 1, 27, "unterminated placeholder"},
    {"allow connect clientid \"${}\"\n", 1, 25, "empty placeholder"},
    {"allow connect username \"${a-b}\"\n", 1, 25, "bad placeholder name"},
    {"allow connect username ~ \"(?<s>.+)\" clientid \"${s}\" clientid \"${t}\"\n", 1, 63,
     "names no capture"},
    {"allow publish username ~ \"((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))"
     "))))))\"\n",
     1, 26, "groups"},
    /* options */
    {"allow publish topic \"a\" qos\n", 1, 28, "QoS level"},
    {"allow publish topic \"a\" qos 3\n", 1, 29, "QoS level"},
    {"allow publish topic \"a\" qos 2-1\n", 1, 29, "backwards"},
    {"allow publish topic \"a\" qos 1 qos 1\n", 1, 31, "'qos' given twice"},
    {"allow publish topic \"a\" retain yes\n", 1, 32, "'true' or 'false'"},
    {"allow subscribe topic \"a\" retain true\n", 1, 27, "publish only"},
    {"allow connect qos 1\n", 1, 15, "connect rules take no"},
    {"allow publish topic \"a\" bogus\n", 1, 25, "'qos', 'retain' or end of line"},
    /* strings are UTF-8 (MQTT names and topics are): at the first bad byte */
    {"allow publish username \"ab\xff"
     "c\"\n",
     1, 27, "not valid UTF-8"},
    {"allow publish username \"\\\"\xff\"\n", 1, 27, "not valid UTF-8"},
    {"allow publish username ~ \"\xc3(\"\n", 1, 27, "not valid UTF-8"},
    {"allow publish clientid ~ \"d-\xc0\xaf.*\"\n", 1, 29, "not valid UTF-8"},
    {"allow publish group \"g\xed\xa0\x80\"\n", 1, 23, "not valid UTF-8"},
    {"allow publish topic \"a/\xff/b\"\n", 1, 24, "not valid UTF-8"},
    {"allow publish topic eq \"a\xf4\x90\x80\x80\"\n", 1, 26, "not valid UTF-8"},
    {"allow publish clientid \"x\" \\\n  username \"\xc3\"\n", 2, 13, "not valid UTF-8"},
    /* lexical */
    {"allow publish topic \"a\n", 1, 21, "unterminated string"},
    {"allow publish topic \"a\\\"\n", 1, 21, "unterminated string"},
    {"allow publish \\\n  topic \"a\" \\\n  bogus\n", 3, 3, "'qos', 'retain' or end of line"},
    {"# fine\n\n   allow publish topic \"a\" # c\n allow nothing\n", 4, 8, "expected an action"},
    {"allow publish topic \"a\0b\"\n", 1, 23, "NUL"},
};

static void test_errors_point_at_the_right_place(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        exh_policy *p = (exh_policy *)1;
        exh_error err;
        size_t len = strlen(bad[i].text);
        if (i == sizeof(bad) / sizeof(bad[0]) - 1) /* the NUL case: strlen stops short */
            len = sizeof("allow publish topic \"a\0b\"\n") - 1;
        exh_status st = exh_policy_parse("t.policy", bad[i].text, len, &p, &err);
        if (st != EXH_ESYNTAX || p != NULL || err.line != bad[i].line || err.col != bad[i].col ||
            !strstr(err.message, bad[i].msg)) {
            char buf[2048];
            exh_error_format(&err, buf, sizeof(buf));
            fail_msg("case %zu: %s\n expected %u:%u '%s'\n got status %d:\n%s", i, bad[i].text,
                     bad[i].line, bad[i].col, bad[i].msg, st, buf);
        }
        assert_string_equal(err.file, "t.policy");
    }
}

static void test_error_format_has_caret(void **state)
{
    (void)state;
    exh_policy *p;
    exh_error err;
    const char *text = "default deny\n\tallow publish topic \"a/${x}\"\n";
    assert_int_equal(exh_policy_parse("f.policy", text, strlen(text), &p, &err), EXH_ESYNTAX);
    char buf[1024];
    exh_error_format(&err, buf, sizeof(buf));
    assert_string_equal(buf, "f.policy:2:25: error: placeholder '${x}' names no capture of this "
                             "rule's conditions (define it with (?<name>...) in a username or "
                             "clientid regex)\n"
                             "\tallow publish topic \"a/${x}\"\n"
                             "\t                       ^\n"); /* columns count bytes; the caret
                                                                 takes one blank per character */
    text = "allow publish username \"\xc3\xa9\xe2\x82\xac\" topic \"a/#/b\"\n";
    assert_int_equal(exh_policy_parse("f.policy", text, strlen(text), &p, &err), EXH_ESYNTAX);
    exh_error_format(&err, buf, sizeof(buf));
    assert_string_equal(buf, "f.policy:1:41: error: '#' must be the last level of a filter\n"
                             "allow publish username \"\xc3\xa9\xe2\x82\xac\" topic \"a/#/b\"\n"
                             "                                     ^\n");
}

static const char *good[] = {
    "",
    "# only a comment\n",
    "default allow",
    "default ignore\n",
    "allow all\n",
    "deny connect group \"internal\" not peerhost 10.0.0.0/8\n",
    "allow connect anonymous peerhost 127.0.0.1\n",
    "allow connect anonymous peerhost ::1\n",
    "allow subscribe username \"dashboard\" topic \"$SYS/#\"\n",
    "deny subscribe topic eq \"#\" eq \"+/#\"\n",
    "allow publish clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" topic \"devices/${serial}/up/#\" "
    "qos 0-1 retain false\n",
    "allow pubsub username ~ \"(?<tenant>[a-z0-9]+):.+\" topic \"tenants/${tenant}/#\"\n",
    "allow subscribe group \"ops\" topic \"alerts/#\" \"$SYS/broker/+/uptime\"\n",
    "allow pubsub topic \"users/%u/#\" \"clients/%c/#\" \"x/a%u\"\n",
    "allow publish topic \"a/${username}-${clientid}/b\"\n",
    /* placeholders in exact names: a capture written before or after its use,
     * from the other field or the same one, and the built-in names */
    "deny connect clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" not username \"d-${serial}\"\n",
    "deny connect not username \"d-${serial}\" clientid ~ \"dev-(?<serial>[0-9a-f]{8})\"\n",
    "allow publish username ~ \"(?<t>[a-z]+):.+\" not username \"${t}:admin\" topic \"a\"\n",
    "allow connect clientid \"dev-${username}\" username \"${clientid}x\"\n",
    "allow connect username \"100%u\"\n", /* %u is text outside topic filters */
    "allow publish \\\n  username \"u\" \\\n  topic \"a\"   \n",
    "allow publish username \"say \\\"hi\\\" \\\\o/\" topic \"a\"\n",
    "allow publish username ~ \"dev-\\d+\" topic \"a\"\r\n",
    "allow publish topic \"a\" qos 2 retain true\n",
    "allow pubsub topic \"a\" retain false\n",
    "deny publish peerhost 0.0.0.0/0\ndeny publish peerhost ::/0\n",
};

static void test_valid_policies_compile(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        exh_policy *p = NULL;
        exh_error err;
        if (exh_policy_parse("g.policy", good[i], strlen(good[i]), &p, &err) != EXH_OK) {
            char buf[2048];
            exh_error_format(&err, buf, sizeof(buf));
            fail_msg("case %zu should compile:\n%s", i, buf);
        }
        exh_policy_free(p);
    }
}

static void test_rule_info(void **state)
{
    (void)state;
    const char *text = "default ignore\n"
                       "# comment\n"
                       "allow publish \\\n"
                       "    username \"u\"   topic \"a\" # why\n"
                       "  deny   subscribe topic eq \"#\"\n";
    exh_policy *p;
    assert_int_equal(exh_policy_parse("i.policy", text, strlen(text), &p, NULL), EXH_OK);
    assert_int_equal(exh_policy_rule_count(p), 2);
    assert_int_equal(exh_policy_default(p), EXH_IGNORE);
    uint32_t line;
    assert_string_equal(exh_policy_default_file(p, &line), "i.policy");
    assert_int_equal(line, 1);
    const exh_rule_info *r = exh_policy_rule(p, 0);
    assert_int_equal(r->number, 1);
    assert_int_equal(r->line, 3);
    assert_string_equal(r->text, "allow publish username \"u\" topic \"a\"");
    assert_int_equal(r->actions, EXH_PUBLISH);
    r = exh_policy_rule(p, 1);
    assert_int_equal(r->number, 2);
    assert_int_equal(r->line, 5);
    assert_int_equal(r->col, 3);
    assert_string_equal(r->text, "deny subscribe topic eq \"#\"");
    assert_int_equal(r->effect, EXH_DENY);
    assert_null(exh_policy_rule(p, 2));
    exh_policy_drop_texts(p); /* the driver's memory saving: positions stay */
    assert_string_equal(exh_policy_rule(p, 1)->text, "");
    assert_int_equal(exh_policy_rule(p, 1)->line, 5);
    exh_policy_free(p);
}

/* A directory is read in byte order of file names, and an error in any
 * file leaves no policy at all. */
static void test_directory_order_and_all_or_nothing(void **state)
{
    (void)state;
    char dir[] = "/tmp/exh-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/20-b.policy", dir);
    f = fopen(path, "w");
    fputs("allow publish topic \"b\"\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/10-a.policy", dir);
    f = fopen(path, "w");
    fputs("allow publish topic \"a\"\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/README.md", dir);
    f = fopen(path, "w");
    fputs("not a policy\n", f);
    fclose(f);
    exh_policy *p;
    exh_error err;
    assert_int_equal(exh_policy_load(dir, &p, &err), EXH_OK);
    assert_int_equal(exh_policy_rule_count(p), 2);
    assert_non_null(strstr(exh_policy_rule(p, 0)->file, "10-a.policy"));
    assert_non_null(strstr(exh_policy_rule(p, 1)->file, "20-b.policy"));
    exh_policy_free(p);

    snprintf(path, sizeof(path), "%s/30-c.policy", dir);
    f = fopen(path, "w");
    fputs("allow publish topic \"c\"\nallow oops\n", f);
    fclose(f);
    p = (exh_policy *)1;
    assert_int_equal(exh_policy_load(dir, &p, &err), EXH_ESYNTAX);
    assert_null(p);
    assert_non_null(strstr(err.file, "30-c.policy"));
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 7);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(exh_policy_load(dir, &p, &err), EXH_EIO);
    assert_null(p);
}

static void test_missing_and_empty(void **state)
{
    (void)state;
    exh_policy *p;
    exh_error err;
    assert_int_equal(exh_policy_load("/nonexistent/x.policy", &p, &err), EXH_EIO);
    assert_non_null(strstr(err.message, "No such file"));
    char dir[] = "/tmp/exh-empty-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(exh_policy_load(dir, &p, &err), EXH_EIO);
    assert_non_null(strstr(err.message, "no *.policy files"));
    rmdir(dir);
}

/* Counters must never wrap: too many conditions or filters in one rule is
 * an error, not a rule that silently lost some of them. */
static void test_rule_size_limits(void **state)
{
    (void)state;
    size_t cap = 2u << 20;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "allow publish username \"admin\"");
    for (int i = 0; i < 1024; i++)
        n += (size_t)snprintf(text + n, cap - n, " not anonymous");
    snprintf(text + n, cap - n, " topic \"#\"\n");
    exh_policy *p;
    exh_error err;
    assert_int_equal(exh_policy_parse("big", text, strlen(text), &p, &err), EXH_ESYNTAX);
    assert_non_null(strstr(err.message, "more than 1024 conditions"));
    n = (size_t)snprintf(text, cap, "deny publish topic");
    for (int i = 0; i <= 65535; i++)
        n += (size_t)snprintf(text + n, cap - n, " \"b/%d\"", i);
    snprintf(text + n, cap - n, "\n");
    assert_int_equal(exh_policy_parse("big", text, strlen(text), &p, &err), EXH_ESYNTAX);
    assert_non_null(strstr(err.message, "more than 65535 topic filters"));
    free(text);
}

/* exh_action_parse: the three request actions by exact name, nothing else;
 * exh_action_str names them back. */
static void test_action_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        int ok;
        exh_action want;
    } cases[] = {
        {"publish", 7, 1, EXH_PUBLISH},
        {"subscribe", 9, 1, EXH_SUBSCRIBE},
        {"connect", 7, 1, EXH_CONNECT},
        {"pubsub", 6, 0, 0},
        {"all", 3, 0, 0},
        {"Publish", 7, 0, 0},
        {"publis", 6, 0, 0},
        {"publishx", 8, 0, 0},
        {"", 0, 0, 0},
        {"publish\0x", 9, 0, 0}, /* a NUL inside: not "publish" */
        {"publish\0", 8, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exh_action a = (exh_action)0x55;
        bool ok = exh_action_parse(cases[i].s, cases[i].n, &a);
        if (ok != cases[i].ok) fail_msg("case %zu (%s): got %d", i, cases[i].s, ok);
        if (ok) {
            assert_int_equal(a, cases[i].want);
            assert_string_equal(exh_action_str(a), cases[i].s);
        } else {
            assert_int_equal(a, 0x55); /* untouched */
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_point_at_the_right_place),
        cmocka_unit_test(test_error_format_has_caret),
        cmocka_unit_test(test_valid_policies_compile),
        cmocka_unit_test(test_rule_info),
        cmocka_unit_test(test_directory_order_and_all_or_nothing),
        cmocka_unit_test(test_missing_and_empty),
        cmocka_unit_test(test_rule_size_limits),
        cmocka_unit_test(test_action_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
