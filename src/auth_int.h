/*
 * auth_int.h -- test hooks into the connect decision.  Internal, like
 * store_int.h: no public header declares these, so no front end can come
 * to depend on them.
 */
#ifndef EXH_AUTH_INT_H
#define EXH_AUTH_INT_H

#include <stdint.h>

#include "exhook/auth.h"

/* Pretend `seconds` have passed on the cache's clock (TTL tests). */
void auth_cache_advance(exh_auth_cache *c, uint32_t seconds);

/* How many clientid patterns have been compiled in this process, cached
 * or not (the pattern cache's tests). */
unsigned long auth_clientid_compiles(void);

#endif
