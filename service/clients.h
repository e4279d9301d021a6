/*
 * clients.h -- what each client's login taught the service (its user,
 * groups and superuser flag, or that it was refused), for the ACL checks
 * that follow.
 *
 * Records are kept per key and username.  The key names a client as the
 * front end knows it: its client id for exhook-driver and exhook-grpc
 * (EMQX names clients by id only), its connection for the Mosquitto plugin
 * (the broker hands the plugin a connection, so a login on one connection
 * never touches the record of another with the same client id).
 *
 * Only a verified login, or a store lookup for a key with no record at all
 * (never seen since start, or whose verified logins have all disconnected),
 * may give stored rights.  A login that is refused, or not finished, leaves
 * a record that grants nothing: if the broker lets such a client in anyway
 * (its call timeout, another auth source, a misconfiguration), its ACL
 * checks are denied rather than answered with the stored user's groups or
 * superuser flag.  A check on a key on which a login was seen, by a
 * username that never logged in on it here, is denied too (a store lookup
 * is not a login: it makes no key "seen").
 *
 * A failed login never takes rights from a verified login on the same key,
 * by the same user or another: the broker keeps that connection (a refused
 * CONNECT takes no session over), and letting anyone who knows a client id
 * cancel its rights with one wrong password would be a denial of service.
 *
 * The table is shared by every thread, under one reader-writer lock that
 * never leaves this file: a lookup hands the record to a callback and
 * returns with the lock released.
 */
#ifndef EXHOOK_SERVICE_CLIENTS_H
#define EXHOOK_SERVICE_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/auth.h"
#include "exhook/eval.h"

typedef enum svc_client_state {
    SVC_CLIENT_NONE,       /* no record: the store may be asked */
    SVC_CLIENT_KNOWN,      /* a verified login: its groups and superuser flag */
    SVC_CLIENT_UNVERIFIED, /* the store could not check it; failed_action = ignore */
    SVC_CLIENT_NOOPINION,  /* an unknown user answered "no opinion" (unknown_user = ignore):
                              decided by the policy without groups or superuser */
    SVC_CLIENT_REFUSED,    /* refused, not finished, or revoked since: grants nothing */
    SVC_CLIENT_OTHER_USER, /* (lookup only) logins on the key, none by this user */
} svc_client_state;

typedef struct svc_clients svc_clients;

/* Refused records kept at most; the oldest go first (each is a few dozen
 * bytes plus the key and username, and a flood of failed logins with new
 * client ids must not grow memory without bound). */
enum { SVC_CLIENTS_REFUSED_MAX = 262144 };

/* A connection's last decisions (svc_clients_new's decision_cache): a
 * device publishing to the same topics, and a subscriber receiving them,
 * costs a compare instead of an evaluation per message.  What a decision
 * depends on is fixed for a record (its identity, groups and superuser
 * flag: a refresh clears the cache), for a policy (each entry carries the
 * generation it was decided under) and for the request (the topic, compared
 * whole, the action, the QoS and retain flag).  Longer topics are evaluated
 * every time. */
enum { SVC_DC_WAYS = 4, SVC_DC_TOPIC = 49 };

typedef struct svc_decision {
    /* What it answers, one word compared at once: the policy's generation
     * it was decided under (low 32 bits; 0 = empty or not yet decided),
     * the action, the delivery flag, the QoS and the retain flag. */
    uint64_t what;
    /* How it was decided (exh_result's basis and rule, under the policy
     * of that generation): a kept deny is written to the audit log with
     * the rule that decided it, without deciding it again. */
    uint32_t rule;
    uint8_t basis;
    int8_t answer;
    char topic[SVC_DC_TOPIC + 1]; /* NUL-terminated: a hit is one strcmp, nothing measured */
} svc_decision;

static inline uint64_t svc_decision_what(uint32_t gen, exh_action action, bool delivery, int qos,
                                         int retain)
{
    return (uint64_t)gen | (uint64_t)(uint8_t)action << 32 | (uint64_t)delivery << 40 |
           (uint64_t)(uint8_t)qos << 48 | (uint64_t)(uint8_t)retain << 56;
}

/* Keep the answer decided under generation gen, and how (res), in the way
 * a miss reserved (svc_client_view.slot): from now on it is found. */
static inline void svc_decision_fill(svc_decision *d, uint32_t gen, int answer,
                                     const exh_result *res)
{
    d->answer = (int8_t)answer;
    d->basis = (uint8_t)res->basis;
    d->rule = res->rule;
    d->what |= gen;
}

_Static_assert(sizeof(svc_decision) == 64, "a decision is one cache line");

/* one_thread: only one thread ever uses the table (the Mosquitto plugin):
 * no locking.
 * per_connection: keys are connections, not client ids: a disconnect
 * forgets every record of its key (a connection never comes back, and its
 * identity may be reused by the next one), and a store lookup is never
 * remembered (a connection the broker checks after it has gone -- a will,
 * a queued message -- would never be forgotten).  decision_cache: keep
 * each record's last decisions; only with one_thread (the cache is
 * written under the read lock). */
svc_clients *svc_clients_new(bool per_connection, bool one_thread, bool decision_cache);
void svc_clients_free(svc_clients *t);

/* A login starts on key for user (NULL: anonymous); cid is the client id
 * it gives (kept for svc_clients_each_known), peer its address (NULL:
 * unknown; kept for checks that do not carry it).  Unless the pair has a verified
 * login already, its record becomes REFUSED until the login ends.  Returns
 * the login's generation for svc_clients_end. */
uint64_t svc_clients_begin(svc_clients *t, const char *key, size_t klen, const char *cid,
                           size_t cidlen, const exh_addr *peer, const char *user, size_t ulen);

/* What a finished login leaves in its record. */
typedef struct svc_grant {
    svc_client_state state; /* KNOWN, UNVERIFIED, NOOPINION or REFUSED */
    bool superuser;
    char **groups; /* malloc'd strings in a malloc'd array */
    size_t ngroups;
    exh_auth_digest digest; /* of the verified password (no hash when the broker asks again) */
    exh_auth_reason reason; /* how the credential check ended */
    bool hashed;            /* a password hash was computed */
    bool from_digest;       /* the record's digest stood for the password */
    uint64_t notice_seq;    /* the service's change-notice count before the store was read */
    /* For the audit log (filled only when it is on): the connect rule
     * that decided as FILE:LINE, or the basis ("credentials", ...), and
     * the policy's generation. */
    uint32_t gen;
    char rule[512];
} svc_grant;
void svc_grant_clear(svc_grant *g);

/* The login of generation gen (on client id cid, from peer: NULL unknown)
 * ended as *g says.  Applied only if the
 * record is still that login's (a later login on the key wins); REFUSED
 * keeps a verified login of the same user (see above).  Takes the groups
 * whatever happens (g's are then empty). */
void svc_clients_end(svc_clients *t, const char *key, size_t klen, uint64_t gen, const char *cid,
                     size_t cidlen, const exh_addr *peer, const char *user, size_t ulen,
                     svc_grant *g);

/* A client with no record was found in the store: remember its rights,
 * unless a record appeared meanwhile (not with per_connection keys).
 * Takes ownership of groups. */
void svc_clients_remember(svc_clients *t, const char *key, size_t klen, const char *user,
                          size_t ulen, bool superuser, char **groups, size_t ngroups);

/* A client disconnected: its record goes if it holds a finished login by
 * this user (a refused or unfinished login's record stays, unless keys are
 * connections: then every record of the key goes). */
void svc_clients_disconnected(svc_clients *t, const char *key, size_t klen, const char *user,
                              size_t ulen);

/* What a lookup sees: the record's state, and for KNOWN its rights. */
typedef struct svc_client_view {
    svc_client_state state;
    bool superuser;
    const exh_str *groups;
    size_t ngroups;
    const exh_addr *peer; /* the login's address, or NULL */
    const char *cid;      /* the client id the login gave (NUL-terminated), or NULL */
    size_t cidlen;
    bool revoked;       /* REFUSED because svc_clients_each_known revoked a verified login */
    svc_decision *slot; /* the way svc_clients_cached's miss just took for this check */
} svc_client_view;

/* Calls fn with the record of (key, user) -- or SVC_CLIENT_NONE or
 * SVC_CLIENT_OTHER_USER -- under the table's read lock, and returns its
 * answer with the lock released.  fn must not call back into the table. */
int svc_clients_with(svc_clients *t, const char *key, size_t klen, const char *user, size_t ulen,
                     int (*fn)(const svc_client_view *v, void *arg), void *arg);

/* A check as the decision cache compares it, all the plugin's hot path
 * builds.  The broker's strings as it holds them, NUL-terminated: a hit
 * compares them with strcmp and measures nothing (strlen then memcmp cost
 * twice the calls on the path every message takes, twice). */
typedef struct svc_probe {
    const char *username; /* NULL: anonymous */
    const char *topic;
    exh_action action;
    int qos, retain; /* as in exh_request */
    bool delivery;
} svc_probe;

/* A kept deny (or ignore: the audit log writes every answer but allow)
 * found: the record, as svc_clients_with
 * shows it, the way that holds the deny (its generation in the low 32
 * bits of what) and the check; called under the lock. */
typedef void (*svc_kept_fn)(const svc_client_view *v, const svc_decision *d, const svc_probe *q,
                            void *arg);

/* The answer the record of (key, q->username) keeps for the check q
 * describes under the policy of generation gen, or -1 (none kept, or no
 * decision cache).  on_kept (NULL: none) is called with a kept deny or
 * ignore before it is answered. */
int svc_clients_cached(svc_clients *t, const char *key, size_t klen, uint32_t gen,
                       const svc_probe *q, svc_kept_fn on_kept, void *arg);

/* Has any login been seen on key? */
bool svc_clients_seen(svc_clients *t, const char *key, size_t klen);

/* The verified digest of (key, user)'s login, if it has one: the broker
 * asks again about a connection it let in (Mosquitto re-runs basic auth at
 * each reload). */
bool svc_clients_digest(svc_clients *t, const char *key, size_t klen, const char *user, size_t ulen,
                        exh_auth_digest *out);

/* Every verified login (and store lookup) whose user want accepts (NULL:
 * all; called under the read lock, so cheap): fn says what becomes of it,
 * called with no lock held -- it may read the store -- on a copy; what it
 * says is applied under the write lock to the records still holding that
 * login (a login that ended meanwhile keeps what it read itself).  rev is
 * what fn last stored (-1: never). */
typedef enum svc_visit {
    SVC_VISIT_KEEP,    /* unchanged */
    SVC_VISIT_REFRESH, /* new rights: *superuser, *groups (taken), *ngroups, *rev */
    SVC_VISIT_REVOKE,  /* grants nothing from now on; kick it */
} svc_visit;
typedef struct svc_client_info {
    const char *cid, *user; /* NUL-terminated copies */
    size_t cidlen, ulen;
    int64_t rev;
} svc_client_info;
typedef struct svc_refresh {
    bool superuser;
    char **groups;
    size_t ngroups;
    int64_t rev;
} svc_refresh;
void svc_clients_each_known(svc_clients *t, bool (*want)(const char *user, size_t ulen, void *arg),
                            svc_visit (*fn)(const svc_client_info *c, svc_refresh *out, void *arg),
                            void *arg);

/* Every record with a finished verified login (for a shutdown's history):
 * fn gets its client id and username; nothing changes. */
void svc_clients_each_online(svc_clients *t,
                             void (*fn)(const char *cid, const char *user, void *arg), void *arg);

#endif
