/*
 * service.c -- the service's context and how a front end starts it
 * (service.h).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "log.h"
#include "service_int.h"

static int start_threads(svc *s, unsigned threads);

svc *svc_new(const svc_config *cfg)
{
    svc *s = calloc(1, sizeof(*s));
    if (!s) {
        svc_log(LOG_ERROR, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->per_connection = cfg->kind == SVC_FOR_PLUGIN;
    pthread_mutex_init(&s->incident_lock, NULL);
    svc_metrics_init(&s->metrics, cfg->metrics_listen[0] != '\0');
    exh_error err;
    /* The plugin's service runs on the broker's one thread and starts none:
     * its tables take no locks. */
    bool one_thread = cfg->kind == SVC_FOR_PLUGIN;
    exh_status st = svc_live_policy_new(cfg->policy, one_thread, &s->policy, &err);
    if (st != EXH_OK) {
        if (st == EXH_ENOMEM)
            svc_log(LOG_ERROR, "cannot load the policy: out of memory");
        else
            svc_log_error(LOG_ERROR, "cannot load the policy", &err);
        svc_free(s);
        return NULL;
    }
    /* The decision cache is written under the client table's read lock:
     * only a front end with one thread may have it (config.c refuses it
     * elsewhere). */
    if (!(s->cache = exh_auth_cache_new(cfg->cache_ttl, cfg->cache_max)) ||
        !(s->clients =
              svc_clients_new(s->per_connection, one_thread, one_thread && cfg->decision_cache)) ||
        !(s->history = svc_history_new()) ||
        !(s->watch = svc_watch_new(exh_store_location_is_pg(cfg->db)))) {
        svc_log(LOG_ERROR, "out of memory");
        svc_free(s);
        return NULL;
    }
    static const char *const fronts[] = {"", "driver", "grpc", "mosquitto"};
    if (svc_audit_new(s, fronts[cfg->kind >= 1 && cfg->kind <= 3 ? cfg->kind : 0], &s->audit) < 0) {
        svc_free(s);
        return NULL;
    }
    s->audit_samples = svc_audit_samples(s->audit);
    s->log_kept = s->audit ? svc_authorize_log_kept : NULL;
    return s;
}

int svc_start(svc *s, unsigned threads)
{
    /* In a broker's process (the plugin) no thread of ours may take a
     * signal meant for the broker's own handlers: they start with all
     * blocked. */
    sigset_t all, old;
    bool guest = s->cfg.kind == SVC_FOR_PLUGIN;
    if (guest) {
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
    }
    int rc = start_threads(s, threads);
    if (guest) pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static int start_threads(svc *s, unsigned threads)
{
    if ((threads & SVC_THREAD_RELOAD) && svc_live_policy_watch(s->policy) < 0) return -1;
    if ((threads & SVC_THREAD_HISTORY) && svc_history_start(s) < 0) return -1;
    if ((threads & SVC_THREAD_WATCH) && svc_watch_start(s) < 0) return -1;
    if (s->audit && svc_audit_start(s) < 0) return -1;
    if (s->cfg.metrics_listen[0] && svc_metrics_listen(s, s->cfg.metrics_listen) < 0) return -1;
    return 0;
}

void svc_free(svc *s)
{
    if (!s) return;
    svc_metrics_stop(s); /* a scrape reads everything below */
    svc_watch_free(s);   /* its thread walks the client table: first */
    if (s->history) svc_history_free(s);
    svc_live_policy_free(s->policy);
    exh_auth_cache_free(s->cache);
    svc_clients_free(s->clients);
    svc_audit_free(s); /* after the history: a stopping front end's last logins are in it */
    svc_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->incident_lock);
    free(s);
}

const svc_config *svc_settings(const svc *s)
{
    return &s->cfg;
}

void svc_reopen_logs(svc *s)
{
    svc_audit_reopen(s->audit);
}

void svc_set_queue_depth(svc *s, size_t (*fn)(void))
{
    atomic_store(&s->metrics.queue_depth, fn);
}

svc_live_policy *svc_live(svc *s)
{
    return s->policy;
}

svc_clients *svc_client_table(svc *s)
{
    return s->clients;
}

/* Settings that can let a client in that the policy refuses: said at
 * start-up, where an operator looks. */
static void say_risks(svc *s)
{
    svc_policy *hp = svc_policy_get(s->policy);
    const char *risks[8];
    int nrisks = svc_config_risks(&s->cfg, svc_policy_of(hp), risks, 8);
    svc_policy_put(hp);
    for (int i = 0; i < nrisks; i++)
        svc_log(LOG_WARN, "%s", risks[i]);
}

int svc_run_start(const svc_config *cfg_in, const int *also, int nalso, svc **out)
{
    *out = NULL;
    svc_config cfg = *cfg_in;
    /* A call must be answered before the broker's timeout (deadline.h):
     * waiting for a locked store longer than half the time a call has
     * would push answers past it, so the wait is capped. */
    int budget = cfg.call_timeout_ms - svc_deadline_margin_ms(cfg.call_timeout_ms);
    if (cfg.busy_timeout_ms > budget / 2) {
        svc_log(LOG_INFO,
                "busy_timeout %d ms lowered to %d ms: half of what a call has before the "
                "broker's call_timeout of %d ms (less a %d ms margin)",
                cfg.busy_timeout_ms, budget / 2, cfg.call_timeout_ms,
                svc_deadline_margin_ms(cfg.call_timeout_ms));
        cfg.busy_timeout_ms = budget / 2;
    }
    svc *s = svc_new(&cfg);
    if (!s) return 2;
    /* Blocked before any thread starts, so all inherit the mask: SIGHUP is
     * read by the reload thread through a signalfd. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    /* SIGUSR1 reopens the audit log (logrotate), read by its writer; it
     * is blocked whether or not there is one: its default would end the
     * process. */
    sigaddset(&set, SIGUSR1);
    for (int i = 0; i < nalso; i++)
        sigaddset(&set, also[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    say_risks(s);
    if (svc_start(s, SVC_THREAD_HISTORY | SVC_THREAD_RELOAD | SVC_THREAD_WATCH) < 0 ||
        svc_deadline_start(cfg.call_timeout_ms) < 0) {
        svc_free(s);
        return 1;
    }
    *out = s;
    return -1;
}

void svc_run_stop(svc *s)
{
    svc_deadline_stop();
    svc_free(s);
}
