#!/usr/bin/env bash
# The plugin's Prometheus endpoint and decision audit log inside a real
# Mosquitto, driven by real clients (mosquitto_pub, mosquitto_sub):
#
#   counts     the ACL counters equal what the clients did: publishes
#              allowed and denied, the subscription, each delivery
#              (MOSQ_ACL_READ, on by default), with the decision cache on
#              (its hits are counted like the rest); logins by reason
#   format     every scrape passes the 0.0.4 format (tests/lib/promcheck.py)
#   audit      every denied publish is in the log with its rule, QoS and
#              retain (Mosquitto knows them); every login; no password;
#              no allow at the default audit_sample 0
#   rotation   Mosquitto keeps SIGUSR1 for itself: its reload (SIGHUP)
#              opens the log again after a move
#
# Usage: mosquitto_observe_test.sh PATH-TO-EXHOOKCTL.  Last line: "N passed, N failed".
set -u
ctl=${1:?usage: mosquitto_observe_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
cd "$(dirname "$0")/.." || exit 2
plugin=$(dirname "$ctl")/exhook_mosquitto.so
. tests/lib/suite.sh
suite_counters
tmp=$(mktemp -d)
chmod 755 "$tmp"
bpid=
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

for tool in mosquitto mosquitto_pub mosquitto_sub curl; do
  command -v "$tool" >/dev/null || { bad "$tool not installed (bash scripts/deps.sh installs it)"; finish; }
done
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null ||
  { bad "python3-prometheus-client not installed"; finish; }
[ -f "$plugin" ] || { bad "no plugin at $plugin"; finish; }
. tests/lib/broker.sh
broker_env "$plugin"
me=$(id -un)

DB=$tmp/exhook.db
$ctl --db "$DB" init >/dev/null || { bad "exhookctl init"; finish; }
printf 'alicepw\n' | $ctl --db "$DB" add-user alice --password-stdin >/dev/null || bad "add-user alice"
POL=$tmp/pol
mkdir -p "$POL"
cat >"$POL/10.policy" <<'POLICY'
default deny
deny  publish username "alice" topic "alice/secret/#"
allow pubsub  username "alice" topic "alice/#"
POLICY

port=$(free_port)
mport=$(free_port)
audit=$tmp/audit.jsonl
log=$tmp/broker.log
{
  printf 'user %s\nlistener %s 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type all\n' "$me" "$port"
  printf 'allow_anonymous false\nplugin %s\nplugin_opt_database %s\nplugin_opt_policy %s\n' "$plugin" "$DB" "$POL"
  printf 'plugin_opt_metrics_listen 127.0.0.1:%s\nplugin_opt_audit_log %s\n' "$mport" "$audit"
} >"$tmp/broker.conf"
"${broker_env[@]}" mosquitto -c "$tmp/broker.conf" >"$log" 2>&1 &
bpid=$!
for _ in $(seq 100); do
  grep -q 'mosquitto version .* running' "$log" && break
  sleep 0.05
done
grep -q 'mosquitto version .* running' "$log" || { bad "the broker did not start: $(cat "$log")"; finish; }

# scrape QUERY...: one value a line (promcheck.py).  Run in a subshell:
# what it finds wrong with the format goes to $tmp/scrape.bad, counted at
# the end.
scrape() {
  curl -sS --max-time 10 "http://127.0.0.1:$mport/metrics" >"$tmp/m.txt" || return 1
  if /usr/bin/python3 tests/lib/promcheck.py "$tmp/m.txt" "$@" >"$tmp/q.txt" 2>"$tmp/q.err"; then
    echo >>"$tmp/scrape.good"
  else
    head -5 "$tmp/q.err" >>"$tmp/scrape.bad"
  fi
  cat "$tmp/q.txt"
}
acl() { echo "exhook_acl_decisions_total{action=\"$1\",outcome=\"$2\"}"; }
login() { echo "exhook_logins_total{outcome=\"$1\",reason=\"$2\"}"; }
expect() { # NAME GOT WANT
  [ "$2" = "$3" ] && ok || bad "$1: got '$2', want '$3'"
}

# A subscriber for alice/a, up before anything is published (the
# subscription's own check is counted: wait for it).
mosquitto_sub -p "$port" -u alice -P alicepw -i sub-1 -t alice/a -q 1 -C 50 -W 30 >"$tmp/sub.out" &
spid=$!
for _ in $(seq 100); do
  [ "$(scrape "$(acl subscribe allow)" 2>/dev/null | tail -1)" = 1 ] && break
  sleep 0.1
done
seq 50 | mosquitto_pub -p "$port" -u alice -P alicepw -i pub-1 -q 1 -t alice/a -l || bad "publish alice/a"
seq 30 | mosquitto_pub -p "$port" -u alice -P alicepw -i pub-2 -q 1 -r -t alice/secret/x -l || bad "publish alice/secret/x"
mosquitto_pub -p "$port" -u alice -P wrongpw -i pub-3 -t alice/a -m x 2>/dev/null && bad "a wrong password got in"
mosquitto_pub -p "$port" -u nobody -P nobodypw -i pub-4 -t alice/a -m x 2>/dev/null && bad "an unknown user got in"
wait "$spid"
expect "the subscriber got the 50 allowed messages" "$(wc -l <"$tmp/sub.out")" 50

mapfile -t v < <(scrape "$(acl publish allow)" "$(acl publish deny)" "$(acl subscribe allow)" \
  "$(acl deliver allow)" "$(acl deliver deny)" "$(login allow ok)" "$(login allow 'ok cached')" \
  "$(login deny 'wrong password')" "$(login deny 'unknown user')" exhook_policy_rules{})
expect "publishes allowed" "${v[0]}" 50
expect "publishes denied" "${v[1]}" 30
expect "the subscription" "${v[2]}" 1
expect "deliveries checked" "${v[3]}" 50
expect "no delivery denied" "${v[4]}" 0
expect "alice's three logins (one hash, then the cache)" "$((${v[5]} + ${v[6]}))" 3
expect "the wrong password" "${v[7]}" 1
expect "the unknown user" "${v[8]}" 1
expect "rules" "${v[9]}" 2

# The audit log: written by a thread; wait for the 30 denies and 5 logins.
for _ in $(seq 100); do
  [ "$(grep -c . "$audit" 2>/dev/null)" -ge 35 ] && break
  sleep 0.1
done
/usr/bin/python3 - "$audit" "$POL/10.policy" >"$tmp/audit.check" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
acl = [r for r in recs if r['event'] == 'acl']
logins = [r for r in recs if r['event'] == 'login']
print(len(acl), len({(r['topic'], r['decision'], r['rule'], r.get('qos'), r.get('retain'), r['front'],
                       r['clientid'], r.get('username'), r.get('peer'), r.get('gen'), r.get('groups'))
                      for r in acl}))
r = acl[0] if acl else {}
print(r.get('topic'), r.get('decision'), r.get('rule') == sys.argv[2] + ':2', r.get('qos'),
      r.get('retain'), r.get('front'), r.get('clientid'), r.get('username'), r.get('peer'))
print(' '.join(sorted(f"{l['clientid']}:{l['decision']}:{l['reason'].replace(' ', '_')}" for l in logins)))
PY
mapfile -t a <"$tmp/audit.check"
expect "every denied publish in the audit log, no allow" "${a[0]}" "30 1"
expect "a deny record: topic, decision, rule, QoS, retain, front end, client" "${a[1]}" \
  "alice/secret/x deny True 1 True mosquitto pub-2 alice 127.0.0.1"
expect "the logins" "${a[2]}" \
  "pub-1:allow:ok_cached pub-2:allow:ok_cached pub-3:deny:wrong_password pub-4:deny:unknown_user sub-1:allow:ok"
if grep -qE 'alicepw|wrongpw|nobodypw' "$audit"; then bad "a password in the audit log"; else ok; fi
expect "the audit log is 0600" "$(stat -c %a "$audit")" 600

# Rotation: moved away, then the broker's reload opens a new one.
mv "$audit" "$audit.1"
kill -HUP "$bpid"
for _ in $(seq 50); do
  grep -q 'policy .*reloaded\|exhook: policy' "$log" && break
  sleep 0.1
done
sleep 0.3
mosquitto_pub -p "$port" -u alice -P alicepw -i pub-5 -q 1 -t alice/secret/after -m x || bad "publish after reload"
for _ in $(seq 50); do
  grep -q 'alice/secret/after' "$audit" 2>/dev/null && break
  sleep 0.1
done
if grep -q 'alice/secret/after' "$audit" 2>/dev/null && ! grep -q 'alice/secret/after' "$audit.1"; then ok; else
  bad "after a move and the broker's reload, records go to a new file"
fi

if [ -s "$tmp/scrape.bad" ]; then bad "a scrape is not valid 0.0.4: $(head -5 "$tmp/scrape.bad")"
elif [ -s "$tmp/scrape.good" ]; then ok; else bad "no scrape checked"; fi

kill "$bpid"
wait "$bpid" 2>/dev/null
bpid=
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
  bad "sanitizer report in the broker's log: $(grep -A20 -E 'Sanitizer|runtime error' "$log" | head -40)"
else ok; fi
finish
