import APIClient
import Foundation
import Model

/// The watch stream as a reflector reads it: the current state first, then every change once.
/// When the connection drops (a restarting server, a proxy's timeout) it connects again from the
/// last position it was told (the last bookmark or change), so nothing is missed or repeated;
/// when the server no longer has that position (`expired`, or a restarted server), it lists
/// again and reports the new list, which the caller compares with what it showed.
struct ResumingWatch {
    let client: APIClient
    let kinds: [String]
    /// How long the server may stay unreachable before the watch gives up.
    var patience: TimeInterval = 30

    enum Update {
        /// The state at the start, and again after a relist.
        case listed([API.WatchEvent], relisted: Bool)
        case changed(API.WatchEvent)
    }

    func run(_ handle: (Update) async throws -> Void) async throws {
        var position: Int64?
        var listedOnce = false
        var unreachableSince: Date?
        while true {
            var snapshot: [API.WatchEvent] = []
            var inSnapshot = position == nil
            do {
                for try await event in client.watch(from: position, kinds: kinds) {
                    unreachableSince = nil
                    switch event.type {
                    case "bookmark":
                        position = event.resourceVersion
                        if inSnapshot {
                            inSnapshot = false
                            try await handle(.listed(snapshot, relisted: listedOnce))
                            listedOnce = true
                            snapshot = []
                        }
                    case "expired":
                        position = nil   // list again
                    default:
                        if inSnapshot {
                            snapshot.append(event)
                        } else {
                            position = event.resourceVersion
                            try await handle(.changed(event))
                        }
                    }
                    if position == nil && !inSnapshot { break }
                }
                // The stream ended (a server stopping, or `expired`): connect again.
            } catch let f as APIClient.Failure where f.unreachable {
                let since = unreachableSince ?? Date()
                unreachableSince = since
                if Date().timeIntervalSince(since) > patience {
                    throw f
                }
            }
            try await Task.sleep(nanoseconds: unreachableSince == nil ? 100_000_000 : 500_000_000)
        }
    }
}
