/*
 * format.h -- one canonical layout for policy files (`exhookctl fmt`).
 *
 * Each statement is rewritten with single spaces between its parts and
 * strings quoted one way; within a block of consecutive one-line rules the
 * effect, action, conditions and topics line up in columns.  A rule written
 * over several lines stays on two: the effect, action and conditions, then
 * (indented under the conditions) the topics and options.  Comments, blank
 * lines and the order of everything are kept; a trailing comment follows
 * its rule after two spaces.  Formatting only ever changes layout: the
 * formatted text compiles to the same rules, and formatting it again
 * changes nothing.
 */
#ifndef EXHOOK_FORMAT_H
#define EXHOOK_FORMAT_H

#include <stddef.h>

#include "exhook/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* Format policy text.  The text must compile (its error is returned if
 * not).  *out is malloc'd and NUL-terminated; free it. */
exh_status exh_format(const char *name, const char *text, size_t len, char **out, size_t *outlen,
                      exh_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
