#!/usr/bin/env bash
# store_bench.sh -- the credential store on each backend, in the same run:
# bench_store (bench/bench_store.c) on a SQLite file and on a throwaway
# PostgreSQL 15 of its own (tests/lib/pg.sh: local, Unix socket and TCP on
# 127.0.0.1; the numbers are this machine's, a server across a network
# adds its round trip to every read).
#   bench/store_bench.sh [BUILD-DIR]   env: THREADS=4 USERS=1000 SECONDS_EACH=3 (seconds per measure) COLD=40
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$build/bench_store
[ -x "$bin" ] || { echo "no $bin: build the bench_store target" >&2; exit 2; }
args=(--threads "${THREADS:-4}" --users "${USERS:-1000}" --seconds "${SECONDS_EACH:-3}" --cold "${COLD:-40}")
. tests/lib/pg.sh
pg_start >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; pg_stop' EXIT
echo "$(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$bin" "$tmp/bench.db" "${args[@]}"
"$bin" "$EXH_TEST_PG_URI" "${args[@]}"
# what the users take on the server: rows, TOAST and indexes
bytes=$(pg_psql exhook_test -c "SELECT pg_total_relation_size('users') + pg_total_relation_size('memberships')")
echo "PostgreSQL: users and memberships take $bytes bytes for ${USERS:-1000} users (2 groups each): $((bytes / ${USERS:-1000})) bytes a user"
# the same server over its Unix socket, on a database of its own
pg_createdb exhook_sock >/dev/null
"$bin" "postgresql://exhook@/exhook_sock?host=$PG_DIR&port=$PG_PORT" "${args[@]}"
