/*
 * addr.c -- IPv4/IPv6 addresses and CIDR blocks for `peerhost`.
 *
 * Parsing is left to inet_pton, which is strict (no octal, no short forms
 * like "10.1", no zones, no brackets); this file only adds the framing:
 * length-delimited input, IPv4-mapped normalisation and prefix lengths.
 */
#include "exhook/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Longest textual address inet_pton can accept: a full IPv6 address with
 * a dotted-quad tail, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255". */
#define ADDR_TEXT_MAX 45

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; folding
 * them into IPv4 lets one `peerhost 127.0.0.0/8` cover both listeners. */
static bool normalise_mapped(exh_addr *a)
{
    if (a->family != 6 || memcmp(a->bytes, mapped_prefix, sizeof(mapped_prefix)) != 0) return false;
    uint8_t v4[4];
    memcpy(v4, a->bytes + 12, 4);
    memset(a->bytes, 0, sizeof(a->bytes));
    memcpy(a->bytes, v4, 4);
    a->family = 4;
    return true;
}

/* Parse and normalise, telling the caller whether the text was the mapped
 * IPv6 form: a CIDR prefix written against it counts 128 bits, not 32. */
static bool parse_addr(const char *s, size_t len, exh_addr *out, bool *mapped)
{
    char buf[ADDR_TEXT_MAX + 1];
    exh_addr a;

    memset(&a, 0, sizeof(a));
    *mapped = false;
    if (out) memset(out, 0, sizeof(*out)); /* a failed parse leaves family 0 */
    if (!s || len == 0 || len > ADDR_TEXT_MAX || memchr(s, '\0', len)) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (memchr(buf, ':', len)) {
        if (inet_pton(AF_INET6, buf, a.bytes) != 1) return false;
        a.family = 6;
        *mapped = normalise_mapped(&a);
    } else {
        if (inet_pton(AF_INET, buf, a.bytes) != 1) return false;
        a.family = 4;
    }
    if (out) *out = a;
    return true;
}

bool exh_addr_parse(const char *s, size_t len, exh_addr *out)
{
    bool mapped;
    return parse_addr(s, len, out, &mapped);
}

/* Strict decimal: digits only, no sign, no leading zero (so "08" is not
 * silently read as 8), at most three digits so nothing can overflow. */
static bool parse_prefix(const char *s, size_t len, unsigned *out, const char **why)
{
    if (len == 0) {
        *why = "missing prefix length after '/'";
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            *why = "prefix length must be a decimal number";
            return false;
        }
    }
    if (len > 1 && s[0] == '0') {
        *why = "prefix length has a leading zero";
        return false;
    }
    if (len > 3) {
        *why = "prefix length out of range";
        return false;
    }
    unsigned v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    *out = v;
    return true;
}

/* Are any of the address's bits at positions >= prefix set? */
static bool host_bits_set(const exh_addr *a, unsigned prefix)
{
    unsigned nbits = a->family == 4 ? 32 : 128;
    for (unsigned bit = prefix; bit < nbits; bit++)
        if (a->bytes[bit / 8] & (0x80u >> (bit % 8))) return true;
    return false;
}

bool exh_cidr_parse(const char *s, size_t len, exh_cidr *out, const char **why)
{
    const char *dummy;
    exh_cidr c;
    bool mapped;

    if (!why) why = &dummy;
    *why = NULL;
    memset(&c, 0, sizeof(c));
    if (out) *out = c;
    if (!s || len == 0) {
        *why = "empty address";
        return false;
    }
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (alen == 0) {
        *why = "missing address before '/'";
        return false;
    }
    if (!parse_addr(s, alen, &c.addr, &mapped)) {
        *why = "not an IPv4 or IPv6 address";
        return false;
    }
    unsigned max = (c.addr.family == 6 || mapped) ? 128 : 32;
    unsigned prefix = max;
    if (slash) {
        if (!parse_prefix(slash + 1, len - alen - 1, &prefix, why)) return false;
        if (prefix > max) {
            *why = c.addr.family == 4 && !mapped ? "prefix length out of range (0..32 for IPv4)"
                                                 : "prefix length out of range (0..128 for IPv6)";
            return false;
        }
    }
    if (mapped) {
        /* Below /96 the block would reach past ::ffff:0:0/96, whose own
         * bits are then host bits: the same typo as 10.0.0.1/8. */
        if (prefix < 96) {
            *why = "address has bits set beyond the prefix length";
            return false;
        }
        prefix -= 96;
    }
    if (host_bits_set(&c.addr, prefix)) {
        *why = "address has bits set beyond the prefix length";
        return false;
    }
    c.prefix = (uint8_t)prefix;
    if (out) *out = c;
    return true;
}

/*
 * The address is normalised here as well as in parsing, so a front end
 * that fills exh_addr straight from a sockaddr_in6 still gets IPv4
 * blocks applied to mapped clients.
 */
bool exh_cidr_contains(const exh_cidr *block, const exh_addr *addr)
{
    if (!block || !addr) return false;
    exh_addr a = *addr;
    normalise_mapped(&a);
    if (a.family == 0 || a.family != block->addr.family) return false;
    unsigned nbits = a.family == 4 ? 32 : a.family == 6 ? 128 : 0;
    if (nbits == 0 || block->prefix > nbits) return false;
    unsigned full = block->prefix / 8, rem = block->prefix % 8;
    if (memcmp(a.bytes, block->addr.bytes, full) != 0) return false;
    if (rem) {
        uint8_t mask = (uint8_t)(0xFFu << (8 - rem));
        if ((a.bytes[full] & mask) != (block->addr.bytes[full] & mask)) return false;
    }
    return true;
}

void exh_addr_format(const exh_addr *addr, char *buf, size_t size)
{
    if (!buf || size == 0) return;
    buf[0] = '\0';
    if (!addr || (addr->family != 4 && addr->family != 6)) {
        snprintf(buf, size, "%s", "unknown");
        return;
    }
    if (addr->family == 4) {
        /* By hand: inet_ntop costs the audit log's writer more than the
         * rest of a record (it formats a peer per record). */
        char t[16], *o = t;
        for (int i = 0; i < 4; i++) {
            unsigned v = addr->bytes[i];
            if (i) *o++ = '.';
            if (v >= 100) *o++ = (char)('0' + v / 100);
            if (v >= 10) *o++ = (char)('0' + v / 10 % 10);
            *o++ = (char)('0' + v % 10);
        }
        size_t n = (size_t)(o - t);
        if (n >= size) return; /* buf too small: better empty than truncated */
        memcpy(buf, t, n);
        buf[n] = '\0';
        return;
    }
    if (!inet_ntop(AF_INET6, addr->bytes, buf, (socklen_t)(size > 0x7fffffff ? 0x7fffffff : size)))
        buf[0] = '\0'; /* buf too small: better empty than truncated */
}
