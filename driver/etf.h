/*
 * etf.h -- the port side of the erlport wire protocol (DESIGN §5): 4-byte
 * big-endian framing and the external term format, decoded and encoded
 * with erl_interface's ei.
 */
#ifndef EXH_ETF_H
#define EXH_ETF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ei.h>

/* Frames larger than this are read and thrown away: no hook call is near
 * it, and a bigger one is garbage or an attack. */
#define ETF_MAX_FRAME (16u << 20)

/* Read one frame.  Returns 1 and its body (*len bytes), 0 at a clean end
 * of input, -1 on a truncated frame or read error (errno), -2 when a frame
 * was over ETF_MAX_FRAME (skipped; *len is its size and *body, if not
 * NULL, its first 4 KiB, for etf_decode_id).  The body is borrowed, not
 * allocated: it lies in the input buffer (or, for a frame that is not
 * there whole, in a buffer kept for the purpose) and is valid until the
 * next call; a caller that keeps it longer copies it. */
int etf_read_frame(int fd, const char **body, uint32_t *len);

/* Frees what etf_read_frame keeps between calls (at exit). */
void etf_read_release(void);

/* Is a whole frame already buffered (so reading it will not block)? */
int etf_input_has_frame(void);

/* Decode an atom of any encoding as UTF-8 into out (MAXATOMLEN_UTF8). */
int etf_decode_atom(const char *buf, int *index, char *out);

/* Write a whole frame (length + body); -1 on error. */
int etf_write_frame(int fd, const char *body, size_t len);

/* If body is a compressed term (131 80 ...), inflate it into a new
 * buffer that starts with the version byte.  Returns 0 and sets *out
 * (NULL when not compressed), -1 with *why on a bad compressed term. */
int etf_inflate(const char *body, size_t len, char **out, size_t *outlen, const char **why);

/* A decoded {'C', Id, Module, Function, Args} call.  Pointers are into
 * the frame buffer. */
typedef struct etf_call {
    const char *buf; /* the term, starting with the version byte */
    size_t len;
    int id_start, id_end; /* the Id's bytes, echoed verbatim in replies */
    char fn[MAXATOMLEN_UTF8];
    int args; /* index of the Args list */
    int nargs;
} etf_call;

/* Find just the Id of a call in the head of a frame (to answer a frame
 * that is too big, or malformed), and its Function when the head holds it
 * whole (fn is "" otherwise); 0 when the Id was found. */
int etf_decode_id(const char *buf, size_t len, etf_call *c);

/* Decode a call; returns 0, 1 for {'M', _} (to be ignored), -1 with *why
 * (and id_start/id_end set when an Id was read, else id_start = -1; fn
 * set when the Function was read, else ""). */
int etf_decode_call(const char *buf, size_t len, etf_call *c, const char **why);

/* What the hooks' ClientInfo proplist holds.  Strings point into the
 * decoded term (nothing is allocated, so nothing is freed): they are not
 * NUL-terminated and may contain NULs -- use the lengths -- and live as
 * long as the term's buffer.  NULL: absent or `undefined`. */
typedef struct etf_clientinfo {
    const char *clientid, *username, *password, *peerhost;
    size_t clientid_len, username_len, password_len, peerhost_len;
    bool has_username, has_password;
    /* Decoded (a malformed value refuses the call like any bad field) but
     * never used: the policy's `anonymous` is "no username given"
     * (DESIGN §2), read from the username itself.  The broker's flag is its
     * own view (its zone's allow_anonymous at connect), and trusting it
     * could treat a client that named a user as anonymous, or the reverse. */
    bool anonymous;
    char node[MAXATOMLEN_UTF8];
} etf_clientinfo;

/* Decode a ClientInfo proplist at *index (advanced past it); -1 with *why.
 * buf must have passed etf_decode_call (its lengths are checked there). */
int etf_decode_clientinfo(const char *buf, int *index, etf_clientinfo *ci, const char **why);

/* A client id in a ClientInfo that etf_decode_clientinfo refused (a key
 * twice, a value of the wrong type): a readable one, in place.  0, or -1
 * when there is none. */
int etf_find_clientid(const char *buf, int index, const char **cid, size_t *len);

/* Decode a binary, charlist (STRING_EXT, or [] for "") or the atom
 * `undefined` (*out = NULL) in place: *out points into buf, not
 * NUL-terminated.  A charlist's bytes are stored as they are (each
 * element is one byte), so no form needs converting.  EMQX 4.x sends
 * binaries (emqx-extension-hook's src/emqx_extension_hook_handler.erl:
 * clientinfo/1 passes clientid and the topic as the broker has them,
 * username, password and mountpoint through maybe/1, <<"">> for
 * undefined, peerhost through inet_parse:ntoa then list_to_binary); the
 * other forms are accepted as the same text, never as something else. */
int etf_decode_text(const char *buf, int *index, const char **out, size_t *len);

/* Replies.  Each builds a whole term in x (initialised by the call). */
int etf_reply_ok(ei_x_buff *x, const etf_call *c);               /* {'r', Id, ok} */
int etf_reply_bool(ei_x_buff *x, const etf_call *c, bool value); /* {'r', Id, {0, Bool}} */
int etf_reply_error(ei_x_buff *x, const etf_call *c, const char *message);
int etf_reply_init(ei_x_buff *x, const etf_call *c); /* the hook spec */

/* {'r', Id, ok} (value < 0) or {'r', Id, {0, Bool}} into out, without
 * allocating: the term's length, or -1 when it does not fit in cap (an Id
 * far longer than a broker's; etf_reply_ok/bool then). */
int etf_encode_answer(char *out, size_t cap, const etf_call *c, int value);

#endif
