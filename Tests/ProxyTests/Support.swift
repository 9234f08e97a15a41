import Foundation
import Logging
import Model
import NIOCore
import Proxy
import Testing
import TestSupport

/// A proxy on a free port with a route table the test fills, and Python test apps
/// (Tests/Apps/testapp.py) on Unix sockets as replicas. Everything started is stopped by PID.
final class ProxyHarness: @unchecked Sendable {
    let table = RouteTable()
    let dir: URL
    var port = 0
    private var server: Task<Void, Error>?
    private var apps: [Process] = []
    let demanded = Counter()

    static let appScript: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Apps/testapp.py").path
    }()

    init(_ configure: (inout ProxySettings) -> Void = { _ in }) async throws {
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("sp-proxy-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var settings = ProxySettings()
        configure(&settings)
        let listening = AsyncStream<Int>.makeStream()
        let demanded = self.demanded
        table.setDemandHandler { _, _ in demanded.increment() }
        let proxy = ProxyServer(host: "127.0.0.1", port: 0, table: table, settings: settings, api: nil,
                                logger: Logger(label: "test"),
                                authorize: { header, project in
                                    switch header {
                                    case "Bearer good": return .allowed
                                    case "Bearer other": return .forbidden
                                    default: return .unauthenticated
                                    }
                                },
                                metrics: { "# metrics\n" },
                                onListening: { port in listening.continuation.yield(port) })
        server = Task { try await proxy.run() }
        for await p in listening.stream {
            port = p
            break
        }
    }

    /// Starts a test app; returns its endpoint address (`unix:/…`).
    @discardableResult
    func app(_ name: String, delayMs: Int = 0) async throws -> String {
        let socket = dir.appendingPathComponent("\(name).sock").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.appScript, "--unix", socket, "--name", name, "--delay-ms", String(delayMs)]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        apps.append(p)
        try await waitFor(timeout: 10) { FileManager.default.fileExists(atPath: socket) }
        return "unix:" + socket
    }

    func route(_ run: String, endpoints: [String], auth: Bool = false, stripPrefix: Bool = true, model: RouteModel? = nil,
               limits: [RouteRateLimit] = [], scalesToZero: Bool = false, created: Date = Date(timeIntervalSince1970: 1_000)) {
        table.set(project: "main", spec: ProxyRouteSpec(
            run: run, auth: auth, stripPrefix: stripPrefix,
            endpoints: endpoints.enumerated().map { RouteEndpoint(replica: "\(run)-\($0.offset)", address: $0.element) },
            model: model, rateLimits: limits, scalesToZero: scalesToZero, runCreatedAt: created))
    }

    func request(_ method: String = "GET", _ path: String, headers: [(String, String)] = [], body: Data? = nil,
                 chunked: Bool = false) async throws -> RawResponse {
        try await RawHTTP.request(port: port, method: method, path: path, headers: headers, body: body, chunked: chunked)
    }

    func stop() {
        server?.cancel()
        for p in apps where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: dir)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}


struct TestFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

struct RawResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

/// HTTP/1.1 over a plain blocking socket on a thread of its own: exact control of the bytes
/// sent (hop-by-hop headers, Upgrade) and of when response bytes arrive.
final class RawHTTP: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, timeout: TimeInterval = 15) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { close(fd); throw TestFailure(message: "connect failed: \(errno)") }
    }

    deinit { close(fd) }

    /// Ends the connection from this side.
    func hangUp() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads more bytes; false at end of stream or timeout.
    @discardableResult
    func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    func take(_ n: Int) -> [UInt8]? {
        while buffer.count < n { if !fill() { return nil } }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    func line() -> String? {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let bytes = buffer[0...i]
                buffer.removeFirst(i + 1)
                return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
            }
            if !fill() { return nil }
        }
    }

    func readHead() -> (Int, [(String, String)])? {
        guard let status = line() else { return nil }
        let parts = status.split(separator: " ")
        guard parts.count >= 2, let code = Int(parts[1]) else { return nil }
        var headers: [(String, String)] = []
        while let l = line(), !l.isEmpty {
            if let colon = l.firstIndex(of: ":") {
                headers.append((String(l[..<colon]), l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        if code == 100 { return readHead() }
        return (code, headers)
    }

    /// The body, given the head's framing; `onChunk` sees each chunk as it arrives.
    func readBody(_ headers: [(String, String)], method: String, status: Int, onChunk: (String) -> Void = { _ in }) -> String {
        func h(_ n: String) -> String? { headers.first { $0.0.lowercased() == n }?.1 }
        if method == "HEAD" || status == 204 || status == 304 || status == 101 { return "" }
        if h("transfer-encoding")?.lowercased() == "chunked" {
            var out = ""
            while let sizeLine = line(), let size = Int(sizeLine.split(separator: ";")[0], radix: 16) {
                if size == 0 { _ = line(); break }
                guard let data = take(size) else { break }
                let text = String(decoding: data, as: UTF8.self)
                onChunk(text)
                out += text
                _ = take(2)
            }
            return out
        }
        if let length = h("content-length").flatMap(Int.init) {
            return take(length).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        while fill() {}
        let out = String(decoding: buffer, as: UTF8.self)
        buffer = []
        return out
    }

    static func requestBytes(method: String, path: String, headers: [(String, String)], body: Data?, chunked: Bool) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: proxy.test\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        if let body {
            text += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: \(body.count)\r\n"
        }
        text += "\r\n"
        var bytes = Array(text.utf8)
        if let body {
            if chunked {
                bytes += Array("\(String(body.count, radix: 16))\r\n".utf8) + Array(body) + Array("\r\n0\r\n\r\n".utf8)
            } else {
                bytes += Array(body)
            }
        }
        return bytes
    }

    /// One request on a fresh connection, on a thread of its own (GCD's global queues run only
    /// as many blocking items at once as there are cores).
    static func request(port: Int, method: String, path: String, headers: [(String, String)] = [], body: Data? = nil,
                        chunked: Bool = false, onChunk: @escaping @Sendable (String) -> Void = { _ in }) async throws -> RawResponse {
        try await withCheckedThrowingContinuation { c in
            Thread.detachNewThread {
                do {
                    let conn = try RawHTTP(port: port)
                    conn.send(requestBytes(method: method, path: path, headers: headers, body: body, chunked: chunked))
                    guard let (status, head) = conn.readHead() else { throw TestFailure(message: "no response to \(method) \(path)") }
                    let text = conn.readBody(head, method: method, status: status, onChunk: onChunk)
                    c.resume(returning: RawResponse(status: status, headers: head, body: text))
                } catch {
                    c.resume(throwing: error)
                }
            }
        }
    }
}

