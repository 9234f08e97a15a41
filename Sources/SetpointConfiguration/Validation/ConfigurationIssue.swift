/// One thing wrong with a configuration: where it is (property path, line, column) and what is
/// accepted instead.
///
/// Messages never contain secret values (`registry_auth.password`, `env` values): the decoder
/// marks those paths and prints only what kind of value was found.
public struct ConfigurationIssue: Error, Sendable, Equatable, CustomStringConvertible {
    /// Property path in dstack's notation, e.g. `service.resources.gpu` or `service.probes[0].url`.
    public var path: String
    public var location: SourceLocation?
    public var message: String
    /// True for issues about secret properties: their source lines must not be shown either.
    public var isSecret: Bool

    public init(path: String, location: SourceLocation?, message: String, isSecret: Bool = false) {
        self.path = path
        self.location = location
        self.message = message.count > 300 ? Self.shortened(message) : message
        self.isSecret = isSecret
    }

    /// A quoted value (between backticks) longer than 100 characters is cut there with `…`: an
    /// error names the value, it does not echo 20 KB of it.
    static func shortened(_ message: String) -> String {
        var out = ""
        var quoted = ""
        var inQuote = false
        for c in message {
            if c == "`" {
                if inQuote { out += quoted.count > 100 ? String(quoted.prefix(100)) + "…" : quoted }
                quoted = ""
                inQuote.toggle()
                out.append(c)
            } else if inQuote {
                quoted.append(c)
            } else {
                out.append(c)
            }
        }
        if inQuote { out += quoted.count > 100 ? String(quoted.prefix(100)) + "…" : quoted }
        return out
    }

    public var description: String {
        let at = location.map { "\($0.line):\($0.column): " } ?? ""
        let prefix = path.isEmpty ? "" : "\(path): "
        return "\(at)\(prefix)\(message)"
    }
}

/// Collects issues while a document is decoded, so that all of them are reported in one pass.
final class IssueCollector {
    private(set) var issues: [ConfigurationIssue] = []

    var count: Int { issues.count }

    func add(_ path: FieldPath, _ node: YAMLNode?, _ message: String) {
        issues.append(ConfigurationIssue(path: path.description, location: node?.location, message: message, isSecret: path.isSecret))
    }

    func add(_ path: FieldPath, at location: SourceLocation?, _ message: String) {
        issues.append(ConfigurationIssue(path: path.description, location: location, message: message, isSecret: path.isSecret))
    }
}

/// A property path: `service.resources.gpu.count`, `service.probes[1]`.
struct FieldPath: CustomStringConvertible, Sendable {
    private var components: [String]
    /// Set under properties whose values must never be echoed.
    var isSecret: Bool

    init(_ root: String, isSecret: Bool = false) {
        components = [root]
        self.isSecret = isSecret
    }

    func appending(_ key: String, secret: Bool = false) -> FieldPath {
        var copy = self
        copy.components.append("." + key)
        copy.isSecret = isSecret || secret
        return copy
    }

    subscript(index: Int) -> FieldPath {
        var copy = self
        copy.components.append("[\(index)]")
        return copy
    }

    var description: String { components.joined() }
}
