#!/usr/bin/env bash
# The plugin's cost inside a real broker.  Three Mosquitto 2.0 set-ups, the
# same client load, the same run:
#
#   exhook     exhook_mosquitto.so with policies/ and a store (argon2id)
#   none       no plugin, allow_anonymous true (the floor)
#   acl_file   Mosquitto's own password_file ($7$ PBKDF2) + acl_file with the
#              rules this load needs (policies/ regexes and captures have no
#              acl_file equivalent, so each device gets its own `user` block)
#
# Publish throughput: CLIENTS device clients (user d-<serial>, client id
# dev-<serial>, each allowed devices/<serial>/up/# by
# policies/20-devices.policy) send MSGS
# qos 0 messages each, as fast as the sockets take them; one backend client
# subscribed to devices/+/up/# (group device-backend) counts them.  The time
# is from the first byte sent until the subscriber has every message; each
# set-up runs REPS times, interleaved, and the median is shown.  Every
# message passes one ACL check (publish) and one delivery (read, allowed).
#
# Connection rate: CONNECTS sequential CONNECT/CONNACK/DISCONNECT of the
# same user on fresh TCP connections (warm credential cache for exhook), and
# for exhook also COLD distinct users connecting once each (a full argon2id
# verification on the broker's only thread).
#
# The clients are raw MQTT 3.1.1 over sockets in one python3 process, so
# client start-up never dominates.  Usage:
#   bench/mosquitto_bench.sh [PATH-TO-EXHOOKCTL]   (default build/exhookctl;
#   the plugin beside it).  Env: CLIENTS=4 MSGS=100000 REPS=3 CONNECTS=2000 COLD=20
set -euo pipefail
cd "$(dirname "$0")/.."
ctl=${1:-build/exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
plugin=$(dirname "$ctl")/exhook_mosquitto.so
CLIENTS=${CLIENTS:-4} MSGS=${MSGS:-100000} REPS=${REPS:-3} CONNECTS=${CONNECTS:-2000} COLD=${COLD:-20}
for f in "$ctl" "$plugin"; do [ -f "$f" ] || { echo "no $f: build first" >&2; exit 2; }; done
command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null || {
  echo "needs mosquitto (and mosquitto_passwd)" >&2; exit 2; }

tmp=$(mktemp -d)
chmod 755 "$tmp"
bpid=
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- users: the same names and passwords in both stores ----
DB=$tmp/exhook.db
$ctl --db "$DB" init >/dev/null
: >"$tmp/passwd"
: >"$tmp/acl"
serial() { printf '%08x' "$1"; }
adduser() { # NAME PASSWORD [exhookctl options]
  local u=$1 pw=$2
  shift 2
  printf '%s\n' "$pw" | $ctl --db "$DB" add-user "$u" --password-stdin "$@" >/dev/null
  mosquitto_passwd -b "$tmp/passwd" "$u" "$pw"
}
adduser backend bepw --group device-backend
printf 'user backend\ntopic read devices/+/up/#\n\n' >>"$tmp/acl"
for i in $(seq "$CLIENTS"); do
  s=$(serial "$i")
  adduser "d-$s" "devpw$i" --clientid-pattern 'dev-[0-9a-f]{8}'
  printf 'user d-%s\ntopic write devices/%s/up/#\n\n' "$s" "$s" >>"$tmp/acl"
done
echo "creating $COLD users for the cold-connect run (argon2id, one by one)..." >&2
for i in $(seq "$COLD"); do
  printf 'coldpw\n' | $ctl --db "$DB" add-user "cold$i" --password-stdin >/dev/null
done

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start SETUP: a broker for exhook|none|acl_file; sets $port and $bpid.
start() {
  port=$(free_port)
  {
    echo "user $(id -un)"
    echo "listener $port 127.0.0.1"
    echo "persistence false"
    echo "log_dest stderr"
    echo "log_type error"
    echo "log_type warning"
    echo "max_queued_messages 0" # the counting subscriber must get every qos 0 message
    case $1 in
      exhook)
        echo "plugin $plugin"
        echo "plugin_opt_database $DB"
        echo "plugin_opt_policy $PWD/policies"
        ;;
      none) echo "allow_anonymous true" ;;
      acl_file)
        echo "password_file $tmp/passwd"
        echo "acl_file $tmp/acl"
        ;;
    esac
  } >"$tmp/$1.conf"
  mosquitto -c "$tmp/$1.conf" >"$tmp/$1.log" 2>&1 &
  bpid=$!
  for _ in $(seq 100); do
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

cat >"$tmp/load.py" <<'EOF'
import socket, struct, sys, threading, time

def enc_len(n):
    out = bytearray()
    while True:
        b = n % 128; n //= 128
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)

def s(b): return struct.pack("!H", len(b)) + b

def connect_pkt(cid, user, pw):
    flags = 0x02
    payload = s(cid.encode())
    if user is not None:
        flags |= 0x80; payload += s(user.encode())
    if pw is not None:
        flags |= 0x40; payload += s(pw.encode())
    vh = s(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    body = vh + payload
    return b"\x10" + enc_len(len(body)) + body

def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        c = sock.recv(n - len(buf))
        if not c: raise RuntimeError("connection closed")
        buf += c
    return buf

def mqtt_connect(port, cid, user, pw):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_pkt(cid, user, pw))
    ack = recv_exact(sock, 4)
    if ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError("CONNACK %r for %s" % (ack, user))
    return sock

def publish_pkt(topic, payload):
    body = s(topic.encode()) + payload
    return b"\x30" + enc_len(len(body)) + body

def throughput(port, setup, clients, msgs, creds):
    anon = setup == "none"
    sub = mqtt_connect(port, "bench-sub", None if anon else "backend", None if anon else "bepw")
    filt = b"devices/+/up/#"
    body = struct.pack("!H", 1) + s(filt) + b"\x00"
    sub.sendall(b"\x82" + enc_len(len(body)) + body)
    suback = recv_exact(sub, 5)
    if suback[0] != 0x90 or suback[4] != 0:
        raise RuntimeError("SUBACK %r" % suback)
    pubs, chunks, size = [], [], None
    for i in range(1, clients + 1):
        serial = "%08x" % i
        user, pw = creds(i)
        pubs.append(mqtt_connect(port, "dev-" + serial, None if anon else user, None if anon else pw))
        pkt = publish_pkt("devices/%s/up/temp" % serial, b"x" * 32)
        size = len(pkt)  # the same for every client: fixed-width serials
        chunks.append(pkt * 1000)
    total = clients * msgs
    want = total * size
    got = [0]
    def reader():
        while got[0] < want:
            c = sub.recv(1 << 20)
            if not c: break
            got[0] += len(c)
    def writer(sock, chunk):
        for _ in range(msgs // 1000):
            sock.sendall(chunk)
    rt = threading.Thread(target=reader); rt.start()
    t0 = time.perf_counter()
    ws = [threading.Thread(target=writer, args=(p, c)) for p, c in zip(pubs, chunks)]
    for w in ws: w.start()
    for w in ws: w.join()
    rt.join(timeout=120)
    dt = time.perf_counter() - t0
    if got[0] != want:
        raise RuntimeError("%s: subscriber got %d of %d bytes" % (setup, got[0], want))
    for p in pubs + [sub]:
        p.sendall(b"\xe0\x00"); p.close()
    return total / dt

def connects(port, setup, n, users):
    t0 = time.perf_counter()
    for i in range(n):
        user, pw, cid = users(i)
        sock = mqtt_connect(port, cid, user, pw)
        sock.sendall(b"\xe0\x00")
        sock.close()
    return n / (time.perf_counter() - t0)

mode, port, setup = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "pub":
    clients, msgs = int(sys.argv[4]), int(sys.argv[5])
    print("%.0f" % throughput(port, setup, clients, msgs, lambda i: ("d-%08x" % i, "devpw%d" % i)))
elif mode == "conn":
    n = int(sys.argv[4])
    anon = setup == "none"
    print("%.1f" % connects(port, setup, n, lambda i: (None, None, "dev-00000001") if anon else ("d-00000001", "devpw1", "dev-00000001")))
elif mode == "cold":
    n = int(sys.argv[4])
    print("%.1f" % connects(port, setup, n, lambda i: ("cold%d" % (i + 1), "coldpw", "cold-%d" % i)))
EOF
MSGS=$(((MSGS + 999) / 1000 * 1000))

declare -A pub conn
setups=(exhook none acl_file)
for setup in "${setups[@]}"; do pub[$setup]=""; done
for rep in $(seq "$REPS"); do
  for setup in "${setups[@]}"; do
    start "$setup"
    r=$(python3 "$tmp/load.py" pub "$port" "$setup" "$CLIENTS" "$MSGS")
    pub[$setup]="${pub[$setup]} $r"
    echo "run $rep $setup: $r msgs/s" >&2
    stop
  done
done
for setup in "${setups[@]}"; do
  start "$setup"
  [ "$setup" = exhook ] && python3 "$tmp/load.py" conn "$port" "$setup" 1 >/dev/null # warm the cache
  conn[$setup]=$(python3 "$tmp/load.py" conn "$port" "$setup" "$CONNECTS")
  if [ "$setup" = exhook ]; then cold=$(python3 "$tmp/load.py" cold "$port" "$setup" "$COLD"); fi
  stop
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "mosquitto $(mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version //p'), $CLIENTS publishers x $MSGS qos 0 msgs (32 B), 1 counting subscriber, median of $REPS; $CONNECTS sequential connects"
printf '%-10s %14s %14s %14s\n' setup "msgs/s" "vs none" "connects/s"
base=$(echo "${pub[none]}" | median)
for setup in "${setups[@]}"; do
  m=$(echo "${pub[$setup]}" | median)
  printf '%-10s %14s %13s%% %14s\n' "$setup" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN{printf "%.0f", 100*a/b}')" "${conn[$setup]}"
done
printf '%-10s %14s %14s %14s   (%s distinct users, argon2id verified on the broker thread: %.1f ms each)\n' \
  "exhook cold" - - "$cold" "$COLD" "$(awk -v r="$cold" 'BEGIN{print 1000/r}')"
