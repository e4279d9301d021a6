/*
 * test_store.c -- the credential store: creation mode and WAL, schema
 * migration from version 0 and refusal of foreign or newer schemas, users,
 * groups, revisions, sessions with bounded history, corruption reported.
 *
 * The cases about behaviour run on both backends: SQLite (a temporary
 * file) and, when EXH_TEST_PG_URI names a PostgreSQL database (the
 * store_pg_test suite starts one: tests/lib/pg.sh), PostgreSQL, each case
 * in a fresh schema of its own.  The cases about files or URIs run on
 * theirs only.
 */
#define _DEFAULT_SOURCE /* usleep */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exhook/store.h"
#include "store_int.h"

/* Real mosquitto_passwd -H sha512 output (password "secret"). */
#define MOSQ6                                                                                      \
    "$6$mfSIavGSIJVqYUDK$SGqsoJUQP3gVWsX3hwQMCbjQrVewKT6nM1rhzkcTg711HPun/7k0zdBmnVwSTokds/"       \
    "jEA5K/r+NgcVAcGJ3cGw=="

static char dir[64];
static char path[1024]; /* the case's store: an SQLite file or a PostgreSQL URI */

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/exh-store-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof(path), "%s/t.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

/* PostgreSQL: the database EXH_TEST_PG_URI names; each case gets a schema
 * of its own, made the store's by search_path in the URI's options. */
static const char *pg_base;
static char pg_schema[64];
static int pg_cases;

static void pg_exec_on(const char *uri, const char *q)
{
    PGconn *c = PQconnectdb(uri);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("connect %s: %s", uri, PQerrorMessage(c));
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static int setup_pg(void **state)
{
    (void)state;
    char q[128];
    snprintf(pg_schema, sizeof(pg_schema), "exh_t%d_%d", (int)getpid(), ++pg_cases);
    snprintf(q, sizeof(q), "CREATE SCHEMA %s", pg_schema);
    pg_exec_on(pg_base, q);
    snprintf(path, sizeof(path), "%s%coptions=-csearch_path%%3D%s", pg_base,
             strchr(pg_base, '?') ? '&' : '?', pg_schema);
    return 0;
}

static int teardown_pg(void **state)
{
    (void)state;
    char q[128];
    snprintf(q, sizeof(q), "SET client_min_messages = warning; DROP SCHEMA %s CASCADE", pg_schema);
    pg_exec_on(pg_base, q);
    return 0;
}

/* SQL on the case's own PostgreSQL schema, behind the store's back. */
static void pg_sql(const char *q)
{
    pg_exec_on(path, q);
}

static exh_store *open_store(void)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 64; /* fast hashes: these tests are about the store */
    o.hash.t_cost = 1;
    o.history_max = 10;
    exh_store *s = NULL;
    exh_error err;
    if (exh_store_open(path, &o, &s, &err) != EXH_OK) fail_msg("open: %s", err.message);
    return s;
}

static void sql(const char *q)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_create_mode_wal_version(void **state)
{
    (void)state;
    mode_t old = umask(0);
    exh_store *s = open_store();
    umask(old);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(exh_store_schema_version(s), EXH_STORE_SCHEMA_VERSION);
    exh_store_close(s);
    sqlite3 *db;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void test_migration_from_zero_and_refusals(void **state)
{
    (void)state;
    exh_store *s;
    exh_error err;
    /* version 0: an empty database file made by someone else */
    sql("PRAGMA user_version = 0");
    s = open_store();
    assert_int_equal(exh_store_schema_version(s), EXH_STORE_SCHEMA_VERSION);
    exh_store_close(s);
    /* a newer schema than we know */
    sql("PRAGMA user_version = 99");
    assert_int_equal(exh_store_open(path, NULL, &s, &err), EXH_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err.message, "newer"));
    unlink(path);
    /* somebody else's database */
    sql("CREATE TABLE foo(x)");
    assert_int_equal(exh_store_open(path, NULL, &s, &err), EXH_ESTORE);
    assert_non_null(strstr(err.message, "not an exhook database"));
    unlink(path);
    /* missing file, not allowed to create */
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    assert_int_equal(exh_store_open(path, &o, &s, &err), EXH_EIO);
    assert_non_null(strstr(err.file, "t.db"));
    assert_int_equal(access(path, F_OK), -1); /* and nothing was created */
}

static void test_corrupted_file(void **state)
{
    (void)state;
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8192; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    exh_store *s;
    exh_error err;
    assert_int_equal(exh_store_open(path, NULL, &s, &err), EXH_ESTORE);
    assert_null(s);
    assert_true(strlen(err.message) > 0);
}

static void test_users_groups_revisions(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    const char *groups[] = {"ops", "dev"};
    exh_new_user nu = {.name = "alice",
                       .password = "pw",
                       .password_len = 2,
                       .clientid_pattern = "alice-[0-9]+",
                       .groups = groups,
                       .ngroups = 2};
    assert_int_equal(exh_store_add_user(s, &nu, &err), EXH_OK);
    assert_int_equal(exh_store_add_user(s, &nu, &err), EXH_EEXIST);
    assert_non_null(strstr(err.message, "already exists"));
    exh_user u;
    assert_int_equal(exh_store_get_user(s, "alice", &u, &err), EXH_OK);
    assert_string_equal(u.name, "alice");
    assert_int_equal(strncmp(u.hash, "$argon2id$", 10), 0);
    assert_string_equal(u.clientid_pattern, "alice-[0-9]+");
    assert_int_equal(u.ngroups, 2);
    assert_string_equal(u.groups[0], "dev"); /* name order */
    int64_t rev = u.rev;
    exh_user_clear(&u);

    /* every change bumps the revision */
    assert_int_equal(exh_store_set_flags(s, "alice", 1, -1, &err), EXH_OK);
    assert_int_equal(exh_store_get_user(s, "alice", &u, &err), EXH_OK);
    assert_true(u.superuser && !u.disabled && u.rev > rev);
    rev = u.rev;
    exh_user_clear(&u);
    assert_int_equal(exh_store_del_from_group(s, "alice", "ops", &err), EXH_OK);
    assert_int_equal(exh_store_del_from_group(s, "alice", "ops", &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_add_to_group(s, "alice", "qa", &err), EXH_OK);
    assert_int_equal(exh_store_set_clientid_pattern(s, "alice", NULL, &err), EXH_OK);
    assert_int_equal(exh_store_set_password(s, "alice", "new", 3, &err), EXH_OK);
    assert_int_equal(exh_store_get_user(s, "alice", &u, &err), EXH_OK);
    assert_true(u.rev >= rev + 4);
    assert_null(u.clientid_pattern);
    assert_int_equal(u.ngroups, 2);
    assert_int_equal(exh_hash_verify(u.hash, "new", 3), EXH_VERIFY_OK);
    exh_user_clear(&u);

    /* bad input is refused, and nothing changes */
    exh_new_user bad = {
        .name = "bob", .password = "x", .password_len = 1, .clientid_pattern = "(unclosed"};
    assert_int_equal(exh_store_add_user(s, &bad, &err), EXH_EINVAL);
    assert_non_null(strstr(err.message, "clientid pattern"));
    bad.clientid_pattern = NULL;
    bad.name = "";
    assert_int_equal(exh_store_add_user(s, &bad, &err), EXH_EINVAL);
    bad.name = "bob";
    bad.password = NULL;
    bad.hash = "plaintext";
    assert_int_equal(exh_store_add_user(s, &bad, &err), EXH_EINVAL);
    const char *badgroups[] = {"ok", "bad\ngroup"};
    bad.hash = NULL;
    bad.password = "x";
    bad.groups = badgroups;
    bad.ngroups = 2;
    assert_int_equal(exh_store_add_user(s, &bad, &err), EXH_EINVAL);
    assert_int_equal(exh_store_get_user(s, "bob", &u, &err), EXH_ENOTFOUND); /* rolled back */

    /* not found */
    assert_int_equal(exh_store_set_flags(s, "nobody", 1, 1, &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_del_user(s, "nobody", &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_add_to_group(s, "nobody", "g", &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_set_password(s, "nobody", "x", 1, &err), EXH_ENOTFOUND);

    /* A name no user can have is unknown, not a store fault: PostgreSQL
     * refuses invalid UTF-8 as an error, which failed_action = ignore
     * would excuse for any client that sent one. */
    assert_int_equal(exh_store_get_user(s, "bad\xff\xfename", &u, &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_get_user(s, "ctl\x01name", &u, &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_get_user(s, "", &u, &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_get_user(s, "alice", &u, &err), EXH_OK); /* the store still works */
    exh_user_clear(&u);

    /* delete removes memberships too */
    assert_int_equal(exh_store_del_user(s, "alice", &err), EXH_OK);
    assert_int_equal(exh_store_get_user(s, "alice", &u, &err), EXH_ENOTFOUND);
    exh_store_close(s);
}

static int count_user(const exh_user *u, void *n)
{
    (void)u;
    ++*(int *)n;
    return 0;
}

static int count_group(const char *g, int64_t members, void *n)
{
    if (!strcmp(g, "all")) *(int64_t *)n = members;
    return 0;
}

static void test_listing_and_transactions(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    const char *all[] = {"all"};
    assert_int_equal(exh_store_begin(s, &err), EXH_OK);
    for (int i = 0; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof(name), "u%02d", i);
        exh_new_user nu = {.name = name, .hash = MOSQ6, .groups = all, .ngroups = 1};
        assert_int_equal(exh_store_add_user(s, &nu, &err), EXH_OK);
    }
    exh_store_rollback(s); /* none of them */
    int n = 0;
    assert_int_equal(exh_store_list_users(s, count_user, &n, &err), EXH_OK);
    assert_int_equal(n, 0);
    assert_int_equal(exh_store_begin(s, &err), EXH_OK);
    for (int i = 0; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof(name), "u%02d", i);
        exh_new_user nu = {.name = name, .hash = MOSQ6, .groups = all, .ngroups = 1};
        assert_int_equal(exh_store_add_user(s, &nu, &err), EXH_OK);
    }
    assert_int_equal(exh_store_commit(s, &err), EXH_OK);
    assert_int_equal(exh_store_list_users(s, count_user, &n, &err), EXH_OK);
    assert_int_equal(n, 50);
    int64_t members = 0;
    assert_int_equal(exh_store_list_groups(s, count_group, &members, &err), EXH_OK);
    assert_int_equal(members, 50);
    exh_store_close(s);
}

static int count_session(const exh_session_event *ev, void *n)
{
    assert_non_null(ev->clientid);
    ++*(int *)n;
    return 0;
}

static void test_sessions_bounded_history(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    for (int i = 0; i < 40; i++) {
        char cid[16];
        snprintf(cid, sizeof(cid), "c%d", i % 5);
        exh_session_event ev = {.clientid = cid,
                                .username = "u",
                                .peerhost = "10.0.0.1",
                                .at = 1000 + i,
                                .connected = i < 20 || i % 2,
                                .reason = i % 2 ? NULL : "normal"};
        assert_int_equal(exh_store_record_session(s, &ev, &err), EXH_OK);
    }
    int online = 0, history = 0;
    assert_int_equal(exh_store_list_sessions(s, true, count_session, &online, &err), EXH_OK);
    assert_int_equal(exh_store_list_sessions(s, false, count_session, &history, &err), EXH_OK);
    assert_true(online >= 1 && online <= 5);
    assert_int_equal(history, 10); /* history_max */
    exh_session_event bad = {.clientid = NULL};
    assert_int_equal(exh_store_record_session(s, &bad, &err), EXH_EINVAL);
    exh_store_close(s);
}

static int collect_name(const exh_user *u, void *acc)
{
    strcat(acc, u->name);
    strcat(acc, ",");
    return 0;
}

/* Byte order whatever the backend or the database's locale: SQLite's
 * BINARY collation is what both must give. */
static void test_listing_byte_order(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    const char *names[] = {"\xc3\xa9t\xc3\xa9", "a", "B", "_x", "a b", "ab"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        exh_new_user nu = {.name = names[i], .hash = MOSQ6};
        assert_int_equal(exh_store_add_user(s, &nu, &err), EXH_OK);
    }
    char got[128] = "";
    assert_int_equal(exh_store_list_users(s, collect_name, got, &err), EXH_OK);
    assert_string_equal(got, "B,_x,a,a b,ab,\xc3\xa9t\xc3\xa9,");
    exh_store_close(s);
}

/* Another connection's change moves data_version; reading it changes
 * nothing. */
static void test_data_version(void **state)
{
    (void)state;
    exh_store *a = open_store(), *b = open_store();
    exh_error err;
    int64_t v1, v2, v3;
    assert_int_equal(exh_store_data_version(b, &v1, &err), EXH_OK);
    assert_int_equal(exh_store_data_version(b, &v2, &err), EXH_OK);
    assert_true(v1 == v2);
    exh_new_user nu = {.name = "carol", .hash = MOSQ6};
    assert_int_equal(exh_store_add_user(a, &nu, &err), EXH_OK);
    assert_int_equal(exh_store_data_version(b, &v3, &err), EXH_OK);
    assert_true(v3 != v2);
    assert_int_equal(exh_store_add_to_group(a, "carol", "g", &err), EXH_OK);
    assert_int_equal(exh_store_data_version(b, &v1, &err), EXH_OK);
    assert_true(v1 != v3);
    exh_store_close(a);
    exh_store_close(b);
}

/* Only a URI's schema holds the store: without one and without create,
 * EXH_EIO as for a missing file, and nothing is made. */
static void test_pg_create_and_refusals(void **state)
{
    (void)state;
    exh_store *s;
    exh_error err;
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.create = false;
    assert_int_equal(exh_store_open(path, &o, &s, &err), EXH_EIO);
    assert_null(s);
    assert_non_null(strstr(err.message, "exhookctl init"));
    assert_non_null(strstr(err.file, "postgresql://"));
    o.readonly = true;
    o.create = true;
    assert_int_equal(exh_store_open(path, &o, &s, &err), EXH_EIO);
    s = open_store(); /* creates */
    assert_int_equal(exh_store_schema_version(s), EXH_STORE_SCHEMA_VERSION);
    exh_store_close(s);
    o.create = false;
    o.readonly = false;
    assert_int_equal(exh_store_open(path, &o, &s, &err), EXH_OK);
    exh_store_close(s);
    /* a newer schema than we know */
    pg_sql("UPDATE exhook_meta SET value = 99 WHERE key = 'schema_version'");
    assert_int_equal(exh_store_open(path, NULL, &s, &err), EXH_ESTORE);
    assert_null(s);
    assert_non_null(strstr(err.message, "newer"));
    /* somebody else's tables by our names */
    pg_sql("DROP TABLE exhook_meta; DROP TABLE memberships; DROP TABLE users CASCADE;"
           "DROP TABLE sessions; DROP TABLE history; CREATE TABLE users (x int)");
    assert_int_equal(exh_store_open(path, NULL, &s, &err), EXH_ESTORE);
    assert_non_null(strstr(err.message, "not an exhook database"));
}

/* exhookctl migrate's inserts keep what the source had: rev, times,
 * flags, pattern, hash, groups; session rows as given. */
static void test_pg_migration_inserts(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    int64_t users = -1, events = -1;
    assert_int_equal(store_pg_count(s, &users, &events, &err), EXH_OK);
    assert_int_equal(users, 0);
    assert_int_equal(events, 0);
    char *groups[] = {"a", "b"};
    exh_user u = {.rev = 7,
                  .name = "m",
                  .hash = "$6$c2FsdA==$x",
                  .disabled = true,
                  .clientid_pattern = "c-.*",
                  .created = 100,
                  .updated = 200,
                  .groups = groups,
                  .ngroups = 2};
    assert_int_equal(store_pg_put_user(s, &u, &err), EXH_OK);
    exh_user got;
    assert_int_equal(exh_store_get_user(s, "m", &got, &err), EXH_OK);
    assert_int_equal(got.rev, 7);
    assert_int_equal(got.created, 100);
    assert_int_equal(got.updated, 200);
    assert_true(got.disabled);
    assert_false(got.superuser);
    assert_string_equal(got.hash, u.hash);
    assert_string_equal(got.clientid_pattern, "c-.*");
    assert_int_equal(got.ngroups, 2);
    assert_string_equal(got.groups[1], "b");
    exh_user_clear(&got);
    /* a second copy of a user is an error, never a merge */
    assert_int_not_equal(store_pg_put_user(s, &u, &err), EXH_OK);
    exh_session_event ev = {.clientid = "c-1", .username = "m", .at = 5, .connected = true};
    assert_int_equal(store_pg_put_session(s, &ev, false, &err), EXH_OK);
    assert_int_equal(store_pg_put_session(s, &ev, true, &err), EXH_OK);
    assert_int_equal(store_pg_count(s, &users, &events, &err), EXH_OK);
    assert_int_equal(users, 1);
    assert_int_equal(events, 2);
    exh_store_close(s);
}

/* The password of a URI is never in an error, nor the name shown. */
static void test_pg_no_password_in_errors(void **state)
{
    (void)state;
    exh_store *s;
    exh_error err;
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.busy_timeout_ms = 2000;
    assert_int_equal(
        exh_store_open("postgresql://exhook:hunter2-secret@127.0.0.1:1/nodb", &o, &s, &err),
        EXH_ESTORE);
    assert_null(strstr(err.message, "hunter2"));
    assert_string_equal(err.file, "postgresql://exhook@127.0.0.1:1/nodb");
    assert_non_null(strstr(err.message, "cannot connect"));
    assert_int_equal(exh_store_open("postgresql://exhook:hunter2%zz@127.0.0.1:1/x", &o, &s, &err),
                     EXH_EINVAL);
    assert_null(strstr(err.message, "hunter2"));
    assert_null(strstr(err.file, "hunter2"));
    /* Reserved characters not percent-encoded in the password: libpq would
     * read part of it as the host, port or database, which would be shown. */
    static const char *const cut[] = {"postgresql://exhook:hun/ter2@127.0.0.1:1/x",
                                      "postgresql://exhook:hun@ter2@127.0.0.1:1/x",
                                      "postgresql://exhook:hun?ter2@127.0.0.1:1/x"};
    for (size_t i = 0; i < sizeof(cut) / sizeof(*cut); i++) {
        /* libpq reads the '?' one right (it fails to connect); the others
         * are refused before libpq sees them */
        assert_int_equal(exh_store_open(cut[i], &o, &s, &err), i == 2 ? EXH_ESTORE : EXH_EINVAL);
        assert_null(strstr(err.message, "ter2"));
        assert_null(strstr(err.file, "ter2"));
        char shown[256];
        exh_store_display_name(cut[i], shown, sizeof(shown));
        assert_null(strstr(shown, "ter2"));
    }
}

/* Change notices: an SQLite store has none (and says so); on
 * PostgreSQL a listener hears the name of every user another connection
 * adds, changes (flags, password, groups) or deletes, once its
 * transaction commits, and "" for an emptied table. */
static void test_sqlite_no_notices(void **state)
{
    (void)state;
    exh_store *s = open_store();
    assert_false(exh_store_has_notices(s));
    exh_error err;
    assert_int_equal(exh_store_listen(s, &err), EXH_EINVAL);
    assert_non_null(strstr(err.message, "no change notices"));
    assert_int_equal(exh_store_notice_fd(s), -1);
    exh_store_close(s);
}

typedef struct heard {
    char names[16][64];
    int n;
} heard;

static void hear(const char *name, void *arg)
{
    heard *h = arg;
    if (h->n < 16) snprintf(h->names[h->n++], sizeof(h->names[0]), "%s", name);
}

/* What the listener has heard, waiting up to 2 s for want notices. */
static heard *listen_for(exh_store *l, int want, heard *h)
{
    memset(h, 0, sizeof(*h));
    exh_error err;
    for (int i = 0; i < 40 && h->n < want; i++) {
        struct pollfd p = {.fd = exh_store_notice_fd(l), .events = POLLIN};
        poll(&p, 1, 50);
        assert_int_equal(exh_store_notices(l, hear, h, &err), EXH_OK);
    }
    return h;
}

static void test_pg_notices(void **state)
{
    (void)state;
    exh_store *w = open_store();
    exh_store *l = open_store();
    exh_error err;
    assert_true(exh_store_has_notices(l));
    assert_int_equal(exh_store_listen(l, &err), EXH_OK);
    assert_true(exh_store_notice_fd(l) >= 0);
    heard h;
    assert_int_equal(listen_for(l, 1, &h)->n, 0); /* nothing yet */

    exh_new_user u = {.name = "alice", .password = "pw", .password_len = 2};
    assert_int_equal(exh_store_add_user(w, &u, &err), EXH_OK);
    assert_int_equal(listen_for(l, 1, &h)->n, 1);
    assert_string_equal(h.names[0], "alice");
    assert_int_equal(exh_store_set_flags(w, "alice", -1, 1, &err), EXH_OK);
    assert_string_equal(listen_for(l, 1, &h)->names[0], "alice");
    assert_int_equal(exh_store_add_to_group(w, "alice", "ops", &err), EXH_OK);
    assert_string_equal(listen_for(l, 1, &h)->names[0], "alice");
    assert_int_equal(exh_store_set_password(w, "alice", "pw2", 3, &err), EXH_OK);
    assert_string_equal(listen_for(l, 1, &h)->names[0], "alice");
    /* Nothing until the transaction commits, then each name. */
    u.name = "bob";
    assert_int_equal(exh_store_begin(w, &err), EXH_OK);
    assert_int_equal(exh_store_add_user(w, &u, &err), EXH_OK);
    assert_int_equal(exh_store_del_user(w, "alice", &err), EXH_OK);
    assert_int_equal(listen_for(l, 1, &h)->n, 0);
    assert_int_equal(exh_store_commit(w, &err), EXH_OK);
    listen_for(l, 2, &h);
    assert_int_equal(h.n, 2);
    assert_true((!strcmp(h.names[0], "bob") && !strcmp(h.names[1], "alice")) ||
                (!strcmp(h.names[0], "alice") && !strcmp(h.names[1], "bob")));
    /* Behind exhookctl's back: a membership written by hand, a rename
     * (both names), a user with groups deleted (its name only, not
     * "everyone" for the memberships cascading away). */
    pg_sql("INSERT INTO memberships(user_id, grp) SELECT id, 'ops' FROM users WHERE name = 'bob'");
    assert_int_equal(listen_for(l, 1, &h)->n, 1);
    assert_string_equal(h.names[0], "bob");
    pg_sql("UPDATE users SET name = 'bobby' WHERE name = 'bob'");
    listen_for(l, 2, &h);
    assert_int_equal(h.n, 2);
    assert_true((!strcmp(h.names[0], "bob") && !strcmp(h.names[1], "bobby")) ||
                (!strcmp(h.names[0], "bobby") && !strcmp(h.names[1], "bob")));
    pg_sql("UPDATE users SET name = 'bob' WHERE name = 'bobby'");
    listen_for(l, 2, &h);
    assert_int_equal(exh_store_del_user(w, "bob", &err), EXH_OK);
    listen_for(l, 2, &h);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.names[0], "bob");
    u.name = "bob";
    assert_int_equal(exh_store_add_user(w, &u, &err), EXH_OK);
    listen_for(l, 1, &h);
    /* Session records are no user's change. */
    exh_session_event ev = {.clientid = "c1", .username = "bob", .at = 1, .connected = true};
    assert_int_equal(exh_store_record_session(w, &ev, &err), EXH_OK);
    assert_int_equal(listen_for(l, 1, &h)->n, 0);
    pg_sql("TRUNCATE users CASCADE");
    assert_int_equal(listen_for(l, 1, &h)->n, 1);
    assert_string_equal(h.names[0], "");
    /* A lost connection is a fault, not silence. */
    pg_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
           "query = 'LISTEN exhook_users' AND pid <> pg_backend_pid()");
    exh_status st = EXH_OK;
    for (int i = 0; i < 40 && st == EXH_OK; i++) {
        struct pollfd p = {.fd = exh_store_notice_fd(l), .events = POLLIN};
        poll(&p, 1, 50);
        st = exh_store_notices(l, hear, &h, &err);
    }
    assert_int_equal(st, EXH_ESTORE);
    exh_store_close(l);
    exh_store_close(w);
}

/* A store made at schema version 1 (before change notices) is migrated to
 * 2 when opened, and then sends them. */
static void test_pg_migration_to_notices(void **state)
{
    (void)state;
    exh_store *w = open_store();
    exh_store_close(w);
    pg_sql("DROP TRIGGER users_notice ON users; DROP TRIGGER users_truncated ON users; "
           "DROP TRIGGER memberships_notice ON memberships; "
           "DROP TRIGGER memberships_truncated ON memberships; "
           "DROP FUNCTION exhook_user_notice(); DROP FUNCTION exhook_member_notice(); "
           "DROP FUNCTION exhook_notice(text); "
           "UPDATE exhook_meta SET value = 1 WHERE key = 'schema_version'");
    pg_sql("DROP TABLE lockouts"); /* version 3's, made again by its step */
    w = open_store();
    assert_int_equal(exh_store_schema_version(w), EXH_STORE_SCHEMA_VERSION);
    exh_store *l = open_store();
    exh_error err;
    assert_int_equal(exh_store_listen(l, &err), EXH_OK);
    exh_new_user u = {.name = "carol", .password = "pw", .password_len = 2};
    assert_int_equal(exh_store_add_user(w, &u, &err), EXH_OK);
    heard h;
    assert_int_equal(listen_for(l, 1, &h)->n, 1);
    assert_string_equal(h.names[0], "carol");
    exh_store_close(l);
    exh_store_close(w);
}

/* An integer SQL answers on the case's schema (pg_locks and the like). */
static long pg_long(const char *q)
{
    PGconn *c = PQconnectdb(path);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("connect %s: %s", path, PQerrorMessage(c));
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", q, PQresultErrorMessage(r));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* busy_timeout 0 is an allowed setting (SQLite: never wait for a lock).
 * On PostgreSQL it is raised to a floor (store_pg.c): every call works,
 * and a lock held for a few tens of milliseconds is waited for instead
 * of failing the call at once. */
static void test_pg_busy_timeout_zero(void **state)
{
    (void)state;
    exh_store *s = open_store(); /* the schema, made with the default timeout */
    exh_store_close(s);
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 64;
    o.hash.t_cost = 1;
    o.busy_timeout_ms = 0;
    exh_error err;
    assert_int_equal(exh_store_open(path, &o, &s, &err), EXH_OK);
    exh_new_user nu = {.name = "zero", .hash = MOSQ6};
    assert_int_equal(exh_store_add_user(s, &nu, &err), EXH_OK);
    /* Another session holds the users table for 100 ms (sent without
     * waiting for its answer: the server runs it while we go on). */
    PGconn *holder = PQconnectdb(path);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    assert_int_equal(PQsendQuery(holder, "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; "
                                         "SELECT pg_sleep(0.1); COMMIT"),
                     1);
    long held = 0;
    for (int i = 0; i < 500 && !(held = pg_long("SELECT count(*) FROM pg_locks WHERE granted AND "
                                                "mode = 'AccessExclusiveLock' AND relation = "
                                                "'users'::regclass"));
         i++)
        usleep(1000);
    assert_true(held); /* else the call below would not wait for anything */
    exh_user u;
    exh_status st = exh_store_get_user(s, "zero", &u, &err);
    if (st) fail_msg("get_user with busy_timeout 0: %s", err.message);
    exh_user_clear(&u);
    PGresult *r;
    while ((r = PQgetResult(holder)))
        PQclear(r);
    PQfinish(holder);
    exh_session_event ev = {.clientid = "z-1", .at = 1, .connected = true};
    assert_int_equal(exh_store_record_session(s, &ev, &err), EXH_OK);
    exh_store_close(s);
}

static int count_event(const exh_session_event *ev, void *user)
{
    (void)ev;
    ++*(int *)user;
    return 0;
}

static int find_event(const exh_session_event *ev, void *user)
{
    const char **want = user;
    if (!strcmp(ev->clientid, want[0])) want[1] = "found";
    return 0;
}

/* PostgreSQL refuses invalid UTF-8 in text: a client id or peer that is
 * not UTF-8 must not roll back the other events of its batch (one client
 * could make every other client's history vanish).  It is stored with
 * its bad bytes written \xNN. */
static void test_pg_bad_utf8_event(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    exh_session_event evs[] = {
        {.clientid = "good-1", .peerhost = "10.0.0.1", .at = 1, .connected = true},
        {.clientid = "bad-\xff\xfe", .username = "u\xc3", .at = 2, .connected = true},
        {.clientid = "good-2", .peerhost = "10.0.0.2\x80", .reason = "r\xe2\x82", .at = 3},
    };
    assert_int_equal(exh_store_begin(s, &err), EXH_OK);
    for (size_t i = 0; i < sizeof(evs) / sizeof(*evs); i++) {
        exh_status st = exh_store_record_session(s, &evs[i], &err);
        if (st) fail_msg("event %zu: %s", i, err.message);
    }
    assert_int_equal(exh_store_commit(s, &err), EXH_OK);
    int n = 0;
    assert_int_equal(exh_store_list_sessions(s, false, count_event, &n, &err), EXH_OK);
    assert_int_equal(n, 3);
    const char *want[2] = {"bad-\\xff\\xfe", NULL};
    assert_int_equal(exh_store_list_sessions(s, true, find_event, want, &err), EXH_OK);
    assert_non_null(want[1]);
    exh_store_close(s);
}

/* ---- lock-outs ---- */

static const exh_lockout_params LP = {
    .failures = 3, .window_ms = 1000, .backoff_ms = 100, .backoff_max_ms = 400};

/* One failure of alice from 192.0.2.1 at t; the state it left. */
static exh_lockout_state lk_fail(exh_store *s, const char *user, const char *addr, int64_t t)
{
    exh_lockout_state o;
    exh_error err;
    if (exh_store_lockout_failed(s, user, user ? strlen(user) : 0, addr, t, &LP, &o, &err))
        fail_msg("lockout_failed: %s", err.message);
    return o;
}

static exh_lockout_state lk_state(exh_store *s, const char *user, const char *addr, int64_t t)
{
    exh_lockout_state o;
    exh_error err;
    if (exh_store_lockout_state(s, user, user ? strlen(user) : 0, addr, t, &o, &err))
        fail_msg("lockout_state: %s", err.message);
    return o;
}

/* Lock key user at t (N failures a ms apart); returns when it ends. */
static int64_t lk_lock(exh_store *s, const char *user, int64_t t)
{
    exh_lockout_state o;
    for (uint32_t i = 0; i < LP.failures; i++) {
        assert_false(lk_state(s, user, NULL, t + i).user.locked);
        o = lk_fail(s, user, NULL, t + i);
        if (o.user.started != (i + 1 == LP.failures))
            fail_msg("%s at %lld: failure %u: started %d (count %u, strikes %u)", user,
                     (long long)(t + i), i + 1, o.user.started, o.user.failures, o.user.strikes);
    }
    assert_true(o.user.locked);
    return o.user.locked_until;
}

/* N-1 failures lock nothing, the Nth locks both keys for the back-off;
 * failures while locked are not counted; the lock ends on time. */
static void test_lockout_counts_and_locks(void **state)
{
    (void)state;
    exh_store *s = open_store();
    int64_t t = 1700000000000;
    exh_lockout_state o = lk_state(s, "alice", "192.0.2.1", t);
    assert_false(o.user.exists || o.addr.exists || o.user.locked || o.addr.locked);
    for (int i = 0; i < 2; i++) {
        o = lk_fail(s, "alice", "192.0.2.1", t + i);
        assert_false(o.user.locked || o.addr.locked || o.user.started);
        assert_int_equal(o.user.failures, i + 1);
        assert_int_equal(o.addr.failures, i + 1);
    }
    o = lk_state(s, "alice", "192.0.2.1", t + 2);
    assert_true(o.user.exists && o.addr.exists);
    assert_false(o.user.locked || o.addr.locked);
    o = lk_fail(s, "alice", "192.0.2.1", t + 2);
    assert_true(o.user.started && o.addr.started && o.user.locked && o.addr.locked);
    assert_int_equal(o.user.locked_until, t + 2 + 100);
    assert_int_equal(o.user.strikes, 1);
    assert_int_equal(o.user.failures, 0);
    /* locked: refused logins are not failures */
    for (int i = 0; i < 5; i++) {
        o = lk_fail(s, "alice", "192.0.2.1", t + 50);
        assert_true(o.user.locked && !o.user.started);
    }
    o = lk_state(s, "alice", NULL, t + 101);
    assert_true(o.user.locked);
    assert_false(o.addr.exists); /* not asked */
    assert_int_equal(o.user.failures, 0);
    assert_int_equal(o.user.locked_until, t + 102);
    o = lk_state(s, "alice", "192.0.2.1", t + 102);
    assert_false(o.user.locked || o.addr.locked);
    /* another name, same address: the address key alone */
    o = lk_state(s, "bob", "192.0.2.1", t + 60);
    assert_false(o.user.exists);
    assert_true(o.addr.locked);
    exh_store_close(s);
}

/* The window: failures further apart than it start the count again. */
static void test_lockout_window(void **state)
{
    (void)state;
    exh_store *s = open_store();
    int64_t t = 1700000000000;
    lk_fail(s, "w", NULL, t);
    lk_fail(s, "w", NULL, t + 999);
    exh_lockout_state o = lk_fail(s, "w", NULL, t + 1001); /* the window since t has passed */
    assert_false(o.user.locked);
    assert_int_equal(o.user.failures, 1);
    lk_fail(s, "w", NULL, t + 1500);
    o = lk_fail(s, "w", NULL, t + 1600);
    assert_true(o.user.started);
    exh_store_close(s);
}

/* Each lock-out twice the last, up to the cap; a quiet time (backoff_max
 * with no failure after the lock ended) starts from the first again. */
static void test_lockout_backoff(void **state)
{
    (void)state;
    exh_store *s = open_store();
    int64_t t = 1700000000000;
    int64_t want[] = {100, 200, 400, 400, 400};
    for (int i = 0; i < 5; i++) {
        int64_t until = lk_lock(s, "b", t);
        assert_int_equal(until - (t + 2), want[i]);
        t = until + 10; /* soon after: strikes kept */
    }
    assert_int_equal(lk_state(s, "b", NULL, t).user.strikes, 5);
    /* quiet for longer than backoff_max after the last lock ended */
    t += 400;
    int64_t until = lk_lock(s, "b", t);
    assert_int_equal(until - (t + 2), 100);
    assert_int_equal(lk_state(s, "b", NULL, t + 3).user.strikes, 1);
    /* a failure inside the quiet time keeps the strikes */
    t = until + 390;
    until = lk_lock(s, "b", t);
    assert_int_equal(until - (t + 2), 200);
    exh_store_close(s);
}

static int lk_collect(const exh_lockout *l, void *arg)
{
    char *buf = arg;
    char line[400];
    snprintf(line, sizeof(line), "%s %s %u %u %s;", l->kind, l->name, l->failures, l->strikes,
             l->locked_until > 1700000000000 ? "locked" : "-");
    strcat(buf, line);
    return 0;
}

static const char *lk_list(exh_store *s, bool all, int64_t now)
{
    static char buf[4096];
    buf[0] = '\0';
    exh_error err;
    if (exh_store_lockouts(s, all, now, lk_collect, buf, &err))
        fail_msg("lockouts: %s", err.message);
    return buf;
}

/* Reset on success (the user's row only), clear (both kinds), listing. */
static void test_lockout_reset_clear_list(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    int64_t t = 1700000000000, n = -1;
    lk_fail(s, "carol", "192.0.2.9", t);
    lk_fail(s, "dave", "192.0.2.9", t);
    assert_string_equal(lk_list(s, false, t), "");
    assert_string_equal(lk_list(s, true, t),
                        "addr 192.0.2.9 2 0 -;user carol 1 0 -;user dave 1 0 -;");
    assert_int_equal(exh_store_lockout_reset_user(s, "carol", 5, &err), EXH_OK);
    exh_lockout_state o = lk_state(s, "carol", "192.0.2.9", t);
    assert_false(o.user.exists);
    assert_int_equal(o.addr.failures, 2);
    o = lk_fail(s, "dave", "192.0.2.9", t + 1);
    assert_true(o.addr.started);
    assert_false(o.user.locked);
    assert_string_equal(lk_list(s, false, t + 1), "addr 192.0.2.9 0 1 locked;");
    assert_int_equal(exh_store_lockout_clear(s, NULL, "192.0.2.9", &n, &err), EXH_OK);
    assert_int_equal(n, 1);
    assert_false(lk_state(s, "dave", "192.0.2.9", t + 2).addr.exists);
    assert_int_equal(exh_store_lockout_clear(s, NULL, "nobody", &n, &err), EXH_OK);
    assert_int_equal(n, 0);
    /* a name that is both a user and an address: both go */
    lk_fail(s, "::1", "::1", t);
    lk_fail(s, "::2", "::2", t);
    assert_int_equal(exh_store_lockout_clear(s, NULL, "::1", &n, &err), EXH_OK);
    assert_int_equal(n, 2);
    assert_int_equal(exh_store_lockout_clear(s, "addr", "::2", &n, &err), EXH_OK);
    assert_int_equal(n, 1);
    o = lk_state(s, "::2", "::2", t);
    assert_true(o.user.exists && !o.addr.exists);
    assert_int_equal(exh_store_lockout_clear(s, "user", "::2", &n, &err), EXH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(exh_store_lockout_clear(s, "group", "::2", &n, &err), EXH_EINVAL);
    /* a key with a NUL is refused; a long name is cut and hashed */
    assert_int_equal(exh_store_lockout_failed(s, "a\0b", 3, NULL, t, &LP, NULL, &err), EXH_EINVAL);
    char big[70000], big2[70000];
    memset(big, 'x', sizeof(big));
    memcpy(big2, big, sizeof(big2));
    big2[sizeof(big2) - 1] = 'y';
    for (int i = 0; i < 3; i++)
        assert_int_equal(exh_store_lockout_failed(s, big, sizeof(big), NULL, t + i, &LP, &o, &err),
                         EXH_OK);
    assert_true(o.user.started);
    exh_lockout_state o2;
    /* (big2 is no C string: its length given) */
    assert_int_equal(exh_store_lockout_state(s, big2, sizeof(big2), NULL, t + 5, &o2, &err),
                     EXH_OK);
    assert_false(o2.user.exists);
    assert_int_equal(exh_store_lockout_state(s, big, sizeof(big), NULL, t + 5, &o2, &err), EXH_OK);
    assert_true(o2.user.locked);
    exh_store_close(s);
}

static int lk_count(const exh_lockout *l, void *arg)
{
    (void)l;
    (*(int *)arg)++;
    return 0;
}

/* Rows that mean nothing any more go every 256th failure on a handle. */
static void test_lockout_purge(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    int64_t t = 1700000000000;
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "nobody-%d", i);
        lk_fail(s, name, NULL, t);
    }
    for (int i = 0; i < 52; i++) /* 252 calls */
        lk_fail(s, "late", NULL, t + 5000 + i * 1000);
    int rows = 0;
    assert_int_equal(exh_store_lockouts(s, true, t, lk_count, &rows, &err), EXH_OK);
    assert_int_equal(rows, 201);
    lk_lock(s, "held", t + 60000); /* 255: locked past the purge, kept */
    /* the 256th call, later than window and backoff_max: it purges */
    lk_fail(s, "late", NULL, t + 60010);
    rows = 0;
    assert_int_equal(exh_store_lockouts(s, true, t, lk_count, &rows, &err), EXH_OK);
    assert_int_equal(rows, 2); /* held, late */
    exh_store_close(s);
}

/* A store at schema version 2 is migrated to 3 when opened: its users
 * stay, lock-outs work. */
static void test_lockout_migration_keeps_data(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    exh_new_user u = {.name = "erin", .password = "pw", .password_len = 2};
    assert_int_equal(exh_store_add_user(s, &u, &err), EXH_OK);
    exh_store_close(s);
    if (pg_base && strstr(path, "postgres"))
        pg_sql("DROP TABLE lockouts; UPDATE exhook_meta SET value = 2 WHERE key = "
               "'schema_version'");
    else
        sql("DROP TABLE lockouts; PRAGMA user_version = 2");
    s = open_store();
    assert_int_equal(exh_store_schema_version(s), 3);
    exh_user got;
    assert_int_equal(exh_store_get_user(s, "erin", &got, &err), EXH_OK);
    exh_user_clear(&got);
    assert_true(lk_lock(s, "erin", 1700000000000) > 0);
    exh_store_close(s);
}

/* The cases every backend must pass alike. */
#define BOTH(setup, teardown)                                                                      \
    cmocka_unit_test_setup_teardown(test_users_groups_revisions, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_listing_and_transactions, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_sessions_bounded_history, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_listing_byte_order, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_data_version, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_lockout_counts_and_locks, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_lockout_window, setup, teardown),                     \
        cmocka_unit_test_setup_teardown(test_lockout_backoff, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_lockout_reset_clear_list, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_lockout_purge, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_lockout_migration_keeps_data, setup, teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test_setup_teardown(test_create_mode_wal_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_zero_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_no_notices, setup, teardown),
        BOTH(setup, teardown),
    };
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test_setup_teardown(test_pg_create_and_refusals, setup_pg, teardown_pg),
        cmocka_unit_test_setup_teardown(test_pg_no_password_in_errors, setup_pg, teardown_pg),
        cmocka_unit_test_setup_teardown(test_pg_migration_inserts, setup_pg, teardown_pg),
        cmocka_unit_test_setup_teardown(test_pg_notices, setup_pg, teardown_pg),
        cmocka_unit_test_setup_teardown(test_pg_migration_to_notices, setup_pg, teardown_pg),
        cmocka_unit_test_setup_teardown(test_pg_busy_timeout_zero, setup_pg, teardown_pg),
        cmocka_unit_test_setup_teardown(test_pg_bad_utf8_event, setup_pg, teardown_pg),
        BOTH(setup_pg, teardown_pg),
    };
    int failed = cmocka_run_group_tests_name("store on SQLite", sqlite_tests, NULL, NULL);
    /* Without a server (the plain test_store run) PostgreSQL is not
     * tried; store_pg_test provides one and fails if it cannot. */
    if ((pg_base = getenv("EXH_TEST_PG_URI")) && *pg_base)
        failed += cmocka_run_group_tests_name("store on PostgreSQL", pg_tests, NULL, NULL);
    return failed;
}
