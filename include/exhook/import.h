/*
 * import.h -- bringing existing users over from Mosquitto and EMQX so
 * their passwords keep working.
 *
 *   mosquitto-passwd  lines "user:hash" as written by mosquitto_passwd
 *                     ($7$ and $6$ hashes are kept as they are); blank
 *                     lines and lines starting with '#' are skipped
 *   emqx-csv          EMQX built-in database export: a header line naming
 *                     at least user_id and password_hash (optionally salt,
 *                     is_superuser), then one user a line
 *   emqx-json         the same as a JSON array of objects
 *
 * EMQX hashes are hex digests of salt and password; which digest and where
 * the salt goes is EMQX configuration, not data, so the caller says
 * (exh_import_opts).  A password_hash that is already a self-describing
 * string ($2b$..., $pbkdf2-...) is kept as it is.
 *
 * An import is one transaction: a bad record names its line and nothing of
 * the file is stored; a killed import leaves the store as it was.
 */
#ifndef EXHOOK_IMPORT_H
#define EXHOOK_IMPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "exhook/hash.h"
#include "exhook/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef enum exh_import_format {
    EXH_IMPORT_MOSQUITTO,
    EXH_IMPORT_EMQX_CSV,
    EXH_IMPORT_EMQX_JSON,
} exh_import_format;

/* "mosquitto-passwd", "emqx-csv", "emqx-json"; false if unknown. */
bool exh_import_format_parse(const char *name, exh_import_format *out);

typedef struct exh_import_opts {
    exh_hash_alg emqx_alg; /* EXH_HASH_EMQX_SHA256 (default) or EXH_HASH_EMQX_SHA512 */
    bool emqx_salt_prefix; /* true (default, EMQX's "prefix"): digest of salt+password */
    bool replace;          /* replace existing users instead of failing on them */
} exh_import_opts;

void exh_import_opts_default(exh_import_opts *o);

typedef struct exh_import_record {
    const char *name;
    const char *hash; /* a self-describing hash string (hash.h) */
    bool superuser;
    unsigned line; /* 1-based line (JSON: the line the object starts on) */
} exh_import_record;

/* Parse without touching a store: fn is called for each record in order;
 * return non-zero from fn to stop.  A malformed record fails with err
 * naming file:line. */
typedef int (*exh_import_fn)(const exh_import_record *rec, void *user);
exh_status exh_import_parse(exh_import_format fmt, const char *name, const char *text, size_t len,
                            const exh_import_opts *opts, exh_import_fn fn, void *user,
                            exh_error *err);

/* Called every 1000 records (and at the end) with the count so far. */
typedef void (*exh_import_progress_fn)(size_t done, void *user);

/* Import a file into the store in one transaction.  *imported gets the
 * number of users stored. */
exh_status exh_import_file(exh_store *s, exh_import_format fmt, const char *path,
                           const exh_import_opts *opts, exh_import_progress_fn progress, void *user,
                           size_t *imported, exh_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
