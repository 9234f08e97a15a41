import Backend
import Model
import SetpointConfiguration
import Testing

/// Which offers can hold a replica's resources (the plan lists only those).
@Suite struct OfferFitTests {
    static let cpuNode = Offer(backend: "kubernetes", region: "fake", instance: "cpu-1", cpus: 16, memoryGB: 64, diskGB: 500)
    static let gpuNode: Offer = {
        var o = Offer(backend: "kubernetes", region: "fake", instance: "gpu-1", cpus: 48, memoryGB: 192, diskGB: 500,
                      gpus: Array(repeating: "A100:40GB", count: 4))
        o.arch = "amd64"
        return o
    }()

    static func resources(_ change: (inout ResourcesSpec) -> Void) -> ResourcesSpec {
        var r = ResourcesSpec.defaults
        r.disk = .atLeast(10)
        change(&r)
        return r
    }

    static func gpu(_ names: [String]?, count: Int, memory: Double? = nil, vendor: String? = nil) -> GPUSpec {
        var g = GPUSpec.unset
        g.name = names
        g.count = .atLeast(count)
        g.memory = memory.map { .atLeast($0) }
        g.vendor = vendor
        return g
    }

    @Test func lowerBoundsDecideUpperBoundsDoNot() {
        #expect(OfferFit.mismatch(Self.cpuNode, Self.resources { $0.cpu.count = .atLeast(200) }) == "200 CPUs, the offer has 16")
        #expect(OfferFit.mismatch(Self.cpuNode, Self.resources { $0.cpu.count = ValueRange(min: 2, max: 8) }) == nil)
        #expect(OfferFit.mismatch(Self.cpuNode, Self.resources { $0.memory = .atLeast(128) }) == "128GB of memory, the offer has 64GB")
        #expect(OfferFit.mismatch(Self.cpuNode, Self.resources { $0.disk = .atLeast(1000) }) == "1000GB of disk, the offer has 500GB")
        #expect(OfferFit.mismatch(Self.cpuNode, Self.resources { $0.disk = nil }) == nil)
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.cpu.arch = "arm" }) == "cpu architecture arm, the offer is amd64")
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.cpu.arch = "x86" }) == nil)
    }

    @Test func gpusByCountNameVendorAndMemory() {
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.gpu = Self.gpu(["A100"], count: 4) }) == nil)
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.gpu = Self.gpu(["a100"], count: 2, memory: 40) }) == nil)
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.gpu = Self.gpu(["A100"], count: 8) })
            == "8 GPU(s) A100, the offer has A100:40GB,A100:40GB,A100:40GB,A100:40GB")
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.gpu = Self.gpu(["H100"], count: 1) }) != nil)
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.gpu = Self.gpu(nil, count: 1, memory: 80) }) != nil)
        #expect(OfferFit.mismatch(Self.gpuNode, Self.resources { $0.gpu = Self.gpu(nil, count: 1, vendor: "amd") }) != nil)
        #expect(OfferFit.mismatch(Self.cpuNode, Self.resources { $0.gpu = Self.gpu(nil, count: 1) }) == "1 GPU(s), the offer has none")
        // `gpu` not given: any number, including none.
        #expect(OfferFit.mismatch(Self.cpuNode, Self.resources { _ in }) == nil)
    }

    @Test func anOfferFitsWhenOneReplicaGroupFits() {
        let small = Self.resources { $0.cpu.count = .atLeast(2) }
        let huge = Self.resources { $0.cpu.count = .atLeast(200) }
        #expect(OfferFit.fitting([Self.cpuNode, Self.gpuNode], [huge]).isEmpty)
        #expect(OfferFit.fitting([Self.cpuNode, Self.gpuNode], [huge, small]).map(\.instance) == ["cpu-1", "gpu-1"])
        #expect(OfferFit.fitting([Self.cpuNode, Self.gpuNode], [Self.resources { $0.cpu.count = .atLeast(32) }]).map(\.instance) == ["gpu-1"])
    }
}
