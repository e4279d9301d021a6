/*
 * echo_port -- a do-nothing Erlang port program speaking the EMQX 4.x
 * extension-hook (erlport) wire protocol: the physical limit of the port
 * protocol, for bench/driver_bench.escript to compare exhook-driver against.
 *
 * Reads {packet,4} frames on fd 0, decodes each as {'C', Id, Module,
 * Function, Args} with ei and answers {'r', Id, ok} on fd 1 (with -t:
 * {'r', Id, {0, true}}, the size of a real check_acl answer).  The Id term
 * is copied byte for byte, so any Id the caller uses comes back unchanged.
 * Anything else (not a 5-tuple call, compressed frames, {'M', _}) is
 * skipped without an answer.  Input is read in large chunks and the
 * answers to everything read in one chunk go out in one write, which is
 * what any port program that wants throughput has to do.
 *
 * Build: cc -O2 -o echo_port bench/echo_port.c \
 *            -I/usr/lib/erlang/usr/include -L/usr/lib/erlang/usr/lib -lei -lpthread
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ei.h>

#define MAX_FRAME (64u << 20)

static char *out;
static size_t out_len, out_cap;

static void out_reserve(size_t more)
{
    if (out_len + more <= out_cap) return;
    size_t cap = out_cap ? out_cap : 1u << 16;
    while (cap < out_len + more)
        cap *= 2;
    char *p = realloc(out, cap);
    if (!p) {
        perror("echo_port: realloc");
        exit(1);
    }
    out = p;
    out_cap = cap;
}

static int flush_out(void)
{
    size_t off = 0;
    while (off < out_len) {
        ssize_t n = write(1, out + off, out_len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        off += (size_t)n;
    }
    out_len = 0;
    return 0;
}

static int reply_true;

/* One frame: append the answer (if any) to the output buffer. */
static void handle(const char *buf, int len)
{
    int idx = 0, version, arity;
    char atom[MAXATOMLEN_UTF8];
    if (ei_decode_version(buf, &idx, &version) < 0) return;
    if (ei_decode_tuple_header(buf, &idx, &arity) < 0 || arity != 5) return;
    if (ei_decode_atom(buf, &idx, atom) < 0 || strcmp(atom, "C") != 0) return;
    int id_start = idx;
    if (ei_skip_term(buf, &idx) < 0 || idx > len) return;
    int id_len = idx - id_start;

    /* 4-byte length, then 131, {'r', Id, Result}. */
    out_reserve((size_t)id_len + 64);
    char *frame = out + out_len;
    int o = 4;
    ei_encode_version(frame, &o);
    ei_encode_tuple_header(frame, &o, 3);
    ei_encode_atom(frame, &o, "r");
    memcpy(frame + o, buf + id_start, (size_t)id_len);
    o += id_len;
    if (reply_true) {
        ei_encode_tuple_header(frame, &o, 2);
        ei_encode_long(frame, &o, 0);
        ei_encode_boolean(frame, &o, 1);
    } else {
        ei_encode_atom(frame, &o, "ok");
    }
    uint32_t n = (uint32_t)(o - 4);
    frame[0] = (char)(n >> 24);
    frame[1] = (char)(n >> 16);
    frame[2] = (char)(n >> 8);
    frame[3] = (char)n;
    out_len += (size_t)o;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t"))
            reply_true = 1;
        else {
            fprintf(stderr, "usage: echo_port [-t]\n");
            return 2;
        }
    }
    ei_init();
    size_t cap = 1u << 16, have = 0;
    char *in = malloc(cap);
    if (!in) return 1;
    for (;;) {
        ssize_t n = read(0, in + have, cap - have);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("echo_port: read");
            return 1;
        }
        if (n == 0) break;
        have += (size_t)n;
        size_t pos = 0;
        while (have - pos >= 4) {
            const unsigned char *h = (const unsigned char *)in + pos;
            uint32_t flen =
                (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
            if (flen > MAX_FRAME) {
                fprintf(stderr, "echo_port: frame of %u bytes, giving up\n", flen);
                return 1;
            }
            if (have - pos - 4 < flen) {
                if (flen + 4 > cap) { /* grow so the whole frame fits */
                    memmove(in, in + pos, have - pos);
                    have -= pos;
                    pos = 0;
                    while (cap < flen + 4)
                        cap *= 2;
                    char *p = realloc(in, cap);
                    if (!p) return 1;
                    in = p;
                }
                break;
            }
            handle(in + pos + 4, (int)flen);
            pos += 4 + flen;
        }
        memmove(in, in + pos, have - pos);
        have -= pos;
        if (out_len && flush_out() < 0) {
            perror("echo_port: write");
            return 1;
        }
    }
    free(in);
    free(out);
    return 0;
}
