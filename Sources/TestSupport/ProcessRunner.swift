import Foundation

/// Runs a process to its end and returns its status and output (stdout and stderr together).
/// The wait happens on threads of its own, so the test's cooperative threads stay free for the
/// servers under test; past `timeout` the process is killed (only while it surely runs).
/// - Parameter inheritEnvironment: start from this process's environment (else `environment` only).
/// - Parameter input: what the process reads on standard input (nothing: `/dev/null`).
public func runProcess(_ argv: [String], environment: [String: String] = [:], inheritEnvironment: Bool = true,
                       timeout: TimeInterval = 60, input: String? = nil) async throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    var env = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    let stdin = input.map { _ in Pipe() }
    p.standardInput = stdin ?? FileHandle(forReadingAtPath: "/dev/null")
    try p.run()
    if let stdin, let input {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
    }
    let pid = p.processIdentifier
    return await withCheckedContinuation { continuation in
        let exited = ExitFlag()
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(timeout)
            while !exited.isSet, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if !exited.isSet { kill(pid, SIGKILL) }
        }
        Thread.detachNewThread {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            exited.set()
            continuation.resume(returning: (p.terminationStatus, String(decoding: data, as: UTF8.self)))
        }
    }
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
