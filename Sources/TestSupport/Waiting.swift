import Foundation

/// The one way tests wait: a condition polled until it holds or the deadline passes (never a
/// sleep as synchronization). A condition that throws has not held yet (a server still
/// starting); the last error is in the timeout's message.
public func waitFor(_ what: String = "the condition", timeout: TimeInterval = 20, poll: Duration = .milliseconds(10),
                    _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    var last: (any Error)?
    while true {
        do {
            if try await condition() { return }
            last = nil
        } catch {
            last = error
        }
        if Date() > deadline { throw WaitTimeout(what: what, timeout: timeout, lastError: last) }
        try await Task.sleep(for: poll)
    }
}

/// `waitFor` with the name first (what the Kubernetes tests call it).
public func eventually(_ what: String, timeout: TimeInterval = 10, _ condition: () async throws -> Bool) async throws {
    try await waitFor(what, timeout: timeout, condition)
}

public struct WaitTimeout: Error, CustomStringConvertible {
    public var what: String
    public var timeout: TimeInterval
    public var lastError: (any Error)?

    public var description: String {
        "timed out after \(timeout)s waiting for \(what)" + (lastError.map { " (last error: \($0))" } ?? "")
    }
}
