#!/usr/bin/env bash
# Benchmark: time from `setpoint apply -d` to the first 200 through the proxy for a service whose
# app starts at once (Python's http.server, ~50 ms), against the same app started directly and
# polled the same way (the reference); the server's idle RSS; the CLI's start time.
# Goals: ≤ 1 s to first 200, ≤ 50 MB idle RSS, ≤ 0.2 s CLI start.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
swift build -c release --product setpoint >/dev/null
bin="$root/.build/release/setpoint"
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
token="bench-$RANDOM$RANDOM"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$(readlink /proc/$pid/cwd 2>/dev/null)" in "$work"*) kill -9 "$pid" 2>/dev/null || true;; esac
  done
  [ -n "${ref_pid:-}" ] && kill "$ref_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

HOME="$work" SETPOINT_ADMIN_TOKEN="$token" "$bin" server --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$port/api/v1/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

cat >"$work/instant.dstack.yml" <<YAML
type: service
name: instant
commands:
  - python3 -m http.server 8000 --bind 127.0.0.1
port: 8000
YAML

measure() {  # measure URL [AUTH]: seconds until the first 200
  python3 - "$@" <<'PY'
import sys, time, urllib.request
url = sys.argv[1]; token = sys.argv[2] if len(sys.argv) > 2 else None
start = float(sys.argv[3]) if len(sys.argv) > 3 else time.time()
while True:
    req = urllib.request.Request(url)
    if token: req.add_header("Authorization", "Bearer " + token)
    try:
        if urllib.request.urlopen(req, timeout=2).status == 200: break
    except Exception: pass
    if time.time() - start > 30: print("timeout"); sys.exit(1)
    time.sleep(0.005)
print(f"{time.time() - start:.3f}")
PY
}

# Reference: the same app started directly, polled the same way.
start=$(python3 -c 'import time; print(time.time())')
(cd "$work" && exec python3 -m http.server "$app_port" --bind 127.0.0.1 >/dev/null 2>&1) &
ref_pid=$!
ref=$(measure "http://127.0.0.1:$app_port/" "" "$start")
kill "$ref_pid"; ref_pid=""

start=$(python3 -c 'import time; print(time.time())')
HOME="$work" SETPOINT_URL="http://127.0.0.1:$port" SETPOINT_TOKEN="$token" "$bin" apply -f "$work/instant.dstack.yml" -y -d >/dev/null
ours=$(measure "http://127.0.0.1:$port/proxy/services/main/instant/" "$token" "$start")

sleep 2  # let the server settle before reading its idle RSS
rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$server_pid/status)
cli=$(python3 - "$bin" <<'PY'
import subprocess, sys, time
times = []
for _ in range(10):
    s = time.time(); subprocess.run([sys.argv[1], "--help"], stdout=subprocess.DEVNULL); times.append(time.time() - s)
times.sort(); print(f"{times[len(times)//2]:.3f}")
PY
)
ref_cli=$(python3 - <<'PY'
import subprocess, time
times = []
for _ in range(10):
    s = time.time(); subprocess.run(["/bin/true"]); times.append(time.time() - s)
times.sort(); print(f"{times[len(times)//2]:.4f}")
PY
)
echo "apply -d → first 200 through the proxy: ${ours} s (app started directly: ${ref} s, ratio $(python3 -c "print(f'{$ours/max($ref,0.001):.1f}')")x)"
echo "server idle RSS: ${rss} MB"
echo "CLI start (setpoint --help, median of 10): ${cli} s (/bin/true: ${ref_cli} s)"
