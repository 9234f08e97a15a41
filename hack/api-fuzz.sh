#!/usr/bin/env bash
# Fuzzes a live server's REST API from its own OpenAPI document with schemathesis (PyPI, in
# .build/api-tools): a bounded run (N examples per operation) that fails on any 5xx answer.
# The streaming endpoints (logs with follow, watch) are left out: they answer 200 and stay open.
#   hack/api-fuzz.sh [EXAMPLES=25]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
examples="${1:-25}"
tools="$root/.build/api-tools"
if [ ! -x "$tools/bin/st" ] || [ ! -x "$tools/bin/openapi-spec-validator" ]; then
  echo "==> installing schemathesis and openapi-spec-validator (PyPI) into .build/api-tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q schemathesis openapi-spec-validator
fi
bin="$root/.build/debug/setpoint"
[ -x "$bin" ] || swift build --product setpoint >/dev/null
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
token="fuzz-$RANDOM$RANDOM"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$(readlink /proc/$pid/cwd 2>/dev/null)" in "$work"*) kill -9 "$pid" 2>/dev/null || true;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT
HOME="$work" SETPOINT_ADMIN_TOKEN="$token" "$bin" server --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/api/v1/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port/api/v1"
curl -fsS "$url/openapi.yaml" -o "$work/openapi.yaml"
"$tools/bin/openapi-spec-validator" "$work/openapi.yaml"
set +e
# From the work directory: schemathesis keeps its own files (.schemathesis/) where it runs.
(cd "$work" && "$tools/bin/st" run "$url/openapi.yaml" --url "$url" -H "Authorization: Bearer $token" \
  --checks not_a_server_error --max-examples "$examples" --seed 1 --workers 1 --request-timeout 20 \
  --exclude-path-regex '/(logs|watch)$' --phases examples,coverage,fuzzing --no-shrink --warnings off --generation-database none --report-dir "$work/reports")
status=$?
set -e
if grep -q "Fatal error\|internal error" "$work/server.log"; then
  echo "api-fuzz: the server log shows an internal error:" >&2
  grep -n "Fatal error\|internal error" "$work/server.log" | head -20 >&2
  status=1
fi
kill -0 "$server_pid" 2>/dev/null || { echo "api-fuzz: the server died" >&2; tail -30 "$work/server.log" >&2; status=1; }
exit $status
