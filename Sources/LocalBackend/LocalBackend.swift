import Backend
import Foundation
import Logging
import Model
import SetpointConfiguration
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Replicas as local process groups: the embedded default backend.
///
/// Each workload runs `/bin/sh -c "<commands joined by &&>"` as the leader of its own process
/// group, in its working directory, with stdout and stderr in `<root>/workloads/<id>/output.log`.
/// Its description (labels, pid, start time) is kept in `meta.json` beside the log, so a
/// restarted server adopts running workloads instead of starting them again.
///
/// **Network.** In `namespace` mode (the default where `unshare` works, i.e. as root) each
/// workload gets its own network namespace with only a loopback interface, so every replica of
/// a service can listen on the same configured port. A `socat` inside the namespace bridges a
/// Unix socket (`<root>/workloads/<id>/port.sock`) to `127.0.0.1:<port>`, and the workload's
/// endpoint is `unix:<that path>`. In `host` mode (no privileges) workloads share the host's
/// network: the endpoint is `127.0.0.1:<port>`, and two replicas of one service clash on the
/// port, so run a single replica per service there.
public final class LocalBackend: ComputeBackend, ReadinessProber {
    public enum NetworkMode: String, Sendable, Codable {
        case namespace, host
    }

    struct Record: Codable, Sendable {
        var id: String
        var name: String
        var project: String
        var labels: [String: String]
        var pid: Int32
        var startTime: UInt64?
        var port: Int
        var endpoint: String
        var network: NetworkMode
        var createdAt: Date
        var stopRequested: Bool = false
        /// Set once the process group has ended.
        var exitCode: Int32?
    }

    private struct State {
        var records: [String: Record] = [:]
    }

    public let name = "local"
    public let root: String
    public let network: NetworkMode
    private let state = Mutex(State())
    /// Serializes reading workloads from the root (another server's, or after a restart) with
    /// deleting them, so a workload being deleted is never read back in.
    private let disk = Mutex(())
    private let broadcaster = StatusBroadcaster()
    private let logger: Logger

    /// - Parameters:
    ///   - root: where workload directories live (`<data-dir>/local`).
    ///   - network: forced mode; by default `namespace` when it works here, else `host`.
    public init(root: String, network: NetworkMode? = nil, logger: Logger = Logger(label: "setpoint.local")) throws {
        self.root = root
        self.logger = logger
        self.network = network ?? (Self.namespacesWork() ? .namespace : .host)
        try FileManager.default.createDirectory(atPath: workloadsDirectory, withIntermediateDirectories: true)
        adopt()
    }

    var workloadsDirectory: String { root + "/workloads" }
    func directory(_ id: String) -> String { workloadsDirectory + "/" + id }

    /// Whether `unshare --net` with `ip` and `socat` can be used on this machine.
    public static func namespacesWork() -> Bool {
        let fm = FileManager.default
        guard ["/usr/bin/unshare", "/usr/bin/socat"].allSatisfy(fm.isExecutableFile(atPath:)),
              fm.isExecutableFile(atPath: "/usr/sbin/ip") || fm.isExecutableFile(atPath: "/sbin/ip") || fm.isExecutableFile(atPath: "/usr/bin/ip") else {
            return false
        }
        guard let pid = try? Processes.spawn(["/usr/bin/unshare", "--net", "--", "/bin/sh", "-c", "ip link set lo up"],
                                            environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], directory: "/", logPath: "/dev/null") else {
            return false
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return Processes.exitCode(fromWaitStatus: status) == 0
    }

    // MARK: ComputeBackend

    public func offers() async throws -> [Offer] {
        var memoryGB = 0.0
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = line.split(separator: " ").compactMap({ Double($0) }).first {
            memoryGB = (kb / 1024 / 1024 * 10).rounded() / 10
        }
        // The disk's size, as a cloud offer states an instance's disk: free space is not reserved
        // for a replica here (replicas share this machine's disk).
        var fs = statvfs()
        let diskGB = statvfs(root, &fs) == 0 ? (Double(fs.f_blocks) * Double(fs.f_frsize) / 1_073_741_824).rounded() : 0
        return [Offer(backend: name, region: "local", instance: ProcessInfo.processInfo.hostName,
                      cpus: ProcessInfo.processInfo.activeProcessorCount, memoryGB: memoryGB, diskGB: diskGB, gpus: Self.gpus())]
    }

    /// GPUs as `NAME:MEMORY` from `nvidia-smi`, when it is installed.
    static func gpus() -> [String] {
        let smi = ["/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi"].first(where: FileManager.default.isExecutableFile(atPath:))
        guard let smi else { return [] }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-smi-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        guard let pid = try? Processes.spawn([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                                            environment: ["PATH": "/usr/bin:/bin"], directory: "/", logPath: out) else { return [] }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        guard Processes.exitCode(fromWaitStatus: status) == 0, let text = try? String(contentsOfFile: out, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let mib = Double(parts[1]) else { return nil }
            let name = parts[0].replacingOccurrences(of: "NVIDIA ", with: "").replacingOccurrences(of: " ", with: "")
            return "\(name):\(Int((mib / 1024).rounded()))GB"
        }
    }

    public func refusal(image: String?, docker: Bool) -> String? {
        if let image {
            return "the local backend runs the commands on this machine and cannot run an image (`image: \(image)`): use a Kubernetes backend for images (docs/kubernetes.md), or remove `image` and give `commands` (and `python`) that run here"
        }
        if docker {
            return "the local backend cannot give a replica its own Docker daemon (`docker: true`): use a Kubernetes backend, or run without it"
        }
        return nil
    }

    public func create(_ request: WorkloadRequest) async throws -> WorkloadID {
        let id = Self.workloadID(project: request.project, name: request.name)
        if state.withLock({ $0.records[id] != nil }) || load(id) != nil { return WorkloadID(id) }
        if let why = refusal(image: request.template.image, docker: false) { throw BackendError(.invalid, why) }
        // What this machine cannot give is not given: no capacity, with the reason (as a
        // cluster's scheduler says it).
        if let resources = ResourcesSpec(normalizedJSON: request.template.resources), let machine = try? await offers().first,
           let missing = OfferFit.mismatch(machine, resources) {
            throw BackendError(.noCapacity, "this machine (local backend) cannot give the replica its resources: they need \(missing)")
        }
        let dir = directory(id)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let template = request.template
        let script = template.commands.isEmpty ? "true" : template.commands.joined(separator: " && ")
        var env = template.env.merging(request.systemEnvironment) { _, system in system }
            .merging(request.secretEnvironment) { _, secret in secret }
        env["PATH"] = env["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env["HOME"] = env["HOME"] ?? dir
        env["PORT"] = String(template.port)
        // The commands go in a file, not in argv or the environment: both share the kernel's
        // ARG_MAX (a long configuration failed with `Argument list too long`).
        let commandsPath = dir + "/commands.sh"
        guard FileManager.default.createFile(atPath: commandsPath, contents: Data((script + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw BackendError(.unavailable, "cannot write \(commandsPath)")
        }
        // Marks every process of the workload, so one started just before a crash is found.
        env["SETPOINT_WORKLOAD"] = id
        let socket = dir + "/port.sock"
        let exitFile = dir + "/exit-status"
        let argv: [String]
        let endpoint: String
        let network = request.hostNetwork ? NetworkMode.host : self.network
        switch network {
        case .namespace:
            // Loopback up, the Unix-socket bridge in the background, then the commands; the
            // exit status is written down so it survives a server restart.
            let wrapper = """
                ip link set lo up || exit 97
                socat UNIX-LISTEN:\(shellQuote(socket)),fork,reuseaddr,unlink-early TCP:127.0.0.1:\(template.port) 2>>\(shellQuote(dir + "/bridge.log")) &
                bridge=$!
                /bin/sh \(shellQuote(commandsPath))
                code=$?
                echo $code > \(shellQuote(exitFile))
                kill $bridge 2>/dev/null
                exit $code
                """
            argv = ["/usr/bin/unshare", "--net", "--", "/bin/sh", "-c", wrapper]
            endpoint = "unix:" + socket
        case .host:
            let wrapper = """
                /bin/sh \(shellQuote(commandsPath))
                code=$?
                echo $code > \(shellQuote(exitFile))
                exit $code
                """
            argv = ["/bin/sh", "-c", wrapper]
            endpoint = "127.0.0.1:\(template.port)"
        }
        if let code = template.code {
            // The uploaded code becomes the working directory's content.
            let pid = try Processes.spawn(["/bin/tar", "-xzf", code.path, "-C", dir], environment: ["PATH": "/usr/bin:/bin"],
                                          directory: dir, logPath: dir + "/output.log")
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            guard Processes.exitCode(fromWaitStatus: status) == 0 else {
                throw BackendError(.invalid, "cannot unpack the code archive \(code.hash.prefix(12))")
            }
        }
        let workingDirectory = template.workingDir.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil } ?? dir
        // Recorded before the start: a crash in between leaves a record with pid 0, which the
        // next start resolves by finding the workload's processes through their marker.
        try save(Record(id: id, name: request.name, project: request.project, labels: request.labels, pid: 0, startTime: nil,
                        port: template.port, endpoint: endpoint, network: network, createdAt: Date()))
        let pid: pid_t
        do {
            pid = try Processes.spawn(argv, environment: env, directory: workingDirectory, logPath: dir + "/output.log")
        } catch {
            throw BackendError(.invalid, "\(error)")
        }
        let record = Record(id: id, name: request.name, project: request.project, labels: request.labels, pid: pid,
                            startTime: Processes.startTime(pid), port: template.port, endpoint: endpoint, network: network,
                            createdAt: Date())
        state.withLock { $0.records[id] = record }
        try save(record)
        announce(record)
        watch(record)
        return WorkloadID(id)
    }

    public func status(_ id: WorkloadID) async throws -> WorkloadStatus? {
        (state.withLock { $0.records[id.rawValue] } ?? load(id.rawValue)).map(Self.status)
    }

    public func stop(_ id: WorkloadID, graceful: Bool) async throws {
        guard var record = state.withLock({ $0.records[id.rawValue] }), record.exitCode == nil else { return }
        record.stopRequested = true
        state.withLock { $0.records[id.rawValue]?.stopRequested = true }
        try? save(record)
        kill(-record.pid, graceful ? SIGTERM : SIGKILL)
        announce(record)
    }

    public func delete(_ id: WorkloadID) async throws {
        guard let record = state.withLock({ $0.records[id.rawValue] }) ?? load(id.rawValue) else { return }
        if record.exitCode == nil, Processes.isAlive(record.pid, startedAt: record.startTime) {
            kill(-record.pid, SIGKILL)
        }
        disk.withLock { _ in
            try? FileManager.default.removeItem(atPath: directory(id.rawValue))
            state.withLock { _ = $0.records.removeValue(forKey: id.rawValue) }
        }
    }

    public func inventory(labels: [String: String]) async throws -> [WorkloadStatus] {
        rescan()
        return state.withLock { s in
            s.records.values.filter { r in labels.allSatisfy { r.labels[$0.key] == $0.value } }.map(Self.status)
        }
    }

    public func changes() -> AsyncStream<WorkloadStatus> { broadcaster.subscribe() }
    public func changeStreams() -> [AsyncStream<WorkloadStatus>] { [changes()] }

    /// The workload's output; with `follow`, new lines as they are written, until it ends. Read
    /// as the consumer asks, in its task (no task of its own).
    public func logs(_ id: WorkloadID, follow: Bool) -> AsyncThrowingStream<LogLine, Error> {
        let reader = OutputReader(path: directory(id.rawValue) + "/output.log", follow: follow) { [weak self] in
            guard let self else { return true }
            return (try? await self.status(id))??.state.isFinished ?? true
        }
        return AsyncThrowingStream { try await reader.next() }
    }

    // MARK: ReadinessProber

    public func probe(endpoint: String, _ probe: ProbeTemplate) async -> Bool { await SocketProber().probe(endpoint: endpoint, probe) }
    public func answers(endpoint: String) async -> Bool { await SocketProber().answers(endpoint: endpoint) }

    // MARK: internals

    static func workloadID(project: String, name: String) -> String { "\(project)--\(name)" }

    /// Local IDs are `<project>--<replica>`; other backends' IDs carry a `type:` prefix.
    public func owns(_ id: WorkloadID) -> Bool { !id.rawValue.contains(":") }

    static func status(_ r: Record) -> WorkloadStatus {
        let state: WorkloadState
        if let code = r.exitCode {
            state = .exited(code)
        } else if r.stopRequested {
            state = .stopping
        } else {
            state = .running(endpoint: r.endpoint)
        }
        return WorkloadStatus(id: WorkloadID(r.id), labels: r.labels, state: state)
    }

    private func save(_ record: Record) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(record).write(to: URL(fileURLWithPath: directory(record.id) + "/meta.json"), options: .atomic)
    }

    /// Watches a workload's process group leader on a thread of its own until it exits.
    private func watch(_ record: Record) {
        let pid = record.pid
        let id = record.id
        let exitFile = directory(id) + "/exit-status"
        Thread.detachNewThread { [weak self] in
            let waitStatus = Processes.waitForExit(pid)
            // Make sure nothing of the group is left (a bridge, a background child).
            Processes.killGroup(pid)
            let recorded = (try? String(contentsOfFile: exitFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            let code = recorded ?? waitStatus.map(Processes.exitCode(fromWaitStatus:)) ?? 137
            self?.finished(id, code: code)
        }
    }

    private func finished(_ id: String, code: Int32) {
        guard let record = state.withLock({ s -> Record? in
            guard s.records[id] != nil else { return nil }
            s.records[id]?.exitCode = code
            return s.records[id]
        }) else { return }
        try? save(record)
        announce(record)
    }

    private func announce(_ record: Record) { broadcaster.announce(Self.status(record)) }

    /// A workload another server on the same root started (several servers, one machine), read
    /// from its directory and adopted; nil when there is none.
    private func load(_ id: String) -> Record? {
        disk.withLock { _ in
            guard FileManager.default.fileExists(atPath: directory(id) + "/meta.json") else { return nil }
            adopt(only: [id])
            return state.withLock { $0.records[id] }
        }
    }

    /// The records as the root has them: workloads another server started are adopted, and
    /// those another server deleted are forgotten.
    private func rescan() {
        disk.withLock { _ in rescanLocked() }
    }

    private func rescanLocked() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: workloadsDirectory) else { return }
        let onDisk = Set(entries)
        let known = state.withLock { s -> Set<String> in
            for id in s.records.keys where !onDisk.contains(id) { s.records[id] = nil }
            return Set(s.records.keys)
        }
        let unknown = onDisk.subtracting(known)
        if !unknown.isEmpty { adopt(only: unknown) }
    }

    /// Reads the workloads a previous server left: running ones are watched again, ended ones
    /// keep their exit status.
    private func adopt(only: Set<String>? = nil) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: workloadsDirectory) else { return }
        let decoder = JSONDecoder()
        for entry in entries where only?.contains(entry) ?? true {
            guard state.withLock({ $0.records[entry] == nil }) else { continue }
            guard let data = FileManager.default.contents(atPath: directory(entry) + "/meta.json"),
                  var record = try? decoder.decode(Record.self, from: data) else { continue }
            if record.pid == 0 {
                // Being started right now by another server on this root: not there yet.
                if only != nil, Date().timeIntervalSince(record.createdAt) < 30 { continue }
                // Interrupted between recording and starting: end whatever did start, forget it.
                for pid in Processes.marked(workload: record.id) { kill(-pid, SIGKILL); kill(pid, SIGKILL) }
                try? FileManager.default.removeItem(atPath: directory(entry))
                logger.info("removed a workload whose start was interrupted", metadata: ["workload": "\(record.id)"])
                continue
            }
            if record.exitCode == nil, !Processes.isAlive(record.pid, startedAt: record.startTime) {
                let recorded = (try? String(contentsOfFile: directory(entry) + "/exit-status", encoding: .utf8))
                    .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                record.exitCode = recorded ?? 137
                try? save(record)
            }
            state.withLock { $0.records[record.id] = record }
            if record.exitCode == nil {
                logger.info("adopted running workload", metadata: ["workload": "\(record.id)", "pid": "\(record.pid)"])
                watch(record)
            }
        }
    }
}

extension WorkloadState {
    var isFinished: Bool {
        switch self {
        case .exited, .failed: return true
        default: return false
        }
    }
}

func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// A workload's output file read line by line: what is there, then (following) what is added,
/// every 200 ms, until the workload has ended and everything is read.
actor OutputReader {
    private let path: String
    private let follow: Bool
    private let ended: @Sendable () async -> Bool
    private var offset: UInt64 = 0
    private var pending = ""
    private var lines: [String] = []
    private var done = false
    private var readOnce = false

    init(path: String, follow: Bool, ended: @escaping @Sendable () async -> Bool) {
        self.path = path
        self.follow = follow
        self.ended = ended
    }

    func next() async throws -> LogLine? {
        while true {
            if !lines.isEmpty { return LogLine(time: Date(), text: lines.removeFirst()) }
            if done { return nil }
            // What is there is read at once; following, each later look waits its turn.
            if readOnce, follow { try await Task.sleep(nanoseconds: 200_000_000) }
            readOnce = true
            read()
            if !lines.isEmpty { continue }
            let finished = follow ? await ended() : true
            if finished {
                read()   // what was written before it ended
                if !pending.isEmpty { lines.append(pending) }
                pending = ""
                done = true
            }
        }
    }

    private func read() {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        try? handle.seek(toOffset: offset)
        let data = handle.readDataToEndOfFile()
        try? handle.close()
        offset += UInt64(data.count)
        pending += String(decoding: data, as: UTF8.self)
        while let newline = pending.firstIndex(of: "\n") {
            lines.append(String(pending[..<newline]))
            pending = String(pending[pending.index(after: newline)...])
        }
    }
}
