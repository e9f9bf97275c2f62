#!/usr/bin/env bash
# Runs a command with a throw-away PostgreSQL server on loopback and exports its URL as
# SCK_TEST_DATABASE_URL, so the test suite can run every storage test on PostgreSQL too.
# Installs PostgreSQL from Debian's packages when it is missing (CI runs as root).
# Usage: scripts/with-postgres.sh <command> [args...]
# SCK_TEST_PG_OPTIONS adds server settings (`-c name=value ...`, e.g. `-c shared_buffers=2GB`)
# to the defaults below, which are PostgreSQL's own apart from the connection limit.
set -euo pipefail

find_pg_bin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  return 1
}

if ! PG_BIN=$(find_pg_bin); then
  echo "with-postgres: installing PostgreSQL from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  PG_BIN=$(find_pg_bin)
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGDATA=$(mktemp -d "${TMPDIR:-/tmp}/sck-pg.XXXXXX")
PORT=${SCK_TEST_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)}

# initdb and postgres refuse to run as root: run them as the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$PGDATA"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cleanup() {
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PGDATA"
}
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$PGDATA/data" -U sck --auth=trust -E UTF8 >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA/data" -l "$PGDATA/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$PGDATA -c max_connections=200 -c fsync=on ${SCK_TEST_PG_OPTIONS:-}" \
  start >/dev/null
as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U sck sck_test

export SCK_TEST_DATABASE_URL="postgres://sck@127.0.0.1:$PORT/sck_test"
echo "with-postgres: PostgreSQL ready at $SCK_TEST_DATABASE_URL" >&2
cd "$ROOT"
"$@"
