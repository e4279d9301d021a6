/*
 * fuzz_etf.c -- libFuzzer target for the driver's frame handling
 * (driver/etf.c, compiled into this target).
 *
 * The input is one frame body, as etf_read_frame hands it to the driver's
 * handle_frame: inflated if compressed, decoded as a call, and for the
 * hooks the driver answers itself (on_client_check_acl,
 * on_client_authenticate, on_client_connected, on_client_disconnected)
 * its Args decoded the way driver/driver.c does.  Then every reply kind is
 * built for the call, and each must be one whole external term that
 * echoes the call's Id; the stack-built answers (etf_encode_answer) must
 * be byte for byte the ei_x_buff ones.  Decoded strings point into the
 * frame: each must lie inside it.  etf_decode_id, which the driver runs on the head
 * of an oversized frame, gets the same bytes.
 *
 * Build and run: tests/fuzz/run.sh SECONDS
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_etf: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);    \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* Touch every byte of a decoded string (ASan checks it is whole), which
 * must lie in the frame c (or be the empty charlist's ""). */
static volatile unsigned sink;
static void touch(const etf_call *c, const char *s, size_t len)
{
    if (!s) {
        CHECK(len == 0);
        return;
    }
    if (len) CHECK(s >= c->buf && len <= c->len && (size_t)(s - c->buf) <= c->len - len);
    for (size_t i = 0; i < len; i++)
        sink += (unsigned char)s[i];
}

static void touch_ci(const etf_call *c, const etf_clientinfo *ci)
{
    touch(c, ci->clientid, ci->clientid_len);
    touch(c, ci->username, ci->username_len);
    touch(c, ci->password, ci->password_len);
    touch(c, ci->peerhost, ci->peerhost_len);
    CHECK(memchr(ci->node, '\0', sizeof(ci->node)) != NULL);
    if (ci->has_username) CHECK(ci->username && ci->username_len > 0);
    if (ci->has_password) CHECK(ci->password != NULL);
}

/* A reply must be exactly one term: {Tag, Id, Result} with Id verbatim. */
static void check_reply(ei_x_buff *x, int built, const etf_call *c)
{
    if (built >= 0) {
        int idx = 0, version, arity;
        CHECK(x->buff != NULL && x->index > 0);
        CHECK(ei_decode_version(x->buff, &idx, &version) == 0);
        int start = idx;
        CHECK(ei_skip_term(x->buff, &idx) == 0 && idx == x->index);
        idx = start;
        CHECK(ei_decode_tuple_header(x->buff, &idx, &arity) == 0 && arity == 3);
        CHECK(ei_skip_term(x->buff, &idx) == 0); /* the tag */
        int id_len = c->id_end - c->id_start;
        CHECK(id_len > 0 && idx + id_len <= x->index);
        CHECK(memcmp(x->buff + idx, c->buf + c->id_start, (size_t)id_len) == 0);
    }
    ei_x_free(x); /* as the driver's send_term: also after a failed build */
}

/* etf_encode_answer must build what etf_reply_ok/bool build, or say it
 * does not fit. */
static void check_answer(const etf_call *c, int value)
{
    char small[256], big[8192];
    ei_x_buff x;
    int built = value < 0 ? etf_reply_ok(&x, c) : etf_reply_bool(&x, c, value > 0);
    CHECK(built >= 0);
    int n = etf_encode_answer(small, sizeof(small), c, value);
    CHECK(n < 0 ? x.index > (int)sizeof(small) : n == x.index && !memcmp(small, x.buff, (size_t)n));
    n = etf_encode_answer(big, sizeof(big), c, value);
    CHECK(n < 0 ? x.index > (int)sizeof(big) : n == x.index && !memcmp(big, x.buff, (size_t)n));
    ei_x_free(&x);
}

static void all_replies(const etf_call *c, const char *why)
{
    check_answer(c, -1);
    check_answer(c, 0);
    check_answer(c, 1);
    ei_x_buff x;
    check_reply(&x, etf_reply_ok(&x, c), c);
    check_reply(&x, etf_reply_bool(&x, c, true), c);
    check_reply(&x, etf_reply_bool(&x, c, false), c);
    check_reply(&x, etf_reply_error(&x, c, why ? why : "fuzz"), c);
    check_reply(&x, etf_reply_error(&x, c, ""), c);
    check_reply(&x, etf_reply_init(&x, c), c);
}

/* driver.c's check_acl, up to the decision. */
static void check_acl(const etf_call *c)
{
    int idx = c->args, n;
    etf_clientinfo ci;
    const char *why = "bad check_acl";
    char action[MAXATOMLEN_UTF8];
    const char *topic = NULL;
    size_t tlen = 0;
    if (c->nargs != 5 || ei_decode_list_header(c->buf, &idx, &n) < 0 ||
        etf_decode_clientinfo(c->buf, &idx, &ci, &why) < 0) {
        CHECK(why != NULL);
        return;
    }
    touch_ci(c, &ci);
    if (etf_decode_atom(c->buf, &idx, action) == 0 &&
        (!strcmp(action, "publish") || !strcmp(action, "subscribe")) &&
        etf_decode_text(c->buf, &idx, &topic, &tlen) == 0 && topic) {
        touch(c, topic, tlen);
        CHECK((size_t)idx <= c->len);
    }
}

/* on_client_authenticate: the ClientInfo (the worker decodes no more). */
static void authenticate(const etf_call *c)
{
    int idx = c->args, n;
    etf_clientinfo ci;
    const char *why = NULL;
    if (ei_decode_list_header(c->buf, &idx, &n) < 0) return;
    if (c->nargs == 3 && etf_decode_clientinfo(c->buf, &idx, &ci, &why) == 0) {
        CHECK((size_t)idx <= c->len);
        touch_ci(c, &ci);
        return;
    }
    CHECK(c->nargs != 3 || why != NULL);
    /* A login refused as unreadable: the driver looks for its client id. */
    const char *cid;
    size_t cidlen;
    idx = c->args;
    if (ei_decode_list_header(c->buf, &idx, &n) == 0 &&
        etf_find_clientid(c->buf, idx, &cid, &cidlen) == 0)
        touch(c, cid, cidlen);
}

/* driver.c's session_event. */
static void session_event(const etf_call *c, int connected)
{
    int idx = c->args, n;
    etf_clientinfo ci;
    const char *why = NULL;
    if (c->nargs != (connected ? 2 : 3)) return;
    if (ei_decode_list_header(c->buf, &idx, &n) < 0) return;
    if (etf_decode_clientinfo(c->buf, &idx, &ci, &why) < 0) {
        CHECK(why != NULL);
        return;
    }
    touch_ci(c, &ci);
    if (!connected) {
        const char *reason = NULL;
        size_t l = 0;
        if (etf_decode_text(c->buf, &idx, &reason, &l) == 0) {
            touch(c, reason, l);
            CHECK((size_t)idx <= c->len);
        } else {
            CHECK(reason == NULL);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ETF_MAX_FRAME) return 0;
    /* The frame in a buffer of its own size, so ASan sees any read past
     * it (etf_read_frame's lies in a larger one). */
    char *frame = malloc(size ? size : 1);
    CHECK(frame != NULL);
    if (size) memcpy(frame, data, size);
    size_t len = size;

    /* The head of an oversized frame: the driver passes its first 4 KiB;
     * here the buffer is the input itself, bounded by its real size. */
    etf_call idc;
    if (etf_decode_id(frame, len, &idc) == 0) {
        CHECK(idc.id_start > 0 && idc.id_end > idc.id_start && (size_t)idc.id_end <= len);
        all_replies(&idc, "frame too large");
    }

    char *inflated = NULL;
    size_t ilen = 0;
    const char *why = NULL;
    if (etf_inflate(frame, len, &inflated, &ilen, &why) < 0) {
        CHECK(why != NULL && inflated == NULL);
        free(frame);
        return 0;
    }
    if (inflated) {
        CHECK(ilen >= 2 && (unsigned char)inflated[0] == 131);
        free(frame);
        frame = inflated;
        len = ilen;
    }

    etf_call c;
    why = NULL;
    int rc = etf_decode_call(frame, len, &c, &why);
    if (rc == 1) { /* {'M', _} */
        free(frame);
        return 0;
    }
    if (rc < 0) {
        CHECK(why != NULL);
        if (c.id_start >= 0) {
            CHECK(c.id_end > c.id_start && (size_t)c.id_end <= len);
            all_replies(&c, why);
        }
        free(frame);
        return 0;
    }
    CHECK(rc == 0 && c.buf == frame && c.len == len);
    CHECK(c.id_start > 0 && c.id_end > c.id_start && (size_t)c.id_end <= len);
    CHECK(c.args > c.id_end && (size_t)c.args < len && c.nargs >= 0);
    CHECK(memchr(c.fn, '\0', sizeof(c.fn)) != NULL);

    if (!strcmp(c.fn, "on_client_check_acl"))
        check_acl(&c);
    else if (!strcmp(c.fn, "on_client_authenticate"))
        authenticate(&c);
    else if (!strcmp(c.fn, "on_client_connected"))
        session_event(&c, 1);
    else if (!strcmp(c.fn, "on_client_disconnected"))
        session_event(&c, 0);
    all_replies(&c, NULL);
    free(frame);
    return 0;
}
