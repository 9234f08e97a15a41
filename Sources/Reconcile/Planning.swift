import Foundation
import Logging
import Model
import Store

/// What one reconcile decided, from the object, what was observed and the time: the whole
/// output of a controller's pure `plan`, carried out by `PlanReconciler`.
///
/// | part | carried out as |
/// |---|---|
/// | `actions` | performed in order; the first that throws ends the reconcile (retried with backoff) |
/// | `status` | written once, after the actions, and only when it differs from the stored one |
/// | `events` | recorded after the status (correlated: a repeat raises a count) |
/// | `requeueAfter` | look again after this long even if nothing changes (a deadline the plan knows) |
public struct Plan<Status: Equatable & Sendable, Action: Sendable>: Sendable {
    public var status: Status
    public var actions: [Action]
    public var events: [EventNote]
    public var requeueAfter: TimeInterval?
    /// The object cannot make progress until its input changes, yet it is looked at again (a
    /// source whose newest commit is invalid waits for the next commit): the shell marks it
    /// `Stalled` with this reason and message (and not `Ready`) instead of resolving it.
    public var stall: (reason: String, message: String)?

    public init(status: Status, actions: [Action] = [], events: [EventNote] = [], requeueAfter: TimeInterval? = nil) {
        self.status = status
        self.actions = actions
        self.events = events
        self.requeueAfter = requeueAfter
    }

    /// Looks again after `delay`, or sooner if another part of the plan asked for sooner.
    public mutating func requeue(after delay: TimeInterval) {
        requeueAfter = requeueAfter.map { Swift.min($0, delay) } ?? Swift.max(0, delay)
    }
}

/// An event a plan records about its object.
public struct EventNote: Sendable, Equatable {
    public var warning: Bool
    public var reason: String
    public var message: String

    public init(warning: Bool, reason: String, message: String) {
        self.warning = warning
        self.reason = reason
        self.message = message
    }

    public static func normal(_ reason: String, _ message: String) -> EventNote { EventNote(warning: false, reason: reason, message: message) }
    public static func warning(_ reason: String, _ message: String) -> EventNote { EventNote(warning: true, reason: reason, message: message) }
}

/// An action the store or a backend refused in a way the user must hear about, not a hiccup
/// to retry at once (a name already taken by an object that is not ours). The shell writes the
/// stored status with the refusal noted (`Ready` false, the reason), records a warning, and
/// retries with backoff.
public struct ActionRefused: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var message: String

    public init(reason: String, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason): \(message)" }
}

/// An action that failed in a way its planner folded into the plan (the status says why): the
/// shell writes the plan's status as amended, records its events, and retries the key with
/// backoff. The fold must give the same status on the next failure, so nothing wakes the key
/// before its backoff.
public struct RetryLater: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// One controller in the one shape: it loads its object, observes what it depends on (caches,
/// the backend, the probing service), plans purely, and performs the plan's actions. Only
/// `plan` decides; `observe` and `perform` do I/O and nothing else. Written by copying
/// `RunController` (docs/architecture.md walks through it).
public protocol PlanningController: Sendable {
    associatedtype Kind: ObjectKind where Kind.Status: ConditionedStatus
    associatedtype Observed: Sendable
    associatedtype Action: Sendable

    /// The object the key names, or nil when it is gone (nothing to do).
    func load(_ key: ObjectKey) async throws -> Object<Kind>?
    /// What the plan depends on besides the object.
    func observe(_ object: Object<Kind>) async throws -> Observed
    /// Pure. A thrown `TerminalError` means the spec cannot work as it is: the object is marked
    /// `Stalled` (and not `Ready`) and not retried until it changes.
    func plan(_ object: Object<Kind>, _ observed: Observed, now: Date) throws -> Plan<Kind.Status, Action>
    /// Carries out one action; `object` is updated when the action rewrote it (a finalizer).
    /// An action whose outcome the status records (the backend's workload ID, or its refusal)
    /// hands the outcome to the planner's pure fold, which amends `plan`. Throws
    /// `ActionRefused` for a refusal the status must show; anything else is retried.
    func perform(_ action: Action, on object: inout Object<Kind>, plan: inout Plan<Kind.Status, Action>, now: Date) async throws
    /// Writes the status (the store's status subresource).
    func writeStatus(_ object: Object<Kind>) async throws
}

/// The one shell every `PlanningController` runs in: what controller-runtime's
/// `reconcileHandler` and Flux's `finalizeStatus` do, once.
public struct PlanReconciler<C: PlanningController>: Reconciler {
    public typealias Key = ObjectKey

    public let controller: C
    let clock: any ControllerClock
    let events: EventRecorder
    let logger: Logger

    public init(_ controller: C, store: any ObjectStore, clock: any ControllerClock, component: String,
                logger: Logger = Logger(label: "setpoint.controller")) {
        self.controller = controller
        self.clock = clock
        self.events = EventRecorder(store: store, clock: clock, component: component)
        self.logger = logger
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard var object = try await controller.load(key) else { return .done }
        let observed = try await controller.observe(object)
        let now = clock.now()
        var plan: Plan<C.Kind.Status, C.Action>
        do {
            plan = try controller.plan(object, observed, now: now)
        } catch let terminal as TerminalError {
            await stall(object, terminal, now: now)
            throw terminal
        }
        // A plan that could be made resolves an earlier `Stalled`, unless it says it stalls.
        if let stall = plan.stall {
            plan.status.conditions.set("Stalled", true, reason: stall.reason, message: stall.message, now: now)
            plan.status.conditions.set("Ready", false, reason: stall.reason, message: stall.message, now: now)
        } else if plan.status.conditions["Stalled"]?.status == "True" {
            plan.status.conditions.set("Stalled", false, reason: "Resolved", message: "", now: now)
        }
        var refusal: Error?
        for action in plan.actions {
            do {
                try await controller.perform(action, on: &object, plan: &plan, now: now)
            } catch let refused as ActionRefused {
                // Nothing else of the plan is done: the stored status says why instead, and the
                // key is retried with backoff (the status is the same the next time, so no write
                // wakes it sooner: no hot loop).
                plan.status = object.status
                plan.status.noteRefusal(reason: refused.reason, message: refused.message, now: now)
                plan.events = [.warning(refused.reason, refused.message)]
                refusal = refused
                break
            } catch let later as RetryLater {
                refusal = later
                break
            }
        }
        // An action's outcome can stall the object too (a source's apply that found its revision
        // invalid): said after the actions.
        if let stall = plan.stall {
            plan.status.conditions.set("Stalled", true, reason: stall.reason, message: stall.message, now: now)
            plan.status.conditions.set("Ready", false, reason: stall.reason, message: stall.message, now: now)
        }
        if plan.status.conditions["Ready"]?.status == "True" { plan.status.observedGeneration = object.meta.generation }
        if plan.status != object.status {
            object.status = plan.status
            do {
                try await controller.writeStatus(object)
            } catch let e as StoreError where e.code == .notFound {
                return .done   // deleted meanwhile
            }
        }
        for note in plan.events {
            await events.record(key, warning: note.warning, reason: note.reason, message: note.message, run: Self.run(of: object))
        }
        if let refusal { throw refusal }
        return plan.requeueAfter.map { .requeue(after: $0) } ?? .done
    }

    /// `Stalled` and not `Ready`, with the generation it is about: one status write.
    func stall(_ object: Object<C.Kind>, _ error: TerminalError, now: Date) async {
        var object = object
        let before = object.status
        object.status.conditions.set("Stalled", true, reason: error.reason, message: error.message, now: now)
        object.status.conditions.set("Ready", false, reason: error.reason, message: error.message, now: now)
        object.status.observedGeneration = object.meta.generation
        guard object.status != before else { return }   // said already: no write, no event
        do {
            try await controller.writeStatus(object)
        } catch {
            logger.warning("could not mark the object stalled", metadata: ["key": "\(object.key)", "error": "\(error)",
                                                                          "reconcile": "\(ReconcileContext.id ?? 0)"])
        }
        await events.record(object.key, warning: true, reason: error.reason, message: error.message, run: Self.run(of: object))
    }

    /// The run an object's events are about: a run itself, or the run its label names.
    static func run(of object: Object<C.Kind>) -> String? {
        C.Kind.name == RunKind.name ? object.meta.name : object.meta.labels[Labels.run]
    }
}

/// Which reconcile a log line is about: set by `Controller` for the length of one reconcile.
public enum ReconcileContext {
    @TaskLocal public static var id: UInt64?
}

extension PlanningController {
    /// Reads the object from the store: the default `load`.
    public func load(from store: any ObjectStore, _ key: ObjectKey) async throws -> Object<Kind>? {
        try await TypedStore<Kind>(store).get(project: key.project, name: key.name)
    }
}
