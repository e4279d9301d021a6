#!/usr/bin/env bash
# exhookctl as an operator uses it: output formats, exit statuses, batch
# JSON, test and lint reports.  Usage: cli_test.sh PATH-TO-EXHOOKCTL
# Last line: "N passed, N failed".
set -u
ctl=${1:?usage: cli_test.sh exhookctl}
cd "$(dirname "$0")/.."
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Never the checkout's ./exhook.db (the README's main job leaves one there):
# a store of the test's own, which does not exist unless a case makes it.
# EXH_TEST_STORE names another such absent store (store_pg_test.sh: a
# PostgreSQL database without the exhook schema); never $EXHOOK_DB, which
# may be an operator's real one.
export EXHOOK_DB=${EXH_TEST_STORE:-$tmp/none.db}

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_run NAME WANT_STATUS WANT_STDOUT -- command...
expect_run() {
  local name=$1 want_st=$2 want_out=$3
  shift 4
  local out st
  out=$("$@" 2>"$tmp/err"); st=$?
  if [ "$st" != "$want_st" ]; then bad "$name: status $st, want $want_st; stdout: $out; stderr: $(cat "$tmp/err")"; return; fi
  if [ "$want_out" != "*" ] && [ "$out" != "$want_out" ]; then
    bad "$name: stdout was:"$'\n'"$out"$'\n'"want:"$'\n'"$want_out"; return; fi
  ok
}

P="$ctl --policy policies"
# Lines of rules in policies/20-devices.policy, so an edited comment there
# does not break this suite.
dev_line() { grep -n "^$1" policies/20-devices.policy | head -n1 | cut -d: -f1; }
tele_line=$(dev_line 'allow publish clientid ~ "dev-')
bind_line=$(dev_line 'deny connect clientid ~ "dev-(?<serial>')
last_line=$(dev_line 'deny pubsub clientid ~ "dev-')
tele_text='allow publish clientid ~ "dev-(?<serial>[0-9a-f]{8})" username "d-${serial}" topic "devices/${serial}/up/#" "devices/${serial}/state"'

# check: decision on line 1, deciding rule as file:line: text on line 2
expect_run "check allow" 0 "allow
policies/20-devices.policy:$tele_line: $tele_text" -- \
  $P check --action publish --username d-0a1b2c3d --clientid dev-0a1b2c3d --topic devices/0a1b2c3d/up/t
# another device's credentials on this client id: nothing on ACL, refused at connect
expect_run "check allow, another device's credentials refused" 1 "deny
policies/20-devices.policy:$last_line: deny pubsub clientid ~ \"dev-[0-9a-f]{8}\" topic \"devices/#\"" -- \
  $P check --action publish --username d-ffffffff --clientid dev-0a1b2c3d --topic devices/0a1b2c3d/up/t
expect_run "check connect, another device's credentials refused" 1 "deny
policies/20-devices.policy:$bind_line: deny connect clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" not username \"d-\${serial}\"" -- \
  $P check --action connect --username d-ffffffff --clientid dev-0a1b2c3d
expect_run "check default" 1 "deny
default" -- $P check --action publish --username nobody --topic nowhere
expect_run "check invalid topic" 1 "deny
invalid: topic name holds a wildcard ('+' or '#')" -- $P check --action publish --username u --topic 'a/+'
expect_run "check superuser" 0 "allow
superuser" -- $P check --action subscribe --username root --superuser --topic '#'
expect_run "check connect anonymous refused" 1 "deny
anonymous" -- $P check --action connect
expect_run "check connect credentials stand" 0 "allow
credentials" -- $P check --action connect --username someone
expect_run "check json" 1 '{"decision":"deny","rule":"default"}' -- \
  $P check --json --action subscribe --username u --topic x
expect_run "check usage: no action" 2 "" -- $P check --topic x
expect_run "check usage: bad action" 2 "" -- $P check --action fly --topic x
expect_run "check usage: bad qos" 2 "" -- $P check --action publish --topic x --qos 3
expect_run "check usage: bad peerhost" 2 "" -- $P check --action connect --peerhost 1.2.3
expect_run "check usage: unknown option" 2 "" -- $P check --action connect --frobnicate
expect_run "check missing policy" 2 "" -- $ctl --policy "$tmp/none" check --action connect
expect_run "check env policy" 1 "deny
default" -- env EXHOOK_POLICY=policies $ctl check --action publish --username u --topic x

# a policy that does not compile: exit 2, file:line:col, line and caret on stderr
printf 'default deny\nallow publish topic "a/#/b"\n' >"$tmp/bad.policy"
expect_run "compile error status" 2 "" -- $ctl --policy "$tmp/bad.policy" check --action connect
if grep -q "bad.policy:2:24: error: '#' must be the last level" "$tmp/err" && grep -q '^                       \^$' "$tmp/err"; then ok; else bad "compile error text: $(cat "$tmp/err")"; fi

# --batch: one JSON answer per line, garbage answered and survived
cat >"$tmp/batch" <<'JSON'
{"action":"publish","username":"d-0a1b2c3d","clientid":"dev-0a1b2c3d","topic":"devices/0a1b2c3d/up/t"}
{"action":"subscribe","username":"bob","topic":"$SYS/#"}

not json at all
{"action":"publish","topic":"a\u0000b"}
{"action":"explode","topic":"x"}
{"action":"publish","topic":"x","qos":7}
{"action":"publish","topic":"x","color":"red"}
{"action":"connect","username":"u","password":"p"}
{"action":"subscribe","username":"root","superuser":true,"topic":"#"}
{"action":"connect","peerhost":"127.0.0.1"}
[1,2,3]
JSON
anon_line=$(grep -nE '^allow connect +anonymous peerhost 127.0.0.1$' policies/40-ops.policy | cut -d: -f1)
out=$($P check --batch <"$tmp/batch"); st=$?
want='{"decision":"allow","rule":"policies/20-devices.policy:$tele_line","text":"allow publish clientid ~ \"dev-(?<serial>[0-9a-f]{8})\" username \"d-${serial}\" topic \"devices/${serial}/up/#\" \"devices/${serial}/state\""}
{"decision":"deny","rule":"default"}
{"decision":"deny","rule":null,"reason":"invalid JSON at line 4, column 3: '\''['\'' or '\''{'\'' expected"}
{"decision":"deny","rule":null,"reason":"topic holds a NUL byte"}
{"decision":"deny","rule":null,"reason":"\"action\" must be \"publish\", \"subscribe\" or \"connect\""}
{"decision":"deny","rule":null,"reason":"\"qos\" must be 0, 1 or 2"}
{"decision":"deny","rule":null,"reason":"unknown field \"color\""}
{"decision":"deny","rule":null,"reason":"password verification needs the credential store, and there is none (see --db)"}
{"decision":"allow","rule":"superuser"}
{"decision":"allow","rule":"policies/40-ops.policy:$anon_line","text":"allow connect anonymous peerhost 127.0.0.1"}
{"decision":"deny","rule":null,"reason":"a request must be a JSON object"}'
want=${want//\$anon_line/$anon_line}
want=${want//\$tele_line/$tele_line}
if [ "$st" = 2 ] && [ "$out" = "$want" ]; then ok; else bad "batch (status $st):"$'\n'"$out"$'\n'"want:"$'\n'"$want"; fi
out=$(printf '{"action":"connect","username":"u"}\n' | $P check --batch); st=$?
[ "$st" = 0 ] && [ "$out" = '{"decision":"allow","rule":"credentials"}' ] && ok || bad "batch clean status $st: $out"

# test: failures with file:line, summary last, exit 1; malformed file exit 2
mkdir "$tmp/t1" "$tmp/t2"
cp tests/data/fail.test tests/data/fail.policy "$tmp/t1/"
out=$($ctl test "$tmp/t1/fail.test"); st=$?
[ "$st" = 1 ] && echo "$out" | grep -q "fail.test:3: expected deny, got allow" \
  && [ "$(echo "$out" | tail -n1)" = "2 passed, 1 failed" ] && ok || bad "test failing: $st: $out"
cp tests/data/broken.test tests/data/fail.policy "$tmp/t2/"
out=$($ctl test "$tmp/t2/broken.test" 2>"$tmp/err"); st=$?
[ "$st" = 2 ] && grep -q "broken.test:2:8: error: expected 'allow', 'deny' or 'ignore'" "$tmp/err" \
  && [ "$(echo "$out" | tail -n1)" = "1 passed, 0 failed" ] && ok || bad "test broken: $st: $out $(cat "$tmp/err")"
out=$($ctl test policies/ 2>&1); st=$?
[ "$st" = 0 ] && echo "$out" | tail -n1 | grep -Eq '^[0-9]+ passed, 0 failed$' && ok || bad "test policies: $out"
out=$($ctl test examples/qos-retain 2>&1); st=$?
[ "$st" = 0 ] && echo "$out" | tail -n1 | grep -Eq '^[0-9]+ passed, 0 failed$' && ok || bad "test examples/qos-retain: $out"
# `also emqx` runs a line twice; only the EMQX run fails here (qos unknown)
mkdir "$tmp/t3"
printf 'allow publish topic "q" qos 0-1\n' >"$tmp/t3/q.policy"
printf 'expect allow publish topic "q" qos 1 also emqx\nexpect deny publish topic "q" emqx\n' >"$tmp/t3/q.test"
out=$($ctl test "$tmp/t3"); st=$?
[ "$st" = 1 ] && echo "$out" | grep -q 'q.test:1: expected allow, got deny as EMQX sends it (QoS and retain unknown)' \
  && [ "$(echo "$out" | tail -n1)" = "2 passed, 1 failed" ] && ok || bad "test also emqx: $st: $out"
out=$($ctl test --json "$tmp/t3"); st=$?
[ "$st" = 1 ] && echo "$out" | grep -q '"test":"[^"]*q.test:1","variant":"emqx","expected":"allow","got":"deny"' \
  && ok || bad "test also emqx --json: $st: $out"

# lint: each kind of warning at its rule, notes do not count
out=$($ctl lint tests/data/lint.policy); st=$?
[ "$st" = 1 ] || bad "lint status $st"
for want in \
  "lint.policy:4:1: warning: rule is shadowed by rule 1 at tests/data/lint.policy:3" \
  "lint.policy:5:14: warning: capture 'user' is not used" \
  "lint.policy:6:1: warning: over-broad grant: this rule allows subscribe on every topic" \
  "lint.policy:9:1: warning: rule is shadowed by rule 5 at tests/data/lint.policy:7" \
  "lint.policy:10:25: note: EMQX's hooks pass no QoS" \
  "lint.policy:11:1: warning: over-broad grant: this rule allows pubsub on every topic to every client" \
  "9 rules, 5 warnings"; do
  echo "$out" | grep -qF "$want" && ok || bad "lint output lacks: $want"$'\n'"$out"
done
echo "$out" | grep -q "lint.policy:8" && bad "lint flagged line 8 (not shadowed)" || ok
out=$($ctl --policy policies lint); st=$?
[ "$st" = 0 ] && ! echo "$out" | grep -q 'note:' && ok || bad "policies/ lint not clean (or has EMQX notes): $out"
# the QoS/retain example: one EMQX note per rule with options, no warning
out=$($ctl --policy examples/qos-retain lint); st=$?
[ "$st" = 0 ] && [ "$(echo "$out" | grep -c "note: EMQX's hooks pass no QoS or retain flag")" = 5 ] && ok ||
  bad "examples/qos-retain lint: $st: $out"
# default ignore: a warning at the default statement, exit 1
printf '# x\n  default ignore\nallow publish topic "a"\n' >"$tmp/ign.policy"
out=$($ctl lint "$tmp/ign.policy"); st=$?
[ "$st" = 1 ] && echo "$out" | grep -q "ign.policy:2:3: warning: \`default ignore\` answers \"no opinion\"" \
  && echo "$out" | grep -q 'acl_nomatch = allow' && [ "$(echo "$out" | tail -n1)" = "1 rules, 1 warning" ] \
  && ok || bad "lint default ignore: $st: $out"
out=$($ctl lint --json tests/data/lint.policy); 
echo "$out" | grep -q '"warnings":5}$' && ok || bad "lint json: $out"
# deny pubsub ... retain true: a warning at `retain`; %u inside a level: a note at the '%'
printf 'deny pubsub topic "r/#" retain true\nallow publish topic "x%%u/y"\n' >"$tmp/ret.policy"
out=$($ctl lint "$tmp/ret.policy"); st=$?
[ "$st" = 1 ] && echo "$out" | grep -q "ret.policy:1:25: warning: \`retain true\` constrains publishes only" \
  && echo "$out" | grep -q "ret.policy:2:23: note: '%u' inside a topic level is the text" \
  && [ "$(echo "$out" | tail -n1)" = "2 rules, 1 warning" ] && ok || bad "lint retain/%u: $st: $out"

# --help everywhere
for cmd in "" check test lint; do
  out=$($ctl $cmd --help); st=$?
  [ "$st" = 0 ] && echo "$out" | grep -q "^usage: exhookctl" && ok || bad "--help for '$cmd'"
done
expect_run "no command" 2 "" -- $ctl
expect_run "unknown command" 2 "" -- $ctl frobnicate

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
