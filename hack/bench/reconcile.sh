#!/usr/bin/env bash
# Benchmark: RUNS runs × REPLICAS replicas applied at once on the fake backend (zero latency),
# run by the real controllers (informers, work queues, workers) over the in-memory store.
# Last line: converged <N> replicas in <S> s, <W> writes/replica, peak RSS <M> MB
# Usage: hack/bench/reconcile.sh [RUNS] [REPLICAS]   (default 1000 × 10)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
swift build -c release --product reconcile-bench >/dev/null
.build/release/reconcile-bench "${1:-1000}" "${2:-10}"
