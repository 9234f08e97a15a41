import NIOCore
import NIOHTTP1
import NIOPosix

/// Receives what an upstream connection reads while it serves an exchange.
protocol UpstreamDelegate: AnyObject {
    func upstreamRead(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(_ writable: Bool)
    /// The connection closed or failed; `error` is nil for a plain close.
    func upstreamClosed(_ error: Error?)
    func upstreamTimedOut()
}

/// The last handler of an upstream connection's pipeline: hands response parts to the
/// exchange using the connection, and closes connections that idle in the pool too long.
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    weak var delegate: UpstreamDelegate?
    var closed = false
    var onClose: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delegate?.upstreamRead(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        onClose?()
        onClose = nil
        let d = delegate
        delegate = nil
        d?.upstreamClosed(nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let d = delegate
        delegate = nil
        d?.upstreamClosed(error)
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else { return context.fireUserInboundEventTriggered(event) }
        if let d = delegate {
            d.upstreamTimedOut()
        } else {
            context.close(promise: nil)   // idle in the pool too long
        }
    }
}

/// A keep-alive connection to one upstream.
final class UpstreamConnection {
    let channel: Channel
    let handler: UpstreamHandler
    let target: UpstreamAddress
    /// Served an exchange before (a reused connection may have been closed by the peer).
    var reused = false

    init(channel: Channel, handler: UpstreamHandler, target: UpstreamAddress) {
        self.channel = channel
        self.handler = handler
        self.target = target
    }
}

/// Keep-alive connections of one event loop, per upstream; used only on that loop.
final class ConnectionPool {
    let eventLoop: EventLoop
    let connectTimeout: TimeAmount
    let maxIdle: Int
    private var idle: [UpstreamAddress: [UpstreamConnection]] = [:]

    init(eventLoop: EventLoop, connectTimeout: TimeAmount, maxIdle: Int) {
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.maxIdle = maxIdle
    }

    /// An idle connection to `target`, or a new one. `readTimeout`: the longest silence while
    /// waiting for the upstream (nil: none, for long-lived API streams).
    /// An idle keep-alive connection to `target`, if there is one.
    func idleConnection(_ target: UpstreamAddress) -> UpstreamConnection? {
        while let conn = idle[target]?.popLast() {
            if conn.channel.isActive && !conn.handler.closed {
                conn.handler.onClose = nil
                conn.reused = true
                return conn
            }
        }
        return nil
    }

    func acquire(_ target: UpstreamAddress, readTimeout: TimeAmount?) -> EventLoopFuture<UpstreamConnection> {
        eventLoop.preconditionInEventLoop()
        if let conn = idleConnection(target) { return eventLoop.makeSucceededFuture(conn) }
        // The channel is made on this pool's event loop, where the handler lives.
        let handler = NIOLoopBound(UpstreamHandler(), eventLoop: eventLoop)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    // Headers were validated by the server side's parser on the way in.
                    try sync.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    if let readTimeout { try sync.addHandler(IdleStateHandler(readTimeout: readTimeout)) }
                    try sync.addHandler(handler.value)
                }
            }
        return target.connect(bootstrap).map { UpstreamConnection(channel: $0, handler: handler.value, target: target) }
    }

    /// Back to the pool after a complete exchange.
    func release(_ conn: UpstreamConnection) {
        eventLoop.preconditionInEventLoop()
        conn.handler.delegate = nil
        guard conn.channel.isActive, !conn.handler.closed, (idle[conn.target]?.count ?? 0) < maxIdle else {
            conn.channel.close(promise: nil)
            return
        }
        let target = conn.target
        conn.handler.onClose = { [weak self, weak conn] in
            guard let self, let conn else { return }
            self.idle[target]?.removeAll { $0 === conn }
        }
        idle[target, default: []].append(conn)
    }

    func closeAll() {
        for list in idle.values { for c in list { c.channel.close(promise: nil) } }
        idle = [:]
    }
}
