import Logging
import ServiceLifecycle

/// `/metrics` and `/healthz`.
struct HTTPService: Service {
    let host: String
    let port: Int
    let metrics: DaemonMetrics
    let handle: DaemonHandle
    let logger: Logger
    let ready: ReadySignal

    init(host: String, port: Int, metrics: DaemonMetrics, handle: DaemonHandle, logger: Logger, ready: ReadySignal) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.handle = handle
        self.logger = logger
        self.ready = ready
        ready.expectHTTP()
    }

    func run() async throws {
        let server: HTTPServer
        do {
            server = try await HTTPServer(host: host, port: port, metrics: { [metrics] in metrics.render() }, healthy: { [handle] in handle.isHealthy })
        } catch {
            let e = DaemonError("http \(host):\(port): \(error) — is another process using the port? Pass --http HOST:PORT (or --http '' to turn it off)")
            ready.fail(e)
            throw e
        }
        logger.notice("http", metadata: ["address": "\(host):\(server.port)", "paths": "/metrics /healthz"])
        ready.http(port: server.port)
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
