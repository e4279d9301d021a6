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
. tests/lib/suite.sh # suite_counters, grpc_python, run_suite
suite_counters

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
# again on the same port and data directory (tests/lib/pg.sh).
{
  echo '#!/usr/bin/env bash'
  declare -p PG_DIR PG_BIN PG_PORT PG_AS
  echo ". '$PWD/tests/lib/pg.sh'"
  echo 'case "$1" in stop) pg_server_stop immediate ;; start) pg_server_start ;; *) exit 2 ;; esac'
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

grpc_python "$work/stubs" || finish
mkdir "$work/run"
PYTHONPATH=tests/grpc run_suite cluster_suite 180 "$work" "$py" -u tests/grpc/cluster_suite.py \
  "$grpcd" "$ctl" "$work/stubs" "$work/run" tests/grpc/suite.policy
reports=$(grep -lE 'Sanitizer|runtime error:' "$work"/run/*.log 2>/dev/null)
if [ -z "$reports" ]; then ok; else
  bad "sanitizer reports in: $reports"
fi
finish
