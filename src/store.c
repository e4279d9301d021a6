/*
 * store.c -- the credential store's public API (DESIGN §4), over two
 * backends: SQLite (store_sqlite.c) and PostgreSQL (store_pg.c).
 *
 * The location picks the backend: a postgresql:// or postgres:// URI is a
 * PostgreSQL database, anything else an SQLite file.  Everything that
 * must behave the same whichever holds the rows lives here, once: input
 * validation, hashing, the transaction around a multi-statement write,
 * history trimming, the auth check's helpers (store_int.h).
 */
#include "exhook/store.h"
#include "exhook/topic.h"
#include "store_backend.h"
#include "store_int.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "error_int.h"

void exh_store_opts_default(exh_store_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->busy_timeout_ms = 5000;
    o->create = true;
    exh_hash_params_default(&o->hash);
    o->upgrade_on_login = true;
    o->history_max = 100000;
    o->cache_kib = 2048;
}

exh_status store_fail(const exh_store *s, exh_error *err, exh_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    exh_error_vset(err, st, s ? s->name : NULL, 0, 0, fmt, ap);
    va_end(ap);
    return st;
}

exh_status store_base_init(exh_store *s, const store_backend *be, const char *name,
                           const exh_store_opts *o, exh_error *err)
{
    s->be = be;
    if (o)
        s->opts = *o;
    else
        exh_store_opts_default(&s->opts);
    if (!(s->name = strdup(name))) return exh_error_nomem(err);
    return EXH_OK;
}

void store_base_free(exh_store *s)
{
    free(s->name);
    s->name = NULL;
}

int64_t store_now(void)
{
    return (int64_t)time(NULL);
}

bool store_is_pg_uri(const char *location)
{
    return location &&
           (!strncmp(location, "postgresql://", 13) || !strncmp(location, "postgres://", 11));
}

void exh_store_display_name(const char *location, char *out, size_t n)
{
    if (store_is_pg_uri(location))
        store_pg_display_name(location, out, n);
    else
        snprintf(out, n, "%s", location ? location : "");
}

bool exh_store_location_is_pg(const char *location)
{
    return store_is_pg_uri(location);
}

bool exh_store_location_has_password(const char *location)
{
    return store_is_pg_uri(location) && store_pg_has_password(location);
}

exh_status exh_store_open(const char *path, const exh_store_opts *opts, exh_store **out,
                          exh_error *err)
{
    *out = NULL;
    const store_backend *be = store_is_pg_uri(path) ? &store_pg : &store_sqlite;
    return be->open(path, opts, out, err);
}

void exh_store_close(exh_store *s)
{
    if (s) s->be->close(s);
}

int exh_store_schema_version(exh_store *s)
{
    return s->be->schema_version(s);
}

exh_status exh_store_data_version(exh_store *s, int64_t *out, exh_error *err)
{
    return s->be->data_version(s, out, err);
}

bool exh_store_has_notices(const exh_store *s)
{
    return s->be->listen != NULL;
}

exh_status exh_store_listen(exh_store *s, exh_error *err)
{
    if (!s->be->listen)
        return store_fail(s, err, EXH_EINVAL,
                          "an %s store sends no change notices (poll its data version)",
                          s->be->kind);
    return s->be->listen(s, err);
}

int exh_store_notice_fd(const exh_store *s)
{
    return s->be->notice_fd ? s->be->notice_fd(s) : -1;
}

exh_status exh_store_notices(exh_store *s, exh_notice_fn fn, void *arg, exh_error *err)
{
    if (!s->be->notices)
        return store_fail(s, err, EXH_EINVAL, "an %s store sends no change notices", s->be->kind);
    return s->be->notices(s, fn, arg, err);
}

void exh_user_clear(exh_user *u)
{
    if (!u) return;
    free(u->name);
    free(u->hash);
    free(u->clientid_pattern);
    for (size_t i = 0; i < u->ngroups; i++)
        free(u->groups[i]);
    free(u->groups);
    memset(u, 0, sizeof(*u));
}

/* Why v can never be a stored name (NULL: it can): 1 to 65535 bytes, no
 * control character, valid UTF-8. */
static const char *unstorable(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n > 65535) return "must be 1 to 65535 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) return "holds a control character";
    /* MQTT sends names as UTF-8 strings: another name could never log in,
     * and would make list-users --json invalid JSON.  The topic checker
     * tests the encoding before anything topic-specific. */
    if (exh_topic_check_name(v, n) == EXH_TOPIC_BAD_UTF8) return "is not valid UTF-8";
    return NULL;
}

exh_status exh_store_get_user(exh_store *s, const char *name, exh_user *out, exh_error *err)
{
    /* A name no user can have is not looked up: it is unknown, whatever
     * the backend would say -- PostgreSQL refuses invalid UTF-8 as an error,
     * which would turn any client's login into a "store fault" (excused by
     * failed_action = ignore) at will. */
    if (unstorable(name)) {
        memset(out, 0, sizeof(*out));
        return store_fail(s, err, EXH_ENOTFOUND, "no such user (not a name a user can have)");
    }
    return s->be->get_user(s, name, out, err);
}

static exh_status check_name(exh_store *s, const char *what, const char *v, exh_error *err)
{
    const char *why = unstorable(v);
    return why ? store_fail(s, err, EXH_EINVAL, "%s %s", what, why) : EXH_OK;
}

/* A clientid pattern must compile, whole-string, as the auth check will
 * use it. */
static exh_status check_pattern(exh_store *s, const char *re, exh_error *err)
{
    if (!re) return EXH_OK;
    int code;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                                  PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
    if (!c) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return store_fail(s, err, EXH_EINVAL, "bad clientid pattern at offset %zu: %s", (size_t)off,
                          (const char *)msg);
    }
    pcre2_code_free(c);
    return EXH_OK;
}

exh_status exh_store_begin(exh_store *s, exh_error *err)
{
    exh_status st = s->be->begin(s, err);
    if (!st) s->in_tx = 1;
    return st;
}

exh_status exh_store_commit(exh_store *s, exh_error *err)
{
    exh_status st = s->be->commit(s, err);
    if (!st) s->in_tx = 0;
    return st;
}

void exh_store_rollback(exh_store *s)
{
    s->be->rollback(s);
    s->in_tx = 0;
}

/* Run body inside a transaction unless the caller already opened one. */
#define IN_TX(s, err, body)                                                                        \
    do {                                                                                           \
        int own_ = !(s)->in_tx;                                                                    \
        exh_status st_ = own_ ? exh_store_begin((s), (err)) : EXH_OK;                              \
        if (!st_) st_ = (body);                                                                    \
        if (own_ && !st_) st_ = exh_store_commit((s), (err));                                      \
        if (own_ && st_ && (s)->in_tx) exh_store_rollback(s);                                      \
        return st_;                                                                                \
    } while (0)

exh_status exh_store_add_user(exh_store *s, const exh_new_user *u, exh_error *err)
{
    exh_status st;
    if ((st = check_name(s, "a user name", u->name, err)) ||
        (st = check_pattern(s, u->clientid_pattern, err)))
        return st;
    /* Every group before any row: a bad one then changes nothing. */
    for (size_t i = 0; i < u->ngroups; i++)
        if ((st = check_name(s, "a group name", u->groups[i], err))) return st;
    char hash[EXH_HASH_MAX];
    if (u->hash) {
        if (exh_hash_identify(u->hash) == EXH_HASH_UNKNOWN)
            return store_fail(s, err, EXH_EINVAL,
                              "user '%s': not a password hash this store can verify", u->name);
        if (strlen(u->hash) >= sizeof(hash))
            return store_fail(s, err, EXH_EINVAL, "user '%s': hash too long", u->name);
        strcpy(hash, u->hash);
    } else if ((st = exh_hash_password(u->password ? u->password : "", u->password_len,
                                       &s->opts.hash, hash, sizeof(hash), err))) {
        return st;
    }
    IN_TX(s, err, s->be->insert_user(s, u, hash, err));
}

exh_status exh_store_set_hash(exh_store *s, const char *name, const char *hash, exh_error *err)
{
    if (exh_hash_identify(hash) == EXH_HASH_UNKNOWN)
        return store_fail(s, err, EXH_EINVAL,
                          "user '%s': not a password hash this store can verify", name);
    return s->be->set_hash(s, name, hash, err);
}

exh_status exh_store_set_password(exh_store *s, const char *name, const char *pw, size_t pwlen,
                                  exh_error *err)
{
    char hash[EXH_HASH_MAX];
    exh_status st = exh_hash_password(pw, pwlen, &s->opts.hash, hash, sizeof(hash), err);
    return st ? st : exh_store_set_hash(s, name, hash, err);
}

exh_status exh_store_del_user(exh_store *s, const char *name, exh_error *err)
{
    return s->be->del_user(s, name, err);
}

exh_status exh_store_set_flags(exh_store *s, const char *name, int superuser, int disabled,
                               exh_error *err)
{
    return s->be->set_flags(s, name, superuser, disabled, err);
}

exh_status exh_store_set_clientid_pattern(exh_store *s, const char *name, const char *pattern,
                                          exh_error *err)
{
    exh_status st = check_pattern(s, pattern, err);
    return st ? st : s->be->set_pattern(s, name, pattern, err);
}

exh_status exh_store_add_to_group(exh_store *s, const char *name, const char *group, exh_error *err)
{
    exh_status st = check_name(s, "a group name", group, err);
    if (st) return st;
    IN_TX(s, err, s->be->membership(s, name, group, true, err));
}

exh_status exh_store_del_from_group(exh_store *s, const char *name, const char *group,
                                    exh_error *err)
{
    IN_TX(s, err, s->be->membership(s, name, group, false, err));
}

exh_status exh_store_list_users(exh_store *s, exh_user_fn fn, void *user, exh_error *err)
{
    /* Names first, then each user: a user's fetch reuses the backend's
     * get statement, so the listing must not be left mid-step. */
    char **names = NULL;
    size_t n = 0;
    exh_status st = s->be->user_names(s, &names, &n, err);
    for (size_t i = 0; !st && i < n; i++) {
        exh_user u;
        st = exh_store_get_user(s, names[i], &u, err);
        if (st == EXH_ENOTFOUND) { /* deleted meanwhile */
            st = EXH_OK;
            continue;
        }
        if (!st && fn(&u, user)) i = n;
        exh_user_clear(&u);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

exh_status exh_store_list_groups(exh_store *s, exh_group_fn fn, void *user, exh_error *err)
{
    return s->be->list_groups(s, fn, user, err);
}

exh_status exh_store_record_session(exh_store *s, const exh_session_event *ev, exh_error *err)
{
    if (!ev->clientid) return store_fail(s, err, EXH_EINVAL, "a session needs a client id");
    /* Keep the history bounded; trimming every 256 events is cheap. */
    bool trim = ++s->history_adds % 256 == 0 || s->opts.history_max < 256;
    IN_TX(s, err, s->be->record_session(s, ev, trim, err));
}

exh_status exh_store_list_sessions(exh_store *s, bool online, exh_session_fn fn, void *user,
                                   exh_error *err)
{
    return s->be->list_sessions(s, online, fn, user, err);
}

bool store_upgrade_wanted(const exh_store *s, const char *hash)
{
    return s->opts.upgrade_on_login && exh_hash_needs_upgrade(hash, &s->opts.hash);
}

exh_status store_hash_new(const exh_store *s, const char *pw, size_t pwlen, char *out,
                          size_t outsize)
{
    return exh_hash_password(pw, pwlen, &s->opts.hash, out, outsize, NULL);
}

const char *store_dummy_hash(exh_store *s)
{
    if (!s->dummy_hash[0]) {
        unsigned char pw[24];
        if (RAND_bytes(pw, sizeof(pw)) != 1 ||
            store_hash_new(s, (const char *)pw, sizeof(pw), s->dummy_hash, sizeof(s->dummy_hash)) !=
                EXH_OK)
            s->dummy_hash[0] = '\0';
        OPENSSL_cleanse(pw, sizeof(pw));
    }
    return s->dummy_hash[0] ? s->dummy_hash : NULL;
}

exh_status store_set_hash_if(exh_store *s, int64_t id, int64_t rev, const char *hash)
{
    return s->be->set_hash_if(s, id, rev, hash);
}

/* ---- lock-outs (store.h) ---- */

/* The key text for name (len bytes) in buf (EXH_LOCKOUT_NAME_MAX + 1
 * bytes): *out NULL for a key not given.  A name longer than the maximum
 * keeps its first bytes and a hash of the whole: PostgreSQL cannot index
 * a key of many kilobytes, and an MQTT user name may have 65535 bytes.
 * Two names sharing a key lock each other out, which a client could do
 * anyway by trying the other name itself. */
static exh_status lockout_key(exh_store *s, const char *name, size_t len, char *buf,
                              const char **out, exh_error *err)
{
    *out = NULL;
    if (!name) return EXH_OK;
    if (memchr(name, '\0', len))
        return store_fail(s, err, EXH_EINVAL, "a lock-out key cannot hold a NUL");
    if (len <= EXH_LOCKOUT_NAME_MAX) {
        memcpy(buf, name, len);
        buf[len] = '\0';
    } else {
        uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
        for (size_t i = 0; i < len; i++)
            h = (h ^ (unsigned char)name[i]) * 0x100000001b3ULL;
        size_t keep = EXH_LOCKOUT_NAME_MAX - 17;
        memcpy(buf, name, keep);
        snprintf(buf + keep, 18, "~%016llx", (unsigned long long)h);
    }
    *out = buf;
    return EXH_OK;
}

exh_status exh_store_lockout_state(exh_store *s, const char *user, size_t user_len,
                                   const char *addr, int64_t now_ms, exh_lockout_state *out,
                                   exh_error *err)
{
    memset(out, 0, sizeof(*out));
    char ub[EXH_LOCKOUT_NAME_MAX + 1], ab[EXH_LOCKOUT_NAME_MAX + 1];
    const char *u, *a;
    exh_status st;
    if ((st = lockout_key(s, user, user_len, ub, &u, err)) ||
        (st = lockout_key(s, addr, addr ? strlen(addr) : 0, ab, &a, err)))
        return st;
    if (!u && !a) return EXH_OK;
    return s->be->lockout_state(s, u, a, now_ms, out, err);
}

exh_status exh_store_lockout_failed(exh_store *s, const char *user, size_t user_len,
                                    const char *addr, int64_t now_ms, const exh_lockout_params *p,
                                    exh_lockout_state *out, exh_error *err)
{
    exh_lockout_state ignored;
    if (!out) out = &ignored;
    memset(out, 0, sizeof(*out));
    /* The shift in LOCKOUT_SET stays inside 64 bits for a backoff_max
     * under 2^32 ms (49 days). */
    if (p->window_ms < 0 || p->backoff_ms < 0 || p->backoff_max_ms < 0 ||
        p->backoff_max_ms >= (int64_t)1 << 32)
        return store_fail(s, err, EXH_EINVAL, "lock-out times out of range");
    if (!p->failures) return EXH_OK; /* lock-outs off */
    char ub[EXH_LOCKOUT_NAME_MAX + 1], ab[EXH_LOCKOUT_NAME_MAX + 1];
    const char *u, *a;
    exh_status st;
    if ((st = lockout_key(s, user, user_len, ub, &u, err)) ||
        (st = lockout_key(s, addr, addr ? strlen(addr) : 0, ab, &a, err)))
        return st;
    if (!u && !a) return EXH_OK;
    if ((st = s->be->lockout_failed(s, u, a, now_ms, p, out, err))) return st;
    if (++s->lockout_fails % 256 == 0) st = s->be->lockout_purge(s, now_ms, p, err);
    return st;
}

exh_status exh_store_lockout_reset_user(exh_store *s, const char *user, size_t user_len,
                                        exh_error *err)
{
    char ub[EXH_LOCKOUT_NAME_MAX + 1];
    const char *u;
    int64_t n;
    exh_status st = lockout_key(s, user, user_len, ub, &u, err);
    return st || !u ? st : s->be->lockout_delete(s, "user", u, &n, err);
}

exh_status exh_store_lockouts(exh_store *s, bool all, int64_t now_ms, exh_lockout_fn fn, void *arg,
                              exh_error *err)
{
    return s->be->lockout_list(s, all, now_ms, fn, arg, err);
}

exh_status exh_store_lockout_clear(exh_store *s, const char *kind, const char *name,
                                   int64_t *cleared, exh_error *err)
{
    char b[EXH_LOCKOUT_NAME_MAX + 1];
    const char *k;
    *cleared = 0;
    if (kind && strcmp(kind, "user") && strcmp(kind, "addr"))
        return store_fail(s, err, EXH_EINVAL, "a lock-out's kind is 'user' or 'addr'");
    exh_status st = lockout_key(s, name, strlen(name), b, &k, err);
    return st ? st : s->be->lockout_delete(s, kind, k, cleared, err);
}
