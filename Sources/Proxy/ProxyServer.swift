import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The front door on the server's address: `/proxy/services/…`, `/proxy/models/…` and
/// `/metrics` are served here on SwiftNIO directly; everything else goes to the API server
/// (Hummingbird on a Unix socket) through the same forwarding path.
public final class ProxyServer: Service, Sendable {
    let host: String
    let port: Int
    let shared: ProxyShared
    let group: MultiThreadedEventLoopGroup
    let onListening: @Sendable (Int) async -> Void

    public init(host: String, port: Int, table: RouteTable, settings: ProxySettings = ProxySettings(), api: UpstreamAddress?,
                group: MultiThreadedEventLoopGroup = .singleton, logger: Logger,
                authorize: @escaping @Sendable (String?, String) -> Access,
                metrics: @escaping @Sendable () -> String = { "" },
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.host = host
        self.port = port
        self.group = group
        self.onListening = onListening
        shared = ProxyShared(table: table, settings: settings, group: group, api: api, logger: logger,
                             authorize: authorize, metrics: metrics)
    }

    public func run() async throws {
        let shared = self.shared
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ProxyHandler(shared: shared)
                    let upgrader = TunnelUpgrader(shared: shared, handler: handler)
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: true,
                                                         withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
                                                         withErrorHandling: true,
                                                         withOutboundHeaderValidation: false)
                    try sync.addHandler(handler)
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            throw ProxyServerError(message: "cannot listen on \(host):\(port): \(error)")
        }
        await onListening(channel.localAddress?.port ?? port)
        try? await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await channel.closeFuture.get()
            } onGracefulShutdown: {
                channel.close(promise: nil)
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

public struct ProxyServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
