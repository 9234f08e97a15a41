import Testing
@testable import SetpointConfiguration

/// Every accept/reject rule of dstack-behavior.md §1, each with the property it names.
@Suite struct RuleTests {
    @Test(arguments: [
        // (extra YAML after the base service, property path of the error, fragment of the message)
        ("replicas: 1..4\n", "service.replicas", "also specify `scaling`"),
        ("replicas: 2\nscaling: {metric: rps, target: 1}\n", "service.scaling", "must be set to a range"),
        ("scaling: {metric: rps, target: 1}\n", "service.scaling", "needs `replicas`"),
        ("replicas: 0..2\nscaling: {metric: rps, target: 1, window: 45}\n", "service.scaling.window", "`30s`, `60s`, `300s`"),
        ("replicas: 0..2\nscaling: {metric: RPS, target: 1}\n", "service.scaling.metric", "`rps`"),
        ("replicas: 0..2\nscaling: {metric: rps, target: 0}\n", "service.scaling.target", "greater than 0"),
        ("replicas: 0..2\nscaling: {metric: rps}\n", "service.scaling.target", "missing required property"),
        ("image: nginx\npython: \"3.11\"\n", "service.python", "mutually exclusive"),
        ("image: nginx\ndocker: true\n", "service.docker", "`image` and `docker`"),
        ("python: \"3.11\"\ndocker: true\n", "service.docker", "`python` and `docker`"),
        ("nvcc: true\ndocker: true\n", "service.docker", "`nvcc` and `docker`"),
        ("python: \"3.8\"\n", "service.python", "unsupported Python version"),
        ("python: 3\n", "service.python", "unsupported Python version"),
        ("name: Svc\n", "service.name", "^[a-z][a-z0-9-]{1,40}$"),
        ("name: a\n", "service.name", "^[a-z][a-z0-9-]{1,40}$"),
        ("shell: zsh\n", "service.shell", "`sh`, `bash`, or an absolute path"),
        ("user: a:b:c\n", "service.user", "too many parts"),
        ("priority: 101\n", "service.priority", "between 0 and 100"),
        ("working_dir: app\n", "service.working_dir", "absolute"),
        ("env: [A=1, A=2]\n", "service.env[1]", "duplicate environment variable `A`"),
        ("env: [\"1A=x\"]\n", "service.env[0]", "invalid environment variable"),
        ("env: {A: true}\n", "service.env.A", "expected a string value"),
        ("https: maybe\n", "service.https", "true, false or `auto`"),
        ("gateway: a/b/c\n", "service.gateway", "`<name>` or `<project>/<name>`"),
        ("model: {name: m}\n", "service.model", "needs `format`"),
        ("model: {name: m, format: vllm}\n", "service.model.format", "`tgi`, `openai`"),
        ("model: {name: m, format: tgi, prefix: /v1}\n", "service.model.prefix", "unknown property"),
        ("rate_limits: [{rps: 1}, {rps: 2}]\n", "service.rate_limits", "used more than once"),
        ("rate_limits: [{rps: 0.01}]\n", "service.rate_limits[0].rps", "at least 1/60"),
        ("rate_limits: [{rps: 1, prefix: api}]\n", "service.rate_limits[0].prefix", "start with `/`"),
        ("rate_limits: [{rps: 1, key: {type: header}}]\n", "service.rate_limits[0].key.header", "missing required property"),
        ("probes: [{type: http}, {type: http}]\n", "service.probes[1]", "unique"),
        ("probes: [{type: http, url: health}]\n", "service.probes[0].url", "start with `/`"),
        ("probes: [{type: http, method: get, body: x}]\n", "service.probes[0].body", "`get` method"),
        ("probes: [{type: http, timeout: 0}]\n", "service.probes[0].timeout", "shorter than 1s"),
        ("probes: [{type: http, timeout: 301}]\n", "service.probes[0].timeout", "longer than 300s"),
        ("probes: [{type: http, interval: 0}]\n", "service.probes[0].interval", "shorter than 1s"),
        ("probes: [{type: http, ready_after: 0}]\n", "service.probes[0].ready_after", "at least 1"),
        ("probes: [{type: tcp}]\n", "service.probes[0].type", "`http`"),
        ("retry: {on_events: []}\n", "service.retry.on_events", "cannot be empty"),
        ("retry: {duration: -5}\n", "service.retry.duration", "cannot be negative"),
        ("retry: {on_events: [oops]}\n", "service.retry.on_events[0]", "`no-capacity`"),
        ("max_duration: -1\n", "service.max_duration", "cannot be negative"),
        ("max_duration: \"OFF\"\n", "service.max_duration", "cannot parse the duration"),
        ("resources:\n  gpu: H100,MI300X\n", "service.resources", "`image` must be set"),
        ("spot_policy: Spot\n", "service.spot_policy", "did you mean `spot`"),
        ("backends: [AWS]\n", "service.backends[0]", "did you mean `aws`"),
        ("max_price: 0\n", "service.max_price", "greater than 0"),
        ("utilization_policy: {min_gpu_utilization: 10, time_window: 1m}\n", "service.utilization_policy.time_window", "minimum time_window is 5m"),
        ("utilization_policy: {min_gpu_utilization: 10, time_window: 2h}\n", "service.utilization_policy.time_window", "maximum time_window"),
        ("schedule: {cron: bad}\n", "service.schedule.cron", "wrong number of fields"),
        ("replicas: 0..2\nscaling: {metric: rps, target: 1}\nschedule: {cron: \"0 * * * *\"}\n", "service.schedule", "autoscaling to zero"),
        ("tags: {\"bad key!\": x}\n", "service.tags.bad key!", "invalid tag key"),
        ("tags: {a: 1}\n", "service.tags.a", "must be strings"),
        ("volumes: [nocolon]\n", "service.volumes[0]", "invalid mount point"),
        ("volumes: [\"data:rel\"]\n", "service.volumes[0]", "must be absolute"),
        ("volumes: [\"data:/a/../b\"]\n", "service.volumes[0]", "`..` is not allowed"),
        ("repos: [\".\", \"..\"]\n", "service.repos", "maximum of one repo"),
        ("repos: [{branch: main}]\n", "service.repos[0]", "either `local_path` or `url`"),
        ("files: [\"a:b:c\"]\n", "service.files[0]", "invalid file path mapping"),
        ("instances: []\n", "service.instances", "at least one"),
        ("resources:\n  gpu: MI300X\n", "service.resources", "`image` must be set"),
        ("resources:\n  cpu: arm\n", "service.resources", "ARM CPU"),
        ("replica: 2\n", "service.replica", "did you mean `replicas`"),
        ("ports: [80]\n", "service.ports", "did you mean `port`"),
        ("env: [\"A=${{ groups[0].replicas[0].IP_ADDRESS }}\"]\n", "service.env.A", "only supported in commands"),
    ])
    func rejected(extra: String, path: String, fragment: String) {
        let found = issues(baseService + extra)
        #expect(found.contains { $0.path == path && $0.message.contains(fragment) }, "got \(found.map(\.description))")
    }

    @Test(arguments: [
        "groups: []\n",
        "groups:\n  - {name: a, replicas: 1}\n",
        "groups:\n  - {name: A, replicas: 1, commands: [x]}\n",
        "groups:\n  - {name: a, replicas: 1, commands: [x]}\n  - {name: a, replicas: 1, commands: [y]}\n",
        "groups:\n  - {name: r, replicas: 2, router: {type: dynamo}, commands: [x]}\n",
        "groups:\n  - {name: a, replicas: 1..3, commands: [x]}\n",
        "groups:\n  - {name: a, replicas: 2, image: nginx, python: \"3.11\"}\n",
        "groups:\n  - {name: a, replicas: 2, docker: true, privileged: false, commands: [x]}\n",
        "groups:\n  - {name: a, replicas: 1, commands: [\"echo ${{ groups[0].replicas[3].IP_ADDRESS }}\"]}\n",
        "replicas: 2\ngroups:\n  - {replicas: 1, commands: [b]}\n",
        "image: x\ngroups:\n  - {replicas: 1, image: y}\n",
    ])
    func rejectedGroups(yaml: String) {
        let found = issues("type: service\nport: 8000\n" + yaml)
        #expect(!found.isEmpty)
    }

    @Test func groupsAndLegacyReplicaList() throws {
        let s = try #require(service("type: service\nport: 8000\nreplicas:\n  - {count: 2, commands: [x]}\n  - {count: 1, commands: [y], image: rocm, resources: {gpu: MI300X}}\n"))
        let groups = try #require(s.groups)
        #expect(groups.map(\.name) == ["0", "1"])
        #expect(groups[0].replicas == .exactly(2))
        #expect(groups[1].resources.gpu?.vendor == "amd")
        #expect(s.replicas == nil)
        let routed = try #require(service("type: service\nport: 8000\ngroups:\n  - {name: r, replicas: 1, router: {type: sglang}, commands: [x]}\n"))
        #expect(routed.groups?.first?.router == "smg")
        #expect(routed.json.at("groups")?.serialized.contains("\"router\":{\"type\":\"sglang\"}") == true)
    }

    @Test(arguments: [
        "type: gateway\nbackend: runpod\nregion: x\n",
        "type: gateway\nbackend: aws\n",
        "type: gateway\nbackend: aws\nregion: r\nreplicas: 2\n",
        "type: gateway\nbackend: aws\nregion: r\nreplicas: 10\ncertificate: null\n",
        "type: gateway\nbackend: gcp\nregion: r\ncertificate: {type: acm, arn: x}\n",
        "type: gateway\nbackend: azure\nregion: r\npublic_ip: false\n",
        "type: gateway\nbackend: gcp\nregion: r\ncertificate: {type: gcp-cm, name: n}\n",
        "type: gateway\nbackend: aws\nregion: r\ndomain: \"${{ run.foo }}.example.com\"\n",
        "type: gateway\nname: Bad_Name\nbackend: aws\nregion: r\n",
    ])
    func rejectedGateways(yaml: String) {
        #expect(!issues(yaml).isEmpty)
    }

    @Test func gatewayNormalized() throws {
        guard case .success(.gateway(let g)) = parseOne("type: gateway\nname: gw\nbackend: aws\nregion: us-east-1\ndomain: example.com\ndefault: yes\n") else {
            Issue.record("gateway rejected")
            return
        }
        #expect(g.json.serialized == #"{"type":"gateway","name":"gw","default":true,"backend":"aws","region":"us-east-1","instance_type":null,"domain":"example.com","public_ip":true,"load_balancer":null,"certificate":{"type":"lets-encrypt"},"replicas":null,"tags":null}"#)
    }

    @Test(arguments: ["type: task\ncommands: [x]\n", "type: servise\nport: 80\n", "port: 80\n", "- a\n", "", "type: 5\n"])
    func unsupportedDocuments(yaml: String) {
        let documents = ConfigurationParser.parse(yaml)
        #expect(documents.allSatisfy { $0.configuration == nil })
        #expect(documents.allSatisfy { !$0.issues.isEmpty })
    }
}
