/*
 * lockout.c -- brute-force protection for logins: a user name or a peer
 * address that keeps failing is refused, without a password check, for a
 * back-off that grows with each lock-out (the settings lockout_*; the
 * counting itself is the store's: store.h, "Lock-outs").  The counters
 * live in the store, so every front end on it -- every node of a
 * PostgreSQL store -- counts and refuses together, and a restart forgets
 * nothing.
 *
 * The keys of a login:
 *  - its user name; none for an anonymous login, or a name holding a NUL
 *    (no stored name can: such a login is refused as unknown anyway, and
 *    its address still counts);
 *  - its peer address as text (an IPv4-mapped IPv6 address is the IPv4
 *    address); none when the front end does not know it, nor for a
 *    loopback address (127.0.0.0/8, ::1): a broker behind a proxy or a
 *    tunnel on its own host sees every client there, and one attacker
 *    must not lock everyone out (fail2ban ignores loopback by default for
 *    the same reason).  Such clients are still locked out by name.
 *
 * A login is refused while either key is locked, whatever the name: the
 * same deny and reason for a stored user, a superuser, an unknown name
 * (never "no opinion", even with unknown_user = ignore, which would tell
 * that the name is not in the store).  Failures that count: an unknown
 * user, a wrong or missing password, a disabled user, a client id its
 * pattern refuses.  Not counted: store faults, throttled logins, an
 * unreadable stored hash (the operator's fault, not the client's), and
 * an unknown name under unknown_user = ignore -- another source may well
 * let that name in, so its logins are no failures of ours.  A verified
 * password (from the cache too) ends the user's count and strikes; the
 * address keeps its count (one good client behind a NAT must not clear
 * an attacker's).
 *
 * A broker asking again about a connection that is already in (the
 * request carries its verified login: Mosquitto re-runs basic auth for
 * every client at each reload) is no login attempt: neither refused nor
 * counted, so a lock-out never drops a client that logged in before it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "service_int.h"

atomic_llong svc_lockout_skew_ms;

/* Wall-clock ms since the epoch: the rows are shared between processes
 * and nodes, which a monotonic clock is not. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&svc_lockout_skew_ms);
}

static bool loopback(const exh_addr *a)
{
    static const uint8_t v6[16] = {[15] = 1};
    return (a->family == 4 && a->bytes[0] == 127) ||
           (a->family == 6 && !memcmp(a->bytes, v6, sizeof(v6)));
}

static exh_lockout_params params(const svc *s)
{
    return (exh_lockout_params){.failures = s->cfg.lockout_failures,
                                .window_ms = s->cfg.lockout_window_ms,
                                .backoff_ms = s->cfg.lockout_backoff_ms,
                                .backoff_max_ms = s->cfg.lockout_backoff_max_ms};
}

/* "60 s", or "200 ms" for what is not whole seconds. */
static void say_ms(int64_t ms, char *buf, size_t n)
{
    if (ms % 1000)
        snprintf(buf, n, "%lld ms", (long long)ms);
    else
        snprintf(buf, n, "%lld s", (long long)(ms / 1000));
}

exh_status svc_lockout_check(svc *s, exh_store *store, const exh_auth_request *rq, svc_lockout *lk,
                             exh_error *err)
{
    memset(lk, 0, sizeof(*lk));
    if (!s->cfg.lockout_failures || rq->verified || !rq->check_password) return EXH_OK;
    if (rq->username && !memchr(rq->username, '\0', rq->username_len)) {
        lk->user = rq->username;
        lk->user_len = rq->username_len;
    }
    if (rq->peerhost.family && !loopback(&rq->peerhost))
        exh_addr_format(&rq->peerhost, lk->addr, sizeof(lk->addr));
    if (!lk->user && !lk->addr[0]) return EXH_OK;
    lk->on = true;
    lk->now_ms = wall_ms();
    exh_status st = exh_store_lockout_state(
        store, lk->user, lk->user_len, lk->addr[0] ? lk->addr : NULL, lk->now_ms, &lk->st, err);
    if (st) return st;
    lk->locked = lk->st.user.locked || lk->st.addr.locked;
    if (lk->locked)
        svc_log(LOG_DEBUG, "connect %.*s (%.*s): %s (%s%s%s locked out)", (int)rq->clientid_len,
                rq->clientid ? rq->clientid : "", rq->username ? (int)rq->username_len : 9,
                rq->username ? rq->username : "anonymous", exh_auth_reason_str(EXH_AUTH_LOCKED_OUT),
                lk->st.user.locked ? "user" : "",
                lk->st.user.locked && lk->st.addr.locked ? " and " : "",
                lk->st.addr.locked ? "address" : "");
    return EXH_OK;
}

/* Does a login that ended so count as a failure (see the top)? */
static bool counts(const svc *s, exh_auth_reason r)
{
    switch (r) {
    case EXH_AUTH_UNKNOWN_USER:
        return !s->cfg.unknown_ignore;
    case EXH_AUTH_BAD_PASSWORD:
    case EXH_AUTH_NO_PASSWORD:
    case EXH_AUTH_DISABLED:
    case EXH_AUTH_CLIENTID_MISMATCH:
        return true;
    default:
        return false;
    }
}

exh_status svc_lockout_count(svc *s, exh_store *store, svc_lockout *lk, exh_auth_reason reason,
                             exh_error *err)
{
    if (!lk->on) return EXH_OK;
    if (reason == EXH_AUTH_OK || reason == EXH_AUTH_OK_CACHED)
        /* Nothing to reset is nothing written: a good login costs one read. */
        return lk->st.user.exists ? exh_store_lockout_reset_user(store, lk->user, lk->user_len, err)
                                  : EXH_OK;
    if (!counts(s, reason)) return EXH_OK;
    exh_lockout_params p = params(s);
    exh_lockout_state after;
    exh_status st = exh_store_lockout_failed(
        store, lk->user, lk->user_len, lk->addr[0] ? lk->addr : NULL, lk->now_ms, &p, &after, err);
    if (st) return st;
    char len[32];
    if (after.user.started) {
        say_ms(after.user.locked_until - lk->now_ms, len, sizeof(len));
        svc_log(LOG_INFO, "lock-out: user '%.*s' for %s after %u failures",
                (int)(lk->user_len > 200 ? 200 : lk->user_len), lk->user, len, p.failures);
    }
    if (after.addr.started) {
        say_ms(after.addr.locked_until - lk->now_ms, len, sizeof(len));
        svc_log(LOG_INFO, "lock-out: address %s for %s after %u failures", lk->addr, len,
                p.failures);
    }
    return EXH_OK;
}
