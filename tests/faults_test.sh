#!/usr/bin/env bash
# A broken credential store under the driver and under the Mosquitto plugin:
# missing, locked beyond the busy timeout, read-only, corrupted, on a full
# disk, and (driver) SIGKILL while writing the session history.  Each
# front end must fail closed (or per failed_action), say why once per
# incident, and recover by itself when the fault clears.
#
# The driver half is tests/faults/driver_faults.escript (a real Erlang VM
# plays EMQX); the plugin half is below (a real broker, real
# mosquitto_pub).  Read-only and disk-full use a bind mount and a small
# tmpfs when this process may mount (root on CI); otherwise read-only is
# made with file permissions (an unprivileged broker and driver) and the
# disk-full cases are skipped with a SKIP line (EXH_FAULTS_NO_MOUNT=1
# forces that path).
#
# Usage: faults_test.sh PATH-TO-EXHOOKCTL (exhook-driver and
# exhook_mosquitto.so beside it).  Last line: "N passed, N failed".
set -u
ctl=${1:?usage: faults_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
cd "$(dirname "$0")/.." || exit 2
bin=$(dirname "$ctl")
pass=0 fail=0
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
mounts=()

cleanup() {
  local p m
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
  # the escript's own mounts, if it was cut short
  for m in "$tmp/ro" "$tmp/full"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
# Without mount rights the disk-full cases cannot run: then a run with no
# failure exits 77, which ctest reports as skipped (SKIP_RETURN_CODE in
# CMakeLists.txt), never as passed.
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ] || exit 1
  [ "${can_mount:-mount}" = mount ] || exit 77
  exit 0
}

for tool in escript python3 mosquitto mosquitto_pub; do
  command -v "$tool" >/dev/null || { bad "$tool not installed (bash scripts/deps.sh)"; finish; }
done

# May this process mount?  (root with CAP_SYS_ADMIN: CI's Debian machine.)
can_mount=nomount
mkdir "$tmp/probe"
# EXH_FAULTS_NO_MOUNT=1 tries the fallback where mounting would work.
if [ -z "${EXH_FAULTS_NO_MOUNT:-}" ] && mount -t tmpfs -o size=64k tmpfs "$tmp/probe" 2>/dev/null; then
  umount "$tmp/probe"
  can_mount=mount
fi
echo "# faults made with: $([ $can_mount = mount ] && echo 'mounts (bind ro, tmpfs)' || echo 'permissions (no mount rights: disk full skipped)')"

# ---- the driver ---------------------------------------------------------------
. tests/lib/suite.sh # run_suite
run_suite driver_faults 300 "$tmp" escript tests/faults/driver_faults.escript "$bin/exhook-driver" \
  "$ctl" "$tmp" "$can_mount"
if grep -lqE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp"/*.log 2>/dev/null; then
  bad "sanitizer report in a driver log: $(grep -lE 'Sanitizer|runtime error:' "$tmp"/*.log)"
fi

# ---- the Mosquitto plugin -----------------------------------------------------
plugin=$bin/exhook_mosquitto.so
[ -f "$plugin" ] || { bad "no plugin at $plugin"; finish; }
. tests/lib/broker.sh
broker_env "$plugin"
me=$(id -un)
base=$tmp/base.db # made by the escript: alice (alice-pw) and bob

# start_broker NAME DB [WRAP...]: sets $port, $bpid, $log.
start_broker() {
  local name=$1 db=$2 i
  shift 2
  port=$(free_port)
  log=$tmp/mosq-$name.log
  cat >"$tmp/mosq-$name.conf" <<EOF
user $me
listener $port 127.0.0.1
persistence false
log_dest stderr
log_type all
plugin $plugin
plugin_opt_database $db
plugin_opt_policy $tmp/f.policy
plugin_opt_busy_timeout 300
EOF
  # SIGXFSZ ignored (kept across exec): the file-size-limit fallback for a
  # full disk must fail the broker's writes, not kill it.
  "${broker_env[@]}" "$@" bash -c 'trap "" XFSZ; exec mosquitto -c "$1"' _ "$tmp/mosq-$name.conf" \
    >"$log" 2>&1 &
  bpid=$!
  pids+=("$bpid")
  for i in $(seq 100); do
    grep -q 'mosquitto version .* running' "$log" && return 0
    kill -0 "$bpid" 2>/dev/null || break
    sleep 0.05
  done
  bad "broker $name did not start: $(cat "$log")"
  return 1
}

stop_broker() {
  kill "$bpid" 2>/dev/null
  wait "$bpid" 2>/dev/null
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    bad "$1: sanitizer report in the broker's log: $(grep -A20 -E 'Sanitizer|runtime error' "$log" | head -40)"
  fi
}

# connack NAME WANT USER PASSWORD [CLIENTID]: one connection, its CONNACK code.
connack() {
  local name=$1 want=$2 out
  out=$(timeout 10 mosquitto_pub -p "$port" -d -t probe -n -u "$3" -P "$4" -i "${5:-c-$3}" 2>&1)
  if grep -q "received CONNACK ($want)" <<<"$out"; then ok "$name"; else bad "$name: want CONNACK ($want): $out"; fi
}

# said_once NAME PATTERN REASON: exactly one log line holds PATTERN, and it names REASON.
said_once() {
  local n lines
  lines=$(grep -F "$2" "$log")
  n=$(grep -cF "$2" "$log")
  if [ "$n" = 1 ] && grep -qF "$3" <<<"$lines"; then
    ok "$1: said once ('$2', naming '$3')"
  else
    bad "$1: want one line '$2' naming '$3', got $n: $lines"
  fi
}

# fault NAME DB MAKE CLEAR REASON [WRAP...]: the store fault made by MAKE
# (a shell command) fails logins closed, is logged once, and CLEAR lets the
# next login in without restarting the broker.
fault() {
  local name=$1 db=$2 make=$3 clear=$4 reason=$5 i
  shift 5
  bash -c "$make" || { bad "$name: could not make the fault"; return; }
  start_broker "$name" "$db" "$@" || return
  for i in 1 2 3 4 5; do
    connack "plugin, $name: alice with the right password refused ($i)" 5 alice alice-pw
  done
  said_once "plugin, $name" "credential store unavailable (failing closed)" "$reason"
  bash -c "$clear" || bad "$name: could not clear the fault"
  connack "plugin, $name cleared: alice allowed, no restart" 0 alice alice-pw
  connack "plugin, $name cleared: wrong password refused" 5 alice nope
  said_once "plugin, $name cleared" "credential store available again" "available"
  stop_broker "$name"
}

if [ -f "$base" ]; then
  # missing
  mkdir -p "$tmp/p-missing"
  fault "store missing" "$tmp/p-missing/exhook.db" true \
    "cp '$base' '$tmp/p-missing/exhook.db'" "p-missing/exhook.db"

  # locked beyond the busy timeout
  mkdir -p "$tmp/p-locked" && cp "$base" "$tmp/p-locked/exhook.db"
  python3 -c '
import sqlite3, os, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA locking_mode=EXCLUSIVE")
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]): time.sleep(0.02)
' "$tmp/p-locked/exhook.db" "$tmp/p-locked/held" "$tmp/p-locked/release" &
  lockpid=$!
  pids+=("$lockpid")
  for i in $(seq 200); do [ -f "$tmp/p-locked/held" ] && break; sleep 0.05; done
  fault "store locked" "$tmp/p-locked/exhook.db" true \
    "touch '$tmp/p-locked/release'; wait $lockpid 2>/dev/null; sleep 0.2" "locked"

  # read-only
  mkdir -p "$tmp/p-rw" && cp "$base" "$tmp/p-rw/exhook.db"
  if [ $can_mount = mount ]; then
    mkdir -p "$tmp/p-ro" && mount --bind "$tmp/p-rw" "$tmp/p-ro" && mounts+=("$tmp/p-ro")
    fault "store read-only" "$tmp/p-ro/exhook.db" "mount -o remount,bind,ro '$tmp/p-ro'" \
      "mount -o remount,bind,rw '$tmp/p-ro'" "Read-only file system"
  else
    fault "store read-only" "$tmp/p-rw/exhook.db" \
      "chmod 555 '$tmp/p-rw'; chmod 444 '$tmp/p-rw/exhook.db'" \
      "chmod 777 '$tmp/p-rw'; chmod 666 '$tmp/p-rw/exhook.db'" "Permission denied" \
      setpriv --reuid=65534 --regid=65534 --clear-groups
  fi

  # corrupted: random bytes after the 100-byte header
  mkdir -p "$tmp/p-corrupt" && cp "$base" "$tmp/p-corrupt/exhook.db"
  fault "store corrupted" "$tmp/p-corrupt/exhook.db" \
    "python3 -c 'import os,sys; f=open(sys.argv[1],\"r+b\"); n=os.path.getsize(sys.argv[1]); f.seek(100); f.write(os.urandom(n-100))' '$tmp/p-corrupt/exhook.db'" \
    "cp '$base' '$tmp/p-corrupt/exhook.db'" "malformed"

  # disk full: logins still served (reads work); the history is not written,
  # said once; it resumes when space is back.
  # Without mount rights there is no honest full disk to make (a file
  # size limit would also stop the broker's own log): skipped, visibly.
  full=$tmp/p-full
  mkdir -p "$full"
  if [ $can_mount = mount ]; then
    mount -t tmpfs -o size=2m tmpfs "$full" && mounts+=("$full")
  else
    echo "# SKIP plugin, disk full: this process may not mount a small tmpfs"
  fi
  cp "$base" "$full/exhook.db"
  if [ $can_mount = mount ] && start_broker "disk-full" "$full/exhook.db"; then
    connack "plugin, disk full: before, alice allowed" 0 alice alice-pw before-full
    dd if=/dev/zero of="$full/fill" bs=4k 2>/dev/null
    clear_full() { rm -f "$full/fill"; }
    why=full
    for i in 1 2 3 4 5; do
      connack "plugin, disk full: alice still allowed (reads work) ($i)" 0 alice alice-pw "full-$i"
    done
    connack "plugin, disk full: wrong password refused" 5 alice nope full-x
    said_once "plugin, disk full" "session history not written" "$why"
    if grep -qF "credential store unavailable" "$log"; then
      bad "plugin, disk full: reported the credential store unavailable: $(grep -F unavailable "$log")"
    else
      ok "plugin, disk full: the credential store was not reported unavailable"
    fi
    clear_full
    connack "plugin, space again: alice allowed" 0 alice alice-pw after-full
    said_once "plugin, space again" "session history written again" "dropped"
    if "$ctl" --db "$full/exhook.db" sessions --history --json | grep -q '"clientid":"after-full"'; then
      ok "plugin, space again: the history holds after-full"
    else
      bad "plugin, space again: after-full not in the history"
    fi
    stop_broker disk-full
  fi
else
  bad "no base store from the driver half: plugin faults not run"
fi

finish
