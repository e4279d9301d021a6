#!/usr/bin/env bash
# exhook-driver proven with a real Erlang VM (Debian erlang-nox): an escript
# opens the driver exactly as EMQX 4.x's extension hook does
# (open_port({spawn, Cmd}, [{packet,4}, binary, exit_status])) and plays the
# broker -- init and the hook spec, authenticate, check_acl against a copy of
# policies/, 64 calls in flight, every term encoding, live policy and store
# changes, SIGHUP, malformed frames, sessions, clean exit.
# Usage: driver_test.sh PATH-TO-EXHOOKCTL (the driver is exhook-driver beside
# it).  Last line: "N passed, N failed".
# EXH_DRIVER_WRAPPER (a command every driver runs under, @TAG@ in it naming
# the driver) and EXH_TIME_SCALE (every wait, and the overall timeout, times
# this integer) are passed to the suite: tests/driver_valgrind.sh sets them.
# EXH_DRIVER_LAUNCH=erlport starts every driver through python3, erlport.cli
# and dist/emqx4/sitecustomize.py as EMQX 4.1/4.2 does
# (tests/erlport_launch_test.sh sets it).
set -u
scale=${EXH_TIME_SCALE:-1}
case $scale in '' | *[!0-9]* | 0*)
  echo "FAIL: EXH_TIME_SCALE must be an integer >= 1 (got '$scale')"
  echo "0 passed, 1 failed"
  exit 1
  ;;
esac
ctl=${1:?usage: driver_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
driver=$(dirname "$ctl")/exhook-driver
cd "$(dirname "$0")/.."
repo=$PWD

if ! command -v escript >/dev/null 2>&1; then
  echo "FAIL: escript not found (apt-get install erlang-nox)"
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -x "$driver" ]; then
  echo "FAIL: no driver at $driver"
  echo "0 passed, 1 failed"
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 700 "$tmp"

timeout -k 5 $((170 * scale)) escript tests/driver/driver_suite.escript \
  "$driver" "$ctl" "$tmp" "$repo/tests/driver" "$repo" >"$tmp/out" 2>"$tmp/err"
st=$?
# Everything but the summary line, then diagnostics, then the summary last.
last=$(tail -n 1 "$tmp/out")
case $last in *" passed, "*" failed") head -n -1 "$tmp/out" ;; *) cat "$tmp/out"; last= ;; esac
if [ -s "$tmp/err" ]; then
  echo "# escript stderr:"
  sed 's/^/#   /' "$tmp/err"
fi
if [ "$st" != 0 ]; then
  # What the drivers logged.
  for log in "$tmp"/*.log; do
    [ -f "$log" ] || continue
    echo "# $(basename "$log") (last 40 lines):"
    tail -n 40 "$log" | sed 's/^/#   /'
  done
  if [ -z "$last" ]; then
    echo "FAIL: the suite did not finish (exit status $st)"
    last="0 passed, 1 failed"
  fi
  echo "$last"
  exit 1
fi
echo "$last"
exit 0
