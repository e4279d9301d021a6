#!/usr/bin/env bash
# The plugin at its default options against a real Mosquitto, with raw MQTT
# 3.1.1 and 5 clients that stay connected (tests/mosquitto/mqtt_session.py):
# what Mosquitto's own acl_file stops, the plugin stops too.
#
#   takeover    bob takes over alice's persistent session (same client id,
#               his own valid password): he receives none of her queued or
#               later messages (delivery checks, MOSQ_ACL_READ, on by
#               default); with plugin_opt_read_check false he does, which is
#               what that option gives up
#   revocation  a deny added to the policy + SIGHUP, and a group removed
#               with exhookctl: delivery stops on an existing subscription
#   live store  a user disabled, deleted or bound to another client id with
#               exhookctl is disconnected within a second, its will not
#               published
#   reload      Mosquitto re-runs basic auth for every client at a reload:
#               no password is hashed again (credential cache off)
#   storm       wrong-password and unknown-name CONNECTs beyond the budget
#               are refused without a hash; a cached login still gets in
#   anonymous   a client the policy admits survives reloads
#               (allow_anonymous true: see the README), and is dropped when
#               the policy stops admitting it
#   $queue/     not a prefix on Mosquitto: `$queue/a/#` is not `a/#`
#
# Usage: mosquitto_live_test.sh PATH-TO-EXHOOKCTL.  Last line: "N passed, N failed".
set -u
ctl=${1:?usage: mosquitto_live_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
cd "$(dirname "$0")/.." || exit 2
plugin=$(dirname "$ctl")/exhook_mosquitto.so
pass=0 fail=0
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
  exit
}
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
sess=tests/mosquitto/mqtt_session.py

DB=$tmp/exhook.db
$ctl --db "$DB" init >/dev/null || { bad "exhookctl init"; finish; }
add() { # NAME PASSWORD [add-user options]
  local u=$1 pw=$2
  shift 2
  printf '%s\n' "$pw" | $ctl --db "$DB" add-user "$u" --password-stdin "$@" >/dev/null || bad "add-user $u"
}
add su supw --superuser
add alice alicepw
add bob bobpw
add carol carolpw --group g
add dave davepw
add erin erinpw --clientid-pattern 'erin-.*'
for i in $(seq 1 10); do add "r$i" "r${i}pw"; done

POL=$tmp/pol
mkdir -p "$POL"
cat >"$POL/10.policy" <<'EOF'
default deny
allow connect anonymous clientid ~ "anon-.*"
allow pubsub username "alice" topic "alice/#"
allow pubsub username "bob" topic "bob/#" "a/#"
allow subscribe group "g" topic "g/#"
allow pubsub username ~ "(dave|erin|r[0-9]+)" topic "x/#"
EOF

# start_broker NAME [extra config lines...]: sets $port, $bpid, $log.
start_broker() {
  local name=$1 i
  shift
  port=$(free_port)
  log=$tmp/$name.log
  {
    printf 'user %s\nlistener %s 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type all\n' "$me" "$port"
    printf 'allow_anonymous true\nplugin %s\nplugin_opt_database %s\nplugin_opt_policy %s\n' "$plugin" "$DB" "$POL"
    printf '%s\n' "$@"
  } >"$tmp/$name.conf"
  "${broker_env[@]}" mosquitto -c "$tmp/$name.conf" >"$log" 2>&1 &
  bpid=$!
  pids+=("$bpid")
  for i in $(seq 100); do
    grep -q 'mosquitto version .* running' "$log" && return 0
    kill -0 "$bpid" 2>/dev/null || break
    sleep 0.05
  done
  bad "broker $name did not start: $(cat "$log")"
  finish
}
stop_broker() {
  kill "$bpid" 2>/dev/null
  wait "$bpid" 2>/dev/null
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    bad "sanitizer report in the $1 broker's log: $(grep -A20 -E 'Sanitizer|runtime error' "$log" | head -40)"
  fi
}
# until_log PATTERN: wait up to 5 s for a line in the broker's log
until_log() {
  local i
  for i in $(seq 100); do grep -qE "$1" "$log" && return 0; sleep 0.05; done
  return 1
}
hup_and_wait() { # the next "policy ... loaded" after a SIGHUP
  local n
  n=$(grep -c 'exhook: policy .*loaded' "$log")
  kill -HUP "$bpid"
  local i
  for i in $(seq 100); do
    [ "$(grep -c 'exhook: policy .*loaded' "$log")" -gt "$n" ] && return 0
    sleep 0.05
  done
  bad "no policy reload seen after SIGHUP"
}

# A session: open NAME ARGS... starts a coproc named NAME; say NAME CMD
# sends one command; hear NAME reads one line into $line.
open_s() {
  local name=$1
  shift
  eval "coproc $name { timeout 60 python3 $sess $* 2>&1; }" 2>/dev/null # (bash warns of the others)
  eval "pids+=(\$${name}_PID)"
}
say() { eval "printf '%s\n' \"\$2\" >&\${$1[1]}"; }
hear() { line=; eval "read -r -t 15 line <&\${$1[0]}"; }
# msgs NAME SECS: every "msg ..." line received within SECS, space-joined
msgs() {
  local out=
  say "$1" "recv $2"
  while hear "$1"; do
    [ "$line" = done ] && break
    out="$out${out:+ }${line#msg }"
  done
  got=$out
}
# open_sub NAME FILTER ARGS...: open a session (ARGS as open_s), then
# subscribe it to FILTER at QoS 1; $line is the SUBACK line.
open_sub() {
  local name=$1 filter=$2
  shift 2
  open_s "$name" "$@"
  hear "$name"
  say "$name" "sub $filter 1"
  hear "$name"
}
# spub TOPIC MSG: a superuser publishes at QoS 1
spub() { mosquitto_pub -p "$port" -u su -P supw -q 1 -t "$1" -m "$2" || bad "publish $1"; }

start_broker main

# ====================================================================
# Session takeover (3.1.1, then 5)
# ====================================================================
for v in 3 5; do
  vflag=
  [ "$v" = 5 ] && vflag=--v5
  open_s A $vflag --keep-session "$port" "sess-$v" alice alicepw
  hear A
  [ "$line" = "connack 0 0" ] && ok || bad "v$v: alice connects: $line"
  say A "sub alice/# 1"
  hear A
  [ "$line" = "suback 1" ] && ok || bad "v$v: alice subscribes alice/#: $line"
  say A quit
  wait "$A_PID" 2>/dev/null
  spub alice/queued "for-alice-$v"
  open_s B $vflag --keep-session "$port" "sess-$v" bob bobpw
  hear B
  [ "$line" = "connack 0 1" ] && ok || bad "v$v: bob takes the session over (session present 1): $line"
  spub alice/later "later-$v"
  msgs B 1
  [ -z "$got" ] && ok || bad "v$v: bob received alice's messages after a takeover: $got"
  say B quit
  wait "$B_PID" 2>/dev/null
done
stop_broker main

# What plugin_opt_read_check false gives up: the same takeover delivers.
start_broker noread 'plugin_opt_read_check false'
open_s A --keep-session "$port" sess-nr alice alicepw
hear A
say A "sub alice/# 1"
hear A
say A quit
wait "$A_PID" 2>/dev/null
spub alice/queued nr-queued
open_s B --keep-session "$port" sess-nr bob bobpw
hear B
msgs B 1
case $got in *nr-queued*) ok ;; *) bad "read_check false: the takeover should deliver (that is what the option gives up): '$got'" ;; esac
say B quit
wait "$B_PID" 2>/dev/null
stop_broker noread

start_broker main2

for v in 3 5; do
  vflag=
  [ "$v" = 5 ] && vflag=--v5
  # ==================================================================
  # Revocation: a policy change (SIGHUP), a group removed (exhookctl).
  # The same topic before and after: a decision the plugin remembers for
  # the connection (plugin_opt_decision_cache) must not outlive either.
  # ==================================================================
  open_sub B 'a/#' $vflag "$port" "bob-$v" bob bobpw
  [ "$line" = "suback 1" ] && ok || bad "v$v: bob subscribes a/#: $line"
  spub a/private/x "before-$v"
  msgs B 1
  case $got in *before-$v*) ok ;; *) bad "v$v: bob receives a/private/x before the change: '$got'" ;; esac
  cp "$POL/10.policy" "$tmp/10.orig"
  { echo 'deny subscribe topic "a/private/#"'; cat "$tmp/10.orig"; } >"$POL/10.policy"
  hup_and_wait
  spub a/private/x "after-$v"
  spub a/public/z "public-$v"
  msgs B 1
  case $got in
    *after-$v*) bad "v$v: bob still receives a/private/x after deny + SIGHUP: '$got'" ;;
    *public-$v*) ok ;;
    *) bad "v$v: bob should still receive a/public/z: '$got'" ;;
  esac
  cp "$tmp/10.orig" "$POL/10.policy"
  hup_and_wait
  say B quit
  wait "$B_PID" 2>/dev/null

  open_sub C 'g/#' $vflag "$port" "carol-$v" carol carolpw
  [ "$line" = "suback 1" ] && ok || bad "v$v: carol (group g) subscribes g/#: $line"
  spub g/x "in-group-$v"
  msgs C 1
  case $got in *in-group-$v*) ok ;; *) bad "v$v: carol receives g/x in group g: '$got'" ;; esac
  $ctl --db "$DB" set-user carol --del-group g >/dev/null || bad "del-group"
  sleep 1
  spub g/x "out-of-group-$v"
  msgs C 1
  [ -z "$got" ] && ok || bad "v$v: carol still receives g/x a second after leaving group g: '$got'"
  $ctl --db "$DB" set-user carol --add-group g >/dev/null || bad "add-group"
  say C quit
  wait "$C_PID" 2>/dev/null

  # ==================================================================
  # Live store changes: disconnected within a second, will not published
  # ==================================================================
  open_sub W 'will/#' $vflag "$port" "watcher-$v" su supw
  for change in "set-user dave --disabled true" "del-user dave" "set-user erin --clientid-pattern other-.*"; do
    case $change in *erin*) who=erin ;; *) who=dave ;; esac
    [ "$change" = "del-user dave" ] && { $ctl --db "$DB" set-user dave --disabled false >/dev/null; }
    open_s D $vflag --will "will/$who" "gone-$who-$v" "$port" "$who-$v" "$who" "${who}pw"
    hear D
    [ "$line" = "connack 0 0" ] && ok || bad "v$v: $who connects before '$change': $line"
    $ctl --db "$DB" $change >/dev/null || bad "exhookctl $change"
    say D "closed 1.5"
    hear D
    [ "$line" = closed ] && ok || bad "v$v: after 'exhookctl $change' $who is still connected (want disconnected within a second): $line"
    wait "$D_PID" 2>/dev/null
    msgs W 0.5
    [ -z "$got" ] && ok || bad "v$v: $who's will was published after 'exhookctl $change': '$got'"
  done
  grep -q "exhook: client dave-$v disconnected: its user changed in the store" "$log" && ok ||
    bad "v$v: no log line for the disconnect: $(grep exhook "$log" | tail -5)"
  say W quit
  wait "$W_PID" 2>/dev/null
  # as they were, for the next round
  add dave davepw
  $ctl --db "$DB" set-user erin --clientid-pattern 'erin-.*' >/dev/null || bad "erin's pattern back"
done
stop_broker main2

# ====================================================================
# Reload: no password hashed again (credential cache off); clients of
# both versions, anonymous ones too
# ====================================================================
start_broker reload 'plugin_opt_cache_ttl 0'
for i in $(seq 1 10); do
  vflag=
  [ $((i % 2)) = 0 ] && vflag=--v5
  open_s "R$i" $vflag "$port" "r-$i" "r$i" "r${i}pw"
  hear "R$i"
  [ "$line" = "connack 0 0" ] || bad "r$i connects ($vflag): $line"
done
open_s N "$port" anon-1
hear N
[ "$line" = "connack 0 0" ] && ok || bad "an anonymous client the policy admits connects: $line"
open_s N5 --v5 "$port" anon-5
hear N5
[ "$line" = "connack 0 0" ] && ok || bad "an anonymous MQTT 5 client the policy admits connects: $line"
kill -HUP "$bpid"
until_log 'exhook: 12 connected clients logged in again \(a reload\): 0 password hashes computed' && ok ||
  bad "reload re-hashed or did not re-check: $(grep 'logged in again' "$log")"
for n in N N5; do
  say $n "closed 1"
  hear $n
  [ "$line" = open ] && ok || bad "the anonymous client $n was dropped at a reload (allow_anonymous true): $line"
done
for i in 1 2; do
  say "R$i" "sub x/r 0"
  hear "R$i"
  [ "$line" = "suback 0" ] && ok || bad "r$i still served after the reload: $line"
done
# the policy stops admitting anonymous clients: dropped at the next reload
cp "$POL/10.policy" "$tmp/10.orig"
grep -v anonymous "$tmp/10.orig" >"$POL/10.policy"
hup_and_wait
for n in N N5; do
  say $n "closed 2"
  hear $n
  [ "$line" = closed ] && ok || bad "an anonymous client ($n) the policy no longer admits survived a reload: $line"
done
cp "$tmp/10.orig" "$POL/10.policy"
for i in $(seq 1 10); do say "R$i" quit; done
stop_broker reload

# ====================================================================
# Login storm: refused without a hash beyond the budget (3.1.1 and 5)
# ====================================================================
start_broker storm 'plugin_opt_max_hashes_per_second 5'
connack() { # USER PASS CID [--v5]: the CONNACK code
  python3 $sess ${4:-} "$port" "$3" "$1" "$2" </dev/null | head -1 | cut -d' ' -f2
}
[ "$(connack alice alicepw warm-1)" = 0 ] && ok || bad "alice logs in (now cached)"
# 40 wrong logins back to back from one process (half for a known name, half
# for unknown ones; every other one MQTT 5): the CONNACK code of each
codes=$(python3 - "$port" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
def s(b): b = b.encode(); return struct.pack('!H', len(b)) + b
out = []
for i in range(1, 41):
    u = f'nobody-{i}' if i % 2 == 0 else 'bob'
    v5 = i % 4 >= 2
    props = b'\x00' if v5 else b''
    body = s('MQTT') + bytes([5 if v5 else 4, 0xC2]) + struct.pack('!H', 60) + props + s(f'storm-{i}') + s(u) + s('wrong')
    c = socket.create_connection(('127.0.0.1', port), timeout=10)
    c.sendall(bytes([0x10, len(body)]) + body)
    ack = c.recv(64)
    # 3.1.1: 5 (not authorized); 5: 0x86 (bad user name or password) or 0x87 (not authorized)
    code = ack[3] if len(ack) >= 4 and ack[0] == 0x20 else None
    out.append(('refused' if (code in (0x86, 0x87) if v5 else code == 5) else 'code-%s' % code))
    c.close()
print(' '.join(out))
PY
)
refused=$(tr ' ' '\n' <<<"$codes" | grep -c '^refused$')
[ "$refused" = 40 ] && ok || bad "storm: $refused of 40 wrong logins refused: $codes"
[ "$(connack alice alicepw warm-2)" = 0 ] && ok || bad "a cached login still gets in during the storm"
[ "$(connack alice alicepw warm-3 --v5)" = 0 ] && ok || bad "a cached MQTT 5 login still gets in during the storm"
until_log 'exhook: [0-9]+ logins refused without a password check' && ok ||
  bad "no log line for the logins refused without a hash: $(grep exhook "$log" | tail -3)"
hashed=$(grep -c 'exhook: connect storm-[0-9]* (.*): \(wrong password\|unknown user\)' "$log")
throttled=$(grep -c 'exhook: connect storm-[0-9]* (.*): refused without a password check' "$log")
[ "$throttled" -ge 20 ] && ok || bad "storm: only $throttled of 40 refused without a hash ($hashed hashed)"
echo "# storm of 40 wrong logins, budget 5 hashes/s: $hashed hashed, $throttled refused without a hash"
stop_broker storm

# ====================================================================
# $queue/ is a topic on Mosquitto
# ====================================================================
start_broker queue
open_s B "$port" bob-q bob bobpw
hear B
say B 'sub $queue/a/# 0'
hear B
[ "$line" = "suback 128" ] && ok || bad "bob (a/# allowed) subscribes \$queue/a/#: want refused (it is not a/# on Mosquitto): $line"
say B 'sub $share/grp/a/# 0'
hear B
[ "$line" = "suback 0" ] && ok || bad "bob subscribes \$share/grp/a/#: want granted: $line"
say B quit
stop_broker queue

finish
