#!/usr/bin/env bash
# exhook-driver started the only way EMQX 4.1/4.2's extension hook can start
# a driver: erlport's python3 port, taken over by dist/emqx4/sitecustomize.py
# (README, DESIGN §5).  A real Erlang VM (tests/driver/erlport_port.escript)
# opens the port exactly as erlport does -- python3 from PATH after its -V
# check, `-u -m erlport.cli --packet=4 --use_stdio --compressed=0
# --buffer_size=65536`, PYTHONPATH = erlport's priv dir (a fake one whose
# erlport/cli.py exits 3 and says so: it must never run), then the plugin's
# path (a copy of dist/emqx4 with an exhook-driver symlink and the shipped
# driver.conf pointed at a test store) -- and plays the plugin's calls.
# Then the whole driver suite runs with every driver started that way
# (EXH_DRIVER_LAUNCH=erlport tests/driver_test.sh).  Also: the launcher stays
# out of the way of any other Python program (silent, the next
# sitecustomize still loaded), `python3 -V` stays as erlport needs it, and
# what the launcher cannot honour (no driver.conf, no driver, --packet=2,
# an unknown option) fails with one `exhook-launch:` line and a non-zero exit.
#
# Interpreters: the python3 erlport would find on PATH, Debian's
# /usr/bin/python3 when that is another one, and any listed in
# EXH_LAUNCH_PYTHONS (space-separated paths, e.g. older 3.x without
# sys.orig_argv).
# Usage: erlport_launch_test.sh PATH-TO-EXHOOKCTL (exhook-driver beside it).
# Last line: "N passed, N failed".
set -u
ctl=${1:?usage: erlport_launch_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
driver=$(dirname "$ctl")/exhook-driver
cd "$(dirname "$0")/.." || exit 2
repo=$PWD
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
  exit
}

command -v escript >/dev/null 2>&1 || { bad "escript not found (apt-get install erlang-nox)"; finish; }
command -v python3 >/dev/null 2>&1 || { bad "python3 not found on PATH (erlport runs it)"; finish; }
[ -x "$driver" ] || { bad "no exhook-driver at $driver"; finish; }
[ -x "$ctl" ] || { bad "no exhookctl at $ctl"; finish; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
real_driver=$(readlink -f "$driver")

# erlport's priv/python3, faked: its cli.py must never run.
priv=$work/erlport/priv/python3
mkdir -p "$priv/erlport"
: >"$priv/erlport/__init__.py"
printf '%s\n' 'import sys' \
  "sys.stderr.write('FAKE-ERLPORT-CLI-RAN: the launcher did not take over\\n')" \
  'sys.exit(3)' >"$priv/erlport/cli.py"

# A store and the example policies.
db=$work/exhook.db
"$ctl" --db "$db" init >/dev/null 2>&1 || { bad "exhookctl init"; finish; }
printf 'alice-pw\n' | "$ctl" --db "$db" add-user acme:alice --password-stdin >/dev/null 2>&1 ||
  { bad "exhookctl add-user"; finish; }

# launch_dir DIR [conf]: the plugin's path as the README installs it.
launch_dir() {
  mkdir -p "$1"
  cp dist/emqx4/sitecustomize.py "$1/"
  ln -sfn "$driver" "$1/exhook-driver"
  if [ "${2:-}" = conf ]; then
    # the shipped example, pointed at the test store and policies/
    sed -e "s#^db = /var/lib/exhook/exhook.db#db = $db#" \
      -e "s#^policy = /etc/exhook/policies#policy = $repo/policies#" \
      dist/emqx4/driver.conf >"$1/driver.conf"
  fi
}
dir=$work/exhook
launch_dir "$dir" conf
if ! grep -q "^db = $db" "$dir/driver.conf" || ! grep -q "^policy = $repo/policies" "$dir/driver.conf"; then
  bad "dist/emqx4/driver.conf has no 'db = /var/lib/exhook/exhook.db' and 'policy = /etc/exhook/policies' lines"
fi
if out=$("$driver" --config "$dir/driver.conf" --check-config 2>&1); then
  ok "the shipped driver.conf passes --check-config (db and policy pointed at the test's)"
else
  bad "the shipped driver.conf fails --check-config: $out"
fi
noconf=$work/noconf
launch_dir "$noconf"
nodrv=$work/nodriver
launch_dir "$nodrv" conf
ln -sfn "$work/no-such-binary" "$nodrv/exhook-driver"
next=$work/next # a later PYTHONPATH entry with its own sitecustomize
mkdir -p "$next"
printf '%s\n' 'import sys' "sys.stderr.write('NEXT-SITECUSTOMIZE\\n')" >"$next/sitecustomize.py"

# The interpreters: erlport's (first python3 on PATH), Debian's, extras.
pythons=$(command -v python3)
[ -x /usr/bin/python3 ] && [ "$(readlink -f /usr/bin/python3)" != "$(readlink -f "$pythons")" ] &&
  pythons="$pythons /usr/bin/python3"
pythons="$pythons ${EXH_LAUNCH_PYTHONS:-}"

# lines FILE PREFIX: how many lines of FILE start with PREFIX
lines() { grep -c "^$2" "$1"; }

n=0
for py in $pythons; do
  n=$((n + 1))
  if ! "$py" -c 'import sys; assert sys.version_info[0] == 3' >/dev/null 2>&1; then
    bad "$py is not a Python 3"
    continue
  fi
  v=$("$py" -V 2>&1)
  tag="[$py, $v]"
  # erlport looks python3 up on PATH: make $py the one it finds.
  bin=$work/bin$n
  mkdir -p "$bin"
  ln -sfn "$(command -v "$py")" "$bin/python3"
  e="$work/err$n"

  # (a) other programs: untouched, silent
  out=$(PYTHONPATH=$priv:$dir "$py" -c 'print(1)' 2>"$e")
  st=$?
  if [ "$st" = 0 ] && [ "$out" = 1 ] && [ ! -s "$e" ]; then
    ok "$tag python3 -c 'print(1)' with the launch PYTHONPATH: prints 1, nothing on stderr"
  else
    bad "$tag python3 -c 'print(1)': status $st, stdout '$out', stderr: $(cat "$e")"
  fi
  out=$(echo '[1]' | PYTHONPATH=$priv:$dir "$py" -m json.tool 2>"$e")
  st=$?
  if [ "$st" = 0 ] && [ "$out" = $'[\n    1\n]' ] && [ ! -s "$e" ]; then
    ok "$tag another -m module (json.tool) runs as usual, nothing on stderr"
  else
    bad "$tag python3 -m json.tool: status $st, stdout '$out', stderr: $(cat "$e")"
  fi
  # erlport's words as a -c program's arguments are not erlport's port
  out=$(PYTHONPATH=$priv:$dir "$py" -c 'print(1)' -m erlport.cli --packet=4 --use_stdio 2>"$e")
  st=$?
  if [ "$st" = 0 ] && [ "$out" = 1 ] && [ ! -s "$e" ]; then
    ok "$tag python3 -c 'print(1)' -m erlport.cli --packet=4 --use_stdio: a -c program, left alone"
  else
    bad "$tag python3 -c ... -m erlport.cli: status $st, stdout '$out', stderr: $(cat "$e")"
  fi
  out=$(PYTHONPATH=$priv:$dir:$next "$py" -c 'import sitecustomize; print(sitecustomize.__file__)' 2>"$e")
  st=$?
  if [ "$st" = 0 ] && [ "$out" = "$next/sitecustomize.py" ] && [ "$(cat "$e")" = NEXT-SITECUSTOMIZE ]; then
    ok "$tag the next sitecustomize on sys.path still runs, once, and is the module 'sitecustomize'"
  else
    bad "$tag chain-loading: status $st, stdout '$out', stderr: $(cat "$e")"
  fi

  # (b) the version check erlport makes
  out=$(PYTHONPATH=$priv:$dir "$py" -V 2>"$e")
  if [[ $out =~ ^Python\ 3\.[0-9]+\.[0-9]+$ ]] && [ ! -s "$e" ]; then
    ok "$tag python3 -V with the launch PYTHONPATH: '$out' on stdout, nothing on stderr"
  else
    bad "$tag python3 -V: stdout '$out', stderr: $(cat "$e")"
  fi

  # (c) erlport's launch without driver.conf: refused, through a real port
  PATH=$bin:$PATH timeout -k 5 60 escript tests/driver/erlport_port.escript refuse \
    "$priv" "$noconf" use_stdio 4 >"$e.out" 2>"$e"
  st=$?
  if [ "$st" = 0 ] && [ "$(lines "$e" exhook-launch:)" = 1 ] &&
    grep -q "^exhook-launch: .*no $noconf/driver.conf" "$e" && ! grep -q FAKE-ERLPORT "$e"; then
    ok "$tag erlport's launch without driver.conf: one exhook-launch line naming it, non-zero exit, erlport's cli.py not run"
  else
    bad "$tag erlport's launch without driver.conf (escript status $st): $(cat "$e.out" "$e")"
  fi

  # (d) --packet=2 (erlport's {packet, 2}): refused, through a real port
  PATH=$bin:$PATH timeout -k 5 60 escript tests/driver/erlport_port.escript refuse \
    "$priv" "$dir" use_stdio 2 >"$e.out" 2>"$e"
  st=$?
  if [ "$st" = 0 ] && [ "$(lines "$e" exhook-launch:)" = 1 ] &&
    grep -q "^exhook-launch: erlport asked for --packet=2" "$e" && ! grep -q FAKE-ERLPORT "$e"; then
    ok "$tag erlport's launch with --packet=2: refused in one exhook-launch line, non-zero exit, erlport's cli.py not run"
  else
    bad "$tag --packet=2 (escript status $st): $(cat "$e.out" "$e")"
  fi

  # an exhook-driver symlink that leads nowhere: refused, never another binary
  PYTHONPATH=$priv:$nodrv "$py" -u -m erlport.cli --packet=4 --use_stdio --compressed=0 \
    --buffer_size=65536 </dev/null >"$e.out" 2>"$e"
  st=$?
  if [ "$st" = 1 ] && [ ! -s "$e.out" ] && [ "$(wc -l <"$e")" = 1 ] &&
    grep -q "^exhook-launch: $nodrv/exhook-driver is there but is not an executable" "$e"; then
    ok "$tag a dangling exhook-driver symlink: one exhook-launch line, exit 1, nothing on stdout"
  else
    bad "$tag dangling exhook-driver (status $st): $(cat "$e.out" "$e")"
  fi
  # an option erlport.cli would take but this launcher does not know
  PYTHONPATH=$priv:$dir "$py" -um erlport.cli --packet=4 --frobnicate </dev/null >"$e.out" 2>"$e"
  st=$?
  if [ "$st" = 1 ] && [ ! -s "$e.out" ] && [ "$(wc -l <"$e")" = 1 ] &&
    grep -q "^exhook-launch: unknown erlport.cli argument '--frobnicate'" "$e"; then
    ok "$tag an unknown erlport.cli option: one exhook-launch line, exit 1"
  else
    bad "$tag unknown option (status $st): $(cat "$e.out" "$e")"
  fi

  # No sys.orig_argv (Python < 3.10) and no /proc/self/cmdline: erlport's
  # options in sys.argv (['-m', ...] while site runs) identify its port.
  PYTHONPATH=$priv:$dir "$py" -S -c '
import builtins, sys
real_open = builtins.open
def no_proc(f, *a, **k):
    if str(f).startswith("/proc/"):
        raise OSError("no /proc here")
    return real_open(f, *a, **k)
builtins.open = no_proc
if hasattr(sys, "orig_argv"):
    del sys.orig_argv
sys.argv = ["-m", "--packet=4", "--use_stdio", "--compressed=0", "--buffer_size=65536"]
import sitecustomize' </dev/null >"$e.out" 2>"$e"
  st=$?
  if [ "$st" = 0 ] && [ ! -s "$e.out" ] && [ "$(lines "$e" exhook-launch:)" = 1 ] &&
    grep -q "^exhook-launch: erlport's port (pid [0-9]*, -m erlport.cli --packet=4 --use_stdio .*exec $dir/" "$e" &&
    grep -q "input closed; exiting" "$e"; then
    ok "$tag without sys.orig_argv and /proc: erlport's options in sys.argv still lead to exhook-driver"
  else
    bad "$tag sys.argv fallback (status $st): $(cat "$e.out" "$e")"
  fi

  # the takeover, through a real port, both fd conventions
  for stdio in use_stdio nouse_stdio; do
    PATH=$bin:$PATH timeout -k 5 90 escript tests/driver/erlport_port.escript serve \
      "$priv" "$dir" "$stdio" 4 "$real_driver" >"$e.out" 2>"$e"
    st=$?
    p=$(grep -c '^ok - ' "$e.out")
    f=$(grep -c '^FAIL - ' "$e.out")
    flag=
    [ "$stdio" = nouse_stdio ] && flag=" --nouse_stdio"
    want="^exhook-launch: erlport's port (pid [0-9]*, -m erlport.cli --packet=4 --$stdio .*"
    want="${want}exec $dir/exhook-driver --config $dir/driver.conf$flag (beside sitecustomize.py, -> "
    if [ "$st" = 0 ] && [ "$f" = 0 ] && [ "$p" = 10 ] && [ "$(lines "$e" exhook-launch:)" = 1 ] &&
      grep -q "$want" "$e" && ! grep -q FAKE-ERLPORT "$e"; then
      ok "$tag erlport's port --$stdio: $p checks (-V, init on main, hook spec, same pid now" \
        "exhook-driver, authenticate and check_acl allow/deny, deinit, exit), one exhook-launch line"
    else
      bad "$tag erlport's port --$stdio (escript status $st):"
      sed 's/^/#   /' "$e.out" "$e"
    fi
  done
done

# The whole driver suite, every driver started through erlport + the launcher.
suite_out=$work/suite.out
EXH_DRIVER_LAUNCH=erlport bash tests/driver_test.sh "$ctl" >"$suite_out" 2>&1
st=$?
summary=$(tail -n 1 "$suite_out")
if [ "$st" = 0 ] && grep -q '^ok    launch: pid .* is now exhook-driver' "$suite_out"; then
  ok "the driver suite through erlport + sitecustomize.py: $summary"
else
  bad "the driver suite through erlport + sitecustomize.py (status $st): $summary"
  grep -v '^ok ' "$suite_out" | sed 's/^/#   /'
fi
finish
