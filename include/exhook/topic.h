/*
 * topic.h -- MQTT topic names and filters (MQTT 3.1.1 / 5.0, section 4.7).
 *
 * Plain-string validation, matching and subset tests.  The policy
 * evaluator has its own compiled matcher (placeholders, indexed levels);
 * these functions are the reference it is tested against, and the
 * building blocks of validation and lint.  All inputs are (pointer,
 * length) pairs and may hold any bytes, NUL included.
 */
#ifndef EXHOOK_TOPIC_H
#define EXHOOK_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define EXH_TOPIC_MAX 65535

typedef enum exh_topic_status {
    EXH_TOPIC_OK = 0,
    EXH_TOPIC_EMPTY,         /* zero length */
    EXH_TOPIC_TOO_LONG,      /* over 65535 bytes */
    EXH_TOPIC_NUL,           /* holds a NUL byte */
    EXH_TOPIC_BAD_UTF8,      /* not well-formed UTF-8 (incl. overlongs, surrogates) */
    EXH_TOPIC_WILDCARD_NAME, /* a topic name (publish) holds '+' or '#' */
    EXH_TOPIC_BAD_WILDCARD,  /* '+' or '#' not alone in its level, or '#' not last */
    EXH_TOPIC_BAD_SHARE,     /* "$share/" without a group and a filter */
} exh_topic_status;

/* A human-readable reason, e.g. "topic holds a NUL byte". */
const char *exh_topic_status_str(exh_topic_status st);

/* Validate a topic name (what a client publishes to). */
exh_topic_status exh_topic_check_name(const char *t, size_t len);

/* Validate a topic filter (what a client subscribes to), after any
 * $share/$queue prefix has been removed. */
exh_topic_status exh_topic_check_filter(const char *t, size_t len);

/*
 * Strip "$share/<group>/" or "$queue/" from a subscription.  Returns the
 * start of the real filter and stores its length; returns t unchanged when
 * there is no such prefix.  "$share/g" or "$share//f" (no group or no
 * filter) yields NULL: the subscription is invalid.
 */
const char *exh_topic_strip_share(const char *t, size_t len, size_t *out_len);

/* The same, with "$queue/" a prefix only when queue_prefix is true (EMQX's
 * shared subscriptions; on Mosquitto it is an ordinary first level). */
const char *exh_topic_strip_prefix(const char *t, size_t len, bool queue_prefix, size_t *out_len);

/* Does the topic name match the filter by MQTT rules?  A filter whose first
 * level is '+' or '#' never matches a name starting with '$'.  Inputs are
 * assumed valid (check them first). */
bool exh_topic_match(const char *filter, size_t flen, const char *name, size_t nlen);

/* Is every topic that filter s can match also matched by filter f
 * (s is a subset of f)?  a/+ <= a/#, a/# !<= a/+, # !<= a/#, $SYS/# !<= #. */
bool exh_topic_subset(const char *s, size_t slen, const char *f, size_t flen);

/* Is there a topic name that both filters match (s and f overlap)?  A
 * deny rule refuses a subscription it overlaps: a broker cannot grant part
 * of a subscription, so `deny subscribe topic "a/private/#"` must refuse
 * `a/#` as well as `a/private/x`. */
bool exh_topic_overlap(const char *s, size_t slen, const char *f, size_t flen);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
