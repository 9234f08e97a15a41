#!/usr/bin/env bash
# Benchmark: wrk against one fast upstream (nginx serving a 1 KiB file) four ways in one run —
# directly, through nginx as a reverse proxy (keep-alive upstream pool), through Setpoint's
# proxy (the real server, the upstream being the service's replica), and through a Setpoint
# gateway (`backend: local`, `Host: upstream.bench.test`) — and prints requests/s, p50 and p99
# for each and Setpoint's ratios to nginx. Goal: ≥ 1.0× nginx's throughput, p99 ≤ nginx's.
#   hack/bench/proxy.sh [DURATION_SECONDS=10] [CONNECTIONS=64]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
duration="${1:-10}"
connections="${2:-64}"
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
swift build -c release --product setpoint >/dev/null
bin="$root/.build/release/setpoint"
work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port); nginx_port=$(free_port); gateway_port=$(free_port)
token="bench-$RANDOM$RANDOM"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  [ -f "$work/proxy/nginx.pid" ] && kill "$(cat "$work/proxy/nginx.pid")" 2>/dev/null || true
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$(readlink /proc/$pid/cwd 2>/dev/null)" in "$work"*) kill -9 "$pid" 2>/dev/null || true;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The upstream: nginx serving index.html (1 KiB), run by Setpoint as a service's replica on the
# host network (so both proxies reach the very same upstream at 127.0.0.1:8000).
mkdir -p "$work/service" "$work/proxy"
head -c 1024 /dev/zero | tr '\0' 'x' >"$work/service/index.html"
cat >"$work/service/upstream.conf" <<CONF
user root;
worker_processes 1;
daemon off;
pid upstream.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:8000 backlog=4096; root .; }
}
CONF
cat >"$work/service/upstream.dstack.yml" <<YAML
type: service
name: upstream
commands:
  - exec $nginx_bin -p "\$PWD/" -c "\$PWD/upstream.conf"
port: 8000
auth: false
probes:
  - type: http
    url: /index.html
    interval: 1
YAML
cat >"$work/proxy/nginx.conf" <<CONF
worker_processes auto;
daemon on;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream app { server 127.0.0.1:8000; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port backlog=4096;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF

# A gateway on the local backend, HTTP only (the proxies compared are plain HTTP too).
mkdir -p "$work/data"
cat >"$work/data/config.yml" <<YAML
backends:
  - type: local
gateways:
  local: {host: 127.0.0.1, http_port: $gateway_port}
YAML
cat >"$work/service/gateway.dstack.yml" <<YAML
type: gateway
name: bench
backend: local
region: local
domain: bench.test
certificate: null
YAML

SETPOINT_LOCAL_NETWORK=host HOME="$work" SETPOINT_ADMIN_TOKEN="$token" "$bin" server --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$port/api/v1/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
(cd "$work/service" && SETPOINT_URL="http://127.0.0.1:$port" SETPOINT_TOKEN="$token" HOME="$work" "$bin" apply -f gateway.dstack.yml -y >/dev/null)
(cd "$work/service" && SETPOINT_URL="http://127.0.0.1:$port" SETPOINT_TOKEN="$token" HOME="$work" "$bin" apply -f upstream.dstack.yml -y >/dev/null)
for _ in $(seq 1 200); do curl -fsS -H "Host: upstream.bench.test" "http://127.0.0.1:$gateway_port/index.html" >/dev/null 2>&1 && break; sleep 0.05; done
"$nginx_bin" -c "$work/proxy/nginx.conf" -p "$work/proxy/"
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$nginx_port/index.html" >/dev/null 2>&1 && break; sleep 0.05; done

run() {  # run NAME URL [HOST]: one warm-up second, then the measured run
  local host=()
  [ -n "${3:-}" ] && host=(-H "Host: $3")
  wrk -t2 -c"$connections" -d1s "${host[@]}" "$2" >/dev/null 2>&1 || true
  wrk -t2 -c"$connections" -d"${duration}s" --latency "${host[@]}" "$2" >"$work/$1.txt"
  python3 - "$1" "$work/$1.txt" <<'PY'
import re, sys
name, text = sys.argv[1], open(sys.argv[2]).read()
def ms(v, unit): return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p = {k: ms(v, u) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", text)
print(f"{name} {rps:.0f} {p['50']:.3f} {p['99']:.3f} {errors.group(0) if errors else ''}")
PY
}
direct=$(run direct "http://127.0.0.1:8000/index.html")
viaNginx=$(run nginx "http://127.0.0.1:$nginx_port/index.html")
viaSetpoint=$(run setpoint "http://127.0.0.1:$port/proxy/services/main/upstream/index.html")
viaGateway=$(run gateway "http://127.0.0.1:$gateway_port/index.html" upstream.bench.test)
rss=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$server_pid/status)
gateway_pid=$(pgrep -f "gateway run .*--name bench" | head -1)
gateway_rss=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$gateway_pid/status)
python3 - "$direct" "$viaNginx" "$viaSetpoint" "$viaGateway" "$rss" "$duration" "$connections" "$gateway_rss" <<'PY'
import sys
rows = [r.split(" ", 4) for r in sys.argv[1:5]]
sys.argv = [sys.argv[0]] + sys.argv[1:4] + sys.argv[5:]
print(f"wrk -t2 -c{sys.argv[6]} -d{sys.argv[5]}s, 1 KiB file from nginx ({__import__('os').cpu_count()} cores)")
print(f"{'path':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
for name, rps, p50, p99, *err in rows:
    print(f"{name:<10} {float(rps):>9.0f} {float(p50):>8.3f} {float(p99):>8.3f}  {(err[0] if err else '').strip()}")
n, s = rows[1], rows[2]
print(f"setpoint / nginx: throughput {float(s[1]) / float(n[1]):.2f}x, p50 {float(s[2]) / float(n[2]):.2f}x, p99 {float(s[3]) / float(n[3]):.2f}x "
      f"(goal: throughput >= 1.0x, p99 <= 1.0x)")
g = rows[3]
print(f"gateway / nginx:  throughput {float(g[1]) / float(n[1]):.2f}x, p50 {float(g[2]) / float(n[2]):.2f}x, p99 {float(g[3]) / float(n[3]):.2f}x")
print(f"setpoint server peak RSS: {sys.argv[4]} MB; gateway process peak RSS: {sys.argv[7]} MB")
PY
