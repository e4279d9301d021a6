#!/usr/bin/env bash
# exhookctl replay and audit over a hand-written decision audit log
# (notes/audit_format.md): what would change under candidate policies,
# grouped and counted, the exit statuses a CI gate relies on, --json read
# back, the audit filters, and garbage lines reported as FILE:LINE while
# the rest is still read.  Everything runs in a temporary directory.
# Usage: replay_test.sh PATH-TO-EXHOOKCTL.  Last line: "N passed, N failed".
set -u
ctl=${1:?usage: replay_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
[ -x "$ctl" ] || { echo "replay_test.sh: no executable $ctl"; exit 2; }
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Neither command reads the store; a stray one must not matter either.
export EXHOOK_DB=$tmp/none.db
unset EXHOOK_POLICY

. tests/lib/suite.sh # suite_counters
suite_counters
: >"$tmp/all.log"
. tests/lib/cli.sh # run, is, has
# json_check PYTHON: run PYTHON with L (the last stdout's JSON lines, parsed)
# and J (its objects of type "group"), S (its summary); it must print ok.
json_check() {
  local name=$1 got
  got=$(printf '%s\n' "$out" | python3 -c "
import json, sys
L = [json.loads(l) for l in sys.stdin if l.strip()]
J = [o for o in L if o['type'] == 'group']
S = [o for o in L if o['type'] == 'summary']
assert len(S) == 1 and L[-1] is S[0], 'one summary, last'
S = S[0]
$2
print('ok')" 2>&1)
  [ "$got" = ok ] && ok || bad "$name: $got"$'\n'"$out"
}

# ---- the policy the log was written under ----
mkdir "$tmp/base"
cat >"$tmp/base/10-acl.policy" <<'EOF'
# ACL rules of the replay test: line numbers matter
default deny
allow publish   username "alice" topic "sensors/#" qos 0-1
allow publish   clientid "dev-1" topic "dev/up" retain false
allow subscribe group "ops" topic "alerts/#"
allow subscribe username "carol" topic "feed/#" qos 0
allow subscribe topic "jobs/#"
deny  subscribe topic eq "#"
allow publish   anonymous topic "public/#"
EOF
cat >"$tmp/base/20-connect.policy" <<'EOF'
deny  connect group "blocked"
allow connect anonymous peerhost 127.0.0.1
EOF

# ---- the log: record N at 07:NN; the engine loaded /etc/exhook/policies ----
P=/etc/exhook/policies
log=$tmp/audit.jsonl
cat >"$log" <<EOF
{"time":"2026-12-03T07:01:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"c-alice","username":"alice","peer":"192.0.2.1","action":"publish","topic":"sensors/t","qos":1,"retain":false,"decision":"allow","rule":"$P/10-acl.policy:3","gen":1,"sample":0.5}
{"time":"2026-12-03T07:02:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"c-alice","username":"alice","peer":"2001:db8::1","action":"publish","topic":"sensors/u","qos":1,"retain":false,"decision":"allow","rule":"$P/10-acl.policy:3","gen":1,"sample":0.5}
{"time":"2026-12-03T07:03:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-alice","username":"alice","peer":"192.0.2.1","action":"publish","topic":"sensors/t","decision":"deny","rule":"default","gen":1}
{"time":"2026-12-03T07:04:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"dev-1","username":"dev","peer":"192.0.2.2","action":"publish","topic":"dev/up","qos":0,"retain":false,"decision":"allow","rule":"$P/10-acl.policy:4","gen":1,"sample":0.5}
{"time":"2026-12-03T07:05:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"dev-1","username":"dev","peer":"192.0.2.2","action":"publish","topic":"dev/up","qos":0,"retain":true,"decision":"deny","rule":"default","gen":1}
{"time":"2026-12-03T07:06:00.000000Z","front":"driver","node":"emqx@n2","event":"acl","clientid":"dev-1","username":"dev","peer":"192.0.2.2","action":"publish","topic":"dev/up","decision":"deny","rule":"default","gen":1}
{"time":"2026-12-03T07:07:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"c-olga","username":"olga","peer":"192.0.2.3","groups":["ops"],"action":"subscribe","topic":"alerts/#","qos":1,"decision":"allow","rule":"$P/10-acl.policy:5","gen":1,"sample":0.5}
{"time":"2026-12-03T07:08:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-olga","username":"olga","peer":"192.0.2.3","action":"subscribe","topic":"alerts/#","decision":"deny","rule":"default","gen":1}
{"time":"2026-12-03T07:09:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"c-carol","username":"carol","peer":"192.0.2.4","action":"subscribe","delivery":true,"topic":"feed/x","qos":2,"decision":"allow","rule":"$P/10-acl.policy:6","gen":1,"sample":0.5}
{"time":"2026-12-03T07:10:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"c-carol","username":"carol","peer":"192.0.2.4","action":"subscribe","topic":"feed/#","qos":2,"decision":"deny","rule":"default","gen":1}
{"time":"2026-12-03T07:11:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-root","username":"root","peer":"192.0.2.5","superuser":true,"action":"subscribe","topic":"#","decision":"allow","rule":"superuser","gen":1}
{"time":"2026-12-03T07:12:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"w-1","username":"worker","peer":"192.0.2.6","action":"subscribe","topic":"\$share/g/jobs/1","qos":0,"decision":"allow","rule":"$P/10-acl.policy:7","gen":1,"sample":0.5}
{"time":"2026-12-03T07:13:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"w-2","username":"worker","peer":"192.0.2.6","action":"subscribe","topic":"\$share/g/jobs/1","decision":"allow","rule":"$P/10-acl.policy:7","gen":1}
{"time":"2026-12-03T07:14:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"w-3","username":"worker","peer":"192.0.2.6","action":"subscribe","topic":"\$queue/jobs/1","decision":"allow","rule":"$P/10-acl.policy:7","gen":1}
{"time":"2026-12-03T07:15:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"w-4","username":"worker","peer":"192.0.2.6","action":"subscribe","topic":"\$queue/jobs/1","qos":0,"decision":"deny","rule":"default","gen":1}
{"time":"2026-12-03T07:16:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-eve","username":"eve","peer":"192.0.2.7","action":"subscribe","topic":"#","decision":"deny","rule":"$P/10-acl.policy:8","gen":1}
{"time":"2026-12-03T07:17:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"anon-1","peer":"127.0.0.1","action":"publish","topic":"public/x","qos":0,"retain":false,"decision":"allow","rule":"$P/10-acl.policy:9","gen":1,"sample":0.5}
{"time":"2026-12-03T07:18:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-eve","username":"eve","peer":"192.0.2.7","action":"publish","topic":"a/+","decision":"deny","rule":"invalid","reason":"topic name holds a wildcard ('+' or '#')","gen":1}
{"time":"2026-12-03T07:19:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-eve","username":"eve","peer":"192.0.2.7","action":"publish","topic":"a\u0000b","decision":"deny","rule":"invalid","reason":"topic holds a NUL byte","gen":1}
{"time":"2026-12-03T07:20:00.000000Z","front":"driver","node":"emqx@n2","event":"login","clientid":"c-alice","username":"alice","peer":"192.0.2.1","action":"connect","decision":"allow","rule":"credentials","reason":"ok","gen":1}
{"time":"2026-12-03T07:21:00.000000Z","front":"driver","node":"emqx@n2","event":"login","clientid":"c-mal","username":"mallory","peer":"192.0.2.8","groups":["blocked"],"action":"connect","decision":"deny","rule":"$P/20-connect.policy:1","reason":"ok cached","gen":1}
{"time":"2026-12-03T07:22:00.000000Z","front":"driver","node":"emqx@n2","event":"login","clientid":"anon-1","peer":"127.0.0.1","action":"connect","decision":"allow","rule":"$P/20-connect.policy:2","reason":"anonymous","gen":1}
{"time":"2026-12-03T07:23:00.000000Z","front":"driver","node":"emqx@n2","event":"login","clientid":"anon-2","peer":"10.0.0.5","action":"connect","decision":"deny","rule":"anonymous","reason":"anonymous","gen":1}
{"time":"2026-12-03T07:24:00.000000Z","front":"driver","node":"emqx@n2","event":"login","clientid":"c-dave","username":"dave","peer":"192.0.2.9","action":"connect","decision":"deny","rule":"credentials","reason":"wrong password","gen":1}
{"time":"2026-12-03T07:25:00.000000Z","front":"driver","node":"emqx@n2","event":"login","clientid":"c-erin","username":"erin","peer":"192.0.2.10","action":"connect","decision":"deny","rule":"credentials","reason":"locked out","gen":1}
{"time":"2026-12-03T07:26:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"c-zed","username":"zed","action":"publish","topic":"x","qos":0,"retain":false,"decision":"deny","rule":"no login","gen":1}
{"time":"2026-12-03T07:27:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-zed","username":"zed","action":"publish","topic":"x","decision":"deny","rule":"store fault","gen":1}
{"time":"2026-12-03T07:28:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-frank","username":"frank","action":"subscribe","topic":"y","decision":"ignore","rule":"unverified","gen":1}
{"time":"2026-12-03T07:29:00.000000Z","front":"grpc","node":"emqx@n1","event":"login","clientid":"c-frank","username":"frank","action":"connect","decision":"ignore","rule":"unverified","reason":"store fault","gen":1}
EOF
[ "$(wc -l <"$log")" = 29 ] && ok || bad "the log should have 29 records"

# Candidates: copies of base with one edit each (sed line edits keep every
# other line where it was).
candidate() { # NAME SED-SCRIPT-FOR-10-acl [SED-SCRIPT-FOR-20-connect]
  mkdir "$tmp/$1"
  sed -e "$2" "$tmp/base/10-acl.policy" >"$tmp/$1/10-acl.policy"
  sed -e "${3:-}" "$tmp/base/20-connect.policy" >"$tmp/$1/20-connect.policy"
}
candidate same ''
candidate move '7{h;d};8G'                 # swap lines 7 and 8: rules move, decisions stay
candidate tighten '3s/qos 0-1/qos 0/'      # alice's QoS 1 publishes: allow -> deny
candidate loosen '' '1s/^/# /'             # the blocked group may connect: deny -> allow
candidate ignore '2s/deny/ignore/'         # default ignore: deny -> ignore
candidate all '2s/deny/ignore/;3s/qos 0-1/qos 0/;7{h;d};8G' '1s/^/# /'
printf 'default deny\nallow publish topic "a/#/b"\n' >"$tmp/broken.policy"

summary_base='replay: 29 records read, 23 replayed, CHANGED, 6 not replayed (2 the password decided, 1 no login, 1 store fault, 2 unverified), 0 unreadable lines
note: the allows in this log are a sample: 7 replayed allows were logged at sample rate 0.5,
      so the counts of changed allows are estimates (~N: each sampled allow counted 1/rate);
      '
summary() { # CHANGED-TEXT LAST-NOTE-LINE
  local s=${summary_base/CHANGED/$1}
  printf '%s%s' "$s" "$2"
}

# ---- replay: the same policy from another checkout: nothing changes ----
run - "$ctl" replay --log "$log" --policy "$tmp/same"
is "replay same policy" 0 "no changes

$(summary '0 changed (0 decision changes, 0 rule-only)' 'no allow in the log would change its decision')"
# the policy from $EXHOOK_POLICY and from exhookctl's own --policy
run - env EXHOOK_POLICY="$tmp/same" "$ctl" replay --log "$log"
has "replay policy from EXHOOK_POLICY" 0 "no changes"
run - "$ctl" --policy "$tmp/same" replay --log "$log"
has "replay policy from exhookctl --policy" 0 "no changes"
# stdin, and a log split in two (rotated files)
run "$log" "$ctl" replay --log - --policy "$tmp/same"
has "replay from stdin" 0 "29 records read, 23 replayed"
head -n 10 "$log" >"$tmp/part1"
tail -n +11 "$log" >"$tmp/part2"
run - "$ctl" replay --log "$tmp/part1" --log "$tmp/part2" --policy "$tmp/same"
has "replay two rotated files" 0 "29 records read, 23 replayed"

# ---- a rule moves: rule-only changes, exit 0 ----
run - "$ctl" replay --log "$log" --policy "$tmp/move"
is "replay moved rules" 0 "allow, rule changed: 3 records (1 of them a sample at rate 0.5: ~4 estimated)
    was: $P/10-acl.policy:7
    now: $tmp/move/10-acl.policy:8: allow subscribe topic \"jobs/#\"
    e.g. 2026-12-03T07:12:00.000000Z  acl  w-1  worker  subscribe  \$share/g/jobs/1
         2026-12-03T07:13:00.000000Z  acl  w-2  worker  subscribe  \$share/g/jobs/1
deny, rule changed: 1 record
    was: $P/10-acl.policy:8
    now: $tmp/move/10-acl.policy:7: deny subscribe topic eq \"#\"
    e.g. 2026-12-03T07:16:00.000000Z  acl  c-eve  eve  subscribe  #

$(summary '4 changed (0 decision changes, 4 rule-only)' 'no allow in the log would change its decision')"

# ---- an allow becomes a deny: exit 1, the sampled estimate ----
run - "$ctl" replay --log "$log" --policy "$tmp/tighten"
is "replay allow -> deny" 1 "allow -> deny: 2 records (a sample at rate 0.5: ~4 estimated)
    was: $P/10-acl.policy:3
    now: default
    e.g. 2026-12-03T07:01:00.000000Z  acl  c-alice  alice  publish  sensors/t
         2026-12-03T07:02:00.000000Z  acl  c-alice  alice  publish  sensors/u

$(summary '2 changed (2 decision changes, 0 rule-only)' 'about 4 allows would change their decision in all')"

# ---- a deny becomes an allow (a login's connect rules): exit 1 ----
run - "$ctl" replay --log "$log" --policy "$tmp/loosen"
is "replay deny -> allow" 1 "deny -> allow: 1 record
    was: $P/20-connect.policy:1
    now: credentials
    e.g. 2026-12-03T07:21:00.000000Z  login  c-mal  mallory  connect  -

$(summary '1 changed (1 decision change, 0 rule-only)' 'no allow in the log would change its decision')"

# ---- deny -> ignore alone gates too ----
run - "$ctl" replay --log "$log" --policy "$tmp/ignore"
has "replay deny -> ignore exits 1" 1 "deny -> ignore: 6 records"

# ---- everything at once: order, counts and --json read back ----
run - "$ctl" replay --log "$log" --policy "$tmp/all"
heads=$(printf '%s\n' "$out" | grep -E '^[a-z]+( ->|, rule)')
want_heads="deny -> allow: 1 record
deny -> ignore: 6 records
allow -> ignore: 2 records (a sample at rate 0.5: ~4 estimated)
allow, rule changed: 3 records (1 of them a sample at rate 0.5: ~4 estimated)
deny, rule changed: 1 record"
[ "$st" = 1 ] && [ "$heads" = "$want_heads" ] && ok ||
  bad "replay all: status $st, groups:"$'\n'"$heads"$'\n'"want:"$'\n'"$want_heads"
run - "$ctl" replay --log "$log" --policy "$tmp/all" --json
[ "$st" = 1 ] && ok || bad "replay --json status $st"
json_check "replay --json" "
want = [('decision','deny','allow','$P/20-connect.policy:1','credentials',1),
        ('decision','deny','ignore','default','default',6),
        ('decision','allow','ignore','$P/10-acl.policy:3','default',2),
        ('rule','allow','allow','$P/10-acl.policy:7','$tmp/all/10-acl.policy:8',3),
        ('rule','deny','deny','$P/10-acl.policy:8','$tmp/all/10-acl.policy:7',1)]
got = [(g['change'],g['old_decision'],g['new_decision'],g['old_rule'],g['new_rule'],g['count']) for g in J]
assert got == want, got
assert J[1]['examples'][0] == {'time':'2026-12-03T07:03:00.000000Z','front':'grpc','node':'emqx@n1','event':'acl','clientid':'c-alice','username':'alice','action':'publish','topic':'sensors/t'}, J[1]['examples'][0]
assert [e['clientid'] for e in J[1]['examples']] == ['c-alice', 'dev-1']
assert J[2]['estimate'] == 4 and J[2]['sampled'] == 2 and J[2]['sample_rate_min'] == 0.5
assert J[3]['estimate'] == 4 and J[3]['sampled'] == 1
assert 'estimate' not in J[0] and 'new_rule_text' not in J[0]
assert J[3]['new_rule_text'] == 'allow subscribe topic \"jobs/#\"'
assert J[0]['examples'][0]['event'] == 'login' and 'topic' not in J[0]['examples'][0]
assert (S['records'], S['replayed'], S['changed'], S['decision_changes'], S['rule_changes'], S['unreadable']) == (29, 23, 13, 9, 4, 0), S
assert S['not_replayed'] == {'the password decided':2,'no login':1,'store fault':1,'unverified':2,'out of memory':0,'lossy':0}, S
assert (S['dropped_acl'], S['dropped_login']) == (0, 0), S
assert (S['acl_allows'], S['sampled_allows'], S['estimated_changed_allows']) == (10, 7, 4), S"
run - "$ctl" replay --log "$log" --policy "$tmp/same" --json
[ "$st" = 0 ] && ok || bad "replay --json same: status $st"
json_check "replay --json, no changes" "
assert J == [] and S['changed'] == 0 and S['replayed'] == 23, S"

# ---- what the writer adds: a lossy record (bytes that were not UTF-8
# logged as U+FFFD: not replayable), a note of records it dropped, an ACL
# check answered "out of memory" ----
cp "$log" "$tmp/extra.jsonl"
cat >>"$tmp/extra.jsonl" <<'EOF'
{"time":"2026-12-03T07:30:00.000000Z","front":"mosquitto","node":"mq1","event":"acl","clientid":"c-\ufffd","username":"u","action":"publish","topic":"t","qos":0,"retain":false,"decision":"deny","rule":"invalid","reason":"client id is not well-formed UTF-8","gen":1,"lossy":true}
{"time":"2026-12-03T07:31:00.000000Z","front":"grpc","node":"emqx@n1","event":"dropped","acl":12,"login":1,"from":"2026-12-03T07:02:30.000000Z","to":"2026-12-03T07:03:30.000000Z"}
{"time":"2026-12-03T07:32:00.000000Z","front":"grpc","node":"emqx@n1","event":"acl","clientid":"c-zed","username":"zed","action":"publish","topic":"x","decision":"deny","rule":"out of memory","gen":1}
EOF
run - "$ctl" replay --log "$tmp/extra.jsonl" --policy "$tmp/same"
has "replay: lossy records counted, not replayed" 0 "31 records read, 23 replayed, 0 changed (0 decision changes, 0 rule-only), 8 not replayed (2 the password decided, 1 no login, 1 store fault, 2 unverified, 1 out of memory, 1 lossy), 0 unreadable lines"
has "replay: the writer's drops said" 0 "note: the log is incomplete: its writer dropped 12 ACL and 1 login records (its queue
      was full) between 2026-12-03T07:02:30.000000Z and 2026-12-03T07:03:30.000000Z; they were not replayed"
run - "$ctl" replay --log "$tmp/extra.jsonl" --policy "$tmp/same" --json
json_check "replay --json: lossy and dropped" "
assert S['not_replayed']['lossy'] == 1 and (S['dropped_acl'], S['dropped_login']) == (12, 1), S"
run - "$ctl" audit --log "$tmp/extra.jsonl" --event dropped
is "audit --event dropped" 0 "2026-12-03T07:31:00.000000Z  emqx@n1  grpc  dropped  12 ACL and 1 login records, from 2026-12-03T07:02:30.000000Z to 2026-12-03T07:03:30.000000Z"
run - "$ctl" audit --log "$tmp/extra.jsonl"
[ "$st" = 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 32 ] && ok || bad "audit, no filter: every record: $st: $out"
run - "$ctl" audit --log "$tmp/extra.jsonl" --clientid c-alice --since 2026-12-03T07:03 --until 2026-12-03T07:03
[ "$(printf '%s\n' "$out" | cut -c1-27)" = 2026-12-03T07:03:00.000000Z ] && ok ||
  bad "audit in a window with drops: $out"
has "audit: drops in the window said" 0 "extra.jsonl:31: the writer dropped 12 ACL and 1 login records from 2026-12-03T07:02:30.000000Z to 2026-12-03T07:03:30.000000Z (its queue was full): matching ones may be missing"
run - "$ctl" audit --log "$tmp/extra.jsonl" --clientid c-alice --until 2026-12-03T07:01
[ "$st" = 0 ] && [ -z "$err" ] && ok || bad "audit: drops outside the window not said: $err"

# ---- a log with no allows: the replay says what it cannot see ----
grep -v '"decision":"allow"' "$log" >"$tmp/denies.jsonl"
run - "$ctl" replay --log "$tmp/denies.jsonl" --policy "$tmp/same"
has "replay: no allows in the log" 0 "note: the log holds no ACL allows (audit_sample is 0 by default)"

# ---- replay: errors ----
run - "$ctl" replay --log "$log" --policy "$tmp/broken.policy"
has "replay: a policy that does not compile" 2 "broken.policy:2:24: error: '#' must be the last level"
run - "$ctl" replay --log "$tmp/absent.jsonl" --policy "$tmp/same"
has "replay: a missing log" 2 "cannot open $tmp/absent.jsonl: No such file or directory"
run - "$ctl" replay --log "$tmp" --policy "$tmp/same"
has "replay: a directory" 2 "is a directory"
: >"$tmp/empty.jsonl"
run - "$ctl" replay --log "$tmp/empty.jsonl" --policy "$tmp/same"
has "replay: an empty log fails" 2 "the log holds no records"
run - "$ctl" replay --policy "$tmp/same"
has "replay: no --log" 2 "--log FILE is required"
run - "$ctl" replay --log "$log" --frobnicate
has "replay: unknown option" 2 "unknown argument '--frobnicate'"
run - "$ctl" replay --help
has "replay --help" 0 "ignore"

# ---- audit: filters ----
A() { run - "$ctl" audit --log "$log" "$@"; }
# the record numbers (minutes) of the last stdout's lines
mins() { printf '%s\n' "$out" | sed -n 's/^2026-12-03T07:\([0-9][0-9]\):00.000000Z .*/\1/p' | tr '\n' ' '; }
# expect_mins NAME STATUS "NN NN ...": the records printed
expect_mins() {
  local got
  got=$(mins)
  [ "$st" = "$2" ] && [ "$got" = "$3" ] && ok || bad "$1: status $st, records '$got', want '$3'; stderr: $err"
}
A --clientid dev-1
expect_mins "audit --clientid" 0 "04 05 06 "
A --clientid c-alice --decision deny --since 2026-12-03T07:02 --until 2026-12-03T07:03
is "audit: why was c-alice denied" 0 "2026-12-03T07:03:00.000000Z  emqx@n1  grpc  acl  c-alice  alice  192.0.2.1  publish  sensors/t  deny  default  -"
A --event login --decision deny
expect_mins "audit --event --decision" 0 "21 23 24 25 "
A --username alice
expect_mins "audit --username" 0 "01 02 03 20 "
A --topic '$queue/jobs/1'
expect_mins "audit --topic" 0 "14 15 "
A --action subscribe --decision allow
expect_mins "audit --action --decision" 0 "07 09 11 12 13 14 "
A --decision ignore
expect_mins "audit --decision ignore" 0 "28 29 "
A --event acl --action connect
expect_mins "audit: acl records have no connect" 1 ""
A --since 2026-12-03T07:05 --until 2026-12-03T07:07
expect_mins "audit --since --until (minutes, until inclusive)" 0 "05 06 07 "
A --until 2026-12-03T07:02:00Z
expect_mins "audit --until a whole second with Z" 0 "01 02 "
A --since 2026-12-03T07:28:00.000000Z
expect_mins "audit --since a full time" 0 "28 29 "
A --since 2026-12-04
expect_mins "audit: nothing matches" 1 ""
A --clientid c-eve --action publish
is "audit: shown text (quoted where needed)" 0 "2026-12-03T07:18:00.000000Z  emqx@n1  grpc  acl  c-eve  eve  192.0.2.7  publish  a/+  deny  invalid  \"topic name holds a wildcard ('+' or '#')\"
2026-12-03T07:19:00.000000Z  emqx@n1  grpc  acl  c-eve  eve  192.0.2.7  publish  \"a\\u0000b\"  deny  invalid  \"topic holds a NUL byte\""
A --clientid anon-1
expect_mins "audit: anonymous" 0 "17 22 "
printf '%s\n' "$out" | grep -q '^2026-12-03T07:22:00.000000Z  emqx@n2  driver  login  anon-1  -  127.0.0.1  connect  -  allow  ' && ok ||
  bad "audit: absent fields as '-': $out"
A --json --clientid dev-1
[ "$st" = 0 ] && [ "$out" = "$(grep '"clientid":"dev-1"' "$log")" ] && ok || bad "audit --json: the raw lines: $out"
# the README's jq recipe gives the same lines
if command -v jq >/dev/null; then
  A --json --clientid c-alice --decision deny --since 2026-12-03T07:00 --until 2026-12-03T07:30
  want=$(jq -c --arg c c-alice --arg t1 2026-12-03T07:00 --arg t2 2026-12-03T07:30 \
    'select(.clientid == $c and .decision == "deny" and .time >= $t1 and .time[0:($t2 | length)] <= $t2)' "$log")
  [ "$st" = 0 ] && [ "$(printf '%s\n' "$out" | jq -c .)" = "$want" ] && [ -n "$want" ] && ok ||
    bad "audit vs the jq recipe:"$'\n'"$out"$'\n'"jq:"$'\n'"$want"
fi
# a client id that would drive the terminal is shown escaped
printf '%s\n' '{"time":"2026-12-03T08:00:00.000000Z","front":"grpc","node":"n","event":"acl","clientid":"x\u001b[31my\u0085z","action":"publish","topic":"t t","decision":"deny","rule":"default"}' >"$tmp/esc.jsonl"
run - "$ctl" audit --log "$tmp/esc.jsonl"
is "audit: control characters escaped" 0 '2026-12-03T08:00:00.000000Z  n  grpc  acl  "x\u001b[31my\u0085z"  -  -  publish  "t t"  deny  default  -'

# ---- audit: usage ----
A --decision maybe
has "audit: bad --decision" 2 "--decision takes allow, deny or ignore, not 'maybe'"
A --event connect
has "audit: bad --event" 2 "--event takes acl, login or dropped"
A --action fly
has "audit: bad --action" 2 "--action takes publish, subscribe or connect"
A --since yesterday
has "audit: bad --since" 2 "--since takes a UTC time"
A --until 2026-12-03T07:00+01:00
has "audit: a time zone offset" 2 "--until takes a UTC time"
run - "$ctl" audit --clientid x
has "audit: no --log" 2 "--log FILE is required"
run - "$ctl" audit --log "$tmp/absent.jsonl"
has "audit: a missing log" 2 "cannot open"
run - "$ctl" audit --log "$tmp/empty.jsonl"
is "audit: an empty log matches nothing" 1 ""
run - "$ctl" audit --help
has "audit --help" 0 "TIME is UTC"

# ---- garbage: every bad line reported as FILE:LINE, the rest read ----
g=$tmp/garbage.jsonl
good() { # a valid record at 09:MM
  printf '{"time":"2026-12-03T09:%s:00.000000Z","front":"grpc","node":"n","event":"acl","clientid":"g-%s","username":"u","action":"publish","topic":"%s","decision":"deny","rule":"default"}' "$1" "$1" "${2:-t}"
}
{
  good 01; echo                                                             # 1 good
  echo '{"time":"2026-12-03T09:02:00.000000Z","front":"grpc"'               # 2 truncated
  good 03 | sed 's/"topic"/"qos":"1","topic"/'; echo                        # 3 qos a string
  good 04 | sed 's/"username":"u"/"groups":"ops"/'; echo                    # 4 groups a string
  good 05 | sed 's/"publish"/"fly"/'; echo                                  # 5 unknown action
  good 06 | sed 's/,"rule":"default"//'; echo                               # 6 no rule
  good 07 | sed 's/"clientid":"g-07"/"clientid":"\xff\xfe"/'; echo          # 7 invalid UTF-8
  printf 'bin\0ary\1\2\177\n'                                               # 8 binary, a NUL
  head -c $((9 << 20)) /dev/zero | tr '\0' a; echo                          # 9 a 9 MiB line
  good 10 'a\u0000b' | sed 's/"rule":"default"/"rule":"invalid","reason":"topic holds a NUL byte"/'
  echo                                                                      # 10 good: a NUL topic
  good 11 | sed 's/"grpc"/"nginx"/'; echo                                   # 11 unknown front
  good 12 | sed 's/"node":"n"/"node":"n","peer":"not-an-ip"/'; echo         # 12 bad peer
  good 13 | sed 's/"rule":"default"/"rule\\u0000x":"default","rule":"default"/'; echo # 13 NUL in a key
  good 14 | sed 's/"decision":"deny"/"decision":"deny","decision":"allow"/'; echo   # 14 a key twice
  echo '[1,2,3]'                                                            # 15 no object
  good 16 | tr -d '\n'; printf '\r\n'                                       # 16 good, CRLF
  echo                                                                      # 17 blank: skipped
  good 18 | sed 's/T09:18:00.000000Z/ 09:18:00/'; echo                      # 18 time shape
  good 19 | sed 's/"rule":"default"/"rule":"default","sample":0.5/'; echo   # 19 sample on a deny
  good 20 | sed 's/"rule":"default"/"rule":"somewhere"/'; echo              # 20 rule no FILE:LINE
  good 21 | sed 's/"event":"acl"/"event":"login"/'; echo                    # 21 login, publish
  good 22 | sed 's/"topic":"t",//'; echo                                    # 22 acl, no topic
  printf '{"time":"2026-12-03T09:23'                                        # 23 cut off, no newline
} >"$g"
want_err="$g:2: invalid JSON at column 52: '}' expected near end of file
$g:3: \"qos\" must be 0, 1 or 2
$g:4: \"groups\" must be an array of strings
$g:5: \"action\" must be \"publish\", \"subscribe\" or \"connect\"
$g:6: \"rule\" is missing
$g:7: invalid JSON at column 90: unable to decode byte 0xff near '\"'
$g:8: holds a NUL byte: binary data, not a JSON text
$g:9: line longer than 8 MiB (the limit): skipped
$g:11: \"front\" must be \"grpc\", \"driver\" or \"mosquitto\"
$g:12: \"peer\" is not an IPv4 or IPv6 address
$g:13: invalid JSON at column 173: NUL byte in object key not supported near '\"rule\\u0000x\"'
$g:14: invalid JSON at column 170: duplicate object key near '\"decision\"'
$g:15: a record must be a JSON object
$g:18: \"time\" must be UTC as 2026-12-03T07:09:43.123456Z
$g:19: \"sample\" is only for allows (denies are always written)
$g:20: \"rule\" must be FILE:LINE or default, superuser, credentials, anonymous, invalid, no login, store fault, unverified or out of memory
$g:21: a login record's \"action\" must be \"connect\"
$g:22: \"topic\" is missing
$g:23: invalid JSON at column 25: premature end of input near '\"2026-12-03T09:23'"
run - "$ctl" replay --log "$g" --policy "$tmp/same"
got_err=$(printf '%s\n' "$err" | awk -v p="$g:" 'index($0, p) == 1')
[ "$st" = 2 ] && [ "$got_err" = "$want_err" ] && ok ||
  bad "replay garbage: status $st, stderr:"$'\n'"$err"$'\n'"want:"$'\n'"$want_err"
has "replay garbage: the rest replayed" 2 "replay: 3 records read, 3 replayed, 0 changed (0 decision changes, 0 rule-only), 0 not replayed, 19 unreadable lines"
has "replay garbage: says why the exit is 2" 2 "exhookctl replay: 19 unreadable lines (reported above): exit status 2"
run - "$ctl" audit --log "$g"
got_err=$(printf '%s\n' "$err" | awk -v p="$g:" 'index($0, p) == 1')
[ "$st" = 2 ] && [ "$got_err" = "$want_err" ] && [ "$(mins)" = "" ] &&
  [ "$(printf '%s\n' "$out" | cut -c1-27 | tr '\n' ' ')" = "2026-12-03T09:01:00.000000Z 2026-12-03T09:10:00.000000Z 2026-12-03T09:16:00.000000Z " ] &&
  printf '%s\n' "$out" | grep -qF '  publish  "a\u0000b"  deny  invalid  "topic holds a NUL byte"' &&
  ok || bad "audit garbage: status $st, stdout:"$'\n'"$out"$'\n'"stderr:"$'\n'"$err"
# a sample rate so small that 1/rate would not be finite
good 01 | sed 's/"decision":"deny","rule":"default"/"decision":"allow","rule":"default","sample":1e-300/' >"$tmp/tiny.jsonl"
run - "$ctl" replay --log "$tmp/tiny.jsonl" --policy "$tmp/same"
has "replay: a sample rate below 1e-9" 2 "tiny.jsonl:1: \"sample\" must be a number from 1e-9 to 1"
# a garbage line among good ones still fails the gate, whatever else
cat "$log" >"$tmp/one-bad.jsonl"
echo 'oops' >>"$tmp/one-bad.jsonl"
run - "$ctl" replay --log "$tmp/one-bad.jsonl" --policy "$tmp/same"
has "replay: one bad line fails the gate" 2 "one-bad.jsonl:30: invalid JSON"

[ -n "${REPLAY_TEST_KEEP:-}" ] && cp -r "$tmp" "$REPLAY_TEST_KEEP"
finish
