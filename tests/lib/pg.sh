# tests/lib/pg.sh -- a throwaway PostgreSQL cluster for a test script.
# Source it, then call pg_start: it starts a fresh cluster (Debian's
# postgresql package: /usr/lib/postgresql/N/bin) in a temporary directory,
# listening on a free TCP port on 127.0.0.1 and on a Unix socket in that
# directory, creates database exhook_test, and exports
#   EXH_TEST_PG_URI         postgresql://exhook@127.0.0.1:PORT/exhook_test
#   EXH_TEST_PG_SOCKET_URI  the same database over the Unix socket
#   PGPASSFILE              the password for TCP (scram-sha-256)
# The password is in a 0600 file and never in any process's arguments:
# initdb reads it with --pwfile, libpq from PGPASSFILE.  The socket
# (trust) sits in a 0700 directory only its owner can enter.
# An EXIT trap stops the server (immediate) and removes the directory,
# also when the script fails; pg_createdb NAME makes another database and
# prints its URI.
#
# pg_restart [MODE] stops the server (MODE fast by default: every session
# is ended, as when a database server restarts) and starts it again on
# the same port and directory.
#
# No orphans: a test killed with SIGKILL never runs its EXIT trap, so the
# server would outlive it.  Each run writes the owning script's pid and
# start time into its directory (owner); a watchdog started beside the
# server stops it and removes the directory within a second of that
# process's end, and every pg_start also stops and removes what earlier
# runs left whose owner is gone (a watchdog killed too, a reboot).
#
# PostgreSQL refuses to run as root: as root the server runs as the system
# user exhook-pgtest (made with useradd if missing, else nobody).
# No PostgreSQL installed is a failure, never a skip: scripts/deps.sh
# installs it.

# The start time of process $1 (field 22 of /proc/PID/stat, after the
# command's parenthesis), empty when there is no such process: a pid with
# its start time names one process, never a later one given the same pid.
pg_proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  set -- $stat
  echo "${20}"
}

# pg_reap DIR: stop the server of a pg.sh directory and remove it.
pg_reap() {
  local dir=$1 pm
  if [ -f "$dir/data/postmaster.pid" ]; then
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1
    # a server the stop could not reach (pg_ctl ran as another user)
    pm=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null)
    [ -n "$pm" ] && [ -d "/proc/$pm" ] && grep -qs postgres "/proc/$pm/comm" && kill -KILL "$pm" 2>/dev/null
  fi
  rm -rf "$dir"
}

# Stop and remove the servers of earlier runs whose owner is gone.
pg_reap_orphans() {
  local d pid start
  for d in /tmp/exh-pg.*; do
    [ -f "$d/owner" ] || continue
    read -r pid start <"$d/owner" || continue
    [ -n "$pid" ] && [ "$(pg_proc_start "$pid")" = "$start" ] && continue
    pg_reap "$d"
  done
}

pg_start() {
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1)
  if [ -z "$initdb" ] || [ ! -x "$initdb" ]; then
    echo "pg.sh: no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb);" \
      "install the postgresql package (scripts/deps.sh)" >&2
    return 1
  fi
  PG_BIN=$(dirname "$initdb")
  PG_AS=()
  pg_as_root
  pg_reap_orphans
  PG_DIR=$(mktemp -d /tmp/exh-pg.XXXXXX) || return 1
  echo "$$ $(pg_proc_start $$)" >"$PG_DIR/owner"
  trap pg_stop EXIT
  trap 'exit 130' INT TERM
  if [ ${#PG_AS[@]} != 0 ]; then
    chown "${PG_AS[2]}" "$PG_DIR"
  fi
  chmod 700 "$PG_DIR"
  PG_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  (umask 077 && printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pw")
  [ ${#PG_AS[@]} = 0 ] || chown "${PG_AS[2]}" "$PG_DIR/pw"
  if ! "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U exhook --pwfile="$PG_DIR/pw" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
      >"$PG_DIR/initdb.log" 2>&1; then
    echo "pg.sh: initdb failed:" >&2
    cat "$PG_DIR/initdb.log" >&2
    return 1
  fi
  rm -f "$PG_DIR/pw"
  # A free port: another process may take it before the server does, so
  # try a few.
  local try
  for try in 1 2 3; do
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if pg_server_start; then
      break
    fi
    PG_PORT=
  done
  if [ -z "$PG_PORT" ]; then
    echo "pg.sh: the PostgreSQL server did not start:" >&2
    cat "$PG_DIR/server.log" >&2
    return 1
  fi
  pg_watchdog
  (umask 077 && printf '127.0.0.1:%s:*:exhook:%s\n' "$PG_PORT" "$PG_PASSWORD" >"$PG_DIR/pgpass")
  export PGPASSFILE=$PG_DIR/pgpass
  pg_createdb exhook_test >/dev/null || return 1
  export EXH_TEST_PG_URI="postgresql://exhook@127.0.0.1:$PG_PORT/exhook_test"
  export EXH_TEST_PG_SOCKET_URI="postgresql://exhook@/exhook_test?host=$PG_DIR&port=$PG_PORT"
}

# As root, the server runs as exhook-pgtest (made if missing) or nobody.
pg_as_root() {
  [ "$(id -u)" = 0 ] || return 0
  local u=exhook-pgtest
  if ! id "$u" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u" \
      2>/dev/null || u=nobody
  fi
  PG_AS=(runuser -u "$u" --)
}

# Reap this run's server once the owning script is gone, however it
# ended (checked each second; it stops by itself when pg_stop removed
# the directory).  A session of its own and no inherited descriptors: a
# signal to the test's process group does not end it, and a test runner
# waiting for the script's output is not kept waiting by it.
pg_watchdog() {
  setsid -f bash -c '
    owner=$1 start=$2 dir=$3 bin=$4
    shift 4
    alive() {
      local s
      s=$(cat "/proc/$owner/stat" 2>/dev/null) || return 1
      s=${s##*) }
      set -- $s
      [ "${20}" = "$start" ]
    }
    while alive && [ -d "$dir" ]; do sleep 1; done
    [ -d "$dir" ] || exit 0
    "$@" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop
    rm -rf "$dir"' pg-watchdog "$$" "$(pg_proc_start $$)" "$PG_DIR" "$PG_BIN" "${PG_AS[@]}" \
    </dev/null >/dev/null 2>&1
}

# pg_server_start: the cluster's server started on $PG_PORT and its
# socket directory.  pg_server_stop [MODE]: stopped (default fast;
# immediate drops every backend at once, as a crash does).  The data stay.
pg_server_start() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
    start >/dev/null 2>&1
}

pg_server_stop() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "${1:-fast}" -w -t 30 stop >/dev/null 2>&1
}

# pg_restart [MODE]: see the top.
pg_restart() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -m "${1:-fast}" \
    -w -t 30 restart >/dev/null 2>&1
}

# pg_createdb NAME: a new database; prints its URI (TCP).
pg_createdb() {
  "$PG_BIN/createdb" -h "$PG_DIR" -p "$PG_PORT" -U exhook "$1" || return 1
  echo "postgresql://exhook@127.0.0.1:$PG_PORT/$1"
}

# pg_psql DB SQL...: run SQL over the socket (tests reaching behind the store).
pg_psql() {
  local db=$1
  shift
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U exhook -d "$db" -At "$@"
}

# pg_psql_as ROLE DB ARGS...: psql as ROLE over TCP (its password from
# PGPASSFILE, as a front end would connect).
pg_psql_as() {
  local role=$1 db=$2
  shift 2
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$role" -d "$db" -At "$@"
}

pg_stop() {
  local st=$?
  if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ]; then
    [ -f "$PG_DIR/data/postmaster.pid" ] &&
      "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$PG_DIR"
  fi
  return $st
}
