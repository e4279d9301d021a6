#!/usr/bin/env bash
# driver_rss.sh [USERS] [RULES] [LOGINS] -- exhook-driver's memory with a
# generated policy of RULES rules (bench_eval --dump) and a store of USERS
# users (imported from a generated mosquitto password file), after LOGINS
# logins and ACL checks.  Defaults: 1000000 users, 100000 rules, 2000 logins.
set -euo pipefail
users=${1:-1000000}
rules=${2:-100000}
logins=${3:-2000}
cd "$(dirname "$0")/.."
b=build
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/policy"
"$b/bench_eval" --dump "$rules" > "$tmp/policy/bench.policy"
# One real $7$ hash (cheap to verify) shared by every user.
mosquitto_passwd -b -c "$tmp/one" x benchpw
hash=$(cut -d: -f2- < "$tmp/one")
awk -v n="$users" -v h="$hash" 'BEGIN { for (i = 0; i < n; i++) printf "dev%06d:%s\n", i, h }' > "$tmp/users"
"$b/exhookctl" --db "$tmp/s.db" init > /dev/null
"$b/exhookctl" --db "$tmp/s.db" import mosquitto-passwd "$tmp/users" 2>/dev/null
escript bench/driver_rss.escript "$b/exhook-driver" "$tmp/s.db" "$tmp/policy" "$users" "$logins" benchpw
