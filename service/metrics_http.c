/*
 * metrics_http.c -- GET /metrics over HTTP with libmicrohttpd, on a thread
 * of its own (MHD's internal polling thread): a scrape never runs on a
 * thread that answers the broker.  Anything else gets 404 (another path)
 * or 405 (another method).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "service_int.h"

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    svc *s = cls;
    if (*upload_data_size) { /* a body nobody asked for: read and dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
    if (strcmp(url, "/metrics")) return reply(conn, MHD_HTTP_NOT_FOUND, "see /metrics\n");
    char *text;
    long n = svc_metrics_render(s, &text);
    if (n < 0) return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    atomic_fetch_add(&s->metrics.http_scrapes, 1);
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* "HOST:PORT" or "[V6]:PORT" into its parts; false when malformed. */
static bool split_host_port(const char *hp, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon;
    const char *h = hp;
    size_t hl;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        if (!end || end[1] != ':') return false;
        h = hp + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon) return false;
        hl = (size_t)(colon - hp);
    }
    if (!hl || hl >= hcap || strlen(colon + 1) == 0 || strlen(colon + 1) >= pcap) return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, pcap, "%s", colon + 1);
    return true;
}

int svc_metrics_listen(svc *s, const char *hp)
{
    char host[256], port[16];
    if (!split_host_port(hp, host, sizeof(host), port, sizeof(port))) {
        svc_log(LOG_ERROR, "metrics_listen: '%s' is not HOST:PORT", hp);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int e = getaddrinfo(host, port, &hints, &ai);
    if (e) {
        svc_log(LOG_ERROR, "metrics_listen %s: %s", hp, gai_strerror(e));
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    /* A few scrapers at once is plenty; a slow or stuck one is cut off. */
    s->metrics_daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)10, MHD_OPTION_END);
    int saved = errno;
    freeaddrinfo(ai);
    if (!s->metrics_daemon) {
        svc_log(LOG_ERROR, "cannot serve metrics on %s: %s", hp,
                saved ? strerror(saved) : "libmicrohttpd refused");
        return -1;
    }
    svc_log(LOG_INFO, "metrics on http://%s/metrics", hp);
    return 0;
}

void svc_metrics_stop(svc *s)
{
    if (s->metrics_daemon) MHD_stop_daemon(s->metrics_daemon);
    s->metrics_daemon = NULL;
}
