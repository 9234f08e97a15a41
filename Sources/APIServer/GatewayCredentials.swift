import Crypto
import Foundation
import Model

/// The credential a gateway process presents to the control plane:
/// `spgw.<project>.<gateway>.<HMAC-SHA256(server secret, project, gateway, uid)>`. Nothing is
/// stored: the server derives it again to check it, and a gateway deleted and applied again (a
/// new uid) invalidates the old one. Project and gateway names cannot contain `.`.
public struct GatewayCredentials: Sendable {
    let key: SymmetricKey

    public init(secret: Data) { key = SymmetricKey(data: secret) }

    /// Over the server's secret (`ServerSecret`).
    public static func load(dataDirectory: String) throws -> GatewayCredentials {
        GatewayCredentials(secret: try ServerSecret.load(dataDirectory: dataDirectory))
    }

    func mac(project: String, name: String, uid: String) -> String {
        let message = Data("gateway\u{0}\(project)\u{0}\(name)\u{0}\(uid)".utf8)
        return HMAC<SHA256>.authenticationCode(for: message, using: key).map { String(format: "%02x", $0) }.joined()
    }

    public func credential(for gateway: Gateway) -> String {
        "spgw.\(gateway.meta.project).\(gateway.meta.name).\(mac(project: gateway.meta.project, name: gateway.meta.name, uid: gateway.meta.uid))"
    }

    /// The gateway a `Bearer spgw.…` header names, before it is checked against its uid.
    public static func claimed(authorization: String?) -> (project: String, name: String, mac: String)? {
        guard let header = authorization, header.lowercased().hasPrefix("bearer ") else { return nil }
        let parts = header.dropFirst(7).trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "spgw" else { return nil }
        return (String(parts[1]), String(parts[2]), String(parts[3]))
    }

    /// Whether `mac` is this gateway's (compared in constant time).
    public func verify(_ mac: String, gateway: Gateway) -> Bool {
        let expected = Array(self.mac(project: gateway.meta.project, name: gateway.meta.name, uid: gateway.meta.uid).utf8)
        let given = Array(mac.utf8)
        guard expected.count == given.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(expected, given) { diff |= a ^ b }
        return diff == 0
    }
}
