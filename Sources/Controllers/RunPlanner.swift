import SetpointConfiguration
import Foundation
import Model

/// What the run controller must do to converge a run: pure, from the run, its replicas and the
/// time, so every rule is tested with a manual clock and no I/O. The rules are in
/// docs/lifecycle.md.
public struct RunPlan: Sendable, Equatable {
    public struct Create: Sendable, Equatable {
        public var name: String
        public var spec: ReplicaSpec
        public var labels: [String: String]
    }

    public struct Note: Sendable, Equatable {
        public var warning: Bool
        public var reason: String
        public var message: String
    }

    public var creates: [Create] = []
    public var terminations: [(name: String, request: TerminationRequest)] = []
    /// Finished replicas superseded by a newer submission of their slot.
    public var deletions: [String] = []
    public var status: RunStatus
    public var events: [Note] = []
    /// When the plan should be made again even if nothing changes (a retry coming due).
    public var requeueAfter: TimeInterval?

    public static func == (a: RunPlan, b: RunPlan) -> Bool {
        a.creates == b.creates && a.deletions == b.deletions && a.status == b.status && a.events == b.events
            && a.requeueAfter == b.requeueAfter
            && a.terminations.map(\.name) == b.terminations.map(\.name)
            && a.terminations.map(\.request) == b.terminations.map(\.request)
    }
}

public enum RunPlanner {
    /// Retry backoff after the n-th failure of a slot (dstack's pending-run backoff).
    ///
    /// | attempt | wait |
    /// |---|---|
    /// | 1 | 15 s |
    /// | 2 | 30 s |
    /// | 3 | 1 min |
    /// | 4 | 2 min |
    /// | 5 | 5 min |
    /// | 6+ | 10 min |
    public static let retryBackoff: [TimeInterval] = [15, 30, 60, 120, 300, 600]

    /// A slot's failure streak (backoff and the retry `duration` window) resets once its replica
    /// has served this long, as Kubernetes resets CrashLoopBackOff.
    public static let healthyResetAfter: TimeInterval = 600

    public static func backoff(attempt: Int) -> TimeInterval {
        retryBackoff[min(max(attempt, 0), retryBackoff.count - 1)]
    }

    public static func plan(run: Run, replicas: [Replica], templates: [String: ReplicaTemplate], now: Date) -> RunPlan {
        let config = run.spec.configuration
        var status = run.status
        var plan = RunPlan(status: status)
        let groups = config.replicaGroups
        let hashes = templates.mapValues(\.hash)

        // A change to a property that cannot be rolled (placement, routing, retry, …) stops
        // every replica first; new ones start once all old ones have finished.
        let digest = SpecChanges.recreateDigest(config)
        if status.recreateDigest.isEmpty {
            status.recreateDigest = digest
        } else if status.recreateDigest != digest {
            status.recreateDigest = digest
            status.recreating = true
            status.deploymentNum += 1
            status.templateHashes = hashes
            status.failedSlots = []
            status.haltedTemplates = [:]
            status.retries = [:]
            plan.events.append(.init(warning: false, reason: "Recreating",
                                     message: "deployment \(status.deploymentNum): a change that cannot be applied in place; stopping all replicas, then starting new ones"))
        }

        // A new template for any group is a new deployment.
        if status.templateHashes != hashes {
            let first = status.templateHashes.isEmpty
            status.deploymentNum += 1
            let changed = groups.map(\.name).filter { status.templateHashes[$0] != nil && status.templateHashes[$0] != hashes[$0] }
            status.templateHashes = hashes
            status.failedSlots = []
            status.haltedTemplates = [:]
            if !first, !changed.isEmpty {
                plan.events.append(.init(warning: false, reason: "RolloutStarted",
                                         message: "deployment \(status.deploymentNum): rolling out new template for group(s) \(changed.joined(separator: ", "))"))
            }
        }

        // The latest submission of each slot; older finished submissions are cleaned up.
        var latest: [String: Replica] = [:]
        for r in replicas {
            if let current = latest[r.slot], current.spec.submissionNum >= r.spec.submissionNum {
                if r.status.phase.isFinished { plan.deletions.append(r.meta.name) }
                else if r.spec.termination == nil {
                    plan.terminations.append((r.meta.name, TerminationRequest(reason: .terminatedByServer, graceful: true)))
                }
                continue
            }
            if let previous = latest[r.slot] {
                if previous.status.phase.isFinished { plan.deletions.append(previous.meta.name) }
                else if previous.spec.termination == nil {
                    plan.terminations.append((previous.meta.name, TerminationRequest(reason: .terminatedByServer, graceful: true)))
                }
            }
            latest[r.slot] = r
        }
        let slots = latest.values.sorted { ($0.spec.group, $0.spec.replicaNum) < ($1.spec.group, $1.spec.replicaNum) }

        // Stop: end every replica, then the run.
        if let stop = run.spec.stop {
            for r in slots where r.status.phase.isActive && r.spec.termination == nil {
                plan.terminations.append((r.meta.name, TerminationRequest(reason: stop.abort ? .abortedByUser : .terminatedByUser, graceful: !stop.abort)))
            }
            let allFinished = slots.allSatisfy { $0.status.phase.isFinished }
            status.phase = allFinished ? .terminated : .terminating
            status.terminationReason = stop.abort ? .abortedByUser : .stoppedByUser
            status.message = allFinished ? "stopped" : "stopping \(slots.filter { $0.status.phase.isActive }.count) replica(s)"
            status.readyReplicas = 0
            status.runningReplicas = slots.filter { $0.status.phase == .running }.count
            status.desiredReplicas = 0
            status.retries = [:]
            status.conditions.set("Ready", false, reason: "Stopped", message: "the run was stopped", now: now)
            status.conditions.set("Progressing", !allFinished, reason: allFinished ? "Stopped" : "Stopping", message: status.message, now: now)
            status.conditions.set("Degraded", false, reason: "Stopped", message: "", now: now)
            if allFinished { status.observedGeneration = run.meta.generation }
            if run.status.phase != status.phase, allFinished {
                plan.events.append(.init(warning: false, reason: "Stopped", message: "all replicas stopped"))
            }
            plan.status = status
            return plan
        }

        // Every replica's command finished with success: the run is done (dstack's all_jobs_done).
        if !slots.isEmpty, slots.contains(where: { $0.status.phase == .done }),
           slots.allSatisfy({ $0.status.phase == .done || ($0.status.phase.isFinished && $0.spec.termination != nil) }) {
            status.phase = .done
            status.terminationReason = .allJobsDone
            status.message = "all replicas finished"
            status.readyReplicas = 0
            status.runningReplicas = 0
            status.conditions.set("Ready", false, reason: "Done", message: "all replicas finished", now: now)
            status.conditions.set("Progressing", false, reason: "Done", message: "", now: now)
            status.conditions.set("Degraded", false, reason: "AsExpected", message: "", now: now)
            status.observedGeneration = run.meta.generation
            if run.status.phase != .done { plan.events.append(.init(warning: false, reason: "RunDone", message: "all replicas finished")) }
            plan.status = status
            return plan
        }

        if status.recreating {
            let previous = slots.filter { $0.spec.deploymentNum < status.deploymentNum }
            for r in previous where r.status.phase.isActive && r.spec.termination == nil {
                plan.terminations.append((r.meta.name, TerminationRequest(reason: .terminatedByServer, graceful: true)))
            }
            if previous.contains(where: { $0.status.phase.isActive }) {
                status.phase = .terminating
                status.message = "recreating: stopping the previous deployment's replicas"
                status.readyReplicas = 0
                status.conditions.set("Ready", false, reason: "Recreating", message: status.message, now: now)
                status.conditions.set("Progressing", true, reason: "Recreating", message: status.message, now: now)
                plan.status = status
                return plan
            }
            status.recreating = false
        }

        let retry = RetryPolicy(config.retry)
        var totalDesired = 0
        var totalLive: [Replica] = []
        var totalReady = 0
        var progressing: [String] = []
        var degraded: [(reason: String, message: String)] = []
        var pendingRetryCount = 0
        var permanentFailures = 0
        var doneSlots = 0
        var nextDue: Date?
        var scaled = false

        // Replicas of groups no longer in the configuration go.
        let groupNames = Set(groups.map(\.name))
        for r in slots where !groupNames.contains(r.spec.group) && r.status.phase.isActive && r.spec.termination == nil {
            plan.terminations.append((r.meta.name, TerminationRequest(reason: .scaledDown, graceful: true)))
        }

        for group in groups {
            guard let template = templates[group.name], let hash = hashes[group.name] else { continue }
            let desired = group.clamp(run.spec.desiredReplicas?[group.name] ?? group.minReplicas)
            totalDesired += desired

            let mine = slots.filter { $0.spec.group == group.name }
            var live: [Replica] = []
            var pendingRetries: [(replica: Replica, due: Date)] = []
            var freeSlots: [Replica] = []
            var newlyFailedCurrent = false
            var failedHere = 0

            for r in mine {
                if r.status.phase.isActive {
                    if r.spec.termination == nil { live.append(r) }
                    continue
                }
                // Finished.
                if r.spec.termination != nil { freeSlots.append(r); status.retries[r.slot] = nil; continue }
                if r.status.phase == .done { doneSlots += 1; freeSlots.append(r); status.retries[r.slot] = nil; continue }
                if r.spec.templateHash != hash { freeSlots.append(r); status.retries[r.slot] = nil; continue }
                if status.failedSlots.contains(r.slot) { permanentFailures += 1; failedHere += 1; continue }
                let reason = r.status.terminationReason ?? .containerExitedWithError
                let finished = r.status.finishedAt ?? now
                var bookkeeping = status.retries[r.slot] ?? SlotRetry(attempts: 0, firstFailureAt: finished, nextAttemptAt: finished)
                // A service is long-running: a replica whose process exited or was killed is
                // replaced, with the backoff, whatever `retry` covers (as a ReplicaSet with
                // CrashLoopBackOff); a `retry` policy still bounds how long (its `duration`).
                let exited = reason == .containerExitedWithError
                let replaced = exited && (!retry.isEnabled || now.timeIntervalSince(bookkeeping.firstFailureAt) <= retry.duration)
                if replaced || retry.allows(reason, firstFailure: bookkeeping.firstFailureAt, now: now) {
                    let due = finished.addingTimeInterval(backoff(attempt: bookkeeping.attempts))
                    if bookkeeping.nextAttemptAt != due {
                        bookkeeping.nextAttemptAt = due
                        let what = exited ? "exited" : "failed"
                        let message = r.status.message.map { ": \($0)" } ?? ""
                        plan.events.append(.init(warning: true, reason: "ReplicaFailed",
                                                 message: "replica \(r.meta.name) \(what) (\(reason.rawValue)\(message)); \(exited ? "replacing it" : "retrying") in \(Int(due.timeIntervalSince(now)))s"))
                    }
                    status.retries[r.slot] = bookkeeping
                    pendingRetries.append((r, due))
                } else {
                    status.retries[r.slot] = nil
                    status.failedSlots.append(r.slot)
                    permanentFailures += 1
                    failedHere += 1
                    newlyFailedCurrent = true
                    let why = retry.isEnabled ? "retry limit exceeded" : "no retry policy covers it"
                    plan.events.append(.init(warning: true, reason: "ReplicaFailed",
                                             message: "replica \(r.meta.name) failed (\(reason.rawValue)); \(why)"))
                }
            }

            let outdated = live.filter { $0.spec.templateHash != hash }
            let current = live.filter { $0.spec.templateHash == hash }
            func isServing(_ r: Replica) -> Bool { r.status.phase == .running && r.status.ready }

            var creates = 0
            if !outdated.isEmpty {
                // Rolling deployment, surge 1: an old replica leaves only when a new one serves.
                if newlyFailedCurrent, status.haltedTemplates[group.name] != hash {
                    status.haltedTemplates[group.name] = hash
                    plan.events.append(.init(warning: true, reason: "RolloutHalted",
                                             message: "group \(group.name): new replicas fail; keeping \(outdated.count) replica(s) of the previous deployment serving"))
                }
                if status.haltedTemplates[group.name] == hash {
                    degraded.append(("RolloutHalted", "group \(group.name): the rollout of deployment \(status.deploymentNum) is halted because its replicas fail; the previous deployment keeps serving"))
                } else {
                    progressing.append("RollingUpdate")
                    creates = Swift.max(0, Swift.min(desired - current.count - pendingRetries.count - failedHere,
                                                     desired + 1 - live.count - pendingRetries.count - failedHere))
                    let servingCurrent = current.filter(isServing).count
                    let servingOutdated = outdated.filter(isServing)
                    for r in outdated where !isServing(r) {
                        plan.terminations.append((r.meta.name, TerminationRequest(reason: .scaledDown, graceful: true)))
                    }
                    let excess = servingCurrent + servingOutdated.count - desired
                    if excess > 0 {
                        for r in servingOutdated.sorted(by: { $0.spec.replicaNum > $1.spec.replicaNum }).prefix(excess) {
                            plan.terminations.append((r.meta.name, TerminationRequest(reason: .scaledDown, graceful: true)))
                            plan.events.append(.init(warning: false, reason: "RolloutStep", message: "replaced replica \(r.meta.name) of deployment \(r.spec.deploymentNum)"))
                        }
                    }
                }
            } else {
                // A slot that failed with no retry left keeps its place: it is not replaced until
                // the spec changes, so a failing replica cannot be recreated in a hot loop.
                let count = live.count + pendingRetries.count + failedHere
                if count < desired {
                    creates = desired - count
                } else if count > desired {
                    // Scale down: pending retries first, then the least advanced, then the highest number.
                    var surplus = count - desired
                    for p in pendingRetries.sorted(by: { $0.replica.spec.replicaNum > $1.replica.spec.replicaNum }) where surplus > 0 {
                        status.retries[p.replica.slot] = nil
                        pendingRetries.removeAll { $0.replica.slot == p.replica.slot }
                        surplus -= 1
                    }
                    let victims = live.sorted { a, b in
                        (importance(a), -a.spec.replicaNum) < (importance(b), -b.spec.replicaNum)
                    }.prefix(surplus)
                    for r in victims {
                        plan.terminations.append((r.meta.name, TerminationRequest(reason: .scaledDown, graceful: true)))
                    }
                    if !victims.isEmpty {
                        scaled = true
                        plan.events.append(.init(warning: false, reason: "ScaledDown",
                                                 message: "group \(group.name): \(live.count) → \(desired) replica(s)"))
                    }
                }
            }

            // Resubmit the slots whose retry is due.
            for p in pendingRetries {
                if p.due <= now {
                    var bookkeeping = status.retries[p.replica.slot]!
                    bookkeeping.attempts += 1
                    status.retries[p.replica.slot] = bookkeeping
                    plan.creates.append(makeCreate(run: run, group: group.name, replicaNum: p.replica.spec.replicaNum,
                                                   submission: p.replica.spec.submissionNum + 1, deployment: status.deploymentNum,
                                                   template: template))
                    plan.events.append(.init(warning: false, reason: "ReplicaRetried",
                                             message: "resubmitted replica \(p.replica.spec.replicaNum) of group \(group.name) (attempt \(bookkeeping.attempts + 1))"))
                } else {
                    pendingRetryCount += 1
                    nextDue = nextDue.map { Swift.min($0, p.due) } ?? p.due
                }
            }
            if !pendingRetries.isEmpty { progressing.append("Retrying") }

            // New replicas: reuse free slot numbers first, then numbers after the highest.
            if creates > 0 {
                var numbers = freeSlots.map(\.spec.replicaNum).sorted()
                var next = (mine.map(\.spec.replicaNum).max() ?? -1) + 1
                for _ in 0..<creates {
                    let number: Int
                    var submission = 0
                    if !numbers.isEmpty {
                        number = numbers.removeFirst()
                        submission = (mine.first { $0.spec.replicaNum == number }?.spec.submissionNum ?? -1) + 1
                    } else {
                        number = next
                        next += 1
                    }
                    plan.creates.append(makeCreate(run: run, group: group.name, replicaNum: number, submission: submission,
                                                   deployment: status.deploymentNum, template: template))
                }
                if outdated.isEmpty {
                    scaled = true
                    plan.events.append(.init(warning: false, reason: "ScaledUp",
                                             message: "group \(group.name): \(live.count + pendingRetries.count) → \(desired) replica(s)"))
                }
            }
            if outdated.isEmpty, creates > 0 || live.contains(where: { !isServing($0) }) {
                progressing.append("Scaling")
            }

            if status.failedSlots.contains(where: { $0.hasPrefix(group.name + "/") }) {
                degraded.append(("ReplicaFailed", "group \(group.name): \(status.failedSlots.filter { $0.hasPrefix(group.name + "/") }.count) replica(s) failed with no retry left"))
            }
            totalLive += live
            totalReady += current.filter(isServing).count + outdated.filter(isServing).count
            // A slot whose replica has served long enough starts a fresh failure streak.
            for r in current where isServing(r) {
                if let started = r.status.startedAt, now.timeIntervalSince(started) >= healthyResetAfter {
                    status.retries[r.slot] = nil
                }
            }
        }

        // Status.
        let running = totalLive.filter { $0.status.phase == .running }.count
        status.desiredReplicas = totalDesired
        status.readyReplicas = totalReady
        status.runningReplicas = running
        if scaled { status.lastScaledAt = now }
        let anyServing = totalReady > 0
        let creating = !plan.creates.isEmpty
        if running > 0 {
            status.phase = .running
        } else if totalLive.contains(where: { $0.status.phase == .provisioning || $0.status.phase == .pulling }) {
            status.phase = .provisioning
        } else if !totalLive.isEmpty || creating {
            status.phase = .submitted
        } else if totalDesired == 0 {
            status.phase = .pending
        } else if pendingRetryCount > 0 {
            status.phase = .pending
        } else if permanentFailures > 0 {
            status.phase = .failed
            status.terminationReason = retry.isEnabled ? .retryLimitExceeded : .jobFailed
        } else if doneSlots > 0 {
            status.phase = .done
            status.terminationReason = .allJobsDone
        } else {
            status.phase = .submitted
        }
        if status.phase != .failed && status.phase != .done { status.terminationReason = nil }

        switch status.phase {
        case .pending where totalDesired == 0: status.message = "waiting for requests"
        case .pending: status.message = "retrying"
        case .failed: status.message = "no replica can serve and retry is exhausted"
        default:
            status.message = "\(totalReady)/\(totalDesired) replicas ready"
            // Why the rest wait (a backend's word: the scheduler's message, an image pull).
            if totalReady < totalDesired, let waiting = totalLive.first(where: {
                ($0.status.phase == .provisioning || $0.status.phase == .pulling) && !($0.status.message ?? "").isEmpty
            })?.status.message {
                status.message += "; \(waiting)"
            }
        }

        let ready = totalDesired == 0 || (totalReady >= totalDesired && progressing.isEmpty)
        status.conditions.set("Ready", ready,
                              reason: totalDesired == 0 ? "ScaledToZero" : (ready ? "ReplicasReady" : (anyServing ? "PartiallyReady" : "ReplicasNotReady")),
                              message: "\(totalReady)/\(totalDesired) replicas ready", now: now)
        let progressingReason = progressing.first ?? "Converged"
        status.conditions.set("Progressing", !progressing.isEmpty, reason: progressingReason,
                              message: progressing.isEmpty ? "" : Array(Set(progressing)).sorted().joined(separator: ", "), now: now)
        status.conditions.set("Degraded", !degraded.isEmpty, reason: degraded.first?.reason ?? "AsExpected",
                              message: degraded.map(\.message).joined(separator: "; "), now: now)
        if ready && progressing.isEmpty && status.phase != .failed {
            status.observedGeneration = run.meta.generation
        }
        if status.phase == .failed && run.status.phase != .failed {
            plan.events.append(.init(warning: true, reason: "RunFailed", message: status.message))
        }
        if let nextDue { plan.requeueAfter = Swift.max(0, nextDue.timeIntervalSince(now)) }
        plan.status = status
        return plan
    }

    /// dstack's scale-down importance: submitted 0, provisioning 1, running but not serving 2,
    /// serving 3.
    static func importance(_ r: Replica) -> Int {
        switch r.status.phase {
        case .submitted: return 0
        case .provisioning, .pulling: return 1
        case .running: return r.status.ready ? 3 : 2
        default: return 0
        }
    }

    static func makeCreate(run: Run, group: String, replicaNum: Int, submission: Int, deployment: Int, template: ReplicaTemplate) -> RunPlan.Create {
        let name = Replica.name(run: run.meta.name, group: group, replicaNum: replicaNum, submissionNum: submission)
        let spec = ReplicaSpec(run: run.meta.name, group: group, replicaNum: replicaNum, submissionNum: submission,
                               deploymentNum: deployment, template: template)
        let labels = [
            Labels.run: run.meta.name, Labels.group: group, Labels.replica: String(replicaNum),
            Labels.submission: String(submission), Labels.deployment: String(deployment), Labels.project: run.meta.project,
        ]
        return RunPlan.Create(name: name, spec: spec, labels: labels)
    }
}

/// dstack's `retry`: which failures are resubmitted, and for how long.
public struct RetryPolicy: Sendable {
    public var events: Set<RetryEvent>
    public var duration: TimeInterval

    public init(_ spec: RetrySpec?) {
        switch spec {
        case .enabled(true)?:
            events = [.noCapacity, .interruption, .error]
            duration = TimeInterval(RetrySpec.defaultDuration)
        case .policy(let onEvents, let d)?:
            events = Set((onEvents ?? RetrySpec.events).compactMap(RetryEvent.init(rawValue:)))
            duration = TimeInterval(d ?? RetrySpec.defaultDuration)
        default:
            events = []
            duration = 0
        }
    }

    public var isEnabled: Bool { !events.isEmpty }

    public func allows(_ reason: TerminationReason, firstFailure: Date, now: Date) -> Bool {
        guard let event = reason.retryEvent, events.contains(event) else { return false }
        return now.timeIntervalSince(firstFailure) <= duration
    }
}
