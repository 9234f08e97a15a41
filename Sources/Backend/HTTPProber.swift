import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Model

/// Runs HTTP readiness probes: success is a 2xx answer within the probe's timeout.
public struct HTTPProber: ReadinessProber {
    private let session: URLSession

    public init() {
        let config = URLSessionConfiguration.ephemeral
        config.httpShouldSetCookies = false
        config.urlCache = nil
        session = URLSession(configuration: config)
    }

    public func probe(endpoint: String, _ probe: ProbeTemplate) async -> Bool {
        guard let url = URL(string: "http://\(endpoint)\(probe.url)") else { return false }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: TimeInterval(probe.timeout))
        request.httpMethod = probe.method.uppercased()
        for (name, value) in probe.headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body = probe.body { request.httpBody = Data(body.utf8) }
        do {
            let (_, response) = try await session.data(for: request)
            guard let http = response as? HTTPURLResponse else { return false }
            return (200..<300).contains(http.statusCode)
        } catch {
            return false
        }
    }
}
