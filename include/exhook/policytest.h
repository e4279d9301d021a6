/*
 * policytest.h -- reading policy test files (`*.test`, DESIGN §2).
 *
 *   expect <allow|deny|ignore> <publish|subscribe|connect> {attribute}
 *
 * Attributes: username "u", clientid "c", peerhost IP, group "g"
 * (repeatable), superuser, anonymous, topic "t", qos N|unknown,
 * retain [true|false|unknown], emqx, also emqx.
 * As in `exhookctl check`, an absent qos is 0 and an absent retain false;
 * an absent username means anonymous; an absent peerhost is unknown.
 *
 * EMQX's hooks carry no QoS or retain flag.  `emqx` states the request as
 * EMQX sends it (both unknown; no qos/retain on that line); `also emqx`
 * runs the expectation twice, as written and then as EMQX sends it, so one
 * line checks a decision that must hold on every front end.  Publish and
 * subscribe expectations only.
 */
#ifndef EXHOOK_POLICYTEST_H
#define EXHOOK_POLICYTEST_H

#include "exhook/error.h"
#include "exhook/eval.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define EXH_TEST_MAX_GROUPS 64

typedef struct exh_expectation {
    exh_decision expected;
    exh_request request; /* strings point into the parser: valid in the callback */
    exh_str groups[EXH_TEST_MAX_GROUPS];
    const char *file;
    unsigned line, col;
    bool emqx; /* this run is the request as EMQX sends it (qos, retain unknown) */
} exh_expectation;

/* Called once per expectation; return non-zero to stop early. */
typedef int (*exh_expectation_fn)(const exh_expectation *e, void *user);

/* Parse test-file text; calls fn for each expectation in order.  On a
 * malformed line returns EXH_ESYNTAX with err pointing at it (the
 * expectations before it have been delivered). */
exh_status exh_testfile_parse(const char *name, const char *text, size_t len, exh_expectation_fn fn,
                              void *user, exh_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
