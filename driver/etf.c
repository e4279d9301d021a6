/*
 * etf.c -- framing and terms for the port protocol (see etf.h).
 *
 * Every frame is hostile until decoded: lengths are checked before any
 * allocation, every ei call's result is checked, and a term that is not
 * exactly what a hook call looks like is reported, not trusted.
 */
#include "etf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

int etf_decode_atom(const char *buf, int *index, char *out)
{
    /* Atoms may be Latin-1 or UTF-8 (ATOM_UTF8_EXT): take them as UTF-8;
     * plain ei_decode_atom refuses anything Latin-1 cannot spell. */
    return ei_decode_atom_as(buf, index, out, MAXATOMLEN_UTF8, ERLANG_UTF8, NULL, NULL);
}

/* Input is read through a buffer: one read() serves every frame the
 * broker has pipelined, and etf_input_has_frame() tells the driver when
 * the next read would block (time to send the replies gathered so far). */
static char ibuf[1 << 16];
static size_t ipos, ilen;

int etf_input_has_frame(void)
{
    if (ilen - ipos < 4) return 0;
    const unsigned char *h = (const unsigned char *)ibuf + ipos;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return ilen - ipos - 4 >= n;
}

static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    size_t got = 0;
    while (got < n) {
        if (ipos == ilen) {
            ipos = ilen = 0;
            ssize_t r = read(fd, ibuf, sizeof(ibuf));
            if (r == 0) return got ? -1 : 0; /* EOF: clean only before the first byte */
            if (r < 0) {
                if (errno == EINTR) continue;
                return -1;
            }
            ilen = (size_t)r;
        }
        size_t k = ilen - ipos < n - got ? ilen - ipos : n - got;
        memcpy(c + got, ibuf + ipos, k);
        ipos += k;
        got += k;
    }
    return 1;
}

/* Where a frame that is not in ibuf whole is put together.  It keeps its
 * size for the next such frame, unless it grew past this: one huge call
 * must not pin megabytes for the rest of the run. */
static char *spill;
static size_t spill_cap;
#define SPILL_KEEP (1u << 20)

static char *spill_room(size_t n)
{
    if (n <= spill_cap) return spill;
    char *p = realloc(spill, n);
    if (!p) return NULL;
    spill = p;
    spill_cap = n;
    return p;
}

void etf_read_release(void)
{
    free(spill);
    spill = NULL;
    spill_cap = 0;
}

int etf_read_frame(int fd, const char **body, uint32_t *len)
{
    unsigned char h[4];
    *body = NULL;
    if (spill_cap > SPILL_KEEP) etf_read_release(); /* the last body is no longer the caller's */
    int rc = read_all(fd, h, 4);
    if (rc <= 0) return rc;
    *len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (*len > ETF_MAX_FRAME) {
        /* Keep the head (it holds the call's Id, for an error reply), drop
         * the rest. */
        char sink[65536];
        uint32_t keep = *len < 4096 ? *len : 4096;
        if (read_all(fd, sink, keep) != 1) return -1;
        char *b = spill_room(keep);
        if (b) memcpy(b, sink, keep);
        *body = b;
        for (uint32_t left = *len - keep; left;) {
            uint32_t n = left < sizeof(sink) ? left : (uint32_t)sizeof(sink);
            if (read_all(fd, sink, n) != 1) return -1;
            left -= n;
        }
        return -2;
    }
    if (ilen - ipos >= *len) { /* the usual case: the frame is buffered whole */
        *body = ibuf + ipos;
        ipos += *len;
        return 1;
    }
    char *b = spill_room(*len);
    if (!b) return -1;
    if (read_all(fd, b, *len) != 1) return -1;
    *body = b;
    return 1;
}

int etf_write_frame(int fd, const char *body, size_t len)
{
    unsigned char h[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8), (unsigned char)len};
    const char *parts[2] = {(const char *)h, body};
    size_t sizes[2] = {4, len};
    for (int k = 0; k < 2; k++)
        for (size_t done = 0; done < sizes[k];) {
            ssize_t w = write(fd, parts[k] + done, sizes[k] - done);
            if (w < 0) {
                if (errno == EINTR) continue;
                return -1;
            }
            done += (size_t)w;
        }
    return 0;
}

int etf_inflate(const char *body, size_t len, char **out, size_t *outlen, const char **why)
{
    *out = NULL;
    if (len < 2 || (unsigned char)body[0] != 131 || (unsigned char)body[1] != 80) return 0;
    if (len < 6) {
        *why = "truncated compressed term";
        return -1;
    }
    const unsigned char *u = (const unsigned char *)body;
    uLongf size = (uLongf)u[2] << 24 | (uLongf)u[3] << 16 | (uLongf)u[4] << 8 | u[5];
    if (size == 0 || size > ETF_MAX_FRAME) {
        *why = "compressed term too large";
        return -1;
    }
    char *b = malloc(size + 1);
    if (!b) {
        *why = "out of memory";
        return -1;
    }
    b[0] = (char)131;
    uLongf got = size;
    if (uncompress((Bytef *)b + 1, &got, (const Bytef *)body + 6, len - 6) != Z_OK || got != size) {
        free(b);
        *why = "bad compressed term (zlib)";
        return -1;
    }
    *out = b;
    *outlen = size + 1;
    return 0;
}

static int atom_is(const char *buf, int *idx, const char *want)
{
    char a[MAXATOMLEN_UTF8];
    int i = *idx;
    if (etf_decode_atom(buf, &i, a) < 0) return 0;
    *idx = i;
    return strcmp(a, want) == 0;
}

/*
 * Walk one term at buf[*idx], checking every header and length against
 * len, and advance *idx past it.  ei's decoders trust the lengths inside
 * a term (a binary claiming 2 GB makes ei_skip_term jump 2 GB past the
 * frame), so nothing reaches them unchecked.  Only the types a hook call
 * can hold are taken; depth and element counts are bounded by the bytes
 * that remain.
 */
static int is_atom_tag(unsigned char t)
{
    return t == ERL_ATOM_EXT || t == ERL_SMALL_ATOM_EXT || t == ERL_ATOM_UTF8_EXT ||
           t == ERL_SMALL_ATOM_UTF8_EXT;
}

static int term_end_(const unsigned char *b, size_t len, size_t *idx, int depth);

/* One checked term: its lengths by term_end_, then -- now that ei cannot
 * run past the buffer -- ei's own acceptance, so that nothing ei would
 * refuse to decode (an odd atom inside a reference, say) is let through. */
static int term_end(const unsigned char *b, size_t len, size_t *idx, int depth)
{
    size_t end = *idx;
    if (term_end_(b, len, &end, depth) < 0) return -1;
    int i = (int)*idx;
    if (ei_skip_term((const char *)b, &i) < 0 || (size_t)i != end) return -1;
    *idx = end;
    return 0;
}

/* Skip a length-prefixed item whose length field starts at b[i]. */
static int sized(const unsigned char *b, size_t len, size_t *idx, size_t i, int width, size_t extra)
{
    if ((size_t)width + extra > len - i) return -1;
    size_t n = 0;
    for (int k = 0; k < width; k++)
        n = n << 8 | b[i + (size_t)k];
    i += (size_t)width + extra;
    if (n > len - i) return -1;
    *idx = i + n;
    return 0;
}

static int term_end_(const unsigned char *b, size_t len, size_t *idx, int depth)
{
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if ((size_t)(n) > len - i) return -1;                                                      \
    } while (0)
#define U16(p) ((size_t)(p)[0] << 8 | (p)[1])
#define U32(p) ((size_t)(p)[0] << 24 | (size_t)(p)[1] << 16 | (size_t)(p)[2] << 8 | (p)[3])
    size_t i = *idx;
    if (depth > 100 || i >= len) return -1;
    unsigned char tag = b[i++];
    size_t n;
    switch (tag) {
    case ERL_SMALL_INTEGER_EXT:
        NEED(1);
        i += 1;
        break;
    case ERL_INTEGER_EXT:
        NEED(4);
        i += 4;
        break;
    case ERL_FLOAT_EXT:
        NEED(31);
        i += 31;
        break;
    case NEW_FLOAT_EXT:
        NEED(8);
        i += 8;
        break;
    /* A length field (1, 2 or 4 bytes), `extra` header bytes, then the data. */
    case ERL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_STRING_EXT:
        return sized(b, len, idx, i, 2, 0);
    case ERL_SMALL_ATOM_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT:
        return sized(b, len, idx, i, 1, 0);
    case ERL_BINARY_EXT:
        return sized(b, len, idx, i, 4, 0);
    case ERL_BIT_BINARY_EXT:
    case ERL_LARGE_BIG_EXT:
        return sized(b, len, idx, i, 4, 1);
    case ERL_SMALL_BIG_EXT:
        return sized(b, len, idx, i, 1, 1);
    case ERL_NIL_EXT:
        break;
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT:
    case ERL_LIST_EXT:
    case ERL_MAP_EXT: {
        size_t hdr = tag == ERL_SMALL_TUPLE_EXT ? 1 : 4;
        NEED(hdr);
        n = hdr == 1 ? b[i] : U32(b + i);
        i += hdr;
        if (tag == ERL_MAP_EXT) n *= 2;
        if (tag == ERL_LIST_EXT) n += 1; /* the tail */
        if (n > len - i) return -1;      /* every element takes a byte at least */
        for (size_t k = 0; k < n; k++)
            if (term_end_(b, len, &i, depth + 1) < 0) return -1;
        break;
    }
    case ERL_NEW_PID_EXT:
    case ERL_PID_EXT:
    case ERL_NEW_PORT_EXT:
    case ERL_PORT_EXT:
    case ERL_V4_PORT_EXT:
        /* a node atom (as ei insists), then fixed fields */
        if (i >= len || !is_atom_tag(b[i]) || term_end_(b, len, &i, depth + 1) < 0) return -1;
        n = tag == ERL_NEW_PID_EXT    ? 12
            : tag == ERL_PID_EXT      ? 9
            : tag == ERL_NEW_PORT_EXT ? 8
            : tag == ERL_PORT_EXT     ? 5
                                      : 12;
        NEED(n);
        i += n;
        break;
    case ERL_NEWER_REFERENCE_EXT:
    case ERL_NEW_REFERENCE_EXT:
        NEED(2);
        n = U16(b + i);
        i += 2;
        if (n > 5) return -1; /* ei's limit on reference words */
        if (i >= len || !is_atom_tag(b[i]) || term_end_(b, len, &i, depth + 1) < 0) return -1;
        NEED((tag == ERL_NEWER_REFERENCE_EXT ? 4 : 1) + 4 * n);
        i += (tag == ERL_NEWER_REFERENCE_EXT ? 4 : 1) + 4 * n;
        break;
    default:
        return -1; /* funs, exports, ... : never in a hook call */
    }
    *idx = i;
    return 0;
#undef NEED
#undef U16
#undef U32
}

int etf_decode_id(const char *buf, size_t len, etf_call *c)
{
    /* Only bytes term_end has checked are handed to ei: the head of an
     * oversized frame, or a malformed one, can end anywhere. */
    const unsigned char *b = (const unsigned char *)buf;
    memset(c, 0, sizeof(*c));
    c->buf = buf;
    c->id_start = -1;
    if (len > INT32_MAX || len < 3 || b[0] != 131 || b[1] != ERL_SMALL_TUPLE_EXT || b[2] != 5)
        return -1;
    size_t tag = 3, id = 3;
    if (term_end(b, len, &id, 0) < 0) return -1;
    int idx = (int)tag;
    char a[MAXATOMLEN_UTF8];
    if (etf_decode_atom(buf, &idx, a) < 0 || strcmp(a, "C") || (size_t)idx != id) return -1;
    size_t end = id;
    if (term_end(b, len, &end, 0) < 0) return -1;
    c->id_start = (int)id;
    c->id_end = (int)end;
    /* The Function too, when the head holds Module and Function whole: a
     * login or ACL check that cannot be read is refused, not "no opinion"
     * (etf.h). */
    size_t m = end, f;
    if (term_end(b, len, &m, 0) == 0 && (f = m, term_end(b, len, &f, 0) == 0)) {
        idx = (int)m;
        if (etf_decode_atom(buf, &idx, c->fn) < 0) c->fn[0] = '\0';
    }
    return 0;
}

int etf_decode_call(const char *buf, size_t len, etf_call *c, const char **why)
{
    int idx = 0, arity, version;
    memset(c, 0, sizeof(*c));
    c->buf = buf;
    c->len = len;
    c->id_start = -1;
    if (len < 1 || len > INT32_MAX || ei_decode_version(buf, &idx, &version) < 0) {
        *why = "not an external term (no version byte 131)";
        return -1;
    }
    size_t end = (size_t)idx;
    if (term_end((const unsigned char *)buf, len, &end, 0) < 0 || end != len) {
        /* still answer if the head holds a readable Id */
        etf_decode_id(buf, len, c);
        c->buf = buf;
        c->len = len;
        *why = end != len && end > (size_t)idx ? "trailing bytes after the call"
                                               : "malformed or truncated term";
        return -1;
    }
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || (arity != 5 && arity != 2)) {
        *why = "not a call: expected a tuple {'C', Id, Module, Function, Args}";
        return -1;
    }
    int tag = idx;
    if (arity == 2) {
        if (atom_is(buf, &tag, "M")) return 1; /* a message for us: erlport ignores them too */
        *why = "not a call: a 2-tuple that is not {'M', _}";
        return -1;
    }
    if (!atom_is(buf, &tag, "C")) {
        *why = "not a call: the first element is not 'C'";
        return -1;
    }
    idx = tag;
    c->id_start = idx;
    if (ei_skip_term(buf, &idx) < 0 || (size_t)idx > len) {
        c->id_start = -1;
        *why = "truncated call (Id)";
        return -1;
    }
    c->id_end = idx;
    char module[MAXATOMLEN_UTF8];
    if (etf_decode_atom(buf, &idx, module) < 0) {
        *why = "the call's Module is not an atom";
        return -1;
    }
    if (etf_decode_atom(buf, &idx, c->fn) < 0) {
        *why = "the call's Function is not an atom";
        return -1;
    }
    c->args = idx;
    int type, size;
    if (ei_get_type(buf, &idx, &type, &size) < 0) {
        *why = "truncated call (Args)";
        return -1;
    }
    if (type == ERL_NIL_EXT) {
        c->nargs = 0;
    } else if (type == ERL_LIST_EXT) {
        c->nargs = size;
    } else if (type == ERL_STRING_EXT) {
        c->nargs = size; /* a list of small integers: no hook takes that */
    } else {
        *why = "the call's Args is not a list";
        return -1;
    }
    return 0; /* the whole term was checked against len above */
}

int etf_decode_text(const char *buf, int *index, const char **out, size_t *len)
{
    int type, size, i = *index;
    *out = NULL;
    *len = 0;
    if (ei_get_type(buf, &i, &type, &size) < 0 || size < 0) return -1;
    if (type == ERL_BINARY_EXT || type == ERL_STRING_EXT) {
        /* Both end with their `size` bytes of data, stored as the text
         * itself (a STRING_EXT element is one byte; a charlist with a
         * larger element is a LIST_EXT, refused below as before).  ei
         * steps over the term; the bytes are read where they lie. */
        if (ei_skip_term(buf, &i) < 0) return -1;
        *out = buf + i - size;
        *len = (size_t)size;
    } else if (type == ERL_NIL_EXT) {
        if (ei_skip_term(buf, &i) < 0) return -1;
        *out = ""; /* the empty charlist: present, and empty */
    } else if (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
               type == ERL_SMALL_ATOM_UTF8_EXT) {
        char a[MAXATOMLEN_UTF8];
        if (etf_decode_atom(buf, &i, a) < 0 || strcmp(a, "undefined") != 0)
            return -1; /* only `undefined` stands for "absent" */
    } else {
        return -1;
    }
    *index = i;
    return 0;
}

static int decode_bool(const char *buf, int *idx, bool *out)
{
    char a[MAXATOMLEN_UTF8];
    if (etf_decode_atom(buf, idx, a) < 0) return -1;
    if (!strcmp(a, "true"))
        *out = true;
    else if (!strcmp(a, "false"))
        *out = false;
    else
        return -1;
    return 0;
}

int etf_decode_clientinfo(const char *buf, int *index, etf_clientinfo *ci, const char **why)
{
    memset(ci, 0, sizeof(*ci));
    unsigned seen = 0;
    int n, i = *index;
    if (ei_decode_list_header(buf, &i, &n) < 0) {
        *why = "ClientInfo is not a proplist";
        return -1;
    }
    for (int k = 0; k < n; k++) {
        int arity;
        char key[MAXATOMLEN_UTF8];
        if (ei_decode_tuple_header(buf, &i, &arity) < 0 || arity != 2 ||
            etf_decode_atom(buf, &i, key) < 0) {
            *why = "ClientInfo entry is not a {key, value} pair";
            goto bad;
        }
        int rc = 0;
        /* A key given twice is not something a broker sends: refuse it
         * (which of the two would count?), also when the first said
         * `undefined`. */
        static const char *const keys[] = {"node",      "clientid",    "username", "password",
                                           "peerhost",  "sockport",    "protocol", "mountpoint",
                                           "anonymous", "is_superuser"};
        for (unsigned b = 0; b < sizeof(keys) / sizeof(keys[0]); b++)
            if (!strcmp(key, keys[b])) {
                if (seen & (1u << b)) {
                    *why = "ClientInfo has a key twice";
                    goto bad;
                }
                seen |= 1u << b;
            }
        if (!strcmp(key, "clientid"))
            rc = etf_decode_text(buf, &i, &ci->clientid, &ci->clientid_len);
        else if (!strcmp(key, "username")) {
            rc = etf_decode_text(buf, &i, &ci->username, &ci->username_len);
            ci->has_username = rc == 0 && ci->username && ci->username_len > 0;
        } else if (!strcmp(key, "password")) {
            rc = etf_decode_text(buf, &i, &ci->password, &ci->password_len);
            ci->has_password = rc == 0 && ci->password;
        } else if (!strcmp(key, "peerhost"))
            rc = etf_decode_text(buf, &i, &ci->peerhost, &ci->peerhost_len);
        else if (!strcmp(key, "anonymous"))
            rc = decode_bool(buf, &i, &ci->anonymous);
        else if (!strcmp(key, "node"))
            rc = etf_decode_atom(buf, &i, ci->node) < 0 ? -1 : 0;
        else
            rc = ei_skip_term(buf, &i); /* sockport, protocol, mountpoint, ... */
        if (rc < 0) {
            *why = "ClientInfo has a value of the wrong type";
            goto bad;
        }
    }
    if (n > 0 && ei_decode_list_header(buf, &i, &n) < 0) { /* the tail [] */
        *why = "ClientInfo is an improper list";
        goto bad;
    }
    *index = i;
    return 0;
bad:
    memset(ci, 0, sizeof(*ci));
    return -1;
}

int etf_find_clientid(const char *buf, int index, const char **cid, size_t *len)
{
    int n, i = index;
    *cid = NULL;
    *len = 0;
    if (ei_decode_list_header(buf, &i, &n) < 0) return -1;
    for (int k = 0; k < n; k++) {
        int arity, at = i;
        char key[MAXATOMLEN_UTF8];
        if (ei_decode_tuple_header(buf, &at, &arity) == 0 && arity == 2 &&
            etf_decode_atom(buf, &at, key) == 0 && !strcmp(key, "clientid")) {
            const char *v;
            size_t l;
            if (etf_decode_text(buf, &at, &v, &l) == 0 && v) {
                *cid = v; /* given twice: the last, any of them will do */
                *len = l;
            }
        }
        if (ei_skip_term(buf, &i) < 0) break;
    }
    return *cid ? 0 : -1;
}

static int head(ei_x_buff *x, const etf_call *c, const char *tag)
{
    if (ei_x_new_with_version(x) < 0) return -1;
    if (ei_x_encode_tuple_header(x, 3) < 0 || ei_x_encode_atom(x, tag) < 0 ||
        ei_x_append_buf(x, c->buf + c->id_start, c->id_end - c->id_start) < 0) {
        ei_x_free(x);
        return -1;
    }
    return 0;
}

int etf_reply_ok(ei_x_buff *x, const etf_call *c)
{
    if (head(x, c, "r") < 0) return -1;
    return ei_x_encode_atom(x, "ok");
}

int etf_reply_bool(ei_x_buff *x, const etf_call *c, bool value)
{
    if (head(x, c, "r") < 0) return -1;
    if (ei_x_encode_tuple_header(x, 2) < 0 || ei_x_encode_long(x, 0) < 0 ||
        ei_x_encode_atom(x, value ? "true" : "false") < 0)
        return -1;
    return 0;
}

int etf_reply_error(ei_x_buff *x, const etf_call *c, const char *message)
{
    /* {'e', Id, {Lang, Class, Message, Trace}}, as erlport reports errors */
    if (head(x, c, "e") < 0) return -1;
    if (ei_x_encode_tuple_header(x, 4) < 0 || ei_x_encode_atom(x, "c") < 0 ||
        ei_x_encode_atom(x, "error") < 0 ||
        ei_x_encode_binary(x, message, (int)strlen(message)) < 0 || ei_x_encode_empty_list(x) < 0)
        return -1;
    return 0;
}

/* One pass of etf_encode_answer: with out NULL, ei only counts. */
static int encode_answer(char *out, int *idx, const etf_call *c, int value)
{
    int id_len = c->id_end - c->id_start;
    if (ei_encode_version(out, idx) < 0 || ei_encode_tuple_header(out, idx, 3) < 0 ||
        ei_encode_atom(out, idx, "r") < 0)
        return -1;
    if (out) memcpy(out + *idx, c->buf + c->id_start, (size_t)id_len);
    *idx += id_len;
    if (value < 0) return ei_encode_atom(out, idx, "ok");
    if (ei_encode_tuple_header(out, idx, 2) < 0 || ei_encode_long(out, idx, 0) < 0 ||
        ei_encode_atom(out, idx, value ? "true" : "false") < 0)
        return -1;
    return 0;
}

int etf_encode_answer(char *out, size_t cap, const etf_call *c, int value)
{
    /* Sized first, so that nothing is written past cap. */
    int n = 0;
    if (c->id_start < 0 || c->id_end < c->id_start || encode_answer(NULL, &n, c, value) < 0 ||
        (size_t)n > cap)
        return -1;
    int idx = 0;
    if (encode_answer(out, &idx, c, value) < 0 || idx != n) return -1;
    return n;
}

static const char *const hooks[][2] = {
    {"client_authenticate", "on_client_authenticate"},
    {"client_check_acl", "on_client_check_acl"},
    {"client_connected", "on_client_connected"},
    {"client_disconnected", "on_client_disconnected"},
};

int etf_reply_init(ei_x_buff *x, const etf_call *c)
{
    /* {0, {HookSpec, State}}: names as charlists, as the broker expects */
    if (head(x, c, "r") < 0) return -1;
    int n = (int)(sizeof(hooks) / sizeof(hooks[0]));
    if (ei_x_encode_tuple_header(x, 2) < 0 || ei_x_encode_long(x, 0) < 0 ||
        ei_x_encode_tuple_header(x, 2) < 0 || ei_x_encode_list_header(x, n) < 0)
        return -1;
    for (int k = 0; k < n; k++)
        if (ei_x_encode_tuple_header(x, 4) < 0 || ei_x_encode_string(x, hooks[k][0]) < 0 ||
            ei_x_encode_string(x, "exhook") < 0 || ei_x_encode_string(x, hooks[k][1]) < 0 ||
            ei_x_encode_empty_list(x) < 0)
            return -1;
    if (ei_x_encode_empty_list(x) < 0 || ei_x_encode_atom(x, "exhook") < 0) return -1;
    return 0;
}
