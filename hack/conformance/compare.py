"""Compares Setpoint's `validate -o json` lines with dstack's (oracle.py) for the same files.
Usage: compare.py DSTACK_JSONL SETPOINT_JSONL. Prints each disagreement and a summary line
'N passed, M failed'; exits 1 on any disagreement."""
import json
import math
import sys
from collections import defaultdict


def load(path):
    by_file = defaultdict(list)
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            by_file[r["file"]].append(r)
    return by_file


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
            return a == b
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b or not same(a[k], b[k]):
                yield from diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")
        return
    yield f"{path}: dstack={json.dumps(a)} setpoint={json.dumps(b)}"


def main(dstack_path, setpoint_path):
    dstack, setpoint = load(dstack_path), load(setpoint_path)
    passed = failed = 0
    for file in sorted(dstack):
        ours = setpoint.get(file, [])
        theirs = dstack[file]
        if len(ours) != len(theirs):
            failed += 1
            print(f"MISMATCH {file}: {len(theirs)} documents for dstack, {len(ours)} for setpoint")
            continue
        for d, s in zip(theirs, ours):
            if d["ok"] != s["ok"]:
                failed += 1
                why = d.get("error") if not d["ok"] else "; ".join(e["message"] for e in s.get("errors", []))
                print(f"MISMATCH {file}: dstack ok={d['ok']} setpoint ok={s['ok']}: {why[:300] if why else ''}")
            elif d["ok"] and not same(d["configuration"], s["configuration"]):
                failed += 1
                print(f"MISMATCH {file}: normalized values differ")
                for line in list(diff(d["configuration"], s["configuration"]))[:5]:
                    print("   ", line)
            else:
                passed += 1
    print(f"conformance: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
