import Testing
@testable import SetpointConfiguration

/// The shorthand grammars, case by case (dstack-behavior.md §1.4 and `duration.py`).
@Suite struct GrammarTests {
    @Test(arguments: [
        ("512MB", 0.5), ("16 Gb", 16), ("1 TB", 1024), ("1.5TB", 1536), ("24GB", 24), ("24", 24),
        ("0.5", 0.5), ("1_0GB", 10), ("inf", .infinity), ("2048mb", 2),
    ] as [(String, Double)])
    func memorySizes(text: String, gigabytes: Double) throws {
        #expect(try Grammar.memory(text).get() == gigabytes)
    }

    @Test(arguments: ["1GiB", "1.5xb", "Gi", "", "gb", "1..2GB"])
    func invalidMemorySizes(text: String) {
        #expect(throws: GrammarError.self) { try Grammar.memory(text).get() }
    }

    @Test(arguments: [
        ("90", 90), ("5m", 300), ("2 h", 7200), ("1d", 86_400), ("1w", 604_800), ("0", 0), ("-5", -5),
        (" 7 ", 7), ("1_0", 10), ("30s", 30), ("5m\n", 300),
    ] as [(String, Int)])
    func durations(text: String, seconds: Int) throws {
        #expect(try Grammar.duration(text).get() == seconds)
    }

    @Test(arguments: ["1x", "5 M", "m", "1.5h", "-5m", " 5m", "5mm", "1.0"])
    func invalidDurations(text: String) {
        #expect(throws: GrammarError.self) { try Grammar.duration(text).get() }
    }

    @Test func rangeSplitting() throws {
        let closed = try #require(Grammar.splitRange("1..4")).get()
        #expect(closed.min == "1" && closed.max == "4")
        let open = try #require(Grammar.splitRange("..8GB")).get()
        #expect(open.min == nil && open.max == "8GB")
        let spaced = try #require(Grammar.splitRange("1 .. 3")).get()
        #expect(spaced.min == "1" && spaced.max == "3")
        #expect(Grammar.splitRange("12") == nil)
        #expect(throws: GrammarError.self) { try Grammar.splitRange("1..2..3")?.get() }
    }

    /// `replicas` as dstack reads it: count, range, mapping; the maximum is required.
    @Test(arguments: [
        ("2", 2, 2), ("1..4", 1, 4), ("..3", 0, 3), ("\"1 .. 3\"", 1, 3), ("{min: 1, max: 3}", 1, 3),
        ("{max: 2}", 0, 2), ("true", 1, 1), ("\"2\"", 2, 2), ("2.0", 2, 2), ("0", 0, 0),
    ] as [(String, Int, Int)])
    func replicaRanges(text: String, min: Int, max: Int) throws {
        let extra = min == max ? "" : "scaling: {metric: rps, target: 1}\n"
        let s = try #require(service(baseService + "replicas: \(text)\n" + extra))
        #expect(s.replicas == ValueRange(min: min, max: max))
    }

    @Test(arguments: [
        ("2..", "maximum number of replicas is required"), ("3..1", "invalid range order"), ("..", "empty range"),
        ("1...3", "expected an integer"), ("-1", "0 or more"), ("1..2..3", "exactly one `..`"), ("abc", "expected an integer"),
        ("2.5", "fractional part"), ("[]", "cannot be an empty list"),
    ])
    func invalidReplicaRanges(text: String, fragment: String) {
        let found = issues(baseService + "replicas: \(text)\nscaling: {metric: rps, target: 1}\n")
        #expect(found.contains { $0.message.contains(fragment) && $0.path.hasPrefix("service.replicas") }, "\(found)")
    }

    @Test(arguments: [
        ("4", nil, 4, 4), ("2..8", nil, 2, 8), ("arm", "arm", 2, nil), ("ARM", "arm", 2, nil), ("x86:8", "x86", 8, 8),
        ("8:arm", "arm", 8, 8), ("{min: 2}", nil, 2, nil), ("{arch: arm, count: 4}", "arm", 4, 4), ("\"4..\"", nil, 4, nil),
    ] as [(String, String?, Int?, Int?)])
    func cpuSpecs(text: String, arch: String?, min: Int?, max: Int?) throws {
        let s = try #require(service("type: service\nimage: arm-image\nport: 80\nresources:\n  cpu: \(text)\n"))
        #expect(s.resources.cpu.arch == arch)
        #expect(s.resources.cpu.count == ValueRange(min: min, max: max))
    }

    @Test(arguments: [
        ("arm:x86", "architecture twice"), ("\"2:4\"", "count twice"), ("foo", "invalid CPU architecture"),
        (":4", "empty token"), ("2.5", "expected a CPU spec"), ("true", "invalid CPU architecture"), ("{arch: mips}", "`x86`, `arm`"),
    ])
    func invalidCPUSpecs(text: String, fragment: String) {
        let found = issues(baseService + "resources:\n  cpu: \(text)\n")
        #expect(found.contains { $0.message.contains(fragment) }, "\(found)")
    }

    /// The GPU shorthand table of dstack-behavior.md §1.4, with the server's vendor inference.
    @Test(arguments: [
        ("nvidia", "nvidia", nil, 1, nil, nil, nil),
        ("A100", "nvidia", ["A100"], 1, nil, nil, nil),
        ("A10G,A100", "nvidia", ["A10G", "A100"], 1, nil, nil, nil),
        ("A100:80GB", "nvidia", ["A100"], 1, nil, 80, 80),
        ("A100:2", "nvidia", ["A100"], 2, 2, nil, nil),
        ("24GB..40GB:2", "nvidia", nil, 2, 2, 24, 40),
        ("A100:40GB:2", "nvidia", ["A100"], 2, 2, 40, 40),
        ("24GB..80GB", "nvidia", nil, 1, nil, 24, 80),
        ("..80GB:2", "nvidia", nil, 2, 2, nil, 80),
        ("nvidia:24GB:1..2", "nvidia", nil, 1, 2, 24, 24),
        ("1..4", "nvidia", nil, 1, 4, nil, nil),
        ("0", nil, nil, 0, 0, nil, nil),
        ("tpu:v5litepod-8", "google", ["v5litepod-8"], 1, nil, nil, nil),
        ("v5litepod-8", "google", ["v5litepod-8"], 1, nil, nil, nil),
        ("tpu-v3-8", "google", ["v3-8"], 1, nil, nil, nil),
        ("16GB..32", "nvidia", nil, 1, nil, 16, 32),
        ("H100,UNKNOWN1", nil, ["H100", "UNKNOWN1"], 1, nil, nil, nil),
        ("UNKNOWN1", nil, ["UNKNOWN1"], 1, nil, nil, nil),
        ("rtx4090:2", "nvidia", ["rtx4090"], 2, 2, nil, nil),
    ] as [(String, String?, [String]?, Int, Int?, Double?, Double?)])
    func gpuSpecs(text: String, vendor: String?, names: [String]?, countMin: Int, countMax: Int?, memMin: Double?, memMax: Double?) throws {
        let s = try #require(service(baseService + "resources:\n  gpu: \(text)\n"))
        let gpu = try #require(s.resources.gpu)
        #expect(gpu.vendor == vendor)
        #expect(gpu.name == names)
        #expect(gpu.count == ValueRange(min: countMin, max: countMax))
        #expect(gpu.memory?.min == memMin && gpu.memory?.max == memMax)
    }

    @Test(arguments: [
        ("80GB:40GB", "memory twice"), ("A100:H100", "name twice"), ("A100:2:3", "count twice"), ("A100:80:2", "count twice"),
        ("\"A100:\"", "empty token"), ("H100,:2", "empty GPU name"), ("nvidia:amd", "vendor twice"), ("1.5", "expected a GPU spec"),
        ("{vendor: foo}", "expected one of"), ("{compute_capability: 8}", "invalid compute capability"),
    ])
    func invalidGPUSpecs(text: String, fragment: String) {
        let found = issues(baseService + "resources:\n  gpu: \(text)\n")
        #expect(found.contains { $0.message.contains(fragment) && $0.path.hasPrefix("service.resources.gpu") }, "\(found)")
    }

    @Test func gpuMappingForm() throws {
        let s = try #require(service(baseService + "resources:\n  gpu: {name: [A100, H100], memory: 40GB.., compute_capability: \"8.0\"}\n"))
        let gpu = try #require(s.resources.gpu)
        #expect(gpu.name == ["A100", "H100"])
        #expect(gpu.vendor == "nvidia")
        #expect(gpu.memory == ValueRange(min: 40, max: nil))
        #expect(gpu.computeCapability == [8, 0])
        #expect(gpu.count == ValueRange(min: 1, max: nil))
    }

    @Test(arguments: [
        ("0 * * * *", true), ("*/15 0-6 1 jan sun", true), ("0 8 * * mon-fri", true), ("bad", false),
        ("61 * * * *", false), ("* * 32 * *", false), ("* * * 13 *", false), ("* * * * 7", false), ("*/0 * * * *", false),
    ])
    func cronExpressions(expression: String, valid: Bool) {
        #expect((Cron.problem(expression) == nil) == valid)
    }
}
