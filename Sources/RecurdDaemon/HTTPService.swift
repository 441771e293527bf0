import Logging
import ServiceLifecycle

/// `/metrics` and `/healthz`.
struct HTTPService: Service {
    let host: String
    let port: Int
    let metrics: DaemonMetrics
    let loop: ServingLoop
    let logger: Logger
    let ready: ReadySignal

    init(host: String, port: Int, metrics: DaemonMetrics, loop: ServingLoop, logger: Logger, ready: ReadySignal) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.loop = loop
        self.logger = logger
        self.ready = ready
        ready.expectHTTP()
    }

    func run() async throws {
        let server: HTTPServer
        do {
            server = try await HTTPServer(host: host, port: port, metrics: { [metrics] in metrics.render() }, healthy: { [loop] in loop.isHealthy })
        } catch {
            let e = DaemonError("http \(host):\(port): \(error)")
            ready.fail(e)
            throw e
        }
        logger.notice("http", metadata: ["address": "\(host):\(server.port)", "paths": "/metrics /healthz"])
        ready.http(port: server.port)
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
