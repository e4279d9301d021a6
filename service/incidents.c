/*
 * incidents.c -- store faults, reported once when they start and once when
 * they clear: a broker asking thousands of times a second must not flood
 * the log with one line per denied call.
 *
 * A transition and its log line happen under one lock, so the log never
 * ends on the wrong state ("available again" printed before the
 * "unavailable" it answers).  Checked without the lock first: the common
 * case, nothing changing, stays lock-free.
 */
#include "log.h"
#include "service_int.h"

void svc_store_failed(svc *s, const exh_error *err)
{
    if (atomic_load(&s->read_incident.active)) return;
    pthread_mutex_lock(&s->incident_lock);
    if (!atomic_exchange(&s->read_incident.active, 1)) {
        atomic_fetch_add(&s->metrics.incidents_read, 1);
        svc_log_error(LOG_ERROR,
                      s->cfg.failed_ignore
                          ? "credential store unavailable (answering ok: failed_action = ignore)"
                          : "credential store unavailable (failing closed)",
                      err);
    }
    pthread_mutex_unlock(&s->incident_lock);
}

void svc_store_ok(svc *s)
{
    if (!atomic_load(&s->read_incident.active)) return;
    pthread_mutex_lock(&s->incident_lock);
    if (atomic_exchange(&s->read_incident.active, 0))
        svc_log(LOG_INFO, "credential store available again");
    pthread_mutex_unlock(&s->incident_lock);
}

static bool history_incident_begun(svc *s)
{
    atomic_fetch_add(&s->metrics.incidents_history, 1);
    return true;
}

void svc_history_failed(svc *s, const exh_error *err, size_t lost)
{
    atomic_fetch_add(&s->history_incident.dropped, (long)lost);
    atomic_fetch_add(&s->metrics.history_dropped, lost);
    if (atomic_load(&s->history_incident.active)) return;
    pthread_mutex_lock(&s->incident_lock);
    if (!atomic_exchange(&s->history_incident.active, 1) && history_incident_begun(s))
        svc_log_error(LOG_ERROR,
                      "session history not written (events are dropped until the store "
                      "accepts writes again)",
                      err);
    pthread_mutex_unlock(&s->incident_lock);
}

void svc_history_overflow(svc *s, int max_events, int max_mib)
{
    atomic_fetch_add(&s->history_incident.dropped, 1);
    atomic_fetch_add(&s->metrics.history_dropped, 1);
    if (atomic_load(&s->history_incident.active)) return;
    pthread_mutex_lock(&s->incident_lock);
    if (!atomic_exchange(&s->history_incident.active, 1) && history_incident_begun(s))
        svc_log(LOG_ERROR,
                "session history not written: the queue for the store is full (%d events or "
                "%d MiB; the store is too slow or locked); new events are dropped until it "
                "catches up",
                max_events, max_mib);
    pthread_mutex_unlock(&s->incident_lock);
}

void svc_history_ok(svc *s)
{
    if (!atomic_load(&s->history_incident.active)) return;
    pthread_mutex_lock(&s->incident_lock);
    if (atomic_exchange(&s->history_incident.active, 0))
        svc_log(LOG_INFO, "session history written again (%ld events were dropped)",
                atomic_exchange(&s->history_incident.dropped, 0));
    pthread_mutex_unlock(&s->incident_lock);
}

void svc_lockout_write_failed(svc *s, const exh_error *err)
{
    if (atomic_load(&s->lockout_incident.active)) return;
    pthread_mutex_lock(&s->incident_lock);
    if (!atomic_exchange(&s->lockout_incident.active, 1)) {
        atomic_fetch_add(&s->metrics.incidents_lockout, 1);
        svc_log_error(LOG_ERROR,
                      "lock-out counts not written (logins are still checked and answered, but "
                      "failed logins are not counted until the store takes writes again)",
                      err);
    }
    pthread_mutex_unlock(&s->incident_lock);
}

void svc_lockout_write_ok(svc *s)
{
    if (!atomic_load(&s->lockout_incident.active)) return;
    pthread_mutex_lock(&s->incident_lock);
    if (atomic_exchange(&s->lockout_incident.active, 0))
        svc_log(LOG_INFO, "lock-out counts written again");
    pthread_mutex_unlock(&s->incident_lock);
}
