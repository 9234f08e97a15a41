import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// WebSockets through the proxy: the `Upgrade: websocket` request goes to a replica as is; when
/// the replica answers 101, the client gets the same 101 and from then on bytes flow both ways
/// untouched until either side closes. Anything else (no such service, no token, a replica
/// that refuses) is handled as an ordinary request by `ProxyHandler`.
final class TunnelUpgrader: HTTPServerProtocolUpgrader, @unchecked Sendable {
    let supportedProtocol = "websocket"
    let requiredUpgradeHeaders: [String] = []
    let shared: ProxyShared
    unowned let handler: ProxyHandler
    /// The replica's connection and what it sent after its 101, between the two calls.
    private var upstream: (channel: Channel, reader: UpgradeResponseReader, endpoint: Endpoint, route: ServiceRoute)?

    init(shared: ProxyShared, handler: ProxyHandler) {
        self.shared = shared
        self.handler = handler
    }

    struct NotUpgrading: Error {}

    func buildUpgradeResponse(channel: Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        let loop = channel.eventLoop
        let uri = upgradeRequest.uri
        let path = uri.firstIndex(of: "?").map { uri[..<$0] } ?? uri[...]
        let query = uri.firstIndex(of: "?").map { uri[uri.index(after: $0)...] }
        guard case .forward(let route, var head)? = handler.resolveRequest(upgradeRequest, path: path, query: query,
                                                                           keeping: ["upgrade", "connection"]) else {
            return loop.makeFailedFuture(NotUpgrading())
        }
        head.headers.replaceOrAdd(name: "Connection", value: "Upgrade")
        route.stats.arrived()
        let promise = loop.makePromise(of: HTTPHeaders.self)
        let started = NIODeadline.now()
        attempt(route, head, initialHeaders: initialResponseHeaders, loop: loop, promise: promise, started: started)
        return promise.futureResult.map { headers in
            route.stats.finished(status: 101, seconds: Double((NIODeadline.now() - started).nanoseconds) / 1e9)
            return headers
        }
    }

    /// A replica now, or when one is ready (bounded by the hold timeout, as for any request).
    private func attempt(_ route: ServiceRoute, _ head: HTTPRequestHead, initialHeaders: HTTPHeaders, loop: EventLoop, promise: EventLoopPromise<HTTPHeaders>, started: NIODeadline) {
        if let (_, endpoint) = shared.table.pick(route.key) {
            return connect(route, endpoint, head, initialHeaders: initialHeaders, loop: loop, promise: promise)
        }
        let bound = NIOLoopBound(self, eventLoop: loop)
        let done = NIOLoopBound(Box(false), eventLoop: loop)
        let outcome = shared.table.hold(route.key, limit: shared.settings.holdQueue) { ready in
            loop.execute {
                guard !done.value.value else { return }
                done.value.value = true
                route.stats.holding(-1)
                guard ready != nil else { return promise.fail(NotUpgrading()) }
                bound.value.attempt(route, head, initialHeaders: initialHeaders, loop: loop, promise: promise, started: started)
            }
        }
        switch outcome {
        case .ready: attempt(route, head, initialHeaders: initialHeaders, loop: loop, promise: promise, started: started)
        case .gone, .full: promise.fail(NotUpgrading())
        case .waiting(let id):
            route.stats.holding(1)
            shared.table.demandAtZero(project: route.project, run: route.run)
            let timeout = shared.settings.holdTimeout
            loop.assumeIsolated().scheduleTask(in: timeout) {
                guard !done.value.value else { return }
                done.value.value = true
                route.stats.holding(-1)
                self.shared.table.cancelHold(route.key, id: id)
                self.handler.rejectedUpgrade = (.serviceUnavailable, "Service \(route.key) has no ready replica after \(timeout.nanoseconds / 1_000_000_000) s",
                                                [("Retry-After", "5")])
                promise.fail(NotUpgrading())
            }
        }
    }

    private func connect(_ route: ServiceRoute, _ endpoint: Endpoint, _ head: HTTPRequestHead, initialHeaders: HTTPHeaders, loop: EventLoop,
                         promise: EventLoopPromise<HTTPHeaders>) {
        let reader = UpgradeResponseReader()
        // The channel is made on `loop`, where the reader lives.
        let boundReader = NIOLoopBound(reader, eventLoop: loop)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(shared.settings.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(boundReader.value) }
            }
        let table = shared.table
        endpoint.target.connect(bootstrap).assumeIsolated().whenComplete { result in
            switch result {
            case .failure:
                table.release(endpoint)
                promise.fail(NotUpgrading())
            case .success(let channel):
                var request = channel.allocator.buffer(capacity: 512)
                request.writeString("\(head.method.rawValue) \(head.uri) HTTP/1.1\r\n")
                for (name, value) in head.headers { request.writeString("\(name): \(value)\r\n") }
                request.writeString("\r\n")
                channel.writeAndFlush(request, promise: nil)
                reader.response.futureResult.assumeIsolated().whenComplete { response in
                    guard case .success(let (status, headers)) = response, status == 101 else {
                        table.release(endpoint)
                        channel.close(promise: nil)
                        return promise.fail(NotUpgrading())
                    }
                    self.upstream = (channel, reader, endpoint, route)
                    var reply = initialHeaders
                    for (name, value) in headers where !["connection", "upgrade", "content-length", "transfer-encoding"].contains(name.lowercased()) {
                        reply.add(name: name, value: value)
                    }
                    promise.succeed(reply)
                }
            }
        }
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        guard let (channel, reader, endpoint, _) = upstream else {
            context.close(promise: nil)
            return context.eventLoop.makeSucceededVoidFuture()
        }
        upstream = nil
        let table = shared.table
        // The endpoint counts the tunnel as a request in flight until it closes (drain waits).
        channel.closeFuture.whenComplete { _ in table.release(endpoint) }
        let (mine, theirs) = GlueHandler.matchedPair()
        do {
            context.pipeline.syncOperations.removeHandler(handler).whenComplete { _ in }
            try context.pipeline.syncOperations.addHandler(mine)
            try channel.pipeline.syncOperations.addHandler(theirs)
            channel.pipeline.syncOperations.removeHandler(reader).whenComplete { _ in }
        } catch {
            context.close(promise: nil)
            channel.close(promise: nil)
        }
        return context.eventLoop.makeSucceededVoidFuture()
    }
}

final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}

/// Reads a replica's response to an upgrade request up to the end of its head; bytes after it
/// belong to the new protocol and go to the handler after this one when it is removed.
final class UpgradeResponseReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    var response: EventLoopPromise<(Int, [(String, String)])>!
    private var buffer: ByteBuffer?
    private var headDone = false
    static let maxHead = 64 * 1024

    func handlerAdded(context: ChannelHandlerContext) {
        response = context.eventLoop.makePromise()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        guard !headDone, let view = buffer?.readableBytesView else { return }
        let bytes = Array(view)
        guard let end = Self.headEnd(bytes) else {
            if bytes.count > Self.maxHead {
                headDone = true
                response.fail(TunnelUpgrader.NotUpgrading())
                context.close(promise: nil)
            }
            return
        }
        headDone = true
        buffer!.moveReaderIndex(forwardBy: end)
        let text = String(decoding: bytes[..<end], as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        let status = statusLine.count >= 2 ? Int(statusLine[1]) ?? 0 : 0
        let headers = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        response.succeed((status, headers))
    }

    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !headDone {
            headDone = true
            response.fail(TunnelUpgrader.NotUpgrading())
        }
        context.fireChannelInactive()
    }

    /// A connect that failed after the channel was set up never makes it active (so no
    /// `channelInactive`): the pipeline is torn down, and the response is failed here, not leaked.
    func handlerRemoved(context: ChannelHandlerContext) {
        if !headDone {
            headDone = true
            response.fail(TunnelUpgrader.NotUpgrading())
        }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let rest = buffer, rest.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(rest))
            context.fireChannelReadComplete()
        }
        buffer = nil
        context.leavePipeline(removalToken: removalToken)
    }
}

/// Joins two channels: what one reads, the other writes, with backpressure and half-closes
/// (the NIO examples' glue handler).
final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let a = GlueHandler(), b = GlueHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if !context.channel.isActive { partner?.partnerCloseFull() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private func partnerWriteEOF() { context?.close(mode: .output, promise: nil) }
    private func partnerCloseFull() { context?.close(promise: nil) }
    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.partnerCloseFull() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, case .inputClosed = e { partner?.partnerWriteEOF() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable { context.read() } else { pendingRead = true }
    }
}
