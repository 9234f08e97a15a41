#!/usr/bin/env bash
# Quickstart: installs what is missing, builds Setpoint, starts a server with the local backend,
# applies manifests/examples/http-server.dstack.yml (two replicas), requests it through the
# proxy, and leaves the server running with its URL and where the admin token is printed.
#   SETPOINT_PORT (3000), SETPOINT_DATA_DIR (~/.setpoint) change where it runs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
port="${SETPOINT_PORT:-3000}"
data="${SETPOINT_DATA_DIR:-$HOME/.setpoint}"
url="http://127.0.0.1:$port"

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> building (release)"
swift build -c release --product setpoint
bin="$root/.build/release/setpoint"

mkdir -p "$data"
if curl -fsS "$url/api/v1/healthz" >/dev/null 2>&1; then
  echo "==> a server already answers at $url; using it"
else
  echo "==> starting the server ($url, data in $data, log in $data/server.log)"
  nohup "$bin" server --port "$port" --data-dir "$data" >>"$data/server.log" 2>&1 &
  echo $! >"$data/server.pid"
  for _ in $(seq 1 300); do
    curl -fsS "$url/api/v1/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "$url/api/v1/healthz" >/dev/null || { echo "the server did not start; see $data/server.log" >&2; exit 1; }
fi
token="${SETPOINT_ADMIN_TOKEN:-$(cat "$data/admin-token")}"
export SETPOINT_URL="$url" SETPOINT_TOKEN="$token" SETPOINT_PROJECT=main

echo "==> setpoint apply -f manifests/examples/http-server.dstack.yml -y"
"$bin" apply -f manifests/examples/http-server.dstack.yml -y

service="$url/proxy/services/main/http-server/"
echo "==> curl $service"
curl -fsS -H "Authorization: Bearer $token" "$service" | head -5
echo
"$bin" ps
cat <<MSG

Setpoint is running at $url (pid $(cat "$data/server.pid" 2>/dev/null || echo "?")).
  Service:      $service   (send -H "Authorization: Bearer <token>")
  Admin token:  in $data/admin-token
  Status page:  $url/ui/   (sign in with the admin token)
  Watch:        $bin get runs -w    ·    $bin events -w
  CLI:          export SETPOINT_URL=$url SETPOINT_TOKEN=\$(cat $data/admin-token); $bin ps
  Stop the service:  $bin stop http-server -y   (its replicas end)
  Stop the server:   kill \$(cat $data/server.pid)
                     (running services keep running and are adopted by the next start:
                      stop them first to end everything)
MSG
