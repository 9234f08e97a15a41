import Controllers
import Foundation
import Model
import Store

/// The source controller's way to apply a revision: the set service, with the source's name
/// as the set (and as the objects' manager), prune as the source says, and bare `env` names
/// taken from project secrets (a repository has no user environment).
public struct SourceSets: SetApplier {
    let sets: SetService
    var store: any ObjectStore { sets.runs.store }

    public init(sets: SetService) { self.sets = sets }

    func request(_ checkout: SourceCheckout) -> API.SetRequest {
        API.SetRequest(documents: checkout.documents.map { API.SetDocument(file: $0.file, configuration: $0.text, code: checkout.codeHash) })
    }

    func options(_ source: Source, prune: Bool, archive: CodeArchive?) -> SetService.Options {
        SetService.Options(set: source.meta.name, prune: prune, source: source.meta.name, bareEnvFromSecrets: true,
                           archives: archive.map { [$0.hash: $0] } ?? [:])
    }

    static func user(_ source: Source) -> String { "source/\(source.meta.name)" }

    static func invalid(_ failure: RunService.Failure) -> SetInvalid {
        let issues = failure.body.issues ?? []
        guard let first = issues.first else { return SetInvalid(message: failure.body.message, issues: []) }
        return SetInvalid(message: first.located + (issues.count > 1 ? " (and \(issues.count - 1) more)" : ""), issues: issues)
    }

    public func plan(_ source: Source, _ checkout: SourceCheckout) async throws -> API.SetPlan {
        let archive = checkout.codeHash.map { CodeArchive(hash: $0, path: "", size: checkout.code?.count ?? 0) }
        do {
            // Prune is planned always, so objects that left the repository show even with it off.
            return try await sets.plan(project: source.meta.project, user: Self.user(source), request(checkout),
                                       options: options(source, prune: true, archive: archive))
        } catch let f as RunService.Failure where f.status == 400 || f.status == 409 {
            throw Self.invalid(f)
        }
    }

    public func apply(_ source: Source, _ checkout: SourceCheckout) async throws -> API.SetResult {
        let archive = try checkout.code.map { try sets.runs.storeCode($0) }
        do {
            return try await sets.apply(project: source.meta.project, user: Self.user(source), request(checkout),
                                        options: options(source, prune: source.spec.prune, archive: archive))
        } catch let f as RunService.Failure where f.status == 400 {
            throw Self.invalid(f)
        }
    }

    public func members(_ source: Source) async throws -> [SourceMember] {
        let labels = [Labels.source: source.meta.name]
        var result: [SourceMember] = []
        for g in try await TypedStore<GatewayKind>(store).list(project: source.meta.project, labels: labels) {
            let (health, message) = SourceMember.health(of: g)
            result.append(SourceMember(kind: GatewayKind.name, name: g.meta.name, deleting: g.meta.isDeleting, health: health, message: message))
        }
        for r in try await TypedStore<RunKind>(store).list(project: source.meta.project, labels: labels) {
            let (health, message) = SourceMember.health(of: r)
            result.append(SourceMember(kind: RunKind.name, name: r.meta.name, deleting: r.meta.isDeleting, health: health, message: message))
        }
        return result
    }

    public func release(_ source: Source, _ member: SourceMember, delete: Bool) async throws {
        let project = source.meta.project
        if delete {
            if member.kind == RunKind.name { _ = try? await sets.runs.delete(project: project, name: member.name) }
            else { _ = try? await sets.gateways?.delete(project: project, name: member.name) }
            return
        }
        // Let go: the object stays, applied by hand from now on (no set, no source).
        for _ in 0..<5 {
            do {
                if member.kind == RunKind.name {
                    guard var run = try await TypedStore<RunKind>(store).get(project: project, name: member.name) else { return }
                    run.meta.labels[Labels.source] = nil
                    run.meta.labels[Labels.set] = nil
                    try await TypedStore<RunKind>(store).update(run)
                } else {
                    guard var g = try await TypedStore<GatewayKind>(store).get(project: project, name: member.name) else { return }
                    g.meta.labels[Labels.source] = nil
                    g.meta.labels[Labels.set] = nil
                    try await TypedStore<GatewayKind>(store).update(g)
                }
                return
            } catch let e as StoreError where e.code == .conflict {
                continue
            }
        }
    }
}
