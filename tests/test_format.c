/*
 * test_format.c -- the canonical layout: exact output for a sample,
 * idempotence on every policy file in the repository, comments kept in
 * order, and decisions unchanged on random policies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/eval.h"
#include "exhook/format.h"

static char *fmt(const char *text)
{
    char *out;
    size_t n;
    exh_error err;
    if (exh_format("f.policy", text, strlen(text), &out, &n, &err) != EXH_OK)
        fail_msg("format: %s", err.message);
    assert_int_equal(strlen(out), n);
    return out;
}

static void test_sample_layout(void **state)
{
    (void)state;
    const char *ok = "# header comment kept as is   \n"
                     "default   deny\n"
                     "\n"
                     "allow publish clientid ~ \"dev-\\d+\"   topic \"a/#\" qos 0-1 # why\n"
                     "deny  subscribe topic eq \"#\"\n"
                     "allow pubsub username \"say \\\"hi\\\"\" topic \"x\" \"y\"\n"
                     "# between\n"
                     "allow subscribe group \"ops\" \\\n"
                     "   topic \"alerts/#\" \"$SYS/+/uptime\"\n"
                     "allow subscribe username \"d\" \\\n"
                     " topic \"s/1\" \\\n"
                     "  \"s/2\" # c\n"
                     "allow connect anonymous";
    const char *want = "# header comment kept as is   \n"
                       "default deny\n"
                       "\n"
                       "allow publish   clientid ~ \"dev-\\d+\"  topic \"a/#\"   qos 0-1  # why\n"
                       "deny  subscribe                       topic eq \"#\"\n"
                       "allow pubsub    username \"say \\\"hi\\\"\" topic \"x\" \"y\"\n"
                       "# between\n"
                       "allow subscribe group \"ops\" \\\n"
                       "                topic \"alerts/#\" \"$SYS/+/uptime\"\n"
                       "allow subscribe username \"d\" \\\n"
                       "                topic \"s/1\" \\\n"
                       "                      \"s/2\"  # c\n"
                       "allow connect anonymous\n";
    char *out = fmt(ok);
    if (strcmp(out, want)) fail_msg("got:\n%s\nwant:\n%s", out, want);
    char *again = fmt(out);
    assert_string_equal(again, out);
    free(again);
    free(out);
}

/* Placeholders in exact username/clientid conditions come back as
 * written (escapes next to them included), and the layout is stable. */
static void test_identity_placeholders(void **state)
{
    (void)state;
    const char *in = "deny connect   clientid ~ \"dev-(?<serial>[0-9a-f]{8})\"  not username "
                     "\"d-${serial}\"\n"
                     "deny connect not username \"q\\\"${c}\\\\\" clientid ~ \"(?<c>x+)\"\n"
                     "allow subscribe clientid \"c-${username}\" \\\n"
                     "   topic \"own/${clientid}/#\"\n";
    const char *want = "deny connect clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" not username "
                       "\"d-${serial}\"\n"
                       "deny connect not username \"q\\\"${c}\\\\\" clientid ~ \"(?<c>x+)\"\n"
                       "allow subscribe clientid \"c-${username}\" \\\n"
                       "                topic \"own/${clientid}/#\"\n";
    char *out = fmt(in);
    if (strcmp(out, want)) fail_msg("got:\n%s\nwant:\n%s", out, want);
    char *again = fmt(out);
    assert_string_equal(again, out);
    exh_policy *a, *b;
    assert_int_equal(exh_policy_parse("i", in, strlen(in), &a, NULL), EXH_OK);
    assert_int_equal(exh_policy_parse("o", out, strlen(out), &b, NULL), EXH_OK);
    assert_int_equal(exh_policy_rule_count(a), 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_string_equal(exh_policy_rule(b, i)->text, exh_policy_rule(a, i)->text);
    exh_policy_free(a);
    exh_policy_free(b);
    free(again);
    free(out);
}

/* Columns line up by characters: a UTF-8 name is as wide as its
 * characters, not its bytes; and a policy string that is not UTF-8 is
 * refused like any compile error. */
static void test_utf8_columns(void **state)
{
    (void)state;
    const char *in = "allow publish username \"\xc3\xa9\xc3\xa9\" topic \"a\"\n"
                     "allow publish username \"abcd\" topic \"b\"\n"
                     "allow pubsub username ~ \"\xe2\x82\xac.+\" topic \"\xc3\xbc/+\" qos 1\n"
                     "deny  subscribe topic \"c\"\n";
    const char *want = "allow publish   username \"\xc3\xa9\xc3\xa9\"    topic \"a\"\n"
                       "allow publish   username \"abcd\"  topic \"b\"\n"
                       "allow pubsub    username ~ \"\xe2\x82\xac.+\" topic \"\xc3\xbc/+\" qos 1\n"
                       "deny  subscribe                  topic \"c\"\n";
    char *out = fmt(in);
    if (strcmp(out, want)) fail_msg("got:\n%s\nwant:\n%s", out, want);
    char *again = fmt(out);
    assert_string_equal(again, out);
    free(again);
    free(out);
    const char *bad = "allow publish username \"a\xff\" topic \"a\"\n";
    char *o = NULL;
    size_t n;
    exh_error err;
    assert_int_equal(exh_format("f.policy", bad, strlen(bad), &o, &n, &err), EXH_ESYNTAX);
    assert_null(o);
    assert_int_equal(err.col, 26);
    assert_non_null(strstr(err.message, "UTF-8"));
}

/* A trailing `\` that swallows a blank line or the end of the file does
 * not make a rule multi-line, and the blank line stays. */
static void test_dangling_continuations(void **state)
{
    (void)state;
    char *out = fmt("allow publish topic \"a\" \\\n\n# c\nallow publish topic \"c/+/b\" \\");
    assert_string_equal(out, "allow publish topic \"a\"\n\n# c\nallow publish topic \"c/+/b\"\n");
    free(out);
    exh_policy *p;
    const char *t = "allow publish topic \"x\" \\";
    assert_int_equal(exh_policy_parse("e", t, strlen(t), &p, NULL), EXH_OK);
    assert_int_equal(exh_policy_rule(p, 0)->end_line, 1); /* not a line past the end */
    exh_policy_free(p);
}

static void test_refuses_broken_policy(void **state)
{
    (void)state;
    char *out = (char *)1;
    size_t n;
    exh_error err;
    const char *bad = "allow publish topic \"a/#/b\"\n";
    assert_int_equal(exh_format("b.policy", bad, strlen(bad), &out, &n, &err), EXH_ESYNTAX);
    assert_null(out);
    assert_int_equal(err.line, 1);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *t = malloc(1 << 20);
    *len = fread(t, 1, (1 << 20) - 1, f);
    t[*len] = '\0';
    fclose(f);
    return t;
}

/* Every comment line of the input appears in the output, in order. */
static void check_comments_kept(const char *in, const char *out, const char *name)
{
    const char *o = out;
    for (const char *l = in; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        size_t s = 0;
        while (s < n && (l[s] == ' ' || l[s] == '\t'))
            s++;
        if (s < n && l[s] == '#') {
            char line[1024];
            snprintf(line, sizeof(line), "%.*s\n", (int)n, l);
            const char *hit = strstr(o, line);
            if (!hit) fail_msg("%s: comment line lost or moved: %s", name, line);
            o = hit + strlen(line);
        }
        l = e ? e + 1 : l + n;
    }
}

static void check_dir(const char *dir, int *checked)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 8 || strcmp(e->d_name + l - 7, ".policy")) continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t n = 0;
        char *text = slurp(path, &n);
        assert_non_null(text);
        char *once, *twice;
        size_t n1, n2;
        exh_error err;
        if (exh_format(path, text, n, &once, &n1, &err) != EXH_OK) {
            free(text); /* a deliberately broken sample */
            continue;
        }
        assert_int_equal(exh_format(path, once, n1, &twice, &n2, &err), EXH_OK);
        if (n1 != n2 || memcmp(once, twice, n1)) fail_msg("%s: formatting twice changed it", path);
        check_comments_kept(text, once, path);
        /* the same rules: count and texts once joined by single spaces */
        exh_policy *a, *b;
        assert_int_equal(exh_policy_parse(path, text, n, &a, NULL), EXH_OK);
        assert_int_equal(exh_policy_parse(path, once, n1, &b, NULL), EXH_OK);
        assert_int_equal(exh_policy_rule_count(a), exh_policy_rule_count(b));
        exh_policy_free(a);
        exh_policy_free(b);
        free(text);
        free(once);
        free(twice);
        ++*checked;
    }
    closedir(d);
}

static void test_repository_files(void **state)
{
    (void)state;
    int checked = 0;
    check_dir("policies", &checked);
    check_dir("examples/qos-retain", &checked);
    check_dir("tests/data", &checked);
    check_dir("tests/fuzz/corpus/policy", &checked);
    assert_true(checked >= 10);
}

/* Random policies: formatting never changes a decision. */
static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void test_decisions_unchanged(void **state)
{
    (void)state;
    static const char *conds[] = {"",
                                  "username \"u1\"",
                                  "clientid ~ \"c.*\"",
                                  "not anonymous",
                                  "group \"g\"",
                                  "username ~ \"a\\\\\\\\b\"",
                                  "clientid ~ \"c(?<t>.*)\" not username \"u${t}\"",
                                  "not clientid \"c${username}\""};
    static const char *topics[] = {"", "topic \"a/#\"", "topic \"a/+\" \"b\"", "topic eq \"#\"",
                                   "topic \"a/${username}\""};
    static const char *acts[] = {"publish", "subscribe", "pubsub", "connect"};
    static const char *names[] = {"a", "a/b", "b", "#", "a/u1", "x"};
    exh_evalctx *ctx = exh_evalctx_new();
    for (int round = 0; round < 100; round++) {
        char text[8192];
        size_t o = 0;
        int n = 1 + (int)rnd(15);
        for (int i = 0; i < n; i++) {
            const char *act = acts[rnd(4)];
            const char *tp = strcmp(act, "connect") ? topics[rnd(5)] : "";
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s %s %s%s%s%s\n",
                                  rnd(2) ? "allow" : "deny", act, conds[rnd(8)],
                                  rnd(3) == 0 ? " \\\n   " : " ", tp, rnd(4) ? "" : " # c");
            if (rnd(5) == 0) o += (size_t)snprintf(text + o, sizeof(text) - o, "\n# comment\n");
        }
        char *out;
        size_t on;
        exh_error err;
        exh_policy *a, *b;
        if (exh_policy_parse("r", text, o, &a, &err) != EXH_OK)
            fail_msg("generated policy does not compile: %s\n%s", err.message, text);
        assert_int_equal(exh_format("r", text, o, &out, &on, &err), EXH_OK);
        assert_int_equal(exh_policy_parse("r", out, on, &b, &err), EXH_OK);
        for (int q = 0; q < 200; q++) {
            exh_request r;
            exh_request_init(&r, (exh_action[]){EXH_PUBLISH, EXH_SUBSCRIBE, EXH_CONNECT}[rnd(3)]);
            r.username = rnd(4) ? "u1" : NULL;
            r.username_len = r.username ? 2 : 0;
            r.clientid = rnd(2) ? "c1" : "d";
            r.clientid_len = strlen(r.clientid);
            r.topic = names[rnd(6)];
            r.topic_len = strlen(r.topic);
            exh_str g = {"g", 1};
            r.groups = &g;
            r.ngroups = rnd(2);
            exh_result x, y;
            exh_eval(a, &r, ctx, &x);
            exh_eval(b, &r, ctx, &y);
            if (x.decision != y.decision || x.basis != y.basis || x.rule != y.rule)
                fail_msg("decision changed by formatting\n%s\n---\n%s", text, out);
        }
        exh_policy_free(a);
        exh_policy_free(b);
        free(out);
    }
    exh_evalctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_layout),          cmocka_unit_test(test_refuses_broken_policy),
        cmocka_unit_test(test_dangling_continuations), cmocka_unit_test(test_repository_files),
        cmocka_unit_test(test_identity_placeholders),  cmocka_unit_test(test_decisions_unchanged),
        cmocka_unit_test(test_utf8_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
