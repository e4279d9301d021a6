/*
 * store_backend.h -- the credential store's backends (SQLite, PostgreSQL)
 * behind the one public API of exhook/store.h.  Internal.
 *
 * store.c owns everything both backends share: which backend a location
 * names, validation of names and patterns, hashing, the dummy hash,
 * upgrade decisions, transactions wrapped around multi-statement writes,
 * when to trim history.  A backend only moves rows: each operation below
 * is one statement or a few, run as told, with the same statuses on both
 * sides (EXH_ENOTFOUND for no such user, EXH_EEXIST for a duplicate,
 * EXH_ESTORE with the database's own message for anything else).
 */
#ifndef EXH_STORE_BACKEND_H
#define EXH_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/store.h"
#include "store_int.h"

typedef struct store_backend store_backend;

/* What every backend's store starts with: a backend's own struct embeds it
 * as its first member, so an exh_store * is also a pointer to that. */
struct exh_store {
    const store_backend *be;
    char *name; /* shown in errors: the path, or user@host:port/db (never a password) */
    exh_store_opts opts;
    int in_tx;
    uint64_t history_adds;
    uint64_t lockout_fails;        /* exh_store_lockout_failed calls: every 256th purges */
    char dummy_hash[EXH_HASH_MAX]; /* see store_dummy_hash */
};

struct store_backend {
    const char *kind; /* "SQLite", "PostgreSQL" */
    /* Open, create or migrate per o; *out is set only on success. */
    exh_status (*open)(const char *location, const exh_store_opts *o, exh_store **out,
                       exh_error *err);
    void (*close)(exh_store *s);
    int (*schema_version)(exh_store *s);
    exh_status (*data_version)(exh_store *s, int64_t *out, exh_error *err);
    exh_status (*begin)(exh_store *s, exh_error *err);
    exh_status (*commit)(exh_store *s, exh_error *err);
    void (*rollback)(exh_store *s);
    /* The user row and its groups (name order).  out is zeroed first. */
    exh_status (*get_user)(exh_store *s, const char *name, exh_user *out, exh_error *err);
    /* Every user name, in byte order; *names is malloc'd, each name too. */
    exh_status (*user_names)(exh_store *s, char ***names, size_t *n, exh_error *err);
    /* Insert the user (rev 1) and its memberships; names are validated. */
    exh_status (*insert_user)(exh_store *s, const exh_new_user *u, const char *hash,
                              exh_error *err);
    exh_status (*set_hash)(exh_store *s, const char *name, const char *hash, exh_error *err);
    exh_status (*del_user)(exh_store *s, const char *name, exh_error *err);
    exh_status (*set_flags)(exh_store *s, const char *name, int superuser, int disabled,
                            exh_error *err);
    exh_status (*set_pattern)(exh_store *s, const char *name, const char *pattern, exh_error *err);
    /* Add or remove a membership and bump the user's rev; EXH_ENOTFOUND
     * for no such user, or (remove) no such membership. */
    exh_status (*membership)(exh_store *s, const char *name, const char *group, bool add,
                             exh_error *err);
    exh_status (*list_groups)(exh_store *s, exh_group_fn fn, void *user, exh_error *err);
    /* The session row and a history row; trim: also cut the history to
     * opts.history_max rows. */
    exh_status (*record_session)(exh_store *s, const exh_session_event *ev, bool trim,
                                 exh_error *err);
    exh_status (*list_sessions)(exh_store *s, bool online, exh_session_fn fn, void *user,
                                exh_error *err);
    /* store_int.h's store_set_hash_if. */
    exh_status (*set_hash_if)(exh_store *s, int64_t id, int64_t rev, const char *hash);
    /* Change notices (store.h: exh_store_listen); NULL: the backend has
     * none (SQLite). */
    exh_status (*listen)(exh_store *s, exh_error *err);
    int (*notice_fd)(const exh_store *s);
    exh_status (*notices)(exh_store *s, exh_notice_fn fn, void *arg, exh_error *err);
    /* Lock-outs (store.h).  Keys as store.c made them: NUL-terminated
     * text, NULL for a key not given. */
    exh_status (*lockout_state)(exh_store *s, const char *user, const char *addr, int64_t now,
                                exh_lockout_state *out, exh_error *err);
    /* LOCKOUT_SET below, for each key given; out as store.h says (zeroed
     * by the caller). */
    exh_status (*lockout_failed)(exh_store *s, const char *user, const char *addr, int64_t now,
                                 const exh_lockout_params *p, exh_lockout_state *out,
                                 exh_error *err);
    /* Delete the rows that mean nothing at now: not locked, their window
     * and their quiet time (backoff_max) past. */
    exh_status (*lockout_purge)(exh_store *s, int64_t now, const exh_lockout_params *p,
                                exh_error *err);
    /* Delete name's rows of kind (NULL: both kinds); *n: how many. */
    exh_status (*lockout_delete)(exh_store *s, const char *kind, const char *name, int64_t *n,
                                 exh_error *err);
    exh_status (*lockout_list)(exh_store *s, bool all, int64_t now, exh_lockout_fn fn, void *arg,
                               exh_error *err);
};

/*
 * What one failed login at NOW does to an existing lock-out row (store.h),
 * as the SET and WHERE of both backends' INSERT ... ON CONFLICT (kind,
 * name) DO UPDATE: one statement, so concurrent failures on two nodes are
 * both counted (the second waits for the first's row lock, then reads the
 * row as the first left it).  The SET expressions read the old row in
 * SQLite and PostgreSQL alike, so each is written from it alone: CASE
 * rather than max()/GREATEST (spelt differently by the two), a shift for
 * the doubling.  The arguments are the backend's placeholders (typed, for
 * PostgreSQL) for now, the failures that lock (N), window, backoff and
 * backoff_max.
 *
 * A row locked at NOW is not touched (the WHERE): a refused login is no
 * failure.  Otherwise: strikes are forgotten after a quiet time (no
 * failure for backoff_max since the later of the last failure and the end
 * of the last lock-out); the count restarts when the window since its
 * first failure has passed; the failure is counted; reaching N makes a
 * strike, locks for backoff << (strikes - 1) (at most backoff_max; the
 * shift is capped at 30, which with a backoff under 2^32 ms stays far
 * inside 64 bits) and starts the count again.
 */
/* clang-format off: one SQL clause a line */
#define LOCKOUT_LAST_EVENT                                                                         \
    "(CASE WHEN lockouts.locked_until > lockouts.last_failure THEN lockouts.locked_until "         \
    "ELSE lockouts.last_failure END)"
#define LOCKOUT_STRIKES(NOW, MAX)                                                                  \
    "(CASE WHEN " NOW " - " LOCKOUT_LAST_EVENT " > " MAX " THEN 0 ELSE lockouts.strikes END)"
#define LOCKOUT_EXPIRED(NOW, WIN) "(" NOW " - lockouts.window_start > " WIN ")"
#define LOCKOUT_COUNT(NOW, WIN)                                                                    \
    "(CASE WHEN " LOCKOUT_EXPIRED(NOW, WIN) " THEN 1 ELSE lockouts.failures + 1 END)"
#define LOCKOUT_LOCKS(NOW, N, WIN) "(" LOCKOUT_COUNT(NOW, WIN) " >= " N ")"
#define LOCKOUT_SHIFT(NOW, MAX)                                                                    \
    "(CASE WHEN " LOCKOUT_STRIKES(NOW, MAX) " > 30 THEN 30 "                                       \
                                            "ELSE " LOCKOUT_STRIKES(NOW, MAX) " END)"
#define LOCKOUT_LENGTH(NOW, BO, MAX)                                                               \
    "(CASE WHEN (" BO " << " LOCKOUT_SHIFT(NOW, MAX) ") > " MAX " THEN " MAX " "                   \
                                                     "ELSE (" BO                                   \
                                                     " << " LOCKOUT_SHIFT(NOW, MAX) ") END)"
#define LOCKOUT_SET(NOW, N, WIN, BO, MAX)                                                                                        \
    "failures = CASE WHEN " LOCKOUT_LOCKS(                                                                                       \
        NOW, N,                                                                                                                  \
        WIN) " THEN 0 "                                                                                                          \
             "ELSE " LOCKOUT_COUNT(                                                                                              \
                 NOW,                                                                                                            \
                 WIN) " END, "                                                                                                   \
                      "window_start = CASE WHEN " LOCKOUT_LOCKS(                                                                 \
                          NOW, N,                                                                                                \
                          WIN) " OR " LOCKOUT_EXPIRED(NOW,                                                                       \
                                                      WIN) " THEN " NOW                                                          \
                                                           " ELSE lockouts.window_start END, "                                   \
                                                           "strikes = " LOCKOUT_STRIKES(NOW, MAX) " + CASE WHEN " LOCKOUT_LOCKS( \
                                                               NOW, N,                                                           \
                                                               WIN) " THEN 1 ELSE 0 END, "                                       \
                                                                    "locked_until = CASE "                                       \
                                                                    "WHEN " LOCKOUT_LOCKS(                                       \
                                                                        NOW, N,                                                  \
                                                                        WIN) " THEN " NOW                                        \
                                                                             " + " LOCKOUT_LENGTH(                               \
                                                                                 NOW, BO,                                        \
                                                                                 MAX) " ELSE "                                   \
                                                                                      "lockouts."                                \
                                                                                      "locked_"                                  \
                                                                                      "until "                                   \
                                                                                      "END, "                                    \
                                                                                      "last_"                                    \
                                                                                      "failure "                                 \
                                                                                      "= " NOW " "                               \
                                                                                      "WHERE "                                   \
                                                                                      "lockouts."                                \
                                                                                      "locked_"                                  \
                                                                                      "until "                                   \
                                                                                      "<= " NOW
/* Rows that mean nothing at NOW (lockout_purge), as a WHERE. */
#define LOCKOUT_STALE(NOW, WIN, MAX)                                                               \
    "lockouts.locked_until <= " NOW                                                                \
    " AND " LOCKOUT_EXPIRED(NOW, WIN) " "                                                          \
                                      "AND " NOW " - " LOCKOUT_LAST_EVENT " > " MAX
/* clang-format on */

extern const store_backend store_sqlite;
extern const store_backend store_pg;

/* Fill the common part of a freshly allocated store (name copied). */
exh_status store_base_init(exh_store *s, const store_backend *be, const char *name,
                           const exh_store_opts *o, exh_error *err);
/* Free what store_base_init allocated (not s itself). */
void store_base_free(exh_store *s);

/* An error about store s (its name as the error's file; s may be NULL). */
exh_status store_fail(const exh_store *s, exh_error *err, exh_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int64_t store_now(void);

/* store_pg.c's part of exh_store_display_name and exh_store_location_has_password. */
bool store_pg_display_name(const char *uri, char *out, size_t n);
bool store_pg_has_password(const char *uri);

#endif
