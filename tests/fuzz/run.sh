#!/usr/bin/env bash
#
# run.sh SECONDS -- build the libFuzzer targets and run each for SECONDS.
#
# Builds tests/fuzz/fuzz_*.c with clang, ASan and UBSan into build-fuzz/,
# then runs every fuzz_<name> target on a scratch copy of its seed corpus
# tests/fuzz/corpus/<name>/ (the work corpus and any crash artifacts go to
# tests/fuzz/out/<target>/, which git ignores, so the checked-in seeds stay
# small and reviewed).  SECONDS=0 only executes every seed once: a quick
# regression run for CI.  Exits non-zero if any target crashed, leaked,
# timed out or ran out of memory.
#
# Usable from any directory: paths are taken relative to this script.
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS   (0 = run every seed once)" >&2
    exit 2
}

[[ $# -eq 1 ]] || usage
# Not named SECONDS: that is a bash special variable (it counts up).
secs=$1
[[ $secs =~ ^[0-9]+$ ]] || usage

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build="$root/build-fuzz"
out="$root/tests/fuzz/out"

shopt -s nullglob
sources=("$root"/tests/fuzz/fuzz_*.c)
shopt -u nullglob
if [[ ${#sources[@]} -eq 0 ]]; then
    echo "run.sh: no tests/fuzz/fuzz_*.c targets" >&2
    exit 2
fi
targets=()
for src in "${sources[@]}"; do
    name=$(basename "$src" .c)
    targets+=("$name")
done

# EXH_FUZZ also gives the library coverage instrumentation
# (-fsanitize=fuzzer-no-link, see CMakeLists.txt).
echo "== configure and build (${targets[*]})"
cmake -S "$root" -B "$build" \
    -DCMAKE_C_COMPILER=clang \
    -DEXH_FUZZ=ON -DEXH_SANITIZE=ON -DEXH_TESTS=OFF -DEXH_BENCH=OFF >/dev/null
# Only the fuzz targets: a half-finished CLI must not stop the fuzzing.
jobs=$(nproc 2>/dev/null || echo 2)
for t in "${targets[@]}"; do
    cmake --build "$build" --target "$t" -j "$jobs"
done

# Abort on the first UBSan report (the build already sets
# -fno-sanitize-recover) and show where.  Leak checking stays on.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

failed=()
for t in "${targets[@]}"; do
    seeds="$root/tests/fuzz/corpus/${t#fuzz_}"
    work="$out/$t/corpus"
    artifacts="$out/$t/artifacts"
    log="$out/$t/fuzz.log"
    stamp="$out/$t/started"
    rm -rf "$work"
    mkdir -p "$work" "$artifacts"
    touch "$stamp"
    if [[ -d $seeds ]]; then
        cp -R "$seeds"/. "$work"/
    else
        echo "run.sh: warning: no seed corpus $seeds; $t starts from nothing" >&2
    fi
    nseeds=$(find "$work" -type f | wc -l)

    # -runs=0 with a corpus directory executes every file in it once and
    # stops; otherwise fuzz for the given time.  -timeout catches inputs
    # that stall (a regex gone wild); -rss_limit_mb inputs that balloon.
    args=(-print_final_stats=1 -timeout=10 -rss_limit_mb=2048
        "-artifact_prefix=$artifacts/")
    if [[ $secs -eq 0 ]]; then
        args+=(-runs=0)
        what="every seed once"
    else
        args+=("-max_total_time=$secs")
        what="${secs}s"
    fi

    echo "== $t: $what, $nseeds seeds, log $log"
    rc=0
    "$build/$t" "${args[@]}" "$work" >"$log" 2>&1 || rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    ncorpus=$(find "$work" -type f | wc -l)
    # Artifacts of earlier runs are kept (they may be the only copy of a
    # crash input) but only this run's decide the outcome.
    found=()
    while IFS= read -r a; do
        found+=("$a")
    done < <(find "$artifacts" -type f -newer "$stamp")
    if [[ $rc -ne 0 || ${#found[@]} -gt 0 ]]; then
        echo "$t: FAILED (exit $rc) after ${execs:-?} executions"
        # Show the report from its first line (sanitizer, failed check,
        # signal, timeout or OOM) down to the top of its stack.
        report=$(sed -n -E '/==ERROR|runtime error|check failed|deadly signal|ALARM|out-of-memory/,$p' \
            "$log" | grep -v -E '^ +0x[0-9a-f]+:|^Shadow|^  [A-Z][a-z].*: ' | head -n 30 || true)
        if [[ -n $report ]]; then
            printf '%s\n' "$report"
        else
            tail -n 20 "$log"
        fi
        for a in "${found[@]}"; do
            echo "$t: reproduce with: $build/$t $a"
        done
        failed+=("$t")
    else
        echo "$t: ok, executions=${execs:-?} corpus=$nseeds->$ncorpus"
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run.sh: ${#failed[@]} target(s) failed: ${failed[*]}"
    exit 1
fi
echo "run.sh: all ${#targets[@]} target(s) ok"
