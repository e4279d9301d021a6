/*
 * clients.c -- see clients.h.  A hash table of records keyed by key and
 * username (a key's records share a bucket), under one reader-writer lock:
 * ACL checks read it, logins and disconnects write it.  Refused records are
 * also on a list, oldest first, so their number stays bounded.
 */
#include "clients.h"

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct client {
    char *key;
    size_t klen;
    char *cid; /* the client id it logged in with (== key unless per connection) */
    size_t cidlen;
    char *username; /* who logged in (NULL: anonymous); a check by anyone else is denied */
    size_t username_len;
    /* No NUL inside: svc_clients_cached may strcmp it.  Defensive: the
     * plugin (the one decision-cache user) takes names from Mosquitto as
     * C strings; another front end's names could hold one. */
    bool username_cstr;
    svc_client_state state;
    uint64_t gen; /* the login that made it; 0: a store lookup */
    bool superuser;
    char **groups;
    exh_str *gstr; /* the groups as the evaluator takes them */
    size_t ngroups;
    exh_auth_digest digest;
    exh_addr peer;    /* the login's address (family 0: unknown) */
    int64_t rev;      /* svc_clients_each_known's; -1: never looked at */
    bool revoked;     /* a verified login revoked since (REFUSED, never evicted) */
    bool listed;      /* on the refused list */
    svc_decision *dc; /* SVC_DC_WAYS, or NULL */
    uint8_t dc_next;
    struct client *next;          /* in its bucket */
    struct client *rprev, *rnext; /* on the refused list (REFUSED and not revoked) */
} client;

enum { BUCKETS = 65536 };

struct svc_clients {
    pthread_rwlock_t lock;
    bool per_connection, one_thread, decision_cache;
    /* One thread only: the record svc_clients_cached just missed in, and
     * the way it reserved there, for the svc_clients_with that follows
     * (no second search).  Any change to the table forgets it. */
    client *hint;
    svc_decision *hint_slot;
    client *refused_head, *refused_tail; /* oldest first */
    size_t refused_count;
    bool refused_full_said;
    uint64_t next_gen;
    client *buckets[BUCKETS];
};

svc_clients *svc_clients_new(bool per_connection, bool one_thread, bool decision_cache)
{
    svc_clients *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    if (pthread_rwlock_init(&t->lock, NULL) != 0) {
        free(t);
        return NULL;
    }
    t->per_connection = per_connection;
    t->one_thread = one_thread;
    t->decision_cache = one_thread && decision_cache; /* written under the read lock */
    t->next_gen = 1;
    return t;
}

/* The lock, unless one thread is all there is (the Mosquitto plugin: an
 * uncontended lock still costs two atomic operations a check). */
static void rdlock(svc_clients *t)
{
    if (!t->one_thread) pthread_rwlock_rdlock(&t->lock);
}

static void wrlock(svc_clients *t)
{
    if (!t->one_thread) pthread_rwlock_wrlock(&t->lock);
    t->hint = NULL;
    t->hint_slot = NULL;
}

static void unlock(svc_clients *t)
{
    if (!t->one_thread) pthread_rwlock_unlock(&t->lock);
}

static size_t key_hash(const char *s, size_t n)
{
    if (n == sizeof(uint64_t)) { /* a connection's pointer: one multiply */
        uint64_t k;
        memcpy(&k, s, sizeof(k));
        return (size_t)((k * 0x9e3779b97f4a7c15ULL) >> 48) & (BUCKETS - 1);
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 32)) & (BUCKETS - 1);
}

static void free_groups(char **groups, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(groups[i]);
    free(groups);
}

static void client_free(client *c)
{
    if (!c) return;
    free_groups(c->groups, c->ngroups);
    free(c->gstr);
    if (c->cid != c->key) free(c->cid);
    free(c->key);
    free(c->username);
    free(c->dc);
    free(c);
}

void svc_clients_free(svc_clients *t)
{
    if (!t) return;
    for (size_t b = 0; b < BUCKETS; b++)
        while (t->buckets[b]) {
            client *c = t->buckets[b];
            t->buckets[b] = c->next;
            client_free(c);
        }
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static bool same_key(const client *c, const char *key, size_t klen)
{
    if (c->klen != klen) return false;
    if (klen == sizeof(uint64_t)) { /* a connection's pointer: one compare, no call */
        uint64_t a, b;
        memcpy(&a, c->key, sizeof(a));
        memcpy(&b, key, sizeof(b));
        return a == b;
    }
    return memcmp(c->key, key, klen) == 0;
}

static bool same_user(const client *c, const char *user, size_t ulen)
{
    if (!c->username || !user) return !c->username && !user;
    return c->username_len == ulen && memcmp(c->username, user, ulen) == 0;
}

/* ---- under the write lock ---- */

/* The record of (key, user), or where it would go. */
static client **slot(svc_clients *t, const char *key, size_t klen, const char *user, size_t ulen)
{
    client **pp = &t->buckets[key_hash(key, klen)];
    while (*pp && (!same_key(*pp, key, klen) || !same_user(*pp, user, ulen)))
        pp = &(*pp)->next;
    return pp;
}

static bool seen(svc_clients *t, const char *key, size_t klen)
{
    for (client *c = t->buckets[key_hash(key, klen)]; c; c = c->next)
        if (same_key(c, key, klen)) return true;
    return false;
}

static void refused_link(svc_clients *t, client *c)
{
    c->rprev = t->refused_tail;
    c->rnext = NULL;
    if (t->refused_tail)
        t->refused_tail->rnext = c;
    else
        t->refused_head = c;
    t->refused_tail = c;
    t->refused_count++;
    c->listed = true;
}

static void refused_unlink(svc_clients *t, client *c)
{
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        t->refused_head = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        t->refused_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    c->listed = false;
    assert(t->refused_count > 0);
    t->refused_count--;
}

/* Take c out of the table (and the refused list); the caller frees it. */
static void unlink_client(svc_clients *t, client **pp)
{
    client *c = *pp;
    *pp = c->next;
    if (c->listed) refused_unlink(t, c);
}

/* Put c in the table, replacing the record of its key and user; the old
 * one is returned for the caller to free outside the lock. */
static client *install(svc_clients *t, client *c)
{
    client **pp = slot(t, c->key, c->klen, c->username, c->username_len);
    client *old = *pp;
    if (old) unlink_client(t, pp);
    size_t b = key_hash(c->key, c->klen);
    c->next = t->buckets[b];
    t->buckets[b] = c;
    if (c->state == SVC_CLIENT_REFUSED) refused_link(t, c);
    return old;
}

/* Over the cap: the oldest refused record goes (returned, to be freed). */
static client *evict_refused(svc_clients *t)
{
    if (t->refused_count <= SVC_CLIENTS_REFUSED_MAX) return NULL;
    client *c = t->refused_head;
    client **pp = slot(t, c->key, c->klen, c->username, c->username_len);
    assert(*pp == c);
    unlink_client(t, pp);
    return c;
}

/* ---- records ---- */

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* A new record (not installed); NULL when out of memory (groups freed). */
static client *make(svc_clients *t, const char *key, size_t klen, const char *cid, size_t cidlen,
                    const exh_addr *peer, const char *user, size_t ulen, svc_client_state state,
                    bool superuser, char **groups, size_t ngroups)
{
    client *c = calloc(1, sizeof(*c));
    if (!c) {
        free_groups(groups, ngroups);
        return NULL;
    }
    c->groups = groups;
    c->ngroups = ngroups;
    c->key = dup_bytes(key, klen);
    c->klen = klen;
    bool own_cid = cid && (cidlen != klen || memcmp(cid, key, klen) != 0);
    c->cid = own_cid ? dup_bytes(cid, cidlen) : c->key;
    c->cidlen = own_cid ? cidlen : klen;
    c->username = user ? dup_bytes(user, ulen) : NULL;
    c->username_len = user ? ulen : 0;
    c->username_cstr = !user || !memchr(user, '\0', ulen);
    c->state = state;
    c->superuser = superuser;
    c->rev = -1;
    if (peer) c->peer = *peer;
    c->gstr = ngroups ? malloc(ngroups * sizeof(*c->gstr)) : NULL;
    if (t->decision_cache && (state == SVC_CLIENT_KNOWN || state == SVC_CLIENT_NOOPINION))
        /* Each way on a cache line of its own: a hit reads one line, and
         * the topic compare costs the same wherever the heap put it. */
        if ((c->dc = aligned_alloc(64, SVC_DC_WAYS * sizeof(*c->dc))))
            memset(c->dc, 0, SVC_DC_WAYS * sizeof(*c->dc));
    if (!c->key || !c->cid || (user && !c->username) || (ngroups && !c->gstr)) {
        client_free(c);
        return NULL;
    }
    for (size_t i = 0; i < ngroups; i++)
        c->gstr[i] = (exh_str){groups[i], strlen(groups[i])};
    return c;
}

static void say_full(svc_clients *t, bool evicted)
{
    if (evicted && !t->refused_full_said) {
        t->refused_full_said = true;
        svc_log(LOG_WARN,
                "more than %d refused logins remembered: the oldest are forgotten (their "
                "client ids are looked up in the store again)",
                SVC_CLIENTS_REFUSED_MAX);
    }
}

uint64_t svc_clients_begin(svc_clients *t, const char *key, size_t klen, const char *cid,
                           size_t cidlen, const exh_addr *peer, const char *user, size_t ulen)
{
    /* Made before the lock: allocation stays outside it.  Out of memory:
     * the old record is dropped and nothing replaces it, so at worst the
     * store is asked (it holds no rights for a user it refuses). */
    client *c =
        make(t, key, klen, cid, cidlen, peer, user, ulen, SVC_CLIENT_REFUSED, false, NULL, 0);
    client *old = NULL, *evicted = NULL;
    wrlock(t);
    uint64_t gen = t->next_gen++;
    client **pp = slot(t, key, klen, user, ulen);
    if (*pp && (*pp)->state == SVC_CLIENT_KNOWN) {
        /* A verified login of this user keeps its rights until this one
         * succeeds (clients.h); the new login's end is matched by gen. */
        (*pp)->gen = gen;
        old = c;
    } else if (c) {
        c->gen = gen;
        old = install(t, c);
        evicted = evict_refused(t);
    } else if (*pp) {
        old = *pp;
        unlink_client(t, pp);
    }
    unlock(t);
    say_full(t, evicted != NULL);
    client_free(old);
    client_free(evicted);
    return gen;
}

void svc_grant_clear(svc_grant *g)
{
    free_groups(g->groups, g->ngroups);
    g->groups = NULL;
    g->ngroups = 0;
}

void svc_clients_end(svc_clients *t, const char *key, size_t klen, uint64_t gen, const char *cid,
                     size_t cidlen, const exh_addr *peer, const char *user, size_t ulen,
                     svc_grant *g)
{
    client *c = NULL, *old = NULL, *evicted = NULL;
    /* The client id and address are this login's: the record begin left
     * may be an earlier verified login's (a takeover from elsewhere). */
    c = make(t, key, klen, cid, cidlen, peer, user, ulen, g->state, g->superuser, g->groups,
             g->ngroups);
    g->groups = NULL; /* the record's now, or freed */
    g->ngroups = 0;
    if (c) c->digest = g->digest;
    wrlock(t);
    client **pp = slot(t, key, klen, user, ulen);
    client *cur = *pp;
    if (!cur || cur->gen != gen) {
        old = c; /* a later login (or a disconnect) owns the key now */
    } else if (g->state == SVC_CLIENT_REFUSED &&
               (cur->state == SVC_CLIENT_REFUSED ||
                (cur->state == SVC_CLIENT_KNOWN && !t->per_connection))) {
        /* Already grants nothing, or a verified login of this user stays
         * (another connection's failed login takes nothing from it).  On
         * the same connection -- the broker asking again, at a reload --
         * a refusal ends what the earlier login granted. */
        old = c;
    } else if (c) {
        c->gen = gen;
        old = install(t, c);
        evicted = evict_refused(t);
    } else if (cur->state == SVC_CLIENT_KNOWN) {
        /* Out of memory recording a new login over a verified one: the
         * old rights must not stand for the new login; nothing is left,
         * and the store is asked. */
        old = cur;
        unlink_client(t, pp);
    }
    unlock(t);
    say_full(t, evicted != NULL);
    client_free(old);
    client_free(evicted);
}

void svc_clients_remember(svc_clients *t, const char *key, size_t klen, const char *user,
                          size_t ulen, bool superuser, char **groups, size_t ngroups)
{
    if (t->per_connection) {
        free_groups(groups, ngroups);
        return;
    }
    client *c = make(t, key, klen, key, klen, NULL, user, ulen, SVC_CLIENT_KNOWN, superuser, groups,
                     ngroups);
    if (!c) return;
    wrlock(t);
    if (!seen(t, key, klen)) { /* one lookup record a key: memory stays bounded */
        c->gen = 0;
        install(t, c);
        c = NULL;
    }
    unlock(t);
    client_free(c);
}

void svc_clients_disconnected(svc_clients *t, const char *key, size_t klen, const char *user,
                              size_t ulen)
{
    client *gone = NULL;
    wrlock(t);
    if (t->per_connection) {
        for (client **pp = &t->buckets[key_hash(key, klen)]; *pp;) {
            if (!same_key(*pp, key, klen)) {
                pp = &(*pp)->next;
                continue;
            }
            client *c = *pp;
            unlink_client(t, pp);
            c->next = gone;
            gone = c;
        }
    } else {
        client **pp = slot(t, key, klen, user, ulen);
        if (*pp && (*pp)->state != SVC_CLIENT_REFUSED) {
            gone = *pp;
            unlink_client(t, pp);
            gone->next = NULL;
        }
    }
    unlock(t);
    while (gone) {
        client *n = gone->next;
        client_free(gone);
        gone = n;
    }
}

static void view_of(const client *c, svc_client_view *v)
{
    v->state = c->state;
    if (c->state == SVC_CLIENT_KNOWN) {
        v->superuser = c->superuser;
        v->groups = c->gstr;
        v->ngroups = c->ngroups;
    }
    if (c->peer.family) v->peer = &c->peer;
    v->cid = c->cid;
    v->cidlen = c->cidlen;
    v->revoked = c->revoked;
}

int svc_clients_with(svc_clients *t, const char *key, size_t klen, const char *user, size_t ulen,
                     int (*fn)(const svc_client_view *v, void *arg), void *arg)
{
    svc_client_view v = {.state = SVC_CLIENT_NONE};
    rdlock(t);
    bool other = false;
    client *found = NULL;
    if (t->hint) { /* set on one-thread tables only: never read concurrently with a write */
        if (same_key(t->hint, key, klen) && same_user(t->hint, user, ulen)) {
            found = t->hint; /* svc_clients_cached's miss, just before */
            v.slot = t->hint_slot;
        }
        t->hint = NULL;
        t->hint_slot = NULL;
    }
    for (client *c = found ? NULL : t->buckets[key_hash(key, klen)]; c; c = c->next) {
        if (!same_key(c, key, klen)) continue;
        if (!same_user(c, user, ulen)) {
            other = other || c->gen != 0; /* a login, not a store lookup */
            continue;
        }
        found = c;
        break;
    }
    if (found) {
        view_of(found, &v);
    } else if (other) {
        v.state = SVC_CLIENT_OTHER_USER;
    }
    int a = fn(&v, arg);
    unlock(t);
    return a;
}

/* The user of a probe: a C string, so a record whose name holds a NUL
 * (which strcmp would cut) is never the same. */
static bool same_user_cstr(const client *c, const char *user)
{
    if (!c->username || !user) return !c->username && !user;
    return c->username_cstr && strcmp(c->username, user) == 0;
}

int svc_clients_cached(svc_clients *t, const char *key, size_t klen, uint32_t gen,
                       const svc_probe *q, svc_kept_fn on_kept, void *arg)
{
    /* Generation 0 (no policy yet) would find the ways reserved and not
     * yet decided; QoS and retain are one byte each, and anything outside
     * their range is never kept (it would alias a valid one). */
    if (!t->decision_cache || gen == 0 || !q->topic || q->qos < -1 || q->qos > 2 ||
        q->retain < -1 || q->retain > 1)
        return -1;
    uint64_t what =
        svc_decision_what(gen, q->action, q->delivery, q->delivery ? -1 : q->qos, q->retain);
    rdlock(t);
    client *c = t->buckets[key_hash(key, klen)];
    while (c && (!same_key(c, key, klen) || !same_user_cstr(c, q->username)))
        c = c->next;
    if (!c || !c->dc || (c->state != SVC_CLIENT_KNOWN && c->state != SVC_CLIENT_NOOPINION)) {
        unlock(t);
        return -1;
    }
    /* A kept topic is at most SVC_DC_TOPIC bytes and NUL-terminated: a
     * longer one never compares equal. */
    for (int i = 0; i < SVC_DC_WAYS; i++) {
        const svc_decision *d = &c->dc[i];
        if (d->what == what && strcmp(d->topic, q->topic) == 0) {
            int answer = d->answer;
            if (answer != 1 && on_kept) { /* a deny or an ignore: both are logged */
                svc_client_view v = {0};
                view_of(c, &v);
                on_kept(&v, d, q, arg);
            }
            unlock(t);
            return answer;
        }
    }
    /* A miss: the way the answer will go is taken now, and the record
     * remembered for the evaluation that follows (the decision cache is
     * one thread's: nothing runs in between).  Longer topics are not kept. */
    size_t tlen = strnlen(q->topic, SVC_DC_TOPIC + 1);
    if (tlen > SVC_DC_TOPIC) {
        unlock(t);
        return -1;
    }
    svc_decision *d = &c->dc[c->dc_next];
    c->dc_next = (uint8_t)((c->dc_next + 1) % SVC_DC_WAYS);
    d->what = what & ~(uint64_t)UINT32_MAX; /* empty until svc_decision_fill */
    memcpy(d->topic, q->topic, tlen + 1);
    t->hint = c;
    t->hint_slot = d;
    unlock(t);
    return -1;
}

bool svc_clients_seen(svc_clients *t, const char *key, size_t klen)
{
    rdlock(t);
    bool s = seen(t, key, klen);
    unlock(t);
    return s;
}

bool svc_clients_digest(svc_clients *t, const char *key, size_t klen, const char *user, size_t ulen,
                        exh_auth_digest *out)
{
    rdlock(t);
    client *c = *slot(t, key, klen, user, ulen);
    bool ok = c && c->state == SVC_CLIENT_KNOWN && c->digest.set;
    if (ok) *out = c->digest;
    unlock(t);
    return ok;
}

/* What svc_clients_each_known found under the read lock: a copy, so fn
 * (which reads the store) runs with no lock held. */
typedef struct known {
    char *key, *cid, *user;
    size_t klen, cidlen, ulen;
    uint64_t gen;
    int64_t rev;
    svc_visit what;
    svc_refresh r;
} known;

static void apply(client *c, svc_visit what, svc_refresh *r)
{
    if (what == SVC_VISIT_REFRESH) {
        exh_str *gs = r->ngroups ? malloc(r->ngroups * sizeof(*gs)) : NULL;
        if (r->ngroups && !gs) {
            what = SVC_VISIT_REVOKE; /* out of memory: no stale rights */
        } else {
            free_groups(c->groups, c->ngroups);
            free(c->gstr);
            for (size_t i = 0; i < r->ngroups; i++)
                gs[i] = (exh_str){r->groups[i], strlen(r->groups[i])};
            c->groups = r->groups;
            c->gstr = gs;
            c->ngroups = r->ngroups;
            c->superuser = r->superuser;
            c->rev = r->rev;
            r->groups = NULL;
            r->ngroups = 0;
            if (c->dc) memset(c->dc, 0, SVC_DC_WAYS * sizeof(*c->dc));
        }
    }
    if (what == SVC_VISIT_REVOKE) {
        /* Kept, granting nothing, until its connection goes. */
        free_groups(c->groups, c->ngroups);
        free(c->gstr);
        c->groups = NULL;
        c->gstr = NULL;
        c->ngroups = 0;
        c->superuser = false;
        c->digest.set = false;
        c->state = SVC_CLIENT_REFUSED;
        /* Not on the refused list: evicting it would leave its
         * connection without a record, and a store lookup (no connect
         * rules) could give it rights again. */
        c->revoked = true;
    }
}

void svc_clients_each_known(svc_clients *t, bool (*want)(const char *user, size_t ulen, void *arg),
                            svc_visit (*fn)(const svc_client_info *c, svc_refresh *out, void *arg),
                            void *arg)
{
    /* 1. The records to visit, copied under the read lock (ACL checks go
     * on beside it). */
    known *v = NULL;
    size_t n = 0, cap = 0;
    bool short_of_memory = false;
    rdlock(t);
    for (size_t b = 0; b < BUCKETS; b++)
        for (client *c = t->buckets[b]; c; c = c->next) {
            /* Store lookups (gen 0: a client never seen logging in here)
             * too: they hold the user's groups just the same. */
            if (c->state != SVC_CLIENT_KNOWN || !c->username) continue;
            if (want && !want(c->username, c->username_len, arg)) continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                known *nv = realloc(v, nc * sizeof(*nv));
                if (!nv) {
                    short_of_memory = true;
                    continue;
                }
                v = nv;
                cap = nc;
            }
            known *k = &v[n];
            *k = (known){.klen = c->klen,
                         .cidlen = c->cidlen,
                         .ulen = c->username_len,
                         .gen = c->gen,
                         .rev = c->rev};
            k->key = dup_bytes(c->key, c->klen);
            k->cid = dup_bytes(c->cid, c->cidlen);
            k->user = dup_bytes(c->username, c->username_len);
            if (!k->key || !k->cid || !k->user) {
                free(k->key);
                free(k->cid);
                free(k->user);
                short_of_memory = true;
                continue;
            }
            n++;
        }
    unlock(t);
    /* 2. The store asked with no lock held: a round trip per login does
     * not stop every check and login of the process meanwhile. */
    for (size_t i = 0; i < n; i++) {
        svc_client_info info = {.cid = v[i].cid,
                                .cidlen = v[i].cidlen,
                                .user = v[i].user,
                                .ulen = v[i].ulen,
                                .rev = v[i].rev};
        v[i].what = fn(&info, &v[i].r, arg);
    }
    /* 3. Applied to the records that are still those logins (a login that
     * ended since carries what it read itself), under the write lock.  A
     * record that could not be copied (out of memory) is revoked: no
     * stale rights. */
    wrlock(t);
    for (size_t i = 0; i < n; i++) {
        if (v[i].what == SVC_VISIT_KEEP) continue;
        client *c = *slot(t, v[i].key, v[i].klen, v[i].user, v[i].ulen);
        if (c && c->state == SVC_CLIENT_KNOWN && c->gen == v[i].gen && c->rev == v[i].rev)
            apply(c, v[i].what, &v[i].r);
    }
    if (short_of_memory)
        for (size_t b = 0; b < BUCKETS; b++)
            for (client *c = t->buckets[b]; c; c = c->next)
                if (c->state == SVC_CLIENT_KNOWN && c->username &&
                    (!want || want(c->username, c->username_len, arg)))
                    apply(c, SVC_VISIT_REVOKE, NULL);
    unlock(t);
    for (size_t i = 0; i < n; i++) {
        free_groups(v[i].r.groups, v[i].r.ngroups);
        free(v[i].key);
        free(v[i].cid);
        free(v[i].user);
    }
    free(v);
}

void svc_clients_each_online(svc_clients *t,
                             void (*fn)(const char *cid, const char *user, void *arg), void *arg)
{
    rdlock(t);
    for (size_t b = 0; b < BUCKETS; b++)
        for (client *c = t->buckets[b]; c; c = c->next)
            if (c->state == SVC_CLIENT_KNOWN && c->gen != 0) fn(c->cid, c->username, arg);
    unlock(t);
}
