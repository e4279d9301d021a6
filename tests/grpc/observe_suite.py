#!/usr/bin/python3
"""observe_suite -- exhook-grpc's metrics endpoint and decision audit log,
played against with a real gRPC client as grpc_suite.py does (it is
imported for its server, store and client helpers).

  metrics     under load from 4 client threads, every counter equals the
              decisions the suite made; every scrape passes the 0.0.4 format
              (tests/lib/promcheck.py: a line grammar, then Debian's
              python3-prometheus-client)
  audit       every deny and every login the suite made is in the log, with
              the deciding rule; no allow at audit_sample 0; no password
              anywhere in the file; the file is 0600
  rotation    SIGUSR1 after a move: later records go to a new file
  sample      audit_sample 0.5: about half the allows, each marked
  queue full  a log file that takes no writes (a FIFO never read): decisions
              are still answered at once, drops are counted in metrics and
              said in the server's log, and the log itself says how many
              when the file takes writes again

usage: observe_suite.py EXHOOK-GRPC EXHOOKCTL STUBS-DIR TMPDIR POLICY-FILE
"""
import json
import os
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'lib'))
import grpc_suite as g  # noqa: E402  (reads the same argv)
import promcheck  # noqa: E402
import grpc  # noqa: E402

TMP, POLICY = g.TMP, g.POLICY


def scrape(port, quiet=False):
    """The samples of one scrape; its format checked (one check) unless quiet."""
    r = subprocess.run(['curl', '-sS', '--max-time', '10', f'http://127.0.0.1:{port}/metrics'],
                       capture_output=True, text=True)
    if r.returncode != 0:
        if not quiet:
            g.bad('curl /metrics', r.stderr)
        return {}
    samples, errors = promcheck.check(r.stdout)
    if quiet:
        return samples
    if errors:
        g.bad('the scrape is valid 0.0.4 exposition', '; '.join(errors[:5]))
    else:
        g.ok('the scrape is valid 0.0.4 exposition')
    return samples


def acl(s, action, outcome):
    return s.get(f'exhook_acl_decisions_total{{action="{action}",outcome="{outcome}"}}')


def logins(s, outcome, reason):
    return s.get(f'exhook_logins_total{{outcome="{outcome}",reason="{reason}"}}')


def records(path):
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            out.append(json.loads(line))
    return out


def serve(name, *extra, policy=None):
    """A server with a metrics listener (srv.mport), and a v3 client on it."""
    mport = g.free_port()
    srv = g.Server(name, '--metrics-listen', f'127.0.0.1:{mport}', *extra, policy=policy).start()
    srv.mport = mport
    ch = grpc.insecure_channel(srv.addr)
    return srv, ch, g.Ver(3, ch)


# ---- metrics and audit under load ---------------------------------------------------

def t_load():
    g.section('metrics and audit under load')
    audit = os.path.join(TMP, 'audit.jsonl')
    # its own copy of the policy, which the reload check breaks and mends
    os.makedirs(os.path.join(TMP, 'observe-pol'), exist_ok=True)
    pol = os.path.join(TMP, 'observe-pol', 'suite.policy')
    with open(POLICY) as f:
        text = f.read()
    with open(pol, 'w') as f:
        f.write(text)
    srv, ch, v = serve('observe', '--audit-log', audit, policy=pol)
    before = scrape(srv.mport)
    g.check('counters start at 0', acl(before, 'publish', 'allow'), 0)
    # logins: one of each outcome
    g.check('alice logs in', v.authn(clientid='c-alice', username='alice', password=g.PW['alice']),
            'allow')
    g.check('wrong password', v.authn(clientid='c-bad', username='alice', password='guess-1234'),
            'deny')
    g.check('unknown user', v.authn(clientid='c-nobody', username='nobody', password='nobody-pw'),
            'deny')
    g.check('disabled user', v.authn(clientid='c-dave', username='dave', password=g.PW['dave']),
            'deny')
    # ACL checks from 4 threads: each makes the same mix
    N = 150
    mix = [('publish', 'users/alice/t', 'allow'),     # allow pubsub users/${username}/#
           ('publish', 'users/bob/t', 'deny'),        # default deny
           ('subscribe', '#', 'deny'),                # deny subscribe topic eq "#"
           ('publish', 'bad/+/topic', 'deny')]        # invalid: a wildcard in a topic name
    wrong = []

    def worker(k):
        for i in range(N):
            for action, topic, want in mix:
                got = v.authz(action, topic, clientid='c-alice', username='alice')
                if got != want:
                    wrong.append((action, topic, got, want))
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    g.check('every answer under load as the policy says', wrong[:3], [])
    s = scrape(srv.mport)
    g.check('publish allows counted', acl(s, 'publish', 'allow'), 4 * N)
    g.check('publish denies counted', acl(s, 'publish', 'deny'), 4 * N)
    g.check('invalid topics counted apart', acl(s, 'publish', 'invalid'), 4 * N)
    g.check('subscribe denies counted', acl(s, 'subscribe', 'deny'), 4 * N)
    g.check('no ignore', acl(s, 'subscribe', 'ignore'), 0)
    n = s.get('exhook_acl_latency_seconds_count{}', -1)
    if 0 < n <= 16 * N:
        g.ok('ACL latency timed on a sample')
    else:
        g.bad('ACL latency timed on a sample', f'count {n} of {16 * N} decisions')
    g.check('login ok', logins(s, 'allow', 'ok'), 1)
    g.check('login wrong password', logins(s, 'deny', 'wrong password'), 1)
    g.check('login unknown user', logins(s, 'deny', 'unknown user'), 1)
    g.check('login disabled', logins(s, 'deny', 'disabled'), 1)
    g.check('login latency observed for each', s.get('exhook_login_latency_seconds_count{}'), 4)
    # (a disabled user is refused before any password work)
    g.check('hashes: alice, the wrong guess, the unknown name (dummy)',
            s.get('exhook_password_hashes_total{}'), 3)
    g.check('rule count', s.get('exhook_policy_rules{}'), 7)
    g.check('generation 1', s.get('exhook_policy_generation{}'), 1)
    g.check('worker queue empty', s.get('exhook_worker_queue_depth{}'), 0)
    # a reload that fails (the old policy kept), then one that works: the
    # file's change and the SIGHUP may each reload, so each is at least one
    with open(pol, 'w') as f:
        f.write(text + 'allow publsh topic "x"\n')
    srv.send(1)  # SIGHUP
    g.poll(lambda: scrape(srv.mport, quiet=True).get('exhook_policy_reloads_total{result="failed"}', 0) >= 1)
    g.check('a failed reload changes no generation',
            scrape(srv.mport, quiet=True).get('exhook_policy_generation{}'), 1)
    with open(pol, 'w') as f:
        f.write(text)
    srv.send(1)
    g.poll(lambda: scrape(srv.mport, quiet=True).get('exhook_policy_reloads_total{result="ok"}', 0) >= 1)
    time.sleep(0.5)  # (a second reload, from the file's change, may follow)
    s = scrape(srv.mport)
    ok_n = s.get('exhook_policy_reloads_total{result="ok"}', 0)
    g.check('failed reloads counted', s.get('exhook_policy_reloads_total{result="failed"}', 0) >= 1, True)
    g.check('reloads counted', ok_n >= 1, True)
    g.check('the generation moves by each good reload', s.get('exhook_policy_generation{}'), 1 + ok_n)
    # the audit log holds every deny and login, and nothing secret
    total_denies = 3 * 4 * N
    written = g.poll(lambda: scrape(srv.mport, quiet=True).get('exhook_audit_records_written_total{}')
                     == total_denies + 4, timeout=10)
    g.check('audit records written = denies + logins', bool(written), True)
    ch.close()
    srv.stop_checked()
    recs = records(audit)
    acls = [r for r in recs if r['event'] == 'acl']
    logs = [r for r in recs if r['event'] == 'login']
    g.check('every deny in the audit log', len(acls), total_denies)
    g.check('no allow at audit_sample 0', [r for r in acls if r['decision'] != 'deny'], [])
    by_topic = {}
    for r in acls:
        by_topic.setdefault((r['action'], r['topic'], r['rule'].rsplit('/', 1)[-1]), 0)
        by_topic[(r['action'], r['topic'], r['rule'].rsplit('/', 1)[-1])] += 1
    g.check('each deny with its rule', by_topic,
            {('publish', 'users/bob/t', 'default'): 4 * N,
             ('subscribe', '#', 'suite.policy:10'): 4 * N,
             ('publish', 'bad/+/topic', 'invalid'): 4 * N})
    inv = [r for r in acls if r['rule'] == 'invalid']
    g.check('an invalid request says why', bool(inv and inv[0].get('reason')), True)
    r0 = acls[0]
    g.check('a record names the client', (r0['front'], r0['clientid'], r0['username'], r0['peer'],
                                          r0['gen']), ('grpc', 'c-alice', 'alice', '127.0.0.1', 1))
    g.check('QoS and retain unknown on EMQX: left out', ('qos' in r0, 'retain' in r0),
            (False, False))
    g.check('times are RFC 3339 UTC with microseconds',
            all(len(r['time']) == 27 and r['time'].endswith('Z') and r['time'][19] == '.'
                for r in recs), True)
    g.check('the logins with their reasons',
            sorted((r['clientid'], r['decision'], r['reason']) for r in logs),
            [('c-alice', 'allow', 'ok'), ('c-bad', 'deny', 'wrong password'),
             ('c-dave', 'deny', 'disabled'), ('c-nobody', 'deny', 'unknown user')])
    raw = open(audit, 'rb').read()
    leaked = [p for p in list(g.PW.values()) + ['guess-1234', 'nobody-pw'] if p.encode() in raw]
    g.check('no password anywhere in the audit log', leaked, [])
    g.check('the audit log is 0600', stat.S_IMODE(os.stat(audit).st_mode), 0o600)
    t_replay(audit, pol)


def t_replay(audit, pol):
    """exhookctl replay over the log the server just wrote."""
    same = subprocess.run([g.CTL, 'replay', '--log', audit, '--policy', pol],
                          capture_output=True, text=True, timeout=60)
    g.check('replay under the same policy: nothing changes (exit 0)', same.returncode, 0)
    # A candidate that lets anyone publish to users/bob/: alice's logged
    # denies there become allows.
    cand = os.path.join(TMP, 'candidate.policy')
    with open(pol) as f:
        text = f.read()
    with open(cand, 'w') as f:
        f.write(text.replace('default deny\n', 'default deny\nallow publish topic "users/+/t"\n', 1))
    r = subprocess.run([g.CTL, 'replay', '--log', audit, '--policy', cand, '--json'],
                       capture_output=True, text=True, timeout=60)
    g.check('replay under a candidate that opens users/bob/t: exit 1', r.returncode, 1)
    groups = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    opened = [x for x in groups if x.get('type') == 'group' and x.get('old_decision') == 'deny'
              and x.get('new_decision') == 'allow']
    g.check('... every logged deny on users/bob/t becomes an allow',
            sum(x.get('count', 0) for x in opened), 600)


# ---- rotation -----------------------------------------------------------------------

def t_rotation():
    g.section('rotation')
    audit = os.path.join(TMP, 'rot.jsonl')
    srv, ch, v = serve('rotation', '--audit-log', audit)
    v.authz('publish', 'before/rotation', clientid='r1', username='alice')
    g.poll(lambda: os.path.exists(audit) and b'before/rotation' in open(audit, 'rb').read())
    os.rename(audit, audit + '.1')
    srv.send(10)  # SIGUSR1
    time.sleep(0.3)  # (less than the writer's own 1 s look at the path)
    v.authz('publish', 'after/rotation', clientid='r1', username='alice')
    got = g.poll(lambda: os.path.exists(audit) and b'after/rotation' in open(audit, 'rb').read())
    g.check('after SIGUSR1 records go to a new file', bool(got), True)
    old = open(audit + '.1', 'rb').read()
    g.check('the moved file keeps the earlier ones only',
            (b'before/rotation' in old, b'after/rotation' in old), (True, False))
    ch.close()
    srv.stop_checked()


# ---- sampling -----------------------------------------------------------------------

def t_sample():
    g.section('sample')
    audit = os.path.join(TMP, 'sample.jsonl')
    srv, ch, v = serve('sample', '--audit-log', audit, '--audit-sample', '0.5')
    N = 400
    for i in range(N):
        v.authz('publish', f'users/alice/{i}', clientid='s1', username='alice')
    ch.close()
    srv.stop_checked()
    recs = [r for r in records(audit) if r['event'] == 'acl']
    # binomial(400, 0.5): outside 140..260 once in ~10^9 runs
    if 140 <= len(recs) <= 260:
        g.ok(f'about half the allows written ({len(recs)} of {N})')
    else:
        g.bad('about half the allows written', f'{len(recs)} of {N}')
    g.check('each marked with the rate', {r.get('sample') for r in recs}, {0.5})


# ---- queue full ---------------------------------------------------------------------

def t_queue_full():
    g.section('queue full')
    fifo = os.path.join(TMP, 'audit.fifo')
    os.mkfifo(fifo, 0o600)
    # Held open for reading, never read: the server's writes fill the pipe
    # (64 KiB) and then block.
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    srv, ch, v = serve('queuefull', '--audit-log', fifo, '--audit-queue-kib', '64')
    N = 3000
    slow = 0
    for i in range(N):
        t0 = time.monotonic()
        got = v.authz('publish', f'users/bob/{i:06d}/' + 'x' * 200, clientid='q1', username='alice')
        if got != 'deny' or time.monotonic() - t0 > 1.0:
            slow += 1
    g.check('every deny answered at once while the log is stuck', slow, 0)
    s = scrape(srv.mport)
    dropped = s.get('exhook_audit_records_dropped_total{event="acl"}', 0)
    if dropped > 0:
        g.ok(f'drops counted ({int(dropped)} of {N})')
    else:
        g.bad('drops counted', f'{dropped}')
    said = g.poll(lambda: 'queue full' in srv.log(since_start=True), timeout=15)
    g.check('the drops are said in the server log', bool(said), True)
    # Now drain the pipe: the writer catches up and writes a "dropped" record.
    data = bytearray()
    os.set_blocking(rfd, True)
    done = threading.Event()

    def drain():
        while True:
            b = os.read(rfd, 1 << 16)
            if not b:
                break
            data.extend(b)
        done.set()
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    g.poll(lambda: scrape(srv.mport, quiet=True).get('exhook_audit_records_written_total{}', 0)
           + dropped >= N, timeout=20)
    ch.close()
    srv.stop_checked()
    done.wait(10)
    os.close(rfd)
    recs = [json.loads(line) for line in data.decode('utf-8').splitlines()]
    drops = [r for r in recs if r['event'] == 'dropped']
    acls = [r for r in recs if r['event'] == 'acl']
    g.check('the log says how many were dropped', sum(r['acl'] for r in drops), int(dropped))
    g.check('written + dropped = every deny', len(acls) + int(dropped), N)


def main():
    t0 = time.monotonic()
    try:
        g.setup_store()
        t_load()
        t_rotation()
        t_sample()
        t_queue_full()
    except Exception:
        import traceback
        g.bad('the suite ran to its end', traceback.format_exc())
    finally:
        for s in g.servers:
            if s.proc and s.proc.poll() is None:
                g.note(f'{s.name} still running at the end: killed')
                s.stop(9)
    g.note(f'{time.monotonic() - t0:.1f} s')
    print(f'{g.passed} passed, {g.failed} failed', flush=True)
    sys.exit(1 if g.failed else 0)


if __name__ == '__main__':
    main()
