import Foundation
import Kubernetes
import Testing
import TestSupport

@Suite(.timeLimit(.minutes(2))) struct TLSTests {
    @Test func clientCertificatesCAsAndInsecureSkipVerify() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let certs = try await TestCertificates.make(in: dir)
        let fake = FakeKubernetes()
        try await fake.start(tls: .init(certificatePEM: certs.serverCert, keyPEM: certs.serverKey, clientCAPEM: certs.ca))
        defer { fake.stop() }
        #expect(fake.url.hasPrefix("https://"))
        func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

        // The CA and a client certificate, inline as kubectl writes them.
        let config = try KubeConfig.parse("""
            clusters: [{name: c, cluster: {server: "\(fake.url)", certificate-authority-data: \(b64(certs.ca))}}]
            users: [{name: u, user: {client-certificate-data: \(b64(certs.clientCert)), client-key-data: \(b64(certs.clientKey))}}]
            contexts: [{name: tls, context: {cluster: c, user: u}}]
            current-context: tls
            """)
        let client = try KubeClient(connection: try config.connection(), logger: quietLogger)
        #expect(try await client.get(Namespace.self, name: "default") != nil)

        // Without a client certificate the server refuses the handshake.
        let anonymous = try KubeClient(connection: ClusterConnection(server: URL(string: fake.url)!, context: "x", certificateAuthorityPEM: certs.ca),
                                       logger: quietLogger)
        await #expect(throws: KubeAPIError.self) { try await anonymous.get(Namespace.self, name: "default") }

        // Without the CA the server's certificate is not trusted, unless verification is off.
        let untrusted = try KubeClient(connection: ClusterConnection(server: URL(string: fake.url)!, context: "x",
                                                                     credentials: .clientCertificate(certificatePEM: certs.clientCert, keyPEM: certs.clientKey)),
                                       logger: quietLogger)
        await #expect(throws: KubeAPIError.self) { try await untrusted.get(Namespace.self, name: "default") }
        let insecure = try KubeClient(connection: ClusterConnection(server: URL(string: fake.url)!, context: "x", insecureSkipTLSVerify: true,
                                                                    credentials: .clientCertificate(certificatePEM: certs.clientCert, keyPEM: certs.clientKey)),
                                      logger: quietLogger)
        #expect(try await insecure.get(Namespace.self, name: "default") != nil)
    }
}
