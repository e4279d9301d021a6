/*
 * batch.h -- one `exhookctl check --batch` request line (DESIGN §3).
 *
 *   {"action":"publish","username":"u","clientid":"c","peerhost":"1.2.3.4",
 *    "topic":"t","qos":0,"retain":false,"groups":["g"],"superuser":false,
 *    "password":"p"}
 *
 * Only "action" is required (and "topic" for publish and subscribe).
 * "username", "clientid" and "peerhost" may be null (absent); an absent
 * qos is 0 and an absent retain false, as DESIGN §2 says for `check`.
 *
 * The reader validates the request's shape, not its meaning: strings keep
 * their exact bytes, NUL included (the JSON may say \u0000), so a topic
 * with a NUL or invalid UTF-8 reaches the evaluator, which denies it with
 * its own reason.  Duplicate keys are refused: which of two "username"s
 * counts would be a guess.
 *
 * Passwords.  The parsed request owns copies of its strings and wipes them
 * all when freed, and the reader wipes the password inside jansson's
 * tree before freeing it.  jansson also copies every string through
 * short-lived buffers of its own while it parses; a caller that handles
 * real passwords should install wiping allocators with
 * json_set_alloc_funcs() before its first jansson call, as exhookctl does.
 * (The library does not: jansson's allocator is process-wide, and
 * swapping it under other jansson users would free their memory with the
 * wrong function.)
 */
#ifndef EXHOOK_BATCH_H
#define EXHOOK_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "exhook/error.h"
#include "exhook/eval.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* A request may name at most this many groups. */
#define EXH_BATCH_MAX_GROUPS 256

/*
 * A parsed request.  The library allocates it (exh_batch_parse) and frees
 * it (exh_batch_req_free); its strings and groups live in the same
 * allocation, with whatever bookkeeping that needs kept out of sight.  A
 * caller may read every field and repoint req.groups (to the store's
 * groups, say): freeing releases what the reader allocated, not whatever
 * req points at.
 */
typedef struct exh_batch_req {
    exh_request req;      /* the request to evaluate */
    const char *password; /* connect only; NULL when none was given */
    size_t password_len;
    bool groups_given;    /* "groups" was present: it replaces the store's groups */
    bool superuser_given; /* "superuser" was present: it replaces the store's flag */
} exh_batch_req;

/*
 * Parse one request: len bytes of JSON text (need not be NUL-terminated;
 * the caller strips the line ending and skips blank lines).
 *
 * EXH_OK: *out is the request; free it with exh_batch_req_free.
 * EXH_ESYNTAX: not JSON.  err->message is jansson's explanation, err->line
 * and err->col its 1-based position (line 1 unless text holds a newline);
 * a caller reading a stream adds its own line number.  The explanation
 * quotes the text near the error, which may be part of a password: wipe
 * err once it has been shown.
 * EXH_EINVAL: JSON, but not a valid request; err->message says why.
 * EXH_ENOMEM: out of memory.
 * On failure *out is NULL.
 */
exh_status exh_batch_parse(const char *text, size_t len, exh_batch_req **out, exh_error *err);

/* Wipe and free a parsed request and everything it owns.  NULL is fine. */
void exh_batch_req_free(exh_batch_req *b);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
