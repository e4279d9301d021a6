/*
 * test_strmap.c -- the index's hash table: a put of a key already there
 * neither grows the table nor can fail, and a put that needs memory it
 * cannot get says so (NULL) instead of handing out a slot.
 *
 * calloc is wrapped (-Wl,--wrap=calloc, CMakeLists.txt) so that a test can
 * make the table's growth fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "strmap.h"

static int calloc_fails; /* nonzero: every calloc returns NULL */

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
    return calloc_fails ? NULL : __real_calloc(n, size);
}

/* Fill a fresh table to exactly its load limit: 32 keys in 64 slots. */
static void fill(strmap *m)
{
    int ins;
    for (uint64_t k = 1; k <= 32; k++)
        assert_non_null(strmap_put(m, k * 0x9e3779b97f4a7c15ULL, 0, 0, &ins));
    assert_int_equal(m->cap, 64);
    assert_int_equal(m->count, 32);
}

static void test_existing_key_does_not_grow(void **state)
{
    (void)state;
    strmap m = {0};
    int ins = -1;
    fill(&m);
    strmap_slot *s = strmap_put(&m, 5 * 0x9e3779b97f4a7c15ULL, 7, 7, &ins);
    assert_non_null(s);
    assert_int_equal(ins, 0);
    assert_int_equal(s->v[0], 0); /* the values it had, not the put's */
    assert_int_equal(m.cap, 64);
    assert_int_equal(m.count, 32);
    strmap_free(&m);
}

static void test_existing_key_without_memory(void **state)
{
    (void)state;
    strmap m = {0};
    int ins = -1;
    fill(&m);
    calloc_fails = 1;
    strmap_slot *s = strmap_put(&m, 9 * 0x9e3779b97f4a7c15ULL, 0, 0, &ins);
    strmap_slot *n = strmap_put(&m, 999 * 0x9e3779b97f4a7c15ULL, 0, 0, &ins);
    calloc_fails = 0;
    assert_non_null(s); /* found: no memory needed */
    assert_null(n);     /* new: the table must grow and cannot */
    assert_int_equal(m.count, 32);
    assert_non_null(strmap_find(&m, 9 * 0x9e3779b97f4a7c15ULL));
    assert_null(strmap_find(&m, 999 * 0x9e3779b97f4a7c15ULL));
    strmap_free(&m);
}

static void test_many_keys(void **state)
{
    (void)state;
    strmap m = {0};
    int ins;
    for (uint64_t k = 1; k <= 5000; k++) {
        strmap_slot *s = strmap_put(&m, k, (uint32_t)k, 0, &ins);
        assert_non_null(s);
        assert_int_equal(ins, 1);
    }
    for (uint64_t k = 1; k <= 5000; k++) {
        const strmap_slot *s = strmap_find(&m, k);
        assert_non_null(s);
        assert_int_equal(s->v[0], (uint32_t)k);
    }
    assert_null(strmap_find(&m, 5001));
    assert_true(m.count * 2 <= m.cap);
    strmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_existing_key_does_not_grow),
        cmocka_unit_test(test_existing_key_without_memory),
        cmocka_unit_test(test_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
