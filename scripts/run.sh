#!/usr/bin/env bash
# The main job: build exhook and start a local Mosquitto on 127.0.0.1:1883
# secured by exhook_mosquitto.so with the policies in policies/ and the
# credential store ./exhook.db, in the foreground.  Ctrl-C stops it.
#
# On the first run ./exhook.db is created with one demo user, `acme:demo`
# (a tenant user: policies/30-tenants.policy lets it publish and subscribe
# under tenants/acme/shared/), whose random password is printed once.
#
#   bash scripts/run.sh            build, then run the broker
#   bash scripts/run.sh --check    build, then only the quick checks without a
#                                  broker: the policies' tests, lint, and a few
#                                  decisions shown with `exhookctl check`
#
# Environment: EXHOOK_PORT (default 1883), EXHOOK_DB (default ./exhook.db).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
ctl=build/exhookctl

case "${1:-}" in
  --check) ;;
  "") ;;
  -h | --help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: scripts/run.sh [--check]" >&2
    exit 2
    ;;
esac

if [ "${1:-}" = --check ]; then
  echo "== exhookctl test policies/"
  $ctl test policies/
  echo
  echo "== exhookctl lint"
  $ctl --policy policies lint
  echo

  show() {
    echo "\$ exhookctl check $*"
    $ctl --policy policies check "$@" || true
    echo
  }
  show --action publish --username d-0a1b2c3d --clientid dev-0a1b2c3d --topic devices/0a1b2c3d/up/temp
  show --action publish --username d-0a1b2c3d --clientid dev-0a1b2c3d --topic devices/ffffffff/up/temp
  show --action connect --username d-ffffffff --clientid dev-0a1b2c3d
  show --action subscribe --username acme:joe --topic 'tenants/acme/shared/#'
  show --action subscribe --username bob --topic '$SYS/#'
  show --action connect --peerhost 127.0.0.1
  exit 0
fi

# ---------------------------------------------------------------- the broker
command -v mosquitto >/dev/null || {
  echo "run.sh: mosquitto is not installed (scripts/deps.sh should have)" >&2
  exit 2
}
port=${EXHOOK_PORT:-1883}
db=${EXHOOK_DB:-$PWD/exhook.db}
case $db in /*) ;; *) db=$PWD/$db ;; esac
plugin=$PWD/build/exhook_mosquitto.so
demo=acme:demo

# Debian's own mosquitto service listens on 1883 once the package is installed.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "run.sh: 127.0.0.1:$port is already in use (Debian's mosquitto service?" \
    "'sudo systemctl stop mosquitto'), or pick another port:" \
    "EXHOOK_PORT=1884 bash scripts/run.sh" >&2
  exit 2
fi

demo_pw=
if [ ! -e "$db" ]; then
  $ctl --db "$db" init
  demo_pw=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
  printf '%s\n' "$demo_pw" | $ctl --db "$db" add-user "$demo" --password-stdin >/dev/null
fi

rundir=$(mktemp -d "${TMPDIR:-/tmp}/exhook-run.XXXXXX")
trap 'rm -rf "$rundir"' EXIT
conf=$rundir/mosquitto.conf
# `user`: a broker started as root would otherwise switch to the `mosquitto`
# user, which cannot open a 0600 store owned by whoever ran init.
cat >"$conf" <<EOF
# written by scripts/run.sh; removed when the broker stops
user $(id -un)
listener $port 127.0.0.1
persistence false
pid_file $rundir/mosquitto.pid
log_dest stderr
# all: also the plugin's connect decisions and denied publishes (debug level)
log_type all
log_timestamp_format %H:%M:%S
# The policy decides anonymous clients: with allow_anonymous false (2.0's
# default) Mosquitto would drop the ones it admits at every reload (README).
allow_anonymous true
plugin $plugin
plugin_opt_database $db
plugin_opt_policy $PWD/policies
EOF

if [ "$PWD" = "$(dirname "$db")" ]; then dbopt="--db ${db##*/}"; else dbopt="--db $db"; fi
if [ -n "$demo_pw" ]; then pw=$demo_pw; else pw='<its password>'; fi
cat <<EOF

exhook: Mosquitto on 127.0.0.1:$port, policy $PWD/policies, store $db
EOF
if [ -n "$demo_pw" ]; then
  cat <<EOF
Created $db with the demo user '$demo', password: $demo_pw
(shown only this once; 'build/exhookctl $dbopt passwd $demo' sets a new one)
EOF
else
  cat <<EOF
Using the existing store; its demo user is '$demo' (password shown on the first
run; 'build/exhookctl $dbopt passwd $demo' sets a new one).
EOF
fi
cat <<EOF

Paste these into another terminal (add a user; subscribe; publish):

  printf 'pick-a-password\\n' | build/exhookctl $dbopt add-user acme:alice --password-stdin
  mosquitto_sub -h 127.0.0.1 -p $port -u $demo -P '$pw' -t 'tenants/acme/shared/#' -v
  mosquitto_pub -h 127.0.0.1 -p $port -u $demo -P '$pw' -t tenants/acme/shared/hello -m 'hello from acme'

Denied, for comparison: -t 'tenants/other/shared/#', -t '#', or a retained (-r)
publish.  After editing policies/, reload without a restart:
  kill -HUP \$(cat $rundir/mosquitto.pid)
Ctrl-C stops the broker.

EOF

# In the foreground: Ctrl-C reaches mosquitto, which shuts down cleanly and
# exits 0; then the trap removes the runtime directory.
rc=0
mosquitto -c "$conf" || rc=$?
echo "exhook: broker stopped"
exit "$rc"
