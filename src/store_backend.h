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
};

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
