/*
 * test_observe.c -- metrics and the decision audit log through the service
 * layer, on a real SQLite store: garbage in the settings, names and topics
 * no broker should send (NUL, control bytes, bytes that are not UTF-8,
 * 64 KiB topics) still give one valid JSON line each; a queue that fills
 * while nothing drains it drops and counts, never blocks; the HTTP
 * listener survives garbage and keeps serving; the exposition's counts
 * equal the decisions made.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exhook/store.h"
#include "log.h"
#include "metrics.h"
#include "service.h"

static char dir[64], db[128], pol[128], audit[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/exh-test-observe-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(db, sizeof(db), "%s/t.db", dir);
    snprintf(pol, sizeof(pol), "%s/t.policy", dir);
    snprintf(audit, sizeof(audit), "%s/audit.jsonl", dir);
    FILE *f = fopen(pol, "w");
    if (!f) return -1;
    fputs("default deny\ndeny publish topic \"carol/secret/#\"\n"
          "allow pubsub username \"alice\" topic \"alice/#\"\n",
          f);
    fclose(f);
    exh_store_opts o;
    exh_store_opts_default(&o);
    o.hash.m_kib = 64; /* cheap: these tests are not about hashing */
    o.hash.t_cost = 1;
    exh_store *s;
    exh_error err;
    exh_new_user u = {.name = "alice", .password = "alicepw", .password_len = 7};
    static const char *const cg[] = {"sensors", "odd\"group"};
    exh_new_user carol = {
        .name = "carol", .password = "carolpw", .password_len = 7, .groups = cg, .ngroups = 2};
    if (exh_store_open(db, &o, &s, &err) || exh_store_add_user(s, &u, &err) ||
        exh_store_add_user(s, &carol, &err))
        return -1;
    exh_store_close(s);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static svc_config config_for(int kind)
{
    svc_config c;
    svc_config_defaults(&c, kind);
    snprintf(c.db, sizeof(c.db), "%s", db);
    snprintf(c.policy, sizeof(c.policy), "%s", pol);
    c.log_level = LOG_ERROR;
    c.lockout_failures = 0;
    return c;
}

static svc_config config(void)
{
    return config_for(SVC_FOR_GRPC);
}

static void test_settings(void **state)
{
    (void)state;
    svc_config c = config();
    char msg[256];
    static const char *const bad_sample[] = {"", "-0.1", "1.5", "x", "0.5x", "nan", "inf", "1e9"};
    for (size_t i = 0; i < sizeof(bad_sample) / sizeof(*bad_sample); i++) {
        msg[0] = '\0';
        if (!svc_config_set(&c, "audit_sample", bad_sample[i], msg, sizeof(msg)))
            fail_msg("audit_sample = '%s' accepted", bad_sample[i]);
        assert_non_null(strstr(msg, "audit_sample"));
    }
    assert_int_equal(svc_config_set(&c, "audit-sample", "0.25", msg, sizeof(msg)), 0);
    assert_true(c.audit_sample == 0.25);
    static const char *const bad_q[] = {"", "63", "1048577", "-1", "8M", "0x100"};
    for (size_t i = 0; i < sizeof(bad_q) / sizeof(*bad_q); i++) {
        msg[0] = '\0';
        if (!svc_config_set(&c, "audit_queue_kib", bad_q[i], msg, sizeof(msg)))
            fail_msg("audit_queue_kib = '%s' accepted", bad_q[i]);
        assert_non_null(strstr(msg, "audit_queue_kib"));
    }
    assert_int_equal(svc_config_set(&c, "audit_queue_kib", "64", msg, sizeof(msg)), 0);
    assert_int_equal(c.audit_queue, 64 << 10);
    msg[0] = '\0';
    assert_int_not_equal(svc_config_set(&c, "metrics_listen", "9100", msg, sizeof(msg)), 0);
    assert_non_null(strstr(msg, "metrics_listen"));
    /* a listener that cannot be had: svc_start fails (logged), nothing crashes */
    assert_int_equal(svc_config_set(&c, "metrics_listen", "256.0.0.1:9100", msg, sizeof(msg)), 0);
    svc *s = svc_new(&c);
    assert_non_null(s);
    assert_int_equal(svc_start(s, 0), -1);
    svc_free(s);
}

static svc_answer publish(svc_conn *c, const char *cid, size_t clen, const char *user,
                          const char *topic, size_t tlen)
{
    exh_request r;
    exh_request_init(&r, EXH_PUBLISH);
    r.username = user;
    r.username_len = user ? strlen(user) : 0;
    r.clientid = cid;
    r.clientid_len = clen;
    r.topic = topic;
    r.topic_len = tlen;
    return svc_authorize(c, &r);
}

/* Every line of the log, parsed; fails on a line that is not a JSON object. */
static json_t *read_log(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    json_t *all = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t e;
        json_t *o = json_loadb(line, (size_t)n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &e);
        if (!json_is_object(o)) fail_msg("not a JSON object: %s: %.200s", e.text, line);
        json_array_append_new(all, o);
    }
    free(line);
    fclose(f);
    return all;
}

static void test_garbage_names(void **state)
{
    (void)state;
    svc_config cfg = config();
    snprintf(cfg.audit_log, sizeof(cfg.audit_log), "%s", audit);
    svc *s = svc_new(&cfg);
    assert_non_null(s);
    assert_int_equal(svc_start(s, 0), 0);
    svc_conn *c = svc_conn_new(s);
    assert_non_null(c);
    static const char nul_topic[] = "alice/a\0b";
    static const char ctl_cid[] = "c\x01\x1b[31m\"\\";
    static const char bad_utf8[] = "alice/\xff\xfe/\xc3";
    size_t big = 65536;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, 'a', big);
    memcpy(huge, "alice/", 6);
    assert_int_equal(publish(c, "c1", 2, "alice", nul_topic, sizeof(nul_topic) - 1), SVC_DENY);
    assert_int_equal(publish(c, ctl_cid, sizeof(ctl_cid) - 1, "alice", "x/y", 3), SVC_DENY);
    assert_int_equal(publish(c, "c3", 2, "alice", bad_utf8, sizeof(bad_utf8) - 1), SVC_DENY);
    assert_int_equal(publish(c, "c4", 2, "alice", huge, big), SVC_DENY); /* over 65535 bytes */
    assert_int_equal(publish(c, "c5", 2, NULL, "alice/x", 7), SVC_DENY); /* anonymous */
    /* escapes past the first word and in the last (overlapping) one */
    static const char long_cid[] = "abcdefghi\"klmno\x7fqrstuvw\\";
    assert_int_equal(publish(c, long_cid, sizeof(long_cid) - 1, "alice", "bob/z", 5), SVC_DENY);
    assert_int_equal(publish(c, "c6", 2, "alice", "alice/ok", 8), SVC_ALLOW); /* not logged */
    svc_conn_free(c);
    svc_free(s); /* the writer drains */
    json_t *all = read_log(audit);
    assert_int_equal(json_array_size(all), 6);
    json_t *r = json_array_get(all, 0);
    assert_string_equal(json_string_value(json_object_get(r, "rule")), "invalid");
    size_t tl = json_string_length(json_object_get(r, "topic"));
    assert_int_equal(tl, sizeof(nul_topic) - 1); /* the NUL kept, escaped */
    assert_memory_equal(json_string_value(json_object_get(r, "topic")), nul_topic, tl);
    r = json_array_get(all, 1);
    assert_string_equal(json_string_value(json_object_get(r, "clientid")), ctl_cid);
    assert_null(json_object_get(r, "lossy"));
    r = json_array_get(all, 2);
    assert_true(json_is_true(json_object_get(r, "lossy")));
    r = json_array_get(all, 3);
    assert_int_equal(json_string_length(json_object_get(r, "topic")), big);
    r = json_array_get(all, 4);
    assert_null(json_object_get(r, "username"));
    assert_string_equal(json_string_value(json_object_get(r, "rule")), "default");
    r = json_array_get(all, 5);
    assert_string_equal(json_string_value(json_object_get(r, "clientid")), long_cid);
    json_decref(all);
    free(huge);
    FILE *f = fopen(audit, "r");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_null(memmem(buf, n, "alicepw", 7));
}

/* With audit_sample between 0 and 1, the rate is on sampled allows only:
 * a deny is always written and carries none (the CLI refuses one). */
static void test_sample_marks_allows_only(void **state)
{
    (void)state;
    svc_config cfg = config();
    snprintf(cfg.audit_log, sizeof(cfg.audit_log), "%s", audit);
    cfg.audit_sample = 0.5;
    svc *s = svc_new(&cfg);
    assert_non_null(s);
    assert_int_equal(svc_start(s, 0), 0);
    svc_conn *c = svc_conn_new(s);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(publish(c, "c1", 2, "alice", "alice/x", 7), SVC_ALLOW);
        assert_int_equal(publish(c, "c1", 2, "alice", "bob/x", 5), SVC_DENY);
    }
    /* a name of bad bytes only: one U+FFFD each */
    char bad[4096];
    memset(bad, 0xff, sizeof(bad));
    assert_int_equal(publish(c, bad, sizeof(bad), "alice", "bob/y", 5), SVC_DENY);
    svc_conn_free(c);
    svc_free(s);
    json_t *all = read_log(audit);
    size_t denies = 0, allows = 0;
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *r = json_array_get(all, i);
        const char *d = json_string_value(json_object_get(r, "decision"));
        if (!strcmp(d, "deny")) {
            denies++;
            assert_null(json_object_get(r, "sample"));
        } else {
            allows++;
            assert_true(json_real_value(json_object_get(r, "sample")) == 0.5);
        }
    }
    assert_int_equal(denies, 201);
    assert_true(allows > 40 && allows < 160); /* binomial(200, 0.5) */
    json_t *last = json_array_get(all, json_array_size(all) - 1);
    assert_int_equal(json_string_length(json_object_get(last, "clientid")), sizeof(bad) * 3);
    assert_true(json_is_true(json_object_get(last, "lossy")));
    json_decref(all);
}

/* The plugin's path for one client (logged in from 192.0.2.7 with groups)
 * publishing three times to topic under policy: the first check misses the
 * decision cache and is decided in full, the next two are kept.  Each must
 * answer want; the three ACL lines of the audit log must be the same bytes
 * after their "time" member (fixed width); returns the first, parsed. */
static json_t *three_kept(const char *policy, const char *topic, svc_answer want)
{
    svc_config cfg = config_for(SVC_FOR_PLUGIN);
    snprintf(cfg.audit_log, sizeof(cfg.audit_log), "%s", audit);
    snprintf(cfg.policy, sizeof(cfg.policy), "%s", policy);
    unlink(audit);
    svc *s = svc_new(&cfg);
    assert_non_null(s);
    assert_int_equal(svc_start(s, 0), 0);
    svc_conn *c = svc_conn_new(s);
    assert_non_null(c);
    const char key[8] = "conn-001"; /* the plugin's: a connection */
    exh_auth_request rq = {.username = "carol",
                           .username_len = 5,
                           .clientid = "dev-\x01\"7",
                           .clientid_len = 7,
                           .password = "carolpw",
                           .password_len = 7,
                           .check_password = true};
    assert_true(exh_addr_parse("192.0.2.7", 9, &rq.peerhost));
    uint64_t gen = svc_login_begin(s, key, 8, &rq);
    svc_grant g;
    assert_int_equal(svc_login_check(c, &rq, &g), SVC_ALLOW);
    svc_login_answered(s, c, &rq, &g, SVC_ALLOW, 0);
    svc_login_end(s, key, 8, &rq, gen, &g);
    for (int i = 0; i < 3; i++) {
        svc_probe q = {
            .username = "carol", .topic = topic, .action = EXH_PUBLISH, .qos = 1, .retain = 1};
        int hit = svc_authorize_cached(c, key, 8, &q);
        assert_int_equal(hit, i == 0 ? -1 : (int)want); /* then kept */
        if (hit >= 0) continue;
        exh_request r;
        exh_request_init(&r, EXH_PUBLISH);
        r.username = "carol";
        r.username_len = 5;
        r.clientid = rq.clientid;
        r.clientid_len = rq.clientid_len;
        r.topic = q.topic;
        r.topic_len = strlen(q.topic);
        r.qos = 1;
        r.retain = 1;
        assert_int_equal(svc_authorize_key(c, key, 8, &r, NULL), want);
    }
    svc_conn_free(c);
    svc_free(s);
    FILE *f = fopen(audit, "r");
    assert_non_null(f);
    char line[3][2048];
    int n = 0;
    while (n < 3 && fgets(line[n], sizeof(line[n]), f))
        if (strstr(line[n], "\"event\":\"acl\"")) n++;
    fclose(f);
    assert_int_equal(n, 3);
    size_t t = strlen("{\"time\":\"2026-12-03T07:09:43.123456Z\"");
    for (int i = 1; i < 3; i++)
        if (strcmp(line[0] + t, line[i] + t))
            fail_msg("a kept answer's record differs:\n%s%s", line[0], line[i]);
    json_error_t e;
    json_t *r = json_loads(line[0], 0, &e);
    assert_non_null(r);
    return r;
}

/* A deny the Mosquitto plugin's decision cache keeps is written without
 * deciding it again: every byte but the time is what the full path wrote
 * for the first one (groups, peer, rule, client id). */
static void test_kept_deny_record(void **state)
{
    (void)state;
    json_t *r = three_kept(pol, "carol/secret/a", SVC_DENY);
    char rule[160];
    snprintf(rule, sizeof(rule), "%s:2", pol);
    assert_string_equal(json_string_value(json_object_get(r, "decision")), "deny");
    assert_string_equal(json_string_value(json_object_get(r, "rule")), rule);
    assert_string_equal(json_string_value(json_object_get(r, "peer")), "192.0.2.7");
    assert_string_equal(json_string_value(json_object_get(r, "clientid")), "dev-\x01\"7");
    assert_string_equal(json_string_value(json_object_get(r, "front")), "mosquitto");
    json_t *gs = json_object_get(r, "groups");
    assert_int_equal(json_array_size(gs), 2);
    const char *g0 = json_string_value(json_array_get(gs, 0));
    const char *g1 = json_string_value(json_array_get(gs, 1));
    assert_true((!strcmp(g0, "odd\"group") && !strcmp(g1, "sensors")) ||
                (!strcmp(g1, "odd\"group") && !strcmp(g0, "sensors")));
    assert_true(json_is_true(json_object_get(r, "retain")));
    assert_int_equal(json_integer_value(json_object_get(r, "qos")), 1);
    json_decref(r);
}

/* Under `default ignore` the kept answer is an ignore, logged as such. */
static void test_kept_ignore_record(void **state)
{
    (void)state;
    char ign[160];
    snprintf(ign, sizeof(ign), "%s/ignore.policy", dir);
    FILE *f = fopen(ign, "w");
    assert_non_null(f);
    fputs("default ignore\n", f);
    fclose(f);
    json_t *r = three_kept(ign, "carol/x", SVC_IGNORE);
    assert_string_equal(json_string_value(json_object_get(r, "decision")), "ignore");
    assert_string_equal(json_string_value(json_object_get(r, "rule")), "default");
    json_decref(r);
}

/* Nothing drains the queue (no writer thread): it fills, then drops and
 * counts; every decision is still answered. */
static void test_ring_full(void **state)
{
    (void)state;
    svc_config cfg = config();
    snprintf(cfg.audit_log, sizeof(cfg.audit_log), "%s", audit);
    snprintf(cfg.metrics_listen, sizeof(cfg.metrics_listen), "127.0.0.1:0");
    cfg.audit_queue = 64 << 10;
    svc *s = svc_new(&cfg); /* not started: no writer, no listener */
    assert_non_null(s);
    svc_conn *c = svc_conn_new(s);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(publish(c, "c1", 2, "alice", "bob/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 36),
                         SVC_DENY);
    char *text;
    long len = svc_metrics_render(s, &text);
    assert_true(len > 0);
    const char *d = strstr(text, "exhook_audit_records_dropped_total{event=\"acl\"} ");
    assert_non_null(d);
    long dropped = atol(d + strlen("exhook_audit_records_dropped_total{event=\"acl\"} "));
    /* 64 KiB holds some hundreds of ~200-byte records */
    assert_true(dropped > 1000 && dropped < 2000);
    const char *a =
        strstr(text, "exhook_acl_decisions_total{action=\"publish\",outcome=\"deny\"} ");
    assert_non_null(a);
    assert_int_equal(atol(strchr(a, '}') + 2), 2000);
    free(text);
    svc_conn_free(c);
    svc_free(s);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* A request, and the status code of the answer (0: none). */
static int http(int port, const char *req, size_t n, char *body, size_t cap)
{
    int fd = connect_to(port);
    if (fd < 0) return 0;
    if (write(fd, req, n) != (ssize_t)n) {
        close(fd);
        return 0;
    }
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < cap && (k = read(fd, body + got, cap - 1 - got)) > 0)
        got += (size_t)k;
    body[got] = '\0';
    close(fd);
    int code = 0;
    sscanf(body, "HTTP/1.%*d %d", &code);
    return code;
}

static void test_http_garbage(void **state)
{
    (void)state;
    svc_config cfg = config();
    int port = free_port();
    snprintf(cfg.metrics_listen, sizeof(cfg.metrics_listen), "127.0.0.1:%d", port);
    svc *s = svc_new(&cfg);
    assert_non_null(s);
    assert_int_equal(svc_start(s, 0), 0);
    svc_conn *c = svc_conn_new(s);
    for (int i = 0; i < 7; i++)
        publish(c, "c1", 2, "alice", i < 3 ? "alice/x" : "bob/x", i < 3 ? 7 : 5);
    static char body[1 << 20];
    static const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(http(port, get, sizeof(get) - 1, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "text/plain; version=0.0.4"));
    assert_non_null(
        strstr(body, "exhook_acl_decisions_total{action=\"publish\",outcome=\"allow\"} 3\n"));
    assert_non_null(
        strstr(body, "exhook_acl_decisions_total{action=\"publish\",outcome=\"deny\"} 4\n"));
    /* garbage: binary, a huge header, other paths and methods, a body */
    char junk[8192];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 131 + 7);
    http(port, junk, sizeof(junk), body, sizeof(body));
    char *hdr = malloc(200000);
    int hl = snprintf(hdr, 200000, "GET /metrics HTTP/1.1\r\nX: ");
    memset(hdr + hl, 'a', 190000);
    memcpy(hdr + hl + 190000, "\r\n\r\n", 4);
    http(port, hdr, (size_t)hl + 190004, body, sizeof(body));
    free(hdr);
    static const char nf[] = "GET /secrets HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_int_equal(http(port, nf, sizeof(nf) - 1, body, sizeof(body)), 404);
    static const char post[] =
        "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_int_equal(http(port, post, sizeof(post) - 1, body, sizeof(body)), 405);
    static const char half[] = "GET /metr";
    http(port, half, sizeof(half) - 1, body, sizeof(body));
    /* still serving */
    assert_int_equal(http(port, get, sizeof(get) - 1, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "exhook_policy_rules 2\n"));
    svc_conn_free(c);
    svc_free(s);
}

int main(void)
{
    svc_log_init("test_observe", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_marks_allows_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_deny_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_ignore_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_garbage, setup, teardown),
    };
    return cmocka_run_group_tests_name("metrics and the audit log", tests, NULL, NULL);
}
