#!/usr/bin/env python3
"""Watch latency and the cost of watchers, on a running server (started by hack/bench/watch.sh).

1. A replica becoming ready → the screen. Each round applies a new one-replica service; T0 is
   the moment the replica controller wrote the replica ready (its Ready condition's
   lastTransitionTime, stamped just before the store write, in milliseconds). Measured from T0:
     - raw:  the run's line (1/1 ready) on a bare watch stream (the reference: what the API
             costs by itself, read by a plain HTTP client);
     - cli:  the run's line in `setpoint get runs -w` (read from its stdout);
     - dom:  the services page in headless Chromium showing 1/1 in the run's row
             (a MutationObserver's Date.now()).
   The run's line comes after the run controller has counted the ready replica: that hop is in
   all three.
2. 100 open watchers: the server's CPU time for the same burst of changes (sources created and
   deleted through the API) with none and with 100 idle watchers connected, and its resident
   memory before and after they connect.

Prints the medians, p90s and ratios; exits 1 when a round loses its line.
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Apps"))
from browser import Browser  # noqa: E402

URL = os.environ["SETPOINT_URL"]
TOKEN = os.environ["SETPOINT_TOKEN"]
BIN = os.environ["SETPOINT_BIN"]
WORK = os.environ["WORK"]
PID = int(os.environ["SERVER_PID"])
ROUNDS = int(os.environ.get("ROUNDS", "10"))
WATCHERS = int(os.environ.get("WATCHERS", "100"))
HOST, PORT = URL.split("//")[1].split(":")
PORT = int(PORT)


def parse_time(text):
    # 2026-12-01T10:00:00.125Z
    from datetime import datetime, timezone
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z" if "." in text else "%Y-%m-%dT%H:%M:%S%z").timestamp()


def api(method, path, body=None):
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if data else None)


class RawWatch(threading.Thread):
    """A bare NDJSON watch of runs: the time each run is first seen with all replicas ready."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ready_at = {}
        self.started = threading.Event()

    def run(self):
        c = http.client.HTTPConnection(HOST, PORT, timeout=3600)
        c.request("GET", "/api/v1/projects/main/watch?kind=run", headers={"Authorization": "Bearer " + TOKEN})
        r = c.getresponse()
        while True:
            line = r.readline()
            if not line:
                return
            now = time.time()
            e = json.loads(line)
            if e["type"] == "bookmark":
                self.started.set()
            run = e.get("run")
            if run and run["status"]["readyReplicas"] >= 1 and run["status"]["desiredReplicas"] == 1:
                self.ready_at.setdefault(run["name"], now)


class CLIWatch(threading.Thread):
    """`setpoint get runs -w`: the time the run's line with 1/1 is printed."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ready_at = {}
        self.proc = subprocess.Popen([BIN, "get", "runs", "-w"], stdout=subprocess.PIPE, text=True, bufsize=1)
        self.started = threading.Event()

    def run(self):
        for line in self.proc.stdout:
            now = time.time()
            self.started.set()
            cells = line.split()
            if len(cells) >= 3 and cells[2] == "1/1":
                self.ready_at.setdefault(cells[0], now)


def service(name):
    path = os.path.join(WORK, name + ".dstack.yml")
    with open(path, "w") as f:
        f.write(f"type: service\nname: {name}\ncommands:\n  - python3 -m http.server 8000 --bind 127.0.0.1\nport: 8000\n"
                f"probes:\n  - type: http\n    url: /\n    interval: 1\n")
    return path


def replica_ready_time(name):
    status, replicas = api("GET", f"/api/v1/projects/main/runs/{name}/replicas")
    times = [c["lastTransitionTime"] for r in replicas for c in r["status"]["conditions"] if c["type"] == "Ready" and c["status"] == "True"]
    return parse_time(min(times))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def latency():
    raw, cli = RawWatch(), CLIWatch()
    raw.start()
    cli.start()
    raw.started.wait(30)
    cli.started.wait(30)
    out = {"raw": [], "cli": [], "dom": []}
    with Browser(os.path.join(WORK, "shots")) as b:
        b.goto(URL + "/ui/")
        b.wait("!document.querySelector('#signin').hidden")
        b.type("#token", TOKEN)
        b.key("Enter", "Enter", 13)
        b.wait("document.querySelector('#live').textContent === 'live'", what="the page live")
        b.eval("window.__seen = {}; new MutationObserver(() => { for (const row of document.querySelectorAll('tr[data-run]')) {"
               " const ready = row.querySelector('[data-field=ready]'); if (ready && ready.textContent === '1/1' && !(row.dataset.run in window.__seen))"
               " window.__seen[row.dataset.run] = Date.now(); } }).observe(document.getElementById('view'), {subtree: true, childList: true, characterData: true});")
        for i in range(ROUNDS):
            name = f"lat-{i}"
            p = subprocess.run([BIN, "apply", "-f", service(name), "-y", "-d"], capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(p.stdout + p.stderr)
            deadline = time.time() + 60
            while time.time() < deadline and not (name in raw.ready_at and name in cli.ready_at and b.eval("'%s' in window.__seen" % name)):
                time.sleep(0.05)
            dom_at = b.eval("window.__seen['%s']" % name)
            if name not in raw.ready_at or name not in cli.ready_at or dom_at is None:
                raise SystemExit(f"round {i}: a watcher missed {name} (raw {name in raw.ready_at}, cli {name in cli.ready_at}, dom {dom_at})")
            t0 = replica_ready_time(name)
            out["raw"].append((raw.ready_at[name] - t0) * 1000)
            out["cli"].append((cli.ready_at[name] - t0) * 1000)
            out["dom"].append((dom_at / 1000 - t0) * 1000)
            subprocess.run([BIN, "delete", name, "-y"], capture_output=True)
        b.screenshot("latency.png")
    cli.proc.kill()
    return out


def burst(n):
    """n sources created (suspended: nothing is fetched) and deleted: 2n+ changes of a watched kind."""
    start = cpu_seconds(PID)
    t = time.time()
    for i in range(n):
        spec = {"url": "file:///nonexistent", "ref": {"branch": "main"}, "interval": 60, "prune": False, "selfHeal": False,
                "suspend": True, "syncRequest": 0, "cascade": False}
        status, body = api("POST", "/api/v1/projects/main/sources/apply", {"name": f"b-{i}", "spec": spec})
        assert status in (200, 201), (status, body)
    for i in range(n):
        api("DELETE", f"/api/v1/projects/main/sources/b-{i}")
    return cpu_seconds(PID) - start, time.time() - t


def watchers_cost():
    time.sleep(1)
    burst(20)  # warm up
    cpu0, wall0 = burst(200)
    rss0 = rss_mb(PID)
    received = [0] * WATCHERS
    conns = []

    def follow(i):
        c = http.client.HTTPConnection(HOST, PORT, timeout=3600)
        c.request("GET", "/api/v1/projects/main/watch", headers={"Authorization": "Bearer " + TOKEN})
        r = c.getresponse()
        conns.append(c)
        while True:
            line = r.readline()
            if not line:
                return
            received[i] += 1

    threads = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(WATCHERS)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while time.time() < deadline and sum(1 for r in received if r > 0) < WATCHERS:
        time.sleep(0.05)
    time.sleep(1)
    rss1 = rss_mb(PID)
    before = list(received)
    cpu1, wall1 = burst(200)
    time.sleep(1)
    delivered = sum(received) - sum(before)
    rss2 = rss_mb(PID)
    return {"cpu0": cpu0, "cpu100": cpu1, "wall0": wall0, "wall100": wall1, "rss0": rss0, "rss100": rss1, "rss_after": rss2,
            "delivered": delivered, "per_watcher": delivered / WATCHERS}


def main():
    lat = latency()
    cost = watchers_cost()
    med = {k: statistics.median(v) for k, v in lat.items()}
    print(f"watch latency, replica ready → screen, {ROUNDS} rounds (ms from the replica's Ready write):")
    for k, label in (("raw", "bare watch stream (reference)"), ("cli", "setpoint get runs -w"), ("dom", "web page DOM")):
        ratio = "" if k == "raw" else f"   {med[k] / med['raw']:.2f}× the bare stream"
        print(f"  {label:32s} median {med[k]:6.1f}  p90 {pct(lat[k], 0.9):6.1f}  max {max(lat[k]):6.1f}{ratio}")
    print(f"{WATCHERS} open watchers (every kind), a burst of 200 sources created and deleted:")
    print(f"  server CPU for the burst: {cost['cpu0']:.2f} s with none, {cost['cpu100']:.2f} s with {WATCHERS} "
          f"({cost['cpu100'] / max(cost['cpu0'], 0.01):.2f}×); wall {cost['wall0']:.2f} s vs {cost['wall100']:.2f} s")
    print(f"  resident memory: {cost['rss0']:.0f} MB → {cost['rss100']:.0f} MB with {WATCHERS} watchers "
          f"({(cost['rss100'] - cost['rss0']) * 1024 / WATCHERS:.0f} KB each), {cost['rss_after']:.0f} MB after the burst")
    print(f"  lines delivered during the burst: {cost['delivered']} ({cost['per_watcher']:.0f} per watcher)")
    print("JSON " + json.dumps({"latency_ms": {k: {"median": round(med[k], 1), "p90": round(pct(lat[k], 0.9), 1)} for k in lat}, "watchers": cost}))


if __name__ == "__main__":
    main()
