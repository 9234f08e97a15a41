/// A validated `type: gateway` configuration (dstack's `GatewayConfiguration`).
public struct GatewayConfiguration: Sendable, Equatable {
    public enum Certificate: Sendable, Equatable {
        case letsEncrypt
        case acm(arn: String)
        case gcpCertificateManager(name: String)

        var json: JSONValue {
            switch self {
            case .letsEncrypt: return .object([("type", .string("lets-encrypt"))])
            case .acm(let arn): return .object([("type", .string("acm")), ("arn", .string(arn))])
            case .gcpCertificateManager(let name): return .object([("type", .string("gcp-cm")), ("name", .string(name))])
            }
        }
    }

    /// dstack's list plus `local` (gateway processes on the server's machine): a deliberate
    /// difference, documented in docs/gateways.md.
    public static let backendsWithGateways = ["aws", "azure", "gcp", "kubernetes", "local"]
    public static let backendsWithPrivateGateways = ["aws", "gcp"]
    public static let maxReplicas = 9

    public var name: String?
    public var isDefault: Bool?
    public var backend: String
    public var region: String
    public var instanceType: String?
    public var domain: String?
    public var publicIP: Bool = true
    /// `load_balancer.type` (only `alb`).
    public var loadBalancer: String?
    /// `nil` when `certificate: null` (no HTTPS).
    public var certificate: Certificate? = .letsEncrypt
    public var replicas: Int?
    public var tags: [(String, String)]?

    public static func == (lhs: GatewayConfiguration, rhs: GatewayConfiguration) -> Bool { lhs.json == rhs.json }

    public var json: JSONValue {
        .object([
            ("type", .string("gateway")), ("name", .str(name)), ("default", .flag(isDefault)),
            ("backend", .string(backend)), ("region", .string(region)), ("instance_type", .str(instanceType)),
            ("domain", .str(domain)), ("public_ip", .bool(publicIP)),
            ("load_balancer", .opt(loadBalancer) { .object([("type", .string($0))]) }),
            ("certificate", .opt(certificate) { $0.json }), ("replicas", .num(replicas)),
            ("tags", .opt(tags) { .object($0.map { ($0.0, JSONValue.string($0.1)) }) }),
        ])
    }

    /// The wildcard domain with `${{ run.project_name }}` filled in (nil when unset).
    public func resolvedDomain(project: String) -> String? {
        guard var d = domain else { return nil }
        for form in ["${{ run.project_name }}", "${{run.project_name}}", "${{ run.project_name}}", "${{run.project_name }}"] {
            d = d.replacingOccurrences(of: form, with: project)
        }
        if d.hasPrefix("*.") { d.removeFirst(2) }
        return d.lowercased()
    }

    public static let propertyNames = ["type", "name", "default", "backend", "region", "instance_type", "domain",
                                       "public_ip", "load_balancer", "certificate", "replicas", "tags"]
}

extension Reader {
    func gateway(_ node: YAMLNode, _ root: FieldPath) -> GatewayConfiguration? {
        guard let obj = object(node, root, keys: GatewayConfiguration.propertyNames) else { return nil }
        let name = obj.optional("name", string)
        let isDefault = obj.optional("default", bool)
        // `local` too: Setpoint runs gateway processes on its own machine (docs/gateways.md).
        let backend = obj.required("backend", what: "a backend name") { v, p in self.oneOf(v, p, ProfileProperties.backendTypes + ["local"]) }
        let region = obj.required("region", what: "a region (for kubernetes: the kubeconfig context)", string)
        let instanceType = obj.optional("instance_type") { v, p -> String? in
            guard let s = self.string(v, p) else { return nil }
            if s.isEmpty { self.fail(p, v, "instance_type cannot be empty"); return nil }
            return s
        }
        let domain = obj.optional("domain", string)
        let publicIP = obj.nonNull("public_ip", what: "a boolean", default: true, bool)
        let loadBalancer = obj.optional("load_balancer") { v, p -> String? in
            guard case .map = v.value, let t = v["type"] else { self.fail(p, v, "a load balancer needs `type: alb`"); return nil }
            guard self.oneOf(t, p.appending("type"), ["alb"]) != nil, let o = self.object(v, p, keys: ["type"]) else { return nil }
            return o.isValid ? "alb" : nil
        }
        var certificate: GatewayConfiguration.Certificate?? = .some(.letsEncrypt)
        if let v = obj["certificate"] {
            if v.isNull { certificate = .some(nil) } else { certificate = gatewayCertificate(v, obj.at("certificate")).map { .some($0) } }
        }
        let replicas = obj.optional("replicas") { v, p -> Int? in
            guard let i = self.int(v, p) else { return nil }
            if i < 1 { self.fail(p, v, "replicas must be at least 1, got \(i)"); return nil }
            return i
        }
        let tags = obj.optional("tags", tags)
        guard obj.isValid, let backend, let region, let publicIP, let certificate else { return nil }
        let config = GatewayConfiguration(name: name, isDefault: isDefault, backend: backend, region: region,
                                          instanceType: instanceType, domain: domain, publicIP: publicIP,
                                          loadBalancer: loadBalancer, certificate: certificate, replicas: replicas, tags: tags)
        checkGatewayRules(config, obj)
        return obj.isValid ? config : nil
    }

    private func gatewayCertificate(_ node: YAMLNode, _ path: FieldPath) -> GatewayConfiguration.Certificate? {
        guard case .map = node.value, let t = node["type"] else {
            fail(path, node, "a certificate needs `type`: `lets-encrypt`, `acm` or `gcp-cm` (or `certificate: null` for no HTTPS)")
            return nil
        }
        guard let type = oneOf(t, path.appending("type"), ["lets-encrypt", "acm", "gcp-cm"]) else { return nil }
        switch type {
        case "acm":
            guard let o = object(node, path, keys: ["type", "arn"]) else { return nil }
            return o.required("arn", what: "the ARN of the ACM certificate", string).map { .acm(arn: $0) }
        case "gcp-cm":
            guard let o = object(node, path, keys: ["type", "name"]) else { return nil }
            return o.required("name", what: "the Certificate Manager certificate resource name", string).map { .gcpCertificateManager(name: $0) }
        default:
            guard let o = object(node, path, keys: ["type"]) else { return nil }
            return o.isValid ? .letsEncrypt : nil
        }
    }

    /// dstack's server-side gateway checks that need no server state.
    private func checkGatewayRules(_ c: GatewayConfiguration, _ obj: ObjectReader) {
        if !GatewayConfiguration.backendsWithGateways.contains(c.backend) {
            obj.fail("gateways are not supported for the `\(c.backend)` backend: use one of \(GatewayConfiguration.backendsWithGateways.map { "`\($0)`" }.joined(separator: ", "))", at: "backend")
        }
        if let name = c.name, !Reader.isResourceName(name) {
            obj.fail("invalid gateway name `\(name)`: it must match `^[a-z][a-z0-9-]{1,40}$` (lowercase letters, digits and `-`, starting with a letter, 2 to 41 characters)", at: "name")
        }
        if let domain = c.domain, let problem = Reader.interpolationProblem(domain, allowed: ["run.project_name"]) {
            obj.fail("invalid domain `\(domain)`: \(problem)", at: "domain")
        }
        if !c.publicIP, !GatewayConfiguration.backendsWithPrivateGateways.contains(c.backend), c.backend != "local" {
            obj.fail("private gateways (`public_ip: false`) are not supported for the `\(c.backend)` backend: only for `aws` and `gcp`", at: "public_ip")
        }
        let replicas = c.replicas ?? 1
        if replicas > GatewayConfiguration.maxReplicas {
            obj.fail("cannot provision \(replicas) gateway replicas: at most \(GatewayConfiguration.maxReplicas) are allowed", at: "replicas")
        }
        if c.loadBalancer == "alb" {
            switch c.backend {
            case "aws":
                if let cert = c.certificate, case .acm = cert {} else if c.certificate != nil {
                    obj.fail("`load_balancer: { type: alb }` can only be used with `certificate: null` or `certificate: { type: acm }`", at: "load_balancer")
                }
            case "gcp":
                if let cert = c.certificate, case .gcpCertificateManager = cert {} else if c.certificate != nil {
                    obj.fail("`load_balancer: { type: alb }` for the `gcp` backend can only be used with `certificate: null` or `certificate: { type: gcp-cm }`", at: "load_balancer")
                }
            default:
                obj.fail("`load_balancer: { type: alb }` is supported for the `aws` and `gcp` backends only", at: "load_balancer")
            }
        }
        switch c.certificate {
        case .letsEncrypt?:
            if !c.publicIP { obj.fail("the `lets-encrypt` certificate type is not supported for private gateways", at: "certificate") }
            if replicas > 1 {
                obj.fail("the `lets-encrypt` certificate type is not supported for gateways with more than 1 replica: set `certificate: null` (no HTTPS) or a provider certificate", at: "certificate")
            }
        case .acm?:
            if c.backend != "aws" { obj.fail("the `acm` certificate type is supported for the `aws` backend only", at: "certificate") }
        case .gcpCertificateManager?:
            if c.backend != "gcp" { obj.fail("the `gcp-cm` certificate type is supported for the `gcp` backend only", at: "certificate") }
            else if c.loadBalancer != "alb" { obj.fail("`certificate: { type: gcp-cm }` requires `load_balancer: { type: alb }`", at: "certificate") }
        case nil:
            break
        }
    }

    static func isResourceName(_ s: String) -> Bool { ResourceName.isValid(s) }

    /// Checks `${{ name }}` references in text: only the `allowed` names may appear.
    static func interpolationProblem(_ text: String, allowed: [String]) -> String? {
        let found = interpolations(in: text)
        for name in found.expressions where !allowed.contains(name) {
            return "unknown variable `\(name)` (allowed: \(allowed.map { "`${{ \($0) }}`" }.joined(separator: ", ")))"
        }
        return found.unclosed ? "unclosed `${{`" : nil
    }
}

import Foundation

/// dstack's names for runs, gateways, users and projects: `^[a-z][a-z0-9-]{1,40}$`.
public enum ResourceName {
    public static func isValid(_ s: String) -> Bool {
        Reader.matches(s, first: { $0.isLowercase }, rest: { $0.isLowercaseAlnum || $0 == "-" }, min: 2, max: 41)
    }
}
