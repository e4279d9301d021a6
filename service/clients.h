/*
 * clients.h -- what each client's login taught this process (its user,
 * groups and superuser flag, or that it was refused), keyed by client id,
 * for the ACL checks that follow.
 *
 * Records are kept per client id and username.  Only a verified login, or
 * a store lookup for a client id with no record at all (never seen since
 * start, or whose verified logins have all disconnected), may give stored
 * rights.  A login that is refused, or not finished, leaves a record that
 * grants nothing: if the broker lets such a client in anyway (its call
 * timeout, another auth source, a misconfiguration), its ACL checks are
 * denied rather than answered with the stored user's groups or superuser
 * flag.  A check on a client id on which this process has seen a login,
 * by a username that never logged in on it here, is denied too (a store
 * lookup is not a login: it makes no client id "seen").
 *
 * A failed login never takes rights from a verified login on the same
 * client id, by the same user or another: the broker keeps that
 * connection (a refused CONNECT takes no session over), and letting
 * anyone who knows a client id cancel its rights with one wrong password
 * would be a denial of service.
 */
#ifndef EXHOOK_SERVICE_CLIENTS_H
#define EXHOOK_SERVICE_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exhook/eval.h"

typedef enum svc_client_state {
    SVC_CLIENT_NONE,       /* no record: the store may be asked */
    SVC_CLIENT_KNOWN,      /* a verified login: its groups and superuser flag */
    SVC_CLIENT_UNVERIFIED, /* the store could not check it; failed_action = ignore */
    SVC_CLIENT_NOOPINION,  /* an unknown user answered "no opinion" (unknown_user = ignore):
                              decided by the policy without groups or superuser */
    SVC_CLIENT_REFUSED,    /* refused, or not finished: grants nothing */
    SVC_CLIENT_OTHER_USER, /* (lookup only) logins on the client id, none by this user */
} svc_client_state;

/* A login starts on client id cid for user (NULL: anonymous).  Unless the
 * pair has a verified login already, its record becomes REFUSED until the
 * login ends.  Returns the login's generation for svc_clients_end. */
uint64_t svc_clients_begin(const char *cid, size_t len, const char *user, size_t ulen);

/* The login of generation gen ended with state (KNOWN, UNVERIFIED,
 * NOOPINION or REFUSED).  Applied only if the record is still that
 * login's (a later login on the client id wins); REFUSED keeps a verified
 * login of the same user (see above).  Takes ownership of groups (malloc'd
 * strings in a malloc'd array) whatever happens. */
void svc_clients_end(const char *cid, size_t len, uint64_t gen, const char *user, size_t ulen,
                     svc_client_state state, bool superuser, char **groups, size_t ngroups);

/* A client with no record was found in the store: remember its rights,
 * unless a record appeared meanwhile.  Takes ownership of groups. */
void svc_clients_remember(const char *cid, size_t len, const char *user, size_t ulen,
                          bool superuser, char **groups, size_t ngroups);

/* A client disconnected: its record goes if it holds a finished login by
 * this user.  A refused or unfinished login's record stays. */
void svc_clients_disconnected(const char *cid, size_t len, const char *user, size_t ulen);

/* What the record of r->clientid says for r->username.  KNOWN fills
 * r->superuser, r->groups and r->ngroups (valid until svc_clients_unlock,
 * which must be called after every lookup, whatever it returned). */
svc_client_state svc_clients_lookup(exh_request *r);
void svc_clients_unlock(void);

/* Drop every record (at exit). */
void svc_clients_clear(void);

/* Refused records kept at most; the oldest go first (each is a few dozen
 * bytes plus the client id and username, and a flood of failed logins
 * with new client ids must not grow memory without bound). */
enum { SVC_CLIENTS_REFUSED_MAX = 262144 };

#endif
