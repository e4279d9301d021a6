#!/usr/bin/env bash
# The credential store on PostgreSQL: a throwaway server of our own
# (tests/lib/pg.sh), then the store's unit tests on it (test_store, beside
# exhookctl in the build directory), cli_test.sh against a database of its
# own, and exhookctl's store commands on a URI.  No PostgreSQL installed
# fails this suite: scripts/deps.sh installs it.
# Usage: store_pg_test.sh PATH-TO-EXHOOKCTL.  Last line: "N passed, N failed".
set -u
ctl=${1:?usage: store_pg_test.sh exhookctl}
case $ctl in /*) ;; *) ctl=$PWD/$ctl ;; esac
cd "$(dirname "$0")/.."
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

. tests/lib/pg.sh
if ! pg_start; then
  echo "0 passed, 1 failed"
  exit 1
fi
tmp=$(mktemp -d)
# pg.sh's EXIT trap stops the server; this one also removes our files.
trap 'rm -rf "$tmp"; pg_stop' EXIT

# ---- the unit tests, on SQLite and on PostgreSQL ----
unit=$(dirname "$ctl")/test_store
if [ -x "$unit" ]; then
  if "$unit" >"$tmp/unit" 2>&1 && grep -q 'test_pg_create_and_refusals' "$tmp/unit"; then ok; else
    bad "test_store on PostgreSQL:"$'\n'"$(cat "$tmp/unit")"; fi
else
  bad "no $unit: build the test_store target"
fi

# ---- cli_test.sh with a URI as the (absent) store ----
cli_db=$(pg_createdb exhook_cli)
if EXH_TEST_STORE=$cli_db bash tests/cli_test.sh "$ctl" >"$tmp/cli" 2>&1; then ok; else
  bad "cli_test.sh on $cli_db:"$'\n'"$(cat "$tmp/cli")"; fi

# ---- exhookctl's store commands on a URI ----
DB=$EXH_TEST_PG_URI
X="$ctl --db $DB --policy tests/data/users-groups.policy"
PW="Sesame-$$-open-Ω"
: >"$tmp/all.log"
. tests/lib/cli.sh # run, line, is, has

run "$(line "$PW")" $X add-user alice --password-stdin
has "add-user before init" 2 "no credential store at $DB"
run "$(line "$PW")" $X check --action connect --username alice --password-stdin
has "check --password-stdin before init" 2 "does not exist"
[ "$(pg_psql exhook_test -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 0 ] &&
  ok || bad "a command before init created tables"
run - $X init
is "init creates the schema" 0 "$DB: schema version 3 (created)"
run - $X init
is "init again" 0 "$DB: schema version 3"
run - $ctl --db "$EXH_TEST_PG_SOCKET_URI" init
has "init over the Unix socket" 0 "schema version 3"
run - env EXHOOK_DB="$DB" $ctl init
is "init from EXHOOK_DB" 0 "$DB: schema version 3"

run "$(line "$PW")" $X add-user alice --password-stdin --group ops --group dev --clientid-pattern 'dev-[0-9]+'
is "add-user" 0 "added user 'alice'"
run "$(line "$PW")" $X add-user alice --password-stdin
has "add-user existing" 1 "user 'alice' already exists"
run "$(line "$PW")" $X add-user bob --password-stdin --superuser
is "add-user superuser" 0 "added user 'bob'"
run - $X list-users --json
if [ "$st" = 0 ] && printf '%s' "$out" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert [u["name"] for u in j] == ["alice", "bob"], j
assert j[0]["groups"] == ["dev", "ops"], j
assert j[1]["superuser"] is True, j
' 2>"$tmp/py"; then ok; else bad "list-users --json: $out $(cat "$tmp/py")"; fi
run - $X show-user alice
has "show-user" 0 "groups:            dev, ops"
run - $X set-user alice --del-group ops --add-group banned
is "set-user groups" 0 "updated user 'alice'"
run - $X list-groups
has "list-groups" 0 "banned"
run "$(line "$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
has "check: banned group refused at connect" 1 "deny"
run - $X set-user alice --del-group banned
run "$(line "$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "check --password-stdin right" 0 "allow
credentials"
run "$(line "wrong")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "check --password-stdin wrong" 1 "deny
credentials: wrong password"
run "$(line "new-$PW")" $X passwd alice --password-stdin
has "passwd" 0 "alice"
run "$(line "new-$PW")" $X check --action connect --username alice --clientid dev-1 --password-stdin
is "check after passwd" 0 "allow
credentials"
run - $X del-user bob
has "del-user" 0 "deleted user 'bob'"
run - $X del-user bob
has "del-user again" 1 "no user 'bob'"

# import: one transaction; a bad line changes nothing
if [ -x /usr/bin/mosquitto_passwd ]; then
  printf 'mq1:mq1-pass\nmq2:mq2-pass\n' >"$tmp/mq.pw"
  /usr/bin/mosquitto_passwd -U "$tmp/mq.pw"
  run - $X import mosquitto-passwd "$tmp/mq.pw"
  is "import mosquitto-passwd" 0 "imported 2 users from $tmp/mq.pw"
  run "$(line mq2-pass)" $X check --action connect --username mq2 --password-stdin
  is "imported user connects" 0 "allow
credentials"
  run - $X import mosquitto-passwd "$tmp/mq.pw"
  has "import over existing users" 1 "mq.pw:1"
  run - $X import mosquitto-passwd "$tmp/mq.pw" --replace
  is "import --replace" 0 "imported 2 users from $tmp/mq.pw"
else
  bad "/usr/bin/mosquitto_passwd not found (bash scripts/deps.sh installs mosquitto)"
fi
printf 'new1:$6$c2FsdA==$x\nnew2:not-a-hash\n' >"$tmp/bad.pw"
run - $X import mosquitto-passwd "$tmp/bad.pw"
has "malformed import names file:line" 2 "bad.pw:"
run - $X show-user new1
is "nothing of the bad file stored" 1 ""

run - $X sessions --json
is "sessions --json empty" 0 "[]"

# a password in --db: warned about, and never shown back
run - $ctl --db "postgresql://exhook:${PG_PASSWORD}@127.0.0.1:$PG_PORT/exhook_test" list-users
has "a password in --db is warned about" 0 "holds a password"
run - $ctl --db "postgresql://exhook:not-it-$$@127.0.0.1:$PG_PORT/exhook_test" list-users
has "a wrong password fails with the server's reason" 2 "password authentication failed"
run - env PGPASSFILE=/dev/null $ctl --db "$DB" list-users
has "no password at all fails" 2 "cannot connect"

# ---- migrate: an SQLite store made with exhookctl, into PostgreSQL ----
SQ=$tmp/src.db
S="$ctl --db $SQ --policy tests/data/users-groups.policy"
run - $S init
run "$(line "$PW")" $S add-user alice --password-stdin --group ops --group dev --clientid-pattern 'dev-[0-9]+'
run "$(line "root-$PW")" $S add-user root --password-stdin --superuser --group ops
run "$(line "gone-$PW")" $S add-user gone --password-stdin
run - $S set-user gone --disabled true
if [ -x /usr/bin/mosquitto_passwd ]; then
  printf 'mq:mq-pass\n' >"$tmp/mig.pw"
  /usr/bin/mosquitto_passwd -U "$tmp/mig.pw"
  run - $S import mosquitto-passwd "$tmp/mig.pw"
fi
# zed sorts last: the forced failure below stops the copy on it
run "$(line "zed-$PW")" $S add-user zed --password-stdin --group dev
is "source store made" 0 "added user 'zed'"
# Stand in for the driver, which records sessions through the library.
python3 - "$SQ" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO sessions(clientid, username, peerhost, node, connected_at) VALUES ('dev-1', 'alice', '10.0.0.5', 'emqx@n1', 1700000000)")
db.execute("INSERT INTO history(at, event, clientid, username, peerhost, node, reason) VALUES (1699990000, 'connect', 'old', NULL, '10.0.0.9', 'emqx@n1', NULL)")
db.execute("INSERT INTO history(at, event, clientid, username, peerhost, node, reason) VALUES (1699990100, 'disconnect', 'old', NULL, '10.0.0.9', 'emqx@n1', 'normal')")
db.execute("INSERT INTO history(at, event, clientid, username, peerhost, node, reason) VALUES (1700000000, 'connect', 'dev-1', 'alice', '10.0.0.5', 'emqx@n1', NULL)")
db.commit()
PY
MDB=$(pg_createdb exhook_mig)
M="$ctl --db $MDB --policy tests/data/users-groups.policy"
run - $S migrate --to "$MDB"
has "migrate before init says how" 2 "init"
run - $ctl --db "$MDB" migrate --to "$MDB"
has "migrate from a URI refused" 2 "--db must be an SQLite store"
run - $S migrate --to "$tmp/other.db"
has "migrate to a file refused" 2 "--to must be a PostgreSQL URI"
run - $M init
# a forced error part-way (on the last user): the target stays empty
pg_psql exhook_mig -c "ALTER TABLE users ADD CONSTRAINT no_zed CHECK (name <> 'zed')"
run - $S migrate --to "$MDB"
has "a failure part-way names the user" 2 "copying user 'zed'"
has "a failure part-way says nothing was written" 2 "nothing was written"
[ "$(pg_psql exhook_mig -c "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM memberships) + (SELECT count(*) FROM history) + (SELECT count(*) FROM sessions)")" = 0 ] &&
  ok || bad "a failed migrate left rows behind"
pg_psql exhook_mig -c "ALTER TABLE users DROP CONSTRAINT no_zed"
nusers=5; nmem=4
[ -x /usr/bin/mosquitto_passwd ] || nusers=4
run - $S migrate --to "$MDB"
is "migrate" 0 "migrated $nusers users, $nmem group memberships, 3 session events (1 clients online) to $MDB"
for cmd in "list-users --json" "list-groups --json" "sessions --json" "sessions --history --json"; do
  run - $S $cmd
  a=$out
  run - $M $cmd
  [ "$st" = 0 ] && [ -n "$out" ] && [ "$out" = "$a" ] && ok || bad "after migrate, $cmd differs:"$'\n'"$a"$'\n'"$out"
done
for u in alice root gone mq zed; do
  run - $S show-user "$u" --json --show-hash
  a=$out
  run - $M show-user "$u" --json --show-hash
  if [ "$u" = mq ] && [ ! -x /usr/bin/mosquitto_passwd ]; then continue; fi
  [ "$st" = 0 ] && [ "$out" = "$a" ] && ok || bad "after migrate, show-user $u differs:"$'\n'"$a"$'\n'"$out"
done
[ "$(pg_psql exhook_mig -c "SELECT string_agg(name || ':' || rev, ',' ORDER BY name) FROM users WHERE name IN ('alice', 'gone')")" = \
  "$(python3 -c 'import sqlite3,sys; print(",".join("%s:%d" % r for r in sqlite3.connect(sys.argv[1]).execute("SELECT name, rev FROM users WHERE name IN (\"alice\", \"gone\") ORDER BY name")))' "$SQ")" ] &&
  ok || bad "revisions not kept"
run "$(line "$PW")" $M check --action connect --username alice --clientid dev-1 --password-stdin
is "migrated user logs in" 0 "allow
credentials"
run "$(line "$PW")" $M check --action connect --username alice --clientid other --password-stdin
has "migrated clientid pattern holds" 1 "deny"
run "$(line "root-$PW")" $M check --action publish --username root --topic any/thing
is "migrated superuser" 0 "allow
superuser"
run "$(line "gone-$PW")" $M check --action connect --username gone --password-stdin
has "migrated disabled user refused" 1 "deny"
if [ -x /usr/bin/mosquitto_passwd ]; then
  run "$(line mq-pass)" $M check --action connect --username mq --password-stdin
  is "migrated mosquitto hash verifies" 0 "allow
credentials"
fi
before=$(pg_psql exhook_mig -c "SELECT count(*), max(updated), sum(rev) FROM users")
run - $S migrate --to "$MDB"
has "a second migrate is refused" 2 "not empty"
[ "$(pg_psql exhook_mig -c "SELECT count(*), max(updated), sum(rev) FROM users")" = "$before" ] &&
  [ "$(pg_psql exhook_mig -c "SELECT count(*) FROM history")" = 3 ] &&
  ok || bad "a refused migrate wrote something"

# a killed migrate: held up on the history table (locked by another
# session) after its users are in, then SIGKILLed; the target stays empty
KDB=$(pg_createdb exhook_kill)
run - $ctl --db "$KDB" init
pg_psql exhook_kill -c "BEGIN; LOCK TABLE history IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 50); do
  [ "$(pg_psql exhook_kill -c "SELECT count(*) FROM pg_locks WHERE relation = 'history'::regclass AND granted")" != 0 ] && break
  sleep 0.1
done
$S migrate --to "$KDB" >/dev/null 2>&1 &
mig=$!
waited=no
for _ in $(seq 40); do
  if [ "$(pg_psql exhook_kill -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'exhook' AND wait_event_type = 'Lock'")" != 0 ]; then
    waited=yes; break; fi
  sleep 0.1
done
{ kill -KILL "$mig" && wait "$mig"; } 2>/dev/null
pg_psql exhook_kill -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'exhook_kill' AND pid <> pg_backend_pid()" >/dev/null 2>&1
wait "$holder" 2>/dev/null
if [ "$waited" = yes ] &&
  [ "$(pg_psql exhook_kill -c "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM memberships) + (SELECT count(*) FROM history)")" = 0 ]; then
  ok; else bad "a killed migrate (held up: $waited) left rows behind, or was never held up"; fi

# ---- the runtime role: reads users, writes sessions, nothing else ----
RPW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
# the password goes to psql on stdin and to libpq in PGPASSFILE, never argv
printf "CREATE ROLE exhook_rt LOGIN PASSWORD '%s';\n" "$RPW" | pg_psql exhook_mig -f -
(umask 077 && printf '127.0.0.1:%s:*:exhook_rt:%s\n' "$PG_PORT" "$RPW" >>"$PGPASSFILE")
run - $M init --runtime-role exhook_rt
is "init --runtime-role" 0 "$MDB: schema version 3
granted role 'exhook_rt': read users, groups and meta; write sessions, history and lock-outs"
run - $M init --runtime-role no_such_role
has "init --runtime-role for a missing role" 2 "does not exist"
run - $S init --runtime-role exhook_rt
has "--runtime-role on SQLite refused" 2 "for a PostgreSQL store"
RDB="postgresql://exhook_rt@127.0.0.1:$PG_PORT/exhook_mig"
R="$ctl --db $RDB --policy tests/data/users-groups.policy"
run "$(line "$PW")" $R check --action connect --username alice --clientid dev-1 --password-stdin
is "login as the runtime role" 0 "allow
credentials"
run - $R list-users
has "listing as the runtime role" 0 "alice"
run "$(line "x-$PW")" $R add-user mallory --password-stdin
has "add-user as the runtime role refused" 2 "permission denied for table users"
run - $R set-user alice --superuser true
has "set-user as the runtime role refused" 2 "permission denied"
run - $R del-user alice
has "del-user as the runtime role refused" 2 "permission denied"
# what a front end records, through the library, as the role: 300
# events (the history is trimmed every 256), rt-0 online at the end
lib=$(dirname "$ctl")/libexhook.so
# A sanitizer build's library needs its runtime loaded first into python:
# preloaded, leaks not reported (python's own are not ours).
py_env=()
asan=$(ldd "$lib" 2>/dev/null | awk '/libasan/ {print $3; exit}')
ubsan=$(ldd "$lib" 2>/dev/null | awk '/libubsan/ {print $3; exit}')
[ -n "$asan" ] && py_env=(env LD_PRELOAD="$asan${ubsan:+:$ubsan}" ASAN_OPTIONS=detect_leaks=0)
if [ -f "$lib" ] && "${py_env[@]}" python3 - "$lib" "$RDB" >"$tmp/rec" 2>&1 <<'PY'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
class Ev(ctypes.Structure):
    _fields_ = [("clientid", ctypes.c_char_p), ("username", ctypes.c_char_p),
                ("peerhost", ctypes.c_char_p), ("node", ctypes.c_char_p),
                ("reason", ctypes.c_char_p), ("at", ctypes.c_int64), ("connected", ctypes.c_bool)]
err = ctypes.create_string_buffer(4096)
s = ctypes.c_void_p()
if lib.exh_store_open(sys.argv[2].encode(), None, ctypes.byref(s), err):
    sys.exit("open: " + err.raw[4:600].split(b"\0\0")[0].decode(errors="replace"))
for i in range(301):
    ev = Ev(b"rt-%d" % (i % 2), b"alice", b"10.0.0.7", b"emqx@rt", b"normal" if i % 4 == 2 else None,
            1800000000 + i, i % 4 < 2)
    if lib.exh_store_record_session(s, ctypes.byref(ev), err):
        sys.exit("record %d: %s" % (i, err.raw[4:1100].replace(b"\0", b" ").decode(errors="replace")))
lib.exh_store_close(s)
PY
then
  run - $M sessions --json
  case $out in *'"clientid":"rt-'*) ok ;; *) bad "sessions recorded as the runtime role not listed: $out" ;; esac
else
  bad "runtime role cannot record sessions through the library: $(cat "$tmp/rec")"
fi
# what the front ends write, as the role (psql over TCP, PGPASSFILE)
rt_sql() { pg_psql_as exhook_rt exhook_mig -c "$1" 2>&1; }
if rt_sql "INSERT INTO sessions(clientid, connected_at) VALUES ('rt-1', 1) ON CONFLICT (clientid) DO UPDATE SET connected_at = excluded.connected_at; DELETE FROM sessions WHERE clientid = 'rt-1'; INSERT INTO history(at, event, clientid) VALUES (1, 'connect', 'rt-1'); DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - 100000" >"$tmp/rt" ; then
  ok; else bad "runtime role cannot record sessions: $(cat "$tmp/rt")"; fi
if rt_sql "UPDATE users SET superuser = true" >"$tmp/rt"; then bad "runtime role updated users"; else
  grep -q "permission denied" "$tmp/rt" && ok || bad "runtime role update: $(cat "$tmp/rt")"; fi
if rt_sql "UPDATE exhook_meta SET value = 0" >"$tmp/rt"; then bad "runtime role updated meta"; else
  grep -q "permission denied" "$tmp/rt" && ok || bad "runtime role meta update: $(cat "$tmp/rt")"; fi

# ---- lock-outs: the runtime role writes them (the front ends count failed
# logins), exhookctl lists and clears them on a URI ----
now=$(date +%s%3N)
if rt_sql "INSERT INTO lockouts VALUES ('user', 'alice', 0, $now, 1, $((now + 60000)), $now), ('addr', '10.0.0.7', 2, $now, 0, 0, $now); UPDATE lockouts SET failures = failures + 1 WHERE kind = 'addr'; DELETE FROM lockouts WHERE name = 'nobody'" >"$tmp/rt"; then
  ok; else bad "runtime role cannot write lock-outs: $(cat "$tmp/rt")"; fi
run - $R lockouts
if [ "$st" = 0 ] && [ "$(echo "$out" | wc -l)" = 2 ] && echo "$out" | grep -qE '^user  alice +0 +1  [0-9T:-]+Z  (59|60)$'; then
  ok; else bad "lockouts as the runtime role: $st: $out $err"; fi
run - $M lockouts --all --json
case $out in *'"name":"10.0.0.7","failures":3,'*'"name":"alice",'*) ok ;; *) bad "lockouts --all --json on a URI: $out" ;; esac
run - $R lockouts --clear alice
is "lockouts --clear as the runtime role" 0 "cleared user 'alice' (was locked out)"
run - $M lockouts --clear alice
has "lockouts --clear again" 1 "nothing to clear"
# a runtime role granted before schema version 3 is granted lock-outs by the
# migration (else every login through it would be a store fault)
pg_psql exhook_mig -c "REVOKE ALL ON lockouts FROM exhook_rt; DROP TABLE lockouts; UPDATE exhook_meta SET value = 2 WHERE key = 'schema_version'"
run - $M init
is "init migrates 2 to 3" 0 "$MDB: schema version 3"
if rt_sql "INSERT INTO lockouts VALUES ('user', 'x', 1, 1, 0, 0, 1); DELETE FROM lockouts WHERE name = 'x'" >"$tmp/rt"; then
  ok; else bad "runtime role granted at version 2 cannot write lock-outs after the migration: $(cat "$tmp/rt")"; fi
run - $M lockouts --all
is "lockouts after the migration (a new, empty table)" 0 "KIND  NAME                              FAILURES  STRIKES  LOCKED-UNTIL          SECONDS-LEFT"

# ---- the runtime role is never a superuser nor the tables' owner ----
printf 'CREATE ROLE exhook_su LOGIN SUPERUSER;\n' | pg_psql exhook_mig -f -
run - $M init --runtime-role exhook_su
has "init --runtime-role refuses a superuser" 2 "role 'exhook_su' is a superuser"
# an owner that is not a superuser: its own database, over the socket (trust)
printf 'CREATE ROLE exhook_own LOGIN; CREATE ROLE exhook_own_m LOGIN IN ROLE exhook_own;\n' |
  pg_psql exhook_mig -f -
"$PG_BIN/createdb" -h "$PG_DIR" -p "$PG_PORT" -U exhook -O exhook_own exhook_own
O="$ctl --db postgresql://exhook_own@/exhook_own?host=$PG_DIR&port=$PG_PORT"
run - $O init
has "init as a non-superuser owner" 0 "schema version 3"
run - $O init --runtime-role exhook_own
has "init --runtime-role refuses the tables' owner" 2 "role 'exhook_own' owns the store's tables"
run - $O init --runtime-role exhook_own_m
has "init --runtime-role refuses a member of the owner" 2 "role 'exhook_own_m' is a member of 'exhook_own'"
[ "$(pg_psql exhook_own -c "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee IN ('exhook_own_m')")" = 0 ] &&
  ok || bad "a refused --runtime-role granted something"

# ---- front ends warn about a password in their --db URI ----
pwuri="postgresql://exhook:${PG_PASSWORD}@127.0.0.1:$PG_PORT/exhook_mig"
bindir=$(dirname "$ctl")
timeout 20 "$bindir/exhook-driver" --db "$pwuri" --policy tests/data/users-groups.policy \
  </dev/null >/dev/null 2>"$tmp/drv.log"
if [ "$(grep -c 'holds a password' "$tmp/drv.log")" = 1 ] && grep -q PGPASSFILE "$tmp/drv.log" &&
  ! grep -qF -- "$PG_PASSWORD" "$tmp/drv.log"; then ok; else
  bad "exhook-driver does not warn once of the password in --db: $(cat "$tmp/drv.log")"; fi
gport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bindir/exhook-grpc" --db "$pwuri" --policy tests/data/users-groups.policy \
  --listen "127.0.0.1:$gport" </dev/null >/dev/null 2>"$tmp/grpc.log" &
gpid=$!
for _ in $(seq 100); do grep -q 'serving' "$tmp/grpc.log" && break; sleep 0.1; done
kill -TERM "$gpid" 2>/dev/null; wait "$gpid" 2>/dev/null
if [ "$(grep -c 'holds a password' "$tmp/grpc.log")" = 1 ] && grep -q PGPASSFILE "$tmp/grpc.log" &&
  ! grep -qF -- "$PG_PASSWORD" "$tmp/grpc.log"; then ok; else
  bad "exhook-grpc does not warn once of the password in --db: $(cat "$tmp/grpc.log")"; fi

# ---- a stalled server: every call bounded by busy_timeout ----
# The postmaster and every backend SIGSTOPped while a store connection is
# open: the next call must fail within about busy_timeout (500 ms), never
# hang; after SIGCONT a fresh open works.
if [ -f "$lib" ]; then
  cat >"$tmp/stall.py" <<'PY'
import ctypes, os, sys, time
lib = ctypes.CDLL(sys.argv[1])
uri, d = sys.argv[2].encode(), sys.argv[3]
err = ctypes.create_string_buffer(4096)
opts = ctypes.create_string_buffer(256)
lib.exh_store_opts_default(opts)
ctypes.c_int.from_buffer(opts, 0).value = 500  # busy_timeout_ms, the first field
s = ctypes.c_void_p()
def msg():
    return err.raw[4:1100].replace(b"\0", b" ").strip().decode(errors="replace")
if lib.exh_store_open(uri, opts, ctypes.byref(s), err):
    sys.exit("open: " + msg())
v = ctypes.c_int64()
if lib.exh_store_data_version(s, ctypes.byref(v), err):
    sys.exit("data_version: " + msg())
if sys.argv[4] == "stall":
    open(os.path.join(d, "ready"), "w").close()
    while not os.path.exists(os.path.join(d, "stopped")):
        time.sleep(0.01)
    t = time.monotonic()
    st = lib.exh_store_data_version(s, ctypes.byref(v), err)
    ms = int((time.monotonic() - t) * 1000)
    print("status %d after %d ms: %s" % (st, ms, msg() if st else ""))
    sys.exit(0 if st and ms < 1500 else 1)
print("ok")
PY
  rm -f "$tmp/ready" "$tmp/stopped"
  "${py_env[@]}" timeout 20 python3 "$tmp/stall.py" "$lib" "$MDB" "$tmp" stall >"$tmp/stall" 2>&1 &
  sp=$!
  for _ in $(seq 100); do [ -f "$tmp/ready" ] && break; sleep 0.05; done
  pm=$(head -n1 "$PG_DIR/data/postmaster.pid")
  pids="$pm $(pgrep -P "$pm" | tr '\n' ' ')"
  kill -STOP $pids
  touch "$tmp/stopped"
  wait "$sp"; sst=$?
  kill -CONT $pids
  if [ "$sst" = 0 ] && [ -f "$tmp/ready" ]; then ok; else
    bad "a call to a stopped server was not bounded by busy_timeout: $(cat "$tmp/stall")"; fi
  if "${py_env[@]}" timeout 20 python3 "$tmp/stall.py" "$lib" "$MDB" "$tmp" after >"$tmp/after" 2>&1; then
    ok; else bad "the store does not work again after SIGCONT: $(cat "$tmp/after")"; fi
fi

# ---- the history writer survives a server restart ----
# exhook-grpc writes session history to PostgreSQL; the server restarts
# (every session ended); sessions after it land in the history without
# restarting the front end.
. tests/lib/suite.sh # grpc_python
if grpc_python "$tmp/stubs"; then
  cat >"$tmp/connect.py" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import grpc, exhook_v3_pb2 as pb, exhook_v3_pb2_grpc as pbg
stub = pbg.HookProviderStub(grpc.insecure_channel(sys.argv[2]))
ci = pb.ClientInfo(node="emqx@n1", clientid=sys.argv[3], username="alice", peerhost="10.0.0.1",
                   sockport=1883, protocol="mqtt")
stub.OnClientConnected(pb.ClientConnectedRequest(clientinfo=ci, meta=pb.RequestMeta(node="emqx@n1")),
                       timeout=10)
PY
  hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bindir/exhook-grpc" --db "$MDB" --policy tests/data/users-groups.policy --busy-timeout 500 \
    --listen "127.0.0.1:$hport" </dev/null >/dev/null 2>"$tmp/hist.log" &
  hpid=$!
  for _ in $(seq 100); do grep -q 'serving' "$tmp/hist.log" && break; sleep 0.1; done
  in_history() { [ "$(pg_psql exhook_mig -c "SELECT count(*) FROM history WHERE clientid LIKE '$1'")" != 0 ]; }
  "$py" "$tmp/connect.py" "$tmp/stubs" "127.0.0.1:$hport" before-restart
  landed=no
  for _ in $(seq 50); do in_history before-restart && { landed=yes; break; }; sleep 0.1; done
  pg_restart fast || bad "pg_restart failed: $(tail -n 5 "$PG_DIR/server.log")"
  after=no
  for i in $(seq 40); do
    "$py" "$tmp/connect.py" "$tmp/stubs" "127.0.0.1:$hport" "after-restart-$i"
    sleep 0.5
    in_history 'after-restart-%' && { after=yes; break; }
  done
  kill -TERM "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null
  if [ "$landed" = yes ] && [ "$after" = yes ] && grep -q 'session history written again' "$tmp/hist.log"; then
    ok; else bad "history after a server restart (before: $landed, after: $after): $(cat "$tmp/hist.log")"; fi
fi

# the secrets never show: neither the user's password nor the server's
if grep -qF -- "$PW" "$tmp/all.log"; then bad "a user's password appeared in some output"; else ok; fi
if grep -qF -- "$PG_PASSWORD" "$tmp/all.log"; then bad "the database password appeared in some output"; else ok; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
