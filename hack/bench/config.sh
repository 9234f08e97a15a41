#!/usr/bin/env bash
# Benchmark: configurations validated per second by `setpoint validate` versus dstack's own
# parser (yaml.safe_load + parse_run_configuration, dstack 0.22.5 from PyPI in a throwaway venv),
# on the same generated corpus, in one run. Prints files/s for both and the ratio.
# Usage: hack/bench/config.sh [FILES] (default 5000)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
files="${1:-5000}"
venv="${DSTACK_VENV:-$root/.build/dstack-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import dstack' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'dstack[server]==0.22.5'
fi
(cd "$root" && swift build -c release --product setpoint >/dev/null)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$root/hack/conformance/generate.py" "$work/corpus" "$files" 42
count=$(ls "$work/corpus" | wc -l)

# Setpoint: the whole CLI process (start-up, discovery, reading, validation on all cores, JSON
# output); best of 3.
best=""
for _ in 1 2 3; do
  start=$(date +%s.%N)
  (cd "$work/corpus" && "$root/.build/release/setpoint" validate -o json -f . > /dev/null || true)
  end=$(date +%s.%N)
  t=$(python3 -c "print($end - $start)")
  if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $t < $best else 1)"; then best=$t; fi
done

# dstack: the same work (read each file, parse, normalize, write JSON) inside one warmed-up Python
# process, so that interpreter start-up is excluded; best of 3.
dstack_time=$(cd "$work/corpus" && "$venv/bin/python" - <<'PY'
import glob, json, time, warnings, yaml
warnings.filterwarnings("ignore")
import logging; logging.disable(logging.CRITICAL)
from dstack._internal.core.models.configurations import parse_run_configuration, parse_apply_configuration
files = sorted(glob.glob("*.yml"))
def run():
    out = []
    for f in files:
        try:
            with open(f) as fh:
                t = fh.read()
            for d in yaml.safe_load_all(t):
                try:
                    if isinstance(d, dict) and d.get("type") == "gateway":
                        c = parse_apply_configuration(d).model_dump(mode="json")
                    else:
                        c = parse_run_configuration(d).model_dump(mode="json")
                    out.append(json.dumps({"file": f, "ok": True, "configuration": c}))
                except Exception as e:
                    out.append(json.dumps({"file": f, "ok": False, "errors": [str(e)]}))
        except Exception as e:
            out.append(json.dumps({"file": f, "ok": False, "errors": [str(e)]}))
    return out
best = None
for _ in range(3):
    s = time.perf_counter(); run(); e = time.perf_counter() - s
    best = e if best is None else min(best, e)
print(best)
PY
)
python3 - "$count" "$best" "$dstack_time" <<'PY'
import sys
n, ours, theirs = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"corpus: {n} configuration files (hack/conformance/generate.py, seed 42)")
print(f"dstack 0.22.5 parse_run_configuration: {n / theirs:,.0f} files/s ({theirs:.3f} s)")
print(f"setpoint validate (release, whole process): {n / ours:,.0f} files/s ({ours:.3f} s)")
print(f"ratio: {theirs / ours:.1f}x dstack")
PY
