#!/usr/bin/env bash
# Lock-outs through real brokers: two Mosquitto brokers with the plugin on
# one store (two front ends, as two nodes or a broker and its replacement),
# real mosquitto_pub clients.
#
#   lock-out    N wrong passwords for alice on broker A, then her right
#               password is refused (CONNACK not authorised, 3.1.1 and 5),
#               on A and on B; `exhookctl lockouts` lists her; the broker
#               logs the lock-out once, without the password
#   unknown     a name not in the store is locked out the same way, with
#               the same CONNACK
#   clear       `exhookctl lockouts --clear alice` lets her in again on both
#   guessing    300 wrong passwords for bob back to back cost at most N + 2
#               password hashes (counted in the broker's log)
#   settings    a bad lockout_* value stops the broker and exhook-driver
#               with a message naming the setting
#
# Usage: lockout_test.sh PATH-TO-EXHOOKCTL (the plugin and exhook-driver
# beside it).  Last line: "N passed, N failed".
set -u
ctl=${1:?usage: lockout_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
cd "$(dirname "$0")/.." || exit 2
plugin=$(dirname "$ctl")/exhook_mosquitto.so
driver=$(dirname "$ctl")/exhook-driver
. tests/lib/suite.sh
suite_counters
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in mosquitto mosquitto_pub python3; do
  command -v "$tool" >/dev/null || { bad "$tool not installed (bash scripts/deps.sh installs it)"; finish; }
done
[ -f "$plugin" ] || { bad "no plugin at $plugin"; finish; }
. tests/lib/broker.sh
broker_env "$plugin"
me=$(id -un)
unset EXHOOK_DB EXHOOK_POLICY

N=5 # lockout_failures here
DB=$tmp/exhook.db
$ctl --db "$DB" init >/dev/null || { bad "exhookctl init"; finish; }
for u in alice bob carol; do
  printf '%s\n' "$u-Secret-pw" | $ctl --db "$DB" add-user "$u" --password-stdin >/dev/null || bad "add-user $u"
done
POL=$tmp/test.policy
printf 'default deny\nallow pubsub topic "t/#"\n' >"$POL"

# start_broker NAME [extra config lines...]: sets port_NAME, log_NAME.
start_broker() {
  local name=$1 port log i pid
  shift
  port=$(free_port)
  log=$tmp/$name.log
  {
    printf 'user %s\nlistener %s 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type all\n' "$me" "$port"
    printf 'plugin %s\nplugin_opt_database %s\nplugin_opt_policy %s\nplugin_opt_node %s\n' "$plugin" "$DB" "$POL" "$name"
    printf 'plugin_opt_lockout_failures %s\nplugin_opt_lockout_backoff 60s\n' "$N"
    printf '%s\n' "$@"
  } >"$tmp/$name.conf"
  "${broker_env[@]}" mosquitto -c "$tmp/$name.conf" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for i in $(seq 100); do
    if grep -q 'mosquitto version .* running' "$log"; then
      eval "port_$name=$port log_$name=$log"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  return 1
}

# connect NAME BROKER WANT-EXIT WANT-CONNACK CLIENT-ARGS...: one CONNECT with
# mosquitto_pub; its exit status and the CONNACK code it reports.
connect() {
  local name=$1 broker=$2 want=$3 ack=$4 port out st
  shift 4
  eval "port=\$port_$broker"
  out=$(timeout 10 mosquitto_pub -p "$port" -d -t t/probe -n "$@" 2>&1)
  st=$?
  if [ "$st" != "$want" ]; then bad "$name: exit $st, want $want: $out"; return; fi
  if ! grep -q "received CONNACK ($ack)" <<<"$out"; then bad "$name: want CONNACK ($ack): $out"; return; fi
  ok
}

mport=$(free_port)
start_broker A "plugin_opt_metrics_listen 127.0.0.1:$mport" ||
  { bad "broker A did not start: $(cat "$tmp/A.log")"; finish; }
# metric NAME: its value on broker A's /metrics (the format checked too)
metric() {
  curl -sS --max-time 10 "http://127.0.0.1:$mport/metrics" >"$tmp/m.txt" 2>/dev/null &&
    /usr/bin/python3 tests/lib/promcheck.py "$tmp/m.txt" "$1" 2>/dev/null
}
start_broker B || { bad "broker B did not start: $(cat "$tmp/B.log")"; finish; }

# ---- lock-out: N wrong passwords on A, then the right one refused on A and B ----
# Logged in once on each (so cached): the plugin's own per-address throttle
# (5 failures from 127.0.0.1 make its next uncached logins wait a second)
# must not decide what this suite looks at.
connect "alice logs in on A" A 0 0 -u alice -P alice-Secret-pw
connect "alice logs in on B" B 0 0 -u alice -P alice-Secret-pw
connect "bob logs in on B" B 0 0 -u bob -P bob-Secret-pw
for i in $(seq $N); do
  connect "alice wrong password $i on A" A 5 5 -u alice -P "wrong-$i"
done
connect "alice's right password refused on A (locked out)" A 5 5 -u alice -P alice-Secret-pw
connect "... MQTT 5 too" A 135 135 -V 5 -u alice -P alice-Secret-pw
connect "... and on broker B (the lock-out is the store's)" B 5 5 -u alice -P alice-Secret-pw
connect "bob is not locked out" B 0 0 -u bob -P bob-Secret-pw
grep -q "exhook: lock-out: user 'alice' for 60 s after $N failures" "$log_A" && ok ||
  bad "no lock-out line in A's log: $(grep 'exhook: ' "$log_A" | tail -5)"
grep -q 'exhook: connect .* (alice): locked out after repeated failures' "$log_B" && ok ||
  bad "B's log does not say why alice was refused: $(grep 'exhook: ' "$log_B" | tail -5)"
out=$($ctl --db "$DB" lockouts)
echo "$out" | grep -qE '^user  alice +0 +1  [0-9T:-]+Z  ([0-9]+)$' && ok || bad "exhookctl lockouts: $out"
out=$($ctl --db "$DB" lockouts --json)
python3 -c 'import json, sys; j = json.loads(sys.argv[1]); assert [(e["kind"], e["name"], e["locked"]) for e in j] == [("user", "alice", True)], j' "$out" 2>/dev/null &&
  ok || bad "exhookctl lockouts --json: $out"

# ---- an unknown name: locked out the same way ----
for i in $(seq $N); do
  connect "ghost (not in the store) $i on B" B 5 5 -u ghost -P "guess-$i"
done
connect "ghost refused as alice is" B 5 5 -u ghost -P whatever
grep -q "exhook: lock-out: user 'ghost'" "$log_B" && ok || bad "no lock-out of ghost in B's log"

# ---- clear: alice gets in again on both ----
out=$($ctl --db "$DB" lockouts --clear alice)
st=$?
[ "$st" = 0 ] && [ "$out" = "cleared user 'alice' (was locked out)" ] && ok || bad "lockouts --clear alice: $st: $out"
connect "alice's right password works again on A" A 0 0 -u alice -P alice-Secret-pw
connect "... and on B" B 0 0 -u alice -P alice-Secret-pw
$ctl --db "$DB" lockouts --clear alice >/dev/null 2>&1
[ $? = 1 ] && ok || bad "lockouts --clear alice again: want exit 1 (nothing to clear)"

# ---- guessing: 10,000 wrong passwords for bob back to back cost at most N + 2 hashes ----
# (from 127.0.0.2: an address the plugin's own throttle has not seen; loopback
# is never locked out as an address, so bob's name is what stops it)
hashes0=$(metric 'exhook_password_hashes_total{}')
guesses=$(python3 - "$port_A" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
def s(b): b = b.encode(); return struct.pack('!H', len(b)) + b
refused = 0
for i in range(10000):
    body = s('MQTT') + bytes([4, 0xC2]) + struct.pack('!H', 60) + s(f'guess-{i}') + s('bob') + s(f'pw-{i}')
    c = socket.create_connection(('127.0.0.1', port), timeout=10, source_address=('127.0.0.2', 0))
    c.sendall(bytes([0x10, len(body)]) + body)
    ack = c.recv(64)
    refused += len(ack) >= 4 and ack[0] == 0x20 and ack[3] == 5
    c.close()
print(refused)
PY
)
[ "$guesses" = 10000 ] && ok || bad "guessing: $guesses of 10000 wrong passwords refused"
hashes1=$(metric 'exhook_password_hashes_total{}')
lockedm=$(metric 'exhook_logins_total{outcome="deny",reason="locked out"}')
case "$hashes0 $hashes1" in *[!0-9\ ]* | " " | *" ") bad "metrics not read: '$hashes0' '$hashes1'" ;;
  *) [ $((hashes1 - hashes0)) -le $((N + 2)) ] && ok ||
    bad "guessing: exhook_password_hashes_total grew by $((hashes1 - hashes0)) for 10000 guesses" ;;
esac
[ "${lockedm:-0}" -ge $((10000 - N - 2)) ] 2>/dev/null && ok ||
  bad "guessing: exhook_logins_total{reason=\"locked out\"} is '$lockedm'"
hashed=$(grep -c 'exhook: connect guess-[0-9]* (bob): wrong password' "$log_A")
locked=$(grep -c 'exhook: connect guess-[0-9]* (bob): locked out after repeated failures' "$log_A")
[ "$hashed" -le $((N + 2)) ] && [ "$hashed" -ge 1 ] && ok ||
  bad "guessing: $hashed password hashes for 10000 guesses (want at most $((N + 2)))"
[ "$locked" -ge $((10000 - N - 2)) ] && ok || bad "guessing: only $locked refused as locked out"
echo "# 10000 guesses at bob's password: $hashed hashed ($((hashes1 - hashes0)) by /metrics), $locked refused as locked out"
grep -q 'pw-1[0-9]' "$log_A" "$log_B" && bad "a guessed password appeared in a broker log" || ok
grep -q 'Secret-pw' "$log_A" "$log_B" && bad "a password appeared in a broker log" || ok

for b in A B; do
  eval "log=\$log_$b"
  grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" &&
    bad "sanitizer report in broker $b's log: $(grep -A20 -E 'Sanitizer|runtime error' "$log" | head -40)"
done

# ---- settings: a bad value stops the front end, naming the setting ----
for kv in "lockout_failures -1" "lockout_failures many" "lockout_window 0" "lockout_backoff 5d" \
  "lockout_backoff_max 1.5h"; do
  set -- $kv
  if start_broker "bad_$1" "plugin_opt_$1 $2" 2>/dev/null; then
    bad "broker started with plugin_opt_$1 $2"
  else
    grep -q "exhook: bad option plugin_opt_$1 $2: bad $1 " "$tmp/bad_$1.log" && ok ||
      bad "plugin_opt_$1 $2: $(grep -i exhook "$tmp/bad_$1.log" | head -3)"
  fi
  if [ -x "$driver" ]; then
    out=$("$driver" --db "$DB" --policy "$POL" "--${1//_/-}" "$2" --check-config 2>&1)
    st=$?
    [ "$st" = 2 ] && grep -q "bad $1 " <<<"$out" && ok || bad "exhook-driver --$1 $2: $st: $out"
  fi
done
finish
