/*
 * addr.h -- IPv4/IPv6 addresses and CIDR blocks for `peerhost`.
 *
 * Addresses are kept in 16 bytes.  An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is normalised to IPv4 when parsed, so a client that a
 * dual-stack listener reports as ::ffff:127.0.0.1 matches `peerhost
 * 127.0.0.0/8`.
 */
#ifndef EXHOOK_ADDR_H
#define EXHOOK_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef struct exh_addr {
    uint8_t family;    /* 0 = unknown/absent, 4 = IPv4, 6 = IPv6 */
    uint8_t bytes[16]; /* IPv4 uses bytes[0..3] */
} exh_addr;

typedef struct exh_cidr {
    exh_addr addr;  /* host bits beyond prefix are zero */
    uint8_t prefix; /* 0..32 for IPv4, 0..128 for IPv6 */
} exh_cidr;

/* Parse a textual IPv4 or IPv6 address (no brackets, no zone, no port).
 * The input need not be NUL-terminated. */
bool exh_addr_parse(const char *s, size_t len, exh_addr *out);

/* Parse "addr" or "addr/len".  A bare address is a /32 or /128.  Host bits
 * set beyond the prefix are rejected (10.0.0.1/8 is almost always a typo)
 * and *why gets a static explanation. */
bool exh_cidr_parse(const char *s, size_t len, exh_cidr *out, const char **why);

/* Does the block contain the address?  Different families never match;
 * an unknown address (family 0) never matches. */
bool exh_cidr_contains(const exh_cidr *block, const exh_addr *addr);

/* Format an address into buf (at least 46 bytes). */
void exh_addr_format(const exh_addr *addr, char *buf, size_t size);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
