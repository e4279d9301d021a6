/*
 * clients.c -- see clients.h.  A hash table of records keyed by client id
 * and username (a client id's records share a bucket), under one
 * reader-writer lock: ACL checks read it, logins and disconnects write it.  Refused records
 * are also on a list, oldest first, so their number stays bounded.
 */
#include "clients.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct client {
    char *clientid;
    size_t clientid_len;
    char *username; /* who logged in (NULL: anonymous); a check by anyone else is denied */
    size_t username_len;
    svc_client_state state;
    uint64_t gen; /* the login that made it */
    bool superuser;
    char **groups;
    exh_str *gstr; /* the groups as the evaluator takes them */
    size_t ngroups;
    struct client *next;          /* in its bucket */
    struct client *rprev, *rnext; /* on the refused list (state REFUSED only) */
} client;

#define CLIENT_BUCKETS 65536
static client *clients[CLIENT_BUCKETS];
static client *refused_head, *refused_tail; /* oldest first */
static size_t refused_count;
static bool refused_full_said;
static uint64_t next_gen = 1;
static pthread_rwlock_t clients_lock = PTHREAD_RWLOCK_INITIALIZER;

static size_t cid_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 32)) & (CLIENT_BUCKETS - 1);
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
    free(c->clientid);
    free(c->username);
    free(c);
}

static bool same_user(const client *c, const char *user, size_t ulen)
{
    if (!c->username || !user) return !c->username && !user;
    return c->username_len == ulen && memcmp(c->username, user, ulen) == 0;
}

/* ---- under the write lock ---- */

/* The record of (cid, user), or where it would go. */
static client **slot(const char *cid, size_t len, const char *user, size_t ulen)
{
    client **pp = &clients[cid_hash(cid, len)];
    while (*pp && ((*pp)->clientid_len != len || memcmp((*pp)->clientid, cid, len) ||
                   !same_user(*pp, user, ulen)))
        pp = &(*pp)->next;
    return pp;
}

/* Does any record name this client id? */
static bool seen(const char *cid, size_t len)
{
    for (client *c = clients[cid_hash(cid, len)]; c; c = c->next)
        if (c->clientid_len == len && !memcmp(c->clientid, cid, len)) return true;
    return false;
}

static void refused_unlink(client *c)
{
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        refused_head = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        refused_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    refused_count--;
}

/* Take c out of the table (and the refused list); the caller frees it. */
static void unlink_client(client **pp)
{
    client *c = *pp;
    *pp = c->next;
    if (c->state == SVC_CLIENT_REFUSED) refused_unlink(c);
}

/* Put c in the table, replacing whatever record the client id had; the
 * old one is returned for the caller to free outside the lock. */
static client *install(client *c)
{
    client **pp = slot(c->clientid, c->clientid_len, c->username, c->username_len);
    client *old = *pp;
    if (old) unlink_client(pp);
    size_t b = cid_hash(c->clientid, c->clientid_len);
    c->next = clients[b];
    clients[b] = c;
    if (c->state == SVC_CLIENT_REFUSED) {
        c->rprev = refused_tail;
        c->rnext = NULL;
        if (refused_tail)
            refused_tail->rnext = c;
        else
            refused_head = c;
        refused_tail = c;
        refused_count++;
    }
    return old;
}

/* Over the cap: the oldest refused record goes (returned, to be freed). */
static client *evict_refused(void)
{
    if (refused_count <= SVC_CLIENTS_REFUSED_MAX) return NULL;
    client *c = refused_head;
    client **pp = slot(c->clientid, c->clientid_len, c->username, c->username_len);
    unlink_client(pp);
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
static client *make(const char *cid, size_t len, const char *user, size_t ulen,
                    svc_client_state state, bool superuser, char **groups, size_t ngroups)
{
    client *c = calloc(1, sizeof(*c));
    if (!c) {
        free_groups(groups, ngroups);
        return NULL;
    }
    c->groups = groups;
    c->ngroups = ngroups;
    c->clientid = dup_bytes(cid, len);
    c->clientid_len = len;
    c->username = user ? dup_bytes(user, ulen) : NULL;
    c->username_len = user ? ulen : 0;
    c->state = state;
    c->superuser = superuser;
    c->gstr = ngroups ? malloc(ngroups * sizeof(*c->gstr)) : NULL;
    if (!c->clientid || (user && !c->username) || (ngroups && !c->gstr)) {
        client_free(c);
        return NULL;
    }
    for (size_t i = 0; i < ngroups; i++)
        c->gstr[i] = (exh_str){groups[i], strlen(groups[i])};
    return c;
}

static void say_full(bool evicted)
{
    if (evicted && !refused_full_said) {
        refused_full_said = true;
        svc_log(LOG_WARN,
                "more than %d refused logins remembered: the oldest are forgotten (their "
                "client ids are looked up in the store again)",
                SVC_CLIENTS_REFUSED_MAX);
    }
}

uint64_t svc_clients_begin(const char *cid, size_t len, const char *user, size_t ulen)
{
    /* Made before the lock: allocation stays outside it.  Out of memory:
     * the old record is dropped and nothing replaces it, so at worst the
     * store is asked (it holds no rights for a user it refuses). */
    client *c = make(cid, len, user, ulen, SVC_CLIENT_REFUSED, false, NULL, 0);
    client *old = NULL, *evicted = NULL;
    pthread_rwlock_wrlock(&clients_lock);
    uint64_t gen = next_gen++;
    client **pp = slot(cid, len, user, ulen);
    if (*pp && (*pp)->state == SVC_CLIENT_KNOWN) {
        /* A verified login of this user keeps its rights until this one
         * succeeds (clients.h); the new login's end is matched by gen. */
        (*pp)->gen = gen;
        old = c;
    } else if (c) {
        c->gen = gen;
        old = install(c);
        evicted = evict_refused();
    } else if (*pp) {
        old = *pp;
        unlink_client(pp);
    }
    pthread_rwlock_unlock(&clients_lock);
    say_full(evicted != NULL);
    client_free(old);
    client_free(evicted);
    return gen;
}

void svc_clients_end(const char *cid, size_t len, uint64_t gen, const char *user, size_t ulen,
                     svc_client_state state, bool superuser, char **groups, size_t ngroups)
{
    client *c = make(cid, len, user, ulen, state, superuser, groups, ngroups);
    client *old = NULL, *evicted = NULL;
    pthread_rwlock_wrlock(&clients_lock);
    client **pp = slot(cid, len, user, ulen);
    client *cur = *pp;
    if (!cur || cur->gen != gen) {
        old = c; /* a later login (or a disconnect) owns the client id now */
    } else if (state == SVC_CLIENT_REFUSED &&
               (cur->state == SVC_CLIENT_REFUSED || cur->state == SVC_CLIENT_KNOWN)) {
        old = c; /* already grants nothing, or a verified login of this user stays */
    } else if (c) {
        c->gen = gen;
        old = install(c);
        evicted = evict_refused();
    } else if (cur->state == SVC_CLIENT_KNOWN) {
        /* Out of memory recording a new login over a verified one: the
         * old rights must not stand for the new login; nothing is left,
         * and the store is asked. */
        old = cur;
        unlink_client(pp);
    }
    pthread_rwlock_unlock(&clients_lock);
    say_full(evicted != NULL);
    client_free(old);
    client_free(evicted);
}

void svc_clients_remember(const char *cid, size_t len, const char *user, size_t ulen,
                          bool superuser, char **groups, size_t ngroups)
{
    client *c = make(cid, len, user, ulen, SVC_CLIENT_KNOWN, superuser, groups, ngroups);
    if (!c) return;
    pthread_rwlock_wrlock(&clients_lock);
    if (!seen(cid, len)) { /* one lookup record a client id: memory stays bounded */
        c->gen = 0;
        install(c);
        c = NULL;
    }
    pthread_rwlock_unlock(&clients_lock);
    client_free(c);
}

void svc_clients_disconnected(const char *cid, size_t len, const char *user, size_t ulen)
{
    client *old = NULL;
    pthread_rwlock_wrlock(&clients_lock);
    client **pp = slot(cid, len, user, ulen);
    if (*pp && (*pp)->state != SVC_CLIENT_REFUSED) {
        old = *pp;
        unlink_client(pp);
    }
    pthread_rwlock_unlock(&clients_lock);
    client_free(old);
}

svc_client_state svc_clients_lookup(exh_request *r)
{
    pthread_rwlock_rdlock(&clients_lock);
    if (!r->clientid) return SVC_CLIENT_NONE;
    bool other = false;
    for (client *c = clients[cid_hash(r->clientid, r->clientid_len)]; c; c = c->next) {
        if (c->clientid_len != r->clientid_len ||
            memcmp(c->clientid, r->clientid, r->clientid_len) != 0)
            continue;
        if (!same_user(c, r->username, r->username_len)) {
            other = other || c->gen != 0; /* a login, not a store lookup */
            continue;
        }
        if (c->state == SVC_CLIENT_KNOWN) {
            r->superuser = c->superuser;
            r->groups = c->gstr;
            r->ngroups = c->ngroups;
        }
        return c->state;
    }
    return other ? SVC_CLIENT_OTHER_USER : SVC_CLIENT_NONE;
}

void svc_clients_unlock(void)
{
    pthread_rwlock_unlock(&clients_lock);
}

void svc_clients_clear(void)
{
    pthread_rwlock_wrlock(&clients_lock);
    for (size_t b = 0; b < CLIENT_BUCKETS; b++)
        while (clients[b]) {
            client *c = clients[b];
            clients[b] = c->next;
            client_free(c);
        }
    refused_head = refused_tail = NULL;
    refused_count = 0;
    refused_full_said = false;
    pthread_rwlock_unlock(&clients_lock);
}
