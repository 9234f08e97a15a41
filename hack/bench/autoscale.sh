#!/usr/bin/env bash
# Benchmark of the autoscaler and of scale from zero, on the real server (release build):
#  1. a service at its target (20 rps on 1 replica of 1..4, scale_up_delay 300 s) gets a 10×
#     load step; prints the time from the step to the scale-up decision (the run's desired
#     count changing). Goal ≤ 2 s (panic mode; the delay would hold a plain target tracker).
#  2. a service at zero replicas gets one request; prints its first-byte latency, the time the
#     same app takes to start and answer when launched directly (the replica start time), and
#     the difference. Goal ≤ 100 ms.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
swift build -c release --product setpoint >/dev/null
bin="$root/.build/release/setpoint"
work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port); app_port=$(free_port)
token="bench-$RANDOM$RANDOM"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$(readlink /proc/$pid/cwd 2>/dev/null)" in "$work"*) kill -9 "$pid" 2>/dev/null || true;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/step" "$work/zero"
cp Tests/Apps/testapp.py "$work/step/"; cp Tests/Apps/testapp.py "$work/zero/"
cat >"$work/step/step.dstack.yml" <<YAML
type: service
name: step
commands:
  - python3 testapp.py --port 8000 --name step
port: 8000
auth: false
replicas: 1..4
scaling:
  metric: rps
  target: 20
  scale_up_delay: 300s
probes:
  - type: http
    url: /name
    interval: 1
YAML
cat >"$work/zero/zero.dstack.yml" <<YAML
type: service
name: zero
commands:
  - python3 testapp.py --port 8000 --name zero
port: 8000
auth: false
replicas: 0..1
scaling:
  metric: rps
  target: 10
YAML

HOME="$work" SETPOINT_ADMIN_TOKEN="$token" "$bin" server --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$port/api/v1/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
export SETPOINT_URL="http://127.0.0.1:$port" SETPOINT_TOKEN="$token" HOME="$work"
(cd "$work/step" && "$bin" apply -f step.dstack.yml -y >/dev/null)
(cd "$work/zero" && "$bin" apply -f zero.dstack.yml -y -d >/dev/null)

python3 - "$port" "$token" "$app_port" "$work/zero" <<'PY'
import http.client, json, os, subprocess, sys, threading, time, urllib.request
port, token, app_port, zero_dir = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
rate = [20.0]
stop = threading.Event()

def client(i, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    next_at = time.monotonic() + i / max(rate[0], 1)
    while not stop.is_set():
        try:
            conn.request("GET", "/proxy/services/main/step/name"); conn.getresponse().read()
        except Exception:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        next_at += n / rate[0]
        delay = next_at - time.monotonic()
        if delay > 0: time.sleep(delay)
        else: next_at = time.monotonic()

def desired():
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/projects/main/runs/step", headers={"Authorization": "Bearer " + token})
    run = json.load(urllib.request.urlopen(req, timeout=5))
    return (run.get("desiredReplicas") or {}).get("0", 1)

n = 16
threads = [threading.Thread(target=client, args=(i, n), daemon=True) for i in range(n)]
for t in threads: t.start()
time.sleep(15)                      # steady at the target: 20 rps on 1 replica
before = desired()
rate[0] = 200.0                     # the 10x step
step = time.monotonic()
while desired() <= before:
    if time.monotonic() - step > 60: print("no scale-up within 60 s"); sys.exit(1)
    time.sleep(0.02)
decision = time.monotonic() - step
stop.set()
print(f"10x load step -> scale-up decision: {decision:.2f} s (desired {before} -> {desired()}; goal <= 2 s)")

# Scale from zero: one request at zero replicas, time to its first byte.
time.sleep(1)
start = time.monotonic()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
conn.request("GET", "/proxy/services/main/zero/name")
resp = conn.getresponse()
first_byte = time.monotonic() - start
assert resp.status == 200, resp.status
# Reference: the same app started directly and polled until it answers.
start = time.monotonic()
app = subprocess.Popen([sys.executable, os.path.join(zero_dir, "testapp.py"), "--port", str(app_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", app_port, timeout=1); c.request("GET", "/name"); c.getresponse().read(); break
    except Exception: time.sleep(0.002)
direct = time.monotonic() - start
app.kill()
print(f"first byte at zero replicas: {first_byte*1000:.0f} ms; the app started directly answers after {direct*1000:.0f} ms; "
      f"difference {max(0, first_byte - direct)*1000:.0f} ms (goal <= 100 ms)")
PY
