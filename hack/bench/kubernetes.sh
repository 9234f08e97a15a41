#!/usr/bin/env bash
# Request efficiency of the kubernetes backend, against the fake API server (which counts the
# requests it serves, by verb), with the real server and CLI (release build):
#  1. reference, measured in the same run: kubectl's requests for one Pod's lifecycle
#     (`kubectl create -f` + `kubectl wait --for=condition=Ready` + `kubectl delete --wait`, with a
#     warm discovery cache);
#  2. Setpoint: a service of N replicas applied until all are ready, then stopped until every
#     Pod and Secret is gone: requests per replica lifecycle (and the ratio to kubectl's);
#  3. Setpoint at steady state (N ready replicas, 60 s): requests other than the open watches.
# Usage: hack/bench/kubernetes.sh [replicas (10)] [steady seconds (60)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
replicas="${1:-10}"
steady="${2:-60}"
command -v kubectl >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null; }
swift build -c release --product setpoint >/dev/null
swift build -c release --product fake-kube-apiserver >/dev/null
bin="$root/.build/release/setpoint"
fake="$root/.build/release/fake-kube-apiserver"
work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port)
token="bench-$RANDOM$RANDOM"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "${fake_pid:-}" ] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$fake" --kubeconfig "$work/kubeconfig" --nodes 3 --namespace bench >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 1 200); do grep -q "listening on" "$work/fake.log" 2>/dev/null && break; sleep 0.05; done
api=$(sed -n 's/.*listening on //p' "$work/fake.log")
counts() { curl -fsS "$api/debug/requests"; }
reset() { curl -fsS -X POST "$api/debug/reset" >/dev/null; }
total() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(v for k,v in d.items() if k!="fault"))'; }
k() { HOME="$work" kubectl --kubeconfig "$work/kubeconfig" "$@"; }

# 1. kubectl, one Pod (JSON manifests: the fake reads no protobuf, which `kubectl run` sends).
cat >"$work/ns.json" <<'JSON'
{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}
JSON
cat >"$work/ref.json" <<'JSON'
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ref","namespace":"bench"},
 "spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox:1.36","command":["sleep","3600"]}]}}
JSON
k create -f "$work/ns.json" >/dev/null
k get pods -n bench >/dev/null      # warms kubectl's discovery cache
reset
k create -f "$work/ref.json" >/dev/null
k wait -n bench --for=condition=Ready pod/ref --timeout=30s >/dev/null
k delete -n bench pod ref --wait=true >/dev/null
ref_counts=$(counts)
ref_total=$(echo "$ref_counts" | total)

# 2. Setpoint, N replicas from apply to cleanup.
mkdir -p "$work/svc" "$work/home"
cat >"$work/svc/bench.dstack.yml" <<YAML
type: service
name: bench
image: python:3.12-slim
commands:
  - python3 -m http.server 8000
port: 8000
replicas: $replicas
resources:
  cpu: 1
  memory: 1GB
  disk: 1GB
YAML
reset
HOME="$work/home" SETPOINT_ADMIN_TOKEN="$token" "$bin" server --port "$port" --data-dir "$work/data" \
  --kubeconfig "$work/kubeconfig" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 400); do curl -fsS "http://127.0.0.1:$port/api/v1/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
cli() { HOME="$work/home" SETPOINT_URL="http://127.0.0.1:$port" SETPOINT_TOKEN="$token" SETPOINT_PROJECT=main "$bin" "$@"; }
ready() { curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/projects/main/runs/bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["readyReplicas"])'; }
sleep 2                              # the server's start-up lists and watches are done
startup_counts=$(counts)
reset
cli apply -f "$work/svc/bench.dstack.yml" -y -d >/dev/null
for _ in $(seq 1 1200); do [ "$(ready 2>/dev/null || echo 0)" = "$replicas" ] && break; sleep 0.05; done
up_counts=$(counts)
up_total=$(echo "$up_counts" | total)

# 3. Steady state.
reset
sleep "$steady"
steady_counts=$(counts)
steady_other=$(echo "$steady_counts" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(v for k,v in d.items() if k not in ("watch","fault")))')
steady_watches=$(echo "$steady_counts" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("watch",0))')

reset
cli stop bench -y >/dev/null
for _ in $(seq 1 1200); do
  left=$(k get pods,secrets -n bench -o name 2>/dev/null | grep -c . || true)
  [ "$left" = "0" ] && break; sleep 0.1
done
down_counts=$(curl -fsS "$api/debug/requests")
# The wait loop's own kubectl requests are lists: take them out.
down_total=$(echo "$down_counts" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(v for k,v in d.items() if k not in ("list","get","fault")))')
lifecycle=$(python3 -c "print(round(($up_total + $down_total) / $replicas, 2))")
ratio=$(python3 -c "print(round(($up_total + $down_total) / $replicas / $ref_total, 2))")

echo "kubernetes backend request efficiency ($replicas replicas, fake API server, $(nproc) vCPUs)"
echo "  server start-up: $startup_counts"
echo "  kubectl, one Pod (create -f, wait Ready, delete --wait): $ref_total requests $ref_counts"
echo "  Setpoint, apply -> $replicas ready: $up_total requests $up_counts"
echo "  Setpoint, stop -> all Pods and Secrets gone: $down_total requests $down_counts (the lists are this script's kubectl polling for the end)"
echo "  per replica lifecycle: $lifecycle requests; ratio to kubectl's one-Pod lifecycle: ${ratio}x"
echo "  steady state, ${steady}s with $replicas ready replicas: $steady_other requests besides watches; $steady_watches watch (re)starts"
