/*
 * audit.c -- the decision audit log (audit.h).
 *
 * The queue is two buffers of audit_queue_kib each: decisions append to
 * one under the lock while the writer formats and writes out the other;
 * at each step the writer swaps them (the lock is never held for a copy).
 * Records are [u32 length][i64 time in us][u8 kind][body].
 * A login's body is its JSON members (everything after "time", "front"
 * and "node", which the writer adds): logins are rare and have hashed a
 * password.  An ACL decision's body is what it decided, in binary (struct
 * acl_head and its strings), copied into the queue as it is: the writer
 * formats it.  A device that keeps publishing where it may not costs its
 * deciding thread a few copies per try, not a JSON record.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "service_int.h"
#include "utf8.h"

enum { HDR = 13, OUTBUF = 1 << 16, SAY_EVERY_US = 10 * 1000000, WAKE_MS = 100 };
enum { KIND_JSON = 'J', KIND_ACL = 'A' }; /* a record's body */

struct svc_audit {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *ring;       /* the buffer decisions append to */
    size_t cap, used; /* records are appended; the writer takes the buffer whole */
    bool closed;
    /* dropped since the writer last looked, by event */
    unsigned long drop_acl, drop_login;
    int64_t drop_first_us, drop_last_us;
    atomic_int reopen;
    atomic_llong warned_us; /* when a decision last said the queue was full */
    pthread_t thread;
    bool running;
    svc_metrics *m;
    uint64_t threshold; /* audit_sample as a fraction of 2^64 */
    bool sample_all;
    double sample;
    char path[4096];
    char front[16];
    char node[256];
    char node_json[256 * 6 + 3]; /* node as a JSON string, made once */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void make_node_json(svc_audit *a);

int svc_audit_new(const svc *s, const char *front, svc_audit **out)
{
    *out = NULL;
    const svc_config *cfg = &s->cfg;
    if (!cfg->audit_log[0]) return 0;
    svc_audit *a = calloc(1, sizeof(*a));
    if (!a || !(a->ring = malloc(cfg->audit_queue))) {
        free(a);
        svc_log(LOG_ERROR, "audit log: out of memory");
        return -1;
    }
    a->cap = cfg->audit_queue;
    /* Both buffers are touched now (here and in svc_audit_start): a deny
     * must not take the page faults of a queue filling further than it
     * ever did, on the broker's thread.  They are resident from the start:
     * 2 x audit_queue_kib. */
    memset(a->ring, 0, a->cap);
    pthread_mutex_init(&a->lock, NULL);
    /* The writer's timed waits on the monotonic clock: a wall clock set
     * back must not put it to sleep. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    a->m = (svc_metrics *)&s->metrics;
    a->sample = cfg->audit_sample;
    a->sample_all = cfg->audit_sample >= 1.0;
    /* (1.0 itself would not fit: sample_all) */
    a->threshold =
        a->sample_all ? UINT64_MAX : (uint64_t)(cfg->audit_sample * 18446744073709551616.0);
    snprintf(a->path, sizeof(a->path), "%s", cfg->audit_log);
    snprintf(a->front, sizeof(a->front), "%s", front);
    if (cfg->node[0])
        snprintf(a->node, sizeof(a->node), "%s", cfg->node);
    else if (gethostname(a->node, sizeof(a->node) - 1) != 0)
        snprintf(a->node, sizeof(a->node), "unknown");
    make_node_json(a);
    *out = a;
    return 0;
}

void svc_audit_reopen(svc_audit *a)
{
    if (a) atomic_store(&a->reopen, 1);
}

/* ---- the decision's side ---- */

/* A growing buffer (the connection's, reused). */
typedef struct jb {
    char *p;
    size_t len, cap;
    bool failed, lossy;
} jb;

static void jb_grow(jb *b, size_t more);

static inline void jb_need(jb *b, size_t more)
{
    if (b->failed || b->len + more <= b->cap) return;
    jb_grow(b, more);
}

static void jb_grow(jb *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static inline void jb_raw(jb *b, const char *s, size_t n)
{
    jb_need(b, n);
    if (b->failed) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void jb_lit(jb *b, const char *s)
{
    jb_raw(b, s, strlen(s));
}

/* The length of the UTF-8 sequence lead byte c starts; 0: c starts none. */
static size_t seq_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
}

/* Bytes a JSON string cannot hold as they are: '"', '\\', the C0
 * controls and DEL (escaped \u00XX, so no terminal acts on them). */
static const unsigned char needs_escape[256] = {
    [0 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
    [0x7f] = 1,
};

/* Does a word hold a byte needs_escape names?  (Exact for "any byte":
 * the classic "has a byte less than n" and "has a zero byte" tests; bytes
 * from 0x80 up, valid UTF-8 here, never count.) */
static inline uint64_t escapes8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\'), d = w ^ (ones * 0x7f);
    return ((w - ones * 0x20) & ~w & high) | ((q - ones) & ~q & high) | ((b - ones) & ~b & high) |
           ((d - ones) & ~d & high);
}

/* Nothing in s to escape: a word at a time (the last word may overlap),
 * so a record's names and topic cost a copy each. */
static bool plain(const char *s, size_t n)
{
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            if (needs_escape[(unsigned char)s[i]]) return false;
        return true;
    }
    uint64_t w, any = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        any |= escapes8(w);
    }
    memcpy(&w, s + n - 8, 8);
    return !(any | escapes8(w));
}

/* A JSON string.  Broker strings are bytes: control characters and NUL
 * are escaped; a byte that is not well-formed UTF-8 becomes U+FFFD and
 * the record says "lossy" (replay cannot re-decide what it cannot read
 * back).  A string with nothing to escape, nearly every one, is one
 * copy; otherwise runs of plain bytes are copied whole. */
static void jb_str(jb *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jb_need(b, n * 6 + 2);
    if (b->failed) return;
    char *o = b->p + b->len;
    *o++ = '"';
    size_t i = 0;
    size_t good = exh_utf8_bad(s, n); /* one scan of the whole; after a bad byte, per sequence */
    if (good == n && plain(s, n)) {   /* nearly every string */
        memcpy(o, s, n);
        o += n;
        i = n;
    }
    while (i < n) {
        while (i < good) {
            size_t run = i;
            while (run < good && !needs_escape[(unsigned char)s[run]])
                run++;
            memcpy(o, s + i, run - i);
            o += run - i;
            i = run;
            if (i == good) break;
            unsigned char ch = (unsigned char)s[i++];
            if (ch == '"' || ch == '\\') {
                *o++ = '\\';
                *o++ = (char)ch;
            } else {
                memcpy(o, "\\u00", 4);
                o[4] = hex[ch >> 4];
                o[5] = hex[ch & 15];
                o += 6;
            }
        }
        if (i < n) {
            memcpy(o, "\\ufffd", 6);
            o += 6;
            b->lossy = true;
            i++;
            /* The next sequences one by one: scanning the rest again after
             * every bad byte would cost n^2 on a name of bad bytes. */
            good = i;
            for (;;) {
                size_t k = seq_len((unsigned char)(good < n ? s[good] : 0));
                if (good >= n || !k || n - good < k || exh_utf8_bad(s + good, k) != k) break;
                good += k;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/* The node as a JSON string, once (every record carries it). */
static void make_node_json(svc_audit *a)
{
    /* (a buffer large enough for any node name: never grown) */
    jb nj = {.p = a->node_json, .cap = sizeof(a->node_json)};
    jb_str(&nj, a->node, strlen(a->node));
    a->node_json[nj.failed ? 0 : nj.len] = '\0';
    if (nj.failed) snprintf(a->node_json, sizeof(a->node_json), "\"unknown\"");
}

/* Decimal digits without printf's machinery. */
static void jb_uint(jb *b, unsigned long v)
{
    char t[24], *e = t + sizeof(t), *p = e;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jb_raw(b, p, (size_t)(e - p));
}

/* ,"key": -- key a string literal, its length known at compile time */
#define jb_key(b, key) jb_raw((b), ",\"" key "\":", sizeof(key) + 3)

#define jb_kstr(b, key, s, n) (jb_key(b, key), jb_str((b), (s), (n)))

#define jb_kint(b, key, v) (jb_key(b, key), jb_uint((b), (v)))

static void jb_peer(jb *b, const exh_addr *peer)
{
    if (!peer->family) return;
    char t[64];
    exh_addr_format(peer, t, sizeof(t));
    jb_kstr(b, "peer", t, strlen(t));
}

static const char *const answer_names[3] = {"deny", "allow", "ignore"}; /* svc_answer order */

/* A piece of a record's body. */
typedef struct part {
    const void *p;
    size_t n;
} part;

/* Queue one record of kind, its body the parts in turn; false when it was
 * dropped (counted).  failed: its body could not be made (counted as
 * dropped). */
static bool push(svc_audit *a, bool login, int64_t t_us, char kind, const part *parts, int nparts,
                 bool failed)
{
    size_t len = 0;
    for (int i = 0; i < nparts; i++)
        len += parts[i].n;
    pthread_mutex_lock(&a->lock);
    if (failed || len > UINT32_MAX || a->used + HDR + len > a->cap || a->closed) {
        if (login)
            a->drop_login++;
        else
            a->drop_acl++;
        if (!a->drop_first_us) a->drop_first_us = t_us;
        a->drop_last_us = t_us;
        pthread_mutex_unlock(&a->lock);
        atomic_fetch_add_explicit(login ? &a->m->audit_dropped_login : &a->m->audit_dropped_acl, 1,
                                  memory_order_relaxed);
        /* Said now, by the decision that found it full (at most every
         * 10 s): the writer may be stuck on the file and cannot say it;
         * it gives the counts when it catches up. */
        long long last = atomic_load(&a->warned_us);
        if (t_us - last >= SAY_EVERY_US &&
            atomic_compare_exchange_strong(&a->warned_us, &last, t_us))
            svc_log(LOG_WARN,
                    "audit log %s: queue full (the file is not taking writes fast enough): "
                    "records are being dropped",
                    a->path);
        return false;
    }
    char hdr[HDR];
    uint32_t l = (uint32_t)len;
    memcpy(hdr, &l, 4);
    memcpy(hdr + 4, &t_us, 8);
    hdr[12] = kind;
    char *o = a->ring + a->used;
    memcpy(o, hdr, HDR);
    o += HDR;
    for (int i = 0; i < nparts; i++) {
        if (!parts[i].n) continue; /* (no reason, no groups: most records) */
        memcpy(o, parts[i].p, parts[i].n);
        o += parts[i].n;
    }
    /* The writer is woken only when the queue is half full: it looks every
     * WAKE_MS anyway, and a wake per record (a futex call, the writer's
     * own syscalls between decisions) would cost a deny more than the
     * record does. */
    bool wake = a->used < a->cap / 2 && a->used + HDR + len >= a->cap / 2;
    a->used += HDR + len;
    pthread_mutex_unlock(&a->lock);
    if (wake) pthread_cond_signal(&a->cond);
    return true;
}

/* The connection's buffer, or a fresh one (c NULL: a deadline's refusal). */
static jb take_buffer(svc_conn *c)
{
    jb b = {0};
    if (c) {
        b.p = c->audit_buf;
        b.cap = c->audit_cap;
    }
    return b;
}

static void give_buffer(svc_conn *c, jb *b)
{
    if (c) {
        c->audit_buf = b->p;
        c->audit_cap = b->cap;
    } else {
        free(b->p);
    }
}

/* A login's JSON members, queued. */
static void finish(svc_audit *a, svc_conn *c, jb *b, bool login, int64_t t)
{
    if (b->lossy) jb_lit(b, ",\"lossy\":true");
    part body = {b->failed ? NULL : b->p + 1, b->failed ? 0 : b->len - 1}; /* no leading comma */
    push(a, login, t, KIND_JSON, &body, 1, b->failed);
    give_buffer(c, b);
}

bool svc_audit_samples(const svc_audit *a)
{
    return a && a->threshold;
}

bool svc_audit_draw(svc_conn *c)
{
    svc_audit *a = c->s->audit;
    if (!a) return false;
    if (a->sample_all) return true;
    if (!a->threshold) return false;
    /* xorshift64*: a cheap, good enough coin per connection */
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return x * 0x2545F4914F6CDD1DULL < a->threshold;
}

/* An ACL decision in the queue: this, then its strings in this order --
 * client id, username, topic, rule (a file, or a word), reason, groups
 * (each [u32 length][bytes]) -- formatted by the writer (acl_json). */
typedef struct acl_head {
    uint32_t gen, line; /* line: the rule's (0: rule is a word) */
    uint32_t cidlen, ulen, tlen, rlen, reasonlen, glen, ngroups;
    exh_addr peer;
    uint8_t answer, action, flags;
    int8_t qos, retain;
    uint8_t pad[2]; /* (no padding the compiler leaves unset) */
} acl_head;
_Static_assert(sizeof(acl_head) == 9 * 4 + sizeof(exh_addr) + 5 + 2, "acl_head has no padding");
enum { F_DELIVERY = 1, F_SUPERUSER = 2, F_SAMPLED = 4, F_USER = 8 };

static bool too_long(size_t n)
{
    return n > UINT32_MAX / 4;
}

void svc_audit_acl_record(svc_conn *c, const exh_request *r, const svc_audit_acl *d)
{
    svc_audit *a = c->s->audit;
    int64_t t = now_us();
    const char *rule = d->rule ? d->rule : "", *reason = "";
    uint32_t line = 0;
    if (d->res) {
        const exh_rule_info *ri = d->res->basis == EXH_BY_RULE && d->policy
                                      ? exh_policy_rule(d->policy, d->res->rule)
                                      : NULL;
        if (ri) {
            rule = ri->file;
            line = ri->line;
        } else {
            rule = exh_basis_str(d->res->basis);
        }
        if (d->res->basis == EXH_BY_INVALID && d->res->reason) reason = d->res->reason;
    }
    const char *cid = r->clientid ? r->clientid : "", *topic = r->topic ? r->topic : "";
    size_t cidlen = r->clientid ? r->clientid_len : 0, tlen = r->topic ? r->topic_len : 0;
    size_t ulen = r->username ? r->username_len : 0, rlen = strlen(rule);
    size_t reasonlen = strlen(reason);
    bool failed = too_long(cidlen) || too_long(ulen) || too_long(tlen) || too_long(rlen);
    /* The groups as [u32 length][bytes] each, in the connection's buffer. */
    jb g = take_buffer(c);
    for (size_t i = 0; i < r->ngroups && !failed; i++) {
        uint32_t gl = (uint32_t)r->groups[i].len;
        failed = too_long(r->groups[i].len);
        jb_raw(&g, (const char *)&gl, 4);
        jb_raw(&g, r->groups[i].ptr, gl);
    }
    failed = failed || g.failed;
    acl_head h = {.gen = d->gen,
                  .line = line,
                  .cidlen = (uint32_t)cidlen,
                  .ulen = (uint32_t)ulen,
                  .tlen = (uint32_t)tlen,
                  .rlen = (uint32_t)rlen,
                  .reasonlen = (uint32_t)reasonlen,
                  .glen = (uint32_t)g.len,
                  .ngroups = (uint32_t)r->ngroups,
                  .peer = r->peerhost,
                  .answer = (uint8_t)d->answer,
                  .action = (uint8_t)r->action,
                  .flags =
                      (uint8_t)((r->delivery ? F_DELIVERY : 0) | (r->superuser ? F_SUPERUSER : 0) |
                                (d->sampled ? F_SAMPLED : 0) | (r->username ? F_USER : 0)),
                  .qos = (int8_t)(r->qos >= 0 && r->qos <= 2 ? r->qos : -1),
                  .retain = (int8_t)(r->retain == 0 || r->retain == 1 ? r->retain : -1)};
    memset(h.pad, 0, sizeof(h.pad));
    part parts[] = {{&h, sizeof(h)}, {cid, cidlen}, {r->username ? r->username : "", ulen},
                    {topic, tlen},   {rule, rlen},  {reason, reasonlen},
                    {g.p, g.len}};
    push(a, false, t, KIND_ACL, parts, failed ? 0 : 7, failed);
    g.len = 0;
    give_buffer(c, &g);
}

/* The writer's side: an ACL record's JSON members into b (which starts
 * with a comma); false when body is not one (never, but it is read back
 * from memory another thread wrote: checked). */
static bool acl_json(const svc_audit *a, jb *b, const char *body, size_t n)
{
    acl_head h;
    if (n < sizeof(h)) return false;
    memcpy(&h, body, sizeof(h));
    size_t want = sizeof(h) + (size_t)h.cidlen + h.ulen + h.tlen + h.rlen + h.reasonlen + h.glen;
    if (want != n || h.answer > 2) return false;
    const char *p = body + sizeof(h);
    const char *cid = p, *user = cid + h.cidlen, *topic = user + h.ulen, *rule = topic + h.tlen;
    const char *reason = rule + h.rlen, *groups = reason + h.reasonlen;
    jb_lit(b, ",\"event\":\"acl\"");
    jb_kstr(b, "clientid", cid, h.cidlen);
    if (h.flags & F_USER) jb_kstr(b, "username", user, h.ulen);
    jb_peer(b, &h.peer);
    if (h.ngroups) {
        jb_key(b, "groups");
        jb_raw(b, "[", 1);
        const char *g = groups, *end = groups + h.glen;
        for (uint32_t i = 0; i < h.ngroups; i++) {
            uint32_t gl;
            if ((size_t)(end - g) < 4) return false;
            memcpy(&gl, g, 4);
            if ((size_t)(end - g) - 4 < gl) return false;
            if (i) jb_raw(b, ",", 1);
            jb_str(b, g + 4, gl);
            g += 4 + (size_t)gl;
        }
        jb_raw(b, "]", 1);
    }
    if (h.flags & F_SUPERUSER) jb_lit(b, ",\"superuser\":true");
    jb_lit(b, h.action == EXH_PUBLISH ? ",\"action\":\"publish\"" : ",\"action\":\"subscribe\"");
    if (h.flags & F_DELIVERY) jb_lit(b, ",\"delivery\":true");
    jb_kstr(b, "topic", topic, h.tlen);
    if (h.qos >= 0 && !(h.flags & F_DELIVERY)) jb_kint(b, "qos", (unsigned long)h.qos);
    if (h.retain >= 0) jb_lit(b, h.retain ? ",\"retain\":true" : ",\"retain\":false");
    jb_key(b, "decision");
    jb_str(b, answer_names[h.answer], strlen(answer_names[h.answer]));
    jb_kstr(b, "rule", rule, h.rlen);
    if (h.line && !b->failed) {
        b->len--; /* the closing quote: the line goes inside */
        jb_raw(b, ":", 1);
        jb_uint(b, h.line);
        jb_raw(b, "\"", 1);
    }
    if (h.reasonlen) jb_kstr(b, "reason", reason, h.reasonlen);
    jb_kint(b, "gen", h.gen);
    if ((h.flags & F_SAMPLED) && !a->sample_all) {
        char t2[48];
        int k = snprintf(t2, sizeof(t2), ",\"sample\":%.6g", a->sample);
        jb_raw(b, t2, (size_t)k);
    }
    if (b->lossy) jb_lit(b, ",\"lossy\":true");
    return true;
}

void svc_audit_login(svc *s, svc_conn *c, const exh_auth_request *rq, const svc_grant *g,
                     int answer, const char *why)
{
    svc_audit *a = s->audit;
    if (!a) return;
    int64_t t = now_us();
    jb b = take_buffer(c);
    jb_lit(&b, ",\"event\":\"login\"");
    jb_kstr(&b, "clientid", rq->clientid ? rq->clientid : "", rq->clientid ? rq->clientid_len : 0);
    if (rq->username) jb_kstr(&b, "username", rq->username, rq->username_len);
    jb_peer(&b, &rq->peerhost);
    if (g && g->ngroups) {
        jb_key(&b, "groups");
        jb_raw(&b, "[", 1);
        for (size_t i = 0; i < g->ngroups; i++) {
            if (i) jb_raw(&b, ",", 1);
            jb_str(&b, g->groups[i], strlen(g->groups[i]));
        }
        jb_raw(&b, "]", 1);
    }
    if (g && g->superuser) jb_lit(&b, ",\"superuser\":true");
    jb_lit(&b, ",\"action\":\"connect\"");
    jb_key(&b, "decision");
    jb_str(&b, answer_names[answer], strlen(answer_names[answer]));
    const char *rule = g && g->rule[0] ? g->rule : "credentials";
    jb_kstr(&b, "rule", rule, strlen(rule));
    jb_kstr(&b, "reason", why, strlen(why));
    if (g && g->gen) jb_kint(&b, "gen", g->gen);
    finish(a, c, &b, true, t);
}

/* ---- the writer ---- */

typedef struct writer {
    svc_audit *a;
    int fd;
    int sfd; /* SIGUSR1's signalfd, or -1 */
    dev_t dev;
    ino_t ino;
    bool failing; /* the file refuses writes: said once */
    char *in;     /* the other buffer: records taken from the queue */
    char *big;    /* a record longer than out, while it is written */
    jb fmt;       /* an ACL record's JSON, made here */
    char out[OUTBUF];
    size_t outlen;
    unsigned long lost; /* records a failed write took with it */
    int64_t said_us;    /* when drops were last said */
    unsigned long said_acl, said_login;
    time_t sec;
    char stamp[32]; /* "YYYY-MM-DDTHH:MM:SS" of sec */
} writer;

/* The writer runs with cancellation off (svc_audit_free cancels a writer
 * stuck on the file after 2 s): only its blocking file calls may be
 * cancelled, never a log line half written under the log's lock. */
static ssize_t cwrite(int fd, const void *buf, size_t n)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    ssize_t r = write(fd, buf, n);
    pthread_setcancelstate(old, NULL);
    return r;
}

static int copen(const char *path)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    pthread_setcancelstate(old, NULL);
    return fd;
}

static void open_file(writer *w)
{
    if (w->fd >= 0) close(w->fd);
    /* 0600: the log names users, clients and addresses. */
    w->fd = copen(w->a->path);
    struct stat st;
    if (w->fd < 0 || fstat(w->fd, &st) != 0) {
        if (!w->failing)
            svc_log(LOG_ERROR, "audit log %s: cannot open: %s (records are dropped until it can)",
                    w->a->path, strerror(errno));
        w->failing = true;
        return;
    }
    w->dev = st.st_dev;
    w->ino = st.st_ino;
}

/* The path names another file now (moved away by logrotate). */
static bool moved(const writer *w)
{
    struct stat st;
    if (w->fd < 0) return true;
    return stat(w->a->path, &st) != 0 || st.st_dev != w->dev || st.st_ino != w->ino;
}

/* buf[0, n), holding `records` whole lines, to the file -- or all counted
 * lost: a partial line would corrupt the next. */
static void write_records(writer *w, const char *buf, size_t n, unsigned long records)
{
    size_t off = 0;
    while (off < n && w->fd >= 0) {
        ssize_t k = cwrite(w->fd, buf + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        off += (size_t)k;
    }
    if (off == n) {
        atomic_fetch_add(&w->a->m->audit_written, records);
        if (w->failing) svc_log(LOG_INFO, "audit log %s: written again", w->a->path);
        w->failing = false;
        return;
    }
    atomic_fetch_add(&w->a->m->audit_lost, records);
    if (!w->failing)
        svc_log(LOG_ERROR, "audit log %s: write failed: %s (records are dropped until it works)",
                w->a->path, w->fd < 0 ? "not open" : strerror(errno));
    w->failing = true;
}

static void flush_out(writer *w, unsigned long records)
{
    write_records(w, w->out, w->outlen, records);
    w->outlen = 0;
}

static void stamp(writer *w, int64_t us, char *dst)
{
    time_t sec = (time_t)(us / 1000000);
    if (sec != w->sec || !w->stamp[0]) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(w->stamp, sizeof(w->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        w->sec = sec;
    }
    sprintf(dst, "%s.%06ldZ", w->stamp, (long)(us % 1000000));
}

/* One line at o: the writer's members, then the record's, need bytes. */
static void assemble(char *o, size_t need, const char *head, size_t hl, const char *node, size_t nl,
                     const char *members, size_t n)
{
    memcpy(o, head, hl);
    memcpy(o + hl, node, nl);
    o[hl + nl] = ',';
    memcpy(o + hl + nl + 1, members, n);
    memcpy(o + need - 2, "}\n", 2);
}

static void emit(writer *w, unsigned long *pending, int64_t us, const char *members, size_t n)
{
    char t[48];
    stamp(w, us, t);
    char head[600];
    int hl =
        snprintf(head, sizeof(head), "{\"time\":\"%s\",\"front\":\"%s\",\"node\":", t, w->a->front);
    size_t nl = strlen(w->a->node_json);
    size_t need = (size_t)hl + nl + 1 + n + 2;
    if (w->outlen + need > OUTBUF) {
        flush_out(w, *pending);
        *pending = 0;
    }
    if (need > OUTBUF) { /* one long record: written on its own */
        if (!(w->big = malloc(need))) {
            atomic_fetch_add(&w->a->m->audit_lost, 1);
            return;
        }
        assemble(w->big, need, head, (size_t)hl, w->a->node_json, nl, members, n);
        write_records(w, w->big, need, 1);
        free(w->big);
        w->big = NULL;
        return;
    }
    assemble(w->out + w->outlen, need, head, (size_t)hl, w->a->node_json, nl, members, n);
    w->outlen += need;
    (*pending)++;
}

/* Drops since the last look: said in the service's log (at most every
 * 10 s) and in the audit log itself. */
static void say_drops(writer *w, unsigned long acl, unsigned long login, int64_t first,
                      int64_t last, unsigned long *pending)
{
    if (!acl && !login) return;
    char t1[48], t2[48], members[256];
    stamp(w, first, t1);
    stamp(w, last, t2);
    int n =
        snprintf(members, sizeof(members),
                 "\"event\":\"dropped\",\"acl\":%lu,\"login\":%lu,\"from\":\"%s\",\"to\":\"%s\"",
                 acl, login, t1, t2);
    emit(w, pending, now_us(), members, (size_t)n);
    if (*pending) (*pending)--; /* a note, not a decision's record */
    w->said_acl += acl;
    w->said_login += login;
    int64_t now = now_us();
    if (now - w->said_us >= SAY_EVERY_US) {
        svc_log(LOG_WARN,
                "audit log %s: queue full (the file is not keeping up): %lu ACL and %lu login "
                "records dropped",
                w->a->path, w->said_acl, w->said_login);
        w->said_us = now;
        w->said_acl = w->said_login = 0;
    }
}

static void cleanup(void *arg)
{
    writer *w = arg;
    if (w->fd >= 0) close(w->fd);
    if (w->sfd >= 0) close(w->sfd);
    free(w->big);
    free(w->fmt.p);
    free(w->in);
    free(w);
}

static int signal_fd(const svc_audit *a)
{
    /* SIGUSR1 is blocked in every thread (svc_run_start) when the front
     * end owns its signals; read here.  Not in the broker's process (the
     * plugin): there every signal is blocked in our threads, and reading
     * one would take Mosquitto's own SIGUSR1 from it. */
    if (!strcmp(a->front, "mosquitto")) return -1;
    sigset_t set, cur;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    if (!sigismember(&cur, SIGUSR1)) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    svc_audit *a = w->a;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    int sfd = w->sfd = signal_fd(a);
    pthread_cleanup_push(cleanup, w);
    open_file(w);
    int64_t checked = now_us();
    pthread_mutex_lock(&a->lock);
    for (;;) {
        /* Every WAKE_MS, or sooner when the queue is half full or the log
         * is closing. */
        if (!a->closed && a->used < a->cap / 2) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += WAKE_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&a->cond, &a->lock, &until);
        }
        /* The buffers change places: the lock is held for a swap, never
         * for a copy of what the decisions wrote. */
        size_t n = a->used;
        char *full = a->ring;
        a->ring = w->in;
        w->in = full;
        a->used = 0;
        unsigned long dacl = a->drop_acl, dlogin = a->drop_login;
        int64_t d1 = a->drop_first_us, d2 = a->drop_last_us;
        a->drop_acl = a->drop_login = 0;
        a->drop_first_us = a->drop_last_us = 0;
        bool closing = a->closed;
        pthread_mutex_unlock(&a->lock);

        struct signalfd_siginfo si;
        if (sfd >= 0)
            while (read(sfd, &si, sizeof(si)) == sizeof(si))
                atomic_store(&a->reopen, 1);
        int64_t now = now_us();
        if (atomic_exchange(&a->reopen, 0)) {
            open_file(w);
            checked = now;
        } else if (now - checked >= 1000000) {
            if (moved(w)) open_file(w);
            checked = now;
        }
        unsigned long pending = 0;
        for (size_t off = 0; off + HDR <= n;) {
            uint32_t l;
            int64_t us;
            memcpy(&l, w->in + off, 4);
            memcpy(&us, w->in + off + 4, 8);
            const char *body = w->in + off + HDR;
            if (w->in[off + 12] == KIND_JSON) {
                emit(w, &pending, us, body, l);
            } else {
                w->fmt.len = 0;
                w->fmt.failed = w->fmt.lossy = false;
                if (acl_json(a, &w->fmt, body, l) && !w->fmt.failed)
                    emit(w, &pending, us, w->fmt.p + 1, w->fmt.len - 1); /* no leading comma */
                else
                    atomic_fetch_add(&a->m->audit_lost, 1);
            }
            off += HDR + l;
        }
        say_drops(w, dacl, dlogin, d1, d2, &pending);
        if (w->outlen) flush_out(w, pending);
        if (closing && !n) break;
        pthread_mutex_lock(&a->lock);
    }
    /* (the signalfd is closed by cleanup) */
    pthread_cleanup_pop(1);
    return NULL;
}

int svc_audit_start(svc *s)
{
    svc_audit *a = s->audit;
    if (!a) return 0;
    writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->in = malloc(a->cap))) {
        free(w);
        svc_log(LOG_ERROR, "audit log: out of memory");
        return -1;
    }
    memset(w->in, 0, a->cap); /* (see svc_audit_new) */
    w->a = a;
    w->fd = w->sfd = -1;
    int e = pthread_create(&a->thread, NULL, writer_main, w);
    if (e) {
        free(w->in);
        free(w);
        svc_log(LOG_ERROR, "audit log: cannot start its thread: %s", strerror(e));
        return -1;
    }
    a->running = true;
    return 0;
}

void svc_audit_free(svc *s)
{
    svc_audit *a = s->audit;
    if (!a) return;
    if (a->running) {
        pthread_mutex_lock(&a->lock);
        a->closed = true;
        pthread_mutex_unlock(&a->lock);
        pthread_cond_signal(&a->cond);
        /* A file that takes no writes (a full pipe, a hung NFS mount) must
         * not hold a stopping front end forever. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 2;
        if (pthread_timedjoin_np(a->thread, NULL, &until) != 0) {
            svc_log(LOG_WARN, "audit log %s: the file takes no writes; stopping without them",
                    a->path);
            pthread_cancel(a->thread);
            pthread_join(a->thread, NULL);
        }
    }
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a->ring);
    free(a);
    s->audit = NULL;
}
