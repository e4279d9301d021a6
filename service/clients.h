/*
 * clients.h -- what each client's authentication learned (its user, groups
 * and superuser flag), keyed by client id, for the ACL checks that follow.
 *
 * A record counts only for the user who made it: a later check by the same
 * client id under another username ignores it, and every new login on a
 * client id clears the old record first, so a failed or unknown login can
 * never inherit an earlier user's rights.
 */
#ifndef EXHOOK_SERVICE_CLIENTS_H
#define EXHOOK_SERVICE_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "exhook/eval.h"

/* Forget the record of this client id (a new login, a disconnect). */
void svc_clients_forget(const char *cid, size_t len);

/* Remember a login.  Takes ownership of groups (malloc'd strings in a
 * malloc'd array) whatever happens.  Returns false when out of memory
 * (then the client has no record, and is looked up in the store). */
bool svc_clients_remember(const char *cid, size_t len, const char *user, size_t ulen,
                          bool superuser, char **groups, size_t ngroups);

/* Remember a login the store could not check but the broker may let in
 * (failed_action = ignore): its ACL checks are answered like the login
 * (no opinion), never with rights the store would give once it is back. */
bool svc_clients_remember_unverified(const char *cid, size_t len, const char *user, size_t ulen);

/* The record of r->clientid made by r->username: SVC_CLIENT_KNOWN fills
 * r->superuser, r->groups and r->ngroups (valid until svc_clients_unlock,
 * which must be called after every answer). */
enum { SVC_CLIENT_NONE, SVC_CLIENT_KNOWN, SVC_CLIENT_UNVERIFIED };
int svc_clients_lookup(exh_request *r);
void svc_clients_unlock(void);

/* Drop every record (at exit). */
void svc_clients_clear(void);

#endif
