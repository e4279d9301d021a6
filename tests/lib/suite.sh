# tests/lib/suite.sh -- sourced by script suites (they define pass, fail,
# ok and bad, or take them from suite_counters) that run a part of their
# own as another program.
#
# suite_counters: pass=0 fail=0, ok, bad (prints "FAIL - ..."), and finish
# (prints "N passed, N failed", exits with 1 on any failure).
suite_counters() {
  pass=0 fail=0
  ok() { pass=$((pass + 1)); }
  bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
  finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
  }
}
#
# run_suite NAME SECONDS DIR COMMAND...: runs a part that prints ok/FAIL
# lines and "N passed, N failed" last, with a time limit; its lines are
# shown and its counts added.  A part that did not finish, or exited
# non-zero with no failure counted, is a failure; the first lines of its
# stderr are shown, and a sanitizer report there is a failure.  Its output
# stays in DIR/NAME.out and DIR/NAME.stderr.
run_suite() {
  local name=$1 secs=$2 dir=$3 out st last p f
  shift 3
  out=$dir/$name.out
  timeout -k 10 "$secs" "$@" >"$out" 2>"$dir/$name.stderr"
  st=$?
  last=$(tail -n 1 "$out")
  head -n -1 "$out"
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
    pass=$((pass + p)) fail=$((fail + f))
    [ "$f" = 0 ] && [ "$st" != 0 ] && bad "$name: exit status $st with no failure counted"
  else
    bad "$name did not finish (exit status $st); last lines:"$'\n'"$(tail -n 5 "$out")"
  fi
  if [ -s "$dir/$name.stderr" ]; then
    echo "# $name stderr:"
    head -n 20 "$dir/$name.stderr" | sed 's/^/#   /'
    grep -qE 'Sanitizer|runtime error:' "$dir/$name.stderr" && bad "$name: a sanitizer report"
  fi
  return 0
}

# grpc_python DIR: Debian's python3 with grpc (a python3 earlier on PATH,
# pyenv's, lacks it) in $py, and the stubs of our own protos
# (proto/exhook_v{1,2,3}.proto) generated into DIR.  1 (failure counted)
# when either is missing.
grpc_python() {
  py=/usr/bin/python3
  if ! "$py" -c 'import grpc, grpc_tools.protoc' 2>/dev/null; then
    bad "$py with grpc and grpc_tools needed (apt-get install python3-grpcio python3-grpc-tools)"
    return 1
  fi
  mkdir -p "$1"
  if ! "$py" -m grpc_tools.protoc -I proto --python_out="$1" --grpc_python_out="$1" \
    proto/exhook_v1.proto proto/exhook_v2.proto proto/exhook_v3.proto 2>"$1/protoc.err"; then
    bad "grpc_tools.protoc on proto/: $(cat "$1/protoc.err")"
    return 1
  fi
  ok
}
