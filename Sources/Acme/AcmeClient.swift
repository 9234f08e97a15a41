import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import SwiftASN1
import X509

/// An ACME client (RFC 8555) for HTTP-01: an account (ES256, optionally with External Account
/// Binding), an order per domain, the challenge presented by the caller, a CSR for a fresh P-256
/// key, the issued chain. Let's Encrypt, ZeroSSL, a private CA, or pebble in tests.
public struct AcmeSettings: Sendable, Equatable {
    /// The directory URL (Let's Encrypt's production directory by default).
    public var directory: String = "https://acme-v02.api.letsencrypt.org/directory"
    /// Extra CA certificates (PEM file) the ACME server's own TLS certificate chains to (a
    /// private CA, pebble's test CA).
    public var caFile: String?
    /// External Account Binding (ZeroSSL, some private CAs): the key ID and the base64url HMAC key.
    public var eabKeyID: String?
    public var eabHMACKey: String?
    public var email: String?
    /// Renew when less than this remains (seconds).
    public var renewBefore: TimeInterval = 30 * 86_400

    public init() {}
}

/// What the CA said went wrong: its problem document (RFC 7807), not "failed".
public struct AcmeProblem: Error, CustomStringConvertible, Sendable {
    public var type: String
    public var detail: String
    public var status: Int

    public var description: String {
        let short = type.replacingOccurrences(of: "urn:ietf:params:acme:error:", with: "")
        return "the ACME server refused (\(short), HTTP \(status)): \(detail)"
    }
}

public struct AcmeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A certificate as issued.
public struct IssuedCertificate: Sendable, Equatable {
    public var chainPEM: String
    public var keyPEM: String
    public var notAfter: Date
}

public final class AcmeClient: Sendable {
    let settings: AcmeSettings
    let http: HTTPClient
    let accountKey: P256.Signing.PrivateKey

    /// - Parameter accountKeyPEM: the account's key (kept by the caller so a restart reuses the
    ///   account); a new one when nil (`accountKeyPEM` then says what to keep).
    public init(settings: AcmeSettings, accountKeyPEM: String?) throws {
        self.settings = settings
        accountKey = try accountKeyPEM.map { try P256.Signing.PrivateKey(pemRepresentation: $0) } ?? P256.Signing.PrivateKey()
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = settings.caFile {
            tls.additionalTrustRoots = [.file(ca)]
        }
        var config = HTTPClient.Configuration(tlsConfiguration: tls)
        config.timeout = .init(connect: .seconds(10), read: .seconds(30))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public var accountKeyPEM: String { accountKey.pemRepresentation }

    public func shutdown() async { try? await http.shutdown() }

    struct Directory: Decodable {
        var newNonce: String
        var newAccount: String
        var newOrder: String
    }

    struct Order: Decodable {
        var status: String
        var authorizations: [String]
        var finalize: String
        var certificate: String?
        var error: Problem?
    }

    struct Authorization: Decodable {
        var status: String
        var challenges: [Challenge]
        struct Challenge: Decodable {
            var type: String
            var url: String
            var token: String?
            var status: String
            var error: Problem?
        }
    }

    struct Problem: Decodable {
        var type: String?
        var detail: String?
        var status: Int?
        var subproblems: [Problem]?
    }

    // MARK: JOSE

    static func b64(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unb64(_ text: String) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }

    /// The account key as a JWK, members in lexicographic order (RFC 7638, for the thumbprint).
    var jwk: String {
        let raw = accountKey.publicKey.x963Representation   // 0x04 || X || Y
        let x = Self.b64(raw.dropFirst().prefix(32)), y = Self.b64(raw.dropFirst(33))
        return #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
    }

    var thumbprint: String { Self.b64(Data(SHA256.hash(data: Data(jwk.utf8)))) }

    /// The HTTP-01 key authorization for a challenge token.
    public func keyAuthorization(_ token: String) -> String { token + "." + thumbprint }

    func jws(url: String, payload: String?, nonce: String, kid: String?) throws -> Data {
        let key = kid.map { #""kid":"\#($0)""# } ?? #""jwk":\#(jwk)"#
        let protected = Self.b64(Data(#"{"alg":"ES256",\#(key),"nonce":"\#(nonce)","url":"\#(url)"}"#.utf8))
        let body = payload.map { Self.b64(Data($0.utf8)) } ?? ""
        let signature = try accountKey.signature(for: Data("\(protected).\(body)".utf8)).rawRepresentation
        return Data(#"{"protected":"\#(protected)","payload":"\#(body)","signature":"\#(Self.b64(signature))"}"#.utf8)
    }

    /// External Account Binding (RFC 8555 §7.3.4): the account key signed with the CA's HMAC key.
    func externalAccountBinding(url: String) throws -> String? {
        guard let kid = settings.eabKeyID, let keyText = settings.eabHMACKey else { return nil }
        guard let keyData = Self.unb64(keyText) else { throw AcmeError("the EAB HMAC key is not base64url") }
        let protected = Self.b64(Data(#"{"alg":"HS256","kid":"\#(kid)","url":"\#(url)"}"#.utf8))
        let payload = Self.b64(Data(jwk.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(protected).\(payload)".utf8), using: SymmetricKey(data: keyData))
        return #"{"protected":"\#(protected)","payload":"\#(payload)","signature":"\#(Self.b64(Data(mac)))"}"#
    }

    // MARK: HTTP

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: Data
    }

    func send(_ url: String, method: HTTPMethod = .GET, body: Data? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/jose+json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        do { response = try await http.execute(request, timeout: .seconds(30)) } catch {
            throw AcmeError("cannot reach the ACME server at \(url): \(error)")
        }
        let data = Data((try await response.body.collect(upTo: 4 << 20)).readableBytesView)
        return Reply(status: Int(response.status.code), headers: response.headers, body: data)
    }

    final class Session: @unchecked Sendable {
        var nonce: String?
        var kid: String?
        var directory: Directory?
    }

    func nonce(_ s: Session) async throws -> String {
        if let n = s.nonce { s.nonce = nil; return n }
        guard let dir = s.directory else { throw AcmeError("no directory") }
        let reply = try await send(dir.newNonce, method: .HEAD)
        guard let n = reply.headers.first(name: "Replay-Nonce") else { throw AcmeError("the ACME server gave no nonce") }
        return n
    }

    /// A signed POST; a `badNonce` is tried again with the fresh nonce it carries.
    func post(_ s: Session, _ url: String, payload: String?) async throws -> Reply {
        for _ in 0..<3 {
            let body = try jws(url: url, payload: payload, nonce: try await nonce(s), kid: s.kid)
            let reply = try await send(url, method: .POST, body: body)
            s.nonce = reply.headers.first(name: "Replay-Nonce")
            if reply.status >= 400 {
                let problem = try? JSONDecoder().decode(Problem.self, from: reply.body)
                if problem?.type?.hasSuffix(":badNonce") == true { continue }
                throw Self.problem(problem, status: reply.status)
            }
            return reply
        }
        throw AcmeError("the ACME server kept refusing nonces")
    }

    static func problem(_ p: Problem?, status: Int) -> AcmeProblem {
        var detail = p?.detail ?? "no detail"
        if let subs = p?.subproblems, !subs.isEmpty { detail += " (" + subs.compactMap(\.detail).joined(separator: "; ") + ")" }
        return AcmeProblem(type: p?.type ?? "unknown", detail: detail, status: p?.status ?? status)
    }

    func decode<T: Decodable>(_ type: T.Type, _ reply: Reply) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: reply.body) } catch {
            throw AcmeError("the ACME server sent what this client cannot read: \(String(decoding: reply.body.prefix(300), as: UTF8.self))")
        }
    }

    // MARK: issuing

    /// Orders a certificate for `domain`. `present` must make
    /// `http://<domain>/.well-known/acme-challenge/<token>` answer the key authorization before
    /// it returns; the CA then checks it.
    public func issue(domain: String, present: @Sendable (_ token: String, _ keyAuthorization: String) async throws -> Void,
                      pollInterval: Duration = .milliseconds(500), timeout: Duration = .seconds(120)) async throws -> IssuedCertificate {
        let s = Session()
        let dirReply = try await send(settings.directory)
        guard dirReply.status == 200 else { throw AcmeError("the ACME directory \(settings.directory) answered \(dirReply.status)") }
        let dir = try decode(Directory.self, dirReply)
        s.directory = dir
        // The account (the same key finds the same account again: `onlyReturnExisting` is not needed).
        var account = #"{"termsOfServiceAgreed":true"#
        if let email = settings.email { account += #","contact":["mailto:\#(email)"]"# }
        if let eab = try externalAccountBinding(url: dir.newAccount) { account += #","externalAccountBinding":\#(eab)"# }
        account += "}"
        let created = try await post(s, dir.newAccount, payload: account)
        guard let kid = created.headers.first(name: "Location") else { throw AcmeError("the ACME server gave the account no URL") }
        s.kid = kid
        // The order.
        let ordered = try await post(s, dir.newOrder, payload: #"{"identifiers":[{"type":"dns","value":"\#(domain)"}]}"#)
        guard let orderURL = ordered.headers.first(name: "Location") else { throw AcmeError("the ACME server gave the order no URL") }
        var order = try decode(Order.self, ordered)
        let deadline = ContinuousClock.now + timeout
        for authURL in order.authorizations {
            var auth = try decode(Authorization.self, try await post(s, authURL, payload: nil))
            if auth.status == "valid" { continue }
            guard let challenge = auth.challenges.first(where: { $0.type == "http-01" }), let token = challenge.token else {
                throw AcmeError("the ACME server offers no http-01 challenge for \(domain)")
            }
            try await present(token, keyAuthorization(token))
            _ = try await post(s, challenge.url, payload: "{}")
            while auth.status == "pending" || auth.status == "processing" {
                guard ContinuousClock.now < deadline else { throw AcmeError("the ACME server did not validate \(domain) within \(timeout)") }
                try await Task.sleep(for: pollInterval)
                auth = try decode(Authorization.self, try await post(s, authURL, payload: nil))
            }
            guard auth.status == "valid" else {
                let error = auth.challenges.first { $0.type == "http-01" }?.error
                throw Self.problem(error, status: 403)
            }
        }
        // The key and the CSR, then the certificate.
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(domain) }
        let extensions = try Certificate.Extensions { SubjectAlternativeNames([.dnsName(domain)]) }
        let attributes = try CertificateSigningRequest.Attributes([.init(ExtensionRequest(extensions: extensions))])
        let csr = try CertificateSigningRequest(version: .v1, subject: name, privateKey: Certificate.PrivateKey(key),
                                                attributes: attributes, signatureAlgorithm: .ecdsaWithSHA256)
        var serializer = DER.Serializer()
        try serializer.serialize(csr)
        order = try decode(Order.self, try await post(s, order.finalize, payload: #"{"csr":"\#(Self.b64(serializer.serializedBytes))"}"#))
        while order.status == "processing" || order.status == "pending" || (order.status == "valid" && order.certificate == nil) {
            guard ContinuousClock.now < deadline else { throw AcmeError("the ACME server did not issue \(domain) within \(timeout)") }
            try await Task.sleep(for: pollInterval)
            order = try decode(Order.self, try await post(s, orderURL, payload: nil))
        }
        guard order.status == "valid", let certificateURL = order.certificate else {
            throw Self.problem(order.error, status: 403)
        }
        let chain = String(decoding: try await post(s, certificateURL, payload: nil).body, as: UTF8.self)
        guard let end = chain.range(of: "-----END CERTIFICATE-----") else { throw AcmeError("the ACME server sent no certificate") }
        let leaf = try Certificate(pemEncoded: String(chain[..<end.upperBound]))
        return IssuedCertificate(chainPEM: chain, keyPEM: key.pemRepresentation, notAfter: leaf.notValidAfter)
    }
}
