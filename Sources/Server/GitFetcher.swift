import Backend
import Controllers
import Crypto
import Foundation
import Model
import SetpointConfiguration
import Synchronization

/// A program run to its end off the cooperative threads: its output, its errors, its status.
/// The input comes from a file and the errors go to one, so no pipe can fill up and block.
enum Subprocess {
    struct Result {
        var status: Int32
        var output: Data
        var errors: String
    }

    static func run(_ argv: [String], environment: [String: String], input: Data? = nil, directory: String? = nil,
                    timeout: TimeInterval = 300) async throws -> Result {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-git-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let inputPath = scratch.appendingPathComponent("stdin").path
        let errorPath = scratch.appendingPathComponent("stderr").path
        _ = FileManager.default.createFile(atPath: inputPath, contents: input ?? Data())
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env")
        p.arguments = argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv
        p.environment = environment
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: errorPath)
        p.standardInput = FileHandle(forReadingAtPath: inputPath)
        try p.run()
        let pid = p.processIdentifier
        // A server shutting down does not wait for a fetch: cancellation kills it.
        let (status, data) = await withTaskCancellationHandler {
            await wait(p, pid: pid, out: out, timeout: timeout)
        } onCancel: {
            kill(pid, SIGKILL)
        }
        let errors = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        return Result(status: status, output: data, errors: errors)
    }

    static func wait(_ p: Process, pid: Int32, out: Pipe, timeout: TimeInterval) async -> (Int32, Data) {
        await withCheckedContinuation { (continuation: CheckedContinuation<(Int32, Data), Never>) in
            let done = Mutex(false)
            Thread.detachNewThread {
                let deadline = Date().addingTimeInterval(timeout)
                while !done.withLock({ $0 }), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
                if !done.withLock({ $0 }) { kill(pid, SIGKILL) }
            }
            Thread.detachNewThread {
                let data = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                done.withLock { $0 = true }
                continuation.resume(returning: (p.terminationStatus, data))
            }
        }
    }
}

/// Sources fetched with the real `git` client into a bare mirror per source
/// (`<data-dir>/sources/<project>/<name>.git`). Credentials travel in the environment of the
/// one `git` process that needs them (an HTTP header through `GIT_CONFIG_*`, an SSH key in a
/// file of mode 0600 removed afterwards), never in arguments, the mirror's configuration or a
/// message.
public final class GitFetcher: SourceFetcher, Sendable {
    let root: String
    let fetchTimeout: TimeInterval
    struct State {
        var lastFetch: [String: Date] = [:]
        var checkouts: [String: SourceCheckout] = [:]
        var order: [String] = []
    }
    let state = Mutex(State())
    /// Checkouts kept in memory (each revision's documents and code).
    static let cached = 16

    public init(root: String, fetchTimeout: TimeInterval = 300) {
        self.root = root
        self.fetchTimeout = fetchTimeout
    }

    func key(_ source: Source) -> String { "\(source.meta.project)/\(source.meta.name)/\(source.meta.uid)" }
    func mirror(_ source: Source) -> String { "\(root)/\(source.meta.project)/\(source.meta.name).git" }

    public func lastFetch(_ source: Source) -> Date? { state.withLock { $0.lastFetch[key(source)] } }

    public func forget(_ source: Source) async {
        state.withLock { $0.lastFetch[key(source)] = nil }
        try? FileManager.default.removeItem(atPath: mirror(source))
    }

    /// The environment of every `git` run: no prompts, no user or system configuration.
    func environment(home: String) -> [String: String] {
        ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": home, "GIT_TERMINAL_PROMPT": "0",
         "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C"]
    }

    func git(_ arguments: [String], mirror: String, env: [String: String] = [:], input: Data? = nil, secrets: [String] = [],
             timeout: TimeInterval = 60) async throws -> Data {
        var environment = environment(home: (mirror as NSString).deletingLastPathComponent)
        environment.merge(env) { _, b in b }
        let result = try await Subprocess.run(["git", "-C", mirror] + arguments, environment: environment, input: input, timeout: timeout)
        guard result.status == 0 else {
            var text = result.errors.trimmingCharacters(in: .whitespacesAndNewlines)
            for s in secrets where !s.isEmpty { text = text.replacingOccurrences(of: s, with: "********") }
            if result.status == 9 || result.status == 137 { text = "no answer within \(Int(timeout)) s" + (text.isEmpty ? "" : ": " + text) }
            throw BackendError(.unavailable, "git \(arguments.first ?? ""): " + String((text.isEmpty ? "exit status \(result.status)" : text).prefix(1500)))
        }
        return result.output
    }

    public func fetch(_ source: Source, credentials: SourceCredentials) async throws -> SourceRevision {
        state.withLock { $0.lastFetch[key(source)] = Date() }
        let mirror = mirror(source)
        if !FileManager.default.fileExists(atPath: mirror + "/HEAD") {
            try FileManager.default.createDirectory(atPath: mirror, withIntermediateDirectories: true)
            _ = try await git(["init", "--bare", "-q", "."], mirror: mirror, env: [:], timeout: 30)
        }
        var env: [String: String] = [:]
        var secrets: [String] = []
        var scratch: String?
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        if let token = credentials.token {
            let basic = Data("\(credentials.username ?? "git"):\(token)".utf8).base64EncodedString()
            env["GIT_CONFIG_COUNT"] = "1"
            env["GIT_CONFIG_KEY_0"] = "http.extraHeader"
            env["GIT_CONFIG_VALUE_0"] = "Authorization: Basic \(basic)"
            secrets += [token, basic]
        }
        if let key = credentials.sshKey {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-ssh-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            scratch = dir
            let keyPath = dir + "/key"
            guard FileManager.default.createFile(atPath: keyPath, contents: Data((key.hasSuffix("\n") ? key : key + "\n").utf8),
                                                 attributes: [.posixPermissions: 0o600]) else {
                throw BackendError(.unavailable, "cannot write the SSH key for the fetch")
            }
            var options = "-i \(keyPath) -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=30"
            if let hosts = credentials.knownHosts {
                let hostsPath = dir + "/known_hosts"
                _ = FileManager.default.createFile(atPath: hostsPath, contents: Data(hosts.utf8))
                options += " -o UserKnownHostsFile=\(hostsPath) -o StrictHostKeyChecking=yes"
            } else {
                // First use pins the host key in the mirror's own file (ssh's accept-new).
                options += " -o UserKnownHostsFile=\(mirror)/known_hosts -o StrictHostKeyChecking=accept-new"
            }
            env["GIT_SSH_COMMAND"] = "ssh " + options
        }
        let refspecs: [String]
        switch source.spec.ref {
        case .branch(let b): refspecs = ["+refs/heads/\(b):refs/heads/\(b)"]
        case .tag(let t): refspecs = ["+refs/tags/\(t):refs/tags/\(t)"]
        case .commit: refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        }
        _ = try await git(["fetch", "--quiet", "--prune", "--no-tags", "--", source.spec.url] + refspecs, mirror: mirror, env: env,
                          secrets: secrets, timeout: fetchTimeout)
        let name: String
        switch source.spec.ref {
        case .branch(let b): name = "refs/heads/\(b)"
        case .tag(let t): name = "refs/tags/\(t)"
        case .commit(let c): name = c
        }
        let commit: String
        do {
            commit = String(decoding: try await git(["rev-parse", "--verify", "--quiet", name + "^{commit}"], mirror: mirror), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw BackendError(.invalid, "the repository has no \(source.spec.ref)")
        }
        let log = String(decoding: try await git(["log", "-1", "--format=%s%x00%an%x00%cI", commit], mirror: mirror), as: UTF8.self)
            .trimmingCharacters(in: .newlines).split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        let date = log.count > 2 ? ISO8601DateFormatter().date(from: log[2]) : nil
        return SourceRevision(commit: commit, subject: log.first ?? "", author: log.count > 1 ? log[1] : "", date: date)
    }

    public func checkout(_ source: Source, commit: String) async throws -> SourceCheckout {
        let cacheKey = key(source) + "@" + commit + "#" + (source.spec.path ?? "")
        if let hit = state.withLock({ $0.checkouts[cacheKey] }) { return hit }
        let mirror = mirror(source)
        let path = Self.normalized(source.spec.path)
        let listing: Data
        do {
            listing = try await git(["ls-tree", "-r", "-z", "--name-only", commit, "--", path ?? "."], mirror: mirror)
        } catch {
            throw BackendError(.invalid, "commit \(commit.prefix(12)) is not in the source's mirror: it is fetched again")
        }
        let files = listing.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.filter { $0.hasSuffix(".dstack.yml") }.sorted()
        var documents: [(file: String, text: String)] = []
        if !files.isEmpty {
            let input = Data(files.map { "\(commit):\($0)\n" }.joined().utf8)
            let batch = try await git(["cat-file", "--batch"], mirror: mirror, input: input)
            let blobs = try Self.parseBatch(batch, count: files.count)
            for (file, blob) in zip(files, blobs) {
                guard let text = String(validating: blob, as: UTF8.self) else {
                    throw BackendError(.invalid, "\(file) is not UTF-8 text")
                }
                for doc in ConfigurationParserTexts.documents(text) { documents.append((file, doc)) }
            }
        }
        let (code, hash) = try await codeArchive(mirror: mirror, commit: commit)
        let revision = SourceRevision(commit: commit)
        let checkout = SourceCheckout(revision: revision, documents: documents, code: code, codeHash: hash)
        state.withLock { s in
            s.checkouts[cacheKey] = checkout
            s.order.append(cacheKey)
            if s.order.count > Self.cached { s.checkouts[s.order.removeFirst()] = nil }
        }
        return checkout
    }

    /// `services/` from ` services/ `, `./services` or `/services`; nil for the whole repository.
    static func normalized(_ path: String?) -> String? {
        guard var p = path?.trimmingCharacters(in: .whitespaces), !p.isEmpty else { return nil }
        while p.hasPrefix("./") { p.removeFirst(2) }
        while p.hasPrefix("/") { p.removeFirst() }
        while p.hasSuffix("/") { p.removeLast() }
        return p.isEmpty || p == "." ? nil : p
    }

    /// `git cat-file --batch` output: `<oid> blob <size>\n<bytes>\n` per object.
    static func parseBatch(_ data: Data, count: Int) throws -> [Data] {
        var blobs: [Data] = []
        var i = data.startIndex
        while blobs.count < count, i < data.endIndex {
            guard let newline = data[i...].firstIndex(of: 0x0A) else { break }
            let header = String(decoding: data[i..<newline], as: UTF8.self).split(separator: " ")
            guard header.count == 3, let size = Int(header[2]) else { throw BackendError(.invalid, "unexpected git output: \(header.joined(separator: " "))") }
            let start = data.index(after: newline)
            let end = data.index(start, offsetBy: size)
            blobs.append(data[start..<end])
            i = data.index(after: end)
        }
        guard blobs.count == count else { throw BackendError(.invalid, "git returned \(blobs.count) of \(count) files") }
        return blobs
    }

    /// The repository at `commit` without its configurations, as a gzipped tar that depends on
    /// the content only (sorted names, no times, no owners): a commit that changes only
    /// configurations leaves every service's code as it was.
    func codeArchive(mirror: String, commit: String) async throws -> (Data?, String?) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-code-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/tree", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tar = try await git(["archive", "--format=tar", commit], mirror: mirror, timeout: 120)
        let env = environment(home: dir)
        let unpacked = try await Subprocess.run(["tar", "-xf", "-", "-C", dir + "/tree"], environment: env, input: tar)
        guard unpacked.status == 0 else { throw BackendError(.unavailable, "cannot unpack commit \(commit.prefix(12)): \(unpacked.errors.prefix(500))") }
        let listed = try await Subprocess.run(["find", ".", "-type", "f", "!", "-name", "*.dstack.yml"], environment: env, directory: dir + "/tree")
        if listed.output.isEmpty { return (nil, nil) }
        let packed = try await Subprocess.run(
            ["/bin/sh", "-c", "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --exclude='*.dstack.yml' -cf - -C tree . | gzip -n"],
            environment: env, directory: dir)
        guard packed.status == 0 else { throw BackendError(.unavailable, "cannot pack the code of \(commit.prefix(12)): \(packed.errors.prefix(500))") }
        let hash = SHA256.hash(data: packed.output).map { String(format: "%02x", $0) }.joined()
        return (packed.output, hash)
    }
}

/// Splits a file into its documents (keeping the file's line numbers).
enum ConfigurationParserTexts {
    static func documents(_ text: String) -> [String] {
        ConfigurationParser.documentTexts(text).filter { doc in
            doc.split(separator: "\n").contains { line in !line.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } && !line.hasPrefix("#") }
        }
    }
}
