#!/usr/bin/env bash
# exports.sh -- a shared object exports its API and nothing else.
#
#   exports.sh library <libexhook.so> <include/exhook dir>
#   exports.sh mosquitto-plugin <exhook_mosquitto.so>
#
# library: every defined dynamic symbol must be a function or variable
# declared in include/exhook/*.h.  The allowed set is read from the
# headers themselves (every `exh_name(` in them), so a new public function
# needs no edit here, and an internal one (lex_init, strmap_put, ...)
# leaking out of the library fails the test: a program could link against
# it, and then it could never change.
#
# mosquitto-plugin: the broker loads the plugin by three names; anything
# else it exports could clash with another plugin's or the broker's own
# symbols in the same process.
#
# Prints "N passed, N failed" last, like the other script suites.
set -u

mode=${1:-}
so=${2:-}
if [[ -z "$mode" || -z "$so" ]]; then
    echo "usage: $0 library <lib.so> <include-dir> | mosquitto-plugin <plugin.so>" >&2
    exit 2
fi
if [[ ! -f "$so" ]]; then
    echo "$so: no such file" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$mode" in
library)
    incdir=${3:-}
    if [[ -z "$incdir" || ! -d "$incdir" ]]; then
        echo "$0: library mode needs the include/exhook directory" >&2
        exit 2
    fi
    # Declarations may put blanks before the parenthesis; comments naming a
    # function with "()" only widen the set by a name that is public anyway.
    grep -ohE '\bexh_[a-z0-9_]+[[:space:]]*\(' "$incdir"/*.h | sed -E 's/[[:space:]]*\($//' |
        sort -u >"$tmp/allowed"
    ;;
mosquitto-plugin)
    printf '%s\n' mosquitto_plugin_cleanup mosquitto_plugin_init mosquitto_plugin_version \
        >"$tmp/allowed"
    ;;
*)
    echo "$0: unknown mode '$mode'" >&2
    exit 2
    ;;
esac

# Defined dynamic symbols, without the linker's own markers (_init,
# _fini, __bss_start, _edata, _end) that every shared object carries.
nm -D --defined-only "$so" | awk '$2 ~ /^[A-Za-z]$/ {print $3}' | sed 's/@.*//' |
    grep -vxE '_init|_fini|__bss_start|_edata|_end' | sort -u >"$tmp/exported"

comm -23 "$tmp/exported" "$tmp/allowed" >"$tmp/extra"
comm -13 "$tmp/exported" "$tmp/allowed" >"$tmp/missing"

pass=0 fail=0
if [[ -s "$tmp/extra" ]]; then
    echo "FAIL $so exports $(wc -l <"$tmp/extra") symbol(s) no public header declares:"
    sed 's/^/    /' "$tmp/extra"
    fail=$((fail + 1))
else
    echo "ok   $so exports only declared symbols ($(wc -l <"$tmp/exported"))"
    pass=$((pass + 1))
fi
# A declared name not exported is reported, not failed: a header may
# declare what another header's pragma has not yet made visible while it
# is being changed, and a missing symbol fails every program that uses it
# at link time anyway.
if [[ -s "$tmp/missing" ]]; then
    echo "note: declared but not exported by $so:"
    sed 's/^/    /' "$tmp/missing"
fi
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
