import Foundation
import Model
import Store

/// Records Events: what a controller decided, about which object, and why. As Kubernetes'
/// recorder does, the same (object, type, reason, message) again is one event whose `count` and
/// `lastTimestamp` grow, not a new one. Recording is one write (no list): `sweep`, run by the
/// controller manager every minute, keeps each object's newest `maxPerObject` events and a
/// project's newest `maxPerProject`, and removes events not seen again for `retention`.
public struct EventRecorder: Sendable {
    public static let maxPerObject = 50
    public static let maxPerProject = 1000
    public static let retention: TimeInterval = 24 * 3600
    /// The labels an event carries: the object's name, the controller, and the run it is about.
    public static let involvedLabel = "setpoint.dev/involved"
    public static let componentLabel = "setpoint.dev/component"

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

    /// Records one event about `involved`; `run` is the run it belongs to (a run, its replicas
    /// and route), so that `setpoint events --for run/NAME` finds them after they are gone.
    public func record(_ involved: ObjectKey, warning: Bool, reason: String, message: String, run: String? = nil) async {
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
                var labels = [Self.involvedLabel: involved.name, Self.componentLabel: component]
                if let run { labels[Labels.run] = run }
                let event = Event(project: involved.project, name: name, labels: labels,
                                  spec: EventSpec(involved: involved, type: type, reason: reason, message: message, firstTimestamp: now, lastTimestamp: now))
                _ = try await events.create(event)
                return
            } catch let e as StoreError where e.code == .conflict || e.code == .alreadyExists {
                continue   // another writer of the same event: read it again
            } catch {
                return   // events are best effort: a decision never fails for its event
            }
        }
    }

    /// The events `sweep` removes from one project's: older than the retention, beyond an
    /// object's newest `maxPerObject`, and beyond the project's newest `maxPerProject` (by last
    /// time seen). Pure.
    public static func expired(_ events: [Event], now: Date) -> [Event] {
        let newestFirst = events.sorted { ($0.spec.lastTimestamp, $0.meta.name) > ($1.spec.lastTimestamp, $1.meta.name) }
        var perObject: [ObjectKey: Int] = [:]
        var kept = 0
        var out: [Event] = []
        for e in newestFirst {
            let n = perObject[e.spec.involved, default: 0]
            if kept >= maxPerProject || n >= maxPerObject || now.timeIntervalSince(e.spec.lastTimestamp) > retention {
                out.append(e)
            } else {
                perObject[e.spec.involved] = n + 1
                kept += 1
            }
        }
        return out
    }

    /// Removes expired events of every project; returns how many went.
    @discardableResult
    public func sweep() async -> Int {
        let events = TypedStore<EventKind>(store)
        guard let all = try? await events.list() else { return 0 }
        let now = clock.now()
        var removed = 0
        for (_, inProject) in Dictionary(grouping: all, by: \.meta.project) {
            for e in Self.expired(inProject, now: now) {
                if (try? await events.delete(project: e.meta.project, name: e.meta.name)) != nil { removed += 1 }
            }
        }
        return removed
    }
}
