import Foundation
import Yams

/// How to reach one cluster: its API server, the namespace to use and the credentials, resolved
/// from a kubeconfig context or from the in-cluster service account.
public struct ClusterConnection: Sendable, Equatable {
    public enum Credentials: Sendable, Equatable {
        case none
        case token(String)
        /// Read again on every refresh (projected service-account tokens rotate).
        case tokenFile(String)
        case clientCertificate(certificatePEM: [UInt8], keyPEM: [UInt8])
        case exec(ExecConfig)
    }

    public var server: URL
    /// The context name: the Setpoint region of this cluster (`in-cluster` inside a cluster).
    public var context: String
    public var namespace: String
    public var certificateAuthorityPEM: [UInt8]?
    public var insecureSkipTLSVerify: Bool
    public var tlsServerName: String?
    public var credentials: Credentials
    /// True for the service-account configuration inside a Pod.
    public var inCluster: Bool

    public init(server: URL, context: String, namespace: String = "default", certificateAuthorityPEM: [UInt8]? = nil,
                insecureSkipTLSVerify: Bool = false, tlsServerName: String? = nil, credentials: Credentials = .none, inCluster: Bool = false) {
        self.server = server
        self.context = context
        self.namespace = namespace
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.tlsServerName = tlsServerName
        self.credentials = credentials
        self.inCluster = inCluster
    }
}

/// `users[].user.exec`: a credential plugin (client.authentication.k8s.io) run to get a token.
public struct ExecConfig: Sendable, Equatable {
    public var command: String
    public var args: [String]
    public var env: [String: String]
    public var apiVersion: String
    /// Where relative commands are looked up (the kubeconfig's directory).
    public var baseDirectory: String
}

public struct KubeConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A kubeconfig, loaded and merged the way kubectl does: `KUBECONFIG` (a `:`-separated list,
/// the first file to set a name or `current-context` wins) or `~/.kube/config`.
public struct KubeConfig: Sendable {
    struct Cluster: Sendable {
        var server: String
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool
        var tlsServerName: String?
        var directory: String
    }

    struct User: Sendable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        var exec: ExecConfig?
        var directory: String
    }

    struct Context: Sendable {
        var cluster: String
        var user: String?
        var namespace: String?
    }

    var clusters: [String: Cluster] = [:]
    var users: [String: User] = [:]
    var contexts: [String: Context] = [:]
    public private(set) var currentContext: String?
    /// The files it was read from, for messages.
    public private(set) var files: [String] = []

    public var contextNames: [String] { contexts.keys.sorted() }

    /// The default search: `KUBECONFIG`, else `~/.kube/config`.
    public static func defaultPaths(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if let list = environment["KUBECONFIG"], !list.isEmpty {
            return list.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return [home + "/.kube/config"]
    }

    public static func load(paths: [String]) throws -> KubeConfig {
        var config = KubeConfig()
        var found = false
        for path in paths {
            guard FileManager.default.fileExists(atPath: path) else { continue }
            found = true
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw KubeConfigError("\(path): cannot read the kubeconfig: \(error.localizedDescription)")
            }
            try config.merge(text: text, file: path)
        }
        if !found { throw KubeConfigError("no kubeconfig found at \(paths.joined(separator: ", "))") }
        return config
    }

    public static func parse(_ text: String, file: String = "kubeconfig") throws -> KubeConfig {
        var config = KubeConfig()
        try config.merge(text: text, file: file)
        return config
    }

    mutating func merge(text: String, file: String) throws {
        let root: [String: Any]
        do {
            guard let loaded = try Yams.load(yaml: text) as? [String: Any] else {
                throw KubeConfigError("\(file): a kubeconfig is a YAML mapping (apiVersion, clusters, users, contexts)")
            }
            root = loaded
        } catch let e as KubeConfigError { throw e } catch {
            throw KubeConfigError("\(file): not valid YAML: \(error)")
        }
        files.append(file)
        let directory = (file as NSString).deletingLastPathComponent
        func entries(_ key: String) -> [(String, [String: Any])] {
            ((root[key] as? [Any]) ?? []).compactMap { item in
                guard let m = item as? [String: Any], let name = m["name"] as? String else { return nil }
                return (name, m)
            }
        }
        for (name, entry) in entries("clusters") where clusters[name] == nil {
            let c = entry["cluster"] as? [String: Any] ?? [:]
            guard let server = c["server"] as? String else {
                throw KubeConfigError("\(file): clusters[\(name)].cluster.server is required")
            }
            clusters[name] = Cluster(server: server, certificateAuthority: c["certificate-authority"] as? String,
                                     certificateAuthorityData: c["certificate-authority-data"] as? String,
                                     insecureSkipTLSVerify: c["insecure-skip-tls-verify"] as? Bool ?? false,
                                     tlsServerName: c["tls-server-name"] as? String, directory: directory)
        }
        for (name, entry) in entries("users") where users[name] == nil {
            let u = entry["user"] as? [String: Any] ?? [:]
            var exec: ExecConfig?
            if let e = u["exec"] as? [String: Any] {
                guard let command = e["command"] as? String else { throw KubeConfigError("\(file): users[\(name)].user.exec.command is required") }
                let env = ((e["env"] as? [Any]) ?? []).compactMap { $0 as? [String: Any] }.reduce(into: [String: String]()) { acc, item in
                    if let n = item["name"] as? String, let v = item["value"] as? String { acc[n] = v }
                }
                exec = ExecConfig(command: command, args: (e["args"] as? [Any])?.map { "\($0)" } ?? [], env: env,
                                  apiVersion: e["apiVersion"] as? String ?? "client.authentication.k8s.io/v1", baseDirectory: directory)
            }
            users[name] = User(token: u["token"] as? String, tokenFile: u["tokenFile"] as? String,
                               clientCertificate: u["client-certificate"] as? String, clientCertificateData: u["client-certificate-data"] as? String,
                               clientKey: u["client-key"] as? String, clientKeyData: u["client-key-data"] as? String,
                               exec: exec, directory: directory)
        }
        for (name, entry) in entries("contexts") where contexts[name] == nil {
            let c = entry["context"] as? [String: Any] ?? [:]
            guard let cluster = c["cluster"] as? String else { throw KubeConfigError("\(file): contexts[\(name)].context.cluster is required") }
            contexts[name] = Context(cluster: cluster, user: c["user"] as? String, namespace: c["namespace"] as? String)
        }
        if currentContext == nil, let current = root["current-context"] as? String, !current.isEmpty {
            currentContext = current
        }
    }

    /// The connection of a context (`nil`: the current context).
    public func connection(context name: String? = nil) throws -> ClusterConnection {
        let where_ = files.joined(separator: ":")
        guard let contextName = name ?? currentContext else {
            throw KubeConfigError("\(where_): no current-context is set; name a context (\(contextNames.joined(separator: ", ")))")
        }
        guard let context = contexts[contextName] else {
            throw KubeConfigError("\(where_): context `\(contextName)` not found (contexts: \(contextNames.joined(separator: ", ")))")
        }
        guard let cluster = clusters[context.cluster] else {
            throw KubeConfigError("\(where_): context `\(contextName)` names cluster `\(context.cluster)`, which is not defined")
        }
        guard let server = URL(string: cluster.server), let scheme = server.scheme, ["http", "https"].contains(scheme), server.host != nil else {
            throw KubeConfigError("\(where_): cluster `\(context.cluster)`: server `\(cluster.server)` is not an http(s) URL")
        }
        var ca: [UInt8]?
        if let data = cluster.certificateAuthorityData {
            guard let d = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                throw KubeConfigError("\(where_): cluster `\(context.cluster)`: certificate-authority-data is not base64")
            }
            ca = Array(d)
        } else if let path = cluster.certificateAuthority {
            ca = try Self.read(Self.resolve(path, cluster.directory), what: "certificate-authority of cluster `\(context.cluster)`")
        }
        var credentials = ClusterConnection.Credentials.none
        if let userName = context.user {
            guard let user = users[userName] else {
                throw KubeConfigError("\(where_): context `\(contextName)` names user `\(userName)`, which is not defined")
            }
            credentials = try Self.credentials(user, name: userName, where_)
        }
        return ClusterConnection(server: server, context: contextName, namespace: context.namespace ?? "default",
                                 certificateAuthorityPEM: ca, insecureSkipTLSVerify: cluster.insecureSkipTLSVerify,
                                 tlsServerName: cluster.tlsServerName, credentials: credentials)
    }

    static func credentials(_ user: User, name: String, _ where_: String) throws -> ClusterConnection.Credentials {
        if let token = user.token { return .token(token) }
        if let file = user.tokenFile { return .tokenFile(resolve(file, user.directory)) }
        if user.clientCertificate != nil || user.clientCertificateData != nil {
            let cert: [UInt8]
            if let data = user.clientCertificateData {
                guard let d = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                    throw KubeConfigError("\(where_): user `\(name)`: client-certificate-data is not base64")
                }
                cert = Array(d)
            } else {
                cert = try read(resolve(user.clientCertificate!, user.directory), what: "client-certificate of user `\(name)`")
            }
            let key: [UInt8]
            if let data = user.clientKeyData {
                guard let d = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                    throw KubeConfigError("\(where_): user `\(name)`: client-key-data is not base64")
                }
                key = Array(d)
            } else if let path = user.clientKey {
                key = try read(resolve(path, user.directory), what: "client-key of user `\(name)`")
            } else {
                throw KubeConfigError("\(where_): user `\(name)` has a client certificate but no client-key")
            }
            return .clientCertificate(certificatePEM: cert, keyPEM: key)
        }
        if let exec = user.exec { return .exec(exec) }
        return .none
    }

    static func resolve(_ path: String, _ directory: String) -> String {
        if path.hasPrefix("/") || directory.isEmpty { return path }
        if path.hasPrefix("~/") { return NSHomeDirectory() + path.dropFirst() }
        return directory + "/" + path
    }

    static func read(_ path: String, what: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeConfigError("cannot read \(what) at \(path)")
        }
        return Array(data)
    }
}

extension ClusterConnection {
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The in-cluster configuration (a Pod's service account), or nil outside a cluster.
    /// `SETPOINT_SERVICE_ACCOUNT_DIR` replaces the service-account directory (for tests).
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 directory: String? = nil) -> ClusterConnection? {
        let directory = directory ?? environment["SETPOINT_SERVICE_ACCOUNT_DIR"] ?? serviceAccountDirectory
        guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"],
              FileManager.default.fileExists(atPath: directory + "/token") else { return nil }
        let h = host.contains(":") ? "[\(host)]" : host
        guard let url = URL(string: "https://\(h):\(port)") else { return nil }
        let namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return ClusterConnection(server: url, context: "in-cluster", namespace: namespace.flatMap { $0.isEmpty ? nil : $0 } ?? "default",
                                 certificateAuthorityPEM: FileManager.default.contents(atPath: directory + "/ca.crt").map(Array.init),
                                 credentials: .tokenFile(directory + "/token"), inCluster: true)
    }
}
