#!/usr/bin/env bash
# exhookctl's credential-store commands as an operator uses them: init,
# users, groups, passwords (stdin and terminal), check against the store,
# imports, sessions; exit statuses, JSON output, and that no password or
# (without --show-hash) hash ever shows.  Usage: users_test.sh PATH-TO-EXHOOKCTL
# Last line: "N passed, N failed".
set -u
ctl=${1:?usage: users_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
cd "$(dirname "$0")/.."
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

DB=$tmp/t.db
POLICY=tests/data/users-groups.policy
X="$ctl --db $DB --policy $POLICY"
# The secret: it must never appear in any output nor in any argv.
PW="Sesame-$$-open-Ω"
: >"$tmp/all.log"

. tests/lib/cli.sh # run, line, is, has
is_json() { printf '%s' "$out" | python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; }
# json_get EXPR: evaluate a Python expression on the last stdout parsed as j.
json_get() { printf '%s' "$out" | python3 -c "import json,sys; j=json.load(sys.stdin); r=($1); print(r)"; }

# ---- --help everywhere ----
for cmd in init add-user passwd del-user set-user list-users show-user list-groups import sessions check; do
  run - $ctl $cmd --help
  if [ "$st" = 0 ] && echo "$out" | grep -q "^usage: exhookctl"; then ok; else bad "--help for $cmd"; fi
done
run - $ctl --help
has "main help lists the store commands" 0 "add-user"

# ---- no database: management commands refuse, check/test/lint work, nothing is created ----
run "$(line "$PW")" $X add-user alice --password-stdin
has "add-user before init" 2 "no credential store at $DB"
run - $X list-users
is "list-users before init" 2 ""
run - $X sessions
is "sessions before init" 2 ""
[ -e "$DB" ] && bad "a command before init created the database" || ok
run - $X check --action subscribe --username alice --topic alerts/x
is "check without a db" 1 "deny
default"
run - $X check --action connect --username alice
is "check connect without a db" 0 "allow
credentials"
run "$(line "$PW")" $X check --action connect --username alice --password-stdin
has "check --password-stdin without a db" 2 "does not exist"
printf '%s\n' '{"action":"connect","username":"alice","password":"p"}' >"$tmp/b"
run "$tmp/b" $X check --batch
is "batch password without a db" 2 '{"decision":"deny","rule":null,"reason":"password verification needs the credential store, and there is none (see --db)"}'
run - $ctl --db "$DB" test policies
has "test without a db" 0 "passed, 0 failed"
run - $ctl --db "$DB" --policy policies lint
is "lint without a db" 0 "*"
[ -e "$DB" ] && bad "check/test/lint created the database" || ok

# ---- init ----
run - $X init
is "init creates" 0 "$DB: schema version 3 (created)"
[ "$(stat -c %a "$DB")" = 600 ] && ok || bad "db mode is $(stat -c %a "$DB"), want 600"
run - $X init
is "init again" 0 "$DB: schema version 3"
run - env EXHOOK_DB="$tmp/env.db" $ctl init
is "init from EXHOOK_DB" 0 "$tmp/env.db: schema version 3 (created)"
chmod 644 "$tmp/env.db"
run - $ctl --db "$tmp/env.db" init
has "init warns about a readable db" 0 "readable by other users (mode 0644)"
chmod 600 "$tmp/env.db"
echo "not a database, just text, long enough to not be empty........................" >"$tmp/junk.db"
chmod 644 "$tmp/junk.db"
run - $ctl --db "$tmp/junk.db" init
is "init on a file that is not a database" 2 ""
run - $ctl --db "$tmp/junk.db" --policy $POLICY check --action connect
has "check with an unreadable db" 2 "junk.db"
run - $X init extra
is "init usage" 2 ""

# ---- add-user ----
run "$(line "$PW")" $X add-user alice --password-stdin --group ops --group dev --clientid-pattern 'dev-[0-9]+'
is "add-user" 0 "added user 'alice'"
run "$(line "$PW")" $X add-user alice --password-stdin
has "add-user existing" 1 "user 'alice' already exists"
run - $X add-user bob
has "add-user without a password source" 2 "no password: use --password-stdin or a terminal"
run "$(line "")" $X add-user bob --password-stdin
has "add-user empty password" 2 "empty password"
run - $X add-user bob --password-stdin
has "add-user no input at all" 2 "empty password"
python3 -c 'import sys; sys.stdout.write("x" * 4097 + "\n")' >"$tmp/long"
run "$tmp/long" $X add-user bob --password-stdin
has "add-user password over 4096 bytes" 2 "longer than 4096 bytes"
python3 -c 'import sys; sys.stdout.write("y" * 4096 + "\r\n")' >"$tmp/max"
run "$tmp/max" $X add-user maxpw --password-stdin
is "add-user 4096-byte password with CRLF" 0 "added user 'maxpw'"
run "$(line "$PW")" $X add-user bob --password-stdin --clientid-pattern '('
has "add-user bad clientid pattern" 2 "clientid pattern"
run - $X add-user
is "add-user without USER" 2 ""
run - $X add-user a b
is "add-user two users" 2 ""
run - $X add-user carl --frobnicate
is "add-user unknown option" 2 ""
printf '%s\r\n' "$PW" >"$tmp/crlf"
run "$tmp/crlf" $X add-user bob --password-stdin --superuser
is "add-user superuser, CRLF line" 0 "added user 'bob'"
printf '%s' "$PW" >"$tmp/noeol"
run "$tmp/noeol" $X add-user dora --password-stdin
is "add-user password without a newline" 0 "added user 'dora'"
run "$(line "$PW")" $X add-user -- -dash --password-stdin
is "add-user after --" 2 ""
run "$(line "$PW")" $X add-user --password-stdin -- -dash
is "add-user name starting with -" 0 "added user '-dash'"

# the password never shows in ps while exhookctl waits for it
mkfifo "$tmp/fifo"
$X add-user pstest --password-stdin <"$tmp/fifo" >"$tmp/ps.out" 2>&1 &
pspid=$!
exec 3>"$tmp/fifo"
sleep 0.3
ps -eo args >"$tmp/ps.txt" 2>/dev/null || cat /proc/[0-9]*/cmdline >"$tmp/ps.txt" 2>/dev/null
tr '\0' ' ' <"/proc/$pspid/cmdline" >"$tmp/cmdline" 2>/dev/null
printf '%s\n' "$PW" >&3
exec 3>&-
wait $pspid
psst=$?
cat "$tmp/ps.out" "$tmp/ps.txt" >>"$tmp/all.log"
if [ "$psst" = 0 ] && grep -q "add-user pstest" "$tmp/cmdline" && ! grep -qF -- "$PW" "$tmp/ps.txt" "$tmp/cmdline"; then
  ok; else bad "ps: status $psst, cmdline $(cat "$tmp/cmdline")"; fi

# ---- the terminal: asked twice, echo off (needs script(1) for a pty) ----
if command -v script >/dev/null; then
  # Typed after the prompt, as a person would (echo-off flushes typeahead).
  { sleep 0.5; printf '%s\n' "$PW"; sleep 0.3; printf '%s\n' "$PW"; sleep 0.5; } |
    script -qec "$X add-user ttyuser" /dev/null >"$tmp/tty.out" 2>&1
  cat "$tmp/tty.out" >>"$tmp/all.log"
  if grep -q "Password for ttyuser: " "$tmp/tty.out" && grep -q "Retype password: " "$tmp/tty.out" &&
    grep -q "added user 'ttyuser'" "$tmp/tty.out"; then ok; else bad "tty add-user: $(cat "$tmp/tty.out")"; fi
  { sleep 0.5; printf 'one\n'; sleep 0.3; printf 'two\n'; sleep 0.5; } |
    script -qec "$X passwd ttyuser; echo status=\$?" /dev/null >"$tmp/tty.out" 2>&1
  if grep -q "passwords do not match" "$tmp/tty.out" && grep -q "status=2" "$tmp/tty.out" &&
    ! grep -q "one\|two" "$tmp/tty.out"; then ok; else bad "tty mismatch: $(cat "$tmp/tty.out")"; fi
  run "$(line "$PW")" $X check --action connect --username ttyuser --password-stdin
  is "password typed on the terminal works" 0 "allow
credentials"
else
  bad "script(1) not found: the terminal prompt is not tested (util-linux; bash scripts/deps.sh)"
fi

# ---- check connect --password-stdin against the store: each reason distinct ----
run "$(line "$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "connect right password" 0 "allow
credentials"
run "$(line "wrong-$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "connect wrong password" 1 "deny
credentials: wrong password"
run "$(line "$PW")" $X check --action connect --username nobody --clientid dev-1 --password-stdin
is "connect unknown user" 1 "deny
credentials: unknown user"
run "$(line "$PW")" $X check --action connect --username alice --clientid laptop --password-stdin
is "connect clientid mismatch" 1 "deny
credentials: client id does not match the user's clientid pattern"
run "$(line "$PW")" $X check --action connect --username bob --password-stdin
is "connect CRLF-stored password" 0 "allow
credentials"
run "$(line "$PW")" $X check --action connect --username dora --password-stdin
is "connect password stored without newline" 0 "allow
credentials"
run "$(line "$(python3 -c 'print("y" * 4096)')")" $X check --action connect --username maxpw --password-stdin
is "connect 4096-byte password" 0 "allow
credentials"
run "$(line "$PW")" $X check --json --action connect --username alice --clientid laptop --password-stdin
if [ "$st" = 1 ] && is_json && [ "$(json_get 'j["rule"], j["reason"]')" = "('credentials', \"client id does not match the user's clientid pattern\")" ]; then
  ok; else bad "connect --json refusal: $out"; fi
run "$(line "$PW")" $X check --action publish --username alice --topic t --password-stdin
is "--password-stdin on publish" 2 ""
run "$(line "$PW")" $X check --action connect --password-stdin
is "--password-stdin without --username" 2 ""
run "$(line "$PW")" $X check --batch --password-stdin
is "--password-stdin with --batch" 2 ""
run "$(line "")" $X check --action connect --username alice --password-stdin
is "check empty password" 2 ""

# disabled, then enabled again
run - $X set-user alice --disabled true
is "disable" 0 "updated user 'alice'"
run "$(line "$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "connect disabled user" 1 "deny
credentials: user is disabled"
run - $X set-user alice --disabled false
run "$(line "$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "connect re-enabled user" 0 "allow
credentials"

# ---- groups and superuser from the store ----
run - $X check --action subscribe --username alice --topic alerts/disk
is "store group allows" 0 "allow
$POLICY:3: allow subscribe group \"ops\" topic \"alerts/#\""
run - $X check --action subscribe --username alice --group dev --topic alerts/disk
is "--group overrides the store" 1 "deny
default"
run - $X check --action subscribe --username nobody --topic alerts/disk
is "unknown user has no groups" 1 "deny
default"
run - $X check --action subscribe --username bob --topic '#'
is "superuser from the store" 0 "allow
superuser"
run - $X set-user alice --add-group banned
run "$(line "$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "store group in a connect rule" 1 "deny
$POLICY:4: deny connect group \"banned\""
run - $X check --action connect --username alice
is "store group in a connect rule, no password" 1 "deny
$POLICY:4: deny connect group \"banned\""
run - $X check --action connect --username alice --group ops
is "--group overrides the store on connect" 0 "allow
credentials"
run - $X set-user alice --del-group banned
is "del-group" 0 "updated user 'alice'"

# ---- check --batch with the store ----
python3 - "$PW" >"$tmp/batch" <<'PY'
import json, sys
pw = sys.argv[1]
for r in [
    {"action": "connect", "username": "alice", "clientid": "dev-7", "password": pw},
    {"action": "connect", "username": "alice", "clientid": "dev-7", "password": "x" + pw},
    {"action": "connect", "username": "ghost", "password": pw},
    {"action": "connect", "username": "alice", "clientid": "laptop", "password": pw},
    {"action": "subscribe", "username": "alice", "topic": "alerts/x"},
    {"action": "subscribe", "username": "alice", "topic": "alerts/x", "groups": []},
    {"action": "subscribe", "username": "bob", "topic": "#"},
    {"action": "subscribe", "username": "bob", "topic": "#", "superuser": False},
    {"action": "connect", "username": "alice"},
    {"action": "publish", "username": "alice", "topic": "t", "password": pw},
]:
    print(json.dumps(r, ensure_ascii=False))
PY
run "$tmp/batch" $X check --batch
want='{"decision":"allow","rule":"credentials"}
{"decision":"deny","rule":"credentials","reason":"wrong password"}
{"decision":"deny","rule":"credentials","reason":"unknown user"}
{"decision":"deny","rule":"credentials","reason":"client id does not match the user'"'"'s clientid pattern"}
{"decision":"allow","rule":"'$POLICY':3","text":"allow subscribe group \"ops\" topic \"alerts/#\""}
{"decision":"deny","rule":"default"}
{"decision":"allow","rule":"superuser"}
{"decision":"deny","rule":"default"}
{"decision":"allow","rule":"credentials"}
{"decision":"deny","rule":null,"reason":"\"password\" is only for connect"}'
is "batch with the store" 2 "$want"

# ---- passwd ----
printf '%s\n' "new-$PW" >"$tmp/newpw"
run "$tmp/newpw" $X passwd alice --password-stdin
is "passwd" 0 "changed the password of 'alice'"
run "$(line "$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "old password refused" 1 "deny
credentials: wrong password"
run "$tmp/newpw" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "new password accepted" 0 "allow
credentials"
run "$(line "$PW")" $X passwd nobody --password-stdin
has "passwd unknown user" 1 "no user 'nobody'"
run - $X passwd alice
has "passwd without a password source" 2 "no password"
run - $X passwd
is "passwd without USER" 2 ""
run - $X passwd alice --json
is "passwd --json" 2 ""

# ---- set-user ----
run - $X set-user alice --superuser true --clientid-pattern 'sensor-.*' --add-group a1 --add-group a2
is "set-user several" 0 "updated user 'alice'"
run - $X show-user alice --json
if is_json && [ "$(json_get 'j["superuser"], j["clientid_pattern"], j["groups"]')" = "(True, 'sensor-.*', ['a1', 'a2', 'dev', 'ops'])" ]; then
  ok; else bad "set-user result: $out"; fi
run - $X set-user alice --superuser false --del-group no-such-group
has "set-user all or nothing" 1 "not in group 'no-such-group'"
run - $X show-user alice --json
[ "$(json_get 'j["superuser"]')" = True ] && ok || bad "set-user half-applied: $out"
run - $X set-user alice --no-clientid-pattern --del-group a1 --del-group a2 --superuser false
is "set-user undo" 0 "updated user 'alice'"
run - $X show-user alice --json
[ "$(json_get 'j["superuser"], j["clientid_pattern"], j["groups"]')" = "(False, None, ['dev', 'ops'])" ] && ok || bad "set-user undo result: $out"
run - $X set-user alice --superuser maybe
is "set-user bad bool" 2 ""
run - $X set-user alice
is "set-user nothing to change" 2 ""
run - $X set-user alice --clientid-pattern x --no-clientid-pattern
is "set-user both pattern options" 2 ""
run - $X set-user alice --clientid-pattern '(['
has "set-user bad pattern" 2 "clientid pattern"
run - $X set-user nobody --disabled true
has "set-user unknown user" 1 "no user 'nobody'"
run - $X set-user --superuser true
is "set-user without USER" 2 ""

# ---- list-users, show-user, list-groups ----
run - $X list-users
if [ "$st" = 0 ] && echo "$out" | head -1 | grep -q "^NAME " && echo "$out" | grep -q "^alice .*dev,ops" &&
  echo "$out" | grep -q "^bob  *yes"; then ok; else bad "list-users: $out"; fi
run - $X list-users --json
if [ "$st" = 0 ] && is_json &&
  [ "$(json_get '[u["name"] for u in j if u["name"] != "ttyuser"]')" = "['-dash', 'alice', 'bob', 'dora', 'maxpw', 'pstest']" ]; then
  ok; else bad "list-users --json: $out"; fi
[ "$(json_get 'all("hash" not in u for u in j)')" = True ] && ok || bad "list-users --json shows a hash"
[ "$(json_get 'sorted(j[0].keys())')" = "['clientid_pattern', 'created', 'disabled', 'groups', 'hash_format', 'name', 'superuser', 'updated']" ] &&
  ok || bad "list-users --json keys: $out"
run - $X list-users extra
is "list-users usage" 2 ""
run - $X show-user alice
if [ "$st" = 0 ] && echo "$out" | grep -q "^groups: *dev, ops$" && echo "$out" | grep -q "^hash-format: *argon2id$" &&
  ! echo "$out" | grep -q '^hash:'; then ok; else bad "show-user: $out"; fi
run - $X show-user alice --json
if is_json && [ "$(json_get '"hash" in j, j["hash_format"]')" = "(False, 'argon2id')" ]; then ok; else bad "show-user --json: $out"; fi
run - $X show-user alice --show-hash
echo "$out" | grep -q '^hash: *\$argon2id\$v=19\$' && ok || bad "show-user --show-hash: $out"
run - $X show-user alice --json --show-hash
[ "$(json_get 'j["hash"][:10]')" = '$argon2id$' ] && ok || bad "show-user --json --show-hash: $out"
# --argon2: the cost of the hashes this run writes, and a clear refusal of bad costs
run "$(line "$PW")" $X --argon2 m=1024,t=3 add-user cheap --password-stdin
is "add-user --argon2 m=1024,t=3" 0 "added user 'cheap'"
run - $X show-user cheap --show-hash
echo "$out" | grep -q '^hash: *\$argon2id\$v=19\$m=1024,t=3,p=1\$' && ok || bad "--argon2 cost not written: $out"
run "$(line "$PW")" $X check --action connect --username cheap --password-stdin
is "a login with the cheaper hash" 0 "*"
run "$(line "$PW")" $X --argon2 m=4 add-user tiny --password-stdin
has "--argon2 below argon2's minimum memory" 2 "argon2id memory must be at least 8 KiB per lane"
run "$(line "$PW")" $X --argon2 m=1024,x=2 add-user tiny --password-stdin
has "--argon2 with an unknown key" 2 "--argon2 wants m=KIB,t=PASSES,p=LANES"
run - $X show-user tiny
is "no user from a refused --argon2" 1 "*"
run - $X del-user cheap
is "del-user cheap" 0 "*"
run - $X show-user nobody
has "show-user unknown" 1 "no user 'nobody'"
run - $X show-user
is "show-user without USER" 2 ""
run - $X list-groups
if [ "$st" = 0 ] && echo "$out" | grep -q "^GROUP " && echo "$out" | grep -q "^dev  *1$" &&
  echo "$out" | grep -q "^ops  *1$"; then ok; else bad "list-groups: $out"; fi
run - $X list-groups --json
if [ "$st" = 0 ] && is_json && [ "$(json_get 'j')" = "[{'group': 'dev', 'members': 1}, {'group': 'ops', 'members': 1}]" ]; then
  ok; else bad "list-groups --json: $out"; fi
run - $ctl --db "$tmp/env.db" list-users --json
is "list-users --json on an empty store" 0 "[]"
run - $ctl --db "$tmp/env.db" list-groups --json
is "list-groups --json on an empty store" 0 "[]"

# ---- del-user ----
run - $X del-user dora
is "del-user" 0 "deleted user 'dora'"
run - $X del-user dora
has "del-user again" 1 "no user 'dora'"
run - $X show-user dora
is "deleted user is gone" 1 ""
run - $X del-user
is "del-user without USER" 2 ""

count_users() { $X list-users --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# ---- import: mosquitto_passwd files made by the real tool ----
if [ -x /usr/bin/mosquitto_passwd ]; then
  printf 'mq1:mq1-pass\nmq2:mq2-pass\n' >"$tmp/mq.pw"
  /usr/bin/mosquitto_passwd -U "$tmp/mq.pw" && ok || bad "mosquitto_passwd -U"
  /usr/bin/mosquitto_passwd -H sha512 -b "$tmp/mq.pw" mq3 mq3-pass && ok || bad "mosquitto_passwd -H sha512"
  grep -q '^mq1:\$7\$' "$tmp/mq.pw" && grep -q '^mq3:\$6\$' "$tmp/mq.pw" && ok || bad "mosquitto_passwd output: $(cat "$tmp/mq.pw")"
  run - $X import mosquitto-passwd "$tmp/mq.pw"
  is "import mosquitto-passwd" 0 "imported 3 users from $tmp/mq.pw"
  for u in mq1 mq2 mq3; do
    run "$(line "$u-pass")" $X check --action connect --username $u --password-stdin
    is "imported $u connects" 0 "allow
credentials"
    run "$(line "$u-wrong")" $X check --action connect --username $u --password-stdin
    is "imported $u wrong password" 1 "deny
credentials: wrong password"
  done
  run - $X show-user mq1
  has "imported hash kept as is" 0 "mosquitto-sha512-pbkdf2"
  run - $X show-user mq3
  has "imported \$6\$ hash kept as is" 0 "mosquitto-sha512"
  run - $X import mosquitto-passwd "$tmp/mq.pw"
  has "import over existing users" 1 "mq.pw:1"
  run - $X import mosquitto-passwd "$tmp/mq.pw" --replace
  is "import --replace" 0 "imported 3 users from $tmp/mq.pw"
else
  bad "/usr/bin/mosquitto_passwd not found: the mosquitto-passwd import is not tested (bash scripts/deps.sh installs mosquitto)"
fi

# a malformed file changes nothing and names its line
before=$(count_users)
good6=$(python3 -c 'import base64,hashlib; print("$6$" + base64.b64encode(b"salt").decode() + "$" + base64.b64encode(hashlib.sha512(b"pwsalt").digest()).decode())')
printf '# a comment\nnew1:%s\nnew2:not-a-hash\n' "$good6" >"$tmp/bad.pw"
run - $X import mosquitto-passwd "$tmp/bad.pw"
has "malformed import names file:line" 2 "bad.pw:3"
echo "$err" | grep -qF "not-a-hash" && bad "import error quotes the hash" || ok
[ "$(count_users)" = "$before" ] && ok || bad "malformed import changed the store: $before -> $(count_users)"
run - $X show-user new1
is "nothing of the bad file stored" 1 ""

# emqx exports: hex digests of salt and password
sha() { printf '%s' "$2" | "sha$1sum" | cut -d' ' -f1; }
printf 'user_id,password_hash,salt,is_superuser\ne1,%s,s4lt,true\ne2,%s,pepper,false\n' \
  "$(sha 256 's4lte1-pass')" "$(sha 256 'peppere2-pass')" >"$tmp/emqx.csv"
run - $X import emqx-csv "$tmp/emqx.csv"
is "import emqx-csv" 0 "imported 2 users from $tmp/emqx.csv"
run "$(line e1-pass)" $X check --action connect --username e1 --password-stdin
is "emqx-csv user connects" 0 "allow
credentials"
run - $X check --action subscribe --username e1 --topic '#'
is "emqx is_superuser imported" 0 "allow
superuser"
printf '[{"user_id":"j1","password_hash":"%s","salt":"NaCl","is_superuser":false}]\n' \
  "$(sha 512 'j1-passNaCl')" >"$tmp/emqx.json"
run - $X import emqx-json "$tmp/emqx.json" --emqx-hash sha512 --emqx-salt suffix
is "import emqx-json sha512 suffix" 0 "imported 1 users from $tmp/emqx.json"
run "$(line j1-pass)" $X check --action connect --username j1 --password-stdin
is "emqx-json user connects" 0 "allow
credentials"
run - $X import emqx-csv "$tmp/emqx.csv" --emqx-hash md5
is "import bad --emqx-hash" 2 ""
run - $X import emqx-csv "$tmp/emqx.csv" --emqx-salt middle
is "import bad --emqx-salt" 2 ""
run - $X import mosquitto-passwd "$tmp/bad.pw" --emqx-salt suffix
is "import --emqx-* on mosquitto" 2 ""
run - $X import yaml "$tmp/emqx.csv"
has "import unknown format" 2 "unknown format"
run - $X import emqx-csv
is "import without FILE" 2 ""
run - $X import mosquitto-passwd "$tmp/none.pw"
has "import missing file" 2 "none.pw"

# a large file: progress on stderr, a line per 10000 when not a terminal
python3 - "$tmp/big.pw" <<'PY'
import base64, hashlib, sys
salt = b"0123456789abcdef"
h = base64.b64encode(hashlib.sha512(b"bigpass" + salt).digest()).decode()
s = base64.b64encode(salt).decode()
with open(sys.argv[1], "w") as f:
    for i in range(25000):
        f.write(f"big{i:05d}:$6${s}${h}\n")
PY
run - $X import mosquitto-passwd "$tmp/big.pw"
if [ "$st" = 0 ] && [ "$out" = "imported 25000 users from $tmp/big.pw" ] &&
  [ "$err" = "imported 10000 users...
imported 20000 users..." ]; then ok; else bad "big import: $st: $out / $err"; fi
run "$(line bigpass)" $X check --action connect --username big24999 --password-stdin
is "last big user connects" 0 "allow
credentials"
if command -v script >/dev/null; then
  script -qec "$X import mosquitto-passwd $tmp/big.pw --replace" /dev/null </dev/null >"$tmp/tty.out" 2>&1
  grep -q $'\rimported 25000 users\.\.\.' "$tmp/tty.out" && grep -q "imported 25000 users from" "$tmp/tty.out" &&
    ok || bad "tty progress: $(cat -A "$tmp/tty.out" | head -c 600)"
fi

# ---- sessions ----
run - $X sessions
is "sessions empty" 0 "$(printf '%-24s  %-16s  %-15s  %-12s  %s' CLIENTID USERNAME PEERHOST NODE CONNECTED)"
run - $X sessions --json
is "sessions --json empty" 0 "[]"
run - $X sessions --history --json
is "history --json empty" 0 "[]"
if python3 -c 'import sqlite3' 2>/dev/null; then
  # Stand in for the driver, which records sessions through the library.
  python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO sessions(clientid, username, peerhost, node, connected_at) VALUES ('dev-1', 'alice', '10.0.0.5', 'emqx@n1', 1700000000)")
db.execute("INSERT INTO history(at, event, clientid, username, peerhost, node, reason) VALUES (1699990000, 'connect', 'old', NULL, '10.0.0.9', 'emqx@n1', NULL)")
db.execute("INSERT INTO history(at, event, clientid, username, peerhost, node, reason) VALUES (1699990100, 'disconnect', 'old', NULL, '10.0.0.9', 'emqx@n1', 'normal')")
db.execute("INSERT INTO history(at, event, clientid, username, peerhost, node, reason) VALUES (1700000000, 'connect', 'dev-1', 'alice', '10.0.0.5', 'emqx@n1', NULL)")
db.commit()
PY
  run - $X sessions
  if [ "$st" = 0 ] && echo "$out" | grep -q "^dev-1  *alice  *10.0.0.5  *emqx@n1  *2023-11-14T22:13:20Z$"; then ok; else bad "sessions: $out"; fi
  run - $X sessions --json
  [ "$st" = 0 ] && is_json && [ "$(json_get 'j')" = "[{'connected_at': '2023-11-14T22:13:20Z', 'clientid': 'dev-1', 'username': 'alice', 'peerhost': '10.0.0.5', 'node': 'emqx@n1'}]" ] &&
    ok || bad "sessions --json: $out"
  run - $X sessions --history
  if [ "$st" = 0 ] && [ "$(echo "$out" | wc -l)" = 4 ] && echo "$out" | sed -n 3p | grep -q "disconnect  *old  *-  *10.0.0.9  *emqx@n1  *normal$"; then
    ok; else bad "sessions --history: $out"; fi
  run - $X sessions --history --json
  [ "$st" = 0 ] && is_json && [ "$(json_get '[(e["event"], e["clientid"], e["reason"]) for e in j]')" = "[('connect', 'dev-1', None), ('disconnect', 'old', 'normal'), ('connect', 'old', None)]" ] &&
    ok || bad "sessions --history --json: $out"
else
  bad "python3's sqlite3 missing: recorded sessions are not tested (bash scripts/deps.sh)"
fi
run - $X sessions --frobnicate
is "sessions usage" 2 ""

# ---- lockouts: what the front ends locked out (rows as a front end writes them) ----
run - $X lockouts
is "lockouts, none" 0 "KIND  NAME                              FAILURES  STRIKES  LOCKED-UNTIL          SECONDS-LEFT"
now=$(date +%s%3N)
python3 - "$DB" "$now" <<'PY'
import sqlite3, sys
now = int(sys.argv[2])
c = sqlite3.connect(sys.argv[1])
c.executemany("INSERT INTO lockouts VALUES (?, ?, ?, ?, ?, ?, ?)", [
    ("user", "alice", 0, now, 2, now + 120000, now),        # locked, 2 min left
    ("addr", "2001:db8::7", 0, now, 1, now + 60000, now),    # locked
    ("user", "carol", 4, now, 0, 0, now),                    # counting, not locked
    ("user", "2001:db8::7", 3, now, 1, now - 1000, now)])    # a user named like the address
c.commit()
PY
run - $X lockouts
if [ "$st" = 0 ] && [ "$(echo "$out" | wc -l)" = 3 ] &&
  echo "$out" | grep -qE '^addr  2001:db8::7 +0 +1  [0-9T:-]+Z  (59|60)$' &&
  echo "$out" | grep -qE '^user  alice +0 +2  [0-9T:-]+Z  (119|120)$'; then ok; else bad "lockouts: $out"; fi
run - $X lockouts --all --json
[ "$st" = 0 ] && is_json && [ "$(json_get '[(e["kind"], e["name"], e["failures"], e["locked"], e["locked_until"] is None) for e in j]')" = "[('addr', '2001:db8::7', 0, True, False), ('user', '2001:db8::7', 3, False, True), ('user', 'alice', 0, True, False), ('user', 'carol', 4, False, True)]" ] &&
  ok || bad "lockouts --all --json: $out"
run - $X lockouts --clear alice
is "lockouts --clear a user" 0 "cleared user 'alice' (was locked out)"
run - $X lockouts --clear 2001:DB8:0::7
is "lockouts --clear an address (written otherwise) and a user of that name" 0 "cleared address 2001:db8::7 (was locked out)"
run - $X lockouts --clear 2001:db8::7
is "lockouts --clear the user named like it" 0 "cleared user '2001:db8::7'"
run - $X lockouts --clear alice
has "lockouts --clear again: nothing" 1 "nothing to clear for 'alice'"
run - $X lockouts --all
if [ "$st" = 0 ] && [ "$(echo "$out" | wc -l)" = 2 ] && echo "$out" | grep -q '^user  carol  *4  *0  *-  *-$'; then ok; else bad "lockouts --all after clearing: $out"; fi
run - $X lockouts --clear
is "lockouts --clear without a name" 2 ""
run - $X lockouts --clear x --json
is "lockouts --clear with --json" 2 ""
run - $X lockouts --help
has "lockouts --help" 0 "usage: exhookctl lockouts"
run - $ctl --db "$tmp/absent.db" lockouts
has "lockouts without a store" 2 "no credential store at $tmp/absent.db"

# ---- nothing ever showed the password, nor a hash without --show-hash ----
if grep -qF -- "$PW" "$tmp/all.log"; then bad "the password appeared in some output"; else ok; fi
grep -v '^hash:' "$tmp/all.log" | grep -v '"hash":' | grep -q '\$argon2id\$' &&
  bad "an argon2id hash appeared without --show-hash" || ok

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
