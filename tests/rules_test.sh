#!/usr/bin/env bash
# Policy authoring through exhookctl: list-rules, add-rule, del-rule, fmt.
# Every edit runs on copies in a temporary directory; policies/ is never
# touched.  Usage: rules_test.sh PATH-TO-EXHOOKCTL (cwd: the repository).
# RULES_TEST_EDITS sets the number of edits of the atomicity run (1000).
# Last line: "N passed, N failed".
set -u
ctl=${1:?usage: rules_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
[ -x "$ctl" ] || { echo "rules_test.sh: no executable $ctl"; exit 2; }
cd "$(dirname "$0")/.."
repo=$PWD
pass=0 fail=0
tmp=$(mktemp -d)
bgpids=()
cleanup() {
  for p in "${bgpids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# check NAME COMMAND...: passes when the command succeeds
check() {
  local name=$1
  shift
  if "$@"; then ok; else bad "$name"; fi
}

# run WANT_STATUS command...: stdout in $out, stderr in $err, status in $st
run() {
  local want=$1
  shift
  out=$("$@" 2>"$tmp/stderr"); st=$?
  err=$(cat "$tmp/stderr")
  [ "$st" = "$want" ]
}

# A fresh copy of the example policies (and their tests) in $tmp/$1.
fresh() {
  rm -rf "${tmp:?}/$1"
  mkdir -p "$tmp/$1"
  cp policies/*.policy policies/*.test "$tmp/$1/"
}

# rules POLICY: the number of rules
rules() { "$ctl" --policy "$1" list-rules | wc -l; }

# rule_field POLICY N FIELD: a field of rule N from list-rules --json
rule_field() {
  "$ctl" --policy "$1" list-rules --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["rules"][int(sys.argv[1])-1]; print(r[sys.argv[2]])' "$2" "$3"
}

# inserted BEFORE AFTER LINE TEXT: AFTER is BEFORE with the line TEXT
# inserted as line LINE, every other byte the same.
inserted() {
  { head -n $(($3 - 1)) "$1"; printf '%s\n' "$4"; tail -n +"$3" "$1"; } >"$tmp/expect"
  cmp -s "$tmp/expect" "$2"
}

# removed BEFORE AFTER FIRST LAST: AFTER is BEFORE without lines FIRST..LAST.
removed() {
  { head -n $(($3 - 1)) "$1"; tail -n +$(($4 + 1)) "$1"; } >"$tmp/expect"
  cmp -s "$tmp/expect" "$2"
}

# Nothing here may touch policies/, not even with a lock file.
lock_before=$([ -e policies/.exhookctl.lock ] && echo yes || echo no)

# The first rule of 10-system.policy is written over five lines.
dl=$(grep -n '^allow subscribe username "dashboard"' policies/10-system.policy | cut -d: -f1)
[ -n "$dl" ] || { echo "policies/10-system.policy changed: update rules_test.sh"; exit 1; }

# ---- --help and usage ----
for cmd in list-rules add-rule del-rule fmt; do
  run 0 "$ctl" "$cmd" --help && echo "$out" | grep -q "^usage: exhookctl $cmd" && ok || bad "$cmd --help"
done
"$ctl" --help | grep -q "add-rule" && ok || bad "exhookctl --help lists add-rule"
run 2 "$ctl" --policy policies list-rules --bogus && ok || bad "list-rules bad option: $st"
run 2 "$ctl" --policy policies add-rule && ok || bad "add-rule without RULE-TEXT: $st"
run 2 "$ctl" --policy policies add-rule allow publish && ok || bad "add-rule two words: $st"
run 2 "$ctl" --policy policies add-rule --before 1 --after 2 'allow publish' && ok || bad "--before and --after: $st"
run 2 "$ctl" --policy policies add-rule --before x 'allow publish' && ok || bad "--before x: $st"
run 2 "$ctl" --policy policies add-rule --before 0 'allow publish' && ok || bad "--before 0: $st"
run 2 "$ctl" --policy policies add-rule --frob 'allow publish' && ok || bad "add-rule unknown option: $st"
run 2 "$ctl" --policy policies del-rule && ok || bad "del-rule without argument: $st"
run 2 "$ctl" --policy policies del-rule --position 1 policies/40-ops.policy:5 && ok || bad "del-rule both: $st"
run 2 "$ctl" --policy policies del-rule policies/40-ops.policy && ok || bad "del-rule no line: $st"
run 2 "$ctl" --policy policies del-rule --position -3 && ok || bad "del-rule --position -3: $st"
run 2 "$ctl" fmt --check --bogus && ok || bad "fmt bad option: $st"

# ---- list-rules ----
fresh l
P="$ctl --policy $tmp/l"
n=$($P lint | tail -n1 | cut -d' ' -f1)
run 0 $P list-rules && ok || bad "list-rules status $st: $err"
[ "$(echo "$out" | wc -l)" = "$n" ] && ok || bad "list-rules lists $n rules: $out"
echo "$out" | awk -v n="$n" '
  { if ($1 != NR || $2 !~ /\.policy:[0-9]+:$/ || ($3 != "allow" && $3 != "deny")) bad = 1 }
  END { exit bad || NR != n }' && ok || bad "list-rules lines: number, file:line:, text: $out"
# each file:line names the line the rule starts on, and the text is the rule's
echo "$out" | while read -r num loc eff rest; do
  f=${loc%:*}; f=${f%:*}; l=${loc%:}; l=${l##*:}
  sed -n "${l}p" "$f" | grep -Eq "^$eff +" || echo "rule $num: $f:$l does not start with $eff"
done >"$tmp/where"
[ -s "$tmp/where" ] && bad "list-rules locations: $(cat "$tmp/where")" || ok
echo "$out" | grep -qF "  $tmp/l/10-system.policy:$dl: allow subscribe username \"dashboard\" topic \"\$SYS/brokers/+/stats/#\" \"\$SYS/brokers/+/metrics/#\"" \
  && ok || bad "list-rules joins a continued rule: $out"
run 0 $P list-rules --json && ok || bad "list-rules --json status $st"
echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
rs = d["rules"]
assert d["default"] == "deny"
assert [r["number"] for r in rs] == list(range(1, len(rs) + 1))
assert all(r["end_line"] >= r["line"] for r in rs)
r = rs[0]
assert r["file"].endswith("/10-system.policy") and r["line"] == int(sys.argv[1]) and r["end_line"] == r["line"] + 4, r
assert r["text"].startswith("allow subscribe username \"dashboard\" topic")
print(len(rs))' "$dl" >"$tmp/n" 2>&1 && [ "$(cat "$tmp/n")" = "$n" ] && ok || bad "list-rules --json: $(cat "$tmp/n")"
l=$(grep -nE '^(allow|deny) ' "$tmp/l/40-ops.policy" | head -n1 | cut -d: -f1)
run 0 "$ctl" list-rules "$tmp/l/40-ops.policy" && [ "$(echo "$out" | head -n1 | awk '{print $1, $2}')" = "1 $tmp/l/40-ops.policy:$l:" ] \
  && ok || bad "list-rules PATH: $out"
printf 'allow publish topic "a/#/b"\n' >"$tmp/broken.policy"
run 2 "$ctl" list-rules "$tmp/broken.policy" && echo "$err" | grep -q "broken.policy:1:" && ok || bad "list-rules broken: $st $err"

# ---- add-rule: append, canonical layout, every other byte kept ----
fresh a
P="$ctl --policy $tmp/a"
cp -r "$tmp/a" "$tmp/a.orig"
n=$(rules "$tmp/a")
last=$(wc -l <"$tmp/a/40-ops.policy")
run 0 $P add-rule 'allow    publish   username "x"    topic   "x/#"' && ok || bad "add-rule append: $st $err"
[ "$out" = "added rule $((n + 1)) at $tmp/a/40-ops.policy:$((last + 1))" ] && ok || bad "add-rule message: $out"
check "append: the canonical line at the end of the last file, nothing else changed" \
  inserted "$tmp/a.orig/40-ops.policy" "$tmp/a/40-ops.policy" $((last + 1)) 'allow publish username "x" topic "x/#"'
for f in 10-system 20-devices 30-tenants 00-default; do
  cmp -s "$tmp/a.orig/$f.policy" "$tmp/a/$f.policy" && ok || bad "append changed $f.policy"
done
[ "$(rule_field "$tmp/a" $((n + 1)) text)" = 'allow publish username "x" topic "x/#"' ] && ok || bad "appended rule is last"
# a trailing comment in RULE-TEXT goes with the rule
cp "$tmp/a/40-ops.policy" "$tmp/before"
run 0 $P add-rule 'allow publish username "y" topic "y/#"   # ticket 42' && \
  inserted "$tmp/before" "$tmp/a/40-ops.policy" $((last + 2)) 'allow publish username "y" topic "y/#"  # ticket 42' \
  && ok || bad "add-rule with a comment: $st $err"

# --file: the end of another file, named as the policy names it, or otherwise
cp "$tmp/a/20-devices.policy" "$tmp/before"
l=$(($(wc -l <"$tmp/before") + 1))
run 0 $P add-rule --file "$tmp/a/20-devices.policy" 'deny publish clientid "dev-x"' && \
  inserted "$tmp/before" "$tmp/a/20-devices.policy" $l 'deny publish clientid "dev-x"' \
  && ok || bad "add-rule --file: $st $out $err"
echo "$out" | grep -q "at $tmp/a/20-devices.policy:$l\$" && ok || bad "add-rule --file message: $out"
cp "$tmp/a/20-devices.policy" "$tmp/before"
(cd "$tmp/a" && "$ctl" --policy "$tmp/a" add-rule --file ./20-devices.policy 'deny publish clientid "dev-y"' >/dev/null 2>&1) && \
  inserted "$tmp/before" "$tmp/a/20-devices.policy" $((l + 1)) 'deny publish clientid "dev-y"' \
  && ok || bad "add-rule --file by another path"
run 2 $P add-rule --file "$tmp/broken.policy" 'allow publish' && echo "$err" | grep -q "not one of the policy's files" \
  && ok || bad "add-rule --file outside the policy: $st $err"

# --before N / --after N, in rule N's file
fresh b
P="$ctl --policy $tmp/b"
cp -r "$tmp/b" "$tmp/b.orig"
f=$(rule_field "$tmp/b" 4 file); l=$(rule_field "$tmp/b" 4 line)
run 0 $P add-rule --before 4 'deny subscribe username "z"' && ok || bad "add-rule --before: $st $err"
[ "$out" = "added rule 4 at $f:$l" ] && ok || bad "--before message: $out"
check "--before: inserted above rule 4's first line" inserted "$tmp/b.orig/${f##*/}" "$f" "$l" 'deny subscribe username "z"'
[ "$(rule_field "$tmp/b" 4 text)" = 'deny subscribe username "z"' ] && ok || bad "--before: it is rule 4"
cp "$tmp/b/10-system.policy" "$tmp/before"
run 0 $P add-rule --after 1 --file "$tmp/b/10-system.policy" 'deny subscribe username "w"' && ok || bad "add-rule --after: $st $err"
check "--after a continued rule: below its last line" inserted "$tmp/before" "$tmp/b/10-system.policy" $((dl + 5)) 'deny subscribe username "w"'
[ "$out" = "added rule 2 at $tmp/b/10-system.policy:$((dl + 5))" ] && ok || bad "--after message: $out"
cp -r "$tmp/b" "$tmp/b.now"
run 2 $P add-rule --before 3 --file "$tmp/b/40-ops.policy" 'allow publish' && ok || bad "--before in another file than --file: $st"
run 2 $P add-rule --after 999 'allow publish' && echo "$err" | grep -q "no rule 999" && ok || bad "--after 999: $st $err"
diff -r -x .exhookctl.lock "$tmp/b.now" "$tmp/b" >/dev/null && ok || bad "refused placements changed files"

# ---- add-rule refusals leave every file byte for byte as it was ----
fresh r
P="$ctl --policy $tmp/r"
cp -r "$tmp/r" "$tmp/r.orig"
run 2 $P add-rule 'allow publish username "a" topic "a/#/b"' && echo "$err" | grep -q '^<rule>:1:37: error: ' \
  && echo "$err" | grep -qx ' *\^' && ok || bad "bad RULE-TEXT points into it: $st $err"
run 2 $P add-rule 'allow publish topic "devices/${serial}/x"' && echo "$err" | grep -q '^<rule>:1:30: error: placeholder' \
  && ok || bad "placeholder error in RULE-TEXT: $st $err"
run 2 $P add-rule 'default allow' && echo "$err" | grep -q "^<rule>:1:1: error: expected a rule, found a 'default'" \
  && ok || bad "a second default is refused: $st $err"
run 2 $P add-rule '# just a comment' && ok || bad "comment-only RULE-TEXT: $st"
run 2 $P add-rule '' && ok || bad "empty RULE-TEXT: $st"
run 2 $P add-rule 'allow publish \
topic "a"' && echo "$err" | grep -q "one line" && ok || bad "two-line RULE-TEXT: $st $err"
run 2 $P add-rule --dry-run 'allow publish topic "a/#/b"' && [ -z "$out" ] && ok || bad "dry-run of a bad rule: $st $out"
diff -r -x .exhookctl.lock "$tmp/r.orig" "$tmp/r" >/dev/null && ok || bad "refused RULE-TEXTs changed files"
# a file ending in a continuation: alone the rule compiles, appended it would
# join the statement above; the whole policy is compiled first
printf 'default deny\n# the last rule dangles\nallow publish topic "a" \\\n' >"$tmp/dangle.policy"
cp "$tmp/dangle.policy" "$tmp/dangle.orig"
run 2 "$ctl" --policy "$tmp/dangle.policy" add-rule 'allow publish topic "b"' \
  && echo "$err" | grep -q "dangle.policy:4:1: error: " && ok || bad "append after a dangling continuation: $st $err"
cmp -s "$tmp/dangle.orig" "$tmp/dangle.policy" && ok || bad "failed compile changed the file"
# a policy that does not compile now is not edited either
fresh r2
printf 'allow publish topic "a/#/b"\n' >"$tmp/r2/50-broken.policy"
cp -r "$tmp/r2" "$tmp/r2.orig"
run 2 "$ctl" --policy "$tmp/r2" add-rule --file "$tmp/r2/40-ops.policy" 'allow publish topic "b"' \
  && echo "$err" | grep -q "50-broken.policy:1:" && diff -r -x .exhookctl.lock "$tmp/r2.orig" "$tmp/r2" >/dev/null \
  && ok || bad "add-rule on a broken policy: $st $err"

# ---- comment and layout preservation, byte for byte ----
# odd spacing, tabs, trailing blanks, comments everywhere, no final newline
printf '# head\t comment  \n\ndefault   deny   # why not\n\n   # indented comment\nallow  publish\tusername "a"   topic "a/#"   \t\nallow subscribe \\\n      topic "b/#" \\\n   "c/#"  # tail\n\n# trailing words' >"$tmp/odd.policy"
cp "$tmp/odd.policy" "$tmp/odd.orig"
O="$ctl --policy $tmp/odd.policy"
run 0 $O add-rule --before 2 'deny   subscribe topic "b/x"' && \
  inserted "$tmp/odd.orig" "$tmp/odd.policy" 7 'deny subscribe topic "b/x"' && ok || bad "odd file --before: $st $err"
cp "$tmp/odd.policy" "$tmp/odd.1"
run 0 $O add-rule --after 3 'deny subscribe topic "c/x"' && \
  inserted "$tmp/odd.1" "$tmp/odd.policy" 11 'deny subscribe topic "c/x"' && ok || bad "odd file --after: $st $err"
cp "$tmp/odd.policy" "$tmp/odd.2"
run 0 $O add-rule 'deny subscribe topic "d/x"' && ok || bad "odd file append: $st $err"
{ cat "$tmp/odd.2"; printf '\ndeny subscribe topic "d/x"\n'; } >"$tmp/expect"
cmp -s "$tmp/expect" "$tmp/odd.policy" && ok || bad "append to a file without a final newline: $(od -c "$tmp/odd.policy" | tail -n3)"
# del-rule takes exactly the lines it added
run 0 $O del-rule "$tmp/odd.policy:14" && run 0 $O del-rule "$tmp/odd.policy:11" && run 0 $O del-rule --position 2 \
  && { cat "$tmp/odd.orig"; printf '\n'; } | cmp -s - "$tmp/odd.policy" && ok || bad "add then del restores every byte: $st $err"
# CRLF files stay CRLF
printf 'default deny\r\nallow publish topic "a"\r\n' >"$tmp/crlf.policy"
run 0 "$ctl" --policy "$tmp/crlf.policy" add-rule 'allow publish topic "b"' \
  && printf 'default deny\r\nallow publish topic "a"\r\nallow publish topic "b"\r\n' | cmp -s - "$tmp/crlf.policy" \
  && ok || bad "CRLF file: $(od -c "$tmp/crlf.policy")"

# ---- shadowing warnings, still written ----
fresh s
P="$ctl --policy $tmp/s"
run 0 $P add-rule --before 1 'deny subscribe username "dashboard"' && ok || bad "shadowing add-rule status $st"
echo "$err" | grep -q "10-system.policy:$((dl + 1)):1: warning: rule 2 is shadowed by the new rule 1 at $tmp/s/10-system.policy:$dl" \
  && ok || bad "warning: the new rule shadows a later one: $err"
[ "$(rule_field "$tmp/s" 1 text)" = 'deny subscribe username "dashboard"' ] && ok || bad "shadowing rule written"
run 0 $P add-rule 'deny subscribe username "dashboard" topic "x/y"' && ok || bad "shadowed add-rule status $st"
echo "$err" | grep -q "40-ops.policy:[0-9]*:1: warning: the new rule is shadowed by rule 1 at $tmp/s/10-system.policy:$dl" \
  && ok || bad "warning: the new rule is shadowed: $err"
run 0 $P add-rule 'allow publish username "fresh" topic "fresh/#"' && [ -z "$err" ] && ok || bad "no warning for an unrelated rule: $err"

# ---- --dry-run: a unified diff that patch applies, nothing written ----
fresh d
P="$ctl --policy $tmp/d"
cp -r "$tmp/d" "$tmp/d.orig"
have_patch=1
command -v patch >/dev/null || { have_patch=0; bad "patch(1) not installed: the checks that apply diffs cannot run (bash scripts/deps.sh installs it)"; }
# applies DIFF ORIG WANT: patch turns a copy of ORIG into WANT
applies() {
  [ "$have_patch" = 1 ] || return 0
  cp "$2" "$tmp/patched"
  patch --dry-run -s "$tmp/patched" <"$1" >/dev/null && patch -s "$tmp/patched" <"$1" >/dev/null && cmp -s "$tmp/patched" "$3"
}
dry() { # dry NAME FILE ARGS...: dry run, then the real edit on a copy; compare
  local name=$1 file=$2
  shift 2
  run 0 "$ctl" --policy "$tmp/d" "$@" --dry-run >/dev/null || { bad "$name dry-run: $st $err"; return; }
  echo "$out" >"$tmp/diff"
  diff -r -x .exhookctl.lock "$tmp/d.orig" "$tmp/d" >/dev/null || { bad "$name: --dry-run wrote"; return; }
  head -n2 "$tmp/diff" | tr '\n' ' ' | grep -q "^--- $tmp/d/$file +++ $tmp/d/$file \$" || { bad "$name: diff headers: $out"; return; }
  sed -n 3p "$tmp/diff" | grep -Eq '^@@ -[0-9]+(,[0-9]+)? \+[0-9]+(,[0-9]+)? @@$' || { bad "$name: hunk header: $out"; return; }
  rm -rf "$tmp/d.real" && cp -r "$tmp/d.orig" "$tmp/d.real"
  "$ctl" --policy "$tmp/d.real" "${@//"$tmp/d/"/"$tmp/d.real/"}" >/dev/null 2>&1 || { bad "$name: real run failed"; return; }
  applies "$tmp/diff" "$tmp/d.orig/$file" "$tmp/d.real/$file" && ok || bad "$name: diff does not apply:"$'\n'"$out"
}
dry "add-rule append" 40-ops.policy add-rule 'allow publish username "q" topic "q/#"'
dry "add-rule --before" 10-system.policy add-rule --before 3 'allow publish username "q" topic "q/#"'
dry "add-rule --after first rule" 10-system.policy add-rule --after 1 'allow publish username "q"'
dry "del-rule continued rule" 10-system.policy del-rule "$tmp/d/10-system.policy:$((dl + 2))"
f20=$(rule_field "$tmp/d" 20 file)
dry "del-rule --position" "${f20##*/}" del-rule --position 20
run 0 "$ctl" --policy "$tmp/d" add-rule --dry-run --after 1 'allow publish username "q"' \
  && [ "$(echo "$out" | sed -n 3p)" = "@@ -$((dl + 2)),6 +$((dl + 2)),7 @@" ] && [ "$(echo "$out" | grep -c '^+[^+]')" = 1 ] \
  && [ "$(echo "$out" | grep -c '^-[^-]')" = 0 ] && [ "$(echo "$out" | grep -c '^ ')" = 6 ] \
  && ok || bad "dry-run diff has 3 lines of context: $out"
# a file without a final newline: the diff says so and still applies
printf 'default deny\nallow publish topic "a"' >"$tmp/nonl.policy"
cp "$tmp/nonl.policy" "$tmp/nonl.orig"
run 0 "$ctl" --policy "$tmp/nonl.policy" add-rule --dry-run 'allow publish topic "b"' && echo "$out" >"$tmp/diff" \
  && grep -qx '\\ No newline at end of file' "$tmp/diff" && ok || bad "no-newline diff: $out"
printf 'default deny\nallow publish topic "a"\nallow publish topic "b"\n' >"$tmp/nonl.want"
applies "$tmp/diff" "$tmp/nonl.orig" "$tmp/nonl.want" && cmp -s "$tmp/nonl.orig" "$tmp/nonl.policy" && ok || bad "no-newline diff applies"

# ---- del-rule ----
fresh x
P="$ctl --policy $tmp/x"
cp -r "$tmp/x" "$tmp/x.orig"
n=$(rules "$tmp/x")
# a continued rule, named by one of its continuation lines: all five lines go
run 0 $P del-rule "$tmp/x/10-system.policy:$((dl + 2))" && ok || bad "del-rule continuation line: $st $err"
[ "$out" = "deleted rule 1 at $tmp/x/10-system.policy:$dl: $(rule_field "$tmp/x.orig" 1 text)" ] && ok || bad "del-rule message: $out"
check "del-rule: its five lines removed, nothing else" removed "$tmp/x.orig/10-system.policy" "$tmp/x/10-system.policy" "$dl" $((dl + 4))
[ "$(rules "$tmp/x")" = $((n - 1)) ] && ok || bad "del-rule: one rule fewer"
f=$(rule_field "$tmp/x" 5 file); l=$(rule_field "$tmp/x" 5 line); e=$(rule_field "$tmp/x" 5 end_line); t=$(rule_field "$tmp/x" 5 text)
cp "$f" "$tmp/before"
run 0 $P del-rule --position 5 && removed "$tmp/before" "$f" "$l" "$e" && ok || bad "del-rule --position: $st $err"
echo "$out" | grep -qF "deleted rule 5 at $f:$l: $t" && ok || bad "del-rule --position message: $out"
# by another path to the same file
cp "$tmp/x/40-ops.policy" "$tmp/before"
l=$(grep -n '^allow connect anonymous peerhost ::1$' "$tmp/before" | cut -d: -f1)
(cd "$tmp/x" && "$ctl" --policy "$tmp/x" del-rule "40-ops.policy:$l" >/dev/null) && removed "$tmp/before" "$tmp/x/40-ops.policy" "$l" "$l" \
  && ok || bad "del-rule by a relative path"
cp -r "$tmp/x" "$tmp/x.now"
run 1 $P del-rule "$tmp/x/40-ops.policy:1" && echo "$err" | grep -q "no rule at" && ok || bad "del-rule on a comment line: $st $err"
run 1 $P del-rule "$tmp/x/40-ops.policy:9999" && ok || bad "del-rule past the end: $st"
run 1 $P del-rule --position 9999 && ok || bad "del-rule --position 9999: $st"
run 2 $P del-rule "$tmp/broken.policy:1" && ok || bad "del-rule in a file outside the policy: $st"
diff -r -x .exhookctl.lock "$tmp/x.now" "$tmp/x" >/dev/null && ok || bad "failed del-rules changed files"

# ---- atomic write: mode, owner, symlinks, no temporary files left ----
fresh m
chmod 640 "$tmp/m/40-ops.policy"
if [ "$(id -u)" = 0 ]; then chown 12345:12346 "$tmp/m/40-ops.policy"; fi
before=$(stat -c '%a %u %g' "$tmp/m/40-ops.policy")
ino=$(stat -c %i "$tmp/m/40-ops.policy")
run 0 "$ctl" --policy "$tmp/m" add-rule 'allow publish username "m" topic "m/#"' && ok || bad "add-rule for mode test: $st $err"
[ "$(stat -c '%a %u %g' "$tmp/m/40-ops.policy")" = "$before" ] && ok || bad "mode/owner kept: $before vs $(stat -c '%a %u %g' "$tmp/m/40-ops.policy")"
[ "$(stat -c %i "$tmp/m/40-ops.policy")" != "$ino" ] && ok || bad "the file was replaced (new inode), not rewritten in place"
[ "$(ls -A "$tmp/m" | grep '^\.' | tr '\n' ' ')" = ".exhookctl.lock " ] && ok || bad "leftover files: $(ls -A "$tmp/m")"
mkdir "$tmp/real" "$tmp/ln" && printf 'default deny\n' >"$tmp/real/target.policy"
ln -s ../real/target.policy "$tmp/ln/link.policy"
run 0 "$ctl" --policy "$tmp/ln/link.policy" add-rule 'allow publish topic "l"' && [ -L "$tmp/ln/link.policy" ] \
  && printf 'default deny\nallow publish topic "l"\n' | cmp -s - "$tmp/real/target.policy" && ok || bad "symlinked policy file: $st $err"
# a read-only directory: refused cleanly, file unchanged
if [ "$(id -u)" != 0 ]; then
  fresh ro && chmod 555 "$tmp/ro"
  run 2 "$ctl" --policy "$tmp/ro" add-rule 'allow publish topic "r"' && ok || bad "read-only directory: $st"
  chmod 755 "$tmp/ro"
fi

# ---- the edit lock: add-rule waits for whoever holds it ----
if command -v flock >/dev/null; then
  fresh k
  touch "$tmp/k/.exhookctl.lock"
  flock "$tmp/k/.exhookctl.lock" sleep 1 &
  bgpids+=($!)
  sleep 0.2
  t0=$(date +%s%N)
  run 0 "$ctl" --policy "$tmp/k" add-rule 'allow publish topic "k"' && ok || bad "add-rule under a held lock: $st $err"
  waited=$((($(date +%s%N) - t0) / 1000000))
  [ "$waited" -ge 500 ] && ok || bad "add-rule did not wait for the lock (${waited} ms)"
  wait
else
  bad "flock(1) not installed: the edit lock is not tested (util-linux; bash scripts/deps.sh)"
fi

# ---- two add-rule loops at once: every rule lands ----
fresh c
n=$(rules "$tmp/c")
for w in a b; do
  (for i in $(seq 1 50); do
    "$ctl" --policy "$tmp/c" add-rule "allow publish username \"$w$i\" topic \"$w/$i\"" >/dev/null 2>&1 || echo "add $w$i failed"
  done) >"$tmp/loop.$w" &
  bgpids+=($!)
done
wait
[ ! -s "$tmp/loop.a" ] && [ ! -s "$tmp/loop.b" ] && ok || bad "concurrent add-rule failures: $(cat "$tmp/loop.a" "$tmp/loop.b")"
[ "$(rules "$tmp/c")" = $((n + 100)) ] && ok || bad "concurrent add-rule: $(rules "$tmp/c") rules, want $((n + 100))"
[ "$("$ctl" --policy "$tmp/c" list-rules | grep -cE 'allow publish username "[ab][0-9]+" topic')" = 100 ] && ok || bad "all 100 distinct rules present"

# ---- atomicity: a reader never sees a half-written file ----
edits=${RULES_TEST_EDITS:-1000}
mkdir "$tmp/at"
printf '# atomicity\ndefault deny\nallow connect anonymous peerhost 127.0.0.1  # probe\n' >"$tmp/at/a.policy"
cp "$tmp/at/a.policy" "$tmp/at.orig"
python3 - "$tmp/at/a.policy" "$tmp/at.orig" "$tmp/at.stop" >"$tmp/reader" 2>&1 <<'PY' &
import os, re, sys
path, orig, stop = sys.argv[1:4]
base = open(orig, "rb").read()
added = re.compile(rb'(allow publish username "r\d+" topic "r/\d+"\n)*')
reads = torn = 0
while not os.path.exists(stop):
    with open(path, "rb") as f:
        data = f.read()
    reads += 1
    if not (data.startswith(base) and added.fullmatch(data, len(base))):
        torn += 1
        if torn < 3:
            sys.stdout.write("torn read: %r\n" % data[-200:])
print("reads=%d torn=%d" % (reads, torn))
PY
reader=$!
bgpids+=($reader)
t0=$(date +%s)
for i in $(seq 1 "$edits"); do
  "$ctl" --policy "$tmp/at/a.policy" add-rule "allow publish username \"r$i\" topic \"r/$i\"" >/dev/null 2>&1 || echo "edit $i failed"
done >"$tmp/edits"
touch "$tmp/at.stop"
wait "$reader"
secs=$(($(date +%s) - t0))
res=$(tail -n1 "$tmp/reader")
[ ! -s "$tmp/edits" ] && ok || bad "atomicity edits failed: $(head -n3 "$tmp/edits")"
[ "$(rules "$tmp/at/a.policy")" = $((edits + 1)) ] && ok || bad "atomicity: not all $edits edits landed"
reads=$(echo "$res" | sed -n 's/^reads=\([0-9]*\) torn=.*/\1/p')
echo "$res" | grep -q ' torn=0$' && [ "${reads:-0}" -ge 50 ] && ok || bad "atomicity reader ($edits edits, ${secs}s): $(cat "$tmp/reader")"

# ---- fmt ----
# the example policies are in the canonical layout
fresh f
run 0 "$ctl" fmt --check "$tmp/f" && [ -z "$out" ] && ok || bad "fmt --check policies/: $st $out $err"
run 0 "$ctl" --policy "$tmp/f" fmt --check && [ -z "$out" ] && ok || bad "fmt --check via --policy: $st $out"
# a policy set laid out carelessly: same decisions after fmt, and fmt brings
# back exactly the canonical files
fresh u
for f in "$tmp"/u/*.policy; do
  sed -E '/^[[:space:]]*#/!{s/  +/ /g;s/^ +/  /}' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
done
"$ctl" test "$tmp/u" >"$tmp/test.before" 2>&1
tail -n1 "$tmp/test.before" | grep -Eq '^[0-9]+ passed, 0 failed$' && ok || bad "tests on the re-spaced copy: $(tail -n3 "$tmp/test.before")"
cp -r "$tmp/u" "$tmp/u.orig"
run 1 "$ctl" fmt --check "$tmp/u" && ok || bad "fmt --check on changed files: $st"
changed=$(echo "$out" | wc -l)
[ "$changed" -ge 3 ] && echo "$out" | grep -qx "$tmp/u/40-ops.policy" && ok || bad "fmt --check lists the files: $out"
diff -r -x .exhookctl.lock "$tmp/u.orig" "$tmp/u" >/dev/null && ok || bad "fmt --check wrote"
want=$(for f in "$tmp"/u.orig/*.policy; do cmp -s "$f" "$repo/policies/${f##*/}" || echo "$tmp/u/${f##*/}"; done)
run 0 "$ctl" fmt "$tmp/u" && [ "$out" = "$want" ] && ok || bad "fmt lists what it changed: $st $out, want $want"
for f in "$repo"/policies/*.policy; do
  cmp -s "$f" "$tmp/u/${f##*/}" && ok || bad "fmt of the re-spaced ${f##*/} is not the canonical file: $(diff "$f" "$tmp/u/${f##*/}" | head -n5)"
done
"$ctl" test "$tmp/u" >"$tmp/test.after" 2>&1
cmp -s "$tmp/test.before" "$tmp/test.after" && ok || bad "fmt changed test results"
run 0 "$ctl" fmt "$tmp/u" && [ -z "$out" ] && ok || bad "fmt twice: the second run changes nothing: $out"
# one file: --check lists and exits 1; fmt writes; again changes nothing
printf 'default   deny\nallow  publish   username "a"  topic "a/#"\nallow subscribe topic "b/#"   # b\n' >"$tmp/one.policy"
cp "$tmp/one.policy" "$tmp/one.orig"
run 1 "$ctl" fmt --check "$tmp/one.policy" && [ "$out" = "$tmp/one.policy" ] && cmp -s "$tmp/one.orig" "$tmp/one.policy" \
  && ok || bad "fmt --check FILE: $st $out"
run 0 "$ctl" fmt "$tmp/one.policy" && [ "$out" = "$tmp/one.policy" ] && ok || bad "fmt FILE: $st $out"
printf 'default deny\nallow publish   username "a" topic "a/#"\nallow subscribe              topic "b/#"  # b\n' | cmp -s - "$tmp/one.policy" \
  && ok || bad "fmt FILE result: $(cat "$tmp/one.policy")"
run 0 "$ctl" fmt --check "$tmp/one.policy" && [ -z "$out" ] && ok || bad "fmt --check after fmt: $st"
# a file that does not compile: error, exit 2, left alone; the others are done
mkdir "$tmp/mixed"
cp "$tmp/one.orig" "$tmp/mixed/a.policy"
printf '# broken\nallow   publish topic "a/#/b"\n' >"$tmp/mixed/b.policy"
cp "$tmp/mixed/b.policy" "$tmp/broken.saved"
run 2 "$ctl" fmt "$tmp/mixed" && echo "$err" | grep -q "b.policy:2:" && cmp -s "$tmp/broken.saved" "$tmp/mixed/b.policy" \
  && cmp -s "$tmp/one.policy" "$tmp/mixed/a.policy" && ok || bad "fmt with a broken file: $st $err"
mkdir "$tmp/empty"
run 2 "$ctl" fmt "$tmp/empty" && ok || bad "fmt of a directory without policies: $st"
run 2 "$ctl" fmt "$tmp/nonexistent.policy" && ok || bad "fmt of a missing file: $st"
# idempotence on the test corpora: every *.policy here that compiles
mkdir "$tmp/corpus"
for f in tests/data/*.policy tests/fuzz/corpus/*/*; do
  [ -f "$f" ] || continue
  "$ctl" --policy "$f" list-rules >/dev/null 2>&1 || continue
  c="$tmp/corpus/$(echo "$f" | tr / _).policy"
  cp "$f" "$c"
  n=$(rules "$c")
  run 0 "$ctl" fmt "$c" || { bad "fmt $f: $st $err"; continue; }
  cp "$c" "$c.once"
  run 0 "$ctl" fmt --check "$c" && [ -z "$out" ] && run 0 "$ctl" fmt "$c" && [ -z "$out" ] && cmp -s "$c.once" "$c" \
    && ok || bad "fmt is not idempotent on $f"
  [ "$(rules "$c")" = "$n" ] && ok || bad "fmt changed the rule count of $f"
done

[ "$lock_before" = yes ] || [ ! -e policies/.exhookctl.lock ] && ok || bad "a command locked policies/ (left policies/.exhookctl.lock)"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
