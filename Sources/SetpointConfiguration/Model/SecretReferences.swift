/// `${{ secrets.NAME }}` in a configuration's `env` values and `registry_auth`, with dstack's
/// interpolation rules (`dstack._internal.utils.interpolator`): `$$` is a literal `$`, a
/// reference is `${{ namespace.name }}` with spaces allowed inside the braces, and names start
/// with a letter or `_` and go on with letters, digits and `_`. Only the `secrets` namespace
/// exists in a service. Pure: values are filled in by whoever holds them (the server, when it
/// makes a replica's workload).
public enum SecretReferences {
    public enum Part: Equatable, Sendable {
        case literal(String)
        case secret(String)
    }

    /// Why a text cannot be interpolated. Never contains a value: only the reference.
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The text split into literal runs and secret references.
    public static func parse(_ text: String) throws(Problem) -> [Part] {
        guard text.contains("$") else { return [.literal(text)] }
        var parts: [Part] = []
        var literal = ""
        let chars = Array(text.unicodeScalars)
        var i = 0
        func flush() {
            if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
        }
        while i < chars.count {
            let c = chars[i]
            guard c == "$", i + 1 < chars.count else {
                literal.unicodeScalars.append(c)
                i += 1
                continue
            }
            if chars[i + 1] == "$" {
                literal.unicodeScalars.append("$")
                i += 2
                continue
            }
            guard i + 2 < chars.count, chars[i + 1] == "{", chars[i + 2] == "{" else {
                literal.unicodeScalars.append(c)
                i += 1
                continue
            }
            var j = i + 3
            var closing: Int?
            while j + 1 < chars.count {
                if chars[j] == "}" && chars[j + 1] == "}" { closing = j; break }
                j += 1
            }
            guard let end = closing else {
                throw Problem(message: "`${{` without a closing `}}`")
            }
            var inner = String.UnicodeScalarView()
            inner.append(contentsOf: chars[(i + 3)..<end])
            let name = String(inner).trimmingSpaces
            let pieces = name.split(separator: ".", omittingEmptySubsequences: false)
            guard pieces.count == 2, isName(pieces[0]), isName(pieces[1]) else {
                throw Problem(message: "`${{ \(name) }}` is not a reference: write `${{ secrets.NAME }}`")
            }
            guard pieces[0] == "secrets" else {
                throw Problem(message: "`${{ \(name) }}`: a service can only refer to `secrets.NAME`, not `\(pieces[0])`")
            }
            flush()
            parts.append(.secret(String(pieces[1])))
            i = end + 2
        }
        flush()
        return parts
    }

    /// The secret names a text refers to, in order of first use.
    public static func names(in text: String) throws(Problem) -> [String] {
        var seen: [String] = []
        for case .secret(let name) in try parse(text) where !seen.contains(name) { seen.append(name) }
        return seen
    }

    /// The text with each reference replaced by its value (every name must be in `values`).
    public static func render(_ parts: [Part], _ values: [String: String]) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let s): out += s
            case .secret(let name): out += values[name] ?? ""
            }
        }
        return out
    }

    /// Whether `name` is a valid secret name (`[A-Za-z_][A-Za-z0-9_]*`, at most 100 characters):
    /// the names a reference can spell.
    public static func isValidName(_ name: String) -> Bool { name.count <= 100 && isName(Substring(name)) }

    static func isName(_ s: Substring) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetter || $0 == "_" || ("0"..."9").contains($0) }
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

extension ServiceConfiguration {
    /// Every secret reference of the configuration, by where it is: `env.NAME`,
    /// `registry_auth.username`, `registry_auth.password`. A text that cannot be interpolated
    /// is a problem at that property.
    public var secretReferences: (uses: [(property: String, secret: String)], problems: [(property: String, problem: SecretReferences.Problem)]) {
        var uses: [(String, String)] = []
        var problems: [(String, SecretReferences.Problem)] = []
        func scan(_ property: String, _ text: String?) {
            guard let text else { return }
            do {
                for name in try SecretReferences.names(in: text) { uses.append((property, name)) }
            } catch {
                problems.append((property, error))
            }
        }
        for (key, value) in env {
            if case .value(let v) = value { scan("env.\(key)", v) }
        }
        scan("registry_auth.username", registryAuth?.username)
        scan("registry_auth.password", registryAuth?.password)
        return (uses, problems)
    }
}
