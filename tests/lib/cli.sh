# tests/lib/cli.sh -- running exhookctl in a test script and checking what
# it did.  Source it after defining ok and bad (the script's counters) and
# making $tmp; $tmp/all.log collects every output, for a final scan (a
# password must never appear in one).

# run IN CMD...: stdin from file IN ("-": /dev/null); sets $st, $out, $err.
run() {
  local in=$1
  shift
  [ "$in" = - ] && in=/dev/null
  "$@" <"$in" >"$tmp/out" 2>"$tmp/err"
  st=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  cat "$tmp/out" "$tmp/err" >>"$tmp/all.log"
}
# A file holding one line of stdin.
line() {
  printf '%s\n' "$1" >"$tmp/in"
  echo "$tmp/in"
}
# is NAME STATUS STDOUT: the last run's status and exact stdout ("*": any).
is() {
  if [ "$st" != "$2" ]; then bad "$1: status $st, want $2; stdout: $out; stderr: $err"; return; fi
  if [ "$3" != "*" ] && [ "$out" != "$3" ]; then
    bad "$1: stdout was:"$'\n'"$out"$'\n'"want:"$'\n'"$3"; return; fi
  ok
}
# has NAME STATUS TEXT: the last run's status, and TEXT somewhere in stdout or stderr.
has() {
  if [ "$st" != "$2" ]; then bad "$1: status $st, want $2; stdout: $out; stderr: $err"; return; fi
  if ! printf '%s\n%s\n' "$out" "$err" | grep -qF -- "$3"; then
    bad "$1: output lacks '$3'; stdout: $out; stderr: $err"; return; fi
  ok
}
