/*
 * bench_eval.c -- how long does one authorization decision take, and does
 * that cost stay flat as the policy grows?
 *
 * DESIGN §6 asks for p50 <= 300 ns with 100k rules, at most 2x the cost
 * with 10 rules (an index, not a scan), and compiling 100k rules in under
 * a second.  This program measures exactly those figures on generated but
 * realistic policies.  It is a benchmark, not a test: it prints numbers and
 * never fails because of them; it exits non-zero only when it could not
 * measure something meaningful (compile error, all-deny mix, API misuse).
 *
 * Each size is measured on two request streams with the same mix:
 *   cold  every decision is for a client drawn from the whole population,
 *         so on a large policy nearly every rule it touches is out of the
 *         CPU caches: this is bounded by memory latency, which the program
 *         also measures (a dependent pointer chase over 256 MiB);
 *   hot   the same kinds of requests from a set of --active clients (256)
 *         cycled over and over, as in a burst from the busy part of a fleet:
 *         the engine's own cost with the policy data in cache.
 *
 *   bench_eval [--sizes 10,1000,10000,100000] [--decisions 200000] [--active 256]
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exhook/addr.h"
#include "exhook/error.h"
#include "exhook/eval.h"
#include "exhook/policy.h"

#define MAX_SIZES 16
#define NFIXED    5 /* fixed rules at the top of every generated policy */
#define SEED      0x9E3779B97F4A7C15ull

/* ---------------------------------------------------------------------------
 * Small helpers
 */

static void die(const char *what)
{
    fprintf(stderr, "bench_eval: %s\n", what);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime(CLOCK_MONOTONIC) failed");
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A growable byte buffer: the policy text, and the arena that holds every
 * request's strings. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_reserve(sbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) die("out of memory");
    b->p = np;
    b->cap = cap;
}

/* Append formatted text; returns the offset it starts at.  The buffer
 * always keeps room for a terminating NUL, so callers may add one.
 * Arguments must not point into b itself: it may move while growing. */
static size_t sb_vprintf(sbuf *b, const char *fmt, va_list ap)
{
    size_t start = b->len;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) die("vsnprintf failed");
    if (!b->p || (size_t)n + 1 > b->cap - b->len) {
        sb_reserve(b, (size_t)n);
        int m = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        if (m != n) die("vsnprintf changed its mind");
    }
    b->len += (size_t)n;
    return start;
}

static size_t sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t off = sb_vprintf(b, fmt, ap);
    va_end(ap);
    return off;
}

/* An arena string: formatted, NUL-terminated, located by offset because
 * the arena may move while it grows. */
typedef struct astr {
    size_t off, len;
} astr;

static astr sb_add_str(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static astr sb_add_str(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    astr s;
    s.off = sb_vprintf(b, fmt, ap);
    va_end(ap);
    s.len = b->len - s.off;
    sb_reserve(b, 1);
    b->p[b->len++] = '\0';
    return s;
}

/* xorshift64*: deterministic, fast, good enough to pick requests. */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n) without a division in the common case. */
static uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double pct)
{
    size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

/* ---------------------------------------------------------------------------
 * The policy
 *
 * A policy of n rules (the `default` statement is not a rule): NFIXED fixed
 * rules, then about 70% per-device rules, then about 30% per-tenant rules,
 * in that order, as an operator would keep them in 00-base.policy,
 * 10-devices.policy and 20-tenants.policy.  Inside each device or tenant
 * block the narrow deny comes before the broad allow it carves out of,
 * because the first matching rule decides.
 */

typedef struct population {
    uint32_t ndevices; /* devices 0..ndevices-1 have all of their rules */
    uint32_t ntenants;
} population;

#define DEVICE_RULES 3
#define TENANT_RULES 3

/* The QoS/retain variant of a device's publish grant, so some requests
 * are refused by an option rather than by a topic. */
static const char *device_pub_options(uint32_t id)
{
    switch (id % 4) {
    case 1:
        return " qos 0-1";
    case 2:
        return " qos 0-1 retain false";
    default:
        return "";
    }
}

static bool device_pub_qos_limited(uint32_t id)
{
    return id % 4 == 1 || id % 4 == 2;
}

static bool device_pub_no_retain(uint32_t id)
{
    return id % 4 == 2;
}

static void emit_device_rule(sbuf *b, uint32_t id, int k)
{
    switch (k) {
    case 0:
        sb_printf(b,
                  "deny  publish   username \"dev%06" PRIu32 "\" topic \"devices/dev%06" PRIu32
                  "/up/secret\"\n",
                  id, id);
        break;
    case 1:
        /* Every tenth one is written over two lines, as long rules are,
         * so the benchmark also covers continuation lines. */
        sb_printf(b,
                  "allow publish   username \"dev%06" PRIu32 "\" clientid ~ \"dev%06" PRIu32
                  "-[0-9]+\"%s topic \"devices/dev%06" PRIu32 "/up/+\" \"devices/dev%06" PRIu32
                  "/state\"%s\n",
                  id, id, id % 10 == 0 ? " \\\n     " : "", id, id, device_pub_options(id));
        break;
    default:
        sb_printf(b,
                  "allow subscribe username \"dev%06" PRIu32 "\" topic \"devices/dev%06" PRIu32
                  "/down/#\"%s\n",
                  id, id, id % 3 == 0 ? " qos 0-1" : "");
        break;
    }
}

static void emit_tenant_rule(sbuf *b, uint32_t id, int k)
{
    switch (k) {
    case 0:
        sb_printf(b,
                  "allow subscribe username \"t%06" PRIu32 ":admin\" topic \"tenants/t%06" PRIu32
                  "/+/status\"\n",
                  id, id);
        break;
    case 1:
        sb_printf(b,
                  "deny  publish   group \"readonly\" topic \"tenants/t%06" PRIu32 "/config/#\"\n",
                  id);
        break;
    default:
        sb_printf(b,
                  "allow pubsub    username ~ \"t%06" PRIu32 ":[a-z]+\" topic \"tenants/t%06" PRIu32
                  "/#\"\n",
                  id, id);
        break;
    }
}

static void gen_policy(uint32_t n, sbuf *b, population *pop)
{
    b->len = 0;
    memset(pop, 0, sizeof(*pop));
    sb_printf(b,
              "# generated by bench_eval: %" PRIu32 " rules\n"
              "default deny\n"
              "\n"
              "deny  subscribe topic eq \"#\" eq \"+/#\"   # nobody drinks from the firehose\n"
              "allow subscribe username \"dashboard\" topic \"$SYS/#\"\n"
              "allow subscribe group \"ops\" topic \"alerts/#\"\n"
              "allow pubsub    username ~ \"(?<tenant>[a-z0-9]+):.+\" "
              "topic \"tenants/${tenant}/shared/#\"\n"
              "allow publish   clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" "
              "topic \"devices/${serial}/up/#\" qos 0-1\n",
              n);

    uint32_t rest = n - NFIXED;
    uint32_t ndev = (uint32_t)(((uint64_t)rest * 7 + 5) / 10);
    uint32_t nten = rest - ndev;

    sb_printf(b, "\n# devices\n");
    for (uint32_t id = 0, done = 0; done < ndev; id++) {
        int k;
        for (k = 0; k < DEVICE_RULES && done < ndev; k++, done++)
            emit_device_rule(b, id, k);
        if (k == DEVICE_RULES) pop->ndevices++;
    }
    sb_printf(b, "\n# tenants\n");
    for (uint32_t id = 0, done = 0; done < nten; id++) {
        int k;
        for (k = 0; k < TENANT_RULES && done < nten; k++, done++)
            emit_tenant_rule(b, id, k);
        if (k == TENANT_RULES) pop->ntenants++;
    }
}

/* ---------------------------------------------------------------------------
 * The requests
 *
 * Drawn from the generated population with weights that look like a
 * device fleet: mostly devices publishing telemetry, some subscribing,
 * tenant users, a few operators, and a steady trickle of requests that
 * must be refused (foreign topics, wildcards in a publish, the firehose,
 * unknown users).  A device or tenant id past the population is fine: it
 * is then an unknown client, which a real broker sees too.
 */

typedef enum req_kind {
    RK_DEV_PUB_OWN,      /* allow (unless qos 2 / retain on a limited device) */
    RK_DEV_PUB_STATE,    /* allow */
    RK_DEV_PUB_OTHER,    /* deny: another device's topic */
    RK_DEV_PUB_SECRET,   /* deny: the carved-out topic */
    RK_DEV_SUB_OWN,      /* allow, incl. $share */
    RK_DEV_SUB_OTHER,    /* deny */
    RK_SERIAL_PUB,       /* allow via the fixed capture rule */
    RK_TEN_PUB,          /* allow */
    RK_TEN_SUB,          /* allow */
    RK_TEN_RO_CONFIG,    /* deny: readonly group */
    RK_TEN_ADMIN_STATUS, /* allow */
    RK_TEN_SHARED,       /* allow via the fixed capture rule */
    RK_TEN_OTHER,        /* deny: another tenant's topic */
    RK_INVALID_PUB,      /* deny: '+' in a topic name */
    RK_SYS_DASHBOARD,    /* allow */
    RK_SYS_OTHER,        /* deny */
    RK_OPS_ALERTS,       /* allow */
    RK_FIREHOSE,         /* deny: eq "#" */
    RK_UNKNOWN_USER,     /* deny */
    RK_ANONYMOUS,        /* deny */
    RK_COUNT
} req_kind;

static const char *const kind_name[RK_COUNT] = {
    "dev_pub_own",      "dev_pub_state", "dev_pub_other", "dev_pub_secret", "dev_sub_own",
    "dev_sub_other",    "serial_pub",    "ten_pub",       "ten_sub",        "ten_ro_config",
    "ten_admin_status", "ten_shared",    "ten_other",     "invalid_pub",    "sys_dashboard",
    "sys_other",        "ops_alerts",    "firehose",      "unknown_user",   "anonymous",
};

static const unsigned kind_weight[RK_COUNT] = {
    [RK_DEV_PUB_OWN] = 300,   [RK_DEV_PUB_STATE] = 60,    [RK_DEV_PUB_OTHER] = 50,
    [RK_DEV_PUB_SECRET] = 15, [RK_DEV_SUB_OWN] = 100,     [RK_DEV_SUB_OTHER] = 20,
    [RK_SERIAL_PUB] = 50,     [RK_TEN_PUB] = 100,         [RK_TEN_SUB] = 50,
    [RK_TEN_RO_CONFIG] = 25,  [RK_TEN_ADMIN_STATUS] = 30, [RK_TEN_SHARED] = 30,
    [RK_TEN_OTHER] = 40,      [RK_INVALID_PUB] = 30,      [RK_SYS_DASHBOARD] = 15,
    [RK_SYS_OTHER] = 15,      [RK_OPS_ALERTS] = 20,       [RK_FIREHOSE] = 10,
    [RK_UNKNOWN_USER] = 30,   [RK_ANONYMOUS] = 10,
};

static const exh_str grp_readonly[] = {{"users", 5}, {"readonly", 8}};
static const exh_str grp_users[] = {{"users", 5}};
static const exh_str grp_ops[] = {{"staff", 5}, {"ops", 3}};

/* Where a request's strings sit in the arena until the arena stops
 * moving and real pointers can be filled in. */
typedef struct pending {
    astr user, cid, topic;
    bool anonymous;
} pending;

static const char *const dev_leaf[] = {"temp", "humidity", "battery", "gps", "rssi"};
static const char *const ten_sect[] = {"data", "events", "metrics", "logs"};
static const char *const ten_user[] = {"alice", "bob", "carol", "dave", "erin", "svc"};

static req_kind pick_kind(rng *r, const population *pop)
{
    unsigned total = 0;
    for (int k = 0; k < RK_COUNT; k++)
        total += kind_weight[k];
    for (;;) {
        unsigned x = rng_below(r, total);
        int k = 0;
        while (x >= kind_weight[k])
            x -= kind_weight[k++];
        /* Tiny policies may have no complete tenant; draw again rather
         * than flood the mix with requests for tenant 0. */
        if (k >= RK_TEN_PUB && k <= RK_TEN_OTHER && pop->ntenants == 0) continue;
        if (k <= RK_DEV_SUB_OTHER && pop->ndevices == 0) continue;
        return (req_kind)k;
    }
}

static void set_peer(exh_request *req, rng *r, bool v6)
{
    char buf[64];
    int n;
    if (v6)
        n = snprintf(buf, sizeof(buf), "2001:db8:%x::%x", rng_below(r, 0x10000),
                     rng_below(r, 0xffff) + 1);
    else
        n = snprintf(buf, sizeof(buf), "10.%u.%u.%u", rng_below(r, 256), rng_below(r, 256),
                     rng_below(r, 254) + 1);
    if (n < 0 || (size_t)n >= sizeof(buf) || !exh_addr_parse(buf, (size_t)n, &req->peerhost)) {
        fprintf(stderr, "bench_eval: exh_addr_parse rejected %s\n", buf);
        exit(1);
    }
}

static req_kind make_request(rng *r, const population *pop, exh_request *req, pending *pd, sbuf *a)
{
    req_kind k = pick_kind(r, pop);
    uint32_t dev = pop->ndevices ? rng_below(r, pop->ndevices) : 0;
    uint32_t ten = pop->ntenants ? rng_below(r, pop->ntenants) : 0;
    /* Another device or tenant than ours (id+1 wraps within the population,
     * so it exists when the population has more than one). */
    uint32_t dev2 =
        pop->ndevices > 1 ? (dev + 1 + rng_below(r, pop->ndevices - 1)) % pop->ndevices : dev + 1;
    uint32_t ten2 =
        pop->ntenants > 1 ? (ten + 1 + rng_below(r, pop->ntenants - 1)) % pop->ntenants : ten + 1;
    int qos = (int)rng_below(r, 10);
    qos = qos < 6 ? 0 : qos < 9 ? 1 : 2; /* telemetry is mostly QoS 0 */
    int retain = rng_below(r, 20) == 0;

    memset(pd, 0, sizeof(*pd));
    exh_action action = EXH_PUBLISH;
    switch (k) {
    case RK_DEV_SUB_OWN:
    case RK_DEV_SUB_OTHER:
    case RK_TEN_SUB:
    case RK_TEN_ADMIN_STATUS:
    case RK_SYS_DASHBOARD:
    case RK_SYS_OTHER:
    case RK_OPS_ALERTS:
    case RK_FIREHOSE:
        action = EXH_SUBSCRIBE;
        break;
    default:
        break;
    }
    uint32_t serial = (uint32_t)rng_next(r);
    exh_request_init(req, action);
    req->qos = qos;
    req->retain = action == EXH_PUBLISH ? retain : -1;
    set_peer(req, r, rng_below(r, 8) == 0);

    switch (k) {
    case RK_DEV_PUB_OWN:
        /* Keep limited devices mostly within their grant, as a real fleet
         * would; the remainder are the refusals an operator wants to see. */
        if (device_pub_qos_limited(dev) && qos == 2 && rng_below(r, 4) != 0) req->qos = 1;
        if (device_pub_no_retain(dev)) req->retain = 0;
        /* fall through */
    case RK_DEV_PUB_STATE:
    case RK_DEV_PUB_OTHER:
    case RK_DEV_PUB_SECRET:
    case RK_DEV_SUB_OWN:
    case RK_DEV_SUB_OTHER:
    case RK_SYS_OTHER:
        pd->user = sb_add_str(a, "dev%06" PRIu32, dev);
        pd->cid = sb_add_str(a, "dev%06" PRIu32 "-%u", dev, rng_below(r, 4));
        break;
    case RK_SERIAL_PUB:
        pd->anonymous = rng_below(r, 2) == 0;
        if (!pd->anonymous) pd->user = sb_add_str(a, "fleet");
        pd->cid = sb_add_str(a, "dev-%08" PRIx32, serial);
        /* The fixed rule grants qos 0-1 only. */
        req->qos = qos == 2 ? 1 : qos;
        break;
    case RK_TEN_PUB:
    case RK_TEN_SUB:
    case RK_TEN_RO_CONFIG:
    case RK_TEN_SHARED:
    case RK_TEN_OTHER:
        pd->user = sb_add_str(a, "t%06" PRIu32 ":%s", ten, ten_user[rng_below(r, 6)]);
        pd->cid = sb_add_str(a, "web-%08" PRIx32, (uint32_t)rng_next(r));
        break;
    case RK_TEN_ADMIN_STATUS:
        pd->user = sb_add_str(a, "t%06" PRIu32 ":admin", ten);
        pd->cid = sb_add_str(a, "console-%u", rng_below(r, 100));
        break;
    case RK_INVALID_PUB:
    case RK_UNKNOWN_USER:
        pd->user = sb_add_str(a, "guest%u", rng_below(r, 100000));
        pd->cid = sb_add_str(a, "mqttx_%08" PRIx32, (uint32_t)rng_next(r));
        break;
    case RK_SYS_DASHBOARD:
        pd->user = sb_add_str(a, "dashboard");
        pd->cid = sb_add_str(a, "dashboard-1");
        break;
    case RK_OPS_ALERTS:
        pd->user = sb_add_str(a, "oncall%u", rng_below(r, 10));
        pd->cid = sb_add_str(a, "ops-%u", rng_below(r, 10));
        req->groups = grp_ops;
        req->ngroups = 2;
        break;
    case RK_FIREHOSE:
        pd->user = sb_add_str(a, "dev%06" PRIu32, dev);
        pd->cid = sb_add_str(a, "dev%06" PRIu32 "-0", dev);
        break;
    case RK_ANONYMOUS:
        pd->anonymous = true;
        pd->cid = sb_add_str(a, "anon-%u", rng_below(r, 1000));
        break;
    case RK_COUNT:
        break;
    }

    switch (k) {
    case RK_DEV_PUB_OWN:
        pd->topic = sb_add_str(a, "devices/dev%06" PRIu32 "/up/%s", dev, dev_leaf[rng_below(r, 5)]);
        break;
    case RK_DEV_PUB_STATE:
        pd->topic = sb_add_str(a, "devices/dev%06" PRIu32 "/state", dev);
        break;
    case RK_DEV_PUB_OTHER:
        pd->topic =
            sb_add_str(a, "devices/dev%06" PRIu32 "/up/%s", dev2, dev_leaf[rng_below(r, 5)]);
        break;
    case RK_DEV_PUB_SECRET:
        pd->topic = sb_add_str(a, "devices/dev%06" PRIu32 "/up/secret", dev);
        break;
    case RK_DEV_SUB_OWN:
        switch (rng_below(r, 3)) {
        case 0:
            pd->topic = sb_add_str(a, "devices/dev%06" PRIu32 "/down/#", dev);
            break;
        case 1:
            pd->topic = sb_add_str(a, "devices/dev%06" PRIu32 "/down/cmd", dev);
            break;
        default:
            pd->topic =
                sb_add_str(a, "$share/g%u/devices/dev%06" PRIu32 "/down/+", rng_below(r, 4), dev);
            break;
        }
        break;
    case RK_DEV_SUB_OTHER:
        pd->topic = sb_add_str(a, "devices/dev%06" PRIu32 "/down/#", dev2);
        break;
    case RK_SERIAL_PUB:
        /* The serial in the topic is the one in the client id. */
        pd->topic = sb_add_str(a, "devices/%08" PRIx32 "/up/%s", serial, dev_leaf[rng_below(r, 5)]);
        break;
    case RK_TEN_PUB:
        pd->topic = sb_add_str(a, "tenants/t%06" PRIu32 "/%s/%u", ten, ten_sect[rng_below(r, 4)],
                               rng_below(r, 50));
        break;
    case RK_TEN_SUB:
        pd->topic = sb_add_str(a, "tenants/t%06" PRIu32 "/%s/#", ten, ten_sect[rng_below(r, 4)]);
        break;
    case RK_TEN_RO_CONFIG:
        req->groups = grp_readonly;
        req->ngroups = 2;
        pd->topic = sb_add_str(a, "tenants/t%06" PRIu32 "/config/limits", ten);
        break;
    case RK_TEN_ADMIN_STATUS:
        pd->topic = sb_add_str(a, "tenants/t%06" PRIu32 "/+/status", ten);
        break;
    case RK_TEN_SHARED:
        req->groups = grp_users;
        req->ngroups = 1;
        pd->topic = sb_add_str(a, "tenants/t%06" PRIu32 "/shared/news", ten);
        break;
    case RK_TEN_OTHER:
        pd->topic = sb_add_str(a, "tenants/t%06" PRIu32 "/data/%u", ten2, rng_below(r, 50));
        break;
    case RK_INVALID_PUB:
        pd->topic = sb_add_str(a, "devices/+/up/temp");
        break;
    case RK_SYS_DASHBOARD:
        pd->topic = sb_add_str(a, rng_below(r, 2) ? "$SYS/broker/+/uptime" : "$SYS/#");
        break;
    case RK_SYS_OTHER:
        pd->topic = sb_add_str(a, "$SYS/#");
        break;
    case RK_OPS_ALERTS:
        pd->topic = sb_add_str(a, "alerts/%s", rng_below(r, 2) ? "#" : "+/critical");
        break;
    case RK_FIREHOSE:
        pd->topic = sb_add_str(a, "#");
        break;
    case RK_UNKNOWN_USER:
    case RK_ANONYMOUS:
        pd->topic = sb_add_str(a, "devices/dev%06" PRIu32 "/up/temp", dev);
        break;
    case RK_COUNT:
        break;
    }
    return k;
}

typedef struct reqset {
    exh_request *reqs;
    uint8_t *kinds; /* req_kind of each request, for --by-kind */
    size_t n;
    sbuf arena;
} reqset;

static void build_requests(reqset *rs, size_t n, const population *pop, uint64_t seed)
{
    rng r = {seed};
    pending *pd = xmalloc(n * sizeof(*pd));
    rs->reqs = xmalloc(n * sizeof(*rs->reqs));
    rs->kinds = xmalloc(n);
    rs->n = n;
    memset(&rs->arena, 0, sizeof(rs->arena));
    for (size_t i = 0; i < n; i++)
        rs->kinds[i] = (uint8_t)make_request(&r, pop, &rs->reqs[i], &pd[i], &rs->arena);
    /* The arena has stopped moving: turn offsets into pointers. */
    for (size_t i = 0; i < n; i++) {
        exh_request *q = &rs->reqs[i];
        if (!pd[i].anonymous) {
            q->username = rs->arena.p + pd[i].user.off;
            q->username_len = pd[i].user.len;
        }
        q->clientid = rs->arena.p + pd[i].cid.off;
        q->clientid_len = pd[i].cid.len;
        q->topic = rs->arena.p + pd[i].topic.off;
        q->topic_len = pd[i].topic.len;
    }
    free(pd);
}

static void free_requests(reqset *rs)
{
    free(rs->reqs);
    free(rs->kinds);
    free(rs->arena.p);
}

/* ---------------------------------------------------------------------------
 * Measuring
 */

typedef struct result_row {
    uint32_t rules;
    double compile_ms;
    uint64_t p50, p99, mean; /* cold stream */
    uint64_t hot_p50, hot_p99, hot_mean;
} result_row;

/* Latency of one dependent load from memory: a pointer chase through a
 * random cycle over 256 MiB.  Explains the cold stream's figures. */
static double memory_latency_ns(void)
{
    size_t n = (256u << 20) / sizeof(size_t);
    size_t *next = xmalloc(n * sizeof(*next));
    size_t stride = 64 / sizeof(size_t); /* one slot per cache line */
    size_t lines = n / stride;
    size_t *order = xmalloc(lines * sizeof(*order));
    uint64_t x = SEED;
    for (size_t i = 0; i < lines; i++)
        order[i] = i;
    for (size_t i = lines - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < lines; i++)
        next[order[i] * stride] = order[(i + 1) % lines] * stride;
    free(order);
    size_t p = 0, steps = 2000000;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < steps; i++)
        p = next[p];
    uint64_t t1 = now_ns();
    free(next);
    return p == SIZE_MAX ? 0 : (double)(t1 - t0) / (double)steps;
}

static void print_cpu(void)
{
    char line[512];
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "model name", 10) == 0) {
                const char *v = strchr(line, ':');
                if (v) {
                    v++;
                    while (*v == ' ' || *v == '\t')
                        v++;
                    snprintf(model, sizeof(model), "%s", v);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        }
        fclose(f);
    }
    printf("cpu: %s\n", model);
}

/* What one clock_gettime pair costs by itself: every per-decision sample
 * below includes it, so the reader can judge how much of p50 is the clock. */
static uint64_t timer_overhead(void)
{
    enum { PAIRS = 100001 };
    uint64_t *s = xmalloc(PAIRS * sizeof(*s));
    for (size_t i = 0; i < PAIRS; i++) {
        uint64_t t0 = now_ns();
        uint64_t t1 = now_ns();
        s[i] = t1 - t0;
    }
    qsort(s, PAIRS, sizeof(*s), cmp_u64);
    uint64_t med = s[PAIRS / 2];
    free(s);
    return med;
}

/* --by-kind: how each kind of request was decided and what it cost, to
 * check that the mix is what it claims to be (a device's own publish
 * allowed, another's denied) and to see which kind is slow.  samples are
 * in request order (not yet sorted). */
static void print_by_kind(const reqset *rs, const uint8_t *decisions, const uint64_t *samples)
{
    size_t count[RK_COUNT][3] = {{0}};
    for (size_t i = 0; i < rs->n; i++)
        count[rs->kinds[i]][decisions[i] < 3 ? decisions[i] : 2]++;
    uint64_t *mine = xmalloc(rs->n * sizeof(*mine));
    for (int k = 0; k < RK_COUNT; k++) {
        size_t m = 0;
        for (size_t i = 0; i < rs->n; i++)
            if (rs->kinds[i] == k) mine[m++] = samples[i];
        if (m == 0) continue;
        qsort(mine, m, sizeof(*mine), cmp_u64);
        printf("  kind=%-16s allowed=%-7zu denied=%-7zu ignored=%-3zu p50_ns=%-6" PRIu64
               " p99_ns=%" PRIu64 "\n",
               kind_name[k], count[k][EXH_ALLOW], count[k][EXH_DENY], count[k][EXH_IGNORE],
               percentile(mine, m, 50.0), percentile(mine, m, 99.0));
    }
    free(mine);
}

/* Time ndecisions decisions over the request set, cycling through it;
 * percentiles into p50, p99 and mean.  Returns the allowed count. */
static size_t measure_stream(const exh_policy *p, const reqset *rs, size_t ndecisions,
                             exh_evalctx *ctx, uint64_t *p50, uint64_t *p99, uint64_t *mean)
{
    exh_result res;
    for (size_t i = 0; i < rs->n * 4 && i < 4 * ndecisions; i++) /* warm up */
        exh_eval(p, &rs->reqs[i % rs->n], ctx, &res);
    uint64_t *samples = xmalloc(ndecisions * sizeof(*samples));
    uint64_t sum = 0;
    size_t allowed = 0;
    for (size_t i = 0; i < ndecisions; i++) {
        uint64_t a = now_ns();
        exh_decision d = exh_eval(p, &rs->reqs[i % rs->n], ctx, &res);
        uint64_t b = now_ns();
        samples[i] = b - a;
        sum += b - a;
        allowed += d == EXH_ALLOW;
    }
    qsort(samples, ndecisions, sizeof(*samples), cmp_u64);
    *p50 = percentile(samples, ndecisions, 50.0);
    *p99 = percentile(samples, ndecisions, 99.0);
    *mean = sum / ndecisions;
    free(samples);
    return allowed;
}

static size_t nactive = 256;

static bool run_size(uint32_t n, size_t ndecisions, bool by_kind, exh_evalctx *ctx, result_row *row)
{
    sbuf text = {0};
    population pop;
    gen_policy(n, &text, &pop);

    exh_policy *p = NULL;
    exh_error err;
    exh_error_clear(&err);
    uint64_t t0 = now_ns();
    exh_status st = exh_policy_parse("bench.policy", text.p, text.len, &p, &err);
    uint64_t t1 = now_ns();
    if (st != EXH_OK || !p) {
        char msg[2048];
        exh_error_format(&err, msg, sizeof(msg));
        fprintf(stderr,
                "bench_eval: the generated %" PRIu32 "-rule policy did not compile (%s):\n%s", n,
                exh_status_str(st), msg);
        if (st == EXH_OK)
            fprintf(stderr, "bench_eval: exh_policy_parse returned EXH_OK but no policy\n");
        exit(2);
    }
    if (exh_policy_rule_count(p) != n) {
        fprintf(stderr, "bench_eval: generated %" PRIu32 " rules but the policy has %" PRIu32 "\n",
                n, exh_policy_rule_count(p));
        exit(1);
    }
    if (exh_policy_default(p) != EXH_DENY) {
        fprintf(stderr, "bench_eval: the policy's default is %s, expected deny\n",
                exh_decision_str(exh_policy_default(p)));
        exit(1);
    }
    row->rules = n;
    row->compile_ms = (double)(t1 - t0) / 1e6;

    reqset rs;
    build_requests(&rs, ndecisions, &pop, SEED ^ n);
    uint64_t *samples = xmalloc(ndecisions * sizeof(*samples));
    uint8_t *warm = xmalloc(ndecisions);

    /* Warm up: one untimed pass over every request, so caches, branch
     * predictors and PCRE2's JIT stacks are as a long-running broker would
     * have them; it also records the decisions to check the timed pass
     * against (a decision must not depend on what was asked before). */
    exh_result res;
    for (size_t i = 0; i < ndecisions; i++) {
        exh_decision d = exh_eval(p, &rs.reqs[i], ctx, &res);
        if (d != res.decision || (d != EXH_ALLOW && d != EXH_DENY && d != EXH_IGNORE)) {
            fprintf(stderr, "bench_eval: exh_eval returned %d but result.decision is %d\n", (int)d,
                    (int)res.decision);
            exit(1);
        }
        if (res.basis == EXH_BY_RULE && res.rule >= n) {
            fprintf(stderr, "bench_eval: exh_eval names rule index %" PRIu32 " of %" PRIu32 "\n",
                    res.rule, n);
            exit(1);
        }
        warm[i] = (uint8_t)d;
    }

    size_t allowed = 0, denied = 0, ignored = 0, invalid = 0, by_default = 0, mismatch = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < ndecisions; i++) {
        uint64_t a = now_ns();
        exh_decision d = exh_eval(p, &rs.reqs[i], ctx, &res);
        uint64_t b = now_ns();
        samples[i] = b - a;
        sum += b - a;
        allowed += d == EXH_ALLOW;
        denied += d == EXH_DENY;
        ignored += d == EXH_IGNORE;
        invalid += res.basis == EXH_BY_INVALID;
        by_default += res.basis == EXH_BY_DEFAULT;
        mismatch += (uint8_t)d != warm[i];
    }

    /* Sort a copy: --by-kind needs the samples in request order. */
    uint64_t *sorted = xmalloc(ndecisions * sizeof(*sorted));
    memcpy(sorted, samples, ndecisions * sizeof(*sorted));
    qsort(sorted, ndecisions, sizeof(*sorted), cmp_u64);
    row->p50 = percentile(sorted, ndecisions, 50.0);
    row->p99 = percentile(sorted, ndecisions, 99.0);
    row->mean = sum / ndecisions;
    free(sorted);

    printf("rules=%" PRIu32 " stream=cold compile_ms=%.1f p50_ns=%" PRIu64 " p99_ns=%" PRIu64
           " mean_ns=%" PRIu64 " decisions=%zu allowed=%zu denied=%zu ignored=%zu"
           " invalid=%zu by_default=%zu policy_kb=%zu devices=%" PRIu32 " tenants=%" PRIu32 "\n",
           n, row->compile_ms, row->p50, row->p99, row->mean, ndecisions, allowed, denied, ignored,
           invalid, by_default, text.len / 1024, pop.ndevices, pop.ntenants);
    if (by_kind) print_by_kind(&rs, warm, samples);

    reqset hot;
    build_requests(&hot, nactive, &pop, SEED ^ n ^ 0x5151);
    size_t hot_allowed =
        measure_stream(p, &hot, ndecisions, ctx, &row->hot_p50, &row->hot_p99, &row->hot_mean);
    printf("rules=%" PRIu32 " stream=hot active=%zu p50_ns=%" PRIu64 " p99_ns=%" PRIu64
           " mean_ns=%" PRIu64 " decisions=%zu allowed=%zu\n",
           n, nactive, row->hot_p50, row->hot_p99, row->hot_mean, ndecisions, hot_allowed);
    free_requests(&hot);
    fflush(stdout);

    bool ok = true;
    if (mismatch) {
        fprintf(
            stderr,
            "bench_eval: warning: %zu decisions differ between the warm-up and the timed pass\n",
            mismatch);
        ok = false;
    }
    if (allowed == 0) {
        fprintf(stderr,
                "bench_eval: warning: rules=%" PRIu32 " allowed nothing: this would "
                "measure an all-deny mix, not the policy\n",
                n);
        ok = false;
    }

    free(warm);
    free(samples);
    free_requests(&rs);
    exh_policy_free(p);
    free(text.p);
    return ok;
}

/* ---------------------------------------------------------------------------
 * main
 */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_eval [--sizes N,N,...] [--decisions N] [--active N] [--by-kind]\n"
            "  --active     clients in the hot stream (default 256)\n"
            "  --sizes      rule counts to generate (default 10,1000,10000,100000; each >= %d)\n"
            "  --decisions  timed decisions per size (default 200000)\n"
            "  --by-kind    also print how each kind of request was decided\n",
            NFIXED);
}

static bool parse_u64(const char *s, const char *end, uint64_t *out)
{
    if (s == end || *s < '0' || *s > '9') return false;
    errno = 0;
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e != end) return false;
    *out = v;
    return true;
}

static bool parse_sizes(const char *arg, uint32_t *sizes, size_t *nsizes)
{
    *nsizes = 0;
    const char *s = arg;
    for (;;) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        uint64_t v;
        if (*nsizes == MAX_SIZES || !parse_u64(s, end, &v) || v < NFIXED || v > 10000000)
            return false;
        sizes[(*nsizes)++] = (uint32_t)v;
        if (!comma) return true;
        s = comma + 1;
    }
}

int main(int argc, char **argv)
{
    uint32_t sizes[MAX_SIZES] = {10, 1000, 10000, 100000};
    size_t nsizes = 4;
    size_t ndecisions = 200000;
    bool by_kind = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(arg, "--by-kind") == 0) {
            by_kind = true;
            continue;
        }
        if (strcmp(arg, "--dump") == 0 && i + 1 < argc) {
            /* Print the generated policy of N rules (for the driver's
             * memory benchmark) and stop. */
            uint64_t v;
            const char *a = argv[++i];
            if (!parse_u64(a, a + strlen(a), &v) || v < NFIXED || v > 10000000) {
                fprintf(stderr, "bench_eval: bad --dump '%s'\n", a);
                return 2;
            }
            sbuf text = {0};
            population pop;
            gen_policy((uint32_t)v, &text, &pop);
            fwrite(text.p, 1, text.len, stdout);
            free(text.p);
            return 0;
        }
        if (strcmp(arg, "--active") == 0 && i + 1 < argc) {
            uint64_t v;
            const char *a = argv[++i];
            if (!parse_u64(a, a + strlen(a), &v) || v == 0 || v > 1000000) {
                fprintf(stderr, "bench_eval: bad --active '%s'\n", a);
                return 2;
            }
            nactive = (size_t)v;
            continue;
        }
        if (strncmp(arg, "--sizes", 7) == 0 || strncmp(arg, "--decisions", 11) == 0) {
            const char *eq = strchr(arg, '=');
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
        }
        if (val && strncmp(arg, "--sizes", 7) == 0 && (arg[7] == '\0' || arg[7] == '=')) {
            if (!parse_sizes(val, sizes, &nsizes)) {
                fprintf(stderr, "bench_eval: bad --sizes '%s'\n", val);
                usage(stderr);
                return 2;
            }
        } else if (val && strncmp(arg, "--decisions", 11) == 0 &&
                   (arg[11] == '\0' || arg[11] == '=')) {
            uint64_t v;
            if (!parse_u64(val, val + strlen(val), &v) || v == 0 || v > 100000000) {
                fprintf(stderr, "bench_eval: bad --decisions '%s'\n", val);
                usage(stderr);
                return 2;
            }
            ndecisions = (size_t)v;
        } else {
            fprintf(stderr, "bench_eval: unknown or incomplete option '%s'\n", arg);
            usage(stderr);
            return 2;
        }
    }

    print_cpu();
    uint64_t overhead = timer_overhead();
    printf("timer: clock_gettime(CLOCK_MONOTONIC) pair median_ns=%" PRIu64
           " (included in every p50/p99/mean below; not subtracted)\n",
           overhead);
    printf("memory: dependent load over 256 MiB latency_ns=%.0f\n", memory_latency_ns());
    printf("policy: default deny + %d fixed rules, ~70%% per-device, ~30%% per-tenant rules; "
           "requests: fixed-seed mix of devices, tenants, operators and refusals\n",
           NFIXED);
    fflush(stdout);

    exh_evalctx *ctx = exh_evalctx_new();
    if (!ctx) die("exh_evalctx_new failed");

    result_row rows[MAX_SIZES];
    bool ok = true;
    for (size_t i = 0; i < nsizes; i++)
        ok &= run_size(sizes[i], ndecisions, by_kind, ctx, &rows[i]);
    exh_evalctx_free(ctx);

    /* The design's question is "largest over smallest", which with the
     * default sizes is p50(100k)/p50(10). */
    size_t lo = 0, hi = 0;
    for (size_t i = 1; i < nsizes; i++) {
        if (rows[i].rules < rows[lo].rules) lo = i;
        if (rows[i].rules > rows[hi].rules) hi = i;
    }
    double ratio = rows[lo].p50 ? (double)rows[hi].p50 / (double)rows[lo].p50 : 0.0;
    double hot_ratio = rows[lo].hot_p50 ? (double)rows[hi].hot_p50 / (double)rows[lo].hot_p50 : 0.0;
    printf("summary: rules=%" PRIu32 " vs rules=%" PRIu32 ": hot p50_ns=%" PRIu64
           " ratio=%.2f; cold p50_ns=%" PRIu64 " ratio=%.2f; compile_ms=%.1f"
           " (DESIGN 6 targets at 100k: p50 <= 300 ns, ratio <= 2.0, compile <= 1000 ms)\n",
           rows[hi].rules, rows[lo].rules, rows[hi].hot_p50, hot_ratio, rows[hi].p50, ratio,
           rows[hi].compile_ms);
    return ok ? 0 : 1;
}
