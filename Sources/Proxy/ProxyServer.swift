import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The front door on the server's address: `/proxy/services/…`, `/proxy/models/…` and
/// `/metrics` are served here on SwiftNIO directly; everything else goes to the API server
/// (Hummingbird on a Unix socket) through the same forwarding path.
public final class ProxyServer: Service, Sendable {
    let host: String
    let port: Int
    let shared: ProxyShared
    let group: MultiThreadedEventLoopGroup
    let onListening: @Sendable (Int) async -> Void
    let listener: ProxyListener?
    let tls: NIOSSLContext?

    public init(host: String, port: Int, listener: ProxyListener? = nil, table: RouteTable, settings: ProxySettings = ProxySettings(),
                api: UpstreamAddress?, group: MultiThreadedEventLoopGroup = .singleton, logger: Logger,
                authorize: @escaping @Sendable (String?, String) -> Access,
                metrics: @escaping @Sendable () -> String = { "" }, tls: NIOSSLContext? = nil,
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.tls = tls
        self.host = host
        self.port = port
        self.listener = listener
        self.group = group
        self.onListening = onListening
        shared = ProxyShared(table: table, settings: settings, group: group, api: api, logger: logger,
                             authorize: authorize, metrics: metrics, secure: tls != nil)
    }

    public func run() async throws {
        let shared = self.shared
        let listener: ProxyListener
        if let bound = self.listener { listener = bound } else { listener = try await ProxyListener.bind(host: host, port: port, group: group) }
        let channel = listener.channel
        let tls = self.tls
        listener.accept { channel in
            channel.eventLoop.makeCompletedFuture {
                let handler = ProxyHandler(shared: shared)
                let upgrader = TunnelUpgrader(shared: shared, handler: handler)
                let sync = channel.pipeline.syncOperations
                if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                try sync.configureHTTPServerPipeline(withPipeliningAssistance: true,
                                                     withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
                                                     withErrorHandling: true,
                                                     withOutboundHeaderValidation: false)
                try sync.addHandler(handler)
            }
        }
        await onListening(listener.port)
        // Graceful shutdown drains: stop accepting, let every connection finish the request it
        // is serving (idle keep-alive connections close at once), within `drainTimeout`.
        let drain = DrainState(eventLoop: channel.eventLoop)
        let bound = shared.settings.drainTimeout
        try? await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await channel.closeFuture.get()
                try await drain.wait()
            } onGracefulShutdown: {
                let quiesced = channel.eventLoop.makePromise(of: Void.self)
                guard drain.start(timeout: bound, onTimeout: {
                    shared.logger.warning("requests still in flight after the drain timeout; stopping anyway",
                                          metadata: ["timeout_s": "\(bound.nanoseconds / 1_000_000_000)"])
                }) else { return quiesced.succeed() }
                quiesced.futureResult.whenComplete { _ in drain.finish() }
                listener.quiescing.initiateShutdown(promise: quiesced)
            }
        } onCancel: {
            channel.close(promise: nil)
            drain.finish()
        }
        drain.finish()
    }
}

/// The proxy's drain on shutdown: started once, finished once (all connections closed, the
/// timeout, or cancellation), waited for only when started.
final class DrainState: Sendable {
    private struct State {
        var started = false
        var finished = false
        var timer: Scheduled<Void>?
    }

    private let state = Mutex(State())
    private let done: EventLoopPromise<Void>

    init(eventLoop: EventLoop) { done = eventLoop.makePromise(of: Void.self) }

    /// Starts the drain (false if it had started); `onTimeout` runs if it outlasts `timeout`.
    func start(timeout: TimeAmount, onTimeout: @escaping @Sendable () -> Void) -> Bool {
        let first = state.withLock { s -> Bool in
            guard !s.started, !s.finished else { return false }
            s.started = true
            return true
        }
        guard first else { return false }
        let timer = done.futureResult.eventLoop.scheduleTask(in: timeout) { [self] in
            if isRunning { onTimeout() }
            finish()
        }
        let cancelNow = state.withLock { s -> Bool in
            s.timer = timer
            return s.finished
        }
        if cancelNow { timer.cancel() }
        return true
    }

    private var isRunning: Bool { state.withLock { $0.started && !$0.finished } }

    func finish() {
        let (complete, timer) = state.withLock { s -> (Bool, Scheduled<Void>?) in
            guard !s.finished else { return (false, nil) }
            s.finished = true
            return (true, s.timer)
        }
        guard complete else { return }
        timer?.cancel()
        done.succeed()
    }

    /// Returns once finished, if the drain started; at once otherwise.
    func wait() async throws {
        guard state.withLock({ $0.started }) else { return }
        try await done.futureResult.get()
    }
}

/// The server's listening socket, bound before anything else starts (so a port in use ends the
/// server at once, naming the address) and accepting only once the proxy is ready: until
/// `accept`, connections wait in the backlog.
public final class ProxyListener: Sendable {
    let channel: Channel
    public let port: Int
    /// Tracks accepted connections, to drain them on shutdown.
    let quiescing: ServerQuiescingHelper
    typealias SetUp = @Sendable (Channel) -> EventLoopFuture<Void>
    private final class Initializer: Sendable { let setUp = Mutex<SetUp?>(nil) }
    private let initializer: Initializer

    private init(channel: Channel, port: Int, quiescing: ServerQuiescingHelper, initializer: Initializer) {
        self.channel = channel
        self.port = port
        self.quiescing = quiescing
        self.initializer = initializer
    }

    /// - Parameter sharedPort: other processes may listen on the same port (`SO_REUSEPORT`: the
    ///   replicas of a gateway on one machine; the kernel spreads connections over them).
    public static func bind(host: String, port: Int, group: MultiThreadedEventLoopGroup = .singleton, sharedPort: Bool = false) async throws -> ProxyListener {
        let initializer = Initializer()
        let quiescing = ServerQuiescingHelper(group: group)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: sharedPort ? 1 : 0)
            .serverChannelOption(.autoRead, value: false)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard let setUp = initializer.setUp.withLock({ $0 }) else { return channel.close() }
                return setUp(channel)
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            return ProxyListener(channel: channel, port: channel.localAddress?.port ?? port, quiescing: quiescing, initializer: initializer)
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw ProxyServerError(message: "cannot listen on \(host):\(port): the address is already in use (another Setpoint server? choose another with --port)")
        } catch let error as IOError where error.errnoCode == EACCES {
            throw ProxyServerError(message: "cannot listen on \(host):\(port): permission denied (ports below 1024 need root; choose another with --port)")
        } catch {
            throw ProxyServerError(message: "cannot listen on \(host):\(port): \(error)")
        }
    }

    /// Starts accepting connections, each set up by `setUp`.
    func accept(_ setUp: @escaping @Sendable (Channel) -> EventLoopFuture<Void>) {
        initializer.setUp.withLock { $0 = setUp }
        channel.setOption(.autoRead, value: true).whenComplete { _ in }
    }

    /// Closes the socket (a server that fails to start after binding).
    public func close() { channel.close(promise: nil) }
}

public struct ProxyServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
