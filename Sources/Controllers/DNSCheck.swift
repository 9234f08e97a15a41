import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a name resolves to, looked up with the system resolver (`getaddrinfo`, off the
/// cooperative pool, bounded) and remembered for a minute: the gateway controller asks on every
/// pass.
public final class DNSCheck: Sendable {
    public enum Answer: Sendable, Equatable {
        case addresses([String])
        /// The resolver's words (`Name or service not known`).
        case failed(String)
    }

    private let cache = Mutex<[String: (at: Date, answer: Answer)]>([:])
    let ttl: TimeInterval

    public init(ttl: TimeInterval = 60) { self.ttl = ttl }

    public func lookup(_ name: String, now: Date = Date()) async -> Answer {
        if let hit = cache.withLock({ $0[name] }), now.timeIntervalSince(hit.at) < ttl { return hit.answer }
        let answer = await withCheckedContinuation { (done: CheckedContinuation<Answer, Never>) in
            Thread.detachNewThread { done.resume(returning: Self.resolve(name)) }
        }
        cache.withLock { $0[name] = (now, answer) }
        return answer
    }

    static func resolve(_ name: String) -> Answer {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(name, nil, &hints, &result)
        guard code == 0 else { return .failed(String(cString: gai_strerror(code))) }
        defer { freeaddrinfo(result) }
        var out: Set<String> = []
        var p = result
        while let ai = p {
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                out.insert(String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            p = ai.pointee.ai_next
        }
        return .addresses(out.sorted())
    }
}
