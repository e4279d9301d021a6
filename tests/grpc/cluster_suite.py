"""cluster_suite.py -- two exhook-grpc servers (two EMQX nodes' front ends)
on one PostgreSQL store, played against by a real gRPC client.

Usage (tests/cluster_test.sh): cluster_suite.py GRPC CTL STUBS TMP POLICY
with EXH_TEST_PG_URI naming the database and PGPASSFILE its password.

A user added through exhookctl is accepted by both; a user disabled,
deleted or taken out of a group with exhookctl loses its rights on both
nodes within one second (the store's change notices, service/watch.c);
a listener the server lost is reopened by itself and catches up;
sessions from both nodes land in one history, each with its node.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

import grpc_suite as G  # the same bookkeeping, server and wire helpers

URI = os.environ.get('EXH_TEST_PG_URI', '')
PW = {u: f'{u}-pw-{os.getpid()}' for u in ('alice', 'bob', 'carol')}
WITHIN = 1.0  # s: the bound for a change to hold on every node


def ctl(*args, stdin=None):
    r = G.ctl(*args, stdin=stdin)
    if r.returncode != 0:
        raise RuntimeError(f'exhookctl {" ".join(args)}: {r.stderr}')
    return r


def psql(sql):
    return subprocess.run(['psql', '-X', '-q', '-t', '-A', '-d', URI, '-c', sql],
                          capture_output=True, text=True, timeout=30)


def chan(server):
    """A channel to server, connected: a call on a channel still
    connecting can fail with UNAVAILABLE on a loaded machine."""
    ch = G.grpc.insecure_channel(server.addr, options=G.CHANNEL_OPTS)
    G.grpc.channel_ready_future(ch).result(timeout=30)
    return ch


def until(fn, timeout):
    """Seconds until fn() is true (polled every 10 ms), or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if fn():
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def on_both(nodes, what, want, timeout=WITHIN, slack=0.0):
    """Every node's answer to what(name, ver) becomes want within timeout."""
    took = until(lambda: all(what(n, v) == want for n, v in nodes.items()), timeout + slack)
    if took is not None and took <= timeout:
        G.ok(f'{want} on both nodes after {took * 1000:.0f} ms')
    else:
        got = {n: what(n, v) for n, v in nodes.items()}
        G.bad(f'{want} on both nodes within {timeout:.1f} s', f'after {took} s: {got}')


def t_mosquitto(nodes):
    """A real Mosquitto with the plugin on the same store, beside the gRPC
    nodes: a user added with exhookctl connects through it; disabled, its
    connection is kicked by the broker within a second (the plugin's tick
    reads the change notices) and its reconnect refused, while the gRPC
    nodes deny it too; its sessions land in the one history, named by
    plugin_opt_node."""
    G.section('a Mosquitto broker on the same store')
    plugin = os.path.join(os.path.dirname(G.CTL), 'exhook_mosquitto.so')
    ctl('add-user', 'mq', '--password-stdin', stdin='mq-pw\n')
    port = G.free_port()
    conf = os.path.join(G.TMP, 'mosquitto.conf')
    log_path = os.path.join(G.TMP, 'mosquitto.log')
    with open(conf, 'w') as f:
        f.write(f'user {os.environ.get("USER") or "root"}\nlistener {port} 127.0.0.1\n'
                f'persistence false\nlog_dest stderr\nlog_type all\nplugin {plugin}\n'
                f'plugin_opt_database {URI}\nplugin_opt_policy {G.POLICY}\n'
                f'plugin_opt_node mqtt-1\n')
    env = dict(G.SERVER_ENV)
    if os.environ.get('EXH_TEST_BROKER_PRELOAD'):
        # A broker with the ASan runtime preloaded deadlocks inside libpq's
        # first connect (glibc's _nl_state_lock taken again in
        # bindtextdomain under PQconnectPoll; gdb backtrace, 2026-12-02):
        # this section runs in the ordinary build's stage only.
        G.note('the Mosquitto section is not run with an AddressSanitizer plugin '
               '(libpq deadlocks in an ASan-preloaded broker); the ordinary build runs it')
        return
    log = open(log_path, 'wb')
    broker = subprocess.Popen(['mosquitto', '-c', conf], stdout=log, stderr=log, env=env)
    try:
        up = G.poll(lambda: b'running' in open(log_path, 'rb').read() or broker.poll() is not None,
                    timeout=20)
        if not up or broker.poll() is not None:
            G.bad('the broker started', open(log_path, 'rb').read().decode()[-1500:])
            return
        G.ok('the broker started with the plugin on the PostgreSQL store')
        sub = subprocess.Popen(['mosquitto_sub', '-p', str(port), '-u', 'mq', '-P', 'mq-pw',
                                '-i', 'mq-sub', '-t', 'users/mq/#', '-q', '1'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pub = lambda: subprocess.run(['mosquitto_pub', '-p', str(port), '-u', 'mq', '-P', 'mq-pw',
                                      '-i', 'mq-pub', '-t', 'users/mq/x', '-m', 'hello', '-q', '1'],
                                     capture_output=True, text=True, timeout=20)
        G.check('mq publishes through it', G.poll(lambda: pub().returncode == 0, timeout=5), True)
        G.check('... and its subscriber connected (the plugin recorded it online)',
                G.poll(lambda: any(e.get('clientid') == 'mq-sub' and e.get('node') == 'mqtt-1'
                                   for e in json.loads(G.ctl('sessions', '--json').stdout or '[]')),
                       timeout=5), True)
        grpc_a = nodes['a']
        G.check('node a lets mq log in too', grpc_a.authn(clientid='mq-a', username='mq',
                                                         password='mq-pw'), 'allow')
        ctl('set-user', 'mq', '--disabled', 'true')
        # The plugin says it, then kicks (mosquitto_sub itself exits only
        # after its reconnect, a second later, is refused).
        kicked = 'client mq-sub disconnected: its user changed'
        took = until(lambda: kicked in open(log_path, 'rb').read().decode('utf-8', 'replace'), 3.0)
        G.check(f'disabled: the plugin drops mq\'s subscriber within a second '
                f'({"never" if took is None else f"{took * 1000:.0f} ms"})',
                took is not None and took <= WITHIN, True)
        G.check('the subscriber is gone', until(lambda: sub.poll() is not None, 5.0) is not None,
                True)
        G.check('mq\'s reconnect is refused', pub().returncode != 0, True)
        G.check('node a denies mq\'s connection too',
                until(lambda: grpc_a.authz('publish', 'users/mq/x', username='mq',
                                           clientid='mq-a') == 'deny', WITHIN) is not None, True)
        if sub.poll() is None:
            sub.kill()
        sub.wait()
    finally:
        broker.terminate()
        try:
            broker.wait(20)
        except subprocess.TimeoutExpired:
            broker.kill()
        log.close()
    text = open(log_path, 'rb').read().decode('utf-8', 'replace')
    m = G.re.search(r'Sanitizer|runtime error:', text)
    G.check('no sanitizer report in the broker\'s log', m is None, True)


def pgctl(what):
    r = subprocess.run([os.environ['EXH_TEST_PGCTL'], what], capture_output=True, text=True,
                       timeout=60)
    G.check(f'the PostgreSQL server {what}s', r.returncode, 0)


def timed(fn):
    t0 = time.monotonic()
    v = fn()
    return v, time.monotonic() - t0


def t_faults(nodes, srv):
    """The server killed under load, restarted, a table locked longer than
    busy_timeout, a wrong password in the URI, a host that never answers:
    every login fails closed within busy_timeout, the servers keep serving,
    each incident is said once when it starts and once when it ends, and
    recovery needs no restart."""
    ctl('add-user', 'fred', '--password-stdin', '--group', 'ops', stdin='fred-pw\n')
    a = nodes['a']
    login = lambda cid='fred-a': a.authn(clientid=cid, username='fred', password='fred-pw')
    G.section('faults: the server killed under load')
    G.check('fred logs in on a', login(), 'allow')
    stop = []
    answers = []

    def load():  # logins and unseen-client lookups while the server dies
        i = 0
        while not stop:
            i += 1
            try:
                answers.append(a.authn(clientid=f'load-{i}', username='fred', password='fred-pw',
                                       timeout=20))
                answers.append(a.authz('subscribe', 'alerts/x', username='fred',
                                       clientid=f'unseen-{i}', timeout=20))
            except Exception as e:  # an error is not an answer
                answers.append(f'error {e}')
    th = threading.Thread(target=load)
    th.start()
    time.sleep(0.5)
    pgctl('stop')
    time.sleep(1.5)
    during = len(answers)
    v, took = timed(login)
    G.check('while it is down: a login with the right password is refused (fails closed)', v,
            'deny')
    G.check(f'... at once, not after a timeout ({took * 1000:.0f} ms)', took < 1.0, True)
    v, took = timed(lambda: a.authz('subscribe', 'alerts/x', username='fred', clientid='unseen-x'))
    G.check('an unseen client\'s lookup is refused', v, 'deny')
    G.check('fred\'s verified connection keeps its rights (no store needed)',
            a.authz('subscribe', 'alerts/x', username='fred', clientid='fred-a'), 'allow')
    pgctl('start')
    took = until(lambda: login() == 'allow', 10)
    G.check('back up: fred logs in again, no restart', took is not None, True)
    if took is not None:
        G.note(f'logins allowed again {took * 1000:.0f} ms after the server was up')
    stop.append(1)
    th.join(30)
    odd = [x for x in answers if x not in ('allow', 'deny')]
    G.check('under load: every call answered allow or deny, no errors', odd[:3], [])
    G.check('under load: calls were answered while it was down', len(answers) > during, True)
    log = srv['a'].log()
    G.check('said once that the store failed', log.count('credential store unavailable'), 1)
    G.check('said once that it is back', log.count('credential store available again'), 1)
    G.check('change notices resumed after the restart',
            G.poll(lambda: srv['a'].log().count('change notices from the store resumed') >= 2,
                   timeout=10), True)

    G.section('faults: a table locked longer than busy_timeout')
    slow = G.Server('node-c', '--busy-timeout', '500', db=URI).start()
    ch = chan(slow)
    c = G.Ver(3, ch)
    G.check('fred logs in on c', c.authn(clientid='fred-c', username='fred', password='fred-pw'),
            'allow')
    locker = subprocess.Popen(['psql', '-X', '-q', '-d', URI, '-c',
                               'BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; '
                               'SELECT pg_sleep(4); COMMIT;'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    held = lambda: psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname = 'users' AND l.mode = 'AccessExclusiveLock' "
                        "AND l.granted").stdout.strip() == '1'
    G.check('the lock is held', G.poll(held, timeout=10), True)
    v, took = timed(lambda: c.authn(clientid='fred-c2', username='fred', password='fred-pw'))
    G.check('a login while users is locked: refused', v, 'deny')
    G.check(f'... after busy_timeout, not the lock\'s 4 s ({took * 1000:.0f} ms)', took < 2.0, True)
    locker.wait(30)
    G.check('the lock gone: fred logs in',
            until(lambda: c.authn(clientid='fred-c3', username='fred', password='fred-pw')
                  == 'allow', 10) is not None, True)
    ch.close()
    slow.stop_checked()

    G.section('faults: a wrong password in the URI')
    wrong = URI.replace('postgresql://exhook@', 'postgresql://exhook:not-the-password@')
    w = G.Server('node-wrongpw', db=wrong, env={'PGPASSFILE': '/dev/null'}).start()
    ch = chan(w)
    wv = G.Ver(3, ch)
    G.check('it serves, and refuses fred', wv.authn(clientid='w', username='fred',
                                                   password='fred-pw'), 'deny')
    log = w.log()
    G.check('says the server refused the password', 'password authentication failed' in log, True)
    G.check('never shows the password', 'not-the-password' in log, False)
    ch.close()
    w.stop_checked()

    G.section('faults: a host that never answers')
    hole = socket.socket()
    hole.bind(('127.0.0.1', 0))
    hole.listen(0)  # accepts nothing: a connect hangs in the backlog, no server ever speaks
    dead = f'postgresql://exhook@127.0.0.1:{hole.getsockname()[1]}/exhook_test'
    d = G.Server('node-dead', '--busy-timeout', '1000', db=dead).start()
    ch = chan(d)
    dv = G.Ver(3, ch)
    v, took = timed(lambda: dv.authn(clientid='d1', username='fred', password='fred-pw'))
    G.check('a login: refused', v, 'deny')
    G.check(f'... within the 2 s given to a connection, and a margin ({took * 1000:.0f} ms)',
            took < 2.8, True)
    v, took = timed(lambda: dv.authn(clientid='d2', username='fred', password='fred-pw'))
    G.check(f'the next one at once, during the back-off ({took * 1000:.0f} ms)',
            v == 'deny' and took < 0.5, True)
    ch.close()
    d.stop_checked()
    hole.close()


def main():
    if not URI:
        G.bad('EXH_TEST_PG_URI names the database')
        return
    G.DB = URI  # G.ctl and G.Server use it
    t0 = time.monotonic()
    try:
        G.section('set-up')
        ctl('init')
        ctl('add-user', 'alice', '--password-stdin', stdin=PW['alice'] + '\n')
        ctl('add-user', 'carol', '--password-stdin', '--group', 'ops', stdin=PW['carol'] + '\n')
        srv = {n: G.Server(f'node-{n}', db=URI).start() for n in ('a', 'b')}
        chans = {n: chan(s) for n, s in srv.items()}
        nodes = {n: G.Ver(3, ch) for n, ch in chans.items()}
        ci = {n: dict(node=f'emqx@{n}') for n in nodes}
        G.ok('two exhook-grpc servers on one PostgreSQL store')

        G.section('logins on both nodes')
        for n, v in nodes.items():
            G.check(f'{n}: alice logs in', v.authn(clientid=f'alice-{n}', username='alice',
                                                   password=PW['alice'], **ci[n]), 'allow')
            G.check(f'{n}: alice publishes users/alice/x',
                    v.authz('publish', 'users/alice/x', clientid=f'alice-{n}', username='alice',
                            **ci[n]), 'allow')
            G.check(f'{n}: carol logs in', v.authn(clientid=f'carol-{n}', username='carol',
                                                   password=PW['carol'], **ci[n]), 'allow')
            G.check(f'{n}: carol (ops) subscribes alerts/x',
                    v.authz('subscribe', 'alerts/x', clientid=f'carol-{n}', username='carol',
                            **ci[n]), 'allow')

        G.section('a user added with exhookctl')
        ctl('add-user', 'bob', '--password-stdin', stdin=PW['bob'] + '\n')
        for n, v in nodes.items():
            G.check(f'{n}: bob logs in', v.authn(clientid=f'bob-{n}', username='bob',
                                                 password=PW['bob'], **ci[n]), 'allow')
            G.check(f'{n}: bob publishes users/bob/x',
                    v.authz('publish', 'users/bob/x', clientid=f'bob-{n}', username='bob',
                            **ci[n]), 'allow')

        G.section('a user disabled with exhookctl')
        ctl('set-user', 'alice', '--disabled', 'true')
        on_both(nodes, lambda n, v: v.authz('publish', 'users/alice/x', username='alice',
                                            clientid=f'alice-{n}'), 'deny')
        for n, v in nodes.items():
            G.check(f'{n}: alice logs in again: refused',
                    v.authn(clientid=f'alice-{n}', username='alice', password=PW['alice'],
                            **ci[n]), 'deny')
        for n in nodes:
            G.check(f'{n}: says why', 'client alice-' + n in srv[n].log() and
                    'may no longer log in' in srv[n].log(), True)

        G.section('a group membership removed with exhookctl')
        ctl('set-user', 'carol', '--del-group', 'ops')
        on_both(nodes, lambda n, v: v.authz('subscribe', 'alerts/x', username='carol',
                                            clientid=f'carol-{n}'),
                'deny')
        for n, v in nodes.items():  # refreshed, not revoked
            G.check(f'{n}: carol still publishes users/carol/x',
                    v.authz('publish', 'users/carol/x', clientid=f'carol-{n}', username='carol',
                            **ci[n]), 'allow')

        G.section('a user deleted with exhookctl')
        ctl('del-user', 'bob')
        on_both(nodes, lambda n, v: v.authz('publish', 'users/bob/x', username='bob',
                                            clientid=f'bob-{n}'),
                'deny')

        G.section('a client never seen logging in (its groups looked up in the store)')
        ctl('add-user', 'erin', '--password-stdin', '--group', 'ops', stdin='erin-pw\n')
        for n, v in nodes.items():
            G.check(f'{n}: erin (ops, looked up) subscribes alerts/x',
                    v.authz('subscribe', 'alerts/x', username='erin', clientid=f'erin-{n}'), 'allow')
        ctl('set-user', 'erin', '--del-group', 'ops')
        on_both(nodes, lambda n, v: v.authz('subscribe', 'alerts/x', username='erin',
                                            clientid=f'erin-{n}'), 'deny')

        G.section('a user disabled while its login is being checked')
        # A slow hash (argon2id t=40): the notice arrives while node a's
        # worker hashes the password it read before the change.
        ctl('--argon2', 'm=19456,t=40,p=1', 'add-user', 'slow', '--password-stdin',
            stdin='slow-pw\n')
        got = []

        def slow_login():
            got.append(nodes['a'].authn(clientid='slow-a', username='slow', password='slow-pw'))
            got.append(time.monotonic())

        th = threading.Thread(target=slow_login)
        th.start()
        time.sleep(0.05)
        ctl('set-user', 'slow', '--disabled', 'true')
        committed = time.monotonic()
        th.join(30)
        G.check('the login ended allowed, after the change was committed (the race itself)',
                len(got) == 2 and got[0] == 'allow' and got[1] > committed, True)
        if len(got) == 2 and got[0] == 'allow':
            took = until(lambda: nodes['a'].authz('publish', 'users/slow/x', username='slow',
                                                  clientid='slow-a') == 'deny', WITHIN)
            G.check('... and its rights are gone within a second', took is not None, True)

        G.section('the listener lost and back')
        r = psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE query = 'LISTEN exhook_users'")
        G.check('both servers\' listeners terminated', r.stdout.strip(), '2')
        ctl('set-user', 'carol', '--disabled', 'true')  # maybe while they are down
        # reopened after a back-off of 250 ms, then everyone checked
        on_both(nodes, lambda n, v: v.authz('publish', 'users/carol/x', username='carol',
                                            clientid=f'carol-{n}'),
                'deny', timeout=3.0)
        for n in nodes:
            log = srv[n].log()
            G.check(f'{n}: said once that notices were lost',
                    log.count('change notices lost'), 1)
            G.check(f'{n}: said once that they resumed',
                    G.poll(lambda: srv[n].log().count('change notices from the store resumed'),
                           timeout=3), 1)

        G.section('hash upgrades: off on node a (upgrade_hashes = false), on on node b')
        pwfile = os.path.join(G.TMP, 'old.pw')
        with open(pwfile, 'w') as f:
            f.write('olduser:old-pw\n')
        r = subprocess.run(['mosquitto_passwd', '-U', pwfile], capture_output=True, text=True)
        G.check('mosquitto_passwd hashed the file', r.returncode, 0)
        ctl('import', 'mosquitto-passwd', pwfile)
        fmt = lambda: [l.split()[-1] for l in ctl('show-user', 'olduser').stdout.splitlines()
                       if l.startswith('hash-format:')]
        G.check('imported with its Mosquitto hash', fmt(), ['mosquitto-sha512-pbkdf2'])
        a2 = G.Server('node-a-noupgrade', '--upgrade-hashes', 'false', db=URI).start()
        ch2 = chan(a2)
        v2 = G.Ver(3, ch2)
        G.check('node a logs olduser in', v2.authn(clientid='old-a', username='olduser',
                                                   password='old-pw'), 'allow')
        G.check('... and leaves its hash as it was', fmt(), ['mosquitto-sha512-pbkdf2'])
        G.check('node b logs olduser in', nodes['b'].authn(clientid='old-b', username='olduser',
                                                          password='old-pw'), 'allow')
        G.check('... and upgrades its hash', fmt(), ['argon2id'])
        ch2.close()
        a2.stop_checked()

        G.section('sessions from both nodes in one history')
        for n, v in nodes.items():
            v.connected(clientid=f'sess-{n}', username='alice', peerhost='192.0.2.9', **ci[n])
        def both():
            r = G.ctl('sessions', '--history', '--json')
            h = json.loads(r.stdout) if r.returncode == 0 else []
            got = {e['clientid']: e.get('node') for e in h if e['clientid'].startswith('sess-')}
            return got if len(got) == 2 else None
        G.check('each connect with its node', G.poll(both, timeout=5),
                {'sess-a': 'emqx@a', 'sess-b': 'emqx@b'})
        r = G.ctl('sessions')
        G.check('`sessions` (text) shows the node', 'emqx@a' in r.stdout and 'emqx@b' in r.stdout,
                True)

        G.section('a front end as the runtime role')
        r = psql("CREATE ROLE exhook_rt LOGIN PASSWORD 'rt-pw-1'")
        G.check('role made', r.returncode, 0)
        ctl('init', '--runtime-role', 'exhook_rt')
        pgpass = os.path.join(G.TMP, 'pgpass')
        with open(os.environ['PGPASSFILE']) as f:
            lines = f.read()
        port = os.environ['EXH_TEST_PG_PORT']
        with open(pgpass, 'w') as f:
            f.write(lines + f'127.0.0.1:{port}:*:exhook_rt:rt-pw-1\n')
        os.chmod(pgpass, 0o600)
        rt = G.Server('node-rt', '--upgrade-hashes', 'false',
                      db=URI.replace('postgresql://exhook@', 'postgresql://exhook_rt@'),
                      env={'PGPASSFILE': pgpass}).start()
        ch = chan(rt)
        rv = G.Ver(3, ch)
        ctl('add-user', 'rtuser', '--password-stdin', stdin='rt-user-pw\n')
        G.check('a login through it', rv.authn(clientid='rt-1', username='rtuser',
                                               password='rt-user-pw', node='emqx@rt'), 'allow')
        rv.connected(clientid='rt-1', username='rtuser', node='emqx@rt')
        def rt_session():
            r = G.ctl('sessions', '--json')
            return r.returncode == 0 and any(e.get('node') == 'emqx@rt'
                                             for e in json.loads(r.stdout))
        G.check('its session recorded', G.poll(rt_session, timeout=5), True)
        ctl('set-user', 'rtuser', '--disabled', 'true')
        took = until(lambda: rv.authz('publish', 'users/rtuser/x', username='rtuser',
                                      clientid='rt-1') == 'deny', WITHIN)
        G.check('its notices work too: the user disabled is denied within a second',
                took is not None, True)
        G.check('no permission error in its log', 'permission denied' in rt.log(), False)
        ch.close()
        rt.stop_checked()

        t_mosquitto(nodes)
        t_faults(nodes, srv)

        G.section('stop')
        for ch in chans.values():
            ch.close()
        for s in srv.values():
            s.stop_checked()
    except Exception:  # an abort is a failure, with what the suite got to
        import traceback
        G.bad('the suite ran to its end', traceback.format_exc())
    finally:
        for s in G.servers:
            if s.proc and s.proc.poll() is None:
                s.stop(G.signal.SIGKILL)
    G.note(f'{time.monotonic() - t0:.1f} s')
    print(f'{G.passed} passed, {G.failed} failed', flush=True)
    sys.exit(1 if G.failed else 0)


if __name__ == '__main__':
    main()
