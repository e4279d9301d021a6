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
# PostgreSQL refuses to run as root: as root the server runs as the system
# user exhook-pgtest (made with useradd if missing, else nobody).
# No PostgreSQL installed is a failure, never a skip: scripts/deps.sh
# installs it.

pg_start() {
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1)
  if [ -z "$initdb" ] || [ ! -x "$initdb" ]; then
    echo "pg.sh: no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb);" \
      "install the postgresql package (scripts/deps.sh)" >&2
    return 1
  fi
  PG_BIN=$(dirname "$initdb")
  PG_DIR=$(mktemp -d /tmp/exh-pg.XXXXXX) || return 1
  trap pg_stop EXIT
  trap 'exit 130' INT TERM
  PG_AS=()
  if [ "$(id -u)" = 0 ]; then
    local u=exhook-pgtest
    if ! id "$u" >/dev/null 2>&1; then
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u" \
        2>/dev/null || u=nobody
    fi
    chown "$u" "$PG_DIR"
    PG_AS=(runuser -u "$u" --)
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
    if "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        start >/dev/null 2>&1; then
      break
    fi
    PG_PORT=
  done
  if [ -z "$PG_PORT" ]; then
    echo "pg.sh: the PostgreSQL server did not start:" >&2
    cat "$PG_DIR/server.log" >&2
    return 1
  fi
  (umask 077 && printf '127.0.0.1:%s:*:exhook:%s\n' "$PG_PORT" "$PG_PASSWORD" >"$PG_DIR/pgpass")
  export PGPASSFILE=$PG_DIR/pgpass
  pg_createdb exhook_test >/dev/null || return 1
  export EXH_TEST_PG_URI="postgresql://exhook@127.0.0.1:$PG_PORT/exhook_test"
  export EXH_TEST_PG_SOCKET_URI="postgresql://exhook@/exhook_test?host=$PG_DIR&port=$PG_PORT"
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
