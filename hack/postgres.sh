#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests and benchmarks: Debian's `postgresql` binaries, a
# cluster of its own in a directory of its own, on a free loopback port, with TLS (a self-signed
# certificate) and password authentication, as a production database would have.
#
#   hack/postgres.sh start [DIR]   prints `export SETPOINT_TEST_DATABASE_URL=...` (eval it)
#   hack/postgres.sh stop [DIR]
#
# DIR defaults to /tmp/setpoint-postgres. The URL names the database `setpoint` of the user
# `setpoint`, who may create databases (each test suite makes its own). Run as root, the server
# runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

action="${1:-}"
dir="${2:-/tmp/setpoint-postgres}"
password="setpoint-test-only"

bin=""
for candidate in /usr/lib/postgresql/*/bin; do [ -x "$candidate/initdb" ] && bin="$candidate"; done
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    if [ -z "$bin" ]; then
      echo "hack/postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
      exit 1
    fi
    if [ -f "$dir/env" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      cat "$dir/env"
      exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir/data"
    # A free port: bind to 0 and read what the kernel chose.
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      -keyout "$dir/server.key" -out "$dir/server.crt" >/dev/null 2>&1
    printf '%s\n' "$password" > "$dir/password"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
    chmod 700 "$dir/data"
    chmod 600 "$dir/server.key"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$dir/password" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >> "$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
max_connections = 300
fsync = on
synchronous_commit = on
EOF
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q <<EOF
CREATE ROLE setpoint LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE setpoint OWNER setpoint;
EOF
    url="postgres://setpoint:$password@127.0.0.1:$port/setpoint"
    printf 'export SETPOINT_TEST_DATABASE_URL=%q\nexport SETPOINT_TEST_DATABASE_CA=%q\n' "$url" "$dir/server.crt" > "$dir/env"
    cat "$dir/env"
    ;;
  stop)
    if [ -n "$bin" ] && [ -d "$dir/data" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: hack/postgres.sh start|stop [DIR]" >&2
    exit 2
    ;;
esac
