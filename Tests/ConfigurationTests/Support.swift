@testable import SetpointConfiguration

/// A minimal valid service, to which a test appends the properties it is about.
let baseService = "type: service\nname: svc\ncommands:\n  - python3 -m http.server\nport: 8000\n"

func parseOne(_ yaml: String) -> Result<AnyConfiguration, ConfigurationErrors> {
    let documents = ConfigurationParser.parse(yaml)
    precondition(documents.count == 1, "expected one document, got \(documents.count)")
    return documents[0].result
}

func service(_ yaml: String) -> ServiceConfiguration? {
    if case .success(.service(let s)) = parseOne(yaml) { return s }
    return nil
}

func issues(_ yaml: String) -> [ConfigurationIssue] {
    if case .failure(let e) = parseOne(yaml) { return e.issues }
    return []
}

/// The normalized JSON of a valid service built from `baseService` plus `extra`.
func normalized(_ extra: String) -> JSONValue? {
    service(baseService + extra)?.json
}

extension JSONValue {
    /// Follows a dotted path (`resources.gpu.count.min`).
    func at(_ path: String) -> JSONValue? {
        var current: JSONValue? = self
        for key in path.split(separator: ".") { current = current?[String(key)] }
        return current
    }
}
