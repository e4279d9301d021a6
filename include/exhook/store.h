/*
 * store.h -- the credential store: users, groups, sessions, in SQLite or,
 * for clusters, in PostgreSQL.
 *
 * The location given to exh_store_open picks the backend: a libpq URI
 * (postgresql://... or postgres://...) is a PostgreSQL database, anything
 * else an SQLite file.  Both behave the same through this API: same
 * schema version, same statuses and error reasons, same listing order
 * (byte order of names).
 *
 * One exh_store is one connection: use one per thread (the driver gives
 * each worker its own).  SQLite: the file is opened in WAL mode with a
 * busy timeout, so the CLI and a running driver share it safely: readers
 * are never blocked and writers wait their turn instead of failing.  The
 * schema version lives in PRAGMA user_version and is migrated forward on
 * open.  A database file the store creates is mode 0600.
 *
 * PostgreSQL: the database must exist; the store is its tables in the
 * connection's current schema (search_path), created or migrated on open
 * when opts.create allows (without them, and without create, the open
 * fails with EXH_EIO, as for a missing file).  busy_timeout_ms bounds the
 * connection and every statement.  Errors name the store as
 * postgresql://user@host:port/db, never with a password; give one in
 * PGPASSFILE rather than in the URI.
 */
#ifndef EXHOOK_STORE_H
#define EXHOOK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/error.h"
#include "exhook/hash.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define EXH_STORE_SCHEMA_VERSION 2

typedef struct exh_store exh_store;

typedef struct exh_store_opts {
    int busy_timeout_ms;   /* default 5000 */
    bool create;           /* create the file if missing (else EXH_EIO) */
    bool readonly;         /* open read-only (no migration: an old schema is an error) */
    exh_hash_params hash;  /* cost of new hashes; default exh_hash_params_default */
    bool upgrade_on_login; /* rehash weaker hashes after a good login (default true) */
    uint32_t history_max;  /* session history rows kept (default 100000) */
    uint32_t cache_kib;    /* SQLite page cache per connection, KiB (default 2048) */
} exh_store_opts;

void exh_store_opts_default(exh_store_opts *o);

/* Open (and create/migrate) the store.  Errors name the file and why. */
exh_status exh_store_open(const char *path, const exh_store_opts *opts, exh_store **out,
                          exh_error *err);
void exh_store_close(exh_store *s);

/* The store's location as it may be shown (logs, messages): a PostgreSQL
 * URI without its password (postgresql://user@host:port/db), a SQLite
 * path as it is. */
void exh_store_display_name(const char *location, char *out, size_t n);

/* Whether location is a PostgreSQL URI holding a password (or one that
 * cannot be read well enough to tell): a front end warns, since every
 * local user can read a command line. */
bool exh_store_location_has_password(const char *location);

/* Whether location names a PostgreSQL database (a postgresql:// or
 * postgres:// URI) rather than an SQLite file.  A PostgreSQL store whose
 * call failed may have lost its connection (the server restarted, the
 * network cut, no answer in busy_timeout): close it and open it again. */
bool exh_store_location_is_pg(const char *location);

/* The schema version of the open database. */
int exh_store_schema_version(exh_store *s);

/* A number that changes whenever another connection (exhookctl, another
 * front end) has committed a change to the store since this one last
 * looked: a cheap way to know when to look again.  Its value means nothing
 * else, and is only comparable between calls on one exh_store.
 * SQLite: PRAGMA data_version; this connection's own writes do not change
 * it.  PostgreSQL: a counter the schema keeps (triggers bump it on every
 * write to users or memberships, by any node); this connection's own
 * writes to users and groups change it too (one needless look), session
 * records do not. */
exh_status exh_store_data_version(exh_store *s, int64_t *out, exh_error *err);

/* Change notices, for a front end that keeps its verified logins current
 * across a cluster.  exh_store_listen makes this connection a listener:
 * from then on the name of every user added, changed (password, flags,
 * clientid pattern, groups) or deleted -- by any process on any node --
 * arrives as its transaction commits.  Keep the connection for that alone.
 * PostgreSQL only (LISTEN/NOTIFY); an SQLite store has no such channel
 * (exh_store_has_notices false; exh_store_listen answers EXH_EINVAL):
 * poll exh_store_data_version there.
 * exh_store_notice_fd: the socket to wait on; when it is readable, call
 * exh_store_notices, which calls fn once per notice that has arrived
 * (a name "" means every user: the table was emptied, or a name too long
 * for a notice) and never waits.  EXH_ESTORE when the connection is lost:
 * notices sent while it is down are lost, so after listening again treat
 * every user as changed. */
typedef void (*exh_notice_fn)(const char *name, void *arg);
bool exh_store_has_notices(const exh_store *s);
exh_status exh_store_listen(exh_store *s, exh_error *err);
int exh_store_notice_fd(const exh_store *s);
exh_status exh_store_notices(exh_store *s, exh_notice_fn fn, void *arg, exh_error *err);

/* A user as stored.  Strings are owned by the struct: exh_user_clear. */
typedef struct exh_user {
    int64_t id;
    int64_t rev; /* bumped on every change to the user or its groups */
    char *name;
    char *hash; /* the stored hash string */
    bool superuser;
    bool disabled;
    char *clientid_pattern;   /* NULL: any client id */
    int64_t created, updated; /* unix seconds */
    char **groups;
    size_t ngroups;
} exh_user;

void exh_user_clear(exh_user *u);

/* Not found is EXH_ENOTFOUND; a name that exists on add is EXH_EEXIST. */
exh_status exh_store_get_user(exh_store *s, const char *name, exh_user *out, exh_error *err);

typedef struct exh_new_user {
    const char *name;
    const char *password; /* hashed with argon2id; or NULL and ... */
    size_t password_len;
    const char *hash; /* ... a ready hash string (imports) */
    bool superuser;
    const char *clientid_pattern; /* NULL: any; must compile as a PCRE2 regex */
    const char *const *groups;
    size_t ngroups;
} exh_new_user;

exh_status exh_store_add_user(exh_store *s, const exh_new_user *u, exh_error *err);
exh_status exh_store_set_password(exh_store *s, const char *name, const char *pw, size_t pwlen,
                                  exh_error *err);
exh_status exh_store_set_hash(exh_store *s, const char *name, const char *hash, exh_error *err);
exh_status exh_store_del_user(exh_store *s, const char *name, exh_error *err);
/* flag < 0: leave as is. */
exh_status exh_store_set_flags(exh_store *s, const char *name, int superuser, int disabled,
                               exh_error *err);
/* pattern NULL clears it. */
exh_status exh_store_set_clientid_pattern(exh_store *s, const char *name, const char *pattern,
                                          exh_error *err);
exh_status exh_store_add_to_group(exh_store *s, const char *name, const char *group,
                                  exh_error *err);
exh_status exh_store_del_from_group(exh_store *s, const char *name, const char *group,
                                    exh_error *err);

/* Visit every user in name order (groups filled).  Return non-zero to stop. */
typedef int (*exh_user_fn)(const exh_user *u, void *user);
exh_status exh_store_list_users(exh_store *s, exh_user_fn fn, void *user, exh_error *err);

/* Groups that have at least one member, with their member counts. */
typedef int (*exh_group_fn)(const char *group, int64_t members, void *user);
exh_status exh_store_list_groups(exh_store *s, exh_group_fn fn, void *user, exh_error *err);

/* Transactions, for imports: everything between begin and commit lands
 * together or not at all (a killed process leaves the store as it was). */
exh_status exh_store_begin(exh_store *s, exh_error *err);
exh_status exh_store_commit(exh_store *s, exh_error *err);
void exh_store_rollback(exh_store *s);

/* Sessions: online clients and a bounded connect/disconnect history. */
typedef struct exh_session_event {
    const char *clientid;
    const char *username; /* NULL: anonymous */
    const char *peerhost; /* text, may be NULL */
    const char *node;     /* broker node, may be NULL */
    const char *reason;   /* disconnect reason, may be NULL */
    int64_t at;           /* unix seconds */
    bool connected;       /* true: connect, false: disconnect */
} exh_session_event;

exh_status exh_store_record_session(exh_store *s, const exh_session_event *ev, exh_error *err);
typedef int (*exh_session_fn)(const exh_session_event *ev, void *user);
/* online: the clients currently connected; else the history, newest first. */
exh_status exh_store_list_sessions(exh_store *s, bool online, exh_session_fn fn, void *user,
                                   exh_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
