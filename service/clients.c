/*
 * clients.c -- see clients.h.  A hash table under one reader-writer lock:
 * ACL checks read it, logins and disconnects write it.
 */
#include "clients.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct client {
    char *clientid;
    size_t clientid_len;
    char *username; /* who authenticated; a check by anyone else ignores the record */
    size_t username_len;
    bool superuser;
    bool unverified; /* see svc_clients_remember_unverified */
    char **groups;
    exh_str *gstr; /* the groups as the evaluator takes them */
    size_t ngroups;
    struct client *next;
} client;

#define CLIENT_BUCKETS 65536
static client *clients[CLIENT_BUCKETS];
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
    free_groups(c->groups, c->ngroups);
    free(c->gstr);
    free(c->clientid);
    free(c->username);
    free(c);
}

/* Put c (or nothing, with c NULL) in the place of the record for cid. */
static void set(const char *cid, size_t len, client *c)
{
    size_t b = cid_hash(cid, len);
    pthread_rwlock_wrlock(&clients_lock);
    client **pp = &clients[b];
    while (*pp && ((*pp)->clientid_len != len || memcmp((*pp)->clientid, cid, len)))
        pp = &(*pp)->next;
    client *old = *pp;
    if (old) *pp = old->next;
    if (c) {
        c->next = clients[b];
        clients[b] = c;
    }
    pthread_rwlock_unlock(&clients_lock);
    if (old) client_free(old);
}

void svc_clients_forget(const char *cid, size_t len)
{
    set(cid, len, NULL);
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static bool remember(const char *cid, size_t len, const char *user, size_t ulen, bool superuser,
                     bool unverified, char **groups, size_t ngroups)
{
    client *c = calloc(1, sizeof(*c));
    if (!c) {
        free_groups(groups, ngroups);
        return false;
    }
    c->groups = groups;
    c->ngroups = ngroups;
    c->clientid = dup_bytes(cid, len);
    c->clientid_len = len;
    c->username = dup_bytes(user, ulen);
    c->username_len = ulen;
    c->superuser = superuser;
    c->unverified = unverified;
    c->gstr = ngroups ? malloc(ngroups * sizeof(*c->gstr)) : NULL;
    if (!c->clientid || !c->username || (ngroups && !c->gstr)) {
        client_free(c);
        return false;
    }
    for (size_t i = 0; i < ngroups; i++)
        c->gstr[i] = (exh_str){groups[i], strlen(groups[i])};
    set(cid, len, c);
    return true;
}

bool svc_clients_remember(const char *cid, size_t len, const char *user, size_t ulen,
                          bool superuser, char **groups, size_t ngroups)
{
    return remember(cid, len, user, ulen, superuser, false, groups, ngroups);
}

bool svc_clients_remember_unverified(const char *cid, size_t len, const char *user, size_t ulen)
{
    return remember(cid, len, user, ulen, false, true, NULL, 0);
}

int svc_clients_lookup(exh_request *r)
{
    pthread_rwlock_rdlock(&clients_lock);
    if (!r->clientid || !r->username) return SVC_CLIENT_NONE;
    client *c = clients[cid_hash(r->clientid, r->clientid_len)];
    while (c && (c->clientid_len != r->clientid_len ||
                 memcmp(c->clientid, r->clientid, r->clientid_len) != 0))
        c = c->next;
    if (!c || c->username_len != r->username_len ||
        memcmp(c->username, r->username, r->username_len) != 0)
        return SVC_CLIENT_NONE;
    if (c->unverified) return SVC_CLIENT_UNVERIFIED;
    r->superuser = c->superuser;
    r->groups = c->gstr;
    r->ngroups = c->ngroups;
    return SVC_CLIENT_KNOWN;
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
    pthread_rwlock_unlock(&clients_lock);
}
