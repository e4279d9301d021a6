/*
 * store_int.h -- what the auth check needs from the store beyond its
 * public API.  Internal.
 */
#ifndef EXH_STORE_INT_H
#define EXH_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/store.h"

/* Should a login that verified against `hash` rehash the password? */
bool store_upgrade_wanted(const exh_store *s, const char *hash);

/* Hash a password with the store's configured cost. */
exh_status store_hash_new(const exh_store *s, const char *pw, size_t pwlen, char *out,
                          size_t outsize);

/* A hash of a random password at the store's cost, made once per
 * connection: an unknown user's password is verified against it, so a
 * login for a name that does not exist takes as long as a wrong password
 * (its timing does not tell which names exist).  NULL if it cannot be
 * made. */
const char *store_dummy_hash(exh_store *s);

/* Replace the hash only if the user is still at revision rev (so a
 * password changed meanwhile by exhookctl is never overwritten). */
exh_status store_set_hash_if(exh_store *s, int64_t id, int64_t rev, const char *hash);

/* Does location name a PostgreSQL database (a postgresql:// or
 * postgres:// URI) rather than an SQLite file?  Front ends ask, to skip
 * what only a file has (its existence, its mode). */
bool store_is_pg_uri(const char *location);

/* ---- exhookctl migrate and init --runtime-role (PostgreSQL only; any
 * other store is EXH_EINVAL) ---- */

bool store_is_pg(const exh_store *s);

/* How many users, and session rows (history and online), the store holds:
 * migrate copies only into an empty one. */
exh_status store_pg_count(exh_store *s, int64_t *users, int64_t *events, exh_error *err);

/* Insert u as it is: the same hash, flags, pattern, rev, created and
 * updated times, groups (its id is the new store's own).  Nothing is
 * checked or rehashed: u comes from another exhook store. */
exh_status store_pg_put_user(exh_store *s, const exh_user *u, exh_error *err);

/* Insert one history row, or (online) one online client. */
exh_status store_pg_put_session(exh_store *s, const exh_session_event *ev, bool online,
                                exh_error *err);

/* Grant role (which must exist) exactly what a front end needs: read
 * users, memberships and exhook_meta; write sessions and history. */
exh_status store_pg_grant_runtime(exh_store *s, const char *role, exh_error *err);

#endif
