/*
 * test_addr.c -- address and CIDR parsing, containment and formatting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "exhook/addr.h"

/* A string literal as (pointer, length), so embedded NULs survive. */
#define S(lit) lit, sizeof(lit) - 1

/* ---- addresses ----------------------------------------------------------- */

typedef struct {
    const char *in;
    size_t len;
    int family;        /* 0: must be rejected */
    const char *canon; /* exh_addr_format of the result */
} addr_case;

static const addr_case addr_cases[] = {
    {S("127.0.0.1"), 4, "127.0.0.1"},
    {S("0.0.0.0"), 4, "0.0.0.0"},
    {S("255.255.255.255"), 4, "255.255.255.255"},
    {S("10.1.2.3"), 4, "10.1.2.3"},
    {S("::1"), 6, "::1"},
    {S("::"), 6, "::"},
    {S("2001:db8::1"), 6, "2001:db8::1"},
    {S("2001:DB8:0:0:0:0:0:1"), 6, "2001:db8::1"},
    {S("fe80::1:2:3:4"), 6, "fe80::1:2:3:4"},
    {S("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
    {S("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"), 6,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, /* 45 chars, the longest */
    /* IPv4-mapped: normalised to IPv4 */
    {S("::ffff:127.0.0.1"), 4, "127.0.0.1"},
    {S("::FFFF:10.0.0.1"), 4, "10.0.0.1"},
    {S("::ffff:7f00:1"), 4, "127.0.0.1"},
    {S("0:0:0:0:0:ffff:192.168.1.1"), 4, "192.168.1.1"},
    /* close to mapped but not: stay IPv6 */
    {S("::fffe:127.0.0.1"), 6, "::fffe:7f00:1"},
    {S("::127.0.0.1"), 6, "::127.0.0.1"}, /* IPv4-compatible (deprecated) */
    {S("1::ffff:127.0.0.1"), 6, "1::ffff:7f00:1"},
    {S("64:ff9b::127.0.0.1"), 6, "64:ff9b::7f00:1"},
    /* rejected */
    {S(""), 0, NULL},
    {S(" 127.0.0.1"), 0, NULL},
    {S("127.0.0.1 "), 0, NULL},
    {S("127.0.0"), 0, NULL},
    {S("127.1"), 0, NULL},
    {S("127.0.0.1.1"), 0, NULL},
    {S("256.0.0.1"), 0, NULL},
    {S("1.2.3.-1"), 0, NULL},
    {S("0x7f.0.0.1"), 0, NULL},
    {S("localhost"), 0, NULL},
    {S("127.0.0.1/8"), 0, NULL},
    {S("127.0.0.1:1883"), 0, NULL},
    {S("[::1]"), 0, NULL},
    {S("fe80::1%eth0"), 0, NULL},
    {S(":::"), 0, NULL},
    {S("1:2:3:4:5:6:7:8:9"), 0, NULL},
    {S("12345::"), 0, NULL},
    {S("::g"), 0, NULL},
    {S("127.0.0.1\0"), 0, NULL},
    {S("\0"
       "127.0.0.1"),
     0, NULL},
    {S("::1\0"), 0, NULL},
    {S("0000:0000:0000:0000:0000:ffff:255.255.255.255"), 4, "255.255.255.255"}, /* 45 chars */
    {S("0000:0000:0000:0000:0000:ffff:255.255.255.255 "), 0, NULL},             /* 46 chars */
    {S("0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:1"), 0, NULL},
};

static void test_addr_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        const addr_case *c = &addr_cases[i];
        exh_addr a;
        memset(&a, 0xAA, sizeof(a));
        bool ok = exh_addr_parse(c->in, c->len, &a);
        char buf[64] = "";
        if (ok) exh_addr_format(&a, buf, sizeof(buf));
        if (ok != (c->family != 0) || (ok && (a.family != c->family || strcmp(buf, c->canon)))) {
            print_error("row %zu (\"%s\"): ok %d family %d \"%s\"; want family %d \"%s\"\n", i,
                        c->in, ok, a.family, buf, c->family, c->canon ? c->canon : "");
            failures++;
        }
        if (!ok && a.family != 0) {
            print_error("row %zu: a failed parse left family %d\n", i, a.family);
            failures++;
        }
        if (ok && a.family == 4) {
            /* IPv4 lives in bytes[0..3]; the rest is zero. */
            for (size_t k = 4; k < 16; k++)
                assert_int_equal(a.bytes[k], 0);
        }
    }
    assert_int_equal(failures, 0);
}

/* The input is length-delimited: what follows it must not be read. */
static void test_addr_not_terminated(void **state)
{
    (void)state;
    exh_addr a;
    const char *text = "10.0.0.1xyz";
    assert_true(exh_addr_parse(text, 8, &a));
    assert_int_equal(a.family, 4);
    assert_memory_equal(a.bytes, "\x0a\x00\x00\x01", 4);
    assert_false(exh_addr_parse(text, 9, &a));
    assert_true(exh_addr_parse("::1::", 3, &a));
    assert_int_equal(a.family, 6);
    assert_false(exh_addr_parse(NULL, 0, &a));
    assert_false(exh_addr_parse("1.2.3.4", (size_t)-1, &a));
    assert_true(exh_addr_parse(S("1.2.3.4"), NULL)); /* out may be omitted */
}

static void test_addr_format(void **state)
{
    (void)state;
    exh_addr a;
    char buf[64];

    memset(&a, 0, sizeof(a));
    exh_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "unknown");
    exh_addr_format(NULL, buf, sizeof(buf));
    assert_string_equal(buf, "unknown");

    assert_true(exh_addr_parse(S("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), &a));
    char exact[46]; /* the documented minimum */
    exh_addr_format(&a, exact, sizeof(exact));
    assert_string_equal(exact, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");

    /* Too small: empty, never truncated into a different address. */
    char small[8];
    memset(small, 'x', sizeof(small));
    exh_addr_format(&a, small, sizeof(small));
    assert_string_equal(small, "");
    /* IPv4, every digit count, and a buffer exactly large enough */
    assert_true(exh_addr_parse(S("0.10.100.255"), &a));
    char fit[13];
    exh_addr_format(&a, fit, sizeof(fit));
    assert_string_equal(fit, "0.10.100.255");
    exh_addr_format(&a, fit, sizeof(fit) - 1);
    assert_string_equal(fit, "");
    assert_true(exh_addr_parse(S("1.2.3.4"), &a));
    char tiny[4] = "zzz";
    exh_addr_format(&a, tiny, sizeof(tiny));
    assert_string_equal(tiny, "");
    exh_addr_format(&a, tiny, 0); /* no write at all */
    assert_string_equal(tiny, "");
    exh_addr_format(&a, NULL, 46);
}

/* ---- CIDR blocks --------------------------------------------------------- */

typedef struct {
    const char *in;
    size_t len;
    int family; /* 0: must be rejected */
    int prefix;
    const char *canon; /* formatted block address, or a piece of *why */
} cidr_case;

static const cidr_case cidr_cases[] = {
    {S("10.0.0.0/8"), 4, 8, "10.0.0.0"},
    {S("127.0.0.0/8"), 4, 8, "127.0.0.0"},
    {S("127.0.0.1"), 4, 32, "127.0.0.1"},
    {S("127.0.0.1/32"), 4, 32, "127.0.0.1"},
    {S("0.0.0.0/0"), 4, 0, "0.0.0.0"},
    {S("192.168.128.0/17"), 4, 17, "192.168.128.0"},
    {S("10.0.0.0/9"), 4, 9, "10.0.0.0"},
    {S("10.0.0.0/7"), 4, 7, "10.0.0.0"},
    {S("10.128.0.0/9"), 4, 9, "10.128.0.0"},
    {S("::1"), 6, 128, "::1"},
    {S("::1/128"), 6, 128, "::1"},
    {S("::/0"), 6, 0, "::"},
    {S("2001:db8::/32"), 6, 32, "2001:db8::"},
    {S("fe80::/10"), 6, 10, "fe80::"},
    {S("2001:db8:8000::/33"), 6, 33, "2001:db8:8000::"},
    /* mapped: IPv4 block, prefix counted in 128 bits */
    {S("::ffff:127.0.0.1"), 4, 32, "127.0.0.1"},
    {S("::ffff:127.0.0.1/128"), 4, 32, "127.0.0.1"},
    {S("::ffff:127.0.0.0/104"), 4, 8, "127.0.0.0"},
    {S("::ffff:0.0.0.0/96"), 4, 0, "0.0.0.0"},
    /* rejected, with the reason */
    {S(""), 0, 0, "empty"},
    {S("/8"), 0, 0, "missing address"},
    {S("10.0.0.0/"), 0, 0, "missing prefix length"},
    {S("10.0.0.0/33"), 0, 0, "out of range"},
    {S("10.0.0.0/99999999999999999999"), 0, 0, "out of range"},
    {S("10.0.0.0/1000"), 0, 0, "out of range"},
    {S("::/129"), 0, 0, "out of range"},
    {S("::ffff:127.0.0.1/129"), 0, 0, "out of range"},
    {S("10.0.0.0/08"), 0, 0, "leading zero"},
    {S("10.0.0.0/00"), 0, 0, "leading zero"},
    {S("10.0.0.0/+8"), 0, 0, "decimal"},
    {S("10.0.0.0/-8"), 0, 0, "decimal"},
    {S("10.0.0.0/ 8"), 0, 0, "decimal"},
    {S("10.0.0.0/8 "), 0, 0, "decimal"},
    {S("10.0.0.0/8/8"), 0, 0, "decimal"},
    {S("10.0.0.0/0x8"), 0, 0, "decimal"},
    {S("10.0.0.0/8\0"), 0, 0, "decimal"},
    {S("10.0.0.1/8"), 0, 0, "beyond the prefix"},
    {S("11.0.0.0/7"), 0, 0, "beyond the prefix"},
    {S("10.128.0.0/8"), 0, 0, "beyond the prefix"},
    {S("0.0.0.1/0"), 0, 0, "beyond the prefix"},
    {S("::1/127"), 0, 0, "beyond the prefix"},
    {S("2001:db8::/16"), 0, 0, "beyond the prefix"},
    {S("::ffff:127.0.0.1/104"), 0, 0, "beyond the prefix"},
    {S("::ffff:0.0.0.0/95"), 0, 0, "beyond the prefix"},
    {S("::ffff:0.0.0.0/0"), 0, 0, "beyond the prefix"},
    {S("10.0.0/8"), 0, 0, "not an IPv4 or IPv6 address"},
    {S("10.0.0.0.0/8"), 0, 0, "not an IPv4 or IPv6 address"},
    {S("banana/8"), 0, 0, "not an IPv4 or IPv6 address"},
    {S("10.0.0.0 /8"), 0, 0, "not an IPv4 or IPv6 address"},
    {S("[::1]/128"), 0, 0, "not an IPv4 or IPv6 address"},
    {S("10.0\0.0.0/8"), 0, 0, "not an IPv4 or IPv6 address"},
};

static void test_cidr_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++) {
        const cidr_case *c = &cidr_cases[i];
        exh_cidr b;
        const char *why = "stale";
        memset(&b, 0xAA, sizeof(b));
        bool ok = exh_cidr_parse(c->in, c->len, &b, &why);
        char buf[64] = "";
        if (ok) exh_addr_format(&b.addr, buf, sizeof(buf));
        bool good;
        if (c->family)
            good = ok && b.addr.family == c->family && b.prefix == c->prefix &&
                   strcmp(buf, c->canon) == 0 && why == NULL;
        else
            good = !ok && why && strstr(why, c->canon) && b.addr.family == 0;
        if (!good) {
            print_error("row %zu (\"%s\"): ok %d family %d prefix %d \"%s\" why \"%s\"\n", i, c->in,
                        ok, b.addr.family, b.prefix, buf, why ? why : "(null)");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_cidr_args(void **state)
{
    (void)state;
    exh_cidr b;
    const char *why;
    /* why and out may each be omitted */
    assert_true(exh_cidr_parse(S("10.0.0.0/8"), &b, NULL));
    assert_false(exh_cidr_parse(S("10.0.0.1/8"), &b, NULL));
    assert_true(exh_cidr_parse(S("10.0.0.0/8"), NULL, &why));
    assert_false(exh_cidr_parse(NULL, 0, &b, &why));
    assert_non_null(why);
    /* length-delimited */
    assert_true(exh_cidr_parse("10.0.0.0/8junk", 10, &b, &why));
    assert_int_equal(b.prefix, 8);
    assert_true(exh_cidr_parse("128.0.0.0/16", 11, &b, &why));
    assert_int_equal(b.prefix, 1);
}

/* ---- containment --------------------------------------------------------- */

typedef struct {
    const char *block;
    const char *addr;
    bool want;
} contains_case;

static const contains_case contains_cases[] = {
    {"127.0.0.0/8", "127.0.0.1", true},
    {"127.0.0.0/8", "127.255.255.255", true},
    {"127.0.0.0/8", "128.0.0.0", false},
    {"127.0.0.0/8", "126.255.255.255", false},
    {"127.0.0.0/8", "::ffff:127.0.0.1", true}, /* mapped client, IPv4 rule */
    {"127.0.0.0/8", "::ffff:128.0.0.1", false},
    {"127.0.0.0/8", "::127.0.0.1", false}, /* IPv4-compatible is not mapped */
    {"127.0.0.0/8", "::1", false},         /* families differ */
    {"::ffff:127.0.0.0/104", "127.0.0.1", true},
    {"::ffff:127.0.0.0/104", "::ffff:127.0.0.2", true},
    {"127.0.0.1", "127.0.0.1", true},
    {"127.0.0.1", "127.0.0.2", false},
    {"192.168.128.0/17", "192.168.255.1", true},
    {"192.168.128.0/17", "192.168.127.1", false},
    {"10.0.0.0/31", "10.0.0.1", true},
    {"10.0.0.0/31", "10.0.0.2", false},
    {"0.0.0.0/0", "1.2.3.4", true},
    {"0.0.0.0/0", "255.255.255.255", true},
    {"0.0.0.0/0", "::ffff:1.2.3.4", true},
    {"0.0.0.0/0", "::1", false}, /* /0 covers its own family only */
    {"0.0.0.0/0", "::", false},
    {"::/0", "::1", true},
    {"::/0", "2001:db8::1", true},
    {"::/0", "1.2.3.4", false},
    {"::/0", "::ffff:1.2.3.4", false}, /* mapped is IPv4 now */
    {"::1", "::1", true},
    {"::1", "::2", false},
    {"::1", "127.0.0.1", false},
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/32", "2001:db9::1", false},
    {"fe80::/10", "febf::1", true},
    {"fe80::/10", "fec0::1", false},
    {"2001:db8::/127", "2001:db8::1", true},
    {"2001:db8::/127", "2001:db8::2", false},
    {"::/1", "7fff::", true},
    {"::/1", "8000::", false},
};

static void test_contains_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(contains_cases) / sizeof(contains_cases[0]); i++) {
        const contains_case *c = &contains_cases[i];
        exh_cidr b;
        exh_addr a;
        const char *why = NULL;
        assert_true(exh_cidr_parse(c->block, strlen(c->block), &b, &why));
        assert_true(exh_addr_parse(c->addr, strlen(c->addr), &a));
        bool got = exh_cidr_contains(&b, &a);
        if (got != c->want) {
            print_error("row %zu: %s contains %s = %d, want %d\n", i, c->block, c->addr, got,
                        c->want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_contains_odd_inputs(void **state)
{
    (void)state;
    exh_cidr all4, all6;
    exh_addr a;
    assert_true(exh_cidr_parse(S("0.0.0.0/0"), &all4, NULL));
    assert_true(exh_cidr_parse(S("::/0"), &all6, NULL));

    /* An absent address (family 0) matches nothing, not even /0. */
    memset(&a, 0, sizeof(a));
    assert_false(exh_cidr_contains(&all4, &a));
    assert_false(exh_cidr_contains(&all6, &a));
    exh_cidr zero;
    memset(&zero, 0, sizeof(zero));
    assert_false(exh_cidr_contains(&zero, &a));

    /* A failed parse leaves an address that matches nothing. */
    assert_false(exh_addr_parse(S("nope"), &a));
    assert_false(exh_cidr_contains(&all4, &a));
    assert_false(exh_cidr_contains(&all6, &a));

    /* A mapped address filled in by hand (e.g. from a sockaddr_in6)
     * is treated like the parsed, normalised one. */
    memset(&a, 0, sizeof(a));
    a.family = 6;
    a.bytes[10] = a.bytes[11] = 0xff;
    a.bytes[12] = 127;
    a.bytes[15] = 1;
    exh_cidr lo;
    assert_true(exh_cidr_parse(S("127.0.0.0/8"), &lo, NULL));
    assert_true(exh_cidr_contains(&lo, &a));
    assert_false(exh_cidr_contains(&all6, &a));

    /* Malformed blocks and NULLs do not crash or match. */
    exh_cidr bad = lo;
    bad.prefix = 33;
    assert_true(exh_addr_parse(S("127.0.0.1"), &a));
    assert_false(exh_cidr_contains(&bad, &a));
    bad.addr.family = 5;
    bad.prefix = 0;
    assert_false(exh_cidr_contains(&bad, &a));
    assert_false(exh_cidr_contains(NULL, &a));
    assert_false(exh_cidr_contains(&lo, NULL));
}

/* Every prefix length of both families: the block built from an address
 * contains it, and flipping the first bit inside the prefix leaves it. */
static void test_contains_every_prefix(void **state)
{
    (void)state;
    static const char *const addrs[] = {"203.0.113.77", "2001:db8:1234:5678:9abc:def0:1357:9bdf"};
    for (size_t k = 0; k < 2; k++) {
        exh_addr a;
        assert_true(exh_addr_parse(addrs[k], strlen(addrs[k]), &a));
        unsigned nbits = a.family == 4 ? 32 : 128;
        for (unsigned p = 0; p <= nbits; p++) {
            exh_cidr b;
            memset(&b, 0, sizeof(b));
            b.addr.family = a.family;
            b.prefix = (uint8_t)p;
            for (unsigned bit = 0; bit < p; bit++)
                b.addr.bytes[bit / 8] |= a.bytes[bit / 8] & (0x80u >> (bit % 8));
            /* The block must also round-trip through the parser. */
            char text[64], cidr[80];
            exh_addr_format(&b.addr, text, sizeof(text));
            size_t n = (size_t)snprintf(cidr, sizeof(cidr), "%s/%u", text, p);
            exh_cidr parsed;
            const char *why = NULL;
            assert_true(exh_cidr_parse(cidr, n, &parsed, &why));
            assert_int_equal(parsed.prefix, p);
            assert_memory_equal(parsed.addr.bytes, b.addr.bytes, 16);
            assert_true(exh_cidr_contains(&b, &a));
            if (p > 0) {
                exh_addr flipped = a;
                flipped.bytes[(p - 1) / 8] ^= (uint8_t)(0x80u >> ((p - 1) % 8));
                assert_false(exh_cidr_contains(&b, &flipped));
                /* and one more bit of host part than the prefix allows */
                if (p < nbits) {
                    exh_cidr narrower;
                    char t2[80];
                    n = (size_t)snprintf(t2, sizeof(t2), "%s/%u", addrs[k], p);
                    bool host_bits = false;
                    for (unsigned bit = p; bit < nbits; bit++)
                        if (a.bytes[bit / 8] & (0x80u >> (bit % 8))) host_bits = true;
                    assert_int_equal(exh_cidr_parse(t2, n, &narrower, &why), !host_bits);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_table),          cmocka_unit_test(test_addr_not_terminated),
        cmocka_unit_test(test_addr_format),         cmocka_unit_test(test_cidr_table),
        cmocka_unit_test(test_cidr_args),           cmocka_unit_test(test_contains_table),
        cmocka_unit_test(test_contains_odd_inputs), cmocka_unit_test(test_contains_every_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
