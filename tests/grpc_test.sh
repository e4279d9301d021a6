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
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
  exit
}

# Debian's interpreter: a python3 earlier on PATH (pyenv) lacks grpc.
py=/usr/bin/python3
if ! "$py" -c 'import grpc, grpc_tools.protoc' 2>/dev/null; then
  bad "$py with grpc and grpc_tools needed (apt-get install python3-grpcio python3-grpc-tools)"
  finish
fi
command -v openssl >/dev/null || { bad "openssl not installed"; finish; }
[ -x "$ctl" ] || { bad "no exhookctl at $ctl"; finish; }
[ -x "$grpcd" ] || { bad "no exhook-grpc at $grpcd"; finish; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
unset EXHOOK_DB EXHOOK_POLICY

# the stubs, from our own protos
mkdir "$work/stubs"
if "$py" -m grpc_tools.protoc -I proto --python_out="$work/stubs" --grpc_python_out="$work/stubs" \
  proto/exhook_v1.proto proto/exhook_v2.proto proto/exhook_v3.proto 2>"$work/protoc.err"; then
  ok
else
  bad "grpc_tools.protoc on proto/: $(cat "$work/protoc.err")"
  finish
fi

mkdir "$work/run"
start=$(date +%s)
timeout -k 10 300 "$py" -u tests/grpc/grpc_suite.py "$grpcd" "$ctl" "$work/stubs" "$work/run" \
  tests/grpc/suite.policy >"$work/suite.out" 2>"$work/suite.err"
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

# every server log, once more as a whole: no sanitizer report anywhere
reports=$(grep -lE 'Sanitizer|runtime error:' "$work"/run/*.log 2>/dev/null)
if [ -z "$reports" ]; then ok; else
  # shellcheck disable=SC2086 # one file name a word
  bad "sanitizer reports in: $reports"$'\n'"$(grep -hE -A10 'Sanitizer|runtime error:' $reports | head -n 40)"
fi
echo "# $(($(date +%s) - start)) s"
finish
