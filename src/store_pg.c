/*
 * store_pg.c -- the credential store's PostgreSQL backend (placeholder
 * until the libpq implementation lands).
 */
#include "store_backend.h"

#include "error_int.h"

static exh_status pg_open(const char *location, const exh_store_opts *o, exh_store **out,
                          exh_error *err)
{
    (void)location;
    (void)o;
    *out = NULL;
    return exh_error_set(err, EXH_EINVAL, NULL, 0, 0, "PostgreSQL stores are not supported yet");
}

const store_backend store_pg = {.kind = "PostgreSQL", .open = pg_open};
