#!/usr/bin/env bash
# Benchmark: RUNS runs × REPLICAS replicas applied at once on the fake backend (zero latency),
# run by the real controllers (informers, work queues, workers) over a store: the in-memory one
# (default), SQLite (a file, as `setpoint server` uses by default), or PostgreSQL (a server of its
# own from hack/postgres.sh, TLS and a password, as several servers share it).
# Last line: converged <N> replicas in <S> s, <W> writes/replica, peak RSS <M> MB
# Usage: hack/bench/reconcile.sh [RUNS] [REPLICAS] [memory|sqlite|postgres|all]   (default 1000 × 10, memory)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
swift build -c release --product reconcile-bench >/dev/null
stores="${3:-memory}"
[ "$stores" = all ] && stores="memory sqlite postgres"
for store in $stores; do
  if [ "$store" = postgres ]; then
    dir="$(mktemp -d /tmp/setpoint-bench-postgres.XXXXXX)"
    eval "$(bash hack/postgres.sh start "$dir")"
    trap 'bash hack/postgres.sh stop "$dir"' EXIT
    export SETPOINT_BENCH_DATABASE_URL="$SETPOINT_TEST_DATABASE_URL?sslmode=require"
  fi
  .build/release/reconcile-bench "${1:-1000}" "${2:-10}" "$store"
  if [ "$store" = postgres ]; then bash hack/postgres.sh stop "$dir"; trap - EXIT; fi
done
