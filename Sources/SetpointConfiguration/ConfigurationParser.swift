import Synchronization

/// A configuration Setpoint can apply.
public enum AnyConfiguration: Sendable, Equatable {
    case service(ServiceConfiguration)
    case gateway(GatewayConfiguration)

    /// The normalized form (dstack's property names and order).
    public var json: JSONValue {
        switch self {
        case .service(let s): return s.json
        case .gateway(let g): return g.json
        }
    }

    public var name: String? {
        switch self {
        case .service(let s): return s.name
        case .gateway(let g): return g.name
        }
    }

    public var typeName: String {
        switch self {
        case .service: return "service"
        case .gateway: return "gateway"
        }
    }
}

/// The outcome for one YAML document of a file.
public struct ParsedDocument: Sendable {
    /// 0-based position of the document in its file.
    public var index: Int
    public var result: Result<AnyConfiguration, ConfigurationErrors>
    /// Things that are accepted but probably mistakes (duplicate keys).
    public var warnings: [ConfigurationIssue] = []

    public var configuration: AnyConfiguration? { try? result.get() }
    public var issues: [ConfigurationIssue] {
        if case .failure(let e) = result { return e.issues }
        return []
    }
}

/// All issues found in one document, sorted by position.
public struct ConfigurationErrors: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigurationIssue]

    public init(_ issues: [ConfigurationIssue]) {
        self.issues = issues.sorted { ($0.location ?? SourceLocation(line: .max, column: 0)) < ($1.location ?? SourceLocation(line: .max, column: 0)) }
    }

    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// Parses and validates `.dstack.yml` text: YAML 1.1 loading, dstack's schema and rules, the
/// server-side checks that need no server state, and resource defaults.
public enum ConfigurationParser {
    public static let supportedTypes = ["service", "gateway"]
    static let dstackTypes = ["dev-environment", "task", "service", "fleet", "gateway", "preset", "volume"]

    /// Parses every document of a file.
    public static func parse(_ text: String) -> [ParsedDocument] {
        parse(bytes: Array(text.utf8))
    }

    /// The largest configuration file accepted (a service configuration is a few KB; a larger
    /// one is a mistake, and every byte of it is kept in the store with each run).
    public static let maxBytes = 256 * 1024

    /// Parses every document of a file's UTF-8 bytes.
    public static func parse(bytes input: [UInt8]) -> [ParsedDocument] {
        // A UTF-8 byte order mark (editors on Windows write one) is not content: PyYAML, and so
        // dstack, skip it.
        let bytes = input.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(input.dropFirst(3)) : input
        if bytes.count > maxBytes {
            let line = bytes.prefix(maxBytes).reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            return [ParsedDocument(index: 0, result: .failure(ConfigurationErrors([
                ConfigurationIssue(path: "", location: SourceLocation(line: line, column: 1),
                                   message: "the file is \(bytes.count) bytes, over the \(maxBytes)-byte (256 KiB) limit for a configuration; the limit is reached on this line: keep large content in files or the repository instead"),
            ])))]
        }
        let documents = YAMLLoader.loadAll(bytes: bytes)
        if documents.isEmpty {
            return [ParsedDocument(index: 0, result: .failure(ConfigurationErrors([
                ConfigurationIssue(path: "", location: SourceLocation(line: 1, column: 1), message: "the file is empty: expected a configuration with `type: service` or `type: gateway`"),
            ])))]
        }
        return documents.enumerated().map { i, doc in
            if let error = doc.error { return ParsedDocument(index: i, result: .failure(ConfigurationErrors([error]))) }
            return ParsedDocument(index: i, result: parse(node: doc.root ?? YAMLNode(.null, at: SourceLocation(line: 1, column: 1))),
                                  warnings: doc.warnings)
        }
    }

    /// Parses one YAML document's tree (also used to re-read stored normalized JSON).
    public static func parse(node: YAMLNode) -> Result<AnyConfiguration, ConfigurationErrors> {
        let reader = Reader()
        let result = configuration(node, reader)
        if let result, reader.issues.issues.isEmpty { return .success(result) }
        return .failure(ConfigurationErrors(reader.issues.issues))
    }

    /// Parses normalized JSON (for example from the store) back into a configuration.
    public static func parse(json: JSONValue) -> Result<AnyConfiguration, ConfigurationErrors> {
        parse(node: json.yamlNode)
    }

    /// Reads a service configuration the server stored (its normalized JSON text) back, without
    /// validating it again: it was validated once, when it was applied, and the rules applied
    /// then (cross-field checks, resource defaults) are in the text. So a rule made stricter
    /// since applies at the next apply, and never makes a stored run unreadable. Only the
    /// grammar is read (property names and types), and each text is read once per process
    /// (the store decodes a run on every read).
    public static func readStored(service text: String) throws -> ServiceConfiguration {
        if let known = StoredConfigurations.shared.get(text) { return known }
        let json = try JSONParser.parse(text)
        let reader = Reader()
        let node = json.yamlNode
        guard case .string("service")? = node["type"]?.value,
              let service = reader.service(node, FieldPath("service")) else {
            throw ConfigurationErrors(reader.issues.issues.isEmpty
                ? [ConfigurationIssue(path: "type", location: nil, message: "a stored configuration that is not a service")]
                : reader.issues.issues)
        }
        StoredConfigurations.shared.put(text, service)
        return service
    }

    /// A gateway configuration as stored (normalized JSON), read back by grammar only.
    public static func readStored(gateway text: String) throws -> GatewayConfiguration {
        let json = try JSONParser.parse(text)
        let reader = Reader()
        let node = json.yamlNode
        guard case .string("gateway")? = node["type"]?.value, let gateway = reader.gateway(node, FieldPath("gateway")) else {
            throw ConfigurationErrors(reader.issues.issues.isEmpty
                ? [ConfigurationIssue(path: "type", location: nil, message: "a stored configuration that is not a gateway")]
                : reader.issues.issues)
        }
        return gateway
    }

    static func configuration(_ node: YAMLNode, _ reader: Reader) -> AnyConfiguration? {
        let root = FieldPath("configuration")
        switch node.value {
        case .map: break
        case .null:
            reader.fail(root, node, "the configuration is empty: expected a mapping with `type: service` or `type: gateway`")
            return nil
        default:
            reader.fail(root, node, "expected a mapping with `type: service` or `type: gateway`, got \(node.kindName)")
            return nil
        }
        guard let typeNode = node["type"] else {
            reader.fail(root, node, "missing `type`: expected `type: service` or `type: gateway`")
            return nil
        }
        guard case .string(let type) = typeNode.value else {
            reader.fail(root.appending("type"), typeNode, "`type` must be `service` or `gateway`, got \(reader.show(typeNode, root))")
            return nil
        }
        switch type {
        case "service":
            let path = FieldPath("service")
            guard let service = reader.service(node, path) else { return nil }
            return ServiceRules.apply(service, node: node, reader: reader, path: path).map(AnyConfiguration.service)
        case "gateway":
            return reader.gateway(node, FieldPath("gateway")).map(AnyConfiguration.gateway)
        default:
            var message: String
            if dstackTypes.contains(type) {
                message = "`type: \(type)` is a dstack configuration that Setpoint does not run: Setpoint runs `service` and `gateway` configurations"
            } else {
                message = "unknown configuration type `\(type)`: expected `service` or `gateway`"
                if let near = Suggest.closest(to: type, in: supportedTypes) { message += "; did you mean `\(near)`?" }
            }
            reader.fail(root.appending("type"), typeNode, message)
            return nil
        }
    }
}

/// Stored configurations already read, by their text: a bounded memo (a run's configuration is
/// decoded on every store read, and the text of a run changes only when it is applied).
final class StoredConfigurations: Sendable {
    static let shared = StoredConfigurations()
    private struct Memo {
        var entries: [String: ServiceConfiguration] = [:]
        var order: [String] = []
    }
    private let memo = Mutex(Memo())
    private let limit = 128

    func get(_ text: String) -> ServiceConfiguration? { memo.withLock { $0.entries[text] } }

    func put(_ text: String, _ value: ServiceConfiguration) {
        memo.withLock { m in
            guard m.entries[text] == nil else { return }
            m.entries[text] = value
            m.order.append(text)
            if m.order.count > limit { m.entries[m.order.removeFirst()] = nil }
        }
    }
}

extension ConfigurationParser {
    /// The text of each `---`-separated document of a file, each with the lines before it
    /// blanked: a document sent on its own keeps the file's line numbers in its errors.
    public static func documentTexts(_ text: String) -> [String] {
        var docs: [String] = []
        var current: [Substring] = []
        var offset = 0
        var start = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("---") {
                if current.contains(where: { line in !line.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } && !line.hasPrefix("#") }) {
                    docs.append(String(repeating: "\n", count: start) + current.joined(separator: "\n"))
                }
                current = []
                start = offset + 1
            } else {
                current.append(line)
            }
            offset += 1
        }
        docs.append(String(repeating: "\n", count: start) + current.joined(separator: "\n"))
        return docs
    }
}
