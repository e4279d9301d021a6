#!/usr/bin/env bash
# A cluster on one PostgreSQL store: two exhook-grpc servers (two EMQX
# nodes' front ends) on a throwaway PostgreSQL of the suite's own
# (tests/lib/pg.sh), played against by a real gRPC client (Debian's
# python3-grpcio, stubs from proto/exhook_v3.proto).  The suite
# (tests/grpc/cluster_suite.py): users added, disabled, deleted or moved
# out of a group with exhookctl hold on both nodes within one second; a
# listener the server lost comes back by itself; one history for both.
#
# Usage: cluster_test.sh PATH-TO-EXHOOKCTL (exhook-grpc beside it).
# Last line: "N passed, N failed".
set -u
ctl=${1:?usage: cluster_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
grpcd=$(dirname "$ctl")/exhook-grpc
cd "$(dirname "$0")/.." || exit 2
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
  exit
}

py=/usr/bin/python3
if ! "$py" -c 'import grpc, grpc_tools.protoc' 2>/dev/null; then
  bad "$py with grpc and grpc_tools needed (apt-get install python3-grpcio python3-grpc-tools)"
  finish
fi
command -v psql >/dev/null || { bad "psql not installed (postgresql-client)"; finish; }
[ -x "$grpcd" ] || { bad "no exhook-grpc at $grpcd"; finish; }

. tests/lib/pg.sh
pg_start >/dev/null || { bad "could not start PostgreSQL (tests/lib/pg.sh)"; finish; }
work=$(mktemp -d)
trap 'rm -rf "$work"; pg_stop' EXIT
chmod 700 "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
unset EXHOOK_DB EXHOOK_POLICY

# pgctl stop|start: the suite's server killed (immediate shutdown: every
# backend dropped at once, no checkpoint -- what a crash leaves) and started
# again on the same port and data directory.
{
  echo '#!/bin/sh'
  echo 'case "$1" in'
  echo "stop) exec ${PG_AS[*]} '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m immediate -w stop ;;"
  echo "start) exec ${PG_AS[*]} '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/server.log' -w -t 30" \
    "-o '-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR" \
    "-c fsync=off -c full_page_writes=off -c synchronous_commit=off' start ;;"
  echo 'esac'
} >"$work/pgctl"
chmod +x "$work/pgctl"
export EXH_TEST_PGCTL=$work/pgctl EXH_TEST_PG_PORT=$PG_PORT

# The plugin, if built with AddressSanitizer, needs its runtime preloaded
# into the broker (tests/lib/broker.sh).
. tests/lib/broker.sh
broker_env "$(dirname "$ctl")/exhook_mosquitto.so"
for a in "${broker_env[@]}"; do
  case $a in LD_PRELOAD=*) export EXH_TEST_BROKER_PRELOAD=${a#LD_PRELOAD=} ;; esac
done
command -v mosquitto >/dev/null && command -v mosquitto_sub >/dev/null ||
  { bad "mosquitto and mosquitto-clients needed"; finish; }

mkdir "$work/stubs" "$work/run"
if "$py" -m grpc_tools.protoc -I proto --python_out="$work/stubs" --grpc_python_out="$work/stubs" \
  proto/exhook_v1.proto proto/exhook_v2.proto proto/exhook_v3.proto 2>"$work/protoc.err"; then
  ok
else
  bad "grpc_tools.protoc on proto/: $(cat "$work/protoc.err")"
  finish
fi

PYTHONPATH=tests/grpc timeout -k 10 180 "$py" -u tests/grpc/cluster_suite.py "$grpcd" "$ctl" \
  "$work/stubs" "$work/run" tests/grpc/suite.policy >"$work/suite.out" 2>"$work/suite.err"
st=$?
last=$(tail -n 1 "$work/suite.out")
head -n -1 "$work/suite.out"
if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  pass=$((pass + BASH_REMATCH[1]))
  fail=$((fail + BASH_REMATCH[2]))
  [ "${BASH_REMATCH[2]}" = 0 ] && [ "$st" != 0 ] && bad "the suite exited $st with no failure counted"
else
  echo "$last"
  bad "the suite did not finish (exit status $st)"
fi
if [ -s "$work/suite.err" ]; then
  echo "# the suite's stderr:"
  head -n 30 "$work/suite.err" | sed 's/^/#   /'
fi
reports=$(grep -lE 'Sanitizer|runtime error:' "$work"/run/*.log 2>/dev/null)
if [ -z "$reports" ]; then ok; else
  bad "sanitizer reports in: $reports"
fi
finish
