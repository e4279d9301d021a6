#!/usr/bin/env bash
# exhook-grpc's Prometheus endpoint and decision audit log, proven with a
# real gRPC client (tests/grpc/observe_suite.py: counts under load against
# the decisions made, every scrape checked against the 0.0.4 format, every
# deny and login in the log, no password in it, SIGUSR1 rotation, sampling,
# a full queue).
#
# Usage: observe_test.sh PATH-TO-EXHOOKCTL (exhook-grpc beside it).
# Last line: "N passed, N failed".
set -u
ctl=${1:?usage: observe_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
grpcd=$(dirname "$ctl")/exhook-grpc
cd "$(dirname "$0")/.." || exit 2
. tests/lib/suite.sh # suite_counters, grpc_python, run_suite
suite_counters

command -v curl >/dev/null || { bad "curl not installed"; finish; }
[ -x "$grpcd" ] || { bad "no exhook-grpc at $grpcd"; finish; }
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null ||
  { bad "python3-prometheus-client not installed"; finish; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
unset EXHOOK_DB EXHOOK_POLICY

grpc_python "$work/stubs" || finish
mkdir "$work/run"
run_suite observe_suite 300 "$work" "$py" -u tests/grpc/observe_suite.py "$grpcd" "$ctl" \
  "$work/stubs" "$work/run" tests/grpc/suite.policy
finish
