#!/usr/bin/env bash
# The plugin's cost inside a real broker.  Mosquitto 2.0 set-ups, the same
# client load, the same run:
#
#   exhook       exhook_mosquitto.so with policies/ and a store (argon2id at
#                its default cost, 19 MiB), delivery checks on
#                (plugin_opt_read_check true: every delivery is checked as
#                MOSQ_ACL_READ, as acl_file does), each connection's last
#                decisions remembered (plugin_opt_decision_cache true)
#   exhook-nodc  the same with plugin_opt_decision_cache false: every check
#                evaluated
#   exhook-m1    (WARM=0 only) the same as exhook, the users hashed with
#                argon2id at 1 MiB (exhookctl --argon2 m=1024,
#                plugin_opt_argon2_m_kib 1024)
#   exhook-obs   (OBS=1) exhook with plugin_opt_metrics_listen and
#                plugin_opt_audit_log (denies and logins: with DENY=0 this
#                load has no deny, so the log gets the logins)
#   exhook-obsall (OBS=1) the same with plugin_opt_audit_sample 1: every
#                decision written (two a message: the publish, the delivery)
#   none         no plugin, allow_anonymous true (the floor)
#   acl_file     Mosquitto's own password_file ($7$ PBKDF2) + acl_file with the
#                rules this load needs (policies/ regexes and captures have no
#                acl_file equivalent, so each device gets its own `user` block)
#
# 1. Publish throughput: CLIENTS device clients (user d-<serial>, client id
# dev-<serial>, each allowed devices/<serial>/up/# by
# policies/20-devices.policy) send MSGS qos 0 messages each, as fast as the
# sockets take them; one backend client subscribed to devices/+/up/# (group
# device-backend) counts them.  Every message passes one ACL check
# (publish) and one delivery check (read).  msgs/s is from the first byte
# sent until the subscriber has every message; "broker us/msg" is the
# broker's user+system CPU time over the same span (/proc) per message,
# which other load on the machine disturbs less.  Each set-up runs REPS
# times, interleaved, each rep starting with the next set-up; medians are
# shown.  The clients log in once before each measured run, so the measured
# connections' logins find the credential cache warm, as reconnecting
# devices do (WARM=0: they do not; see the comment at the runs).  Each
# publisher sends to TOPICS topics in turn (default 1).  Then,
# in the same broker, the same load paced at PACE msgs/s (PACE_MSGS per
# client; 0 leaves it out): below every set-up's limit, so the broker reads
# and writes in the same batches whatever it costs, and its CPU per message
# compares the set-ups' own costs.
#
# 2. Instructions (CALLGRIND=1, the default when valgrind is installed):
# for each count of topics per publisher in CG_TOPICS (default "1 16": the
# decision cache's hit, and its miss, as 16 topics cycle through its 4
# ways), CLIENTS x CG_MSGS more messages per set-up with the broker under
# callgrind, counting only inside handle__publish (publish check, fan-out,
# delivery check, socket write): instructions per message there, and in
# mosquitto_acl_check (both checks, plugin or acl_file included).  A busy
# machine does not change these counts; user-space only (the kernel's
# share, about half the broker's time, is the same for every set-up).
#
# 3. Connection rate: CONNECTS sequential CONNECT/CONNACK/DISCONNECT of the
# same user on fresh TCP connections (warm credential cache for exhook), and
# for exhook also COLD distinct users connecting once each (a full argon2id
# verification on the broker's only thread).
#
# 4. Delivery latency during a reload: USERS more device accounts
# (d-<serial>, serials from 00010001), each with its own password, hashed
# once by `mosquitto_passwd -U` into the password_file and imported from
# that same file into the exhook store (`exhookctl import
# mosquitto-passwd`): both set-ups start from the same $7$ PBKDF2 hashes.
# All USERS connect and stay connected; exhook verifies each $7$ hash at the
# first login and, as its store does by default, rehashes it to argon2id at
# the default cost, so its connect phase (not timed) takes USERS argon2id
# hashings.  The first account publishes a timestamped qos 0 message every
# INTERVAL_MS ms to the backend subscriber; after one second the broker
# gets SIGHUP.  Mosquitto then re-reads its config and re-runs basic auth
# for every connected client (password_file: a PBKDF2 check each; exhook:
# its credential cache or a full verification, then the connect rules and a
# session-history write).  Printed: the longest gap between two deliveries
# and the longest latency, from the SIGHUP until 0.5 s after deliveries are
# back and every message sent has been delivered (a stalled broker drains
# the publisher's backlog one packet per loop iteration); "reload" = from
# the SIGHUP to the delivery of the first message sent two intervals after
# it (the loop iteration the signal lands in may still deliver one); "quiet
# gap" = the longest gap in the second before the SIGHUP (the machine's
# noise floor); how many of the USERS answer a PINGREQ afterwards; messages
# never delivered, if any.  RELOAD_NOCACHE=1 adds a set-up
# "exhook-nocache" (plugin_opt_cache_ttl 0: every re-check at reload is a
# full argon2id verification, as for clients that logged in longer ago
# than the cache TTL, 300 s by default).
#
# 5. Login storm: STORM CONNECTs with wrong passwords for the USERS accounts
# (argon2id in the exhook store after part 4, $7$ in the password_file),
# sent from a second process with at most STORM_PAR in flight (the broker's
# listen backlog is 100), while the same publisher/subscriber pair measures
# delivery gaps.  Printed: the longest gap and latency from the first
# CONNECT until 0.5 s after the last answer and the backlog delivered, the
# storm's duration, and that every CONNECT was refused.
#
# The clients are raw MQTT 3.1.1 over sockets in python3, so client
# start-up never dominates.  The exhook parts of 4 and 5 scale with the
# argon2id cost (USERS hashings to connect, STORM verifications).  Usage:
#   bench/mosquitto_bench.sh [PATH-TO-EXHOOKCTL]   (default build/exhookctl;
#   the plugin beside it).  Env (defaults):
#   CLIENTS=4 MSGS=100000 REPS=3 CONNECTS=2000 COLD=20 CALLGRIND=1
#   CG_MSGS=2000 USERS=1000 STORM=500 STORM_PAR=100 INTERVAL_MS=2
#   RELOAD_NOCACHE=0 TOPICS=1 CG_TOPICS="1 16" PACE=20000 PACE_MSGS=25000 WARM=1
#   SKIP=pub,conn,reload,storm (leave parts out; pub also leaves out 2)
#   OBS=1 (add the exhook-obs and exhook-obsall set-ups)
#   DENY=0 (K > 0: every K-th message a device sends goes to a topic it may
#   not publish to, devices/<serial>/dn/...: checked, refused, not
#   delivered; msgs/s counts them, as the broker handles them)
#   CG_KEEP=DIR (keep the callgrind output files there, for callgrind_annotate)
#   ALT="NAME=PATH.so ..." (more set-ups exhook-NAME: another build of the
#   plugin with the same options, in parts 1 to 3)
#   PERF=PREFIX (at the end, one more throughput run per set-up in
#   PERF_SETUPS="exhook acl_file", logins done first, recorded with
#   `perf record -e cpu-clock --call-graph dwarf` on the broker into
#   PREFIX.<set-up>; bench/perf_acl.py breaks the ACL checks down)
#   KEEP=1 (keep the temporary directory: store, password_file, acl_file,
#   configurations, logs)
set -euo pipefail
cd "$(dirname "$0")/.."
ctl=${1:-build/exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
plugin=$(dirname "$ctl")/exhook_mosquitto.so
CLIENTS=${CLIENTS:-4} MSGS=${MSGS:-100000} REPS=${REPS:-3} CONNECTS=${CONNECTS:-2000} COLD=${COLD:-20}
USERS=${USERS:-1000} STORM=${STORM:-500} STORM_PAR=${STORM_PAR:-100} INTERVAL_MS=${INTERVAL_MS:-2}
RELOAD_NOCACHE=${RELOAD_NOCACHE:-0} PERF=${PERF:-} PERF_SETUPS=${PERF_SETUPS:-exhook acl_file} SKIP=${SKIP:-}
ALT=${ALT:-} CG_MSGS=${CG_MSGS:-2000} TOPICS=${TOPICS:-1} CG_TOPICS=${CG_TOPICS:-1 16}
PACE=${PACE:-20000} PACE_MSGS=${PACE_MSGS:-25000} WARM=${WARM:-1} CG_KEEP=${CG_KEEP:-}
if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
  CALLGRIND=${CALLGRIND:-1}
elif [ "${CALLGRIND:-0}" = 1 ]; then
  echo "CALLGRIND=1 needs valgrind" >&2
  exit 2
else
  CALLGRIND=0
fi
declare -A altso
alts=()
for a in $ALT; do
  [ -f "${a#*=}" ] || { echo "ALT: no ${a#*=}" >&2; exit 2; }
  altso[exhook-${a%%=*}]=${a#*=}
  alts+=("exhook-${a%%=*}")
done
[ "$USERS" -ge 2 ] || { echo "USERS must be at least 2" >&2; exit 2; }
for f in "$ctl" "$plugin"; do [ -f "$f" ] || { echo "no $f: build first" >&2; exit 2; }; done
command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null || {
  echo "needs mosquitto (and mosquitto_passwd)" >&2; exit 2; }
skip() { case ",$SKIP," in *",$1,"*) return 0 ;; esac; return 1; }
# USERS idle connections plus the storm's, in the broker and in the client
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
chmod 755 "$tmp"
bpid=
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- users: the same names and passwords in both stores ----
DB=$tmp/exhook.db
$ctl --db "$DB" init >/dev/null
# exhook-m1: the same users in a store of their own, hashed with argon2id at
# 1 MiB instead of 19 MiB (exhookctl --argon2, plugin_opt_argon2_m_kib)
DBM1=$tmp/exhook-m1.db
$ctl --db "$DBM1" init >/dev/null
: >"$tmp/passwd"
: >"$tmp/acl"
serial() { printf '%08x' "$1"; }
adduser() { # NAME PASSWORD [exhookctl options]
  local u=$1 pw=$2
  shift 2
  printf '%s\n' "$pw" | $ctl --db "$DB" add-user "$u" --password-stdin "$@" >/dev/null
  printf '%s\n' "$pw" | $ctl --db "$DBM1" --argon2 m=1024 add-user "$u" --password-stdin "$@" >/dev/null
  printf '%s:%s\n' "$u" "$pw" >>"$tmp/passwd" # hashed below, with mosquitto_passwd -U
}
adduser backend bepw --group device-backend
printf 'user backend\ntopic read devices/+/up/#\n\n' >>"$tmp/acl"
for i in $(seq "$CLIENTS"); do
  s=$(serial "$i")
  adduser "d-$s" "devpw$i" --clientid-pattern 'dev-[0-9a-f]{8}'
  printf 'user d-%s\ntopic write devices/%s/up/#\n\n' "$s" "$s" >>"$tmp/acl"
done
# The reload/storm accounts: hashed once by mosquitto_passwd, and the
# exhook store imports those very hashes.
: >"$tmp/users.passwd"
for i in $(seq "$USERS"); do
  s=$(serial $((0x10000 + i)))
  printf 'd-%s:upw%d\n' "$s" "$i" >>"$tmp/users.passwd"
  printf 'user d-%s\ntopic write devices/%s/up/#\n\n' "$s" "$s" >>"$tmp/acl"
done
mosquitto_passwd -U "$tmp/users.passwd"
$ctl --db "$DB" import mosquitto-passwd "$tmp/users.passwd" >/dev/null
mosquitto_passwd -U "$tmp/passwd"
cat "$tmp/users.passwd" >>"$tmp/passwd"
if grep -v ':[$]7[$]' "$tmp/passwd" | grep -q .; then
  echo "the password_file has lines that are not \$7\$ hashes" >&2
  exit 1
fi
echo "creating $COLD users for the cold-connect run (argon2id, one by one)..." >&2
for i in $(seq "$COLD"); do
  printf 'coldpw\n' | $ctl --db "$DB" add-user "cold$i" --password-stdin >/dev/null
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start SETUP: a broker for exhook|exhook-nodc|exhook-m1|exhook-nocache|exhook-ALT|none|acl_file
# (under $wrap, if set); sets $port and $bpid.
wrap=
start() {
  port=$(free_port)
  {
    echo "user $(id -un)"
    echo "listener $port 127.0.0.1"
    echo "persistence false"
    echo "log_dest stderr"
    echo "log_type error"
    echo "log_type warning"
    # The counting subscriber must get every qos 0 message: no limit (0).
    # But with DENY, a limit far above the load: Debian's 2.0.11-1.2+deb12u2
    # (the CVE-2024-8376 backport; upstream 2.0.19 on) ends a refused
    # PUBLISH with "out_packet_count >= max_queued_messages" -> quota
    # exceeded, so with 0 every denied publish disconnects its client
    # (src/handle_publish.c, process_bad_message), whatever denied it.
    if [ "${DENY:-0}" -gt 0 ]; then
      echo "max_queued_messages 100000000"
    else
      echo "max_queued_messages 0"
    fi
    case $1 in
      exhook*)
        echo "plugin ${altso[$1]:-$plugin}"
        if [ "$1" = exhook-m1 ]; then
          echo "plugin_opt_database $DBM1"
          echo "plugin_opt_argon2_m_kib 1024"
        else
          echo "plugin_opt_database $DB"
        fi
        echo "plugin_opt_policy $PWD/policies"
        echo "plugin_opt_read_check true"
        if [ "$1" = exhook-nocache ]; then echo "plugin_opt_cache_ttl 0"; fi
        if [ "$1" = exhook-nodc ]; then echo "plugin_opt_decision_cache false"; fi
        case $1 in exhook-obs*)
          echo "plugin_opt_metrics_listen 127.0.0.1:$(free_port)"
          echo "plugin_opt_audit_log $tmp/$1-audit.jsonl"
          ;;
        esac
        if [ "$1" = exhook-obsall ]; then echo "plugin_opt_audit_sample 1"; fi
        # The reload part's connect phase logs USERS accounts in at once, each
        # a first argon2id check: past the plugin's budget (20 a second) they
        # would be refused.  The reload itself hashes nothing either way.
        if [ -n "${HASH_BUDGET:-}" ]; then echo "plugin_opt_max_hashes_per_second $HASH_BUDGET"; fi
        ;;
      none) echo "allow_anonymous true" ;;
      acl_file)
        echo "password_file $tmp/passwd"
        echo "acl_file $tmp/acl"
        ;;
    esac
  } >"$tmp/$1.conf"
  $wrap mosquitto -c "$tmp/$1.conf" >"$tmp/$1.log" 2>&1 &
  bpid=$!
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "broker $1 did not start: $(cat "$tmp/$1.log")" >&2
  exit 1
}
stop() {
  kill "$bpid"
  wait "$bpid" 2>/dev/null || true
  bpid=
}

cat >"$tmp/load.py" <<'PYEOF'
import os, selectors, signal, socket, struct, subprocess, sys, threading, time

def enc_len(n):
    out = bytearray()
    while True:
        b = n % 128; n //= 128
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)

def s(b): return struct.pack("!H", len(b)) + b

def connect_pkt(cid, user, pw, keepalive=60):
    flags = 0x02
    payload = s(cid.encode())
    if user is not None:
        flags |= 0x80; payload += s(user.encode())
    if pw is not None:
        flags |= 0x40; payload += s(pw.encode())
    vh = s(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body = vh + payload
    return b"\x10" + enc_len(len(body)) + body

def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        c = sock.recv(n - len(buf))
        if not c: raise RuntimeError("connection closed")
        buf += c
    return buf

def mqtt_connect(port, cid, user, pw, keepalive=60):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_pkt(cid, user, pw, keepalive))
    ack = recv_exact(sock, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError("CONNACK %r for %s" % (ack, user))
    return sock

def publish_pkt(topic, payload):
    body = s(topic.encode()) + payload
    return b"\x30" + enc_len(len(body)) + body

def subscribe(sock, filt):
    body = struct.pack("!H", 1) + s(filt.encode()) + b"\x00"
    sock.sendall(b"\x82" + enc_len(len(body)) + body)
    suback = recv_exact(sock, 5)
    if suback[0] != 0x90 or suback[4] != 0:
        raise RuntimeError("SUBACK %r" % suback)

def backend(port, setup):
    anon = setup == "none"
    return mqtt_connect(port, "bench-sub", None if anon else "backend", None if anon else "bepw")

def cpu_s(pid):  # the broker's user + system CPU time so far
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

DENY = int(os.environ.get("DENY", "0"))

def throughput(port, setup, clients, msgs, creds, pid, topics=1, rate=0):
    anon = setup == "none"
    sub = backend(port, setup)
    subscribe(sub, "devices/+/up/#")
    pubs, chunks, size = [], [], None
    for i in range(1, clients + 1):
        serial = "%08x" % i
        user, pw = creds(i)
        pubs.append(mqtt_connect(port, "dev-" + serial, None if anon else user, None if anon else pw))
        # each client cycles through its topics: fixed-width names, so every
        # packet has the same size
        pkts = [publish_pkt("devices/%s/up/t%03d" % (serial, k), b"x" * 32) for k in range(topics)]
        size = len(pkts[0])
        # DENY=K: every K-th message to a topic the device may not publish
        # to (the same size; the policy's last devices rule, acl_file's
        # missing grant): checked, denied, never delivered
        denied = publish_pkt("devices/%s/dn/t%03d" % (serial, 0), b"x" * 32)
        chunks.append(b"".join(denied if DENY and j % DENY == DENY - 1 else pkts[j % topics]
                               for j in range(1000)))
    total = clients * msgs
    want = (total - clients * (msgs // 1000) * (1000 // DENY if DENY else 0)) * size
    got = [0]
    def reader():
        while got[0] < want:
            c = sub.recv(1 << 20)
            if not c: break
            got[0] += len(c)
    def writer(sock, chunk):
        if not rate:
            for _ in range(msgs // 1000):
                sock.sendall(chunk)
            return
        # paced: every client sends 100 messages at a time, at rate/clients a second
        step = 100 * size
        per = 100.0 * clients / rate
        t = time.perf_counter()
        for k in range(msgs // 100):
            off = (k % 10) * step
            sock.sendall(chunk[off:off + step])
            t += per
            d = t - time.perf_counter()
            if d > 0: time.sleep(d)
    rt = threading.Thread(target=reader); rt.start()
    c0 = cpu_s(pid)
    t0 = time.perf_counter()
    ws = [threading.Thread(target=writer, args=(p, c)) for p, c in zip(pubs, chunks)]
    for w in ws: w.start()
    for w in ws: w.join()
    rt.join(timeout=120)
    dt = time.perf_counter() - t0
    cpu = cpu_s(pid) - c0
    if got[0] != want:
        raise RuntimeError("%s: subscriber got %d of %d bytes" % (setup, got[0], want))
    for p in pubs + [sub]:
        p.sendall(b"\xe0\x00"); p.close()
    return total / dt, cpu / total * 1e6

def connects(port, setup, n, users):
    t0 = time.perf_counter()
    for i in range(n):
        user, pw, cid = users(i)
        sock = mqtt_connect(port, cid, user, pw)
        sock.sendall(b"\xe0\x00")
        sock.close()
    return n / (time.perf_counter() - t0)

# ---- delivery latency: one publisher, one subscriber, a message every
# interval carrying its send time (perf_counter, the same process) ----
def ruser(i):  # the reload/storm accounts, i from 1
    serial = "%08x" % (0x10000 + i)
    return "d-" + serial, "upw%d" % i, "dev-" + serial, serial

class Probe:
    def __init__(self, port, setup, pub, serial, interval):
        self.sub = backend(port, setup)
        self.topic = "devices/%s/up/lat" % serial
        subscribe(self.sub, self.topic)
        self.pub, self.interval = pub, interval
        self.recv = []  # (received, sent, seq)
        self.sent = 0
        self.running = True

    def reader(self):
        buf = b""
        while True:
            try:
                c = self.sub.recv(65536)
            except OSError:
                return
            if not c: return
            now = time.perf_counter()
            buf += c
            while True:  # whole packets: type byte, remaining length, body
                n, mul, i, complete = 0, 1, 1, False
                while i < len(buf) and i < 5:
                    b = buf[i]; n += (b & 127) * mul; mul *= 128; i += 1
                    if not b & 128:
                        complete = True
                        break
                if not complete or len(buf) < i + n: break
                typ, pkt, buf = buf[0] >> 4, buf[i:i + n], buf[i + n:]
                if typ == 3:  # PUBLISH, qos 0: topic, then our payload
                    tl = struct.unpack("!H", pkt[:2])[0]
                    payload = pkt[2 + tl:]
                    if len(payload) >= 12:
                        sent, seq = struct.unpack("!dI", payload[:12])
                        self.recv.append((now, sent, seq))

    def writer(self):
        nxt = time.perf_counter()
        seq = 0
        while self.running:
            nxt += self.interval
            d = nxt - time.perf_counter()
            if d > 0: time.sleep(d)
            else: nxt = time.perf_counter()
            seq += 1
            self.pub.sendall(publish_pkt(self.topic, struct.pack("!dI", time.perf_counter(), seq)))
            self.sent = seq

    def start(self):
        self.rt = threading.Thread(target=self.reader, daemon=True); self.rt.start()
        self.wt = threading.Thread(target=self.writer, daemon=True); self.wt.start()

    def stop(self):
        self.running = False
        self.wt.join()
        # a stalled broker leaves a backlog in the publisher's socket, which
        # it drains one packet per loop iteration
        wait_for(lambda: len(self.recv) >= self.sent, 30)
        self.sub.sendall(b"\xe0\x00"); self.sub.close()

    def first_after(self, t):  # receipt time of the first message sent after t
        first = None
        for r, snt, _ in reversed(self.recv):
            if snt <= t: break
            first = r
        return first

    def stats(self, t0, t1):
        """Longest gap between consecutive deliveries, the later one in
        [t0, t1]; longest latency of a delivery in [t0, t1]; messages lost."""
        gap = lat = 0.0
        prev = None
        for r, snt, _ in self.recv:
            if t0 <= r <= t1:
                if prev is not None: gap = max(gap, r - prev)
                lat = max(lat, r - snt)
            prev = r
        return gap * 1000, lat * 1000, self.sent - len(self.recv)

def wait_for(pred, limit):
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        v = pred()
        if v: return v
        time.sleep(0.01)
    return None

def reload_run(port, setup, users, interval, pid):
    anon = setup == "none"
    socks = []
    t = time.perf_counter()
    for i in range(1, users + 1):
        user, pw, cid, _ = ruser(i)
        socks.append(mqtt_connect(port, cid, None if anon else user, None if anon else pw, keepalive=0))
    conn_s = time.perf_counter() - t
    probe = Probe(port, setup, socks[0], ruser(1)[3], interval)
    probe.start()
    time.sleep(1.0)
    t_hup = time.perf_counter()
    os.kill(pid, signal.SIGHUP)
    # The broker reloads at the end of the loop iteration the signal lands
    # in, which may still deliver a message; one sent two intervals later is
    # read after the reload.
    back = wait_for(lambda: probe.first_after(t_hup + 2 * interval), 600)
    if back is None: raise RuntimeError("%s: no delivery within 600 s of the SIGHUP" % setup)
    time.sleep(0.5)
    probe.stop()
    gap, lat, lost = probe.stats(t_hup, time.perf_counter())
    base, _, _ = probe.stats(t_hup - 1.0, t_hup)
    # Still connected?  A PINGREQ each; none of them gets anything else.
    for sk in socks:
        try: sk.sendall(b"\xc0\x00")
        except OSError: pass
    alive = 0
    for sk in socks:
        sk.settimeout(10)
        try:
            if recv_exact(sk, 2) == b"\xd0\x00": alive += 1
        except (OSError, RuntimeError):
            pass
        sk.close()
    print("gap=%.1f lat=%.1f reload=%.1f base=%.1f alive=%d lost=%d connect=%.1f" %
          (gap, lat, (back - t_hup) * 1000, base, alive, lost, conn_s))

def stormer(port, n, par, users):
    """n CONNECTs with wrong passwords for the accounts 2..users, at most
    par in flight; prints: refused accepted other seconds."""
    sel = selectors.DefaultSelector()
    started = done = refused = accepted = other = 0
    def launch():
        nonlocal started
        user, _, cid, _ = ruser(2 + started % (users - 1))
        sk = socket.socket(); sk.setblocking(False)
        sk.connect_ex(("127.0.0.1", port))
        sel.register(sk, selectors.EVENT_WRITE, [connect_pkt(cid, user, "wrong-password"), b""])
        started += 1
    t0 = time.perf_counter()
    while started < min(par, n): launch()
    while done < n:
        events = sel.select(timeout=600)
        if not events: raise RuntimeError("storm: no answer in 600 s")
        for key, ev in events:
            sk, st = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE:
                if not sk.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sk.send(st[0])
                    sel.modify(sk, selectors.EVENT_READ, st)
                    continue
            else:
                try: c = sk.recv(4 - len(st[1]))
                except OSError: c = b""
                st[1] += c
                if c and len(st[1]) < 4: continue
            ack = st[1]
            if len(ack) == 4 and ack[0] == 0x20:
                if ack[3] == 0: accepted += 1
                else: refused += 1
            else:
                other += 1  # connection failed or closed without a CONNACK
            sel.unregister(sk); sk.close()
            done += 1
            if started < n: launch()
    print(refused, accepted, other, "%.3f" % (time.perf_counter() - t0))

def storm_run(port, setup, n, par, users, interval):
    user, pw, cid, serial = ruser(1)
    pub = mqtt_connect(port, cid, user, pw)
    probe = Probe(port, setup, pub, serial, interval)
    probe.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "stormer", str(port), str(n), str(par), str(users)],
                         check=True, capture_output=True, text=True).stdout.split()
    t1 = time.perf_counter()
    time.sleep(0.5)
    probe.stop()
    pub.sendall(b"\xe0\x00"); pub.close()
    gap, lat, lost = probe.stats(t0, time.perf_counter())
    base, _, _ = probe.stats(t0 - 1.0, t0)
    print("gap=%.1f lat=%.1f storm=%.1f base=%.1f refused=%s accepted=%s other=%s lost=%d" %
          (gap, lat, float(out[3]) * 1000, base, out[0], out[1], out[2], lost))

mode, port = sys.argv[1], int(sys.argv[2])
if mode == "stormer":
    stormer(port, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    sys.exit(0)
setup = sys.argv[3]
if mode in ("reload", "storm"):
    sys.setswitchinterval(0.0005)  # the probe's threads take turns within 0.5 ms
if mode == "pub":
    clients, msgs, pid = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    topics = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    rate = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    print("%.0f %.2f" % throughput(port, setup, clients, msgs, lambda i: ("d-%08x" % i, "devpw%d" % i), pid, topics, rate))
elif mode == "conn":
    n = int(sys.argv[4])
    anon = setup == "none"
    print("%.1f" % connects(port, setup, n, lambda i: (None, None, "dev-00000001") if anon else ("d-00000001", "devpw1", "dev-00000001")))
elif mode == "cold":
    n = int(sys.argv[4])
    print("%.1f" % connects(port, setup, n, lambda i: ("cold%d" % (i + 1), "coldpw", "cold-%d" % i)))
elif mode == "reload":
    reload_run(port, setup, int(sys.argv[4]), float(sys.argv[5]) / 1000, int(sys.argv[6]))
elif mode == "storm":
    storm_run(port, setup, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]) / 1000)
PYEOF
MSGS=$(((MSGS + 999) / 1000 * 1000)) CG_MSGS=$(((CG_MSGS + 999) / 1000 * 1000)) PACE_MSGS=$(((PACE_MSGS + 999) / 1000 * 1000))

declare -A pub cpu paced conn rel storm
setups=(exhook exhook-nodc none acl_file "${alts[@]}")
# Cold logins (WARM=0): also the plugin with its users hashed at 1 MiB, whose
# logins take ~2 ms instead of ~30
if [ "$WARM" = 0 ]; then setups=(exhook exhook-nodc exhook-m1 none acl_file "${alts[@]}"); fi
# Metrics and the audit log on (OBS=1): their cost per message in the broker
if [ "${OBS:-0}" = 1 ]; then setups+=(exhook-obs exhook-obsall); fi
for setup in "${setups[@]}"; do pub[$setup]="" cpu[$setup]="" paced[$setup]=""; done
if ! skip pub; then
  for rep in $(seq "$REPS"); do
    # each rep starts with the next set-up, so none always runs first
    k=$(((rep - 1) % ${#setups[@]}))
    for setup in "${setups[@]:k}" "${setups[@]:0:k}"; do
      start "$setup"
      # Logins first, as reconnecting clients find them (the credential
      # cache warm), unless WARM=0: connections whose CONNACK took a cold
      # argon2id check (~30 ms) run at about half the rate in this load, an
      # effect of the connect's timing rather than of the checks (a plugin
      # build that sleeps 30 ms instead of hashing does the same).
      if [ "$WARM" = 1 ]; then python3 "$tmp/load.py" pub "$port" "$setup" "$CLIENTS" 1000 "$bpid" >/dev/null; fi
      read -r r c < <(python3 "$tmp/load.py" pub "$port" "$setup" "$CLIENTS" "$MSGS" "$bpid" "$TOPICS")
      pub[$setup]="${pub[$setup]} $r"
      cpu[$setup]="${cpu[$setup]} $c"
      echo "run $rep $setup: $r msgs/s, broker CPU $c us/msg" >&2
      if [ "$PACE" -gt 0 ]; then
        read -r r c < <(python3 "$tmp/load.py" pub "$port" "$setup" "$CLIENTS" "$PACE_MSGS" "$bpid" "$TOPICS" "$PACE")
        paced[$setup]="${paced[$setup]} $c"
        echo "run $rep $setup paced: $r msgs/s, broker CPU $c us/msg" >&2
      fi
      stop
    done
  done
fi
if ! skip conn; then
  for setup in "${setups[@]}"; do
    start "$setup"
    case $setup in exhook*) python3 "$tmp/load.py" conn "$port" "$setup" 1 >/dev/null ;; esac # warm the cache
    conn[$setup]=$(python3 "$tmp/load.py" conn "$port" "$setup" "$CONNECTS")
    if [ "$setup" = exhook ]; then cold=$(python3 "$tmp/load.py" cold "$port" "$setup" "$COLD"); fi
    stop
  done
fi
# exhook first: its connect phase upgrades the USERS $7$ hashes to argon2id,
# which the storm then verifies.
rsetups=(exhook none acl_file)
if [ "$RELOAD_NOCACHE" = 1 ]; then rsetups+=(exhook-nocache); fi
if ! skip reload; then
  for setup in "${rsetups[@]}"; do
    echo "reload, $setup: connecting $USERS users..." >&2
    HASH_BUDGET=0 start "$setup"
    rel[$setup]=$(python3 "$tmp/load.py" reload "$port" "$setup" "$USERS" "$INTERVAL_MS" "$bpid")
    echo "reload $setup: ${rel[$setup]}" >&2
    stop
  done
fi
ssetups=(exhook acl_file)
if ! skip storm; then
  for setup in "${ssetups[@]}"; do
    start "$setup"
    storm[$setup]=$(python3 "$tmp/load.py" storm "$port" "$setup" "$STORM" "$STORM_PAR" "$USERS" "$INTERVAL_MS")
    echo "storm $setup: ${storm[$setup]}" >&2
    stop
  done
fi
if [ -n "$PERF" ]; then
  for setup in $PERF_SETUPS; do
    start "$setup"
    # logins first (the exhook cache warm), so the profile is the publish load
    python3 "$tmp/load.py" pub "$port" "$setup" "$CLIENTS" 1000 "$bpid" >/dev/null
    perf record -q -e cpu-clock -F 4000 --call-graph dwarf,16384 -p "$bpid" -o "$PERF.$setup" 2>"$tmp/perf.err" &
    perfpid=$!
    sleep 1
    r=$(python3 "$tmp/load.py" pub "$port" "$setup" "$CLIENTS" "$MSGS" "$bpid")
    kill -INT "$perfpid"
    wait "$perfpid" || cat "$tmp/perf.err" >&2
    echo "perf: $setup at ${r% *} msgs/s while recorded into $PERF.$setup (perf report -i $PERF.$setup --children --sort sym)" >&2
    stop
  done
fi

declare -A cg cgacl
if [ "$CALLGRIND" = 1 ] && ! skip pub; then
  # Instructions, not time: the same on a busy machine as on an idle one.
  for nt in $CG_TOPICS; do
    for setup in "${setups[@]}"; do
      k="$setup.$nt"
      wrap="valgrind --tool=callgrind --callgrind-out-file=$tmp/cg.$k --toggle-collect=handle__publish"
      start "$setup"
      wrap=
      python3 "$tmp/load.py" pub "$port" "$setup" "$CLIENTS" "$CG_MSGS" "$bpid" "$nt" >/dev/null
      stop
      n=$((CLIENTS * CG_MSGS))
      cg[$k]=$(callgrind_annotate "$tmp/cg.$k" 2>/dev/null |
        awk -v n="$n" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.0f", $1 / n}')
      cgacl[$k]=$(callgrind_annotate --inclusive=yes "$tmp/cg.$k" 2>/dev/null |
        awk -v n="$n" '!done && /:mosquitto_acl_check / {gsub(",", "", $1); printf "%.0f", $1 / n; done = 1}')
      echo "callgrind $setup, $nt topics per publisher: ${cg[$k]} instructions/msg, ${cgacl[$k]:-0} in mosquitto_acl_check" >&2
      [ -n "$CG_KEEP" ] && cp "$tmp/cg.$k" "$CG_KEEP/"
    done
  done
fi

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
kv() { # KEY LINE: the value of KEY=... in LINE
  tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}
echo
echo "mosquitto $(mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version //p'); exhook with plugin_opt_read_check true (delivery checks on, as acl_file does them)"
if ! skip pub || ! skip conn; then
  echo "$CLIENTS publishers x $MSGS qos 0 msgs (32 B) to $TOPICS topic(s) each$([ "${DENY:-0}" -gt 0 ] && echo ", 1 in $DENY to a denied topic"), 1 counting subscriber, median of $REPS, logins $([ "$WARM" = 1 ] && echo "warm (each client logged in once before)" || echo "cold (WARM=0)"); $CONNECTS sequential connects"
  [ "$PACE" -gt 0 ] && echo "paced: the same load at $PACE msgs/s ($CLIENTS x $PACE_MSGS msgs), every set-up below its limit, so the broker reads and writes in the same batches and its CPU per message is the set-up's own cost"
  printf '%-14s %10s %8s %14s %10s %14s %10s %12s\n' setup "msgs/s" "vs none" "broker us/msg" "vs none" "paced us/msg" "vs none" "connects/s"
  base=$(echo "${pub[none]}" | median)
  cbase=$(echo "${cpu[none]}" | median)
  pbase=$(echo "${paced[none]}" | median)
  for setup in "${setups[@]}"; do
    m=$(echo "${pub[$setup]}" | median)
    c=$(echo "${cpu[$setup]}" | median)
    pc=$(echo "${paced[$setup]}" | median)
    printf '%-14s %10s %7s%% %14s %10s %14s %10s %12s\n' "$setup" "${m:--}" \
      "$(awk -v a="$m" -v b="$base" 'BEGIN{if (b > 0) printf "%.0f", 100*a/b; else printf "-"}')" "${c:--}" \
      "$(awk -v a="$c" -v b="$cbase" 'BEGIN{if (b > 0) printf "%+.2f", a-b; else printf "-"}')" "${pc:--}" \
      "$(awk -v a="$pc" -v b="$pbase" 'BEGIN{if (b > 0) printf "%+.2f", a-b; else printf "-"}')" "${conn[$setup]:--}"
  done
  if ! skip conn; then
    printf '%-14s %10s %8s %14s %10s %12s   (%s distinct users, argon2id verified on the broker thread: %.1f ms each)\n' \
      "exhook cold" - - - - "$cold" "$COLD" "$(awk -v r="$cold" 'BEGIN{print 1000/r}')"
  fi
fi
if [ "$CALLGRIND" = 1 ] && ! skip pub; then
  echo "callgrind, $CLIENTS x $CG_MSGS msgs: broker instructions per message in handle__publish (publish check, fan-out, delivery check, write), of them in mosquitto_acl_check (both checks):"
  for nt in $CG_TOPICS; do
    for setup in "${setups[@]}"; do
      k="$setup.$nt"
      printf '  %-14s %3s topic(s) per publisher %8s Ir/msg   acl %6s Ir/msg\n' "$setup" "$nt" "${cg[$k]}" "${cgacl[$k]:-0}"
    done
  done
fi
if ! skip reload; then
  line="reload with $USERS users (a message every $INTERVAL_MS ms; exhook's hash budget off to connect them):"
  for setup in "${rsetups[@]}"; do
    r=${rel[$setup]}
    lost=$(kv lost "$r")
    if [ "${lost:-0}" -gt 0 ]; then lost=", $lost messages lost"; else lost=; fi
    line="$line $setup max gap $(kv gap "$r") ms, max latency $(kv lat "$r") ms (reload $(kv reload "$r") ms, quiet gap $(kv base "$r") ms, $(kv alive "$r")/$USERS still connected$lost) |"
  done
  echo "${line% |}"
fi
if ! skip storm; then
  line="storm of $STORM wrong-password CONNECTs ($STORM_PAR in flight):"
  for setup in "${ssetups[@]}"; do
    r=${storm[$setup]}
    lost=$(kv lost "$r")
    if [ "${lost:-0}" -gt 0 ]; then lost=", $lost messages lost"; else lost=; fi
    line="$line $setup max gap $(kv gap "$r") ms, max latency $(kv lat "$r") ms (storm $(kv storm "$r") ms, quiet gap $(kv base "$r") ms, $(kv refused "$r")/$STORM refused$lost) |"
  done
  echo "${line% |}"
fi
