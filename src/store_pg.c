/*
 * store_pg.c -- the credential store's PostgreSQL backend (libpq), for
 * clusters: every broker node and exhookctl share one database.
 *
 * One exh_store is one connection, used by one thread at a time (as with
 * SQLite).  The tables and their meaning are SQLite's (store_sqlite.c):
 * a user's `rev` is bumped by every change to it or its groups, sessions
 * hold the online clients and history a bounded log.  Text columns that
 * are sorted or compared use COLLATE "C", so listings come out in byte
 * order exactly as SQLite's BINARY collation gives them, whatever the
 * database's locale.
 *
 * The schema version is the `schema_version` row of exhook_meta (SQLite
 * keeps it in PRAGMA user_version).  Its `data_version` row is bumped by
 * statement triggers on users and memberships: exh_store_data_version
 * reads it (see pg_data_version for how that differs from SQLite's).
 *
 * Every round trip waits for the server at most opts.busy_timeout_ms (at
 * least PG_MIN_TIMEOUT_MS; connecting, at least PG_MIN_CONNECT_MS): the
 * client's own deadline on connecting and on every command (await), with the server's
 * statement_timeout and lock_timeout a fifth shorter so that its message comes first, so a lock
 * held by another node, a stalled or vanished server makes a call fail
 * with EXH_ESTORE instead of waiting for ever.  After a deadline or a broken
 * connection the handle's connection is closed: the caller reopens.
 *
 * The store is named in errors as postgresql://user@host:port/db, never
 * with the URI's password.
 */
#include "exhook/store.h"
#include "store_backend.h"

#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error_int.h"
#include "utf8.h"

enum {
    ST_GET_USER,
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
    ST_DATA_VERSION,
    ST_PUT_USER,
    ST_LOCKOUT_STATE,
    ST_LOCKOUT_FAILED,
    ST_LOCKOUT_PURGE,
    ST_LOCKOUT_DELETE,
    ST_LOCKOUT_LIST,
    ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
    /* The user and its groups in one round trip and one snapshot: a row
     * per group (grp NULL for a user in none), in group order. */
    [ST_GET_USER] = "SELECT u.id, u.rev, u.name, u.hash, u.superuser, u.disabled, "
                    "u.clientid_pattern, u.created, u.updated, m.grp FROM users u "
                    "LEFT JOIN memberships m ON m.user_id = u.id WHERE u.name = $1 ORDER BY m.grp",
    /* ON CONFLICT instead of a unique violation: an error would abort the
     * caller's transaction (an import), where SQLite's leaves it usable. */
    [ST_INSERT_USER] = "INSERT INTO users(name, hash, superuser, disabled, clientid_pattern, rev, "
                       "created, updated) VALUES ($1, $2, $3::boolean, false, $4, 1, $5::bigint, "
                       "$5::bigint) ON CONFLICT (name) DO NOTHING",
    [ST_ADD_MEMBER] = "INSERT INTO memberships(user_id, grp) SELECT id, $2 FROM users "
                      "WHERE name = $1 ON CONFLICT DO NOTHING",
    [ST_DEL_MEMBER] = "DELETE FROM memberships WHERE grp = $2 AND user_id = "
                      "(SELECT id FROM users WHERE name = $1)",
    [ST_SET_HASH] = "UPDATE users SET hash = $2, rev = rev + 1, updated = $3 WHERE name = $1",
    [ST_DEL_USER] = "DELETE FROM users WHERE name = $1",
    [ST_SET_FLAGS] = "UPDATE users SET superuser = coalesce($2::boolean, superuser), disabled = "
                     "coalesce($3::boolean, disabled), rev = rev + 1, updated = $4 WHERE name = $1",
    [ST_SET_PATTERN] = "UPDATE users SET clientid_pattern = $2, rev = rev + 1, updated = $3 "
                       "WHERE name = $1",
    [ST_BUMP] = "UPDATE users SET rev = rev + 1, updated = $2 WHERE name = $1",
    [ST_LIST_USERS] = "SELECT name FROM users ORDER BY name",
    [ST_LIST_GROUPS] = "SELECT grp, count(*) FROM memberships GROUP BY grp ORDER BY grp",
    [ST_SESSION_ON] = "INSERT INTO sessions(clientid, username, peerhost, node, connected_at) "
                      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (clientid) DO UPDATE SET "
                      "username = excluded.username, peerhost = excluded.peerhost, "
                      "node = excluded.node, connected_at = excluded.connected_at",
    [ST_SESSION_OFF] = "DELETE FROM sessions WHERE clientid = $1",
    [ST_HISTORY_ADD] = "INSERT INTO history(at, event, clientid, username, peerhost, node, "
                       "reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    [ST_HISTORY_TRIM] = "DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - "
                        "$1::bigint",
    [ST_LIST_ONLINE] = "SELECT clientid, username, peerhost, node, connected_at FROM sessions "
                       "ORDER BY connected_at DESC, clientid",
    [ST_LIST_HISTORY] = "SELECT clientid, username, peerhost, node, reason, at, event FROM "
                        "history ORDER BY id DESC",
    [ST_SET_HASH_IF] = "UPDATE users SET hash = $3, rev = rev + 1, updated = $4 "
                       "WHERE id = $1 AND rev = $2",
    [ST_DATA_VERSION] = "SELECT value FROM exhook_meta WHERE key = 'data_version'",
    /* A user exactly as another store holds it (exhookctl migrate). */
    [ST_PUT_USER] = "INSERT INTO users(name, hash, superuser, disabled, clientid_pattern, rev, "
                    "created, updated) VALUES ($1, $2, $3::boolean, $4::boolean, $5, $6::bigint, "
                    "$7::bigint, $8::bigint)",
    [ST_LOCKOUT_STATE] = "SELECT kind, failures, strikes, locked_until FROM lockouts "
                         "WHERE (kind = 'user' AND name = $1::text) "
                         "OR (kind = 'addr' AND name = $2::text)",
    /* As SQLite's (store_sqlite.c), with typed parameters.  Concurrent
     * failures for one key on two nodes: the second INSERT waits for the
     * first's row lock, then DO UPDATE reads the row as the first
     * committed it (READ COMMITTED re-reads a conflicting row), so both
     * are counted. */
    [ST_LOCKOUT_FAILED] = "INSERT INTO lockouts(kind, name, failures, window_start, strikes, "
                          "locked_until, last_failure) SELECT v.k, v.n, $8::integer, $3::bigint, "
                          "$9::integer, $10::bigint, $3::bigint FROM (VALUES ('user', $1::text), "
                          "('addr', $2::text)) v(k, n) WHERE v.n IS NOT NULL "
                          "ON CONFLICT (kind, name) DO UPDATE SET " LOCKOUT_SET(
                              "$3::bigint", "$4::integer", "$5::bigint", "$6::bigint",
                              "$7::bigint") " RETURNING kind, failures, strikes, locked_until",
    [ST_LOCKOUT_PURGE] =
        "DELETE FROM lockouts WHERE " LOCKOUT_STALE("$1::bigint", "$2::bigint", "$3::bigint"),
    [ST_LOCKOUT_DELETE] = "DELETE FROM lockouts WHERE name = $2::text "
                          "AND ($1::text IS NULL OR kind = $1::text)",
    [ST_LOCKOUT_LIST] = "SELECT kind, name, failures, strikes, window_start, locked_until, "
                        "last_failure FROM lockouts WHERE $1::boolean OR locked_until > "
                        "$2::bigint ORDER BY kind, name",
};

/* Notices are per database, not per schema: two stores in one database
 * hear each other's (a needless check of a name, never a missed one). */
#define PG_NOTICE_CHANNEL "exhook_users"

/* Schema migrations: entry k takes the schema from version k to k + 1.
 * The same tables as SQLite's; the data_version trigger fires BEFORE each
 * statement, so every writer locks the meta row before any user row and
 * two writers can never wait for each other in a cycle. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE exhook_meta ("
    "  key text COLLATE \"C\" PRIMARY KEY,"
    "  value bigint NOT NULL);"
    "INSERT INTO exhook_meta VALUES ('data_version', 0);"
    "CREATE TABLE users ("
    "  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  name text COLLATE \"C\" NOT NULL UNIQUE,"
    "  hash text NOT NULL,"
    "  superuser boolean NOT NULL DEFAULT false,"
    "  disabled boolean NOT NULL DEFAULT false,"
    "  clientid_pattern text,"
    "  rev bigint NOT NULL DEFAULT 1,"
    "  created bigint NOT NULL,"
    "  updated bigint NOT NULL);"
    "CREATE TABLE memberships ("
    "  user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  grp text COLLATE \"C\" NOT NULL,"
    "  PRIMARY KEY (user_id, grp));"
    "CREATE INDEX memberships_grp ON memberships(grp);"
    "CREATE TABLE sessions ("
    "  clientid text COLLATE \"C\" PRIMARY KEY,"
    "  username text, peerhost text, node text,"
    "  connected_at bigint NOT NULL);"
    "CREATE TABLE history ("
    "  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  at bigint NOT NULL,"
    "  event text NOT NULL CHECK (event IN ('connect', 'disconnect')),"
    "  clientid text NOT NULL,"
    "  username text, peerhost text, node text, reason text);"
    /* search_path fixed at creation: the trigger finds exhook_meta in
     * this schema whatever a writer's own search_path is. */
    "CREATE FUNCTION exhook_data_changed() RETURNS trigger LANGUAGE plpgsql "
    "  SET search_path FROM CURRENT AS $$ BEGIN"
    "  UPDATE exhook_meta SET value = value + 1 WHERE key = 'data_version';"
    "  RETURN NULL; END $$;"
    "CREATE TRIGGER users_changed BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON users"
    "  FOR EACH STATEMENT EXECUTE FUNCTION exhook_data_changed();"
    "CREATE TRIGGER memberships_changed BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE"
    "  ON memberships FOR EACH STATEMENT EXECUTE FUNCTION exhook_data_changed();",
    /* 1 -> 2: change notices (exh_store_listen).  A user's name on channel
     * exhook_users for each row of users written -- both names if a row is
     * renamed behind exhookctl's back -- and for each membership row
     * written (exhookctl bumps the user's row too; SQL typed by hand may
     * not), sent when the transaction commits (PostgreSQL folds repeats);
     * "" (everyone) for a TRUNCATE or a name too long for a notice's
     * 8000-byte payload. */
    "CREATE FUNCTION exhook_notice(n text) RETURNS void LANGUAGE plpgsql"
    "  SET search_path FROM CURRENT AS $$ BEGIN"
    "  IF n IS NULL THEN RETURN; END IF;" /* a membership whose user is being deleted */
    "  IF octet_length(n) > 7000 THEN n := ''; END IF;"
    "  PERFORM pg_notify('" PG_NOTICE_CHANNEL "', n); END $$;"
    "CREATE FUNCTION exhook_user_notice() RETURNS trigger LANGUAGE plpgsql"
    "  SET search_path FROM CURRENT AS $$ BEGIN"
    "  IF TG_LEVEL = 'STATEMENT' THEN PERFORM exhook_notice('');"
    "  ELSE"
    "    IF TG_OP <> 'INSERT' THEN PERFORM exhook_notice(OLD.name); END IF;"
    "    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.name IS DISTINCT FROM OLD.name)"
    "      THEN PERFORM exhook_notice(NEW.name); END IF;"
    "  END IF;"
    "  RETURN NULL; END $$;"
    "CREATE FUNCTION exhook_member_notice() RETURNS trigger LANGUAGE plpgsql"
    "  SET search_path FROM CURRENT AS $$ BEGIN"
    "  IF TG_LEVEL = 'STATEMENT' THEN PERFORM exhook_notice('');"
    "  ELSE"
    "    IF TG_OP <> 'INSERT' THEN"
    "      PERFORM exhook_notice((SELECT name FROM users WHERE id = OLD.user_id)); END IF;"
    "    IF TG_OP <> 'DELETE' THEN"
    "      PERFORM exhook_notice((SELECT name FROM users WHERE id = NEW.user_id)); END IF;"
    "  END IF;"
    "  RETURN NULL; END $$;"
    "CREATE TRIGGER users_notice AFTER INSERT OR UPDATE OR DELETE ON users"
    "  FOR EACH ROW EXECUTE FUNCTION exhook_user_notice();"
    "CREATE TRIGGER users_truncated AFTER TRUNCATE ON users"
    "  FOR EACH STATEMENT EXECUTE FUNCTION exhook_user_notice();"
    "CREATE TRIGGER memberships_notice AFTER INSERT OR UPDATE OR DELETE ON memberships"
    "  FOR EACH ROW EXECUTE FUNCTION exhook_member_notice();"
    "CREATE TRIGGER memberships_truncated AFTER TRUNCATE ON memberships"
    "  FOR EACH STATEMENT EXECUTE FUNCTION exhook_member_notice();",
    /* 2 -> 3: lock-outs (store.h), times in ms since the epoch.  A
     * runtime role granted before (store_pg_grant_runtime: the role that
     * may insert sessions) gets the table too: its front ends count
     * failed logins there, and without the grant every login would be a
     * store fault after the upgrade. */
    "CREATE TABLE lockouts ("
    "  kind text COLLATE \"C\" NOT NULL CHECK (kind IN ('user', 'addr')),"
    "  name text COLLATE \"C\" NOT NULL,"
    "  failures integer NOT NULL,"
    "  window_start bigint NOT NULL,"
    "  strikes integer NOT NULL,"
    "  locked_until bigint NOT NULL,"
    "  last_failure bigint NOT NULL,"
    "  PRIMARY KEY (kind, name));"
    "DO $$ DECLARE r record; BEGIN"
    "  FOR r IN SELECT DISTINCT grantee FROM information_schema.role_table_grants"
    "    WHERE table_schema = current_schema() AND table_name = 'sessions'"
    "    AND privilege_type = 'INSERT' AND grantee <> current_user LOOP"
    "    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON lockouts TO %I', r.grantee);"
    "  END LOOP; END $$;",
};

/* Held for the migration's transaction: two nodes opening a new database
 * at once create the schema once ("exhook" in ASCII). */
#define MIGRATION_LOCK "111567822614379"

/* The least a PostgreSQL call is given, whatever busy_timeout says (see
 * pg_open): a network round trip and a small statement fit in it. */
enum { PG_MIN_TIMEOUT_MS = 250, PG_MIN_CONNECT_MS = 2000 };

typedef struct pg_store {
    exh_store base;  /* first: an exh_store * is a pg_store * */
    PGconn *conn;    /* NULL once given up (await) */
    int deadline_ms; /* what a call waits for the server at most (pg_open) */
    bool prepared[ST_COUNT];
} pg_store;

static pg_store *PG(exh_store *b)
{
    return (pg_store *)b;
}

/* libpq's default notice processor prints to stderr; the library never
 * prints (and client_min_messages keeps the server's notices away). */
static void no_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* A libpq message on one line: connection errors come as several lines
 * ("connection to server ... failed: ...\n\tIs the server running ..."). */
static void one_line(char *dst, size_t n, const char *msg)
{
    size_t j = 0;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && j + 1 < n; p++) {
        if (isspace((unsigned char)*p)) {
            space = j > 0;
            continue;
        }
        if (space && j + 2 < n) dst[j++] = ' ';
        space = false;
        dst[j++] = *p;
    }
    dst[j] = '\0';
}

/* A failed command as an error value: what we were doing and the
 * server's own primary message.  A unique violation is EXH_EEXIST, as
 * SQLite's constraint error is. */
static exh_status res_fail(pg_store *s, const PGresult *r, exh_error *err, const char *doing)
{
    char msg[400];
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && !strcmp(state, "23505"))
        return store_fail(&s->base, err, EXH_EEXIST, "%s: already exists", doing);
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    one_line(msg, sizeof(msg), primary ? primary : PQerrorMessage(s->conn));
    /* insufficient_privilege: most likely a front end's runtime role
     * (exhookctl init --runtime-role) used for what only the owner may do. */
    if (state && !strcmp(state, "42501"))
        return store_fail(&s->base, err, EXH_ESTORE,
                          "%s: %s (not granted to this role; change users as the tables' owner)",
                          doing, msg);
    return store_fail(&s->base, err, EXH_ESTORE, "%s: %s", doing, msg[0] ? msg : "unknown error");
}

/* Milliseconds on a clock that never jumps. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connection is given up (no answer in time, or broken): closed, so
 * every later call on this handle fails at once and the caller reopens
 * the store (service/: svc_conn_drop_store, the history writer).  The
 * server ends its side by itself: its statement_timeout stops whatever
 * it ran.  No PQcancel: it connects to the postmaster and waits for its
 * answer without a timeout, which a stalled server never gives. */
static void drop_conn(pg_store *s)
{
    PQfinish(s->conn);
    s->conn = NULL;
    memset(s->prepared, 0, sizeof(s->prepared));
}

/* Until the socket is ready for ev: 1, or 0 at the deadline, -1 on error. */
static int wait_socket(pg_store *s, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = PQsocket(s->conn), .events = ev};
        int n = poll(&p, 1, (int)left);
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return -1;
    }
}

/*
 * After a PQsend* (sent: its return): the command's result, waited for
 * no longer than the store's deadline (see pg_open).  libpq's blocking
 * calls wait for ever on a server that is alive but stalled (stopped, or
 * wedged without a lock) or gone without a word: statement_timeout runs
 * on that server, and the kernel's keepalives take minutes -- the broker
 * thread a plugin runs on would stall with it.  Several statements in
 * one text give the first failed result, else the last.  NULL with *st
 * and err set when the command could not be sent or got no answer in
 * time (the connection is then closed).
 */
static PGresult *await(pg_store *s, int sent, exh_error *err, const char *doing, exh_status *st)
{
    char msg[400];
    if (!sent) {
        one_line(msg, sizeof(msg), PQerrorMessage(s->conn));
        drop_conn(s);
        *st = store_fail(&s->base, err, EXH_ESTORE, "%s: %s", doing,
                         msg[0] ? msg : "cannot send to the server");
        return NULL;
    }
    int64_t deadline = now_ms() + s->deadline_ms;
    PGresult *keep = NULL;
    int f;
    while ((f = PQflush(s->conn)) == 1) {
        int w = wait_socket(s, POLLIN | POLLOUT, deadline);
        if (w <= 0) goto gone;
        if (!PQconsumeInput(s->conn)) goto broken;
    }
    if (f < 0) goto broken;
    for (;;) {
        if (!PQconsumeInput(s->conn)) goto broken;
        while (!PQisBusy(s->conn)) {
            PGresult *r = PQgetResult(s->conn);
            if (!r) {
                if (keep) return keep;
                goto broken;
            }
            ExecStatusType rs = PQresultStatus(keep);
            if (!keep || rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) {
                PQclear(keep);
                keep = r;
            } else {
                PQclear(r); /* the first error is the one to say */
            }
        }
        int w = wait_socket(s, POLLIN, deadline);
        if (w <= 0) goto gone;
    }
gone:
    PQclear(keep);
    drop_conn(s);
    *st = store_fail(&s->base, err, EXH_ESTORE,
                     "%s: no answer from the server within %d ms (busy_timeout); connection "
                     "closed",
                     doing, s->deadline_ms);
    return NULL;
broken:
    PQclear(keep);
    one_line(msg, sizeof(msg), PQerrorMessage(s->conn));
    drop_conn(s);
    *st = store_fail(&s->base, err, EXH_ESTORE, "%s: %s", doing,
                     msg[0] ? msg : "connection to the server lost");
    return NULL;
}

/* A connection closed by an earlier fault: said at once, not tried. */
static bool no_conn(pg_store *s, exh_error *err, const char *doing, exh_status *st)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK) return false;
    if (s->conn) drop_conn(s);
    *st = store_fail(&s->base, err, EXH_ESTORE,
                     "%s: the connection to the server was lost; reopen the store", doing);
    return true;
}

/* SQL text (one or more statements, no parameters): its result, or NULL
 * with err set.  For what runs rarely: session setup, migrations, grants. */
static PGresult *query(pg_store *s, const char *sql, exh_error *err, const char *doing,
                       exh_status *st)
{
    if (no_conn(s, err, doing, st)) return NULL;
    PGresult *r = await(s, PQsendQuery(s->conn, sql), err, doing, st);
    if (!r) return NULL;
    ExecStatusType rs = PQresultStatus(r);
    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) return r;
    *st = res_fail(s, r, err, doing);
    PQclear(r);
    return NULL;
}

/* Run SQL text; EXH_OK or the error. */
static exh_status exec(pg_store *s, const char *sql, exh_error *err, const char *doing)
{
    exh_status st = EXH_OK;
    PQclear(query(s, sql, err, doing, &st));
    return st;
}

/* Run prepared statement `which` (prepared on first use) with n text
 * parameters (NULL: SQL NULL).  Returns the result, or NULL with err set. */
static PGresult *run(pg_store *s, int which, int n, const char *const *vals, exh_error *err,
                     const char *doing, exh_status *st)
{
    char name[16];
    snprintf(name, sizeof(name), "exh_%d", which);
    if (no_conn(s, err, doing, st)) return NULL;
    if (!s->prepared[which]) {
        PGresult *r = await(s, PQsendPrepare(s->conn, name, sql_text[which], 0, NULL), err,
                            "preparing a statement", st);
        if (!r) return NULL;
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) *st = res_fail(s, r, err, "preparing a statement");
        PQclear(r);
        if (!ok) return NULL;
        s->prepared[which] = true;
    }
    PGresult *r =
        await(s, PQsendQueryPrepared(s->conn, name, n, vals, NULL, NULL, 0), err, doing, st);
    if (!r) return NULL;
    ExecStatusType rs = PQresultStatus(r);
    if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) return r;
    *st = res_fail(s, r, err, doing);
    PQclear(r);
    return NULL;
}

/* A write: EXH_OK and the number of rows it changed, or the error. */
static exh_status write_n(pg_store *s, int which, int n, const char *const *vals, exh_error *err,
                          const char *doing, long *changed)
{
    exh_status st = EXH_OK;
    PGresult *r = run(s, which, n, vals, err, doing, &st);
    if (!r) return st;
    if (changed) *changed = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return EXH_OK;
}

/* One write to a user by name: no row changed means no such user. */
static exh_status write_user(pg_store *s, int which, int n, const char *const *vals,
                             const char *name, exh_error *err, const char *doing)
{
    long changed = 0;
    exh_status st = write_n(s, which, n, vals, err, doing, &changed);
    if (!st && !changed) st = store_fail(&s->base, err, EXH_ENOTFOUND, "no user '%s'", name);
    return st;
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool col_bool(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

/* A column as C text; NULL for SQL NULL. */
static const char *col_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static char *col_dup(const PGresult *r, int row, int col)
{
    const char *t = col_text(r, row, col);
    return t ? strdup(t) : NULL;
}

/* The integer in the first column of the first row of sql's result;
 * *found false if there is no row. */
static exh_status query_i64(pg_store *s, const char *sql, int64_t *out, bool *found, exh_error *err,
                            const char *doing)
{
    exh_status st = EXH_OK;
    PGresult *r = query(s, sql, err, doing, &st);
    if (r && (*found = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))) *out = col_i64(r, 0, 0);
    PQclear(r);
    return st;
}

/* The schema version: 0 where this schema holds no exhook_meta. */
static exh_status read_version(pg_store *s, int64_t *v, exh_error *err)
{
    int64_t has = 0;
    bool found = false;
    exh_status st = query_i64(s,
                              "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                              "AND tablename = 'exhook_meta'",
                              &has, &found, err, "reading the schema");
    *v = 0;
    if (st || !has) return st;
    st = query_i64(s, "SELECT value FROM exhook_meta WHERE key = 'schema_version'", v, &found, err,
                   "reading the schema version");
    if (!st && !found) *v = 0;
    return st;
}

static int pg_schema_version(exh_store *b)
{
    int64_t v;
    return read_version(PG(b), &v, NULL) ? -1 : (int)v;
}

/*
 * A counter in exhook_meta that triggers bump on every statement that
 * writes users or memberships, by any connection -- this one included
 * (unlike SQLite's PRAGMA data_version): after this connection's own
 * change to a user, the caller looks once more for nothing, which is
 * correct and cheap.  Session records do not move it: nothing a caller
 * revalidates depends on them.  One indexed read of one row.
 */
static exh_status pg_data_version(exh_store *b, int64_t *out, exh_error *err)
{
    pg_store *s = PG(b);
    exh_status st = EXH_OK;
    PGresult *r = run(s, ST_DATA_VERSION, 0, NULL, err, "reading data_version", &st);
    if (!r) return st;
    if (PQntuples(r) != 1)
        st = store_fail(b, err, EXH_ESTORE, "reading data_version: no data_version row");
    else
        *out = col_i64(r, 0, 0);
    PQclear(r);
    return st;
}

/* Bring the schema to EXH_STORE_SCHEMA_VERSION, in one transaction under
 * an advisory lock (nodes starting together migrate once). */
static exh_status migrate_locked(pg_store *s, exh_error *err)
{
    exh_status st = exec(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", err,
                         "locking for the migration");
    int64_t v;
    if (st || (st = read_version(s, &v, err))) return st;
    if (v > EXH_STORE_SCHEMA_VERSION)
        return store_fail(&s->base, err, EXH_ESTORE,
                          "database schema version %" PRId64
                          " is newer than this exhook understands (%d)",
                          v, EXH_STORE_SCHEMA_VERSION);
    if (v == 0) {
        /* Unlike an SQLite file, a database may well hold other tables;
         * only tables of ours without our meta table mean trouble. */
        int64_t tables = 0;
        bool found;
        if ((st = query_i64(s,
                            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                            "AND tablename IN ('users', 'memberships', 'sessions', 'history')",
                            &tables, &found, err, "reading the schema")))
            return st;
        if (tables)
            return store_fail(&s->base, err, EXH_ESTORE,
                              "not an exhook database (it has tables but no exhook schema "
                              "version)");
        if (!s->base.opts.create || s->base.opts.readonly)
            return store_fail(&s->base, err, EXH_EIO,
                              "cannot open the credential store: no exhook schema in this "
                              "database (create it with 'exhookctl init')");
    }
    if (v < EXH_STORE_SCHEMA_VERSION && s->base.opts.readonly)
        return store_fail(
            &s->base, err, EXH_ESTORE,
            "database schema version %" PRId64 " needs migrating; run 'exhookctl init'", v);
    /* Nothing to do is nothing written: a role that may only read the
     * meta table (the runtime role, store_pg_grant_runtime) opens too. */
    if (v == EXH_STORE_SCHEMA_VERSION) return EXH_OK;
    for (; !st && v < EXH_STORE_SCHEMA_VERSION; v++)
        st = exec(s, migrations[v], err, "migrating the schema");
    if (st) return st;
    char bump[160];
    snprintf(bump, sizeof(bump),
             "INSERT INTO exhook_meta VALUES ('schema_version', %d) "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             EXH_STORE_SCHEMA_VERSION);
    return exec(s, bump, err, "recording the schema version");
}

static exh_status migrate(pg_store *s, exh_error *err)
{
    exh_status st = exec(s, "BEGIN", err, "starting the migration");
    if (st) return st;
    if (!(st = migrate_locked(s, err))) return exec(s, "COMMIT", err, "committing the migration");
    exec(s, "ROLLBACK", NULL, "rolling back");
    return st;
}

/* A URI whose user or password holds an unencoded '@' or '/':
 * libpq ends the user info at the first '@' or '/', so the rest of the
 * password becomes the host, port or database -- and would be shown as
 * such.  Refused, and never shown. */
static bool uri_ambiguous(const char *uri)
{
    const char *p = strstr(uri, "://");
    if (!p) return false;
    p += 3;
    /* Any second '@' (one in a query value must be written %40 too). */
    size_t slash = strcspn(p, "/");
    const char *last_at = NULL;
    int ats = 0;
    for (const char *q = p; *q; q++)
        if (*q == '@') {
            ats++;
            last_at = q;
        }
    return ats > 1 || (last_at && p + slash < last_at);
}

/* The store's name for errors: postgresql://user@host:port/db from the
 * URI's parts, without its password (or anything else it carries). */
bool store_pg_display_name(const char *uri, char *out, size_t n)
{
    char *msg = NULL;
    PQconninfoOption *opts = uri_ambiguous(uri) ? NULL : PQconninfoParse(uri, &msg);
    PQfreemem(msg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, "port") && o->val && o->val[strspn(o->val, "0123456789,")]) {
            PQconninfoFree(opts); /* a port that is not a number: a password cut short */
            opts = NULL;
            break;
        }
    if (!opts) {
        snprintf(out, n,
                 "postgresql://(not shown: unparsable, or a user or password with "
                 "reserved characters not percent-encoded)");
        return false;
    }
    const char *user = NULL, *host = NULL, *port = NULL, *db = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val) continue;
        if (!strcmp(o->keyword, "user")) user = o->val;
        if (!strcmp(o->keyword, "host")) host = o->val;
        if (!strcmp(o->keyword, "port")) port = o->val;
        if (!strcmp(o->keyword, "dbname")) db = o->val;
    }
    snprintf(out, n, "postgresql://%s%s%s%s%s/%s", user ? user : "", user ? "@" : "",
             host ? host : "", port ? ":" : "", port ? port : "", db ? db : "");
    PQconninfoFree(opts);
    return true;
}

bool store_pg_has_password(const char *uri)
{
    if (uri_ambiguous(uri)) return true; /* say so: it may well be one */
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &msg);
    PQfreemem(msg);
    if (!opts) return true; /* cannot be read well enough to tell (store.h) */
    bool has = false;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, "password") && o->val && *o->val) has = true;
    PQconninfoFree(opts);
    return has;
}

static void pg_close(exh_store *b);

static exh_status pg_open(const char *uri, const exh_store_opts *o, exh_store **out, exh_error *err)
{
    pg_store *s = calloc(1, sizeof(*s));
    if (!s) return exh_error_nomem(err);
    char name[512];
    bool parsed = store_pg_display_name(uri, name, sizeof(name));
    exh_status st = store_base_init(&s->base, &store_pg, name, o, err);
    if (st) {
        free(s);
        return st;
    }
    if (!parsed) {
        /* libpq's reason quotes the part it could not read, which may be
         * the password: not shown. */
        st = store_fail(&s->base, err, EXH_EINVAL,
                        "not a valid PostgreSQL URI (its text is not shown: it may hold a "
                        "password)");
        goto out;
    }
    /* busy_timeout 0 (SQLite: never wait for a lock) or anything below
     * the floor would fail every call here: a round trip to a server
     * takes time that a local file does not.  PG_MIN_TIMEOUT_MS is still
     * well under the half of a broker's shortest call budget that
     * service/ allows busy_timeout (README: "PostgreSQL store"). */
    int ms = s->base.opts.busy_timeout_ms;
    if (ms < PG_MIN_TIMEOUT_MS) ms = PG_MIN_TIMEOUT_MS;
    /* No call waits for the server longer than busy_timeout: that is the
     * client's deadline (await, and connecting below).  The server's own
     * statement and lock timeouts are set a fifth shorter (at most a
     * second), so a held lock or a slow statement ends with its message
     * first, and the deadline is left for a server that says nothing. */
    s->deadline_ms = ms;
    int server_ms = ms - (ms / 5 < 1000 ? ms / 5 : 1000);
    char user_timeout[24], idle[24];
    /* A server that stops acknowledging what we send (gone, cut off) is
     * given up on by the kernel too, not only a slow statement; and an
     * idle connection to a vanished server is found by keepalives (probes
     * after busy_timeout's seconds of silence, one a second, three lost)
     * before the next call has to wait for its deadline. */
    snprintf(user_timeout, sizeof(user_timeout), "%d", ms);
    snprintf(idle, sizeof(idle), "%d", (ms + 999) / 1000);
    /* The URI first (expanded), then what must win over it.  No
     * connect_timeout: libpq applies it only in its blocking connect;
     * connecting here is polled against a deadline of our own (below). */
    const char *const keys[] = {"dbname",          "tcp_user_timeout",          "keepalives",
                                "keepalives_idle", "keepalives_interval",       "keepalives_count",
                                "client_encoding", "fallback_application_name", NULL};
    const char *const vals[] = {uri, user_timeout, "1", idle, "1", "3", "UTF8", "exhook", NULL};
    s->conn = PQconnectStartParams(keys, vals, 1);
    if (!s->conn) {
        st = exh_error_nomem(err);
        goto out;
    }
    PQsetNoticeProcessor(s->conn, no_notices, NULL);
    /* A connection costs more round trips than a statement (TCP, TLS,
     * the password exchange): it is given at least PG_MIN_CONNECT_MS, as
     * libpq's own connect_timeout gives at least two seconds. */
    int connect_ms = s->deadline_ms > PG_MIN_CONNECT_MS ? s->deadline_ms : PG_MIN_CONNECT_MS;
    int64_t deadline = now_ms() + connect_ms;
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    while (PQstatus(s->conn) != CONNECTION_BAD && ps != PGRES_POLLING_OK &&
           ps != PGRES_POLLING_FAILED) {
        int w = wait_socket(s, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (w == 0) {
            st = store_fail(&s->base, err, EXH_ESTORE,
                            "cannot connect to the credential store: no answer within %d ms",
                            connect_ms);
            goto out;
        }
        ps = PQconnectPoll(s->conn);
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        char msg[400];
        one_line(msg, sizeof(msg), PQerrorMessage(s->conn));
        st = store_fail(&s->base, err, EXH_ESTORE, "cannot connect to the credential store: %s",
                        msg);
        goto out;
    }
    /* Sends never block either: await waits, with the deadline. */
    if (PQsetnonblocking(s->conn, 1) != 0) {
        st = store_fail(&s->base, err, EXH_ESTORE, "cannot make the connection non-blocking");
        goto out;
    }
    char setup[256];
    snprintf(setup, sizeof(setup),
             "SET statement_timeout = %d; SET lock_timeout = %d; "
             "SET client_min_messages = warning%s",
             server_ms, server_ms,
             s->base.opts.readonly ? "; SET default_transaction_read_only = on" : "");
    if ((st = exec(s, setup, err, "setting up the session"))) goto out;
    st = migrate(s, err);
out:
    if (st) {
        pg_close(&s->base);
        return st;
    }
    *out = &s->base;
    return EXH_OK;
}

static void pg_close(exh_store *b)
{
    pg_store *s = PG(b);
    PQfinish(s->conn);
    store_base_free(&s->base);
    free(s);
}

static exh_status pg_begin(exh_store *b, exh_error *err)
{
    return exec(PG(b), "BEGIN", err, "starting a transaction");
}

static exh_status pg_commit(exh_store *b, exh_error *err)
{
    return exec(PG(b), "COMMIT", err, "committing");
}

static void pg_rollback(exh_store *b)
{
    exec(PG(b), "ROLLBACK", NULL, "rolling back");
}

static exh_status pg_get_user(exh_store *b, const char *name, exh_user *out, exh_error *err)
{
    pg_store *s = PG(b);
    memset(out, 0, sizeof(*out));
    exh_status st = EXH_OK;
    const char *v[] = {name};
    PGresult *r = run(s, ST_GET_USER, 1, v, err, "reading a user", &st);
    if (!r) return st;
    int rows = PQntuples(r);
    if (rows == 0) {
        PQclear(r);
        return store_fail(b, err, EXH_ENOTFOUND, "no user '%s'", name);
    }
    out->id = col_i64(r, 0, 0);
    out->rev = col_i64(r, 0, 1);
    out->name = col_dup(r, 0, 2);
    out->hash = col_dup(r, 0, 3);
    out->superuser = col_bool(r, 0, 4);
    out->disabled = col_bool(r, 0, 5);
    out->clientid_pattern = col_dup(r, 0, 6);
    out->created = col_i64(r, 0, 7);
    out->updated = col_i64(r, 0, 8);
    bool oom = !out->name || !out->hash || (!PQgetisnull(r, 0, 6) && !out->clientid_pattern);
    if (!oom && !PQgetisnull(r, 0, 9)) {
        if (!(out->groups = calloc((size_t)rows, sizeof(*out->groups)))) oom = true;
        for (int i = 0; !oom && i < rows; i++, out->ngroups++)
            if (!(out->groups[i] = col_dup(r, i, 9))) oom = true;
    }
    PQclear(r);
    if (oom) {
        exh_user_clear(out);
        return exh_error_nomem(err);
    }
    return EXH_OK;
}

static exh_status pg_user_names(exh_store *b, char ***out, size_t *nout, exh_error *err)
{
    pg_store *s = PG(b);
    *out = NULL;
    *nout = 0;
    exh_status st = EXH_OK;
    PGresult *r = run(s, ST_LIST_USERS, 0, NULL, err, "listing users", &st);
    if (!r) return st;
    size_t n = (size_t)PQntuples(r);
    char **names = n ? calloc(n, sizeof(*names)) : NULL;
    if (n && !names) st = exh_error_nomem(err);
    for (size_t i = 0; !st && i < n; i++)
        if (!(names[i] = col_dup(r, (int)i, 0))) st = exh_error_nomem(err);
    PQclear(r);
    *out = names;
    *nout = names ? n : 0; /* the caller frees every slot; calloc made them NULL */
    return st;
}

/*
 * A session event's text as PostgreSQL will take it.  Client ids, user
 * names, peers and reasons come from the broker as bytes, and PostgreSQL
 * refuses invalid UTF-8 in a text column: one client sending such an id
 * would roll back its whole history batch, every other client's events
 * with it.  So each byte of an ill-formed sequence is written \xNN (the
 * event is kept: who connected with such an id is worth knowing, and it
 * costs no SAVEPOINT round trip per event); valid text is stored as it
 * is.  Not reversible for a valid id that itself reads "\xNN", which
 * only makes the two look alike in the history.  SQLite stores the bytes
 * as they are.
 */
typedef struct pg_event {
    exh_session_event ev;
    char *owned[5];
} pg_event;

static const char *utf8_text(const char *v, char **owned)
{
    *owned = NULL;
    if (!v) return NULL;
    size_t n = strlen(v), i = exh_utf8_bad(v, n);
    if (i == n) return v;
    char *o = malloc(4 * n + 1), *w = o;
    if (!o) return NULL;
    for (size_t from = 0; from < n;) {
        memcpy(w, v + from, i - from);
        w += i - from;
        if (i == n) break;
        w += sprintf(w, "\\x%02x", (unsigned char)v[i]);
        from = ++i;
        i += exh_utf8_bad(v + i, n - i);
    }
    *w = '\0';
    return *owned = o;
}

static void pg_event_free(pg_event *p)
{
    for (int i = 0; i < 5; i++)
        free(p->owned[i]);
}

static exh_status pg_event_of(pg_event *p, const exh_session_event *ev, exh_error *err)
{
    const char *in[5] = {ev->clientid, ev->username, ev->peerhost, ev->node, ev->reason};
    const char *out[5];
    bool oom = false;
    for (int i = 0; i < 5; i++)
        if (!(out[i] = utf8_text(in[i], &p->owned[i])) && in[i]) oom = true;
    p->ev = *ev;
    p->ev.clientid = out[0];
    p->ev.username = out[1];
    p->ev.peerhost = out[2];
    p->ev.node = out[3];
    p->ev.reason = out[4];
    if (oom) {
        pg_event_free(p);
        return exh_error_nomem(err);
    }
    return EXH_OK;
}

/* The rows a session event writes (its text made UTF-8 first), in the
 * statements' column order: one place for the live store and for
 * migrate. */
static exh_status session_online(pg_store *s, const exh_session_event *ev, exh_error *err,
                                 const char *doing)
{
    char at[24];
    snprintf(at, sizeof(at), "%" PRId64, ev->at);
    const char *v[] = {ev->clientid, ev->username, ev->peerhost, ev->node, at};
    return write_n(s, ST_SESSION_ON, 5, v, err, doing, NULL);
}

static exh_status history_row(pg_store *s, const exh_session_event *ev, exh_error *err,
                              const char *doing)
{
    char at[24];
    snprintf(at, sizeof(at), "%" PRId64, ev->at);
    const char *h[] = {at,           ev->connected ? "connect" : "disconnect",
                       ev->clientid, ev->username,
                       ev->peerhost, ev->node,
                       ev->reason};
    return write_n(s, ST_HISTORY_ADD, 7, h, err, doing, NULL);
}

/* A user's memberships, one row each. */
static exh_status add_members(pg_store *s, const char *name, const char *const *groups, size_t n,
                              exh_error *err, const char *doing)
{
    exh_status st = EXH_OK;
    for (size_t i = 0; !st && i < n; i++) {
        const char *m[] = {name, groups[i]};
        st = write_n(s, ST_ADD_MEMBER, 2, m, err, doing, NULL);
    }
    return st;
}

static exh_status pg_insert_user(exh_store *b, const exh_new_user *u, const char *hash,
                                 exh_error *err)
{
    pg_store *s = PG(b);
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, store_now());
    const char *v[] = {u->name, hash, u->superuser ? "true" : "false", u->clientid_pattern, now};
    long changed = 0;
    exh_status st = write_n(s, ST_INSERT_USER, 5, v, err, "adding the user", &changed);
    if (!st && !changed) st = EXH_EEXIST;
    if (st == EXH_EEXIST)
        return store_fail(b, err, EXH_EEXIST, "user '%s' already exists", u->name);
    return st ? st
              : add_members(s, u->name, u->groups, u->ngroups, err, "adding a group membership");
}

static exh_status pg_set_hash(exh_store *b, const char *name, const char *hash, exh_error *err)
{
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, store_now());
    const char *v[] = {name, hash, now};
    return write_user(PG(b), ST_SET_HASH, 3, v, name, err, "changing the password");
}

static exh_status pg_del_user(exh_store *b, const char *name, exh_error *err)
{
    const char *v[] = {name};
    return write_user(PG(b), ST_DEL_USER, 1, v, name, err, "deleting the user");
}

static exh_status pg_set_flags(exh_store *b, const char *name, int superuser, int disabled,
                               exh_error *err)
{
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, store_now());
    const char *v[] = {name,
                       superuser < 0 ? NULL
                       : superuser   ? "true"
                                     : "false",
                       disabled < 0 ? NULL
                       : disabled   ? "true"
                                    : "false",
                       now};
    return write_user(PG(b), ST_SET_FLAGS, 4, v, name, err, "changing the user");
}

static exh_status pg_set_pattern(exh_store *b, const char *name, const char *pattern,
                                 exh_error *err)
{
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, store_now());
    const char *v[] = {name, pattern, now};
    return write_user(PG(b), ST_SET_PATTERN, 3, v, name, err, "changing the clientid pattern");
}

static exh_status pg_membership(exh_store *b, const char *name, const char *group, bool add,
                                exh_error *err)
{
    pg_store *s = PG(b);
    const char *m[] = {name, group};
    long n = 0;
    exh_status st = write_n(s, add ? ST_ADD_MEMBER : ST_DEL_MEMBER, 2, m, err,
                            add ? "adding to a group" : "removing from a group", &n);
    if (st) return st;
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, store_now());
    const char *v[] = {name, now};
    if ((st = write_user(s, ST_BUMP, 2, v, name, err, "changing the user"))) return st;
    if (!n && !add)
        return store_fail(b, err, EXH_ENOTFOUND, "user '%s' is not in group '%s'", name, group);
    return EXH_OK;
}

static exh_status pg_list_groups(exh_store *b, exh_group_fn fn, void *user, exh_error *err)
{
    exh_status st = EXH_OK;
    PGresult *r = run(PG(b), ST_LIST_GROUPS, 0, NULL, err, "listing groups", &st);
    if (!r) return st;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        if (fn(PQgetvalue(r, i, 0), col_i64(r, i, 1), user)) break;
    PQclear(r);
    return EXH_OK;
}

static exh_status pg_record_session(exh_store *b, const exh_session_event *in, bool trim,
                                    exh_error *err)
{
    pg_store *s = PG(b);
    pg_event p = {0};
    exh_status st = pg_event_of(&p, in, err);
    if (st) return st;
    const exh_session_event *ev = &p.ev;
    if (ev->connected) {
        st = session_online(s, ev, err, "recording the session");
    } else {
        const char *v[] = {ev->clientid};
        st = write_n(s, ST_SESSION_OFF, 1, v, err, "recording the session", NULL);
    }
    if (!st) st = history_row(s, ev, err, "recording history");
    pg_event_free(&p);
    if (!st && trim) {
        char max[24];
        snprintf(max, sizeof(max), "%" PRIu32, b->opts.history_max);
        const char *t[] = {max};
        st = write_n(s, ST_HISTORY_TRIM, 1, t, err, "trimming history", NULL);
    }
    return st;
}

static exh_status pg_list_sessions(exh_store *b, bool online, exh_session_fn fn, void *user,
                                   exh_error *err)
{
    exh_status st = EXH_OK;
    PGresult *r = run(PG(b), online ? ST_LIST_ONLINE : ST_LIST_HISTORY, 0, NULL, err,
                      "listing sessions", &st);
    if (!r) return st;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        exh_session_event ev = {
            .clientid = col_text(r, i, 0),
            .username = col_text(r, i, 1),
            .peerhost = col_text(r, i, 2),
            .node = col_text(r, i, 3),
        };
        if (online) {
            ev.at = col_i64(r, i, 4);
            ev.connected = true;
        } else {
            ev.reason = col_text(r, i, 4);
            ev.at = col_i64(r, i, 5);
            ev.connected = !strcmp(PQgetvalue(r, i, 6), "connect");
        }
        if (fn(&ev, user)) break;
    }
    PQclear(r);
    return EXH_OK;
}

static exh_status pg_set_hash_if(exh_store *b, int64_t id, int64_t rev, const char *hash)
{
    char sid[24], srev[24], now[24];
    snprintf(sid, sizeof(sid), "%" PRId64, id);
    snprintf(srev, sizeof(srev), "%" PRId64, rev);
    snprintf(now, sizeof(now), "%" PRId64, store_now());
    const char *v[] = {sid, srev, hash, now};
    long changed = 0;
    exh_status st = write_n(PG(b), ST_SET_HASH_IF, 4, v, NULL, "upgrading a hash", &changed);
    return st ? st : changed ? EXH_OK : EXH_ENOTFOUND;
}

/* ---- migration into this store and its runtime role (store_int.h) ---- */

bool store_is_pg(const exh_store *s)
{
    return s->be == &store_pg;
}

static exh_status not_pg(exh_store *s, exh_error *err)
{
    return store_fail(s, err, EXH_EINVAL, "not a PostgreSQL store");
}

exh_status store_pg_count(exh_store *b, int64_t *users, int64_t *events, exh_error *err)
{
    if (!store_is_pg(b)) return not_pg(b, err);
    bool found;
    exh_status st =
        query_i64(PG(b), "SELECT count(*) FROM users", users, &found, err, "counting users");
    if (!st)
        st = query_i64(PG(b),
                       "SELECT (SELECT count(*) FROM history) + (SELECT count(*) FROM sessions)",
                       events, &found, err, "counting sessions");
    return st;
}

exh_status store_pg_put_user(exh_store *b, const exh_user *u, exh_error *err)
{
    if (!store_is_pg(b)) return not_pg(b, err);
    pg_store *s = PG(b);
    char rev[24], created[24], updated[24];
    snprintf(rev, sizeof(rev), "%" PRId64, u->rev);
    snprintf(created, sizeof(created), "%" PRId64, u->created);
    snprintf(updated, sizeof(updated), "%" PRId64, u->updated);
    const char *v[] = {u->name,
                       u->hash,
                       u->superuser ? "true" : "false",
                       u->disabled ? "true" : "false",
                       u->clientid_pattern,
                       rev,
                       created,
                       updated};
    char doing[200];
    snprintf(doing, sizeof(doing), "copying user '%.120s'", u->name);
    exh_status st = write_n(s, ST_PUT_USER, 8, v, err, doing, NULL);
    return st ? st
              : add_members(s, u->name, (const char *const *)u->groups, u->ngroups, err, doing);
}

exh_status store_pg_put_session(exh_store *b, const exh_session_event *ev, bool online,
                                exh_error *err)
{
    if (!store_is_pg(b)) return not_pg(b, err);
    pg_store *s = PG(b);
    pg_event p = {0};
    exh_status st = pg_event_of(&p, ev, err);
    if (st) return st;
    st = online ? session_online(s, &p.ev, err, "copying an online session")
                : history_row(s, &p.ev, err, "copying session history");
    pg_event_free(&p);
    return st;
}

/* An identifier quoted for SQL text, or NULL (err set). */
static char *quote_ident(pg_store *s, const char *id, exh_error *err)
{
    char *q = PQescapeIdentifier(s->conn, id, strlen(id));
    if (!q) {
        char msg[300];
        one_line(msg, sizeof(msg), PQerrorMessage(s->conn));
        store_fail(&s->base, err, EXH_EINVAL, "bad role name: %s", msg);
    }
    return q;
}

/*
 * A runtime role that would make "least privilege" a lie: a superuser
 * (every privilege, whatever is granted), the role owning the store's
 * tables (it may change users), or a member of that owner (it inherits,
 * or may SET ROLE to, the owner's rights).  A role that does not exist is
 * left to the GRANT, which says so.
 */
static exh_status runtime_role_refused(pg_store *s, const char *role, exh_error *err)
{
    const char *v[] = {role};
    exh_status st = EXH_OK;
    if (no_conn(s, err, "checking the runtime role", &st)) return st;
    PGresult *r = await(s,
                        PQsendQueryParams(s->conn,
                                          "SELECT r.rolsuper, t.tableowner, r.rolname = "
                                          "t.tableowner, pg_has_role(r.oid, t.tableowner, "
                                          "'MEMBER') FROM pg_roles r, pg_tables t WHERE "
                                          "r.rolname = $1 AND t.schemaname = current_schema() "
                                          "AND t.tablename = 'users'",
                                          1, NULL, v, NULL, NULL, 0),
                        err, "checking the runtime role", &st);
    if (!r) return st;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        st = res_fail(s, r, err, "checking the runtime role");
    } else if (PQntuples(r) == 1) {
        const char *owner = PQgetvalue(r, 0, 1);
        if (col_bool(r, 0, 0))
            st = store_fail(&s->base, err, EXH_EINVAL,
                            "role '%s' is a superuser: as the runtime role it could do anything "
                            "whatever is granted; name a role made without SUPERUSER",
                            role);
        else if (col_bool(r, 0, 2))
            st = store_fail(&s->base, err, EXH_EINVAL,
                            "role '%s' owns the store's tables: as the runtime role it could "
                            "change users; name a separate role for the front ends",
                            role);
        else if (col_bool(r, 0, 3))
            st = store_fail(&s->base, err, EXH_EINVAL,
                            "role '%s' is a member of '%s', which owns the store's tables: as the "
                            "runtime role it could change users; name a role outside it",
                            role, owner);
    }
    PQclear(r);
    return st;
}

/*
 * What a front end needs and no more: read users, memberships and the
 * meta row (schema and data version), write sessions, history and
 * lock-outs.  It
 * cannot add, change or delete a user -- not even to upgrade a hash at
 * login, which then fails quietly and the login stands (auth.c).
 */
exh_status store_pg_grant_runtime(exh_store *b, const char *role, exh_error *err)
{
    if (!store_is_pg(b)) return not_pg(b, err);
    pg_store *s = PG(b);
    exh_status st = runtime_role_refused(s, role, err);
    if (st) return st;
    /* Both names come back quoted as SQL needs them (the sequence's
     * schema-qualified), ready to go into the GRANTs' text. */
    PGresult *r = query(s,
                        "SELECT quote_ident(current_schema()), "
                        "pg_get_serial_sequence('history', 'id')",
                        err, "finding the schema", &st);
    if (!r) return st;
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0) || PQgetisnull(r, 0, 1)) {
        PQclear(r);
        return store_fail(b, err, EXH_ESTORE, "finding the schema: no exhook tables here");
    }
    char *who = quote_ident(s, role, err);
    if (!who) {
        PQclear(r);
        return EXH_EINVAL;
    }
    const char *schema = PQgetvalue(r, 0, 0), *seq = PQgetvalue(r, 0, 1);
    size_t n = strlen(schema) + strlen(seq) + 8 * strlen(who) + 1024;
    char *sql = malloc(n);
    if (!sql) {
        st = exh_error_nomem(err);
    } else {
        /* REVOKE first: running it again on a role granted more by hand
         * leaves it with exactly this.  The history id's sequence is
         * granted too, for the identity column's inserts. */
        snprintf(sql, n,
                 "BEGIN;"
                 "REVOKE ALL ON exhook_meta, users, memberships, sessions, history, lockouts "
                 "FROM %s;"
                 "GRANT USAGE ON SCHEMA %s TO %s;"
                 "GRANT SELECT ON exhook_meta, users, memberships TO %s;"
                 "GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, lockouts TO %s;"
                 "GRANT SELECT, INSERT, DELETE ON history TO %s;"
                 "GRANT USAGE ON SEQUENCE %s TO %s;"
                 "COMMIT",
                 who, schema, who, who, who, who, seq, who);
        st = exec(s, sql, err, "granting the runtime role");
        if (st) exec(s, "ROLLBACK", NULL, "rolling back");
        free(sql);
    }
    PQclear(r);
    PQfreemem(who);
    return st;
}

/* ---- change notices (store.h: exh_store_listen) ---- */

static exh_status pg_listen(exh_store *b, exh_error *err)
{
    return exec(PG(b), "LISTEN " PG_NOTICE_CHANNEL, err, "listening for change notices");
}

static int pg_notice_fd(const exh_store *b)
{
    return PQsocket(((const pg_store *)b)->conn);
}

static exh_status pg_notices(exh_store *b, exh_notice_fn fn, void *arg, exh_error *err)
{
    pg_store *s = PG(b);
    /* Reads what the socket holds, never waits; 0 is a lost connection. */
    if (!PQconsumeInput(s->conn) || PQstatus(s->conn) != CONNECTION_OK) {
        char msg[256];
        one_line(msg, sizeof(msg), PQerrorMessage(s->conn));
        return store_fail(b, err, EXH_ESTORE, "reading change notices: %s",
                          msg[0] ? msg : "connection lost");
    }
    PGnotify *n;
    while ((n = PQnotifies(s->conn))) {
        if (strcmp(n->relname, PG_NOTICE_CHANNEL) == 0) fn(n->extra ? n->extra : "", arg);
        PQfreemem(n);
    }
    return EXH_OK;
}

/* ---- lock-outs ---- */

/* A row of ST_LOCKOUT_STATE or ST_LOCKOUT_FAILED's RETURNING into out;
 * the key it was. */
static exh_lockout_key *lockout_row(const PGresult *r, int i, int64_t now, exh_lockout_state *out)
{
    exh_lockout_key *k = !strcmp(PQgetvalue(r, i, 0), "user") ? &out->user : &out->addr;
    k->exists = true;
    k->failures = (uint32_t)col_i64(r, i, 1);
    k->strikes = (uint32_t)col_i64(r, i, 2);
    k->locked_until = col_i64(r, i, 3);
    k->locked = k->locked_until > now;
    return k;
}

/* Keys as PostgreSQL's text takes them: invalid UTF-8 escaped (see
 * pg_event); a key not given stays NULL. */
typedef struct pg_keys {
    const char *user, *addr;
    char *owned[2];
} pg_keys;

static exh_status pg_keys_of(pg_keys *k, const char *user, const char *addr, exh_error *err)
{
    k->user = utf8_text(user, &k->owned[0]);
    k->addr = utf8_text(addr, &k->owned[1]);
    if ((user && !k->user) || (addr && !k->addr)) {
        free(k->owned[0]);
        free(k->owned[1]);
        return exh_error_nomem(err);
    }
    return EXH_OK;
}

static void pg_keys_free(pg_keys *k)
{
    free(k->owned[0]);
    free(k->owned[1]);
}

static exh_status pg_lockout_state(exh_store *b, const char *user, const char *addr, int64_t now,
                                   exh_lockout_state *out, exh_error *err)
{
    pg_keys k;
    exh_status st = pg_keys_of(&k, user, addr, err);
    if (st) return st;
    const char *v[] = {k.user, k.addr};
    PGresult *r = run(PG(b), ST_LOCKOUT_STATE, 2, v, err, "reading lock-outs", &st);
    pg_keys_free(&k);
    if (!r) return st;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        lockout_row(r, i, now, out);
    PQclear(r);
    return EXH_OK;
}

static exh_status pg_lockout_failed(exh_store *b, const char *user, const char *addr, int64_t now,
                                    const exh_lockout_params *p, exh_lockout_state *out,
                                    exh_error *err)
{
    pg_keys k;
    exh_status st = pg_keys_of(&k, user, addr, err);
    if (st) return st;
    bool locks = p->failures <= 1; /* a new row's one failure */
    int64_t first = p->backoff_ms < p->backoff_max_ms ? p->backoff_ms : p->backoff_max_ms;
    char t[8][24];
    snprintf(t[0], 24, "%" PRId64, now);
    snprintf(t[1], 24, "%" PRIu32, p->failures);
    snprintf(t[2], 24, "%" PRId64, p->window_ms);
    snprintf(t[3], 24, "%" PRId64, p->backoff_ms);
    snprintf(t[4], 24, "%" PRId64, p->backoff_max_ms);
    snprintf(t[5], 24, "%d", locks ? 0 : 1);
    snprintf(t[6], 24, "%d", locks ? 1 : 0);
    snprintf(t[7], 24, "%" PRId64, locks ? now + first : 0);
    const char *v[] = {k.user, k.addr, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]};
    PGresult *r = run(PG(b), ST_LOCKOUT_FAILED, 10, v, err, "counting a failed login", &st);
    pg_keys_free(&k);
    if (!r) return st;
    /* A key given and not returned was locked, and left alone. */
    out->user.locked = out->user.exists = user != NULL;
    out->addr.locked = out->addr.exists = addr != NULL;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        exh_lockout_key *key = lockout_row(r, i, now, out);
        key->started = key->locked;
    }
    PQclear(r);
    return EXH_OK;
}

static exh_status pg_lockout_purge(exh_store *b, int64_t now, const exh_lockout_params *p,
                                   exh_error *err)
{
    char t[3][24];
    snprintf(t[0], 24, "%" PRId64, now);
    snprintf(t[1], 24, "%" PRId64, p->window_ms);
    snprintf(t[2], 24, "%" PRId64, p->backoff_max_ms);
    const char *v[] = {t[0], t[1], t[2]};
    return write_n(PG(b), ST_LOCKOUT_PURGE, 3, v, err, "purging old lock-outs", NULL);
}

static exh_status pg_lockout_delete(exh_store *b, const char *kind, const char *name, int64_t *n,
                                    exh_error *err)
{
    pg_keys k;
    exh_status st = pg_keys_of(&k, name, NULL, err);
    if (st) return st;
    const char *v[] = {kind, k.user};
    long changed = 0;
    st = write_n(PG(b), ST_LOCKOUT_DELETE, 2, v, err, "clearing a lock-out", &changed);
    pg_keys_free(&k);
    *n = st ? 0 : changed;
    return st;
}

static exh_status pg_lockout_list(exh_store *b, bool all, int64_t now, exh_lockout_fn fn, void *arg,
                                  exh_error *err)
{
    char t[24];
    snprintf(t, sizeof(t), "%" PRId64, now);
    const char *v[] = {all ? "true" : "false", t};
    exh_status st = EXH_OK;
    PGresult *r = run(PG(b), ST_LOCKOUT_LIST, 2, v, err, "listing lock-outs", &st);
    if (!r) return st;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        exh_lockout l = {
            .kind = PQgetvalue(r, i, 0),
            .name = PQgetvalue(r, i, 1),
            .failures = (uint32_t)col_i64(r, i, 2),
            .strikes = (uint32_t)col_i64(r, i, 3),
            .window_start = col_i64(r, i, 4),
            .locked_until = col_i64(r, i, 5),
            .last_failure = col_i64(r, i, 6),
        };
        if (fn(&l, arg)) break;
    }
    PQclear(r);
    return EXH_OK;
}

const store_backend store_pg = {
    .kind = "PostgreSQL",
    .open = pg_open,
    .close = pg_close,
    .schema_version = pg_schema_version,
    .data_version = pg_data_version,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .get_user = pg_get_user,
    .user_names = pg_user_names,
    .insert_user = pg_insert_user,
    .set_hash = pg_set_hash,
    .del_user = pg_del_user,
    .set_flags = pg_set_flags,
    .set_pattern = pg_set_pattern,
    .membership = pg_membership,
    .list_groups = pg_list_groups,
    .record_session = pg_record_session,
    .list_sessions = pg_list_sessions,
    .set_hash_if = pg_set_hash_if,
    .listen = pg_listen,
    .notice_fd = pg_notice_fd,
    .notices = pg_notices,
    .lockout_state = pg_lockout_state,
    .lockout_failed = pg_lockout_failed,
    .lockout_purge = pg_lockout_purge,
    .lockout_delete = pg_lockout_delete,
    .lockout_list = pg_lockout_list,
};
