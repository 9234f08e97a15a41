#!/usr/bin/env bash
# Benchmark: failover of the control plane. Two servers (release build) on one PostgreSQL
# database (hack/postgres.sh: TLS, a password), the local backend on a root they share, a
# service of one replica (python3 -m http.server). Measured in the same run:
#
#   reference  a change (more replicas) applied through the follower with the leader alive,
#              until the run has converged (observedGeneration, every replica ready);
#   failover   the leader killed with kill -9, the same kind of change applied at once through
#              the survivor, until converged: the time a user waits when the leader dies.
#
# Prints both, the time until the survivor led, and the ratio failover / reference.
# Usage: hack/bench/failover.sh [ROUNDS]   (default 3)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
rounds="${1:-3}"
swift build -c release --product setpoint >/dev/null
bin="$root/.build/release/setpoint"

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work="$(mktemp -d /tmp/setpoint-failover.XXXXXX)"
pg="$(mktemp -d /tmp/setpoint-failover-postgres.XXXXXX)"   # its own: the postgres user owns it
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  # The replicas: processes whose working directory is in the shared root.
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/cwd" 2>/dev/null)" in "$work"/*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  bash hack/postgres.sh stop "$pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP_LOGS:-}" ] && trap 'cat "$work"/*.log >&2; cleanup' EXIT

eval "$(bash hack/postgres.sh start "$pg")"
token="bench-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
head -c 32 /dev/urandom > "$work/server-secret"
mkdir -p "$work/local"
printf 'backends:\n  - type: local\n    root: %s\n' "$work/local" > "$work/config.yml"

api() { curl -sf -H "Authorization: Bearer $token" "$1$2"; }
wait_for() {  # wait_for SECONDS COMMAND...
  local deadline; deadline=$(echo "$(now) + $1" | bc); shift
  until "$@" >/dev/null 2>&1; do
    if (( $(echo "$(now) > $deadline" | bc) )); then echo "timed out: $*" >&2; return 1; fi
    sleep 0.05
  done
}
converged() {  # converged URL GENERATION REPLICAS
  local run; run="$(api "$1" /api/v1/projects/main/runs/web)" || return 1
  grep -q "\"observedGeneration\":$2[,}]" <<<"$run" && grep -q "\"readyReplicas\":$3[,}]" <<<"$run"
}
leader_is() { api "$1" /api/v1/servers | grep -q "\"leader\":\"$2\""; }

start_server() {  # start_server NAME PORT DATABASE-URL
  mkdir -p "$work/$1"
  cp "$work/server-secret" "$work/$1/server-secret"
  HOME="$work/$1" SETPOINT_ADMIN_TOKEN="$token" SETPOINT_DATABASE_URL="$3" \
    "$bin" server --port "$2" --data-dir "$work/$1" --config "$work/config.yml" --server-name "$1" >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_for 60 curl -sf "http://127.0.0.1:$2/api/v1/healthz"
}

service() {  # service REPLICAS
  cat > "$work/web.dstack.yml" <<EOF
type: service
name: web
commands:
  - python3 -m http.server 8000 --bind 127.0.0.1
port: 8000
replicas: $1
probes:
  - type: http
    url: /
    interval: 1
EOF
}

apply() { SETPOINT_URL="$1" SETPOINT_TOKEN="$token" SETPOINT_PROJECT=main HOME="$work" "$bin" apply -f "$work/web.dstack.yml" -y -d >/dev/null; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
for round in $(seq 1 "$rounds"); do
  # A fresh database per round: a leader `a`, a follower `b`.
  dbname="bench_$round"
  psql "$SETPOINT_TEST_DATABASE_URL" -qAtc "CREATE DATABASE $dbname" >/dev/null
  url="${SETPOINT_TEST_DATABASE_URL%/*}/$dbname?sslmode=require"
  pa=$(free_port); pb=$(free_port)
  A="http://127.0.0.1:$pa"; B="http://127.0.0.1:$pb"
  start_server "a$round" "$pa" "$url"
  wait_for 30 leader_is "$A" "a$round"
  start_server "b$round" "$pb" "$url"
  service 1; apply "$B"
  wait_for 120 converged "$B" 1 1

  # Reference: a change with the leader alive.
  service 2; t0=$(now); apply "$B"
  wait_for 120 converged "$B" 2 2
  reference=$(echo "$(now) - $t0" | bc)

  # Failover: the leader dies, the change goes to the survivor at once.
  kill -9 "${pids[-2]}"
  t0=$(now)
  service 3; apply "$B"
  wait_for 60 leader_is "$B" "b$round"
  led=$(echo "$(now) - $t0" | bc)
  wait_for 120 converged "$B" 3 3
  failover=$(echo "$(now) - $t0" | bc)
  printf 'round %d: reference %.2f s, failover %.2f s (the survivor led after %.2f s), ratio %.1f×\n' \
    "$round" "$reference" "$failover" "$led" "$(echo "$failover / $reference" | bc -l)"
  kill -TERM "${pids[-1]}" 2>/dev/null || true
  wait "${pids[-1]}" 2>/dev/null || true
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/cwd" 2>/dev/null)" in "$work/local"/*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  rm -rf "$work/local/workloads"
done
