import Testing
@testable import SetpointConfiguration

/// Defaults and normalized values, YAML 1.1 scalars, locations and secrecy of error messages.
@Suite struct NormalizationTests {
    /// The server's resource defaults: with the default image, even an optional GPU is NVIDIA.
    @Test func defaults() throws {
        let json = try #require(normalized(""))
        #expect(json.at("port")?.serialized == #"{"local_port":80,"container_port":8000}"#)
        #expect(json.at("resources")?.serialized == #"{"cpu":{"arch":null,"count":{"min":2,"max":null}},"memory":{"min":8.0,"max":null},"shm_size":null,"gpu":{"vendor":"nvidia","name":null,"count":{"min":0,"max":null},"memory":null,"total_memory":null,"compute_capability":null},"disk":{"size":{"min":100.0,"max":null}}}"#)
        #expect(json.at("auth") == .bool(true))
        #expect(json.at("strip_prefix") == .bool(true))
        #expect(json.at("replicas") == .null)
        #expect(json.at("probes") == .null)
        #expect(json.at("home_dir") == .string("/root"))
        let s = try #require(service(baseService))
        #expect(s.replicaGroups.map(\.replicas) == [.exactly(1)])
    }

    @Test func namedGPUDefaultsToAtLeastOneAndInfersVendor() throws {
        let json = try #require(normalized("resources:\n  gpu: 24GB\n"))
        #expect(json.at("resources.gpu.count")?.serialized == #"{"min":1,"max":null}"#)
        #expect(json.at("resources.gpu.vendor") == .string("nvidia"))
        // With a custom image the vendor of an unnamed GPU stays open.
        let custom = try #require(service("type: service\nimage: rocm/vllm\nport: 80\nresources:\n  gpu: 2\n"))
        #expect(custom.resources.gpu?.vendor == nil)
        // `gpu: null` gets the server default.
        let none = try #require(normalized("resources:\n  gpu: null\n"))
        #expect(none.at("resources.gpu.count")?.serialized == #"{"min":0,"max":null}"#)
    }

    @Test func modelShorthand() throws {
        let json = try #require(normalized("model: meta-llama/Meta-Llama-3.1-8B-Instruct\n"))
        #expect(json.at("model")?.serialized == #"{"type":"chat","name":"meta-llama/Meta-Llama-3.1-8B-Instruct","format":"openai","prefix":"/v1"}"#)
        let tgi = try #require(normalized("model: {name: m, format: tgi}\n"))
        #expect(tgi.at("model")?.serialized == #"{"type":"chat","name":"m","format":"tgi","chat_template":null,"eos_token":null}"#)
    }

    @Test func environmentListAndMap() throws {
        let list = try #require(service(baseService + "env:\n  - HF_TOKEN\n  - MODEL=llama\n  - EMPTY=\n  - EQ=a=b\n"))
        #expect(list.json.at("env")?.serialized == #"{"HF_TOKEN":{"key":"HF_TOKEN"},"MODEL":"llama","EMPTY":"","EQ":"a=b"}"#)
        #expect(list.literalEnvironment.unresolved == ["HF_TOKEN"])
        let map = try #require(service(baseService + "env:\n  PORT: 8080\n  RATIO: 0.5\n  NAME: x\n"))
        #expect(map.json.at("env")?.serialized == #"{"PORT":"8080","RATIO":"0.5","NAME":"x"}"#)
    }

    @Test func durationsAndOffValues() throws {
        let json = try #require(normalized("max_duration: off\nstop_duration: 2 h\nidle_duration: false\nretry: true\n"))
        #expect(json.at("max_duration") == .string("off"))
        #expect(json.at("stop_duration") == .int(7200))
        #expect(json.at("idle_duration") == .int(-1))
        #expect(json.at("retry") == .bool(true))
        let scaling = try #require(normalized("replicas: 0..4\nscaling: {metric: rps, target: 10, window: 5m}\n"))
        #expect(scaling.at("scaling")?.serialized == #"{"metric":"rps","target":10.0,"window":300,"scale_up_delay":300,"scale_down_delay":600}"#)
        #expect(scaling.at("replicas")?.serialized == #"{"min":0,"max":4}"#)
    }

    @Test func portForms() throws {
        let quoted = try #require(service("type: service\nimage: x\nport: \"8001\"\n"))
        #expect(quoted.port == PortMapping(localPort: 80, containerPort: 8001))
        let legacy = try #require(service("type: service\nimage: x\nport: \"80:8000\"\n"))
        #expect(legacy.port == PortMapping(localPort: 80, containerPort: 8000))
        let mapping = try #require(service("type: service\nimage: x\nport: {container_port: 8000}\n"))
        #expect(mapping.port == PortMapping(localPort: nil, containerPort: 8000))
    }

    /// PyYAML reads YAML 1.1: these are the values dstack sees.
    @Test(arguments: [
        ("auth: no\n", "auth", JSONValue.bool(false)),
        ("auth: off\n", "auth", .bool(false)),
        ("strip_prefix: n\n", "strip_prefix", .bool(false)),
        ("python: 3.10\n", "python", .string("3.10")),
        ("python: 3.9\n", "python", .string("3.9")),
        ("priority: 0o17\n", "priority", .null),
        ("priority: 017\n", "priority", .int(15)),
        ("priority: 1_0\n", "priority", .int(10)),
        ("priority: 0x1F\n", "priority", .int(31)),
        ("priority: 1:30\n", "priority", .int(90)),
        ("entrypoint: 1e3\n", "entrypoint", .string("1e3")),
        ("entrypoint: 1.0e+3\n", "entrypoint", .string("1000.0")),
        ("entrypoint: 3.10\n", "entrypoint", .string("3.1")),
        ("reservation: 2024-01-01\n", "reservation", .null),
    ])
    func yaml11Scalars(extra: String, key: String, expected: JSONValue) {
        let json = normalized(extra)
        if expected == .null {
            #expect(json == nil, "\(extra) should be rejected")
        } else {
            #expect(json?.at(key) == expected, "\(extra)")
        }
    }

    @Test func sexagesimalPortIsOutOfRange() {
        // `8000:30` unquoted is the base-60 integer 480030 in YAML 1.1; `8000:80` is not (a
        // base-60 digit pair starts with 0-5), so it stays the text of a legacy port mapping.
        let found = issues("type: service\nimage: x\nport: 8000:30\n")
        #expect(found.contains { $0.path == "service.port" && $0.message.contains("480030") })
        #expect(service("type: service\nimage: x\nport: 8000:80\n")?.port == PortMapping(localPort: 8000, containerPort: 80))
    }

    @Test func mergeKeysAnchorsAndDuplicateKeys() throws {
        let merged = try #require(service("type: service\n<<: {port: 8000, image: x}\nport: 9000\n"))
        #expect(merged.port.containerPort == 9000)
        let aliased = try #require(service("type: service\nimage: x\nport: &p 8000\nenv: {A: *p}\n"))
        #expect(aliased.json.at("env.A") == .string("8000"))
        let documents = ConfigurationParser.parse("type: service\nimage: x\nport: 8000\nport: 9000\n")
        let dup = try #require(documents.first)
        #expect(dup.configuration.map { if case .service(let s) = $0 { s.port.containerPort } else { 0 } } == 9000)
        #expect(dup.warnings.count == 1)
        #expect(dup.warnings.first?.location == SourceLocation(line: 4, column: 1))
    }

    @Test func multipleDocuments() {
        let documents = ConfigurationParser.parse("type: service\nimage: x\nport: 8000\n---\ntype: service\nimage: x\nport: 0\n---\ntype: gateway\nbackend: aws\nregion: r\n")
        #expect(documents.map { $0.configuration != nil } == [true, false, true])
        #expect(documents[1].issues.first?.location == SourceLocation(line: 7, column: 7))
    }

    @Test func errorsAreLocatedAndAllReported() {
        let yaml = """
            type: service
            commands: [x]
            port: 8000
            resources:
              gpu: 80GB:40GB
              memory: 1GiB
            replicaz: 2
            probes:
              - type: http
                url: health

            """
        let found = issues(yaml)
        #expect(found.count == 4)
        #expect(found.map(\.path) == ["service.resources.gpu", "service.resources.memory", "service.replicaz", "service.probes[0].url"])
        #expect(found.map { $0.location?.line } == [5, 6, 7, 10])
        #expect(found[0].location?.column == 8)
    }

    @Test func yamlSyntaxErrorsAreLocated() {
        let found = issues("type: service\nport: [8000\nimage: x\n")
        #expect(found.count == 1)
        #expect(found[0].message.hasPrefix("invalid YAML"))
        #expect(found[0].location != nil)
    }

    @Test func secretsAreNeverEchoed() {
        let secret = "ghp_e49HcZ9oYwBzUbcSk2080gXZOU2hiT9AeSR5"
        let texts = [
            "type: service\nimage: x\nport: 8000\nregistry_auth: {username: u, password: [\(secret)]}\n",
            "type: service\nimage: x\nport: 8000\nregistry_auth: {password: \(secret)}\n",
            "type: service\nimage: x\nport: 8000\nenv: [\"1TOKEN=\(secret)\"]\n",
            "type: service\nimage: x\nport: 8000\nenv: {TOKEN: [\(secret)]}\n",
            "type: service\nimage: x\nport: 8000\nenv: [\"A=\(secret)\", \"A=\(secret)\"]\n",
        ]
        for text in texts {
            let found = issues(text)
            #expect(!found.isEmpty, "\(text)")
            #expect(found.allSatisfy { !$0.description.contains(secret) && !$0.description.contains("ghp_") }, "\(found)")
        }
        let secretIssue = issues(texts[0]).first
        #expect(secretIssue?.isSecret == true)
    }

    @Test func normalizedJSONReadsBack() throws {
        let original = try #require(service(baseService + "env: [A=1, B]\nresources:\n  gpu: A100:80GB:2\nreplicas: 1..3\nscaling: {metric: rps, target: 2}\nprobes: [{type: http, url: /h}]\nretry: {on_events: [error]}\ntags: {team: ml}\nvolumes: [\"data:/data\"]\n"))
        guard case .success(.service(let again)) = ConfigurationParser.parse(json: original.json) else {
            Issue.record("normalized JSON did not parse back")
            return
        }
        #expect(again.json.serialized == original.json.serialized)
    }
}

/// A replica's stored `resources` JSON reads back as the spec it came from.
@Suite struct ResourcesRoundTripTests {
    @Test(arguments: ["", "image: app:1\nresources:\n  gpu: A100:40GB:2\n  cpu: arm:4..8\n  memory: 16GB..\n  disk: null\n  shm_size: 1GB\n",
                      "resources:\n  gpu: 0\n  disk: 10GB..20GB\n", "image: rocm/vllm\nresources:\n  gpu: amd:MI300X:1\n"])
    func storedResourcesReadBack(_ extra: String) throws {
        let s = try #require(service(baseService + extra))
        #expect(ResourcesSpec(normalizedJSON: s.resources.json.serialized) == s.resources)
        #expect(ResourcesSpec(normalizedJSON: "not json") == nil)
    }
}

/// Stored configurations are read back as they were accepted, not validated again.
@Suite struct StoredConfigurationTests {
    @Test func aStoredConfigurationReadsBackAsItWasApplied() throws {
        let yamls = [
            "type: service\nname: web\ncommands: [python3 -m http.server 8000]\nport: 8000\nreplicas: 1..3\nscaling: {metric: rps, target: 10}\n",
            "type: service\nimage: rocm/vllm\nport: 80\nresources:\n  gpu: 2\nenv: [A=1]\nprobes: [{type: http, url: /h}]\n",
            "type: service\nport: 8000\ngroups:\n  - name: a-0\n    count: 2\n    commands: [x]\n",
        ]
        for yaml in yamls {
            let applied = try #require(service(yaml))
            let text = applied.json.serialized
            #expect(try ConfigurationParser.readStored(service: text) == applied, "\(yaml)")
            #expect(try ConfigurationParser.readStored(service: text).json.serialized == text)
        }
    }

    @Test func aRuleMadeStricterSinceDoesNotMakeAStoredRunUnreadable() throws {
        // A relative `working_dir` breaks a rule (it must be absolute): as if a version that
        // allowed it had stored the run.
        let applied = try #require(service("type: service\ncommands: [x]\nport: 8000\nworking_dir: /app\n"))
        let text = applied.json.serialized.replacingOccurrences(of: #""working_dir":"/app""#, with: #""working_dir":"app""#)
        guard case .failure = ConfigurationParser.parse(json: try JSONParser.parse(text)) else {
            Issue.record("the rule should refuse it when applied")
            return
        }
        #expect(try ConfigurationParser.readStored(service: text).workingDir == "app")
    }
}
