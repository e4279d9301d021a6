/*
 * test_deadline.c -- service/deadline.c: the margin, when a login may start
 * or join the queue, and the watcher answering exactly the logins nobody
 * claimed in time, each exactly once, each freed exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "log.h"

static void test_margin(void **state)
{
    (void)state;
    assert_int_equal(svc_deadline_margin_ms(500), 125);
    assert_int_equal(svc_deadline_margin_ms(100), 50);
    assert_int_equal(svc_deadline_margin_ms(5000), 1000);
    assert_int_equal(svc_deadline_margin_ms(600000), 1000);
}

/* A fresh login is always tried, however slow the checks have been: the
 * estimate must keep learning, or one slow spell would refuse every login
 * after it.  One that waited past half its time starts only if the
 * estimate fits what is left. */
static void test_can_start_and_admit(void **state)
{
    (void)state;
    int64_t now = svc_now_ns(), ms = 1000000;
    svc_deadline_observe(10000 * ms); /* checks took 10 s */
    svc_pending fresh = {.received = now, .deadline = now + 375 * ms};
    assert_true(svc_deadline_can_start(&fresh));
    svc_pending waited = {.received = now - 300 * ms, .deadline = now + 75 * ms};
    assert_false(svc_deadline_can_start(&waited));
    svc_pending late = {.received = now - 500 * ms, .deadline = now - ms};
    assert_false(svc_deadline_can_start(&late));
    /* a free worker: admitted whatever the estimate */
    assert_true(svc_deadline_admit(now + 375 * ms, 3, 4));
    /* 40 queued for 4 workers at 10 s each: not in 375 ms */
    assert_false(svc_deadline_admit(now + 375 * ms, 40, 4));
    /* the estimate comes down as fast checks are seen */
    for (int i = 0; i < 200; i++)
        svc_deadline_observe(ms);
    assert_true(svc_deadline_can_start(&waited));
    assert_true(svc_deadline_admit(now + 375 * ms, 40, 4));
}

typedef struct job {
    svc_pending p; /* first */
    int expired, destroyed;
} job;

static void on_expire(svc_pending *p)
{
    ((job *)p)->expired++;
}

static void on_destroy(svc_pending *p)
{
    ((job *)p)->destroyed++;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Three logins with a 100 ms deadline (call_timeout 400 ms: margin 100):
 * one claimed by its worker in time, two left to the watcher.  Each is
 * answered exactly once and destroyed exactly once; a claim after the
 * watcher answered fails. */
static void test_watcher(void **state)
{
    (void)state;
    assert_int_equal(svc_deadline_start(400), 0);
    long before = svc_deadline_refused_total();
    job j[3];
    memset(j, 0, sizeof(j));
    int64_t now = svc_now_ns();
    for (int i = 0; i < 3; i++) {
        j[i].p.expire = on_expire;
        j[i].p.destroy = on_destroy;
        svc_pending_add(&j[i].p, now, svc_deadline_for(now, 0));
    }
    assert_true(svc_pending_claim(&j[0].p));  /* in time */
    assert_false(svc_pending_claim(&j[0].p)); /* only once */
    svc_pending_release(&j[0].p);
    assert_int_equal(j[0].destroyed, 1);
    for (int t = 0; t < 200 && (j[1].expired == 0 || j[2].expired == 0); t++)
        sleep_ms(10);
    sleep_ms(50);
    assert_int_equal(j[0].expired, 0);
    assert_int_equal(j[1].expired, 1);
    assert_int_equal(j[2].expired, 1);
    assert_false(svc_pending_claim(&j[1].p)); /* the worker comes too late */
    assert_int_equal(j[1].destroyed, 0);      /* still held by the worker */
    svc_pending_release(&j[1].p);
    svc_pending_release(&j[2].p);
    assert_int_equal(j[1].destroyed, 1);
    assert_int_equal(j[2].destroyed, 1);
    assert_int_equal(svc_deadline_refused_total() - before, 2);
    svc_deadline_stop();
}

int main(void)
{
    svc_log_init("test_deadline", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_margin),
        cmocka_unit_test(test_can_start_and_admit),
        cmocka_unit_test(test_watcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
