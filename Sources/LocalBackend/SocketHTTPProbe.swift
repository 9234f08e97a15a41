import Foundation
import Backend
import Model
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 request over a Unix socket (`unix:/path`) or TCP (`host:port`), for
/// readiness probes of local replicas: success is a 2xx status line within the timeout.
enum SocketHTTPProbe {
    /// - Parameter anyStatus: any HTTP status line counts (the app listens and speaks HTTP).
    static func probe(endpoint: String, _ probe: ProbeTemplate, anyStatus: Bool = false) -> Bool {
        let deadline = Date().addingTimeInterval(TimeInterval(probe.timeout))
        guard let fd = connect(endpoint, deadline: deadline) else { return false }
        defer { close(fd) }
        var request = "\(probe.method.uppercased()) \(probe.url) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: setpoint-probe\r\n"
        for (name, value) in probe.headers { request += "\(name): \(value)\r\n" }
        if let body = probe.body { request += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { request += "\r\n" }
        var bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !response.contains(UInt8(ascii: "\n")) {
            guard wait(fd, events: Int16(POLLIN), deadline: deadline) else { return false }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        // "HTTP/1.1 200 OK"
        let line = String(decoding: response.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else { return false }
        return anyStatus || (200..<300).contains(code)
    }

    private static func wait(_ fd: Int32, events: Int16, deadline: Date) -> Bool {
        let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
        var p = pollfd(fd: fd, events: events, revents: 0)
        return poll(&p, 1, ms) > 0
    }

    private static func connect(_ endpoint: String, deadline: Date) -> Int32? {
        if endpoint.hasPrefix("unix:") {
            let path = String(endpoint.dropFirst(5))
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return nil }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: addr.sun_path)
            guard path.utf8.count < capacity else { close(fd); return nil }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.enumerated() { raw[i] = b }
            }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if rc != 0 { close(fd); return nil }
            return fd
        }
        let parts = endpoint.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, String(parts[0]), &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(fd); return nil }
        _ = deadline
        return fd
    }
}

/// HTTP readiness over a TCP (`host:port`) or Unix (`unix:PATH`) endpoint, on a blocking
/// socket off the cooperative pool: the prober of every backend whose endpoints Setpoint reaches.
public struct SocketProber: ReadinessProber {
    public init() {}

    public func probe(endpoint: String, _ probe: ProbeTemplate) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: SocketHTTPProbe.probe(endpoint: endpoint, probe))
            }
        }
    }

    public func answers(endpoint: String) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: SocketHTTPProbe.probe(endpoint: endpoint, ProbeTemplate(url: "/", timeout: 2), anyStatus: true))
            }
        }
    }
}
