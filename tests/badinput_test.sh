#!/usr/bin/env bash
# The bad-input suite: hostile and malformed input in every form exhook
# takes it -- policy files, exhookctl arguments and stdin, `check --batch`
# lines, import files, and the driver's frames (truncated, oversized, wrong
# types, deep nesting, huge atoms, 10 MiB binaries, invalid UTF-8, NUL in
# topics and ids).  Each case must get a clear error or a deny with a
# reason; the process must keep serving (the next batch line, the next
# driver call are answered right); and nothing stored may change (the
# store's rows and schema, the policy files' bytes).
#
# The cases are tables in tests/badinput/: policy.tsv, cli.tsv, batch.tsv
# and import.tsv (run by tables.py), and the frame table in frames.escript.
# Usage: badinput_test.sh PATH-TO-EXHOOKCTL (exhook-driver beside it), from
# anywhere.  Works on sanitizer builds (every log is checked for reports).
# Last line: "N passed, N failed".
set -u
ctl=${1:?usage: badinput_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
driver=$(dirname "$ctl")/exhook-driver
cd "$(dirname "$0")/.."
here=$PWD/tests/badinput
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
  exit
}

for need in python3 escript; do
  if ! command -v $need >/dev/null 2>&1; then
    bad "$need not found (scripts/deps.sh installs it)"
    finish
  fi
done
[ -x "$ctl" ] || { bad "no exhookctl at $ctl"; finish; }
[ -x "$driver" ] || { bad "no exhook-driver at $driver"; finish; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
unset EXHOOK_DB EXHOOK_POLICY

# ---- what the cases run against ------------------------------------------------
db=$work/exhook.db
pol=$work/pol
fix=$work/fixtures
setup() {
  "$ctl" --db "$db" init >/dev/null &&
    printf 'alice-pw\n' | "$ctl" --db "$db" add-user acme:alice --password-stdin >/dev/null &&
    printf 'carol-pw\n' | "$ctl" --db "$db" add-user carol --password-stdin --group ops \
      >/dev/null &&
    printf 'root-pw\n' | "$ctl" --db "$db" add-user root --password-stdin --superuser >/dev/null &&
    mkdir -p "$pol" "$fix/fifo-dir" "$fix/subdir-dir/20-sub.policy" "$fix/empty-dir" "$fix/tests" &&
    cp policies/*.policy "$pol/" &&
    # stores that are not stores
    echo "these are not the users you are looking for" >"$fix/notadb" &&
    head -c 4096 "$db" >"$fix/truncated.db" &&
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read())
b[60:64] = (999).to_bytes(4, "big")  # PRAGMA user_version, in the file header
open(sys.argv[2], "wb").write(b)' "$db" "$fix/newer.db" &&
    chmod 600 "$fix/newer.db" &&
    # policies that are not policies
    cp policies/00-default.policy "$fix/fifo-dir/" && mkfifo "$fix/fifo-dir/50-fifo.policy" &&
    cp policies/00-default.policy "$fix/subdir-dir/10-ok.policy" &&
    ln -s loop.policy "$fix/loop.policy" &&
    printf 'default deny\nallow publsh topic "x"\n' >"$fix/broken.policy" &&
    cp tests/data/broken.test tests/data/fail.policy "$fix/tests/" &&
    mkdir "$fix/fifo-tests" && cp policies/00-default.policy "$fix/fifo-tests/" &&
    printf 'expect deny publish topic "x"\n' >"$fix/fifo-tests/a.test" &&
    mkfifo "$fix/fifo-tests/b.test" &&
    # catastrophic backtracking: the match limit must fail closed
    printf 'deny publish username ~ "(a|a)*" topic "x"\nallow publish topic "x"\n' \
      >"$fix/redos.policy" &&
    printf 'allow publish username ~ "(a|a)*" topic "x"\n' >"$fix/redos-allow.policy" &&
    # one rule of 65535 filters (the most a rule takes), then a line cut short
    python3 -c 'print("allow publish topic " + " ".join("\"t/%d\"" % i for i in range(65535)))
print("allow publish topic \"x")' >"$fix/wide.policy"
}
if ! setup 2>"$work/setup.err"; then
  bad "setting up the store and fixtures: $(cat "$work/setup.err")"
  finish
fi

. tests/lib/suite.sh # run_suite
run_part() { run_suite "$1" 600 "$work" "${@:2}"; }

dump() { python3 "$here/tables.py" --dump "$db"; }

# ---- policy files, exhookctl arguments, batch lines, import files ------------------
run_part tables python3 "$here/tables.py" "$ctl" "$work"

# ---- driver frames -----------------------------------------------------------------
before=$(dump; sha256sum "$pol"/*)
run_part frames escript "$here/frames.escript" "$driver" "$db" "$pol" "$work"
after=$(dump; sha256sum "$pol"/*)
if [ -n "$before" ] && [ "$before" = "$after" ]; then ok; else
  bad "frames: the store or the policy changed while the driver took hostile frames:"$'\n'"$(
    diff <(echo "$before") <(echo "$after") | head -n 20)"
fi

# input that ends inside a frame: logged, exit status 1; input that ends
# between frames (the broker closing the port): exit status 0
printf '\000\000\000\020\203h' | "$driver" --db "$db" --policy "$pol" >/dev/null 2>"$work/trunc.log"
st=$?
if [ "$st" = 1 ] && grep -q "input ended inside a frame" "$work/trunc.log"; then ok; else
  bad "driver, input ending inside a frame: exit status $st (want 1): $(tail -n 3 "$work/trunc.log")"
fi
"$driver" --db "$db" --policy "$pol" </dev/null >/dev/null 2>"$work/eof.log"
st=$?
[ "$st" = 0 ] && ok || bad "driver, input ending between frames: exit status $st (want 0): $(tail -n 3 "$work/eof.log")"

# every driver log: the hostile frames were logged, no sanitizer report
if grep -q "bad frame of" "$work/frames.log" 2>/dev/null; then ok; else
  bad "frames: the driver logged none of the bad frames"
fi
reports=$(grep -lE 'Sanitizer|runtime error:' "$work"/*.log 2>/dev/null)
if [ -z "$reports" ]; then ok; else
  bad "sanitizer reports in: $reports"$'\n'"$(
    grep -hE -A5 'Sanitizer|runtime error:' $reports | head -n 30)"
fi

# ---- enough cases, in every category -------------------------------------------------
counts=$(grep -h '^# cases:' "$work/tables.out" "$work/frames.out" | sed 's/^# cases: //' |
  paste -sd, - | sed 's/,\([^ ]\)/, \1/g')
total=0
for cat in policy cli batch import frames; do
  n=$(echo "$counts" | grep -oE "$cat [0-9]+" | grep -oE '[0-9]+' | head -n 1)
  n=${n:-0}
  total=$((total + n))
  if [ "$n" -ge 10 ]; then ok; else bad "only $n $cat cases (want 10 at least)"; fi
done
echo "# $total cases: $counts"
if [ "$total" -ge 60 ]; then ok; else bad "only $total cases in all (want 60 at least)"; fi

finish
