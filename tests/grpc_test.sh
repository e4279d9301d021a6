#!/usr/bin/env bash
# exhook-grpc played against by a real gRPC client: Debian's python3-grpcio,
# with stubs generated here by python3-grpc-tools from the project's own
# proto/exhook_v{1,2,3}.proto.  The suite (tests/grpc/grpc_suite.py) plays
# EMQX 4.x (emqx.exhook.v1), 5.0-5.8 (v2) and 5.9+ (v3) against one server:
# provider load, authenticate, authorize, sessions, 200 concurrent calls,
# authorize beside slow argon2id checks, restarts (SIGTERM, SIGKILL),
# policy reload, TLS and mutual TLS, bad input, a missing store.
#
# Usage: grpc_test.sh PATH-TO-EXHOOKCTL (exhook-grpc beside it), from
# anywhere.  Works on sanitizer builds (every server log is checked for
# reports).  Last line: "N passed, N failed".
set -u
ctl=${1:?usage: grpc_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
grpcd=$(dirname "$ctl")/exhook-grpc
cd "$(dirname "$0")/.." || exit 2
. tests/lib/suite.sh # suite_counters, grpc_python, run_suite
suite_counters

command -v openssl >/dev/null || { bad "openssl not installed"; finish; }
[ -x "$ctl" ] || { bad "no exhookctl at $ctl"; finish; }
[ -x "$grpcd" ] || { bad "no exhook-grpc at $grpcd"; finish; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
unset EXHOOK_DB EXHOOK_POLICY

grpc_python "$work/stubs" || finish

mkdir "$work/run"
start=$(date +%s)
run_suite grpc_suite 300 "$work" "$py" -u tests/grpc/grpc_suite.py "$grpcd" "$ctl" "$work/stubs" \
  "$work/run" tests/grpc/suite.policy

# every server log, once more as a whole: no sanitizer report anywhere
reports=$(grep -lE 'Sanitizer|runtime error:' "$work"/run/*.log 2>/dev/null)
if [ -z "$reports" ]; then ok; else
  # shellcheck disable=SC2086 # one file name a word
  bad "sanitizer reports in: $reports"$'\n'"$(grep -hE -A10 'Sanitizer|runtime error:' $reports | head -n 40)"
fi
echo "# $(($(date +%s) - start)) s"
finish
