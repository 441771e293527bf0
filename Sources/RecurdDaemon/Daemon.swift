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

/// A start-up failure, as one line.
public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What the daemon bound, once ready.
public struct ReadyInfo: Sendable {
    public var inputs: [String]
    public var output: String
    public var control: String?
    public var httpPort: Int?
}

/// One-shot readiness: the serving thread reports its endpoints, HTTP its port.
final class ReadySignal: Sendable {
    private struct State {
        var info: ReadyInfo?
        var failure: (any Error)?
        var httpPending: Bool
        var waiters: [CheckedContinuation<ReadyInfo, any Error>] = []
    }
    private let state = Mutex(State(httpPending: false))

    func expectHTTP() { state.withLock { $0.httpPending = true } }

    func serving(_ info: ReadyInfo) { update { $0.info = info } }
    func http(port: Int) { update { $0.httpPending = false; $0.info?.httpPort = port } }
    func fail(_ error: any Error) { update { $0.failure = error } }

    private func update(_ change: (inout State) -> Void) {
        let (waiters, result): ([CheckedContinuation<ReadyInfo, any Error>], Result<ReadyInfo, any Error>?) = state.withLock { s in
            change(&s)
            if let f = s.failure { defer { s.waiters = [] }; return (s.waiters, .failure(f)) }
            if let i = s.info, !s.httpPending { defer { s.waiters = [] }; return (s.waiters, .success(i)) }
            return ([], nil)
        }
        if let result { for w in waiters { w.resume(with: result) } }
    }

    func wait() async throws -> ReadyInfo {
        try await withCheckedThrowingContinuation { c in
            let result: Result<ReadyInfo, any Error>? = state.withLock { s in
                if let f = s.failure { return .failure(f) }
                if let i = s.info, !s.httpPending { return .success(i) }
                s.waiters.append(c)
                return nil
            }
            if let result { c.resume(with: result) }
        }
    }
}

import Synchronization

/// Runs the serving loop on a thread of its own (it blocks in `zmq_poll`, which must never
/// happen on the cooperative pool).
struct ServingService: Service {
    let loop: ServingLoop
    let logger: Logger
    let ready: ReadySignal

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        let context = try ZMQContext()
                        let endpoints = try loop.bind(context: context)
                        logger.notice("serving", metadata: [
                            "input": "\(endpoints.boundInputs.joined(separator: ","))", "output": "\(endpoints.boundOutput)",
                            "control": "\(endpoints.boundControl ?? "off")", "zmq": "\(ZMQContext.libraryVersion)",
                        ])
                        ready.serving(ReadyInfo(inputs: endpoints.boundInputs, output: endpoints.boundOutput, control: endpoints.boundControl, httpPort: nil))
                        loop.serve(endpoints)
                        done.resume()
                    } catch {
                        ready.fail(DaemonError("\(error)"))
                        done.resume(throwing: DaemonError("\(error)"))
                    }
                }
                thread.name = "recurd-serving"
                thread.start()
            }
        } onGracefulShutdown: {
            loop.requestStop()
        }
    }
}

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

/// Tells systemd when recurd is ready, how it is doing, that it is alive, and that it stops.
struct SystemdService: Service {
    let notifier: SystemdNotifier
    let loop: ServingLoop
    let ready: ReadySignal

    func run() async throws {
        guard (try? await ready.wait()) != nil else { return }
        notifier.notify("READY=1\nSTATUS=\(loop.status)")
        let interval = min(notifier.watchdogInterval ?? .seconds(5), .seconds(5))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: interval)
            var message = "STATUS=\(loop.status)"
            // Only a turning serving loop keeps the watchdog fed.
            if notifier.watchdogInterval != nil && loop.isHealthy { message += "\nWATCHDOG=1" }
            notifier.notify(message)
        }
        notifier.notify("STOPPING=1")
    }
}
