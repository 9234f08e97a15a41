import SetpointConfiguration
import Foundation
import Model
import Reconcile

/// Builds what each replica group runs from a normalized service configuration.
public enum ReplicaTemplates {
    /// The default graceful-stop bound (dstack's `stop_duration` default, 5 minutes).
    public static let defaultStopDuration = 300

    /// `secrets` are the digests of the project's secrets (name → digest); the template keeps
    /// the `${{ secrets.NAME }}` texts and records the digests of the ones it uses.
    public static func template(_ config: ServiceConfiguration, group: ReplicaGroup, code: CodeArchive? = nil,
                                secrets: [String: String] = [:]) throws -> ReplicaTemplate {
        let (env, unresolved) = config.literalEnvironment
        if !unresolved.isEmpty {
            throw TerminalError(reason: "UnresolvedEnvironment",
                                message: "environment variable(s) \(unresolved.sorted().joined(separator: ", ")) have no value: pass them with `-e NAME=value` or set them where you apply")
        }
        let references = config.secretReferences
        if let (property, problem) = references.problems.first {
            throw TerminalError(reason: "InvalidSecretReference", message: "\(property): \(problem.message)")
        }
        var used: [String: String] = [:]
        var missing: [String] = []
        for (property, name) in references.uses {
            if let digest = secrets[name] { used[name] = digest } else { missing.append("\(property) refers to secret \(name)") }
        }
        if !missing.isEmpty {
            throw TerminalError(reason: "SecretNotFound",
                                message: "\(missing.joined(separator: "; ")), which the project does not have: `setpoint secret set NAME` sets it")
        }
        var probes: [ProbeTemplate] = (config.probes ?? []).map { p in
            ProbeTemplate(url: p.url ?? ProbeSpec.defaultURL, method: p.method ?? "get",
                          headers: Dictionary(p.headers.map { ($0.name, $0.value) }, uniquingKeysWith: { _, b in b }),
                          body: p.body, timeout: p.timeout ?? ProbeSpec.defaultTimeout, interval: p.interval ?? ProbeSpec.defaultInterval,
                          readyAfter: p.readyAfter ?? ProbeSpec.defaultReadyAfter, untilReady: p.untilReady ?? false)
        }
        if config.probes == nil, let model = config.model, model.format == .openai {
            // dstack's default model probe: one token from the chat endpoint.
            let body = #"{"model":"\#(model.name)","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#
            probes = [ProbeTemplate(url: model.prefix + "/chat/completions", method: "post",
                                    headers: ["Content-Type": "application/json"], body: body, timeout: 30)]
        }
        let stop: Int
        switch config.stopDuration {
        case .seconds(let s)?: stop = s
        case .off?: stop = -1
        case nil: stop = defaultStopDuration
        }
        return ReplicaTemplate(
            image: group.image ?? config.image, python: group.python ?? config.python, commands: group.commands,
            entrypoint: config.entrypoint, workingDir: config.workingDir, user: config.user, shell: config.shell,
            privileged: group.privileged ?? (config.privileged || (group.docker ?? config.docker) == true),
            env: env, port: config.port.containerPort, resources: group.resources.jsonText, probes: probes,
            stopDuration: stop, registryUsername: config.registryAuth?.username, registryPassword: config.registryAuth?.password,
            code: code, nvcc: group.nvcc ?? config.nvcc, spotPolicy: group.spotPolicy ?? config.spotPolicy,
            backends: config.backends, regions: config.regions, secrets: used.isEmpty ? nil : used)
    }
}

extension ResourcesSpec {
    /// The normalized JSON text of the resources.
    public var jsonText: String { json.serialized }
}
