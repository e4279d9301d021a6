/*
 * test_import.c -- users from mosquitto_passwd files and EMQX exports.
 *
 * Parsing: each format's records and line numbers, CRLF, comments, blank
 * lines, a byte order mark, and a table of malformed inputs each checked
 * for its line and message.  Importing: one transaction (a failure on
 * line N leaves the store exactly as it was, a pre-existing user
 * untouched), replace mode, progress, file errors, a file written by the
 * real mosquitto_passwd whose passwords then authenticate, and an import
 * killed with SIGKILL halfway that leaves the store as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exhook/auth.h"
#include "exhook/import.h"
#include "exhook/policy.h"

/* Hashes made once with the real tools, so parsing tests need none:
 *   mosquitto_passwd -b FILE alice secret               ($7$, the default)
 *   mosquitto_passwd -H sha512 -b FILE bob hunter2      ($6$)
 *   python3 crypt.crypt("pw-b", METHOD_BLOWFISH, rounds=16)  (bcrypt, cost 4) */
#define H7                                                                                         \
    "$7$101$r2wvLFUemjEQU46M$"                                                                     \
    "CUqwvlf2ohZ1OHNOTqu75ftzhJSGHUryrIULYxJFzDpwupQQVzCylPE84PD1xo5w1Ba5iblDdk72Zrh4N/Hg7Q=="
#define H7_PW "secret"
#define H6                                                                                         \
    "$6$WjycyPThUkQ9VFf3$GLnDL7HoHnnEDg74mbUoMEsD2n32I5I7EvzgQe7Hpo3n76RRvCvZRnm2SmJB/"            \
    "CGq1Eed3rk7i54npuXPA0BMgA=="
#define H6_PW "hunter2"
#define BC    "$2b$04$eZwkX9/ViO7HpB2oWWdv3OPt9P3yBXSmj4zsgxkRXrCjbR.fJnGk2"
#define BC_PW "pw-b"
/* A well-formed SHA-256 hex digest (from EMQX's documentation). */
#define HEX64   "b6c743545a7817ae8c8f624371d5f5f0373234bb0ff36b8ffbf19bce0e06ab75"
#define CSV_HDR "user_id,password_hash,salt,is_superuser\n"

/* A string literal as (pointer, length), so embedded NULs survive. */
#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ------------------------------------------------------------ */

typedef struct rec {
    char *name, *hash;
    bool superuser;
    unsigned line;
} rec;

typedef struct recs {
    rec r[32];
    size_t n;
    size_t stop_after; /* 0: never stop */
} recs;

static int collect(const exh_import_record *r, void *u)
{
    recs *c = u;
    if (c->n < sizeof(c->r) / sizeof(c->r[0])) {
        c->r[c->n] = (rec){strdup(r->name), strdup(r->hash), r->superuser, r->line};
    }
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void recs_free(recs *c)
{
    for (size_t i = 0; i < c->n && i < sizeof(c->r) / sizeof(c->r[0]); i++) {
        free(c->r[i].name);
        free(c->r[i].hash);
    }
    memset(c, 0, sizeof(*c));
}

static exh_status parse_n(exh_import_format fmt, const char *text, size_t len,
                          const exh_import_opts *o, recs *out, exh_error *err)
{
    memset(out, 0, sizeof(*out));
    return exh_import_parse(fmt, "in.txt", text, len, o, collect, out, err);
}

static void parse_ok(exh_import_format fmt, const char *text, const exh_import_opts *o, recs *out)
{
    exh_error err;
    exh_status st = parse_n(fmt, text, strlen(text), o, out, &err);
    if (st != EXH_OK) fail_msg("parse failed: %s:%u: %s", err.file, err.line, err.message);
}

static void expect_rec(const recs *c, size_t i, const char *name, unsigned line, bool super)
{
    assert_true(i < c->n);
    assert_string_equal(c->r[i].name, name);
    assert_int_equal(c->r[i].line, line);
    assert_int_equal(c->r[i].superuser, super);
}

static void expect_verifies(const char *hash, const char *pw)
{
    assert_int_equal(exh_hash_verify(hash, pw, strlen(pw)), EXH_VERIFY_OK);
    assert_int_equal(exh_hash_verify(hash, "wrong", 5), EXH_VERIFY_MISMATCH);
}

/* Lower-case hex of a digest over a || b. */
static void digest_hex(const EVP_MD *md, const char *a, const char *b, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestInit_ex(ctx, md, NULL), 1);
    EVP_DigestUpdate(ctx, a, strlen(a));
    EVP_DigestUpdate(ctx, b, strlen(b));
    assert_int_equal(EVP_DigestFinal_ex(ctx, d, &n), 1);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Per-test temporary directory and store. */
static char dir[64], dbpath[128];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/exh-import-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(dbpath, sizeof(dbpath), "%s/t.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static exh_store *open_store(void)
{
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 64; /* cheap argon2id for the users these tests add */
    o.hash.t_cost = 1;
    exh_store *s = NULL;
    exh_error err;
    if (exh_store_open(dbpath, &o, &s, &err) != EXH_OK) fail_msg("open: %s", err.message);
    return s;
}

static void add_pw_user(exh_store *s, const char *name, const char *pw)
{
    exh_new_user u = {.name = name, .password = pw, .password_len = strlen(pw)};
    exh_error err;
    if (exh_store_add_user(s, &u, &err) != EXH_OK) fail_msg("add %s: %s", name, err.message);
}

static int count_one(const exh_user *u, void *n)
{
    (void)u;
    ++*(size_t *)n;
    return 0;
}

static size_t count_users(exh_store *s)
{
    size_t n = 0;
    exh_error err;
    assert_int_equal(exh_store_list_users(s, count_one, &n, &err), EXH_OK);
    return n;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* n users "<prefix>NNNNNN:<hash>"; if bad_at (1-based record) is non-zero,
 * that record's line has no ':'. */
static void write_mosq_file(const char *path, size_t n, const char *prefix, size_t bad_at)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 1; i <= n; i++) {
        if (i == bad_at)
            fprintf(f, "%s%06zu\n", prefix, i);
        else
            fprintf(f, "%s%06zu:%s\n", prefix, i, H7);
    }
    assert_int_equal(fclose(f), 0);
}

/* ---- formats and options ------------------------------------------------- */

static void test_format_names_and_defaults(void **state)
{
    (void)state;
    exh_import_format f;
    assert_true(exh_import_format_parse("mosquitto-passwd", &f));
    assert_int_equal(f, EXH_IMPORT_MOSQUITTO);
    assert_true(exh_import_format_parse("emqx-csv", &f));
    assert_int_equal(f, EXH_IMPORT_EMQX_CSV);
    assert_true(exh_import_format_parse("emqx-json", &f));
    assert_int_equal(f, EXH_IMPORT_EMQX_JSON);
    assert_false(exh_import_format_parse("mosquitto", &f));
    assert_false(exh_import_format_parse("EMQX-CSV", &f));
    assert_false(exh_import_format_parse("", &f));
    assert_false(exh_import_format_parse(NULL, &f));

    exh_import_opts o;
    memset(&o, 0xff, sizeof(o));
    exh_import_opts_default(&o);
    assert_int_equal(o.emqx_alg, EXH_HASH_EMQX_SHA256);
    assert_true(o.emqx_salt_prefix);
    assert_false(o.replace);

    /* An algorithm that is not an EMQX digest is refused up front. */
    o.emqx_alg = EXH_HASH_BCRYPT;
    recs c;
    exh_error err;
    assert_int_equal(parse_n(EXH_IMPORT_EMQX_CSV, S(CSV_HDR), &o, &c, &err), EXH_EINVAL);
    assert_non_null(strstr(err.message, "sha256 or sha512"));
}

/* ---- mosquitto_passwd ------------------------------------------------------ */

static void test_mosquitto_records(void **state)
{
    (void)state;
    const char *text = "# exported from broker-1\n"       /* 1: comment */
                       "\n"                               /* 2: blank */
                       "alice:" H7 "\n"                   /* 3 */
                       "   \t\n"                          /* 4: white space only */
                       "bob:" H6 "\r\n"                   /* 5: CRLF */
                       " carol : " BC " \n"               /* 6: trimmed, as the broker does */
                       "#dave:" H7 "\n"                   /* 7: '#' in column 1: a comment */
                       "dev-\xc3\xa9t\xc3\xa9 7:" H7 "\n" /* 8: UTF-8 and a blank inside */
                       "erin:" H7;                        /* 9: no final newline */
    recs c;
    parse_ok(EXH_IMPORT_MOSQUITTO, text, NULL, &c);
    assert_int_equal(c.n, 5);
    expect_rec(&c, 0, "alice", 3, false);
    expect_rec(&c, 1, "bob", 5, false);
    expect_rec(&c, 2, "carol", 6, false);
    expect_rec(&c, 3, "dev-\xc3\xa9t\xc3\xa9 7", 8, false);
    expect_rec(&c, 4, "erin", 9, false);
    /* Hashes are kept byte for byte, and they still verify. */
    assert_string_equal(c.r[0].hash, H7);
    assert_string_equal(c.r[1].hash, H6);
    assert_string_equal(c.r[2].hash, BC);
    expect_verifies(c.r[0].hash, H7_PW);
    expect_verifies(c.r[1].hash, H6_PW);
    expect_verifies(c.r[2].hash, BC_PW);
    recs_free(&c);
}

static void test_mosquitto_crlf_file(void **state)
{
    (void)state;
    const char *text = "# comment\r\n\r\nalice:" H7 "\r\nbob:" H6 "\r\n\r\n";
    recs c;
    parse_ok(EXH_IMPORT_MOSQUITTO, text, NULL, &c);
    assert_int_equal(c.n, 2);
    expect_rec(&c, 0, "alice", 3, false);
    expect_rec(&c, 1, "bob", 4, false);
    assert_string_equal(c.r[0].hash, H7); /* no '\r' left on the hash */
    assert_string_equal(c.r[1].hash, H6);
    recs_free(&c);

    /* Empty input and a file of comments hold no users, and are fine. */
    parse_ok(EXH_IMPORT_MOSQUITTO, "", NULL, &c);
    assert_int_equal(c.n, 0);
    parse_ok(EXH_IMPORT_MOSQUITTO, "# nobody\n\n", NULL, &c);
    assert_int_equal(c.n, 0);
}

/* ---- EMQX CSV ----------------------------------------------------------------- */

static void test_csv_records(void **state)
{
    (void)state;
    char hex_a[129], hex_d[129], hex_d_lower[129], text[2048];
    digest_hex(EVP_sha256(), "salt-a", "pw-a", hex_a); /* prefix: SHA256(salt || password) */
    digest_hex(EVP_sha256(), "d$1", "pw-d", hex_d);
    strcpy(hex_d_lower, hex_d);
    for (char *p = hex_d; *p; p++) /* upper-case hex is the same digest */
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
    snprintf(text, sizeof(text),
             CSV_HDR                             /* 1 */
             "alice,%s,salt-a,true\n"            /* 2 */
             "bob," BC ",,false\n"               /* 3: bcrypt kept, salt unused */
             "\n"                                /* 4: blank */
             "\"a,b \"\"q\"\"\" , " H7 " , , \n" /* 5: quoted, blanks trimmed */
             "dora,%s,d$1,TRUE\r\n"              /* 6: CRLF, upper-case */
             "erin," H6 ",x,\n",                 /* 7: empty is_superuser */
             hex_a, hex_d);
    recs c;
    parse_ok(EXH_IMPORT_EMQX_CSV, text, NULL, &c);
    assert_int_equal(c.n, 5);
    expect_rec(&c, 0, "alice", 2, true);
    expect_rec(&c, 1, "bob", 3, false);
    expect_rec(&c, 2, "a,b \"q\"", 5, false);
    expect_rec(&c, 3, "dora", 6, true);
    expect_rec(&c, 4, "erin", 7, false);

    /* A hex digest becomes an EMQX hash string that verifies. */
    assert_true(starts_with(c.r[0].hash, "$emqx-sha256$prefix$"));
    assert_int_equal(exh_hash_identify(c.r[0].hash), EXH_HASH_EMQX_SHA256);
    assert_non_null(strstr(c.r[0].hash, hex_a));
    expect_verifies(c.r[0].hash, "pw-a");
    /* Self-describing hashes are kept as they are. */
    assert_string_equal(c.r[1].hash, BC);
    expect_verifies(c.r[1].hash, BC_PW);
    assert_string_equal(c.r[2].hash, H7);
    assert_string_equal(c.r[4].hash, H6);
    /* A salt holding '$' survives; upper-case hex is stored lower-case. */
    expect_verifies(c.r[3].hash, "pw-d");
    assert_non_null(strstr(c.r[3].hash, hex_d_lower));
    recs_free(&c);
}

static void test_csv_column_order_and_extra_columns(void **state)
{
    (void)state;
    const char *text = "\n"                                 /* 1: blank before header */
                       " password_hash , user_id ,note\r\n" /* 2 */
        BC ",bob,\"first, imported\"\r\n"                   /* 3 */
        H7 ",alice,\r\n";                                   /* 4 */
    recs c;
    parse_ok(EXH_IMPORT_EMQX_CSV, text, NULL, &c);
    assert_int_equal(c.n, 2);
    expect_rec(&c, 0, "bob", 3, false);
    expect_rec(&c, 1, "alice", 4, false);
    assert_string_equal(c.r[0].hash, BC);
    assert_string_equal(c.r[1].hash, H7);
    recs_free(&c);

    /* A header and no users: nothing to import, and no error. */
    parse_ok(EXH_IMPORT_EMQX_CSV, CSV_HDR, NULL, &c);
    assert_int_equal(c.n, 0);
}

static void test_csv_sha512_suffix(void **state)
{
    (void)state;
    char hex[129], text[512];
    digest_hex(EVP_sha512(), "pw-s", "NaCl", hex); /* suffix: SHA512(password || salt) */
    snprintf(text, sizeof(text), CSV_HDR "sam,%s,NaCl,false\n", hex);

    exh_import_opts o;
    exh_import_opts_default(&o);
    o.emqx_alg = EXH_HASH_EMQX_SHA512;
    o.emqx_salt_prefix = false;
    recs c;
    parse_ok(EXH_IMPORT_EMQX_CSV, text, &o, &c);
    assert_int_equal(c.n, 1);
    assert_true(starts_with(c.r[0].hash, "$emqx-sha512$suffix$"));
    expect_verifies(c.r[0].hash, "pw-s");
    recs_free(&c);

    /* With the default (SHA-256) the digest has the wrong length: said so. */
    exh_error err;
    assert_int_equal(parse_n(EXH_IMPORT_EMQX_CSV, text, strlen(text), NULL, &c, &err), EXH_ESYNTAX);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.message, "128 hex digits"));
    assert_non_null(strstr(err.message, "SHA-256 digests have 64"));
    recs_free(&c);

    /* Prefix and suffix are different hashes of the same data. */
    o.emqx_salt_prefix = true;
    parse_ok(EXH_IMPORT_EMQX_CSV, text, &o, &c);
    assert_int_equal(exh_hash_verify(c.r[0].hash, "pw-s", 4), EXH_VERIFY_MISMATCH);
    recs_free(&c);
}

/* The example from EMQX's "Import Users" documentation, verbatim. */
static void test_csv_emqx_docs_example(void **state)
{
    (void)state;
    const char *text = "user_id,password_hash,salt,is_superuser\n"
                       "myuser3,b6c743545a7817ae8c8f624371d5f5f0373234bb0ff36b8ffbf19bce0e06ab75,"
                       "de1024f462fb83910fd13151bd4bd235,true\n"
                       "myuser4,ee68c985a69208b6eda8c6c9b4c7c2d2b15ee2352cdd64a903171710a99182e8,"
                       "ad773b5be9dd0613fe6c2f4d8c403139,false\n";
    recs c;
    parse_ok(EXH_IMPORT_EMQX_CSV, text, NULL, &c);
    assert_int_equal(c.n, 2);
    expect_rec(&c, 0, "myuser3", 2, true);
    expect_rec(&c, 1, "myuser4", 3, false);
    assert_int_equal(exh_hash_identify(c.r[0].hash), EXH_HASH_EMQX_SHA256);
    assert_true(starts_with(c.r[0].hash, "$emqx-sha256$prefix$"));
    assert_non_null(
        strstr(c.r[1].hash, "$ee68c985a69208b6eda8c6c9b4c7c2d2b15ee2352cdd64a903171710a99182e8"));
    recs_free(&c);
}

/* ---- EMQX JSON ------------------------------------------------------------------ */

static void test_json_records(void **state)
{
    (void)state;
    char hex[129], text[2048];
    digest_hex(EVP_sha256(), "s1", "pw-j", hex);
    snprintf(text, sizeof(text),
             "[\n"   /* 1 */
             "  {\n" /* 2 */
             "    \"user_id\": \"jo\",\n"
             "    \"password_hash\": \"%s\",\n"
             "    \"salt\": \"s1\",\n"
             "    \"is_superuser\": true\n"
             "  },\n"
             "  {\"user_id\": \"bob\", \"password_hash\": \"" BC
             "\", \"note\": [1, {\"x\": \"}\"}]},\n" /* 8 */
             "\n"
             "  {\"user_id\": \"br\\\"ace{\", \"password_hash\": \"" H7 "\",\n" /* 10 */
             "   \"is_superuser\": \"false\", \"salt\": null}, {\"user_id\": \"z\",\n"
             "   \"password_hash\": \"" H6 "\", \"is_superuser\": null}\n" /* 11 */
             "]\n",
             hex);
    recs c;
    parse_ok(EXH_IMPORT_EMQX_JSON, text, NULL, &c);
    assert_int_equal(c.n, 4);
    expect_rec(&c, 0, "jo", 2, true);
    expect_rec(&c, 1, "bob", 8, false);
    expect_rec(&c, 2, "br\"ace{", 10, false);
    expect_rec(&c, 3, "z", 11, false);
    expect_verifies(c.r[0].hash, "pw-j");
    assert_string_equal(c.r[1].hash, BC);
    assert_string_equal(c.r[2].hash, H7);
    assert_string_equal(c.r[3].hash, H6);
    recs_free(&c);

    parse_ok(EXH_IMPORT_EMQX_JSON, " [ ] ", NULL, &c);
    assert_int_equal(c.n, 0);
}

static void test_json_emqx_docs_example(void **state)
{
    (void)state;
    const char *text =
        "[\n"
        "  {\n"
        "      \"user_id\":\"myuser1\",\n"
        "      "
        "\"password_hash\":\"c5e46903df45e5dc096dc74657610dbee8deaacae656df88a1788f1847390242\",\n"
        "      \"salt\": \"e378187547bf2d6f0545a3f441aa4d8a\",\n"
        "      \"is_superuser\": true\n"
        "  },\n"
        "  {\n"
        "      \"user_id\":\"myuser2\",\n"
        "      "
        "\"password_hash\":\"f4d17f300b11e522fd33f497c11b126ef1ea5149c74d2220f9a16dc876d4567b\",\n"
        "      \"salt\": \"6d3f9bd5b54d94b98adbcfe10b6d181f\",\n"
        "      \"is_superuser\": false\n"
        "  }\n"
        "]\n";
    recs c;
    parse_ok(EXH_IMPORT_EMQX_JSON, text, NULL, &c);
    assert_int_equal(c.n, 2);
    expect_rec(&c, 0, "myuser1", 2, true);
    expect_rec(&c, 1, "myuser2", 8, false);
    assert_int_equal(exh_hash_identify(c.r[1].hash), EXH_HASH_EMQX_SHA256);
    recs_free(&c);
}

/* ---- shared behaviour ------------------------------------------------------------ */

static void test_byte_order_mark(void **state)
{
    (void)state;
    recs c;
    parse_ok(EXH_IMPORT_MOSQUITTO,
             "\xef\xbb\xbf"
             "alice:" H7 "\n",
             NULL, &c);
    assert_int_equal(c.n, 1);
    expect_rec(&c, 0, "alice", 1, false);
    recs_free(&c);
    parse_ok(EXH_IMPORT_EMQX_CSV, "\xef\xbb\xbf" CSV_HDR "bob," BC ",,\n", NULL, &c);
    assert_int_equal(c.n, 1);
    expect_rec(&c, 0, "bob", 2, false);
    recs_free(&c);
    parse_ok(EXH_IMPORT_EMQX_JSON, "\xef\xbb\xbf[{\"user_id\":\"x\",\"password_hash\":\"" BC "\"}]",
             NULL, &c);
    assert_int_equal(c.n, 1);
    recs_free(&c);
}

static void test_callback_stops_parse(void **state)
{
    (void)state;
    const char *text = "a:" H7 "\nb:" H7 "\nc:" H7 "\nbroken line\n";
    recs c;
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    exh_error err;
    /* Stopping is not an error, and nothing after the stop is looked at. */
    assert_int_equal(exh_import_parse(EXH_IMPORT_MOSQUITTO, "in.txt", text, strlen(text), NULL,
                                      collect, &c, &err),
                     EXH_OK);
    assert_int_equal(c.n, 2);
    recs_free(&c);
}

/* ---- malformed input --------------------------------------------------------------- */

typedef struct bad_case {
    exh_import_format fmt;
    const char *text;
    size_t len;
    unsigned line;
    const char *msg; /* a substring of the message */
} bad_case;

#define M              EXH_IMPORT_MOSQUITTO
#define C              EXH_IMPORT_EMQX_CSV
#define J              EXH_IMPORT_EMQX_JSON
#define JU(name, rest) "{\"user_id\":\"" name "\",\"password_hash\":\"" BC "\"" rest "}"

static const bad_case bad_cases[] = {
    /* mosquitto_passwd */
    {M, S("alice:" H7 "\nbob\n"), 2, "no ':'"},
    {M, S("# c\n:" H7 "\n"), 2, "empty user name"},
    {M, S("   :" H7 "\n"), 1, "empty user name"},
    {M, S("alice:" H7 "\nbob:plaintext\n"), 2, "mosquitto_passwd -U"},
    {M, S("alice:$7$101$abc\n"), 1, "not a password hash"},
    {M, S("alice:\n"), 1, "no password hash"},
    {M, S("alice:  \r\n"), 1, "no password hash"},
    {M, S("alice:" H7 "\nbob:" H6 "\nalice:" H6 "\n"), 3,
     "duplicate user 'alice' (first on line 1)"},
    {M, S("alice:" H7 "\nb\0b:" H7 "\n"), 2, "NUL byte"},
    {M, S("\xff\xfe:" H7 "\n"), 1, "not valid UTF-8"},
    {M, S("\xc0\xaf:" H7 "\n"), 1, "not valid UTF-8"},      /* overlong '/' */
    {M, S("\xed\xa0\x80x:" H7 "\n"), 1, "not valid UTF-8"}, /* a surrogate */
    {M,
     S("a\x01"
       "b:" H7 "\n"),
     1, "control character"},
    {M, S("a:b:" H7 "\n"), 1, "second ':'"},
    /* EMQX CSV */
    {C, S(""), 1, "no header line"},
    {C, S("user_id,salt\nx,y\n"), 1, "user_id and password_hash"},
    {C, S("user_id,password_hash,user_id\n"), 1, "column 'user_id' twice"},
    {C, S("user_id,,password_hash\n"), 1, "column 2 has no name"},
    {C, S(CSV_HDR "alice," HEX64 ",s,true,extra\n"), 2, "expected 4 fields"},
    {C, S(CSV_HDR "alice," HEX64 "\n"), 2, "found 2"},
    {C, S(CSV_HDR "\"alice," HEX64 ",s,true\n"), 2, "unterminated quoted field"},
    {C, S(CSV_HDR "\"alice\"x," HEX64 ",s,true\n"), 2, "after the closing quote"},
    {C, S(CSV_HDR "al\"ice," HEX64 ",s,true\n"), 2, "inside an unquoted field"},
    {C, S(CSV_HDR "alice," HEX64 ",s,yes\n"), 2, "is_superuser must be true or false"},
    {C, S(CSV_HDR "alice,abcd,s,true\n"), 2, "has 4 hex digits"},
    {C, S(CSV_HDR "alice,not-a-hash!,s,false\n"), 2, "neither a hex digest"},
    {C, S(CSV_HDR "," HEX64 ",s,false\n"), 2, "empty user name"},
    {C, S(CSV_HDR "alice,,s,false\n"), 2, "empty password_hash"},
    {C, S(CSV_HDR "alice," BC ",,\n\nalice," H7 ",,\n"), 4,
     "duplicate user 'alice' (first on line 2)"},
    {C,
     S(CSV_HDR "ali\x7f"
               "ce," BC ",,\n"),
     2, "control character"},
    {C, S(CSV_HDR "alice," BC ",\0,\n"), 2, "NUL byte"},
    /* EMQX JSON */
    {J, S("[\n {\"user_id\": \"a\"\n  \"password_hash\": \"x\"}\n]"), 3, "invalid JSON"},
    {J, S("[\n" JU("a", "") ",\n" JU("b", "") ",\n]"), 4, "invalid JSON"},
    {J, S("{\"user_id\": \"a\"}"), 1, "expected a JSON array"},
    {J, S(""), 1, "invalid JSON"},
    {J, S("[\n" JU("a", "") ",\n 1\n]"), 3, "array element 2 is not an object"},
    {J, S("[\n {\"password_hash\": \"" BC "\"}\n]"), 2, "missing user_id"},
    {J, S("[\n {\"user_id\": 5, \"password_hash\": \"" BC "\"}\n]"), 2, "user_id must be a string"},
    {J, S("[\n {\"user_id\": \"a\", \"password\": \"p\"}\n]"), 2, "plain-text 'password'"},
    {J, S("[\n {\"user_id\": \"a\"}\n]"), 2, "missing password_hash"},
    {J, S("[\n {\"user_id\": \"a\", \"password_hash\": []}\n]"), 2,
     "password_hash must be a string"},
    {J, S("[\n\n" JU("a", ",\"is_superuser\": 1") "\n]"), 3, "is_superuser must be true or false"},
    {J, S("[\n" JU("a", ",\"is_superuser\": \"yes\"") "\n]"), 2, "is_superuser must be"},
    {J, S("[\n" JU("a", ",\"salt\": 5") "\n]"), 2, "salt must be a string"},
    {J, S("[\n" JU("a", "") ",\n" JU("b", "") ",\n\n\n" JU("a", "") "]"), 6,
     "duplicate user 'a' (first on line 2)"},
    {J, S("[\n" JU("a", ",\"user_id\":\"b\"") "]"), 2, "duplicate object key"},
    {J, S("[\n {\"user_id\": \"a\\u0000b\", \"password_hash\": \"" BC "\"}]"), 2, "invalid JSON"},
    {J, S("[\n {\"user_id\": \"\", \"password_hash\": \"" BC "\"}]"), 2, "empty user name"},
    {J, S("[\n {\"user_id\": \"a\\tb\", \"password_hash\": \"" BC "\"}]"), 2, "control character"},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case *b = &bad_cases[i];
        recs c;
        exh_error err;
        exh_status st = parse_n(b->fmt, b->text, b->len, NULL, &c, &err);
        if (st != EXH_ESYNTAX || err.line != b->line || strcmp(err.file, "in.txt") ||
            !strstr(err.message, b->msg))
            fail_msg("case %zu: got %s at %s:%u: %s; want line %u, '%s'", i, exh_status_str(st),
                     err.file, err.line, err.message, b->line, b->msg);
        /* Never echo what may be a password. */
        assert_null(strstr(err.message, "plaintext"));
        assert_null(strstr(err.message, HEX64));
        recs_free(&c);
    }
    print_message("%zu malformed inputs rejected with their line\n",
                  sizeof(bad_cases) / sizeof(bad_cases[0]));
}

/* Limits that need inputs too big for the table. */
static void test_malformed_sizes(void **state)
{
    (void)state;
    /* A user name of 65535 bytes is the most MQTT can carry; one more is refused. */
    size_t max = 65535;
    char *text = malloc(max + 1 + sizeof(":" H7 "\n"));
    assert_non_null(text);
    recs c;
    exh_error err;
    memset(text, 'u', max);
    strcpy(text + max, ":" H7 "\n");
    assert_int_equal(parse_n(M, text, strlen(text), NULL, &c, &err), EXH_OK);
    assert_int_equal(c.n, 1);
    recs_free(&c);
    memset(text, 'u', max + 1);
    strcpy(text + max + 1, ":" H7 "\n");
    assert_int_equal(parse_n(M, text, strlen(text), NULL, &c, &err), EXH_ESYNTAX);
    assert_int_equal(err.line, 1);
    assert_non_null(strstr(err.message, "at most 65535"));
    free(text);

    /* A hash longer than any format produces. */
    char longhash[700];
    strcpy(longhash, "alice:$7$101$");
    memset(longhash + 13, 'A', 600);
    strcpy(longhash + 613, "\n");
    assert_int_equal(parse_n(M, longhash, strlen(longhash), NULL, &c, &err), EXH_ESYNTAX);
    assert_int_equal(err.line, 1);
    assert_non_null(strstr(err.message, "too long"));
}

/* ---- importing into a store ------------------------------------------------------- */

typedef struct progress_log {
    size_t calls[16];
    size_t n;
} progress_log;

static void log_progress(size_t done, void *u)
{
    progress_log *p = u;
    if (p->n < 16) p->calls[p->n] = done;
    p->n++;
}

static void test_import_file_and_progress(void **state)
{
    (void)state;
    exh_store *s = open_store();
    char file[160];
    snprintf(file, sizeof(file), "%s/users.txt", dir);
    write_mosq_file(file, 2500, "user", 0);
    progress_log pl = {0};
    size_t imported = 0;
    exh_error err;
    exh_status st = exh_import_file(s, M, file, NULL, log_progress, &pl, &imported, &err);
    if (st) fail_msg("%s:%u: %s", err.file, err.line, err.message);
    assert_int_equal(imported, 2500);
    assert_int_equal(count_users(s), 2500);
    assert_int_equal(pl.n, 3); /* every 1000 records, then at the end */
    assert_int_equal(pl.calls[0], 1000);
    assert_int_equal(pl.calls[1], 2000);
    assert_int_equal(pl.calls[2], 2500);
    exh_user u;
    assert_int_equal(exh_store_get_user(s, "user002500", &u, &err), EXH_OK);
    assert_string_equal(u.hash, H7);
    assert_false(u.superuser);
    exh_user_clear(&u);

    /* An EMQX CSV, superuser flags and all, with no progress callback. */
    snprintf(file, sizeof(file), "%s/users.csv", dir);
    write_text(file, CSV_HDR "root," BC ",,true\nplain," H6 ",,false\n");
    assert_int_equal(exh_import_file(s, C, file, NULL, NULL, NULL, &imported, &err), EXH_OK);
    assert_int_equal(imported, 2);
    assert_int_equal(exh_store_get_user(s, "root", &u, &err), EXH_OK);
    assert_true(u.superuser);
    assert_string_equal(u.hash, BC);
    exh_user_clear(&u);
    assert_int_equal(count_users(s), 2502);
    exh_store_close(s);
}

/* A failure on line N: the store is exactly as before, old users untouched. */
static void test_import_failure_rolls_back(void **state)
{
    (void)state;
    exh_store *s = open_store();
    add_pw_user(s, "keep", "kept-password");
    add_pw_user(s, "other", "other-password");
    exh_user before;
    exh_error err;
    assert_int_equal(exh_store_get_user(s, "keep", &before, &err), EXH_OK);

    char file[160];
    snprintf(file, sizeof(file), "%s/bad.txt", dir);
    write_mosq_file(file, 1600, "new", 1501); /* line 1501 has no ':' */
    progress_log pl = {0};
    size_t imported = 99;
    assert_int_equal(exh_import_file(s, M, file, NULL, log_progress, &pl, &imported, &err),
                     EXH_ESYNTAX);
    assert_string_equal(err.file, file);
    assert_int_equal(err.line, 1501);
    assert_non_null(strstr(err.message, "no ':'"));
    assert_int_equal(imported, 0);
    assert_int_equal(pl.n, 1); /* 1000 went by; no "end" call for a failed import */

    assert_int_equal(count_users(s), 2);
    exh_user after;
    assert_int_equal(exh_store_get_user(s, "new000001", &after, &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_get_user(s, "keep", &after, &err), EXH_OK);
    assert_int_equal(after.rev, before.rev);
    assert_int_equal(after.updated, before.updated);
    assert_string_equal(after.hash, before.hash);
    exh_user_clear(&after);

    /* A user that already exists fails the import on its line, unless
     * replacing; the store is again untouched. */
    write_text(file, "a:" H7 "\nkeep:" H6 "\n");
    assert_int_equal(exh_import_file(s, M, file, NULL, NULL, NULL, &imported, &err), EXH_EEXIST);
    assert_int_equal(err.line, 2);
    assert_string_equal(err.file, file);
    assert_non_null(strstr(err.message, "user 'keep' already exists"));
    assert_non_null(strstr(err.message, "replace"));
    assert_int_equal(count_users(s), 2);

    /* A duplicate inside the file is an error even when replacing. */
    exh_import_opts o;
    exh_import_opts_default(&o);
    o.replace = true;
    write_text(file, "a:" H7 "\nb:" H7 "\na:" H6 "\n");
    assert_int_equal(exh_import_file(s, M, file, &o, NULL, NULL, &imported, &err), EXH_ESYNTAX);
    assert_int_equal(err.line, 3);
    assert_non_null(strstr(err.message, "duplicate user 'a'"));
    assert_int_equal(count_users(s), 2);
    assert_int_equal(exh_store_get_user(s, "keep", &after, &err), EXH_OK);
    assert_int_equal(after.rev, before.rev);
    assert_string_equal(after.hash, before.hash);
    exh_user_clear(&after);
    exh_user_clear(&before);

    /* The store is still writable: the transaction was closed. */
    add_pw_user(s, "later", "pw");
    assert_int_equal(count_users(s), 3);
    exh_store_close(s);
}

static void test_import_replace(void **state)
{
    (void)state;
    exh_store *s = open_store();
    add_pw_user(s, "keep", "old-password");
    add_pw_user(s, "other", "other-password");
    exh_error err;
    assert_int_equal(exh_store_add_to_group(s, "keep", "ops", &err), EXH_OK);

    char file[160];
    snprintf(file, sizeof(file), "%s/r.csv", dir);
    write_text(file, CSV_HDR "keep," BC ",,true\nfresh," H7 ",,false\n");
    exh_import_opts o;
    exh_import_opts_default(&o);
    o.replace = true;
    size_t imported = 0;
    assert_int_equal(exh_import_file(s, C, file, &o, NULL, NULL, &imported, &err), EXH_OK);
    assert_int_equal(imported, 2);
    assert_int_equal(count_users(s), 3);

    exh_user u;
    assert_int_equal(exh_store_get_user(s, "keep", &u, &err), EXH_OK);
    assert_string_equal(u.hash, BC); /* the file's hash and flag now */
    assert_true(u.superuser);
    assert_int_equal(u.ngroups, 0); /* replaced means replaced: a new user */
    exh_user_clear(&u);
    assert_int_equal(exh_store_get_user(s, "other", &u, &err), EXH_OK);
    assert_int_equal(exh_hash_verify(u.hash, "other-password", 14), EXH_VERIFY_OK);
    exh_user_clear(&u);
    exh_store_close(s);
}

static void test_import_file_errors(void **state)
{
    (void)state;
    exh_store *s = open_store();
    exh_error err;
    size_t imported = 7;
    char file[160];
    snprintf(file, sizeof(file), "%s/missing.txt", dir);
    assert_int_equal(exh_import_file(s, M, file, NULL, NULL, NULL, &imported, &err), EXH_EIO);
    assert_string_equal(err.file, file);
    assert_non_null(strstr(err.message, strerror(ENOENT)));
    assert_int_equal(imported, 0);

    assert_int_equal(exh_import_file(s, M, dir, NULL, NULL, NULL, &imported, &err), EXH_EIO);
    assert_non_null(strstr(err.message, "directory"));

    /* Over 1 GiB: refused before reading (a sparse file costs no disk). */
    snprintf(file, sizeof(file), "%s/huge.txt", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, ((off_t)1 << 30) + 1), 0);
    close(fd);
    assert_int_equal(exh_import_file(s, M, file, NULL, NULL, NULL, &imported, &err), EXH_EINVAL);
    assert_string_equal(err.file, file);
    assert_non_null(strstr(err.message, "1 GiB"));

    /* A file of NUL bytes is no password file. */
    fd = open(file, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)1 << 20), 0);
    close(fd);
    assert_int_equal(exh_import_file(s, M, file, NULL, NULL, NULL, &imported, &err), EXH_ESYNTAX);
    assert_int_equal(err.line, 1);
    assert_non_null(strstr(err.message, "NUL"));
    assert_int_equal(count_users(s), 0);
    exh_store_close(s);
}

/* ---- (a) a file written by the real mosquitto_passwd ------------------------------- */

#define MOSQUITTO_PASSWD "/usr/bin/mosquitto_passwd"

static exh_auth_result login(exh_store *s, const exh_policy *p, exh_evalctx *ctx, const char *user,
                             const char *pw)
{
    exh_auth_request rq = {.username = user,
                           .username_len = strlen(user),
                           .clientid = "c1",
                           .clientid_len = 2,
                           .password = pw,
                           .password_len = strlen(pw),
                           .check_password = true};
    exh_auth_result res;
    exh_error err;
    if (exh_authenticate(s, NULL, p, ctx, &rq, &res, &err) != EXH_OK)
        fail_msg("authenticate: %s", err.message);
    return res;
}

static void expect_login(exh_store *s, const exh_policy *p, exh_evalctx *ctx, const char *user,
                         const char *pw, exh_decision want, exh_auth_reason why)
{
    exh_auth_result r = login(s, p, ctx, user, pw);
    if (r.decision != want || r.reason != why)
        fail_msg("%s: got %s / %s", user, exh_decision_str(r.decision),
                 exh_auth_reason_str(r.reason));
    exh_auth_result_clear(&r);
}

static void test_real_mosquitto_passwd(void **state)
{
    (void)state;
    if (access(MOSQUITTO_PASSWD, X_OK) != 0) skip();
    char file[160], cmd[512];
    snprintf(file, sizeof(file), "%s/passwd", dir);
    snprintf(cmd, sizeof(cmd),
             MOSQUITTO_PASSWD " -b -c %s dev-01 'Pbkdf2-pass!' >/dev/null 2>&1 && " MOSQUITTO_PASSWD
                              " -H sha512 -b %s legacy 'old sha512' >/dev/null 2>&1",
             file, file);
    assert_int_equal(system(cmd), 0);

    exh_store *s = open_store();
    size_t imported = 0;
    exh_error err;
    if (exh_import_file(s, M, file, NULL, NULL, NULL, &imported, &err) != EXH_OK)
        fail_msg("%s:%u: %s", err.file, err.line, err.message);
    assert_int_equal(imported, 2);

    exh_user u;
    assert_int_equal(exh_store_get_user(s, "dev-01", &u, &err), EXH_OK);
    assert_true(starts_with(u.hash, "$7$"));
    assert_int_equal(exh_hash_identify(u.hash), EXH_HASH_MOSQ_PBKDF2);
    expect_verifies(u.hash, "Pbkdf2-pass!");
    exh_user_clear(&u);
    assert_int_equal(exh_store_get_user(s, "legacy", &u, &err), EXH_OK);
    assert_true(starts_with(u.hash, "$6$"));
    assert_int_equal(exh_hash_identify(u.hash), EXH_HASH_MOSQ_SHA512);
    expect_verifies(u.hash, "old sha512");
    exh_user_clear(&u);

    /* And through the connect decision, as a broker would ask. */
    exh_policy *p = NULL;
    const char *ptext = "default deny\n";
    assert_int_equal(exh_policy_parse("t", ptext, strlen(ptext), &p, &err), EXH_OK);
    exh_evalctx *ctx = exh_evalctx_new();
    assert_non_null(ctx);
    expect_login(s, p, ctx, "dev-01", "Pbkdf2-pass!", EXH_ALLOW, EXH_AUTH_OK);
    expect_login(s, p, ctx, "dev-01", "pbkdf2-pass!", EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    expect_login(s, p, ctx, "legacy", "old sha512", EXH_ALLOW, EXH_AUTH_OK);
    expect_login(s, p, ctx, "legacy", "old sha51", EXH_DENY, EXH_AUTH_BAD_PASSWORD);
    expect_login(s, p, ctx, "nobody", "x", EXH_DENY, EXH_AUTH_UNKNOWN_USER);
    exh_evalctx_free(ctx);
    exh_policy_free(p);
    exh_store_close(s);
}

/* ---- (b) SIGKILL halfway through an import ------------------------------------------ */

static void tell_parent(size_t done, void *u)
{
    if (done == 1000) {
        char b = '!';
        if (write(*(int *)u, &b, 1) != 1) _exit(5);
    }
}

static int integrity_ok(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *q;
    int ok = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK) {
        ok =
            sqlite3_step(q) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(q, 0), "ok");
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return ok;
}

static void test_sigkill_halfway(void **state)
{
    (void)state;
    exh_store *s = open_store();
    add_pw_user(s, "keep", "kept-password");
    add_pw_user(s, "user100000", "a name the file also has");
    exh_user before;
    exh_error err;
    assert_int_equal(exh_store_get_user(s, "keep", &before, &err), EXH_OK);
    exh_store_close(s);

    char file[160];
    snprintf(file, sizeof(file), "%s/big.txt", dir);
    write_mosq_file(file, 200000, "bulk", 0);

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: no cmocka here, only _exit codes. */
        close(pfd[0]);
        exh_store *cs = NULL;
        exh_error e;
        exh_store_opts o;
        exh_store_opts_default(&o);
        if (exh_store_open(dbpath, &o, &cs, &e) != EXH_OK) _exit(3);
        size_t n;
        exh_status st = exh_import_file(cs, M, file, NULL, tell_parent, &pfd[1], &n, &e);
        _exit(st == EXH_OK ? 0 : 4); /* 0: finished before the kill came */
    }
    close(pfd[1]);
    struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
    int ready = poll(&pf, 1, 60000);
    char b = 0;
    ssize_t got = ready == 1 ? read(pfd[0], &b, 1) : -1;
    kill(pid, SIGKILL);
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    close(pfd[0]);
    if (got != 1) fail_msg("the child never reported 1000 records (exit status %d)", wst);
    if (!WIFSIGNALED(wst) || WTERMSIG(wst) != SIGKILL)
        fail_msg("the child was not killed mid-import (status %d): the file is too small", wst);

    /* The store opens (recovering the WAL), holds exactly what it held,
     * and passes SQLite's integrity check. */
    s = open_store();
    assert_true(integrity_ok(dbpath));
    assert_int_equal(count_users(s), 2);
    exh_user after;
    assert_int_equal(exh_store_get_user(s, "bulk000001", &after, &err), EXH_ENOTFOUND);
    assert_int_equal(exh_store_get_user(s, "keep", &after, &err), EXH_OK);
    assert_int_equal(after.rev, before.rev);
    assert_string_equal(after.hash, before.hash);
    exh_user_clear(&after);
    exh_user_clear(&before);

    /* No lock or transaction was left behind: a new import goes through. */
    snprintf(file, sizeof(file), "%s/small.txt", dir);
    write_mosq_file(file, 10, "bulk", 0);
    size_t imported = 0;
    assert_int_equal(exh_import_file(s, M, file, NULL, NULL, NULL, &imported, &err), EXH_OK);
    assert_int_equal(imported, 10);
    assert_int_equal(count_users(s), 12);
    exh_store_close(s);
    assert_true(integrity_ok(dbpath));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_names_and_defaults),
        cmocka_unit_test(test_mosquitto_records),
        cmocka_unit_test(test_mosquitto_crlf_file),
        cmocka_unit_test(test_csv_records),
        cmocka_unit_test(test_csv_column_order_and_extra_columns),
        cmocka_unit_test(test_csv_sha512_suffix),
        cmocka_unit_test(test_csv_emqx_docs_example),
        cmocka_unit_test(test_json_records),
        cmocka_unit_test(test_json_emqx_docs_example),
        cmocka_unit_test(test_byte_order_mark),
        cmocka_unit_test(test_callback_stops_parse),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_malformed_sizes),
        cmocka_unit_test_setup_teardown(test_import_file_and_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_mosquitto_passwd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_halfway, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
