"""Writes a seeded corpus of service and gateway configurations: a valid base plus random
variations drawn from per-property pools of valid, invalid and tricky values (YAML 1.1 scalars,
shorthands, conflicts). Usage: generate.py OUT_DIR COUNT [SEED]"""
import random
import sys
from pathlib import Path

BASE = "type: service\nname: svc\ncommands:\n  - python3 -m http.server\nport: 8000\n"

P = {
    "port": ["8000", "\"8000\"", "0", "65535", "65536", "8000.0", "8000.5", "\"80:8000\"", "80:8000", "yes", "abc",
             "{container_port: 8000}", "{container_port: 8000, local_port: 80}", "{local_port: 80}", "\"*:8000\"", "-1", "null", "[8000]"],
    "name": ["svc", "Svc", "a", "ab", "my-service-1", "1abc", "x" * 41, "x" * 42, "123", "yes", "a_b"],
    "replicas": ["1", "2", "0", "1..4", "0..2", "..3", "2..", "3..1", "..", "\"1 .. 3\"", "1...3", "-1", "-1..2", "true",
                 "{min: 1, max: 3}", "{max: 2}", "{min: 1}", "1..2..3", "abc", "\"2\"", "2.0", "2.5", "[]", "null"],
    "scaling": ["{metric: rps, target: 10}", "{metric: rps, target: 0}", "{metric: RPS, target: 1}", "{metric: rps, target: 1, window: 30s}",
                "{metric: rps, target: 1, window: 45}", "{metric: rps, target: 1, window: 5m}", "{metric: rps, target: 0.5, scale_up_delay: 1m, scale_down_delay: 2h}",
                "{metric: rps}", "{target: 1}", "{metric: rps, target: 1, extra: 1}", "{metric: rps, target: \"2\"}", "{metric: rps, target: 1, scale_up_delay: null}"],
    "gpu": ["A100", "24GB", "A100:80GB:2", "80GB:40GB", "A100:H100", "A10G,A100", "nvidia", "amd", "MI300X", "MI300X:8", "amd:MI300X:8",
            "tpu:v5litepod-8", "v5litepod-8", "tt:n300", "tpu-v3-8", "intel:2", "Gaudi2", "2", "1..4", "0", "24GB..80GB:2", "..80GB:2",
            "nvidia:24GB:1..2", "A100:", ":2", "H100,:2", "A100:2:3", "A100:80:2", "16GB..32", "true", "1.5", "\"A100 : 2\"",
            "{name: A100, count: 2}", "{name: [A100, H100], memory: 40GB..}", "{vendor: nvidia, count: 0..1}", "{vendor: foo}",
            "{compute_capability: 8.0}", "{compute_capability: \"7.5\"}", "{compute_capability: 8}", "{compute_capability: [8, 6]}",
            "{total_memory: 160GB..}", "{count: null}", "{name: tpu-v3}", "{foo: 1}", "null", "H100,MI300X", "UNKNOWN1", "rtx4090:2"],
    "cpu": ["4", "2..8", "arm", "ARM", "x86:8", "8:arm", "arm:x86", "2:4", "foo", ":4", "{min: 2}", "{arch: arm, count: 4}", "{arch: mips}",
            "2.5", "true", "\"4..\"", "{count: 1..}", "{}", "0"],
    "memory": ["24GB", "512MB", "1TB", "1.5TB", "16 Gb", "24GB..", "..80GB", "8GB..64GB", "64GB..8GB", "1GiB", "1.5xb", "24", "24.5", "\"1 TB\"",
               "{min: 8GB}", "{min: 8GB, max: 4GB}", "null", "1...3GB", "inf", "true"],
    "disk": ["200GB", "100GB..", "{size: 50GB..}", "{size: 2TB}", "{}", "null", "abc", "1e3", "100GB..50GB"],
    "shm_size": ["16GB", "1.5", "abc", "null", "8GB..16GB"],
    "python": ["\"3.10\"", "3.10", "3.11", "3.9", "\"3.8\"", "3.1", "3.12", "3.14", "3.15", "\"3.16\"", "3", "true", "null"],
    "image": ["nginx", "\"\"", "dstackai/base:py3.13-0.6-cuda-12.1", "123", "null"],
    "nvcc": ["true", "false", "yes", "maybe", "null"],
    "docker": ["true", "false", "null", "on"],
    "privileged": ["true", "false", "1", "2", "null"],
    "auth": ["false", "true", "no", "off", "\"no\"", "0", "3", "null", "\"False\""],
    "https": ["true", "false", "auto", "\"auto\"", "AUTO", "yes", "null", "2"],
    "strip_prefix": ["false", "true", "null", "n"],
    "gateway": ["true", "false", "gw", "main/gw", "a/b/c", "/gw", "{name: gw}", "{project: p, name: gw}", "{project: p}", "on", "1", "5", "null"],
    "model": ["llama", "123", "{name: m, format: openai}", "{name: m, format: openai, prefix: /api}", "{name: m, format: tgi}",
              "{name: m, format: tgi, chat_template: x, eos_token: y}", "{name: m}", "{name: m, format: vllm}", "{format: openai}",
              "{name: m, format: openai, type: chat}", "{name: m, format: openai, type: embed}", "{name: m, format: tgi, prefix: /v1}", "null", "[a]"],
    "env": ["[HF_TOKEN, A=1]", "[A=1, A=2]", "[A, A]", "[\"1A=x\"]", "[\"A=\"]", "[\"A=b=c\"]", "{A: 1, B: x}", "{A: true}", "{A: null}",
            "{A: {key: B}}", "[A=1, 5]", "{}", "[]", "null", "\"A=1\"", "[\"A-B=1\"]", "{1: x}", "[\"A=line1\\nline2\"]", "{A: 1.5}"],
    "commands": ["[]", "[\"echo hi\"]", "[1, 2]", "[true]", "\"echo\"", "null", "[echo a, echo b]"],
    "probes": ["[]", "[{type: http}]", "[{type: http, url: /health}]", "[{type: http, url: health}]", "[{type: tcp}]",
               "[{type: http, method: post, body: x}]", "[{type: http, body: x}]", "[{type: http, method: get, body: x}]", "[{type: http, method: GET}]",
               "[{type: http, timeout: 0}]", "[{type: http, timeout: 301}]", "[{type: http, timeout: 5m}]", "[{type: http, interval: 0}]",
               "[{type: http, ready_after: 0}]", "[{type: http, ready_after: 3, until_ready: true}]", "[{type: http}, {type: http}]",
               "[{type: http, headers: [{name: X-A, value: b}]}]", "[{type: http, headers: [{name: \"\", value: b}]}]",
               "[" + ", ".join(["{type: http, url: /%d}" % i for i in range(11)]) + "]", "[{type: http, body: \"\", method: post}]", "null"],
    "rate_limits": ["[]", "[{rps: 10}]", "[{rps: 10, burst: 5, prefix: /api}]", "[{rps: 0.01}]", "[{rps: 1, prefix: api}]",
                    "[{rps: 1}, {rps: 2}]", "[{rps: 1, key: {type: header, header: X-Key}}]", "[{rps: 1, key: {type: header}}]",
                    "[{rps: 1, key: {type: ip_address}}]", "[{rps: 1, key: {}}]", "[{rps: 1, burst: -1}]", "[{prefix: /}]", "[{rps: 1, key: {type: header, header: \"a b\"}}]"],
    "retry": ["true", "false", "{on_events: [no-capacity]}", "{on_events: []}", "{duration: 2h}", "{on_events: [error, interruption], duration: 30m}",
              "{duration: -5}", "{on_events: [oops]}", "yes", "{}", "3"],
    "spot_policy": ["spot", "on-demand", "auto", "Spot", "ondemand", "null"],
    "max_duration": ["off", "false", "true", "1h", "-1", "\"off\"", "OFF", "90", "1.5", "2 h", "1x"],
    "stop_duration": ["off", "5m", "0", "-5", "null"],
    "idle_duration": ["off", "-1", "-5", "1h", "true", "false"],
    "max_price": ["1.5", "0", "-1", "abc", "\"2\""],
    "backends": ["[aws, gcp]", "[kubernetes]", "[AWS]", "[foo]", "aws", "[]"],
    "regions": ["[us-east-1]", "[1]", "us-east-1", "[]"],
    "utilization_policy": ["{min_gpu_utilization: 10, time_window: 10m}", "{min_gpu_utilization: 10, time_window: 1m}", "{min_gpu_utilization: 101, time_window: 10m}",
                           "{min_gpu_utilization: 10, time_window: 2h}", "{min_gpu_utilization: 10}"],
    "schedule": ["{cron: \"0 * * * *\"}", "{cron: [\"0 8 * * mon-fri\", \"30 18 * * *\"]}", "{cron: \"bad\"}", "{cron: []}", "{cron: \"61 * * * *\"}", "{cron: \"*/15 0-6 1 jan sun\"}"],
    "tags": ["{team: ml}", "{\"bad key!\": x}", "{a: \"x y\"}", "{a: 1}", "{1: a}", "[a]", "{a: \"é\"}"],
    "volumes": ["[\"data:/data\"]", "[\"/mnt:/data\"]", "[\"nocolon\"]", "[\"data:rel\"]", "[\"data:/a/../b\"]", "[{name: v, path: /data}]",
                "[{name: [a, b], path: /data/}]", "[{instance_path: /mnt, path: /data, optional: true}]", "[\"data:/data/\"]", "[\"data://x\"]"],
    "repos": ["[\".\"]", "[\"https://github.com/a/b\"]", "[\"git@github.com:a/b.git:/repo\"]", "[\".\", \"..\"]", "[{url: x, local_path: y}]",
              "[{branch: main}]", "[{local_path: ., path: \"~user/x\"}]", "[{local_path: ., if_exists: skip}]"],
    "files": ["[\"a.txt\"]", "[\"a.txt:/b.txt\"]", "[\"a:b:c\"]", "[{local_path: a, path: \"C:\\\\x\"}]", "[{local_path: a}]"],
    "working_dir": ["/app", "app", "~/app", "null"],
    "shell": ["sh", "bash", "zsh", "/bin/zsh", "null"],
    "user": ["ubuntu", "1000:1000", "a:b:c", ":x", "-1", "root:"],
    "priority": ["0", "100", "101", "-1", "50.0", "abc"],
    "registry_auth": ["{username: u, password: p}", "{username: u}", "{password: p}", "{username: u, password: [1]}"],
    "instances": ["[a]", "[{name: a}]", "[{hostname: h}]", "[{fleet: f, instance: 0}]", "[{fleet: p/f, instance: -1}]", "[]"],
    "fleets": ["[f]", "[p/f]", "[{name: f}]", "[a/b/c]"],
    "creation_policy": ["reuse", "reuse-or-create", "create"],
    "backend_options": ["[{type: vastai, offer_order: price}]", "[{type: vastai, min_reliability: 2}]", "[{type: aws}]", "[{}, {}]"],
    "dstack": ["true", "x"],
    "single_branch": ["false", "abc"],
    "entrypoint": ["\"/bin/sh -c\"", "null"],
    "home_dir": ["/home", "null"],
    "startup_order": ["any", "master-first", "nope"],
    "unknown": ["replica: 2", "ports: [80]", "nodes: 2", "commandz: []", "resource: {}"],
}

GROUPS = [
    "groups:\n  - {name: a, replicas: 1, commands: [x]}\n  - {name: b, replicas: 0..2, scaling: {metric: rps, target: 1}, commands: [y]}\n",
    "replicas:\n  - {count: 2, commands: [x]}\n  - {count: 1, commands: [y], resources: {gpu: MI300X}}\n",
    "groups: []\n",
    "groups:\n  - {replicas: 1, commands: [x]}\n  - {replicas: 1, commands: [y]}\n",
    "groups:\n  - {name: a, replicas: 1}\n",
    "groups:\n  - {name: A, replicas: 1, commands: [x]}\n",
    "groups:\n  - {name: a, replicas: 1, commands: [x]}\n  - {name: a, replicas: 1, commands: [y]}\n",
    "groups:\n  - {name: r, replicas: 1, router: {type: sglang}, commands: [x]}\n  - {name: w, replicas: 2, commands: [y]}\n",
    "groups:\n  - {name: r, replicas: 2, router: {type: dynamo}, commands: [x]}\n",
    "groups:\n  - {name: a, replicas: 1..3, commands: [x]}\n",
    "groups:\n  - {name: a, replicas: 2, image: nginx, python: \"3.11\"}\n",
    "groups:\n  - {name: a, replicas: 2, docker: true, privileged: false, commands: [x]}\n",
    "groups:\n  - {name: a, count: 2, replicas: 1, commands: [x]}\n",
    "groups:\n  - {name: a, replicas: 2, commands: [\"echo ${{ groups[0].replicas[1].IP_ADDRESS }}\"]}\n",
    "groups:\n  - {name: a, replicas: 1, commands: [\"echo ${{ groups[0].replicas[3].IP_ADDRESS }}\"]}\n",
    "groups:\n  - {name: a, replicas: 1, commands: [x], resources: {cpu: arm}}\n",
]

GATEWAYS = [
    "type: gateway\nname: gw\nbackend: aws\nregion: us-east-1\ndomain: example.com\n",
    "type: gateway\nbackend: kubernetes\nregion: ctx\n",
    "type: gateway\nbackend: runpod\nregion: x\n",
    "type: gateway\nbackend: aws\n",
    "type: gateway\nbackend: aws\nregion: r\nreplicas: 2\n",
    "type: gateway\nbackend: aws\nregion: r\nreplicas: 2\ncertificate: null\n",
    "type: gateway\nbackend: aws\nregion: r\nreplicas: 4\ncertificate: null\n",
    "type: gateway\nbackend: gcp\nregion: r\ncertificate: {type: acm, arn: x}\n",
    "type: gateway\nbackend: aws\nregion: r\ncertificate: {type: acm, arn: x}\nload_balancer: {type: alb}\n",
    "type: gateway\nbackend: azure\nregion: r\npublic_ip: false\n",
    "type: gateway\nbackend: aws\nregion: r\npublic_ip: false\ncertificate: null\n",
    "type: gateway\nbackend: gcp\nregion: r\ncertificate: {type: gcp-cm, name: n}\n",
    "type: gateway\nbackend: aws\nregion: r\ndomain: \"${{ run.project_name }}.example.com\"\n",
    "type: gateway\nbackend: aws\nregion: r\ndomain: \"${{ run.foo }}.example.com\"\n",
    "type: gateway\nname: Bad_Name\nbackend: aws\nregion: r\n",
    "type: gateway\nbackend: aws\nregion: r\ninstance_type: \"\"\ndefault: yes\ntags: {a: b}\n",
    "type: gateway\nbackend: aws\nregion: r\nunknown: 1\n",
]

SPECIAL = [
    "", "---\n", "type: service\n", "type: task\ncommands: [x]\n", "type: servise\nport: 80\n", "- a\n- b\n", "type: service\nport: 8000\nimage: nginx\n",
    "type: service\nport: [\n", "type: service\nport: 8000\nport: 9000\nimage: x\n", "type: service\nport: 8000\nimage: x\n---\ntype: service\nport: 0\nimage: x\n",
    "type: service\nimage: x\nport: &p 8000\nenv: {A: *p}\n", "base: &b {port: 8000, image: x}\ntype: service\n",
    "type: service\n<<: {port: 8000, image: x}\n", "type: service\nimage: x\nport: 0o17\n", "type: service\nimage: x\nport: 0x1F40\n",
    "type: service\nimage: x\nport: 1_000\n", "type: service\nimage: x\nport: 2:20\n", "type: service\nimage: x\nport: !!str 8000\n",
    "type: service\nimage: x\nport: 8000\nname: 2024-01-01\n", "type: service\nimage: x\nport: 8000\nreplicas: 0..2\nscaling: {metric: rps, target: 1}\nschedule: {cron: \"0 * * * *\"}\n",
    "type: service\nimage: x\nport: 8000\nscaling: {metric: rps, target: 1}\n", "type: service\nport: 8000\ncommands: [x]\nreplicas: 2\nscaling: {metric: rps, target: 1}\n",
    "type: service\nport: 8000\ncommands: [x]\nresources: {gpu: MI300X}\n", "type: service\nport: 8000\nimage: rocm\nresources: {gpu: MI300X}\n",
    "type: service\nport: 8000\ncommands: [x]\nresources: {cpu: arm}\n", "type: service\nport: 8000\ncommands: [x]\ndocker: true\nresources: {cpu: arm}\n",
    "type: service\nport: 8000\ncommands: [x]\nimage: nginx\ndocker: true\n", "type: service\nport: 8000\ncommands: [x]\npython: \"3.11\"\ndocker: true\n",
    "type: service\nport: 8000\ncommands: [x]\nnvcc: true\ndocker: true\n", "type: service\nport: 8000\ncommands: [x]\nenv: [\"A=${{ groups[0].replicas[0].IP_ADDRESS }}\"]\n",
    "type: service\nport: 8000\ncommands: [x]\nresources: {gpu: null}\n", "type: service\nport: 8000\ncommands: [x]\nresources: null\n",
    "type: service\nport: 8000\nimage: x\nreplicas: [{count: 1, commands: [a]}]\ngroups: [{replicas: 1, commands: [b]}]\n",
    "type: service\nport: 8000\nimage: x\nreplicas: 2\ngroups: [{replicas: 1, commands: [b]}]\n",
]


# Any YAML scalar or small container, placed into any property: exercises every coercion.
GENERIC = ["yes", "no", "on", "off", "y", "n", "true", "False", "~", "null", "\"\"", "0", "1", "-1", "2", "1.0", "1.5", "-0", "0o17", "017", "08",
           "0x1F", "0b101", "1_000", "1:30", "1:30.5", ".inf", "-.inf", ".nan", "1e3", "1.0e+3", "2024-01-01", "\"3.10\"", "3.10", "\"yes\"",
           "abc", "\"8GB\"", "8GB", "5m", "\"5 m\"", "[]", "{}", "[1, 2]", "[a]", "{a: 1}", "\" 7 \"", "\"+3\"", "\"1_0\"", "'0'", "\"1.0\"", "\"inf\""]

PATHS = ["port", "name", "image", "user", "privileged", "entrypoint", "working_dir", "home_dir", "python", "nvcc", "single_branch", "shell",
         "priority", "docker", "dstack", "setup", "auth", "https", "strip_prefix", "gateway", "model", "replicas", "commands", "env",
         "backends", "regions", "reservation", "spot_policy", "retry", "max_duration", "stop_duration", "max_price", "creation_policy",
         "idle_duration", "startup_order", "stop_criteria", "tags", "fleets", "instances", "volumes", "files", "repos", "probes", "rate_limits",
         "resources.cpu", "resources.memory", "resources.gpu", "resources.disk", "resources.shm_size",
         "resources.gpu.count", "resources.gpu.name", "resources.gpu.vendor", "resources.gpu.memory", "resources.gpu.compute_capability",
         "resources.cpu.count", "resources.cpu.arch", "resources.disk.size", "resources.memory.min", "resources.memory.max",
         "scaling.target", "scaling.window", "scaling.scale_up_delay", "scaling.metric", "probes.0.timeout", "probes.0.url",
         "probes.0.ready_after", "probes.0.until_ready", "probes.0.method", "rate_limits.0.rps", "rate_limits.0.burst", "rate_limits.0.prefix",
         "retry.duration", "retry.on_events", "registry_auth.username", "registry_auth.password", "model.name", "model.prefix",
         "env.A", "port.container_port", "port.local_port", "utilization_policy.min_gpu_utilization", "utilization_policy.time_window",
         "schedule.cron", "replicas.min", "replicas.max"]

PARENTS = {
    "scaling": "scaling: {metric: rps, target: 1}\nreplicas: 1..2\n",
    "probes": "probes: [{type: http}]\n",
    "rate_limits": "rate_limits: [{rps: 1}]\n",
    "retry": "retry: {duration: 1h}\n",
    "registry_auth": "registry_auth: {username: u, password: p}\nimage: img\n",
    "model": "model: {name: m, format: openai}\n",
    "env": "env: {B: x}\n",
    "port": None,
    "utilization_policy": "utilization_policy: {min_gpu_utilization: 1, time_window: 10m}\n",
    "schedule": "schedule: {cron: \"0 * * * *\"}\n",
    "replicas": "replicas: {min: 1, max: 1}\n",
}


def generic(rng):
    path = rng.choice(PATHS)
    value = rng.choice(GENERIC)
    parts = path.split(".")
    text = BASE
    if len(parts) == 1:
        if parts[0] in ("port", "name", "commands"):
            text = "\n".join(l for l in BASE.split("\n") if not l.startswith(parts[0] + ":") and not (parts[0] == "commands" and l.startswith("  - "))) + "\n"
            if parts[0] == "commands":
                text += "image: img\n"
        return text + f"{parts[0]}: {value}\n"
    if parts[0] == "resources":
        if len(parts) == 2:
            return text + f"resources:\n  {parts[1]}: {value}\n"
        return text + f"resources:\n  {parts[1]}:\n    {parts[2]}: {value}\n"
    if parts[0] == "port":
        text = "\n".join(l for l in BASE.split("\n") if not l.startswith("port:")) + "\n"
        other = "container_port: 8000" if parts[1] == "local_port" else "local_port: 80"
        return text + f"port:\n  {other}\n  {parts[1]}: {value}\n"
    parent = PARENTS[parts[0]]
    import yaml as _y  # only to build the nested mapping textually
    base_obj = _y.safe_load(parent)
    target = base_obj[parts[0]]
    if parts[1] == "0":
        target = target[0]
        key = parts[2]
    else:
        key = parts[1]
    target[key] = "__VALUE__"
    dumped = _y.safe_dump(base_obj, default_flow_style=True, width=10_000).replace("__VALUE__", value)
    lines = text
    for k in base_obj:
        if k == "image":
            lines = lines.replace("commands:\n  - python3 -m http.server\n", "")
    return lines + dumped.strip()[1:-1].replace(", ", "\n", 0) + "\n" if False else lines + "\n".join(f"{k}: " + _y.safe_dump(v, default_flow_style=True, width=10_000).strip().replace("__VALUE__", value).replace("'__VALUE__'", value) for k, v in base_obj.items()) + "\n"


def mutate(rng):
    lines = BASE
    keys = rng.sample(sorted(P), rng.choice([1, 1, 2, 3]))
    for key in keys:
        value = rng.choice(P[key])
        if key == "unknown":
            lines += value + "\n"
            continue
        if key in ("gpu", "cpu", "memory", "disk", "shm_size"):
            lines += f"resources:\n  {key}: {value}\n" if "resources:" not in lines else f"  {key}: {value}\n"
            continue
        if key in ("port", "name", "commands"):
            lines = "\n".join(l for l in lines.split("\n") if not l.startswith(key + ":") and not (key == "commands" and l.startswith("  - "))) + "\n"
        lines += f"{key}: {value}\n"
    if rng.random() < 0.15:
        group = rng.choice(GROUPS)
        lines = "\n".join(l for l in lines.split("\n") if not l.startswith("commands:") and not l.startswith("  - python3")) + "\n"
        if "replicas:" not in lines and "scaling:" not in lines:
            lines += group
    return lines


def main(out, count, seed):
    rng = random.Random(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = list(SPECIAL) + GATEWAYS + [BASE + g for g in GROUPS]
    corpus = [c.replace(BASE + "replicas:", BASE.replace("commands:\n  - python3 -m http.server\n", "") + "replicas:") for c in corpus]
    for key, values in P.items():
        for v in values:
            corpus.append(mutate_single(key, v))
    while len(corpus) < count:
        corpus.append(generic(rng) if rng.random() < 0.5 else mutate(rng))
    for i, text in enumerate(corpus):
        (out / f"c{i:05d}.dstack.yml").write_text(text)


def mutate_single(key, value):
    if key == "unknown":
        return BASE + value + "\n"
    if key in ("gpu", "cpu", "memory", "disk", "shm_size"):
        return BASE + f"resources:\n  {key}: {value}\n"
    base = BASE
    if key in ("port", "name", "commands"):
        base = "\n".join(l for l in BASE.split("\n") if not l.startswith(key + ":") and not (key == "commands" and l.startswith("  - "))) + "\n"
    return base + f"{key}: {value}\n"


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
