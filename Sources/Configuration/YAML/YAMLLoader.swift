import Yams

/// One YAML document of a file: its value, or why it could not be read.
public struct YAMLDocument: Sendable {
    public var root: YAMLNode?
    public var error: ConfigurationIssue?
}

/// Reads YAML text into `YAMLNode`s with PyYAML `safe_load` semantics and source locations.
///
/// Differences from PyYAML, all deliberate: a syntax error, a duplicate key or an unknown tag is
/// reported with its line and column instead of a Python traceback.
public enum YAMLLoader {
    /// Loads every document of a multi-document file (`---` separated).
    public static func loadAll(_ text: String) -> [YAMLDocument] {
        var documents: [YAMLDocument] = []
        do {
            let parser = try Parser(yaml: text, resolver: .basic, constructor: .default)
            while true {
                do {
                    guard let node = try parser.nextRoot() else { break }
                    documents.append(YAMLDocument(root: try convert(node), error: nil))
                } catch let issue as ConfigurationIssue {
                    documents.append(YAMLDocument(root: nil, error: issue))
                    // The document is readable YAML; only its contents are wrong. Go on.
                } catch {
                    documents.append(YAMLDocument(root: nil, error: syntaxIssue(error)))
                    break
                }
            }
        } catch {
            documents.append(YAMLDocument(root: nil, error: syntaxIssue(error)))
        }
        return documents
    }

    /// Loads a single document (the first one), as `yaml.safe_load` does for one-document files.
    public static func load(_ text: String) -> YAMLDocument {
        loadAll(text).first ?? YAMLDocument(root: nil, error: nil)
    }

    static func syntaxIssue(_ error: Error) -> ConfigurationIssue {
        guard let yamlError = error as? YamlError else {
            return ConfigurationIssue(path: "", location: nil, message: "cannot read YAML: \(error)")
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _):
            return ConfigurationIssue(
                path: "", location: SourceLocation(line: mark.line, column: mark.column),
                message: "invalid YAML: \(problem)\(context.map { " (\($0.text))" } ?? "")")
        case .parser(let context, let problem, let mark, _):
            return ConfigurationIssue(
                path: "", location: SourceLocation(line: mark.line, column: mark.column),
                message: "invalid YAML: \(problem)\(context.map { " (\($0.text))" } ?? "")")
        case .composer(let context, let problem, let mark, _):
            return ConfigurationIssue(
                path: "", location: SourceLocation(line: mark.line, column: mark.column),
                message: "invalid YAML: \(problem)\(context.map { " (\($0.text))" } ?? "")")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "`\($0)`" }.joined(separator: ", ")
            return ConfigurationIssue(
                path: "", location: SourceLocation(line: context.mark.line, column: context.mark.column),
                message: "duplicate key \(keys) in one mapping: YAML keys must be unique (dstack silently keeps the last one)")
        case .reader(let problem, _, _, _):
            return ConfigurationIssue(path: "", location: nil, message: "cannot read YAML: \(problem)")
        default:
            return ConfigurationIssue(path: "", location: nil, message: "cannot read YAML: \(yamlError)")
        }
    }

    private static func location(_ mark: Mark?) -> SourceLocation {
        SourceLocation(line: mark?.line ?? 0, column: mark?.column ?? 0)
    }

    private static let str = "tag:yaml.org,2002:str"

    static func convert(_ node: Node) throws -> YAMLNode {
        switch node {
        case .scalar(let scalar):
            return YAMLNode(try scalarValue(scalar), at: location(scalar.mark))
        case .sequence(let sequence):
            return YAMLNode(.list(try sequence.map(convert)), at: location(sequence.mark))
        case .mapping(let mapping):
            var pairs: [YAMLPair] = []
            var merged: [YAMLPair] = []
            for (key, value) in mapping {
                if case .scalar(let k) = key, k.string == "<<", isImplicitKey(k) {
                    merged.append(contentsOf: try mergePairs(value))
                    continue
                }
                pairs.append(YAMLPair(key: try self.key(key), value: try convert(value)))
            }
            // PyYAML puts merged pairs first, so explicit keys override them.
            let own = Set(pairs.compactMap { pair -> String? in
                if case .string(let s) = pair.key.value { return s } else { return nil }
            })
            var result: [YAMLPair] = []
            var mergedSeen = Set<String>()
            for pair in merged {
                if case .string(let s) = pair.key.value {
                    if own.contains(s) || mergedSeen.contains(s) { continue }
                    mergedSeen.insert(s)
                }
                result.append(pair)
            }
            return YAMLNode(.map(result + pairs), at: location(mapping.mark))
        case .alias(let alias):
            throw ConfigurationIssue(path: "", location: location(alias.mark),
                                     message: "invalid YAML: unresolved alias")
        }
    }

    /// `<<: *anchor` or `<<: [*a, *b]` (earlier mappings win over later ones).
    private static func mergePairs(_ value: Node) throws -> [YAMLPair] {
        switch value {
        case .mapping:
            guard case .map(let pairs) = try convert(value).value else { return [] }
            return pairs
        case .sequence(let sequence):
            var result: [YAMLPair] = []
            for item in sequence {
                guard case .mapping = item else {
                    throw ConfigurationIssue(path: "", location: location(item.mark),
                                             message: "invalid YAML: a merge key (<<) takes mappings only")
                }
                result.append(contentsOf: try mergePairs(item))
            }
            return result
        default:
            throw ConfigurationIssue(path: "", location: location(value.mark),
                                     message: "invalid YAML: a merge key (<<) takes a mapping or a list of mappings")
        }
    }

    /// Yams tags every mapping key `str`, whether or not the file says so; a plain key is
    /// resolved like any plain scalar, as PyYAML does (`1: x` has the integer key 1).
    private static func isImplicitKey(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && (scalar.tag.rawValue == "" || scalar.tag.rawValue == str)
    }

    private static func key(_ node: Node) throws -> YAMLNode {
        if case .scalar(var scalar) = node, isImplicitKey(scalar) {
            scalar.tag = .implicit
            return YAMLNode(try scalarValue(scalar), at: location(scalar.mark))
        }
        return try convert(node)
    }

    private static func scalarValue(_ scalar: Node.Scalar) throws -> YAMLValue {
        let tag = scalar.tag.rawValue
        let loc = location(scalar.mark)
        switch tag {
        case "":
            if scalar.style != .plain { return .string(scalar.string) }
            switch YAML11Resolver.resolvePlain(scalar.string) {
            case .value(let v): return v
            case .unconstructible(let t):
                throw ConfigurationIssue(path: "", location: loc,
                                         message: "invalid YAML: `\(scalar.string)` resolves to \(t), which has no value; quote it to use it as text")
            }
        case "!", str:
            return .string(scalar.string)
        case "tag:yaml.org,2002:int":
            if let v = YAML11Resolver.constructInt(scalar.string) { return .int(v) }
        case "tag:yaml.org,2002:float":
            if YAML11Resolver.matchesFloat(Array(scalar.string.utf8)) || YAML11Resolver.matchesInt(Array(scalar.string.utf8)) {
                return .float(YAML11Resolver.constructFloat(scalar.string))
            }
        case "tag:yaml.org,2002:bool":
            if case .value(.bool(let b)) = YAML11Resolver.resolvePlain(scalar.string) { return .bool(b) }
        case "tag:yaml.org,2002:null":
            return .null
        default:
            throw ConfigurationIssue(path: "", location: loc,
                                     message: "invalid YAML: unsupported tag `\(tag)`")
        }
        throw ConfigurationIssue(path: "", location: loc,
                                 message: "invalid YAML: `\(scalar.string)` is not a valid \(tag.split(separator: ":").last ?? "")")
    }
}
