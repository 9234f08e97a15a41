#!/usr/bin/env bash
# Benchmark: GitOps on the default server (release build, local backend, SQLite store), the
# repository served by `git daemon` on loopback, pushes announced by a GitHub-style webhook.
#  1. push → replicas ready: a commit that changes a service's env, pushed and announced, until
#     the new replica answers with the new value; the reference is the same change applied by
#     hand (`setpoint apply -f FILE -d`), timed the same way, in the same run.
#  2. a repository of N configurations (default 200) where one changes: from the webhook to the
#     source being Ready at the new commit, and the store writes that took (state.db's write
#     counter); the reference is `setpoint apply -f DIR --set …` of the same change by hand.
# Each part is run ROUNDS times; the medians are printed with the ratios (Setpoint's GitOps path
# over the hand apply: 1.0 means the server adds nothing to what applying costs anyway).
#   hack/bench/gitops.sh [CONFIGURATIONS=200] [ROUNDS=5]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
count="${1:-200}"
rounds="${2:-5}"
need=()
[ -x /usr/lib/git-core/git-daemon ] || need+=(git)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
swift build -c release --product setpoint >/dev/null
bin="$root/.build/release/setpoint"
work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port); git_port=$(free_port)
token="bench-$RANDOM$RANDOM"
hook_secret="hook-$RANDOM$RANDOM"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null || true
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    case "$(readlink /proc/$pid/cwd 2>/dev/null)" in "$work"*) kill -9 "$pid" 2>/dev/null || true;; esac
  done
  rm -rf "$work"
}
trap cleanup EXIT
now() { python3 -c 'import time; print(time.monotonic())'; }
median() { python3 -c 'import sys, statistics; print("%.3f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ratio() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }
writes() { sqlite3 -readonly "$work/data/state.db" "SELECT writes FROM store_state WHERE id = 1"; }
# Until the store has taken no write for half a second (what an earlier step started is done).
settle() {
  local last; last=$(writes)
  for _ in $(seq 1 240); do
    sleep 0.5
    local current; current=$(writes)
    [ "$current" = "$last" ] && return
    last=$current
  done
}

export HOME="$work/home" GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME" "$work/git"
git config --global user.email bench@example.com
git config --global user.name bench
SETPOINT_ADMIN_TOKEN="$token" "$bin" server --port "$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$port/api/v1/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
export SETPOINT_URL="http://127.0.0.1:$port" SETPOINT_TOKEN="$token" SETPOINT_PROJECT=main
/usr/lib/git-core/git-daemon --export-all --reuseaddr --listen=127.0.0.1 --port="$git_port" --base-path="$work/git" "$work/git" &
daemon_pid=$!
"$bin" secret set HOOK "$hook_secret" >/dev/null

# A bare repository, a work tree pushing to it, and a push announced like GitHub does.
new_repo() {  # name
  git init -q --bare "$work/git/$1.git"
  git init -q -b main "$work/$1"
}
push() {  # name message
  (cd "$work/$1" && git add -A && git commit -qm "$2" && git push -q "$work/git/$1.git" HEAD:refs/heads/main && git rev-parse HEAD)
}
webhook() {  # source
  local body='{"ref":"refs/heads/main"}'
  local mac; mac=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$hook_secret" | sed 's/.* //')
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
    -H "X-Hub-Signature-256: sha256=$mac" --data "$body" "$SETPOINT_URL/api/v1/projects/main/sources/$1/webhook"
}
serves() {  # run name value
  [ "$(curl -s -H "Authorization: Bearer $token" "$SETPOINT_URL/proxy/services/main/$1/env?name=$2")" = "$3" ]
}
applied() {  # source commit: Ready at that commit
  curl -fsS -H "Authorization: Bearer $token" "$SETPOINT_URL/api/v1/projects/main/sources/$1" | python3 -c '
import json, sys
s = json.load(sys.stdin)["status"]
ready = any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions", []))
sys.exit(0 if ready and (s.get("lastApplied") or {}).get("commit") == sys.argv[1] else 1)' "$2"
}
wait_until() {  # deadline-bounded poll of a command
  local deadline=$(( $(date +%s) + 120 ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out: $*" >&2; tail -20 "$work/server.log" >&2; exit 1; }
    sleep 0.02
  done
}

# 1. push → replicas ready, against the same change applied by hand.
new_repo app
cp Tests/Apps/testapp.py "$work/app/"
service() {  # name version
  printf 'type: service\nname: %s\nport: 8000\ncommands:\n  - python3 testapp.py --port 8000 --name %s\nenv:\n  - VERSION=%s\nprobes:\n  - type: http\n    url: /name\n    interval: 1\n' "$1" "$1" "$2"
}
service web v0 >"$work/app/web.dstack.yml"
push app "v0" >/dev/null
"$bin" source create app --git "git://127.0.0.1:$git_port/app.git" --interval 1h --webhook-secret HOOK >/dev/null
mkdir -p "$work/hand"; cp Tests/Apps/testapp.py "$work/hand/"
service manual v0 >"$work/hand/manual.dstack.yml"
"$bin" apply -f "$work/hand/manual.dstack.yml" -y >/dev/null
gitops=(); hand=()
for i in $(seq 1 "$rounds"); do
  service web "v$i" >"$work/app/web.dstack.yml"
  start=$(now); push app "v$i" >/dev/null; webhook app
  wait_until serves web VERSION "v$i"
  gitops+=("$(python3 -c "print($(now) - $start)")")
  service manual "v$i" >"$work/hand/manual.dstack.yml"
  start=$(now); "$bin" apply -f "$work/hand/manual.dstack.yml" -y -d >/dev/null
  wait_until serves manual VERSION "v$i"
  hand+=("$(python3 -c "print($(now) - $start)")")
done
push_median=$(median "${gitops[@]}"); hand_median=$(median "${hand[@]}")

# 2. N configurations, one changed: the sync, its store writes, against the hand set apply.
new_repo many
mkdir -p "$work/many/services"
scaled() {  # name version: a service at zero replicas (nothing to start), its version in env
  printf 'type: service\nname: %s\nport: 8000\ncommands: [python3 -m http.server 8000]\nenv:\n  - VERSION=%s\nreplicas: 0..1\nscaling: {metric: rps, target: 10}\n' "$1" "$2"
}
for n in $(seq 1 "$count"); do scaled "svc-$n" v0 >"$work/many/services/svc-$n.dstack.yml"; done
first=$(push many "$count services")
"$bin" source create many --git "git://127.0.0.1:$git_port/many.git" --path services --interval 1h --webhook-secret HOOK >/dev/null
wait_until applied many "$first"
# The reference: the same services by hand, as one set.
mkdir -p "$work/handset"
for n in $(seq 1 "$count"); do scaled "set-$n" v0 >"$work/handset/set-$n.dstack.yml"; done
"$bin" apply -f "$work/handset" --set handset -y -d >/dev/null
sync=(); sync_writes=(); manual=()
for i in $(seq 1 "$rounds"); do
  scaled svc-1 "v$i" >"$work/many/services/svc-1.dstack.yml"
  commit=$(push many "svc-1 v$i")
  settle
  before=$(writes); start=$(now); webhook many
  wait_until applied many "$commit"
  sync+=("$(python3 -c "print($(now) - $start)")")
  sync_writes+=("$(( $(writes) - before ))")
  scaled set-1 "v$i" >"$work/handset/set-1.dstack.yml"
  start=$(now); "$bin" apply -f "$work/handset" --set handset -y -d >/dev/null
  manual+=("$(python3 -c "print($(now) - $start)")")
done
sync_median=$(median "${sync[@]}"); manual_median=$(median "${manual[@]}")
writes_median=$(median "${sync_writes[@]}")

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
echo "machine: $(nproc) cores, $cpu"
echo "push → ready (median of $rounds):   webhook sync ${push_median} s   hand apply ${hand_median} s   ratio $(ratio "$push_median" "$hand_median")"
echo "$count configurations, one changed:  webhook sync ${sync_median} s   hand set apply ${manual_median} s   ratio $(ratio "$sync_median" "$manual_median")"
echo "store writes per such sync (median): ${writes_median} (writes per round: ${sync_writes[*]})"
