import Foundation

/// A CA, a server certificate for 127.0.0.1 and a client certificate signed by it (PEM), made
/// with the openssl command, for TLS tests of the fake API server.
public struct TestCertificates: Sendable {
    public var ca: [UInt8], serverCert: [UInt8], serverKey: [UInt8], clientCert: [UInt8], clientKey: [UInt8]

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public static func make(in dir: String) async throws -> TestCertificates {
        let script = """
            set -e
            cd '\(dir)'
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
            key ca.key; key server.key; key client.key
            openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj /CN=fake-ca
            openssl req -new -key server.key -out server.csr -subj /CN=127.0.0.1
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null
            openssl req -new -key client.key -out client.csr -subj /CN=setpoint
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 2>/dev/null
            """
        let (status, text) = try await runProcess(["/bin/sh", "-c", script])
        guard status == 0 else { throw Failure(description: "openssl failed (\(status)): \(text)") }
        func read(_ f: String) -> [UInt8] { Array(FileManager.default.contents(atPath: dir + "/" + f) ?? Data()) }
        return TestCertificates(ca: read("ca.crt"), serverCert: read("server.crt"), serverKey: read("server.key"),
                                clientCert: read("client.crt"), clientKey: read("client.key"))
    }
}
