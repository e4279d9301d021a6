/*
 * invariant.h -- EXH_ASSERT: invariant checks that stay in release builds.
 *
 * The evaluator answers a security question.  If the index it walks were
 * ever inconsistent (a list out of order, a count past its array, a rule
 * number out of range), carrying on would read out of bounds or, worse,
 * allow what the policy denies; stopping the process makes the broker
 * fail closed and leaves a core that points at the line.  So, as SQLite
 * does with its cheap checks, these are not compiled out by NDEBUG.
 *
 * Use EXH_ASSERT only where it costs a compare or two per request or per
 * rule built, never per candidate or per byte; put a check that would be
 * felt on the evaluation path in a plain assert() (debug builds only).
 */
#ifndef EXH_INVARIANT_H
#define EXH_INVARIANT_H

#include <assert.h>
#include <stdlib.h>

#ifdef NDEBUG
/* No message: the library does not print.  The failed check's text, file
 * and line are the arguments of exh_assert_fail, in the core's backtrace;
 * and since every call site passes different ones, the compiler cannot
 * merge them into one abort() that would point at the wrong check. */
#define EXH_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0)) exh_assert_fail(#cond, __FILE__, __LINE__);              \
    } while (0)
#else
#define EXH_ASSERT(cond) assert(cond)
#endif

_Noreturn void exh_assert_fail(const char *expr, const char *file, int line)
    __attribute__((cold, noinline));

#endif
