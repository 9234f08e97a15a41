import Crypto
import Foundation
import Model
import NIOCore
import NIOSSL
import Synchronization
import X509

/// The certificates a gateway serves HTTPS with, chosen by SNI: the domain's own, else the
/// operator's wildcard for its parent, else a self-signed placeholder (the handshake then fails
/// the client's check, as it should for a name the gateway has no certificate for).
final class TLSIdentities: Sendable {
    struct Identity: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    private let identities = Mutex<[String: Identity]>([:])
    /// The PEMs the current identities came from (a snapshot that repeats them parses nothing).
    private let sources = Mutex<[ServedCertificate]>([])

    func set(_ served: [ServedCertificate]) {
        guard sources.withLock({ $0 != served }) else { return }
        var parsed: [String: Identity] = [:]
        for c in served {
            guard let chain = try? NIOSSLCertificate.fromPEMBytes(Array(c.chainPEM.utf8)), !chain.isEmpty,
                  let key = try? NIOSSLPrivateKey(bytes: Array(c.keyPEM.utf8), format: .pem) else { continue }
            parsed[c.domain.lowercased()] = Identity(chain: chain, key: key)
        }
        identities.withLock { $0 = parsed }
        sources.withLock { $0 = served }
    }

    func identity(for host: String?) -> Identity? {
        guard var host = host?.lowercased() else { return nil }
        if host.hasSuffix(".") { host.removeLast() }
        return identities.withLock { all in
            if let exact = all[host] { return exact }
            guard let dot = host.firstIndex(of: ".") else { return nil }
            return all["*" + host[dot...]]
        }
    }

    /// A TLS server context that asks this store per handshake.
    func context() throws -> NIOSSLContext {
        let placeholder = try Self.placeholder()
        var config = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(placeholder.chain[0])], privateKey: .privateKey(placeholder.key))
        config.applicationProtocols = ["http/1.1"]
        config.sslContextCallback = { [self] values, promise in
            guard let identity = self.identity(for: values.serverHostname) else { return promise.succeed(.noChanges) }
            var change = NIOSSLContextConfigurationOverride()
            change.certificateChain = identity.chain.map { .certificate($0) }
            change.privateKey = .privateKey(identity.key)
            promise.succeed(change)
        }
        return try NIOSSLContext(configuration: config)
    }

    /// A self-signed certificate for no name of the gateway's.
    static func placeholder() throws -> Identity {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("setpoint-gateway-no-certificate") }
        let now = Date()
        let certificate = try Certificate(version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                                          notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
                                          issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: .init(),
                                          issuerPrivateKey: .init(key))
        let pem = try certificate.serializeAsPEM().pemString
        return Identity(chain: try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)),
                        key: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
    }
}
