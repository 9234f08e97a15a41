@testable import Proxy
import Testing

/// How a gateway reads `Host`: `<run>.<domain>`, `gateway.<domain>`, anything else; and which
/// plain HTTP requests it sends to HTTPS.
@Suite struct GatewaySiteTests {
    let site = GatewaySite(project: "main", domain: "Example.COM")

    @Test func hostsNameARunTheModelsAPIOrNothing() {
        #expect(site.target(host: "web.example.com") == .service("web"))
        #expect(site.target(host: "WEB.example.com:8080") == .service("web"), "case and port do not matter")
        #expect(site.target(host: "web.example.com.") == .service("web"), "a trailing dot is the same name")
        #expect(site.target(host: "gateway.example.com") == .models)
        #expect(site.target(host: "a.b.example.com") == .unknown, "one label only")
        #expect(site.target(host: "example.com") == .unknown)
        #expect(site.target(host: "webexample.com") == .unknown)
        #expect(site.target(host: "web.example.org") == .unknown)
        #expect(site.target(host: nil) == .unknown)
        #expect(site.target(host: "[::1]:80") == .unknown)
        #expect(GatewaySite(project: "main", domain: nil).target(host: "web.example.com") == .unknown, "no domain yet: nothing by name")
    }

    @Test func namesWithACertificateAreRedirectedToHTTPS() {
        let secure = GatewaySite(project: "main", domain: "example.com", secureNames: ["web.example.com"], httpsPort: 8443)
        #expect(secure.secureLocation(host: "web.example.com:80", uri: "/a?b=1") == "https://web.example.com:8443/a?b=1")
        #expect(secure.secureLocation(host: "other.example.com", uri: "/") == nil)
        let wildcard = GatewaySite(project: "main", domain: "example.com", secureNames: ["*.example.com"], httpsPort: 443)
        #expect(wildcard.secureLocation(host: "any.example.com", uri: "/") == "https://any.example.com/")
        #expect(GatewaySite(project: "main", domain: "example.com").secureLocation(host: "web.example.com", uri: "/") == nil)
    }
}
