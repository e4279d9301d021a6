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

#define EXH_STORE_SCHEMA_VERSION 3

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

/*
 * Lock-outs: brute-force protection that every front end on the store
 * shares (a PostgreSQL store: every node; either: across restarts).
 * Failed logins are counted per key -- a user name ("user") and a peer
 * address ("addr", its text) -- and a key that reaches p->failures within
 * p->window_ms is locked: its logins are refused without a password check
 * until locked_until.  The first lock-out lasts p->backoff_ms, each next
 * one twice the last, at most p->backoff_max_ms; a key quiet (no failure)
 * for backoff_max_ms after its lock ended starts again from the first.
 *
 * Times are wall-clock milliseconds since the epoch given by the caller
 * (now_ms), because the rows are shared by processes and nodes: nodes
 * whose clocks disagree by a second see a lock-out end a second apart,
 * which NTP keeps well below the lengths that matter here.
 *
 * Keys are text: a user name of any bytes but NUL (len bytes; NULL: no
 * user key) and an address as exh_addr_format writes it (NULL: no address
 * key).  A name longer than EXH_LOCKOUT_NAME_MAX bytes is keyed by its
 * first bytes and a hash of the whole (PostgreSQL cannot index long keys);
 * PostgreSQL keeps a name that is not valid UTF-8 with each bad byte as
 * \xNN (as session history does).  Listings show the keys so.
 */
#define EXH_LOCKOUT_NAME_MAX 200

typedef struct exh_lockout_params {
    uint32_t failures;      /* failures that lock a key; 0: lock-outs off */
    int64_t window_ms;      /* failures further apart than this count afresh */
    int64_t backoff_ms;     /* the first lock-out's length */
    int64_t backoff_max_ms; /* the longest; also the quiet time that forgets strikes */
} exh_lockout_params;

/* One key's row, as a read or a failure left it. */
typedef struct exh_lockout_key {
    bool exists;          /* the store holds a row for the key */
    bool locked;          /* locked at now_ms */
    bool started;         /* exh_store_lockout_failed: this failure locked it */
    uint32_t failures;    /* counted in the current window */
    uint32_t strikes;     /* lock-outs in a row (the next one lasts longer) */
    int64_t locked_until; /* ms since the epoch; <= now_ms: not locked */
} exh_lockout_key;

typedef struct exh_lockout_state {
    exh_lockout_key user, addr;
} exh_lockout_state;

/* Both keys' rows in one read (one round trip on PostgreSQL): is either
 * locked, and is there a user row for a success to reset? */
exh_status exh_store_lockout_state(exh_store *s, const char *user, size_t user_len,
                                   const char *addr, int64_t now_ms, exh_lockout_state *out,
                                   exh_error *err);

/* Count one failed login for each key given, in one statement that is
 * atomic across processes and nodes (no count is lost to a race).  A key
 * locked at now_ms is left as it is: a refused login is never counted.
 * out (may be NULL): each key as left, started set for a key this failure
 * locked.  Every 256th call on a handle also deletes rows that mean
 * nothing any more (not locked, window and quiet time past), so names
 * that do not exist cannot grow the table without bound. */
exh_status exh_store_lockout_failed(exh_store *s, const char *user, size_t user_len,
                                    const char *addr, int64_t now_ms, const exh_lockout_params *p,
                                    exh_lockout_state *out, exh_error *err);

/* A login succeeded: the user's row goes (count and strikes). */
exh_status exh_store_lockout_reset_user(exh_store *s, const char *user, size_t user_len,
                                        exh_error *err);

/* A row as listed (strings valid during the call only). */
typedef struct exh_lockout {
    const char *kind; /* "user" or "addr" */
    const char *name;
    uint32_t failures, strikes;
    int64_t window_start, locked_until, last_failure; /* ms since the epoch */
} exh_lockout;
typedef int (*exh_lockout_fn)(const exh_lockout *l, void *arg);

/* The keys locked at now_ms (all: every row, counters too), by kind
 * ("addr" first) then name in byte order.  Return non-zero to stop. */
exh_status exh_store_lockouts(exh_store *s, bool all, int64_t now_ms, exh_lockout_fn fn, void *arg,
                              exh_error *err);

/* Delete the rows of name of kind "user" or "addr" (NULL: both kinds);
 * *cleared: how many. */
exh_status exh_store_lockout_clear(exh_store *s, const char *kind, const char *name,
                                   int64_t *cleared, exh_error *err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
