import CYaml

/// One YAML document of a file: its value, or why it could not be read, and what is suspicious
/// in it without being wrong (duplicate keys).
public struct YAMLDocument: Sendable {
    public var root: YAMLNode?
    public var error: ConfigurationIssue?
    public var warnings: [ConfigurationIssue] = []
}

/// Reads YAML text into `YAMLNode`s with PyYAML `safe_load` semantics and source locations.
///
/// It composes libyaml's event stream itself (rather than through Yams' `Node` tree) so that it
/// can do exactly what PyYAML does where YAML leaves room: plain scalars resolve by YAML 1.1
/// rules (`YAML11Resolver`), merge keys (`<<`) flatten in PyYAML's order, and a duplicate key
/// keeps its first position and its last value. Duplicate keys are almost always mistakes, so
/// each one is also reported as a warning with its line. A syntax error is an issue with a line
/// and column instead of a traceback.
public enum YAMLLoader {
    /// Loads every document of a multi-document file (`---` separated).
    public static func loadAll(_ text: String) -> [YAMLDocument] {
        loadAll(bytes: Array(text.utf8))
    }

    /// Loads every document of UTF-8 text given as bytes.
    public static func loadAll(bytes: [UInt8]) -> [YAMLDocument] {
        var bytes = bytes
        return bytes.withUnsafeMutableBufferPointer { buffer in
            let composer = Composer(buffer)
            defer { composer.close() }
            return composer.documents()
        }
    }

    /// Loads a single document (the first one), as `yaml.safe_load` does for one-document files.
    public static func load(_ text: String) -> YAMLDocument {
        loadAll(text).first ?? YAMLDocument(root: nil, error: nil)
    }
}

/// Builds nodes from libyaml events, one document at a time.
private final class Composer {
    private var parser = yaml_parser_t()
    /// The input, to locate reader errors (libyaml gives them as a byte offset).
    private let input: UnsafeMutableBufferPointer<UInt8>
    private var anchors: [String: YAMLNode] = [:]
    private var warnings: [ConfigurationIssue] = []
    private static let strTag = "tag:yaml.org,2002:str"

    init(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        input = buffer
        yaml_parser_initialize(&parser)
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
    }

    func close() {
        if hasEvent { yaml_event_delete(&event) }
        yaml_parser_delete(&parser)
    }

    /// The current event; `next()` frees the previous one before parsing the next, so no event
    /// outlives the step that reads it (and no event is allocated on the heap).
    private var event = yaml_event_t()
    private var hasEvent = false

    private var eventMark: SourceLocation {
        SourceLocation(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
    }

    @discardableResult
    private func next() throws -> yaml_event_type_t {
        if hasEvent { yaml_event_delete(&event); hasEvent = false }
        guard yaml_parser_parse(&parser, &event) == 1 else { throw syntaxIssue() }
        hasEvent = true
        return event.type
    }

    /// libyaml's deepest nesting (its default limit).
    static let maxNesting = 1000

    private func syntaxIssue() -> ConfigurationIssue {
        var problem = parser.problem.map { String(cString: $0) } ?? "unknown problem"
        var context = parser.context.map { " \(String(cString: $0))" } ?? ""
        var location = SourceLocation(line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1)
        let what = parser.error == YAML_READER_ERROR ? "cannot read YAML" : "invalid YAML"
        if parser.error == YAML_READER_ERROR {
            // Reader errors (a control character, bad UTF-8) come as a byte offset, not a mark.
            let offset = min(Int(parser.problem_offset), input.count)
            var line = 1
            var lineStart = 0
            for i in 0..<offset where input[i] == 0x0A {
                line += 1
                lineStart = i + 1
            }
            let column = String(decoding: UnsafeBufferPointer(rebasing: input[lineStart..<offset]), as: UTF8.self).count + 1
            location = SourceLocation(line: line, column: column)
            if parser.problem_value >= 0, problem.contains("control characters") {
                problem = String(format: "control character U+%04X is not allowed", parser.problem_value)
            }
        }
        if problem.hasPrefix("Maximum nesting level reached") {
            // libyaml names its own API here; say what it means.
            problem = "the document nests deeper than \(Self.maxNesting) levels"
            context = ""
        }
        return ConfigurationIssue(path: "", location: location, message: "\(what): \(problem)\(context)")
    }

    func documents() -> [YAMLDocument] {
        var result: [YAMLDocument] = []
        do {
            try next()  // STREAM_START
            while true {
                if try next() == YAML_STREAM_END_EVENT { break }
                anchors = [:]
                warnings = []
                do {
                    try next()
                    let root = try node().node
                    try next()  // DOCUMENT_END
                    result.append(YAMLDocument(root: root, error: nil, warnings: warnings))
                } catch let issue as ConfigurationIssue where issue.isContentIssue {
                    // The YAML is well-formed but means nothing here; skip to the next document.
                    result.append(YAMLDocument(root: nil, error: issue.asPlain))
                    try skipDocument()
                }
            }
        } catch let issue as ConfigurationIssue {
            result.append(YAMLDocument(root: nil, error: issue))
        } catch {
            result.append(YAMLDocument(root: nil, error: ConfigurationIssue(path: "", location: nil, message: "cannot read YAML: \(error)")))
        }
        return result
    }

    private func skipDocument() throws {
        while try next() != YAML_DOCUMENT_END_EVENT {}
    }

    private func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }

    /// The node starting at the current event; `plainUntagged` tells a merge key (`<<`) apart
    /// from a quoted or tagged one.
    private func node() throws -> (node: YAMLNode, plainUntagged: Bool) {
        let mark = eventMark
        switch event.type {
        case YAML_ALIAS_EVENT:
            let name = string(event.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                throw ConfigurationIssue.content(mark, "invalid YAML: found undefined alias `\(name)`")
            }
            return (YAMLNode(target.value, at: target.location), false)
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)
            let plain = s.style == YAML_PLAIN_SCALAR_STYLE
            var node = YAMLNode(try scalar(text, tag: string(s.tag), plain: plain, at: mark), at: mark)
            // An integer too large for 64 bits resolves to a float: keep what was written, for messages.
            if case .float = node.value, plain, text.allSatisfy({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "_" }) { node.raw = text }
            if let anchor = string(s.anchor) { anchors[anchor] = node }
            return (node, plain && s.tag == nil)
        case YAML_SEQUENCE_START_EVENT:
            let anchor = string(event.data.sequence_start.anchor)
            var items: [YAMLNode] = []
            while try next() != YAML_SEQUENCE_END_EVENT {
                items.append(try node().node)
            }
            let node = YAMLNode(.list(items), at: mark)
            if let anchor { anchors[anchor] = node }
            return (node, false)
        case YAML_MAPPING_START_EVENT:
            let anchor = string(event.data.mapping_start.anchor)
            let node = try mapping(at: mark)
            if let anchor { anchors[anchor] = node }
            return (node, false)
        default:
            throw ConfigurationIssue(path: "", location: mark, message: "invalid YAML: unexpected event")
        }
    }

    /// A mapping, flattened and deduplicated the way PyYAML's `construct_mapping` does.
    private func mapping(at location: SourceLocation) throws -> YAMLNode {
        var own: [YAMLPair] = []
        var merges: [[YAMLPair]] = []
        while try next() != YAML_MAPPING_END_EVENT {
            let (key, plainKey) = try node()
            try next()
            let value = try node().node
            if plainKey, key.value == .string("<<") {
                merges.append(contentsOf: try mergeSources(value))
                continue
            }
            switch key.value {
            case .list, .map:
                throw ConfigurationIssue.content(key.location, "invalid YAML: a mapping key must be a scalar, found \(key.kindName)")
            default:
                own.append(YAMLPair(key: key, value: value))
            }
        }
        if merges.isEmpty, own.count < 2 { return YAMLNode(.map(own), at: location) }
        // PyYAML: later merge sources first, so that earlier ones override them; own pairs last.
        var flat: [YAMLPair] = []
        for source in merges.reversed() { flat.append(contentsOf: source) }
        let mergedCount = flat.count
        flat.append(contentsOf: own)
        var result: [YAMLPair] = []
        var written: [Bool] = []  // whether result[i] was written in this mapping (not merged)
        var index: [String: Int] = [:]
        for (i, pair) in flat.enumerated() {
            let isOwn = i >= mergedCount
            let key = Self.dictionaryKey(pair.key.value)
            if let at = index[key] {
                if isOwn, written[at] {
                    warnings.append(ConfigurationIssue(
                        path: "", location: pair.key.location,
                        message: "duplicate key `\(pair.key.displayText)` (first at line \(result[at].key.location.line)): the last value is used, as dstack does"))
                }
                result[at].value = pair.value
                written[at] = written[at] || isOwn
            } else {
                index[key] = result.count
                result.append(pair)
                written.append(isOwn)
            }
        }
        return YAMLNode(.map(result), at: location)
    }

    /// Python dict key identity: `1`, `1.0` and `true` are the same key.
    private static func dictionaryKey(_ value: YAMLValue) -> String {
        switch value {
        case .null: return "n"
        case .bool(let b): return b ? "i1" : "i0"
        case .int(let i): return "i\(i)"
        case .float(let d): return d == d.rounded() && abs(d) < 9e18 ? "i\(Int(d))" : "f\(d)"
        case .string(let s): return "s" + s
        case .timestamp(let s): return "t" + s
        case .list, .map: return "x"
        }
    }

    /// `<<: *anchor` or `<<: [*a, *b]`.
    private func mergeSources(_ value: YAMLNode) throws -> [[YAMLPair]] {
        switch value.value {
        case .map(let pairs): return [pairs]
        case .list(let items):
            return try items.map { item in
                guard case .map(let pairs) = item.value else {
                    throw ConfigurationIssue.content(item.location, "invalid YAML: a merge key (<<) takes mappings only, found \(item.kindName)")
                }
                return pairs
            }
        default:
            throw ConfigurationIssue.content(value.location, "invalid YAML: a merge key (<<) takes a mapping or a list of mappings, found \(value.kindName)")
        }
    }

    private func scalar(_ text: String, tag: String?, plain: Bool, at location: SourceLocation) throws -> YAMLValue {
        guard let tag else {
            guard plain else { return .string(text) }
            switch YAML11Resolver.resolvePlain(text) {
            case .value(let v): return v
            case .unconstructible(let t):
                throw ConfigurationIssue.content(location, "invalid YAML: `\(text)` resolves to \(t), which has no value; quote it to use it as text")
            }
        }
        switch tag {
        case "!", Self.strTag:
            return .string(text)
        case "tag:yaml.org,2002:int":
            if YAML11Resolver.matchesInt(Array(text.utf8)), let v = YAML11Resolver.constructInt(text) { return .int(v) }
        case "tag:yaml.org,2002:float":
            let u = Array(text.utf8)
            if YAML11Resolver.matchesFloat(u) || YAML11Resolver.matchesInt(u) { return .float(YAML11Resolver.constructFloat(text)) }
        case "tag:yaml.org,2002:bool":
            if case .value(.bool(let b)) = YAML11Resolver.resolvePlain(text) { return .bool(b) }
        case "tag:yaml.org,2002:null":
            return .null
        default:
            throw ConfigurationIssue.content(location, "invalid YAML: unsupported tag `\(tag)`")
        }
        throw ConfigurationIssue.content(location, "invalid YAML: `\(text)` is not a valid \(tag.split(separator: ":").last ?? "")")
    }
}

extension ConfigurationIssue {
    /// Marks issues about well-formed YAML whose content cannot be used (the parser may go on).
    fileprivate static func content(_ location: SourceLocation, _ message: String) -> ConfigurationIssue {
        ConfigurationIssue(path: "\u{0}", location: location, message: message)
    }

    fileprivate var isContentIssue: Bool { path == "\u{0}" }
    fileprivate var asPlain: ConfigurationIssue {
        ConfigurationIssue(path: "", location: location, message: message)
    }
}

