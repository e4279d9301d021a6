/*
 * store_sqlite.c -- the credential store's SQLite backend (DESIGN §4).
 *
 * Every statement is prepared once per connection and reused; every write
 * that touches more than one row runs in a transaction; a change to a user
 * (password, flags, pattern, groups) bumps its `rev`, which the auth cache
 * compares so it never serves a stale user.
 */
#include "exhook/store.h"
#include "store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error_int.h"

enum {
    ST_GET_USER,
    ST_GET_GROUPS,
    ST_INSERT_USER,
    ST_ADD_MEMBER,
    ST_DEL_MEMBER,
    ST_SET_HASH,
    ST_DEL_USER,
    ST_SET_FLAGS,
    ST_SET_PATTERN,
    ST_BUMP,
    ST_LIST_USERS,
    ST_LIST_GROUPS,
    ST_SESSION_ON,
    ST_SESSION_OFF,
    ST_HISTORY_ADD,
    ST_HISTORY_TRIM,
    ST_LIST_ONLINE,
    ST_LIST_HISTORY,
    ST_SET_HASH_IF,
    ST_LOCKOUT_STATE,
    ST_LOCKOUT_FAILED,
    ST_LOCKOUT_PURGE,
    ST_LOCKOUT_DELETE,
    ST_LOCKOUT_LIST,
    ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
    [ST_GET_USER] = "SELECT id, rev, name, hash, superuser, disabled, clientid_pattern, created, "
                    "updated FROM users WHERE name = ?1",
    [ST_GET_GROUPS] = "SELECT grp FROM memberships WHERE user_id = ?1 ORDER BY grp",
    [ST_INSERT_USER] = "INSERT INTO users(name, hash, superuser, disabled, clientid_pattern, rev, "
                       "created, updated) VALUES (?1, ?2, ?3, 0, ?4, 1, ?5, ?5)",
    [ST_ADD_MEMBER] = "INSERT OR IGNORE INTO memberships(user_id, grp) "
                      "SELECT id, ?2 FROM users WHERE name = ?1",
    [ST_DEL_MEMBER] = "DELETE FROM memberships WHERE grp = ?2 AND user_id = "
                      "(SELECT id FROM users WHERE name = ?1)",
    [ST_SET_HASH] = "UPDATE users SET hash = ?2, rev = rev + 1, updated = ?3 WHERE name = ?1",
    [ST_DEL_USER] = "DELETE FROM users WHERE name = ?1",
    [ST_SET_FLAGS] = "UPDATE users SET superuser = coalesce(?2, superuser), disabled = "
                     "coalesce(?3, disabled), rev = rev + 1, updated = ?4 WHERE name = ?1",
    [ST_SET_PATTERN] = "UPDATE users SET clientid_pattern = ?2, rev = rev + 1, updated = ?3 "
                       "WHERE name = ?1",
    [ST_BUMP] = "UPDATE users SET rev = rev + 1, updated = ?2 WHERE name = ?1",
    [ST_LIST_USERS] = "SELECT name FROM users ORDER BY name",
    [ST_LIST_GROUPS] = "SELECT grp, count(*) FROM memberships GROUP BY grp ORDER BY grp",
    [ST_SESSION_ON] = "INSERT OR REPLACE INTO sessions(clientid, username, peerhost, node, "
                      "connected_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_SESSION_OFF] = "DELETE FROM sessions WHERE clientid = ?1",
    [ST_HISTORY_ADD] = "INSERT INTO history(at, event, clientid, username, peerhost, node, "
                       "reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_HISTORY_TRIM] = "DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?1",
    [ST_LIST_ONLINE] = "SELECT clientid, username, peerhost, node, connected_at FROM sessions "
                       "ORDER BY connected_at DESC, clientid",
    [ST_SET_HASH_IF] = "UPDATE users SET hash = ?3, rev = rev + 1, updated = ?4 "
                       "WHERE id = ?1 AND rev = ?2",
    [ST_LIST_HISTORY] = "SELECT clientid, username, peerhost, node, reason, at, event FROM "
                        "history ORDER BY id DESC",
    [ST_LOCKOUT_STATE] = "SELECT kind, failures, strikes, locked_until FROM lockouts "
                         "WHERE (kind = 'user' AND name = ?1) OR (kind = 'addr' AND name = ?2)",
    /* ?1 user, ?2 address (NULL: not given), ?3 now, ?4 N, ?5 window,
     * ?6 backoff, ?7 backoff_max; ?8..?10 a new row's failures, strikes
     * and locked_until (store_backend.h: LOCKOUT_SET for an old one).  The
     * SELECT needs its WHERE: without one SQLite would read ON CONFLICT
     * as a join's ON. */
    [ST_LOCKOUT_FAILED] =
        "INSERT INTO lockouts(kind, name, failures, window_start, strikes, "
        "locked_until, last_failure) SELECT column1, column2, ?8, ?3, ?9, ?10, ?3 "
        "FROM (VALUES ('user', ?1), ('addr', ?2)) WHERE column2 IS NOT NULL "
        "ON CONFLICT (kind, name) DO UPDATE SET " LOCKOUT_SET(
            "?3", "?4", "?5", "?6", "?7") " RETURNING kind, failures, strikes, "
                                          "locked_until",
    [ST_LOCKOUT_PURGE] = "DELETE FROM lockouts WHERE " LOCKOUT_STALE("?1", "?2", "?3"),
    [ST_LOCKOUT_DELETE] = "DELETE FROM lockouts WHERE name = ?2 AND (?1 IS NULL OR kind = ?1)",
    [ST_LOCKOUT_LIST] = "SELECT kind, name, failures, strikes, window_start, locked_until, "
                        "last_failure FROM lockouts WHERE ?1 OR locked_until > ?2 "
                        "ORDER BY kind, name",
};

/* Schema migrations: entry k takes the schema from version k to k + 1. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  hash TEXT NOT NULL,"
    "  superuser INTEGER NOT NULL DEFAULT 0,"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  clientid_pattern TEXT,"
    "  rev INTEGER NOT NULL DEFAULT 1,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE memberships ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  grp TEXT NOT NULL,"
    "  PRIMARY KEY (user_id, grp)) WITHOUT ROWID;"
    "CREATE INDEX memberships_grp ON memberships(grp);"
    "CREATE TABLE sessions ("
    "  clientid TEXT PRIMARY KEY,"
    "  username TEXT, peerhost TEXT, node TEXT,"
    "  connected_at INTEGER NOT NULL);"
    "CREATE TABLE history ("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  event TEXT NOT NULL CHECK (event IN ('connect', 'disconnect')),"
    "  clientid TEXT NOT NULL,"
    "  username TEXT, peerhost TEXT, node TEXT, reason TEXT);",
    /* 1 -> 2: PostgreSQL's change notices; an SQLite file has none (the
     * version is one number for both backends). */
    "SELECT 1;",
    /* 2 -> 3: lock-outs (store.h), times in ms since the epoch. */
    "CREATE TABLE lockouts ("
    "  kind TEXT NOT NULL CHECK (kind IN ('user', 'addr')),"
    "  name TEXT NOT NULL,"
    "  failures INTEGER NOT NULL,"
    "  window_start INTEGER NOT NULL,"
    "  strikes INTEGER NOT NULL,"
    "  locked_until INTEGER NOT NULL,"
    "  last_failure INTEGER NOT NULL,"
    "  PRIMARY KEY (kind, name)) WITHOUT ROWID;",
};

typedef struct sq_store {
    exh_store base; /* first: an exh_store * is an sq_store * */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
} sq_store;

static sq_store *SQ(exh_store *b)
{
    return (sq_store *)b;
}

/* The operating system's reason behind an I/O failure, where SQLite says
 * only "unable to open database file".  SQLite's own last errno is often
 * that of a later fallback attempt (ENOENT for a -wal file), so for an
 * open failure the directory is asked directly: a WAL store must create
 * its -shm and -wal files beside the database, even just to be read. */
static const char *os_reason(sq_store *s, char *buf, size_t n)
{
    int code = sqlite3_errcode(s->db) & 0xff;
    if (code == SQLITE_CANTOPEN || code == SQLITE_READONLY) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", s->base.name ? s->base.name : ".");
        char *slash = strrchr(dir, '/');
        if (slash)
            slash == dir ? (void)(dir[1] = '\0') : (void)(*slash = '\0');
        else
            snprintf(dir, sizeof(dir), ".");
        if (access(dir, W_OK) != 0) {
            snprintf(buf, n, "directory %s is not writable: %s", dir, strerror(errno));
            return buf;
        }
    }
    int e = sqlite3_system_errno(s->db);
    if (e && (code == SQLITE_IOERR || code == SQLITE_FULL)) return strerror(e);
    return NULL;
}

/* An SQLite failure as an error value: what we were doing and SQLite's
 * own message (which names the constraint, the lock, the corruption). */
static exh_status db_fail(sq_store *s, exh_error *err, const char *doing)
{
    char buf[4200];
    const char *os = os_reason(s, buf, sizeof(buf));
    return store_fail(&s->base, err, EXH_ESTORE, "%s: %s%s%s%s", doing, sqlite3_errmsg(s->db),
                      os ? " (" : "", os ? os : "", os ? ")" : "");
}

static sqlite3_stmt *stmt(sq_store *s, int which, exh_error *err)
{
    if (!s->st[which] && sqlite3_prepare_v3(s->db, sql_text[which], -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->st[which], NULL) != SQLITE_OK) {
        db_fail(s, err, "preparing a statement");
        return NULL;
    }
    sqlite3_reset(s->st[which]);
    sqlite3_clear_bindings(s->st[which]);
    return s->st[which];
}

static exh_status exec(sq_store *s, const char *sql, exh_error *err, const char *doing)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        char buf[4200];
        const char *os = os_reason(s, buf, sizeof(buf));
        exh_status st =
            store_fail(&s->base, err, EXH_ESTORE, "%s: %s%s%s%s", doing,
                       msg ? msg : "unknown error", os ? " (" : "", os ? os : "", os ? ")" : "");
        sqlite3_free(msg);
        return st;
    }
    return EXH_OK;
}

static int pragma_int(sq_store *s, const char *sql, int *out)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int sq_schema_version(exh_store *b)
{
    sq_store *s = SQ(b);
    int v = -1;
    pragma_int(s, "PRAGMA user_version", &v);
    return v;
}

static exh_status sq_data_version(exh_store *b, int64_t *out, exh_error *err)
{
    sq_store *s = SQ(b);
    /* SQLite's own counter: it changes when another connection commits,
     * and costs no read of the database. */
    int v = 0;
    if (pragma_int(s, "PRAGMA data_version", &v)) return db_fail(s, err, "reading data_version");
    *out = v;
    return EXH_OK;
}

/* Bring the schema to EXH_STORE_SCHEMA_VERSION, one step per transaction. */
static exh_status migrate(sq_store *s, exh_error *err)
{
    int v = sq_schema_version(&s->base);
    if (v < 0) return db_fail(s, err, "reading the schema version");
    if (v > EXH_STORE_SCHEMA_VERSION)
        return store_fail(&s->base, err, EXH_ESTORE,
                          "database schema version %d is newer than this exhook understands (%d)",
                          v, EXH_STORE_SCHEMA_VERSION);
    if (v == 0) {
        int tables = 0;
        if (pragma_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", &tables))
            return db_fail(s, err, "reading the schema");
        if (tables)
            return store_fail(
                &s->base, err, EXH_ESTORE,
                "not an exhook database (it has tables but no exhook schema version)");
    }
    if (v < EXH_STORE_SCHEMA_VERSION && s->base.opts.readonly)
        return store_fail(&s->base, err, EXH_ESTORE,
                          "database schema version %d needs migrating; run 'exhookctl init'", v);
    for (; v < EXH_STORE_SCHEMA_VERSION; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        exh_status st = exec(s, "BEGIN IMMEDIATE", err, "starting the migration");
        if (!st) st = exec(s, migrations[v], err, "migrating the schema");
        if (!st) st = exec(s, bump, err, "recording the schema version");
        if (!st) st = exec(s, "COMMIT", err, "committing the migration");
        if (st) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return st;
        }
    }
    return EXH_OK;
}

static void sq_close(exh_store *b);

static exh_status sq_open(const char *path, const exh_store_opts *opts, exh_store **out,
                          exh_error *err)
{
    sq_store *s = calloc(1, sizeof(*s));
    if (!s) return exh_error_nomem(err);
    exh_status st = store_base_init(&s->base, &store_sqlite, path, opts, err);
    if (st) {
        free(s);
        return st;
    }
    /* Create the file ourselves so it is born 0600 (SQLite would use the
     * umask); its -wal and -shm files inherit the database's mode. */
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT || !s->base.opts.create || s->base.opts.readonly) {
            st = store_fail(&s->base, err, EXH_EIO, "cannot open the credential store: %s",
                            strerror(errno));
            goto out;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            st = store_fail(&s->base, err, EXH_EIO, "cannot create the credential store: %s",
                            strerror(errno));
            goto out;
        }
        if (fd >= 0) close(fd);
    }
    int flags = (s->base.opts.readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        st = s->db ? db_fail(s, err, "cannot open the credential store")
                   : store_fail(&s->base, err, EXH_ENOMEM, "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, s->base.opts.busy_timeout_ms);
    /* WAL: readers never wait for the writer; NORMAL sync is durable
     * across process crashes, which is what a killed import needs. */
    if (!s->base.opts.readonly &&
        ((st = exec(s, "PRAGMA journal_mode = WAL", err, "enabling WAL")) ||
         (st = exec(s, "PRAGMA synchronous = NORMAL", err, "setting synchronous"))))
        goto out;
    if ((st = exec(s, "PRAGMA foreign_keys = ON", err, "enabling foreign keys"))) goto out;
    if (s->base.opts.cache_kib) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA cache_size = -%u", s->base.opts.cache_kib);
        if ((st = exec(s, pragma, err, "sizing the page cache"))) goto out;
    }
    /* Corruption shows here as "file is not a database". */
    if ((st = migrate(s, err))) goto out;
out:
    if (st) {
        sq_close(&s->base);
        return st;
    }
    *out = &s->base;
    return EXH_OK;
}

static void sq_close(exh_store *b)
{
    sq_store *s = SQ(b);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    store_base_free(&s->base);
    free(s);
}

static char *col_dup(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? strdup((const char *)t) : NULL;
}

static exh_status load_groups(sq_store *s, exh_user *u, exh_error *err)
{
    sqlite3_stmt *q = stmt(s, ST_GET_GROUPS, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_int64(q, 1, u->id);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char **ng = realloc(u->groups, (u->ngroups + 1) * sizeof(*ng));
        if (!ng || !(ng[u->ngroups] = col_dup(q, 0))) {
            if (ng) u->groups = ng;
            sqlite3_reset(q);
            return store_fail(&s->base, err, EXH_ENOMEM, "out of memory");
        }
        u->groups = ng;
        u->ngroups++;
    }
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? EXH_OK : db_fail(s, err, "reading group memberships");
}

static exh_status sq_get_user(exh_store *b, const char *name, exh_user *out, exh_error *err)
{
    sq_store *s = SQ(b);
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *q = stmt(s, ST_GET_USER, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(q);
        return store_fail(&s->base, err, EXH_ENOTFOUND, "no user '%s'", name);
    }
    if (rc != SQLITE_ROW) {
        exh_status st = db_fail(s, err, "reading a user");
        sqlite3_reset(q);
        return st;
    }
    out->id = sqlite3_column_int64(q, 0);
    out->rev = sqlite3_column_int64(q, 1);
    out->name = col_dup(q, 2);
    out->hash = col_dup(q, 3);
    out->superuser = sqlite3_column_int(q, 4) != 0;
    out->disabled = sqlite3_column_int(q, 5) != 0;
    out->clientid_pattern = col_dup(q, 6);
    out->created = sqlite3_column_int64(q, 7);
    out->updated = sqlite3_column_int64(q, 8);
    int pattern_null = sqlite3_column_type(q, 6) == SQLITE_NULL;
    sqlite3_reset(q);
    if (!out->name || !out->hash || (!pattern_null && !out->clientid_pattern)) {
        exh_user_clear(out);
        return store_fail(&s->base, err, EXH_ENOMEM, "out of memory");
    }
    exh_status st = load_groups(s, out, err);
    if (st) exh_user_clear(out);
    return st;
}

/* Run a prepared write; SQLITE_CONSTRAINT_UNIQUE becomes EXH_EEXIST. */
static exh_status step_write(sq_store *s, sqlite3_stmt *q, exh_error *err, const char *doing)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_DONE) return EXH_OK;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return store_fail(&s->base, err, EXH_EEXIST, "%s: already exists", doing);
    return db_fail(s, err, doing);
}

/* Did the last write change a row?  (No row: no such user.) */
static exh_status changed(sq_store *s, const char *name, exh_error *err)
{
    return sqlite3_changes(s->db) ? EXH_OK
                                  : store_fail(&s->base, err, EXH_ENOTFOUND, "no user '%s'", name);
}

static exh_status sq_begin(exh_store *b, exh_error *err)
{
    /* IMMEDIATE: the write lock now, so a transaction never fails later
     * for want of it (busy_timeout covers the wait). */
    return exec(SQ(b), "BEGIN IMMEDIATE", err, "starting a transaction");
}

static exh_status sq_commit(exh_store *b, exh_error *err)
{
    return exec(SQ(b), "COMMIT", err, "committing");
}

static void sq_rollback(exh_store *b)
{
    sqlite3_exec(SQ(b)->db, "ROLLBACK", NULL, NULL, NULL);
}

static exh_status sq_insert_user(exh_store *b, const exh_new_user *u, const char *hash,
                                 exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_INSERT_USER, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, u->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, u->superuser);
    if (u->clientid_pattern) sqlite3_bind_text(q, 4, u->clientid_pattern, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, store_now());
    exh_status st = step_write(s, q, err, "adding the user");
    if (st == EXH_EEXIST)
        return store_fail(b, err, EXH_EEXIST, "user '%s' already exists", u->name);
    for (size_t i = 0; !st && i < u->ngroups; i++) {
        if (!(q = stmt(s, ST_ADD_MEMBER, err))) return EXH_ESTORE;
        sqlite3_bind_text(q, 1, u->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, u->groups[i], -1, SQLITE_STATIC);
        st = step_write(s, q, err, "adding a group membership");
    }
    return st;
}

static exh_status sq_set_hash(exh_store *b, const char *name, const char *hash, exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_SET_HASH, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, store_now());
    exh_status st = step_write(s, q, err, "changing the password");
    return st ? st : changed(s, name, err);
}

static exh_status sq_del_user(exh_store *b, const char *name, exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_DEL_USER, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    exh_status st = step_write(s, q, err, "deleting the user");
    return st ? st : changed(s, name, err);
}

static exh_status sq_set_flags(exh_store *b, const char *name, int superuser, int disabled,
                               exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_SET_FLAGS, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (superuser >= 0) sqlite3_bind_int(q, 2, superuser != 0);
    if (disabled >= 0) sqlite3_bind_int(q, 3, disabled != 0);
    sqlite3_bind_int64(q, 4, store_now());
    exh_status st = step_write(s, q, err, "changing the user");
    return st ? st : changed(s, name, err);
}

static exh_status sq_set_pattern(exh_store *b, const char *name, const char *pattern,
                                 exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_SET_PATTERN, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    if (pattern) sqlite3_bind_text(q, 2, pattern, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, store_now());
    exh_status st = step_write(s, q, err, "changing the clientid pattern");
    return st ? st : changed(s, name, err);
}

static exh_status sq_membership(exh_store *b, const char *name, const char *group, bool add,
                                exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, add ? ST_ADD_MEMBER : ST_DEL_MEMBER, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, group, -1, SQLITE_STATIC);
    exh_status st = step_write(s, q, err, add ? "adding to a group" : "removing from a group");
    if (st) return st;
    int n = sqlite3_changes(s->db);
    if (!(q = stmt(s, ST_BUMP, err))) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, store_now());
    if ((st = step_write(s, q, err, "changing the user"))) return st;
    if (!sqlite3_changes(s->db)) return store_fail(b, err, EXH_ENOTFOUND, "no user '%s'", name);
    if (!n && !add)
        return store_fail(b, err, EXH_ENOTFOUND, "user '%s' is not in group '%s'", name, group);
    return EXH_OK;
}

static exh_status sq_user_names(exh_store *b, char ***out, size_t *nout, exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_LIST_USERS, err);
    if (!q) return EXH_ESTORE;
    char **names = NULL;
    size_t n = 0;
    int rc;
    exh_status st = EXH_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char **nn = realloc(names, (n + 1) * sizeof(*nn));
        if (!nn || !(nn[n] = col_dup(q, 0))) {
            names = nn ? nn : names;
            st = exh_error_nomem(err);
            break;
        }
        names = nn;
        n++;
    }
    sqlite3_reset(q);
    if (!st && rc != SQLITE_DONE) st = db_fail(s, err, "listing users");
    *out = names;
    *nout = n;
    return st;
}

static exh_status sq_list_groups(exh_store *b, exh_group_fn fn, void *user, exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_LIST_GROUPS, err);
    if (!q) return EXH_ESTORE;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (fn((const char *)sqlite3_column_text(q, 0), sqlite3_column_int64(q, 1), user)) break;
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? EXH_OK : db_fail(s, err, "listing groups");
}

static void bind_opt(sqlite3_stmt *q, int i, const char *v)
{
    if (v) sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC);
}

static exh_status sq_record_session(exh_store *b, const exh_session_event *ev, bool trim,
                                    exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ev->connected ? ST_SESSION_ON : ST_SESSION_OFF, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_text(q, 1, ev->clientid, -1, SQLITE_STATIC);
    if (ev->connected) {
        bind_opt(q, 2, ev->username);
        bind_opt(q, 3, ev->peerhost);
        bind_opt(q, 4, ev->node);
        sqlite3_bind_int64(q, 5, ev->at);
    }
    exh_status st = step_write(s, q, err, "recording the session");
    if (st || !(q = stmt(s, ST_HISTORY_ADD, err))) return st ? st : EXH_ESTORE;
    sqlite3_bind_int64(q, 1, ev->at);
    sqlite3_bind_text(q, 2, ev->connected ? "connect" : "disconnect", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, ev->clientid, -1, SQLITE_STATIC);
    bind_opt(q, 4, ev->username);
    bind_opt(q, 5, ev->peerhost);
    bind_opt(q, 6, ev->node);
    bind_opt(q, 7, ev->reason);
    if ((st = step_write(s, q, err, "recording history"))) return st;
    if (trim) {
        if (!(q = stmt(s, ST_HISTORY_TRIM, err))) return EXH_ESTORE;
        sqlite3_bind_int64(q, 1, b->opts.history_max);
        st = step_write(s, q, err, "trimming history");
    }
    return st;
}

static exh_status sq_list_sessions(exh_store *b, bool online, exh_session_fn fn, void *user,
                                   exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, online ? ST_LIST_ONLINE : ST_LIST_HISTORY, err);
    if (!q) return EXH_ESTORE;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        exh_session_event ev = {
            .clientid = (const char *)sqlite3_column_text(q, 0),
            .username = (const char *)sqlite3_column_text(q, 1),
            .peerhost = (const char *)sqlite3_column_text(q, 2),
            .node = (const char *)sqlite3_column_text(q, 3),
        };
        if (online) {
            ev.at = sqlite3_column_int64(q, 4);
            ev.connected = true;
        } else {
            ev.reason = (const char *)sqlite3_column_text(q, 4);
            ev.at = sqlite3_column_int64(q, 5);
            ev.connected = !strcmp((const char *)sqlite3_column_text(q, 6), "connect");
        }
        if (fn(&ev, user)) break;
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? EXH_OK : db_fail(s, err, "listing sessions");
}

static exh_status sq_set_hash_if(exh_store *b, int64_t id, int64_t rev, const char *hash)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_SET_HASH_IF, NULL);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, rev);
    sqlite3_bind_text(q, 3, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, store_now());
    exh_status st = step_write(s, q, NULL, "upgrading a hash");
    return st ? st : (sqlite3_changes(s->db) ? EXH_OK : EXH_ENOTFOUND);
}

/* ---- lock-outs ---- */

/* A row of ST_LOCKOUT_STATE or ST_LOCKOUT_FAILED's RETURNING into out. */
static void lockout_row(sqlite3_stmt *q, int64_t now, exh_lockout_state *out)
{
    const char *kind = (const char *)sqlite3_column_text(q, 0);
    exh_lockout_key *k = kind && !strcmp(kind, "user") ? &out->user : &out->addr;
    k->exists = true;
    k->failures = (uint32_t)sqlite3_column_int64(q, 1);
    k->strikes = (uint32_t)sqlite3_column_int64(q, 2);
    k->locked_until = sqlite3_column_int64(q, 3);
    k->locked = k->locked_until > now;
}

static exh_status sq_lockout_state(exh_store *b, const char *user, const char *addr, int64_t now,
                                   exh_lockout_state *out, exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_LOCKOUT_STATE, err);
    if (!q) return EXH_ESTORE;
    bind_opt(q, 1, user);
    bind_opt(q, 2, addr);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        lockout_row(q, now, out);
    exh_status st = rc == SQLITE_DONE ? EXH_OK : db_fail(s, err, "reading lock-outs");
    sqlite3_reset(q);
    return st;
}

static exh_status sq_lockout_failed(exh_store *b, const char *user, const char *addr, int64_t now,
                                    const exh_lockout_params *p, exh_lockout_state *out,
                                    exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_LOCKOUT_FAILED, err);
    if (!q) return EXH_ESTORE;
    bool locks = p->failures <= 1; /* a new row's one failure */
    bind_opt(q, 1, user);
    bind_opt(q, 2, addr);
    sqlite3_bind_int64(q, 3, now);
    sqlite3_bind_int64(q, 4, p->failures);
    sqlite3_bind_int64(q, 5, p->window_ms);
    sqlite3_bind_int64(q, 6, p->backoff_ms);
    sqlite3_bind_int64(q, 7, p->backoff_max_ms);
    sqlite3_bind_int64(q, 8, locks ? 0 : 1);
    sqlite3_bind_int64(q, 9, locks ? 1 : 0);
    sqlite3_bind_int64(
        q, 10,
        locks ? now + (p->backoff_ms < p->backoff_max_ms ? p->backoff_ms : p->backoff_max_ms) : 0);
    /* A key given and not returned was locked, and left alone. */
    out->user.locked = out->user.exists = user != NULL;
    out->addr.locked = out->addr.exists = addr != NULL;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        lockout_row(q, now, out);
        exh_lockout_key *k =
            !strcmp((const char *)sqlite3_column_text(q, 0), "user") ? &out->user : &out->addr;
        k->started = k->locked;
    }
    exh_status st = rc == SQLITE_DONE ? EXH_OK : db_fail(s, err, "counting a failed login");
    sqlite3_reset(q);
    return st;
}

static exh_status sq_lockout_purge(exh_store *b, int64_t now, const exh_lockout_params *p,
                                   exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_LOCKOUT_PURGE, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_int64(q, 1, now);
    sqlite3_bind_int64(q, 2, p->window_ms);
    sqlite3_bind_int64(q, 3, p->backoff_max_ms);
    return step_write(s, q, err, "purging old lock-outs");
}

static exh_status sq_lockout_delete(exh_store *b, const char *kind, const char *name, int64_t *n,
                                    exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_LOCKOUT_DELETE, err);
    if (!q) return EXH_ESTORE;
    bind_opt(q, 1, kind);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
    exh_status st = step_write(s, q, err, "clearing a lock-out");
    *n = st ? 0 : sqlite3_changes(s->db);
    return st;
}

static exh_status sq_lockout_list(exh_store *b, bool all, int64_t now, exh_lockout_fn fn, void *arg,
                                  exh_error *err)
{
    sq_store *s = SQ(b);
    sqlite3_stmt *q = stmt(s, ST_LOCKOUT_LIST, err);
    if (!q) return EXH_ESTORE;
    sqlite3_bind_int(q, 1, all);
    sqlite3_bind_int64(q, 2, now);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        exh_lockout l = {
            .kind = (const char *)sqlite3_column_text(q, 0),
            .name = (const char *)sqlite3_column_text(q, 1),
            .failures = (uint32_t)sqlite3_column_int64(q, 2),
            .strikes = (uint32_t)sqlite3_column_int64(q, 3),
            .window_start = sqlite3_column_int64(q, 4),
            .locked_until = sqlite3_column_int64(q, 5),
            .last_failure = sqlite3_column_int64(q, 6),
        };
        if (fn(&l, arg)) break;
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? EXH_OK : db_fail(s, err, "listing lock-outs");
}

const store_backend store_sqlite = {
    .kind = "SQLite",
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .data_version = sq_data_version,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .get_user = sq_get_user,
    .user_names = sq_user_names,
    .insert_user = sq_insert_user,
    .set_hash = sq_set_hash,
    .del_user = sq_del_user,
    .set_flags = sq_set_flags,
    .set_pattern = sq_set_pattern,
    .membership = sq_membership,
    .list_groups = sq_list_groups,
    .record_session = sq_record_session,
    .list_sessions = sq_list_sessions,
    .set_hash_if = sq_set_hash_if,
    .lockout_state = sq_lockout_state,
    .lockout_failed = sq_lockout_failed,
    .lockout_purge = sq_lockout_purge,
    .lockout_delete = sq_lockout_delete,
    .lockout_list = sq_lockout_list,
};
