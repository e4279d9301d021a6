#!/usr/bin/env bash
# What metrics and the decision audit log cost an ACL check, two ways:
#
#  1. instructions the deciding thread spends per check, counted by
#     callgrind (repeatable, whatever else the machine does): each variant
#     run alone with N and 2N checks, the difference over N, so start-up
#     and the login are not in it; the audit writer's own thread is
#     counted apart (--separate-threads) and shown beside it;
#  2. time: bench/observe_bench.c's interleaved rounds, median round,
#     p50 and p99 of single checks.
#
# For both front-end paths: grpc (exhook-grpc and exhook-driver) and
# plugin (the Mosquitto plugin with its decision cache), a client cycling
# 50 topics (the plugin's cache misses every time); and the plugin with 3
# topics (nearly every check a cache hit, ~350 instructions: there the
# same absolute cost is the largest share).  1 deny in 100.
#
# Usage: [N=20000] [DENY=100] [SPECS="grpc:50 plugin:50 plugin:3"] bench/observe_bench.sh [BUILD-DIR]
#   (default build dir: build; SPECS: the FRONT:TOPICS cases to run)
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:-build}
bin=$b/observe_bench
[ -x "$bin" ] || { echo "no $bin: cmake --build $b --target observe_bench" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 2; }
N=${N:-20000}
DENY=${DENY:-100} # 1 deny in DENY checks
SPECS=${SPECS:-grpc:50 plugin:50 plugin:3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=("off" "metrics" "metrics+audit denies" "metrics+audit all")

# instr FRONT VARIANT CHECKS TOPICS: "main writer" instruction totals
instr() {
  rm -f "$tmp"/cg.*
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/cg.%p" \
    "$bin" --front "$1" --only "$2" --checks "$3" --topics "$4" --deny-every "$DENY" >/dev/null 2>"$tmp/vg.err" ||
    { cat "$tmp/vg.err" >&2; exit 1; }
  local main writer=0 f t
  main=$(awk '/^totals:/ {print $2}' "$tmp"/cg.*-01)
  # the audit writer: the thread that ran writer_main
  for f in "$tmp"/cg.*-0[2-9]; do
    [ -e "$f" ] || continue
    if grep -q 'writer_main' "$f"; then
      t=$(awk '/^totals:/ {print $2}' "$f")
      writer=$((writer + t))
    fi
  done
  echo "$main $writer"
}

for spec in $SPECS; do
  front=${spec%:*} topics=${spec#*:}
  echo "== $front, $topics topics: instructions per check (callgrind, $N and $((2 * N)) checks)"
  printf '%-22s %12s %9s %18s\n' variant "deciding" "vs off" "audit writer"
  base=
  for k in 0 1 2 3; do
    read -r m1 w1 < <(instr "$front" "$k" "$N" "$topics")
    read -r m2 w2 < <(instr "$front" "$k" $((2 * N)) "$topics")
    per=$(awk -v a="$m1" -v b="$m2" -v n="$N" 'BEGIN {printf "%.1f", (b - a) / n}')
    wper=$(awk -v a="$w1" -v b="$w2" -v n="$N" 'BEGIN {printf "%.1f", (b - a) / n}')
    [ -z "$base" ] && base=$per
    rel=$(awk -v p="$per" -v b="$base" 'BEGIN {printf "%+.1f%%", (p / b - 1) * 100}')
    printf '%-22s %12s %9s %18s\n' "${names[$k]}" "$per" "$rel" "$wper"
  done
done
for spec in $SPECS; do
  echo "== ${spec%:*}, ${spec#*:} topics: time (interleaved rounds)"
  "$bin" --front "${spec%:*}" --topics "${spec#*:}" --checks 300000 --rounds 11 --deny-every "$DENY"
done
