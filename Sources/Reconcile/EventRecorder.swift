import Foundation
import Model
import Store

/// Records Events: what a controller decided, about which object, and why. As Kubernetes'
/// recorder does, the same (object, type, reason, message) again is one event whose `count` and
/// `lastTimestamp` grow, not a new one; an object keeps its newest `maxPerObject` events, and
/// events not seen again for `retention` are removed.
public struct EventRecorder: Sendable {
    public static let maxPerObject = 50
    public static let retention: TimeInterval = 24 * 3600

    let store: any ObjectStore
    let clock: any ControllerClock
    let component: String

    public init(store: any ObjectStore, clock: any ControllerClock, component: String) {
        self.store = store
        self.clock = clock
        self.component = component
    }

    /// The event's name: the object and a stable digest of what is said about it, so a repeat
    /// finds the same event (across restarts too).
    static func name(_ involved: ObjectKey, type: String, reason: String, message: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325   // FNV-1a
        for byte in "\(involved.kind)\u{0}\(type)\u{0}\(reason)\u{0}\(message)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return "\(involved.name).\(String(hash, radix: 16))"
    }

    public func record(_ involved: ObjectKey, warning: Bool, reason: String, message: String) async {
        let now = clock.now()
        let type = warning ? "Warning" : "Normal"
        let events = TypedStore<EventKind>(store)
        let name = Self.name(involved, type: type, reason: reason, message: message)
        for _ in 0..<3 {
            do {
                if var existing = try await events.get(project: involved.project, name: name) {
                    existing.spec.count += 1
                    existing.spec.lastTimestamp = now
                    _ = try await events.update(existing)
                    return
                }
                let event = Event(project: involved.project, name: name,
                                  labels: ["setpoint.dev/involved": involved.name, "setpoint.dev/component": component],
                                  spec: EventSpec(involved: involved, type: type, reason: reason, message: message, firstTimestamp: now, lastTimestamp: now))
                _ = try await events.create(event)
                await prune(involved, now: now)
                return
            } catch let e as StoreError where e.code == .conflict || e.code == .alreadyExists {
                continue   // another writer of the same event: read it again
            } catch {
                return   // events are best effort: a decision never fails for its event
            }
        }
    }

    /// Keeps the object's newest events, and none older than the retention.
    private func prune(_ involved: ObjectKey, now: Date) async {
        let events = TypedStore<EventKind>(store)
        guard let all = try? await events.list(project: involved.project, labels: ["setpoint.dev/involved": involved.name]) else { return }
        let newestFirst = all.filter { $0.spec.involved == involved }.sorted { $0.spec.lastTimestamp > $1.spec.lastTimestamp }
        for (i, event) in newestFirst.enumerated() where i >= Self.maxPerObject || now.timeIntervalSince(event.spec.lastTimestamp) > Self.retention {
            _ = try? await events.delete(project: event.meta.project, name: event.meta.name)
        }
    }
}

