import Foundation
import Logging
import RecurdModelFile
import ServiceLifecycle
import ZeroMQ

/// `recurd serve`: the serving thread and the HTTP server as services in a `ServiceGroup` that
/// traps SIGTERM and SIGINT and shuts down gracefully (the serving thread finishes the batch in
/// flight and publishes it before the process exits).
public final class Daemon: Sendable {
    public let configuration: ServeConfiguration
    let logger: Logger
    let metrics = DaemonMetrics()
    let loop: ServingLoop
    private let ready = ReadySignal()

    /// Loads the model file (if any); throws a message naming the file on any problem.
    public init(configuration: ServeConfiguration, logger: Logger) throws {
        if let problem = configuration.problem() { throw DaemonError(problem) }
        self.configuration = configuration
        self.logger = logger
        var file: ModelFile?
        if let path = configuration.model {
            guard let data = FileManager.default.contents(atPath: path) else { throw DaemonError("\(path): no such model file") }
            do { file = try ModelFile.decode([UInt8](data), file: path) } catch { throw DaemonError(error.description) }
        }
        loop = ServingLoop(configuration: configuration, model: file, modelPath: configuration.model, logger: logger, metrics: metrics)
    }

    /// Runs until SIGTERM/SIGINT (or until `stop()`); returns after a clean shutdown.
    public func run(handleSignals: Bool = true) async throws {
        var services: [any Service] = [ServingService(loop: loop, logger: logger, ready: ready)]
        if !configuration.http.isEmpty {
            let (host, port) = try Self.hostPort(configuration.http)
            services.append(HTTPService(host: host, port: port, metrics: metrics, loop: loop, logger: logger, ready: ready))
        }
        let notifier = SystemdNotifier()
        if notifier.enabled { services.append(SystemdService(notifier: notifier, loop: loop, ready: ready)) }
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger))
        try await withTaskCancellationHandler {
            try await group.run()
        } onCancel: {
            self.loop.requestStop()
        }
    }

    /// Stops the serving loop (as SIGTERM does).
    public func stop() { loop.requestStop() }

    /// Waits until the sockets are bound; returns the resolved endpoints.
    public func waitUntilReady() async throws -> ReadyInfo { try await ready.wait() }

    static func hostPort(_ s: String) throws -> (String, Int) {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else {
            throw DaemonError("http: '\(s)' is not HOST:PORT")
        }
        return (String(s[..<colon]), port)
    }
}
