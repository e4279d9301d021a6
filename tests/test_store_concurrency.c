/*
 * test_store_concurrency.c -- two processes on one store, as exhookctl and
 * a running driver are: one adds and deletes users while the other
 * authenticates in a loop.  No write may be lost and no "database is
 * locked" may surface to either side.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exhook/auth.h"

#define ROUNDS 300

static exh_store *open_at(const char *path)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 64;
    o.hash.t_cost = 1;
    exh_store *s = NULL;
    exh_error err;
    if (exh_store_open(path, &o, &s, &err)) {
        fprintf(stderr, "open: %s\n", err.message);
        _exit(3);
    }
    return s;
}

static void writer(const char *path)
{
    exh_store *s = open_at(path);
    exh_error err;
    for (int i = 0; i < ROUNDS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%03d", i);
        exh_new_user u = {.name = name, .password = "p", .password_len = 1};
        if (exh_store_add_user(s, &u, &err)) {
            fprintf(stderr, "writer add %s: %s\n", name, err.message);
            _exit(1);
        }
        if (i % 2) { /* delete every odd user right after adding it */
            if (exh_store_del_user(s, name, &err)) {
                fprintf(stderr, "writer del %s: %s\n", name, err.message);
                _exit(1);
            }
        }
    }
    exh_store_close(s);
    _exit(0);
}

static void reader(const char *path)
{
    exh_store *s = open_at(path);
    exh_policy *p;
    exh_policy_parse("p", "", 0, &p, NULL);
    exh_evalctx *ctx = exh_evalctx_new();
    exh_error err;
    for (int i = 0; i < ROUNDS; i++) {
        exh_auth_request rq = {.username = "steady",
                               .username_len = 6,
                               .clientid = "c",
                               .clientid_len = 1,
                               .password = "pw",
                               .password_len = 2,
                               .check_password = true};
        exh_auth_result r;
        exh_status st = exh_authenticate(s, NULL, p, ctx, &rq, &r, &err);
        if (st || r.decision != EXH_ALLOW) {
            fprintf(stderr, "reader round %d: %s (%s)\n", i, exh_auth_reason_str(r.reason),
                    st ? err.message : "");
            _exit(1);
        }
        exh_auth_result_clear(&r);
    }
    exh_evalctx_free(ctx);
    exh_policy_free(p);
    exh_store_close(s);
    _exit(0);
}

static void test_writer_and_reader(void **state)
{
    (void)state;
    char dir[] = "/tmp/exh-conc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/c.db", dir);
    exh_store *s = open_at(path);
    exh_error err;
    exh_new_user steady = {.name = "steady", .password = "pw", .password_len = 2};
    assert_int_equal(exh_store_add_user(s, &steady, &err), EXH_OK);
    exh_store_close(s);

    pid_t w = fork();
    if (w == 0) writer(path);
    pid_t r = fork();
    if (r == 0) reader(path);
    int ws, rs;
    assert_int_equal(waitpid(w, &ws, 0), w);
    assert_int_equal(waitpid(r, &rs, 0), r);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_true(WIFEXITED(rs) && WEXITSTATUS(rs) == 0);

    /* every write landed: the even users are there, the odd ones gone */
    s = open_at(path);
    for (int i = 0; i < ROUNDS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%03d", i);
        exh_user u;
        exh_status st = exh_store_get_user(s, name, &u, &err);
        if (i % 2)
            assert_int_equal(st, EXH_ENOTFOUND);
        else {
            assert_int_equal(st, EXH_OK);
            exh_user_clear(&u);
        }
    }
    exh_store_close(s);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_and_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
