#!/usr/bin/env bash
# The driver's integration suite (tests/driver_test.sh, a real Erlang VM)
# with every exhook-driver it starts -- the long-lived ones, --check-config,
# --nouse_stdio -- under valgrind memcheck.  Each driver leaves its own log
# (TMPDIR/<tag>.vg.<pid>); the suite's last section checks one log per
# driver started, each with 0 errors and no definite or indirect leak, and
# shows the report when not.  Every wait in the suite is scaled by
# EXH_TIME_SCALE (default 10: memcheck runs the driver 20-50x slower, but
# most waits are for I/O, not for its CPU); the overall timeout too.  No
# section is skipped: the whole suite takes about 2 minutes on 2 cores.
# Known false positives outside exhook: tests/driver/valgrind.supp.
# Not named *_test.sh: ctest runs driver_test.sh already; scripts/test.sh
# runs this.
# Usage: driver_valgrind.sh PATH-TO-EXHOOKCTL of a RelWithDebInfo build
# (the driver is exhook-driver beside it; not a sanitizer build).
# Last line: "N passed, N failed"; non-zero exit on any failure.
set -u
ctl=${1:?usage: driver_valgrind.sh PATH/exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
here=$(cd "$(dirname "$0")" && pwd)
supp=$here/driver/valgrind.supp

fail() {
  echo "FAIL: $*"
  echo "0 passed, 1 failed"
  exit 1
}
command -v valgrind >/dev/null 2>&1 || fail "valgrind not found (apt-get install valgrind)"
[ -f "$supp" ] || fail "no suppressions file at $supp"
# An ASan build cannot run under valgrind; say so rather than fail oddly.
cache=$(dirname "$ctl")/CMakeCache.txt
if [ -f "$cache" ] && grep -q '^EXH_SANITIZE:BOOL=ON' "$cache"; then
  fail "$(dirname "$ctl") is a sanitizer build: use a RelWithDebInfo one"
fi

export EXH_TIME_SCALE=${EXH_TIME_SCALE:-10}
# --error-exitcode: a driver with an error does not exit 0 (the suite checks
#   every driver's exit status as well as its log);
# --errors-for-leak-kinds: a definite or indirect leak is an error too;
#   "still reachable" is not (today only the 5 KB table ei_init() keeps for
#   the process);
# --track-fds=no: the port's pipes and the policy watch are the driver's
#   business, not a leak;
# --log-file: @TAG@ is the driver's TMPDIR/<tag>, %p its pid;
# --fair-sched=yes: valgrind runs one thread at a time, and by default may
#   leave the deadline watcher waiting behind the workers' argon2id loops
#   for over a second (a run answered 5 logins up to 536 ms after the 5 s
#   deadline); a fair lock hands the CPU round in turn, as the kernel would.
EXH_DRIVER_WRAPPER="valgrind --tool=memcheck --fair-sched=yes --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --track-fds=no \
--num-callers=30 --suppressions=$(printf %q "$supp") --log-file=@TAG@.vg.%p"
export EXH_DRIVER_WRAPPER
exec bash "$here/driver_test.sh" "$ctl"
