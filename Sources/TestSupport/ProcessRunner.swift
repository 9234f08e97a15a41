import Foundation

/// Runs a process to its end and returns its status and output (stdout and stderr together).
/// The wait happens on a thread of its own, so the test's cooperative threads stay free for the
/// servers under test; past `timeout` the process is killed. Started with `posix_spawn` and
/// reaped with `waitpid` here, not with Foundation's `Process`, whose `waitUntilExit` can miss a
/// child's exit when many processes start at once and then spins forever.
/// - Parameter inheritEnvironment: start from this process's environment (else `environment` only).
/// - Parameter input: what the process reads on standard input (nothing: `/dev/null`).
public func runProcess(_ argv: [String], environment: [String: String] = [:], inheritEnvironment: Bool = true,
                       timeout: TimeInterval = 60, input: String? = nil) async throws -> (status: Int32, output: String) {
    var env = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
    for (k, v) in environment { env[k] = v }
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("setpoint-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let inputPath = input == nil ? "/dev/null" : scratch.appendingPathComponent("stdin").path
    if let input { _ = FileManager.default.createFile(atPath: inputPath, contents: Data(input.utf8)) }
    let outputPath = scratch.appendingPathComponent("output").path
    // Output to a file, not a pipe: nothing can block on a full pipe.
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let args = (["/usr/bin/env"] + argv).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for a in args { free(a) }
        for e in envp { free(e) }
    }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, args, envp)
    guard spawned == 0 else { throw ProcessRunnerError(message: "cannot start \(argv.first ?? ""): \(String(cString: strerror(spawned)))") }
    let child = pid
    let status: Int32 = await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(timeout)
            var raw: Int32 = 0
            while true {
                let r = waitpid(child, &raw, WNOHANG)
                if r == child { break }
                if r < 0 && errno != EINTR { raw = 0; break }
                if Date() > deadline {
                    kill(child, SIGKILL)
                    while waitpid(child, &raw, 0) < 0 && errno == EINTR {}
                    break
                }
                usleep(5_000)
            }
            // WIFEXITED / WEXITSTATUS, else 128 + the signal, as a shell reports it.
            let code: Int32 = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            continuation.resume(returning: code)
        }
    }
    let output = (try? Data(contentsOf: URL(fileURLWithPath: outputPath))).map { String(decoding: $0, as: UTF8.self) } ?? ""
    return (status, output)
}

public struct ProcessRunnerError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

final class ExitFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Runs blocking work (a socket read with a timeout) on a thread of its own, so that the test's
/// cooperative threads (two on a two-core machine) stay free for the servers and tests running
/// beside it.
/// `onThread` for a body that throws.
public func onThreadThrowing<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
        Thread.detachNewThread {
            do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
        }
    }
}

public func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}
