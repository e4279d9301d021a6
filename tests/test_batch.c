/*
 * test_batch.c -- reading `check --batch` request lines: a valid request
 * of each action with every field, defaults and nulls, exact bytes (NUL
 * included) kept, the request owning its strings, freeing, and a table
 * of malformed lines each checked for its status, column and exact text
 * (the texts are what `check --batch` prints, so they are contract; the
 * JSON syntax ones are jansson's own, pinned to the version built
 * against).  A parsed request is also evaluated against a small policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhook/batch.h"
#include "exhook/eval.h"
#include "exhook/policy.h"

/* A string literal as (pointer, length), so embedded NULs survive. */
#define S(lit) lit, sizeof(lit) - 1

/* Parse a literal that must be valid. */
#define PARSE_OK(lit, b)                                                                           \
    do {                                                                                           \
        exh_error e_;                                                                              \
        exh_status st_ = exh_batch_parse(S(lit), (b), &e_);                                        \
        if (st_ != EXH_OK) fail_msg("%s: status %d: %s", lit, (int)st_, e_.message);               \
    } while (0)

static void assert_bytes(const char *got, size_t gotlen, const char *want, size_t wantlen)
{
    assert_non_null(got);
    assert_int_equal(gotlen, wantlen);
    assert_memory_equal(got, want, wantlen);
    assert_int_equal(got[gotlen], '\0'); /* owned copies are NUL-terminated too */
}

/* ---- valid requests ---------------------------------------------------- */

static void test_publish_every_field(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    PARSE_OK("{\"action\":\"publish\",\"username\":\"u\",\"clientid\":\"c\","
             "\"peerhost\":\"1.2.3.4\",\"topic\":\"t/x\",\"qos\":1,\"retain\":true,"
             "\"groups\":[\"g1\",\"g2\"],\"superuser\":false}",
             &b);
    assert_int_equal(b->req.action, EXH_PUBLISH);
    assert_bytes(b->req.username, b->req.username_len, S("u"));
    assert_bytes(b->req.clientid, b->req.clientid_len, S("c"));
    assert_bytes(b->req.topic, b->req.topic_len, S("t/x"));
    assert_int_equal(b->req.peerhost.family, 4);
    assert_memory_equal(b->req.peerhost.bytes, "\x01\x02\x03\x04", 4);
    assert_int_equal(b->req.qos, 1);
    assert_int_equal(b->req.retain, 1);
    assert_int_equal(b->req.ngroups, 2);
    assert_bytes(b->req.groups[0].ptr, b->req.groups[0].len, S("g1"));
    assert_bytes(b->req.groups[1].ptr, b->req.groups[1].len, S("g2"));
    assert_false(b->req.superuser);
    assert_true(b->groups_given);
    assert_true(b->superuser_given);
    assert_null(b->password);
    exh_batch_req_free(b);
}

static void test_subscribe(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    PARSE_OK("{\"topic\":\"$share/g/a/#\",\"qos\":2,\"superuser\":true,\"action\":\"subscribe\","
             "\"peerhost\":\"::1\"}",
             &b);
    assert_int_equal(b->req.action, EXH_SUBSCRIBE);
    assert_bytes(b->req.topic, b->req.topic_len, S("$share/g/a/#"));
    assert_int_equal(b->req.qos, 2);
    assert_int_equal(b->req.retain, 0);
    assert_true(b->req.superuser);
    assert_true(b->superuser_given);
    assert_false(b->groups_given);
    assert_int_equal(b->req.ngroups, 0);
    assert_non_null(b->req.groups); /* an empty array, never a NULL pointer */
    assert_int_equal(b->req.peerhost.family, 6);
    assert_null(b->req.username); /* anonymous */
    assert_null(b->req.clientid);
    exh_batch_req_free(b);
}

static void test_connect_with_password(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    PARSE_OK("{\"action\":\"connect\",\"username\":\"alice\",\"clientid\":\"dev-7\","
             "\"password\":\"s3cr\\u0000t\\u00e9\"}",
             &b);
    assert_int_equal(b->req.action, EXH_CONNECT);
    assert_bytes(b->req.username, b->req.username_len, S("alice"));
    assert_bytes(b->req.clientid, b->req.clientid_len, S("dev-7"));
    assert_bytes(b->password, b->password_len, S("s3cr\0t\xc3\xa9"));
    assert_null(b->req.topic);
    exh_batch_req_free(b); /* wipes the block, password included, then frees it */
}

static void test_connect_minimal_and_nulls(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    PARSE_OK("{\"action\":\"connect\"}", &b);
    assert_int_equal(b->req.action, EXH_CONNECT);
    assert_null(b->req.username);
    assert_int_equal(b->req.peerhost.family, 0);
    /* DESIGN §2: in check an absent qos is 0 and an absent retain false. */
    assert_int_equal(b->req.qos, 0);
    assert_int_equal(b->req.retain, 0);
    assert_false(b->groups_given);
    assert_false(b->superuser_given);
    exh_batch_req_free(b);

    PARSE_OK("{\"action\":\"connect\",\"username\":null,\"clientid\":null,\"peerhost\":null}", &b);
    assert_null(b->req.username);
    assert_null(b->req.clientid);
    assert_int_equal(b->req.peerhost.family, 0);
    exh_batch_req_free(b);

    /* An IPv4-mapped address is IPv4, as everywhere else. */
    PARSE_OK("{\"action\":\"connect\",\"peerhost\":\"::ffff:127.0.0.1\"}", &b);
    assert_int_equal(b->req.peerhost.family, 4);
    exh_batch_req_free(b);

    /* Whitespace around the object, a carriage return included, is JSON's. */
    PARSE_OK(" \t{\"action\":\"connect\"}\r ", &b);
    exh_batch_req_free(b);
}

static void test_exact_bytes_kept(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    /* NUL and odd bytes reach the evaluator, which judges them. */
    PARSE_OK("{\"action\":\"publish\",\"topic\":\"a\\u0000b\",\"username\":\"x\\u0000\","
             "\"groups\":[\"\",\"g\\u0000h\"],\"clientid\":\"\"}",
             &b);
    assert_bytes(b->req.topic, b->req.topic_len, S("a\0b"));
    assert_bytes(b->req.username, b->req.username_len, S("x\0"));
    assert_bytes(b->req.clientid, b->req.clientid_len, S(""));
    assert_int_equal(b->req.ngroups, 2);
    assert_bytes(b->req.groups[0].ptr, b->req.groups[0].len, S(""));
    assert_bytes(b->req.groups[1].ptr, b->req.groups[1].len, S("g\0h"));
    exh_batch_req_free(b);

    /* Escapes decode; a topic with wildcards is a publish the evaluator denies. */
    PARSE_OK("{\"action\":\"publish\",\"topic\":\"\\u00e9/\\\"/\\\\/#\"}", &b);
    assert_bytes(b->req.topic, b->req.topic_len, S("\xc3\xa9/\"/\\/#"));
    exh_batch_req_free(b);
}

static void test_groups_edges(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    PARSE_OK("{\"action\":\"subscribe\",\"topic\":\"a\",\"groups\":[]}", &b);
    assert_true(b->groups_given); /* [] says "no groups", overriding the store */
    assert_int_equal(b->req.ngroups, 0);
    assert_non_null(b->req.groups);
    exh_batch_req_free(b);

    /* Exactly the limit is fine. */
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof(text),
                                "{\"action\":\"publish\",\"topic\":\"t\","
                                "\"groups\":[");
    for (int i = 0; i < EXH_BATCH_MAX_GROUPS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"g%d\"", i ? "," : "", i);
    n += (size_t)snprintf(text + n, sizeof(text) - n, "]}");
    exh_error err;
    assert_int_equal(exh_batch_parse(text, n, &b, &err), EXH_OK);
    assert_int_equal(b->req.ngroups, EXH_BATCH_MAX_GROUPS);
    assert_bytes(b->req.groups[255].ptr, b->req.groups[255].len, S("g255"));
    exh_batch_req_free(b);
}

/* The request owns its strings: the line it came from can be wiped. */
static void test_owns_strings(void **state)
{
    (void)state;
    static const char src[] = "{\"action\":\"connect\",\"username\":\"bob\",\"password\":\"pw\","
                              "\"groups\":[\"ops\"]}";
    char *text = malloc(sizeof(src));
    assert_non_null(text);
    memcpy(text, src, sizeof(src));
    exh_batch_req *b = NULL;
    exh_error err;
    assert_int_equal(exh_batch_parse(text, sizeof(src) - 1, &b, &err), EXH_OK);
    memset(text, 'X', sizeof(src));
    free(text);
    assert_bytes(b->req.username, b->req.username_len, S("bob"));
    assert_bytes(b->password, b->password_len, S("pw"));
    assert_bytes(b->req.groups[0].ptr, b->req.groups[0].len, S("ops"));
    /* A caller may repoint groups (to the store's); freeing frees what
     * the reader allocated all the same (ASan would see a leak). */
    static const exh_str other[] = {{"x", 1}};
    b->req.groups = other;
    exh_batch_req_free(b);
}

/* Only len bytes are read: what follows them is not the request's. */
static void test_len_respected(void **state)
{
    (void)state;
    static const char text[] = "{\"action\":\"connect\"} garbage";
    exh_batch_req *b = NULL;
    exh_error err;
    assert_int_equal(exh_batch_parse(text, 20, &b, &err), EXH_OK);
    exh_batch_req_free(b);
    /* ...and the same bytes cut one short are not JSON. */
    assert_int_equal(exh_batch_parse(text, 19, &b, &err), EXH_ESYNTAX);
    assert_string_equal(err.message, "'}' expected near end of file");
    /* A NULL text is an empty one. */
    assert_int_equal(exh_batch_parse(NULL, 0, &b, &err), EXH_ESYNTAX);
    assert_string_equal(err.message, "'[' or '{' expected near end of file");
}

static void test_free_and_null_error(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    exh_batch_req_free(NULL);
    /* err may be NULL. */
    assert_int_equal(exh_batch_parse(S("{\"action\":\"connect\"}"), &b, NULL), EXH_OK);
    assert_non_null(b);
    exh_batch_req_free(b);
    assert_int_equal(exh_batch_parse(S("{\"action\":\"x\"}"), &b, NULL), EXH_EINVAL);
    assert_null(b);
    assert_int_equal(exh_batch_parse(S("{"), &b, NULL), EXH_ESYNTAX);
    assert_null(b);
    /* A failure leaves *out NULL, whatever it held before. */
    b = (exh_batch_req *)(uintptr_t)0x5a5a5a5a;
    exh_error err;
    assert_int_equal(exh_batch_parse(S("{\"action\":\"publish\"}"), &b, &err), EXH_EINVAL);
    assert_null(b);
    exh_batch_req_free(b);
}

/* Errors name the first bad field in the order the object gives them. */
static void test_first_bad_field_in_order(void **state)
{
    (void)state;
    exh_batch_req *b = NULL;
    exh_error err;
    assert_int_equal(
        exh_batch_parse(S("{\"action\":\"publish\",\"qos\":9,\"retain\":1,\"topic\":\"t\"}"), &b,
                        &err),
        EXH_EINVAL);
    assert_string_equal(err.message, "\"qos\" must be 0, 1 or 2");
    assert_int_equal(
        exh_batch_parse(S("{\"action\":\"publish\",\"retain\":1,\"qos\":9,\"topic\":\"t\"}"), &b,
                        &err),
        EXH_EINVAL);
    assert_string_equal(err.message, "\"retain\" must be true or false");
    /* "action" is judged first wherever it stands. */
    assert_int_equal(exh_batch_parse(S("{\"qos\":9,\"action\":\"drop\"}"), &b, &err), EXH_EINVAL);
    assert_string_equal(err.message,
                        "\"action\" must be \"publish\", \"subscribe\" or \"connect\"");
    /* Field checks come before the checks of the whole request. */
    assert_int_equal(
        exh_batch_parse(S("{\"action\":\"publish\",\"password\":\"p\",\"colour\":1}"), &b, &err),
        EXH_EINVAL);
    assert_string_equal(err.message, "unknown field \"colour\"");
}

/* ---- malformed lines --------------------------------------------------- */

typedef struct bad_case {
    const char *text;
    size_t len;
    exh_status status;
    unsigned col; /* EXH_ESYNTAX: jansson's column */
    const char *message;
} bad_case;

#define BAD(lit, msg)                                                                              \
    {                                                                                              \
        S(lit), EXH_EINVAL, 0, msg                                                                 \
    }
#define SYN(lit, col, msg)                                                                         \
    {                                                                                              \
        S(lit), EXH_ESYNTAX, col, msg                                                              \
    }
#define ACTION_MSG  "\"action\" must be \"publish\", \"subscribe\" or \"connect\""
#define PUB(fields) "{\"action\":\"publish\",\"topic\":\"t\"," fields "}"

static const bad_case bad_cases[] = {
    /* not an object */
    BAD("[1,2,3]", "a request must be a JSON object"),
    BAD("[]", "a request must be a JSON object"),
    BAD("[{\"action\":\"connect\"}]", "a request must be a JSON object"),
    SYN("\"x\"", 3, "'[' or '{' expected"),
    SYN("1", 1, "'[' or '{' expected"),
    SYN("null", 4, "'[' or '{' expected"),
    SYN("", 0, "'[' or '{' expected near end of file"),
    SYN("not json at all", 3, "'[' or '{' expected"),
    /* action */
    BAD("{}", ACTION_MSG),
    BAD("{\"topic\":\"t\"}", ACTION_MSG),
    BAD("{\"action\":1,\"topic\":\"t\"}", ACTION_MSG),
    BAD("{\"action\":null}", ACTION_MSG),
    BAD("{\"action\":[\"publish\"]}", ACTION_MSG),
    BAD("{\"action\":\"Publish\",\"topic\":\"t\"}", ACTION_MSG),
    BAD("{\"action\":\"pubsub\",\"topic\":\"t\"}", ACTION_MSG),
    BAD("{\"action\":\"publish \",\"topic\":\"t\"}", ACTION_MSG),
    BAD("{\"Action\":\"publish\",\"topic\":\"t\"}", ACTION_MSG),
    /* topic */
    BAD("{\"action\":\"publish\"}", "\"topic\" is required for publish and subscribe"),
    BAD("{\"action\":\"subscribe\",\"qos\":1}", "\"topic\" is required for publish and subscribe"),
    BAD("{\"action\":\"publish\",\"topic\":null}", "\"topic\" must be a string"),
    BAD("{\"action\":\"publish\",\"topic\":1}", "\"topic\" must be a string"),
    BAD("{\"action\":\"subscribe\",\"topic\":[\"a\"]}", "\"topic\" must be a string"),
    /* the other strings */
    BAD(PUB("\"username\":1"), "\"username\" must be a string"),
    BAD(PUB("\"username\":false"), "\"username\" must be a string"),
    BAD(PUB("\"clientid\":[]"), "\"clientid\" must be a string"),
    BAD(PUB("\"clientid\":{}"), "\"clientid\" must be a string"),
    BAD(PUB("\"peerhost\":5"), "\"peerhost\" must be a string"),
    BAD(PUB("\"peerhost\":\"1.2.3\""), "\"peerhost\" is not an IPv4 or IPv6 address"),
    BAD(PUB("\"peerhost\":\"\""), "\"peerhost\" is not an IPv4 or IPv6 address"),
    BAD(PUB("\"peerhost\":\"10.0.0.0/8\""), "\"peerhost\" is not an IPv4 or IPv6 address"),
    BAD(PUB("\"peerhost\":\"[::1]\""), "\"peerhost\" is not an IPv4 or IPv6 address"),
    BAD(PUB("\"peerhost\":\"1.2.3.4\\u0000\""), "\"peerhost\" is not an IPv4 or IPv6 address"),
    /* qos */
    BAD(PUB("\"qos\":3"), "\"qos\" must be 0, 1 or 2"),
    BAD(PUB("\"qos\":-1"), "\"qos\" must be 0, 1 or 2"),
    BAD(PUB("\"qos\":1.0"), "\"qos\" must be 0, 1 or 2"),
    BAD(PUB("\"qos\":\"1\""), "\"qos\" must be 0, 1 or 2"),
    BAD(PUB("\"qos\":true"), "\"qos\" must be 0, 1 or 2"),
    BAD(PUB("\"qos\":null"), "\"qos\" must be 0, 1 or 2"),
    BAD(PUB("\"qos\":4294967297"), "\"qos\" must be 0, 1 or 2"), /* 1 if cut to 32 bits */
    BAD(PUB("\"qos\":-9223372036854775808"), "\"qos\" must be 0, 1 or 2"),
    /* retain, superuser */
    BAD(PUB("\"retain\":0"), "\"retain\" must be true or false"),
    BAD(PUB("\"retain\":\"true\""), "\"retain\" must be true or false"),
    BAD(PUB("\"retain\":null"), "\"retain\" must be true or false"),
    BAD(PUB("\"superuser\":\"yes\""), "\"superuser\" must be true or false"),
    BAD(PUB("\"superuser\":1"), "\"superuser\" must be true or false"),
    /* groups */
    BAD(PUB("\"groups\":\"g\""), "\"groups\" must be an array of strings"),
    BAD(PUB("\"groups\":null"), "\"groups\" must be an array of strings"),
    BAD(PUB("\"groups\":{\"g\":1}"), "\"groups\" must be an array of strings"),
    BAD(PUB("\"groups\":[1]"), "\"groups\" must be an array of strings"),
    BAD(PUB("\"groups\":[\"a\",null]"), "\"groups\" must be an array of strings"),
    BAD(PUB("\"groups\":[[\"g\"]]"), "\"groups\" must be an array of strings"),
    /* password */
    BAD("{\"action\":\"connect\",\"username\":\"u\",\"password\":7}",
        "\"password\" must be a string"),
    BAD("{\"action\":\"connect\",\"username\":\"u\",\"password\":null}",
        "\"password\" must be a string"),
    BAD(PUB("\"username\":\"u\",\"password\":\"p\""), "\"password\" is only for connect"),
    BAD("{\"action\":\"subscribe\",\"topic\":\"t\",\"password\":\"p\"}",
        "\"password\" is only for connect"),
    BAD("{\"action\":\"connect\",\"password\":\"p\"}", "\"password\" needs a \"username\""),
    BAD("{\"action\":\"connect\",\"username\":null,\"password\":\"p\"}",
        "\"password\" needs a \"username\""),
    /* unknown fields */
    BAD(PUB("\"color\":\"red\""), "unknown field \"color\""),
    BAD(PUB("\"\":1"), "unknown field \"\""),
    BAD(PUB("\"Username\":\"u\""), "unknown field \"Username\""),
    BAD(PUB("\"passwd\":\"p\""), "unknown field \"passwd\""),
    BAD(PUB("\"\\u00e9\":1"), "unknown field \"\xc3\xa9\""),
    /* duplicate keys */
    SYN("{\"action\":\"publish\",\"topic\":\"t\",\"topic\":\"u\"}", 39,
        "duplicate object key near '\"topic\"'"),
    SYN("{\"action\":\"publish\",\"action\":\"connect\"}", 28,
        "duplicate object key near '\"action\"'"),
    SYN("{\"action\":\"subscribe\",\"topic\":\"#\",\"qos\":2,\"color\":\"red\",\"qos\":1}", 61,
        "duplicate object key near '\"qos\"'"),
    /* a duplicate the escapes hide is still one */
    SYN("{\"action\":\"connect\",\"\\u0061ction\":\"connect\"}", 33,
        "duplicate object key near '\"\\u0061ction\"'"),
    /* NUL: allowed inside values, not in keys nor raw in the text */
    SYN(PUB("\"a\\u0000\":1"), 41, "NUL byte in object key not supported"),
    SYN("{\"action\":\"connect\",\"username\":\"a\0b\"}", 33, "control character 0x0"),
    SYN("{\"action\":\"connect\"}\0", 21, "end of file expected near end of file"),
    SYN("\0{\"action\":\"connect\"}", 1, "'[' or '{' expected near end of file"),
    /* an action with a NUL inside is not that action */
    BAD("{\"action\":\"publish\\u0000x\",\"topic\":\"t\"}", ACTION_MSG),
    /* jansson's quote of the text near an error is dropped: it could be
     * part of a password */
    SYN("{\"action\":\"connect\",\"username\":\"u\",\"password\":\"s3cret\xff\"}", 53,
        "unable to decode byte 0xff"),
    /* invalid UTF-8 and escapes */
    SYN("{\"action\":\"publish\",\"topic\":\"a\xff\"}", 30, "unable to decode byte 0xff"),
    SYN("{\"action\":\"connect\",\"username\":\"\xc3\x28\"}", 32, "unable to decode byte 0xc3"),
    SYN("{\"action\":\"connect\",\"username\":\"\xed\xa0\x80\"}", 32,
        "unable to decode byte 0xed"), /* a surrogate, UTF-8 encoded */
    SYN("{\"action\":\"connect\",\"username\":\"\xc0\xaf\"}", 32,
        "unable to decode byte 0xc0"), /* overlong '/' */
    SYN("{\"action\":\"connect\",\"username\":\"\\ud800\"}", 39, "invalid Unicode '\\uD800'"),
    SYN("{\"action\":\"connect\",\"username\":\"\\x41\"}", 34, "invalid escape"),
    SYN("{\"action\":\"connect\",\"username\":\"\t\"}", 32, "control character 0x9"),
    /* huge numbers */
    SYN(PUB("\"qos\":99999999999999999999"), 58, "too big integer"),
    SYN(PUB("\"qos\":1e400"), 43, "real number overflow"),
    SYN(PUB("\"qos\":NaN"), 41, "invalid token"),
    SYN(PUB("\"qos\":01"), 39, "invalid token"),
    /* trailing garbage and broken structure */
    SYN("{\"action\":\"publish\",\"topic\":\"t\"} x", 34, "end of file expected"),
    SYN("{\"action\":\"connect\"}{\"action\":\"connect\"}", 21, "end of file expected"),
    SYN("{\"action\":\"connect\"},", 21, "end of file expected"),
    SYN("{\"action\":\"connect\",}", 21, "string or '}' expected"),
    SYN("{\"action\":\"connect\"", 19, "'}' expected near end of file"),
    SYN("{\"action\":\"conn", 15, "premature end of input"),
    SYN("{action:\"connect\"}", 7, "string or '}' expected"),
    SYN("{'action':'connect'}", 2, "string or '}' expected"),
    SYN("{\"action\" \"connect\"}", 19, "':' expected"),
    SYN("{\"action\":\"connect\"} // comment", 22, "end of file expected"),
    /* a byte order mark is not JSON's */
    SYN("\xef\xbb\xbf{\"action\":\"connect\"}", 1, "'[' or '{' expected"),
};

static void test_malformed(void **state)
{
    (void)state;
    size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]), failed = 0;
    assert_true(n >= 25);
    /* Every case is tried and every mismatch shown, not just the first. */
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &bad_cases[i];
        exh_batch_req *b = NULL;
        exh_error err;
        memset(&err, 0xA5, sizeof(err)); /* every field read must be written */
        exh_status st = exh_batch_parse(c->text, c->len, &b, &err);
        bool ok = st == c->status && err.status == c->status && !strcmp(err.message, c->message) &&
                  err.file[0] == '\0' && b == NULL &&
                  (st == EXH_ESYNTAX ? err.line == 1 && err.col == c->col
                                     : err.line == 0 && err.col == 0);
        if (!ok) {
            print_error("case %zu %.*s:\n  got  status %d/%d line %u col %u \"%s\"\n  want status "
                        "%d col %u \"%s\"\n",
                        i, (int)c->len, c->text, (int)st, (int)err.status, err.line, err.col,
                        err.message, (int)c->status, c->col, c->message);
            failed++;
        }
        exh_batch_req_free(b);
    }
    assert_int_equal(failed, 0);
}

/* Limits that need text built at run time. */
static void test_malformed_generated(void **state)
{
    (void)state;
    static char text[65536];
    exh_batch_req *b = NULL;
    exh_error err;
    size_t n;

    /* One group too many. */
    n = (size_t)snprintf(text, sizeof(text),
                         "{\"action\":\"publish\",\"topic\":\"t\",\"groups\":[");
    for (int i = 0; i <= EXH_BATCH_MAX_GROUPS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"g\"", i ? "," : "");
    n += (size_t)snprintf(text + n, sizeof(text) - n, "]}");
    assert_int_equal(exh_batch_parse(text, n, &b, &err), EXH_EINVAL);
    assert_string_equal(err.message, "too many groups (at most 256)");

    /* Too many even when one of them is not a string: the count is judged first. */
    memcpy(text + n - 5, "1]}", 3); /* the last "g"]} becomes 1]} */
    assert_int_equal(exh_batch_parse(text, n - 2, &b, &err), EXH_EINVAL);
    assert_string_equal(err.message, "too many groups (at most 256)");

    /* Deep nesting: jansson stops at 2048 levels rather than recurse on. */
    n = 0;
    for (int i = 0; i < 3000; i++)
        text[n++] = '[';
    for (int i = 0; i < 3000; i++)
        text[n++] = ']';
    assert_int_equal(exh_batch_parse(text, n, &b, &err), EXH_ESYNTAX);
    assert_string_equal(err.message, "maximum parsing depth reached");
    assert_int_equal(err.col, 2049);

    /* ...also inside a request's field. */
    n = (size_t)snprintf(text, sizeof(text), "{\"action\":\"publish\",\"topic\":\"t\",\"x\":");
    for (int i = 0; i < 2100; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"a\":");
    assert_int_equal(exh_batch_parse(text, n, &b, &err), EXH_ESYNTAX);
    assert_string_equal(err.message, "maximum parsing depth reached");
    assert_int_equal(err.col, 37 + 2047 * 5);

    /* Nesting that stays under the limit is merely an unknown field. */
    n = (size_t)snprintf(text, sizeof(text), "{\"action\":\"publish\",\"topic\":\"t\",\"x\":");
    for (int i = 0; i < 100; i++)
        text[n++] = '[';
    for (int i = 0; i < 100; i++)
        text[n++] = ']';
    text[n++] = '}';
    assert_int_equal(exh_batch_parse(text, n, &b, &err), EXH_EINVAL);
    assert_string_equal(err.message, "unknown field \"x\"");

    /* A long unknown key is quoted cut to 64 bytes. */
    n = (size_t)snprintf(text, sizeof(text), "{\"action\":\"publish\",\"topic\":\"t\",\"");
    memset(text + n, 'k', 5000);
    n += 5000;
    n += (size_t)snprintf(text + n, sizeof(text) - n, "\":1}");
    assert_int_equal(exh_batch_parse(text, n, &b, &err), EXH_EINVAL);
    assert_string_equal(err.message,
                        "unknown field \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                        "kkkkkkkkkkkkkkkk\"");

    /* A huge string is fine to the reader (the evaluator bounds topics). */
    n = (size_t)snprintf(text, sizeof(text), "{\"action\":\"publish\",\"topic\":\"");
    memset(text + n, 'a', 60000);
    n += 60000;
    n += (size_t)snprintf(text + n, sizeof(text) - n, "\"}");
    assert_int_equal(exh_batch_parse(text, n, &b, &err), EXH_OK);
    assert_int_equal(b->req.topic_len, 60000);
    exh_batch_req_free(b);
}

/* ---- through the evaluator --------------------------------------------- */

static void test_evaluate_parsed(void **state)
{
    (void)state;
    static const char policy[] = "default deny\n"
                                 "allow publish username \"u\" topic \"t/#\" qos 0-1\n"
                                 "allow subscribe group \"ops\" topic \"alerts/#\"\n"
                                 "allow connect anonymous peerhost 127.0.0.1\n";
    exh_policy *p = NULL;
    exh_error err;
    assert_int_equal(exh_policy_parse("b.policy", S(policy), &p, &err), EXH_OK);
    exh_evalctx *ctx = exh_evalctx_new();
    assert_non_null(ctx);
    static const struct {
        const char *line;
        exh_decision want;
        exh_basis basis;
    } cases[] = {
        {"{\"action\":\"publish\",\"username\":\"u\",\"topic\":\"t/x\"}", EXH_ALLOW, EXH_BY_RULE},
        {"{\"action\":\"publish\",\"username\":\"u\",\"topic\":\"t/x\",\"qos\":2}", EXH_DENY,
         EXH_BY_DEFAULT},
        {"{\"action\":\"subscribe\",\"topic\":\"alerts/+\",\"groups\":[\"ops\"]}", EXH_ALLOW,
         EXH_BY_RULE},
        {"{\"action\":\"subscribe\",\"topic\":\"alerts/+\",\"groups\":[\"ops\\u0000\"]}", EXH_DENY,
         EXH_BY_DEFAULT},
        {"{\"action\":\"subscribe\",\"topic\":\"#\",\"superuser\":true}", EXH_ALLOW,
         EXH_BY_SUPERUSER},
        {"{\"action\":\"publish\",\"username\":\"u\",\"topic\":\"t/\\u0000\"}", EXH_DENY,
         EXH_BY_INVALID},
        {"{\"action\":\"connect\",\"peerhost\":\"127.0.0.1\"}", EXH_ALLOW, EXH_BY_RULE},
        {"{\"action\":\"connect\"}", EXH_DENY, EXH_BY_ANONYMOUS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        exh_batch_req *b = NULL;
        assert_int_equal(exh_batch_parse(cases[i].line, strlen(cases[i].line), &b, &err), EXH_OK);
        exh_result res;
        exh_eval(p, &b->req, ctx, &res);
        if (res.decision != cases[i].want || res.basis != cases[i].basis)
            fail_msg("%s: got %s by %s", cases[i].line, exh_decision_str(res.decision),
                     exh_basis_str(res.basis));
        exh_batch_req_free(b);
    }
    exh_evalctx_free(ctx);
    exh_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_every_field),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_connect_with_password),
        cmocka_unit_test(test_connect_minimal_and_nulls),
        cmocka_unit_test(test_exact_bytes_kept),
        cmocka_unit_test(test_groups_edges),
        cmocka_unit_test(test_owns_strings),
        cmocka_unit_test(test_len_respected),
        cmocka_unit_test(test_free_and_null_error),
        cmocka_unit_test(test_first_bad_field_in_order),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_malformed_generated),
        cmocka_unit_test(test_evaluate_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
