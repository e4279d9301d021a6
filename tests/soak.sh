#!/usr/bin/env bash
# soak.sh [--seconds N] [--users N] [--samples FILE] PATH/exhookctl
#
# exhook-driver (beside exhookctl) under a long mixed load, watched for
# leaks.  tests/soak/soak.escript opens the driver as EMQX 4.x does
# (open_port({spawn, Cmd}, [{packet,4}, binary, exit_status])) on a temporary
# store of N users (default 3000; bulk imported with EMQX salted SHA-256 and
# Mosquitto $7$ hashes, plus 8 default-cost argon2id users) and a copy of
# policies/ plus a generated 1000-rule file, and for N seconds (default 60)
# keeps ~90 calls in flight: check_acl allowed and denied, authenticate with
# right, wrong, unknown and anonymous credentials, connected/disconnected,
# and every 3 s a policy reload step (a valid edit by rename or in place,
# SIGHUP, a broken edit that must be rejected while the old policy keeps
# answering).  Every answer is checked; the driver's VmRSS, open fds and
# threads are sampled every second.  Fails on any failed call or reload, on
# growth after warm-up (the first 20%, at least 10 s) of RSS above 5%, of
# fds above 2, of threads at all, or on an unclean driver exit.  Last line:
# "N passed, N failed".  Not a ctest test (it takes minutes): scripts/test.sh
# runs it for 60 s; the README documents a 30-minute run (--seconds 1800).
# --samples FILE keeps the per-second samples (CSV).  Needs escript
# (erlang-nox).
set -u
secs=60
users=3000
samples=
while [ $# -gt 1 ]; do
  case $1 in
    --seconds) secs=${2:?}; shift 2 ;;
    --users) users=${2:?}; shift 2 ;;
    --samples) samples=${2:?}; shift 2 ;;
    *) break ;;
  esac
done
usage() {
  echo "usage: soak.sh [--seconds N] [--users N] [--samples FILE] PATH/exhookctl" >&2
  exit 2
}
[ $# -eq 1 ] || usage
case $secs in '' | *[!0-9]*) usage ;; esac
case $users in '' | *[!0-9]*) usage ;; esac
[ "$secs" -ge 20 ] || { echo "soak.sh: --seconds must be at least 20" >&2; exit 2; }
[ "$users" -ge 10 ] || { echo "soak.sh: --users must be at least 10" >&2; exit 2; }
ctl=$1
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
driver=$(dirname "$ctl")/exhook-driver
case $samples in '' | /*) ;; *) samples=$PWD/$samples ;; esac
cd "$(dirname "$0")/.." || exit 2
repo=$PWD

if ! command -v escript >/dev/null 2>&1; then
  echo "FAIL: escript not found (apt-get install erlang-nox)"
  echo "0 passed, 1 failed"
  exit 1
fi
for f in "$ctl" "$driver"; do
  if [ ! -x "$f" ]; then
    echo "FAIL: no executable $f"
    echo "0 passed, 1 failed"
    exit 1
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 700 "$tmp"

echo "# soak: $secs s, $users users, driver $driver"
# Setup (a few seconds) and teardown on top of the run.
timeout -k 5 $((secs + 180)) escript tests/soak/soak.escript \
  "$driver" "$ctl" "$tmp" "$repo" "$secs" "$users" >"$tmp/out" 2>"$tmp/err"
st=$?
if [ -n "$samples" ] && [ -f "$tmp/samples.csv" ]; then
  cp "$tmp/samples.csv" "$samples"
fi
last=$(tail -n 1 "$tmp/out")
case $last in *" passed, "*" failed") head -n -1 "$tmp/out" ;; *) cat "$tmp/out"; last= ;; esac
if [ -s "$tmp/err" ]; then
  echo "# escript stderr:"
  sed 's/^/#   /' "$tmp/err"
fi
if [ "$st" != 0 ]; then
  if [ -f "$tmp/driver.log" ]; then
    echo "# driver log (last 40 lines):"
    tail -n 40 "$tmp/driver.log" | sed 's/^/#   /'
  fi
  if [ -z "$last" ]; then
    echo "FAIL: the soak did not finish (exit status $st)"
    last="0 passed, 1 failed"
  fi
  echo "$last"
  exit 1
fi
echo "$last"
exit 0
