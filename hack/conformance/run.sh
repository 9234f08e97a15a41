#!/usr/bin/env bash
# Differential test against dstack 0.22.5: generates a seeded corpus of configurations, judges each
# with dstack's own parser and server-side checks (oracle.py) and with `setpoint validate -o json`,
# and prints every disagreement. Usage: hack/conformance/run.sh [COUNT] [SEED] [DIR-OF-EXTRA-FILES]
# The hand-written cases in hack/conformance/cases are always included.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
count="${1:-2000}"
seed="${2:-1}"
venv="${DSTACK_VENV:-$root/.build/dstack-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import dstack, sqlalchemy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'dstack[server]==0.22.5'
fi
config="${SETPOINT_BUILD:-release}"
(cd "$root" && swift build -c "$config" --product setpoint >/dev/null)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$here/generate.py" "$work/corpus" "$count" "$seed"
# Hand-written edge cases, kept in the repository, always included.
for f in "$here"/cases/*.dstack.yml; do cp "$f" "$work/corpus/case-$(basename "$f")"; done
if [ -n "${3:-}" ]; then cp "$3"/*.yml "$work/corpus/" 2>/dev/null || true; fi
(cd "$work/corpus" && "$venv/bin/python" "$here/oracle.py" *.yml > "$work/dstack.jsonl" 2>/dev/null)
(cd "$work/corpus" && "$root/.build/$config/setpoint" validate -o json -f . > "$work/setpoint.jsonl" || true)
python3 "$here/compare.py" "$work/dstack.jsonl" "$work/setpoint.jsonl"
