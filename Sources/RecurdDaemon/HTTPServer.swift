import Logging
import NIOCore
import Synchronization
import NIOHTTP1
import NIOPosix

/// `/metrics` (Prometheus text format) and `/healthz` on a loopback port, on SwiftNIO.
final class HTTPServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel

    /// The port actually bound (useful when asked for port 0).
    let port: Int

    /// Binds `host:port`. `metrics` renders the exposition; `healthy` says whether to answer 200.
    init(host: String, port: Int, metrics: @escaping @Sendable () -> [UInt8], healthy: @escaping @Sendable () -> Bool) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // This server's own count, shared by its child channels' initialisers.
        let open = Connections()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                // A client that opens a connection and never finishes its request (or says
                // nothing) is closed after `idleSeconds`: otherwise each holds a file
                // descriptor for good, and enough of them leave none for ZeroMQ's connections.
                // At most `maxConnections` at once, each for at most `lifetimeSeconds`: the idle
                // timeout alone is reset by every byte, so a client sending one byte every few
                // seconds would hold its connection (and a descriptor) for days.
                guard open.connections.add(1, ordering: .relaxed).newValue <= Self.maxConnections else {
                    open.connections.subtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.connections.subtract(1, ordering: .relaxed) }
                channel.eventLoop.scheduleTask(in: .seconds(Self.lifetimeSeconds)) { channel.close(promise: nil) }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: .seconds(Self.idleSeconds)))
                    try sync.configureHTTPServerPipeline()
                    try sync.addHandler(Handler(metrics: metrics, healthy: healthy))
                }
            }
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        self.port = channel.localAddress?.port ?? port
    }

    /// How long a connection may send nothing before it is closed.
    static let idleSeconds: Int64 = 10
    /// How long any connection may stay open (a scrape takes milliseconds).
    static let lifetimeSeconds: Int64 = 30
    /// Connections open at once; more are closed as they come.
    static let maxConnections = 64

    /// A count of open connections.
    private final class Connections: Sendable { let connections = Atomic<Int>(0) }

    func shutdown() async {
        try? await channel.close().get()
        try? await group.shutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let metrics: @Sendable () -> [UInt8]
        let healthy: @Sendable () -> Bool

        init(metrics: @escaping @Sendable () -> [UInt8], healthy: @escaping @Sendable () -> Bool) {
            self.metrics = metrics
            self.healthy = healthy
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let request) = unwrapInboundIn(data) else { return }
            let path = request.uri.split(separator: "?").first.map(String.init) ?? request.uri
            let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
            switch (path, request.method == .GET || request.method == .HEAD) {
            case ("/metrics", true):
                (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics())
            case ("/healthz", true):
                let ok = healthy()
                (status, contentType, body) = (ok ? .ok : .serviceUnavailable, "text/plain",
                                               Array((ok ? "ok\n" : "unhealthy: the serving loop is stalled, the output is not bound, the state directory is gone, or the store holds the input back (the log says which)\n").utf8))
            case ("/metrics", false), ("/healthz", false):
                (status, contentType, body) = (.methodNotAllowed, "text/plain", Array("\(path) answers GET and HEAD\n".utf8))
            default:
                (status, contentType, body) = (.notFound, "text/plain", Array("not found: try /metrics or /healthz\n".utf8))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.count)")
            headers.add(name: "Connection", value: "close")
            if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            // HEAD: the headers GET would send, no body.
            if request.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
