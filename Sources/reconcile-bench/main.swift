import Backend
import SetpointConfiguration
import Controllers
import Foundation
import Model
import Reconcile
import Store
import StorePostgres
import StoreSQLite
import TestSupport

// Applies N runs × M replicas at once on the fake backend (zero latency) and measures the time
// until every run is Ready, store writes per replica and peak RSS, on the memory, SQLite or
// PostgreSQL store (`SETPOINT_BENCH_DATABASE_URL`, an empty database). Used by
// hack/bench/reconcile.sh.

let args = CommandLine.arguments
let runCount = args.count > 1 ? Int(args[1]) ?? 1000 : 1000
let replicasPerRun = args.count > 2 ? Int(args[2]) ?? 10 : 10
let storeKind = args.count > 3 ? args[3] : "memory"

let yaml = """
    type: service
    name: bench
    commands:
      - python3 -m http.server 8000
    port: 8000
    replicas: \(replicasPerRun)
    """
guard case .success(.service(let config)) = ConfigurationParser.parse(yaml).first?.result else { fatalError("bad configuration") }

let clock = SystemClock()
let store: any ObjectStore
var scratch: URL?
switch storeKind {
case "memory":
    store = MemoryStore()
case "sqlite":
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    scratch = dir
    store = try SQLiteStore(path: dir.appendingPathComponent("state.db").path)
case "postgres":
    guard let url = ProcessInfo.processInfo.environment["SETPOINT_BENCH_DATABASE_URL"] else { fatalError("SETPOINT_BENCH_DATABASE_URL is not set") }
    store = try await PostgresStore.open(url)
default:
    fatalError("store: memory, sqlite or postgres")
}
let backend = FakeBackend(clock: clock)
let manager = ControllerManager(store: store, backend: backend, prober: backend, clock: clock,
                                runWorkers: 4, replicaWorkers: 8, resyncPeriod: nil)
let managerTask = Task { try await manager.run() }

func peakRSSMegabytes() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}

let runs = TypedStore<RunKind>(store)
let watch = store.watch(kind: RunKind.name, from: 0)
let start = Date()
for i in 0..<runCount {
    var c = config
    c.name = "bench-\(i)"
    try await runs.create(Run(project: "main", name: "bench-\(i)", spec: RunSpec(configuration: c)))
}

var ready = Set<String>()
let decoder = JSONDecoder()
decoder.dateDecodingStrategy = .deferredToDate
for try await event in watch {
    guard let status = try? decoder.decode(RunStatus.self, from: event.object.status) else { continue }
    if status.readyReplicas == replicasPerRun, status.conditions.contains(where: { $0.type == "Ready" && $0.status == "True" }) {
        ready.insert(event.object.meta.name)
        if ready.count == runCount { break }
    }
}
let elapsed = Date().timeIntervalSince(start)
let writes = await store.writeCount()
let total = runCount * replicasPerRun
managerTask.cancel()
print("runs: \(runCount), replicas per run: \(replicasPerRun), workloads running: \(backend.running.count), store: \(storeKind)")
if let scratch { try? FileManager.default.removeItem(at: scratch) }
print(String(format: "converged %d replicas in %.2f s, %.1f writes/replica, peak RSS %.0f MB",
             total, elapsed, Double(writes) / Double(total), peakRSSMegabytes()))
