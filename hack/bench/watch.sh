#!/usr/bin/env bash
# Benchmark: how fast a change reaches the screen, and what open watchers cost, on the default
# server (release build, local backend, SQLite store). See hack/bench/watch.py for what is
# measured; the reference for latency is a bare HTTP client on the same watch stream, and for
# cost the same burst of changes with no watcher connected, both in the same run.
#   hack/bench/watch.sh [ROUNDS=10] [WATCHERS=100]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export ROUNDS="${1:-10}" WATCHERS="${2:-100}"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
swift build -c release --product setpoint >/dev/null
bin="$root/.build/release/setpoint"
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
token="bench-$RANDOM$RANDOM"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$(readlink /proc/$pid/cwd 2>/dev/null)" in "$work"*) kill -9 "$pid" 2>/dev/null || true;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home"
mkdir -p "$HOME"
SETPOINT_ADMIN_TOKEN="$token" "$bin" server --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/api/v1/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB"
SETPOINT_URL="http://127.0.0.1:$port" SETPOINT_TOKEN="$token" SETPOINT_PROJECT=main SETPOINT_BIN="$bin" WORK="$work" SERVER_PID="$server_pid" \
  python3 "$root/hack/bench/watch.py"
