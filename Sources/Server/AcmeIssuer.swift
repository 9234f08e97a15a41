import Acme
import AsyncHTTPClient
import Controllers
import Foundation
import Model
import NIOCore
import Store

/// The certificate controller's issuer: the ACME client with the server's account (its key in
/// the store, one per directory), and a check that the gateway answers the challenge before the
/// CA is asked to look (a gateway that cannot be reached is said plainly, not as the CA's
/// "connection refused").
final class AcmeIssuer: CertificateIssuer {
    let settings: AcmeSettings
    let store: any ObjectStore
    /// Where the local gateways answer HTTP (the challenge is checked there).
    let gatewayHTTP: String

    init(settings: AcmeSettings, store: any ObjectStore, gatewayHTTP: String) {
        self.settings = settings
        self.store = store
        self.gatewayHTTP = gatewayHTTP
    }

    var renewBefore: TimeInterval { settings.renewBefore }

    /// The account key for this directory, made and kept on first use.
    func accountKey() async throws -> String {
        let accounts = TypedStore<AcmeAccountKind>(store)
        let name = "acme-" + String(settings.directory.utf8.reduce(UInt64(0xcbf29ce484222325)) { ($0 ^ UInt64($1)) &* 0x100000001b3 }, radix: 16)
        if let existing = try await accounts.get(project: systemProject, name: name) { return existing.spec.keyPEM }
        let key = try AcmeClient(settings: settings, accountKeyPEM: nil)
        let pem = key.accountKeyPEM
        await key.shutdown()
        do {
            try await accounts.create(Object<AcmeAccountKind>(project: systemProject, name: name, spec: AcmeAccountSpec(directory: settings.directory, keyPEM: pem)))
        } catch let e as StoreError where e.code == .alreadyExists {
            if let existing = try await accounts.get(project: systemProject, name: name) { return existing.spec.keyPEM }
        }
        return pem
    }

    func issue(domain: String, present: @escaping @Sendable (HTTPChallenge) async throws -> Void) async throws -> (chainPEM: String, keyPEM: String, notAfter: Date) {
        let client = try AcmeClient(settings: settings, accountKeyPEM: try await accountKey())
        do {
            let gatewayHTTP = self.gatewayHTTP
            let issued = try await client.issue(domain: domain) { token, keyAuthorization in
                try await present(HTTPChallenge(token: token, keyAuthorization: keyAuthorization))
                try await Self.waitUntilServed(token: token, keyAuthorization: keyAuthorization, host: domain, at: gatewayHTTP)
            }
            await client.shutdown()
            return (issued.chainPEM, issued.keyPEM, issued.notAfter)
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Asks the gateway (by its address, with the domain as `Host`) for the challenge until it
    /// answers it, within 15 s.
    static func waitUntilServed(token: String, keyAuthorization: String, host: String, at address: String) async throws {
        let deadline = ContinuousClock.now + .seconds(15)
        var last = "no answer"
        while ContinuousClock.now < deadline {
            var request = HTTPClientRequest(url: "http://\(address)/.well-known/acme-challenge/\(token)")
            request.headers.add(name: "Host", value: host)
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(2))
                let body = String(buffer: try await response.body.collect(upTo: 64 << 10))
                if response.status == .ok && body == keyAuthorization { return }
                last = "HTTP \(response.status.code)"
            } catch {
                last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw AcmeError("the gateway at \(address) does not answer the ACME challenge for \(host) (\(last)): is a gateway replica running and reporting?")
    }
}
