import Foundation
import Logging
import RecurdModelFile
import RecurdStore
import ServiceLifecycle
import ZeroMQ

/// `recurd serve`: start-up (state directory, the model to start from, the store), then the
/// serving thread, the store's thread, HTTP, systemd notification and SIGHUP reload as services
/// in a `ServiceGroup` that traps SIGTERM and SIGINT and shuts down gracefully (the serving
/// thread finishes the work in flight, publishes it, checkpoints and flushes before the process
/// exits).
public final class Daemon: Sendable {
    public let configuration: ServeConfiguration
    let source: SettingsSource?
    let logger: Logger
    let logControl: LogControl
    let metrics = DaemonMetrics()
    public let handle = DaemonHandle()
    let loop: LoopBox
    let worker: StoreWorker
    let stateDirectory: StateDirectoryBox
    private let ready = ReadySignal()

    /// `source`: where the settings came from, so SIGHUP can read them again (nil: no reload).
    public init(configuration c: ServeConfiguration, source: SettingsSource? = nil, logControl: LogControl) throws {
        if let problem = c.problem() { throw DaemonError(problem) }
        configuration = c
        self.source = source
        self.logControl = logControl
        let logger = logControl.logger()
        self.logger = logger
        if c.learn, let warning = c.learning.warning { logger.warning("\(warning)") }
        var directory: StateDirectory?
        var store: StreamStore?
        if let path = c.stateDirectory {
            do { directory = try StateDirectory(path: path) } catch { throw DaemonError("\(error)") }
            if let why = directory?.directoryLockProblem {
                logger.warning("the state directory itself cannot be locked (\(why)); only its lock file keeps a second daemon out, so do not delete it while recurd runs",
                               metadata: ["path": "\(path)"])
            }
        }
        let initial = try Self.chooseModel(c, directory: directory, logger: logger)
        if let a = initial?.file.model.architecture, let problem = Publisher.widthProblem(a, topK: c.topK) { throw DaemonError(problem) }
        if let directory {
            if initial?.fromCheckpoint == true, !FileManager.default.fileExists(atPath: directory.storePath) {
                logger.warning("""
                    the state directory has checkpoints but no stream store: every stream starts from a zero state; \
                    if streams.sqlite was moved away, stop recurd and put it back (with its -wal file, if any)
                    """, metadata: ["store": "\(directory.storePath)"])
            }
            do { store = try StreamStore(path: directory.storePath) } catch { throw DaemonError("stream store: \(error)") }
            logger.notice("state directory", metadata: ["path": "\(directory.path)", "stored_streams": "\(store!.count)"])
        } else {
            logger.notice("no --state-dir: stream state and what the model learns are lost when the daemon stops")
        }
        stateDirectory = StateDirectoryBox(directory)
        worker = StoreWorker(store: store, checkpoints: directory?.checkpoints, maxStored: c.maxStoredStreams, logger: logger, metrics: metrics,
                             wake: handle.wake)
        loop = LoopBox(ServingLoop(configuration: c, initialModel: initial, worker: worker, stateDirectory: c.stateDirectory,
                                   stateDirectoryProblem: directory.map { d in { d.problem() } }, handle: handle,
                                   logger: logger, logControl: logControl, metrics: metrics))
    }

    /// DESIGN §6: the newest valid checkpoint wins over `--model`, which only seeds an empty
    /// state directory; a `--model` of another architecture is refused unless `--reset-model`.
    static func chooseModel(_ c: ServeConfiguration, directory: StateDirectory?, logger: Logger) throws -> InitialModel? {
        if let link = directory?.checkpoints, link.latestLinkIsForeign {
            // The first checkpoint would put the link in its place, and the seed would be gone.
            throw DaemonError("\(link.latestLink) is a regular file, but that name in the state directory is recurd's link to its newest checkpoint, "
                + "which replaces it: move the file out of the state directory (for example to /etc/recurd/) and point --model there")
        }
        var given: ModelFile?
        // A damaged copy of a checkpoint (its recorded checksum does not match) is refused where
        // it would be served; as the state directory's own link it is only a seed, and the
        // checkpoints' own reading skips a damaged one.
        var givenDamage: String?
        if let path = c.model {
            if let data = FileManager.default.contents(atPath: path) {
                do throws(CheckpointError) { try CheckpointStore.verifyRecordedChecksum([UInt8](data), path: path) } catch { givenDamage = error.description }
                do { given = try ModelFile.decode([UInt8](data), file: path) } catch { throw DaemonError(error.forUser) }
            } else if directory?.contains(path) == true {
                logger.notice("the model file does not exist yet; it is created from the first stream and checkpointed here", metadata: ["file": "\(path)"])
            } else {
                throw DaemonError("\(path): no such model file")
            }
        }
        let givenSeed = given.map(ModelSeed.fingerprint)
        // Starting from the given file (no state directory, --reset-model, no checkpoint yet).
        func fromGiven(version: (ModelFile) -> UInt64) throws -> InitialModel? {
            if let givenDamage { throw DaemonError(givenDamage) }
            return given.map { InitialModel(file: $0, path: c.model, version: version($0), fromCheckpoint: false, seed: givenSeed) }
        }
        guard let directory else { return try fromGiven(version: Self.version) }
        let checkpoints = directory.checkpoints
        if c.resetModel {
            // The model first: a damaged one is refused before anything is set aside.
            let model = try fromGiven { _ in 0 }
            // Starting the new model beside the old streams and checkpoints would mix the two.
            let moved: String
            do { moved = try checkpoints.retire(alsoMoving: directory.storeFiles) } catch {
                throw DaemonError("--reset-model: cannot set the old checkpoints and streams aside in \(directory.path): \(error.localizedDescription)")
            }
            logger.warning("--reset-model: starting over from the model file; earlier checkpoints and streams were set aside",
                           metadata: ["model": "\(c.model ?? "")", "retired": "\(moved)"])
            return model
        }
        let newest = checkpoints.loadNewest { path, why in
            logger.error("skipping a checkpoint that does not read back", metadata: ["file": "\(path)", "error": "\(why)"])
        }
        guard let (file, info) = newest else {
            // Checkpoints there, none readable: starting another model would restore the stored
            // streams' states, made by the lost one, onto it.
            let found = checkpoints.candidates().count
            if found > 0 {
                throw DaemonError("none of the \(found) checkpoints in \(checkpoints.directory) reads back (each is named above); "
                    + "pass --reset-model to start over from --model, setting them and the stored streams aside")
            }
            return try fromGiven(version: Self.version)
        }
        if let given, given.model.architecture != file.model.architecture {
            throw DaemonError("\(c.model!): its architecture differs from the newest checkpoint's (\(info.path)); "
                + "pass --reset-model to start over from it (the checkpoints and stored streams are set aside)")
        }
        logger.notice("model from the newest checkpoint", metadata: ["file": "\(info.path)", "version": "\(info.version)"])
        let seed = file.metadata[ModelSeed.key]
        // Not when --model is the seed or the checkpoint itself (the state directory's link).
        if let givenSeed, let seed, givenSeed != seed, givenSeed != ModelSeed.fingerprint(file) {
            logger.warning("""
                --model is not the model this state directory started from: the newest checkpoint is served, and what it learnt; \
                pass --reset-model to start over from --model (or `recurd ctl reload` to load its weights)
                """,
                metadata: ["model": "\(c.model!)", "checkpoint": "\(info.path)", "version": "\(info.version)"])
        }
        return InitialModel(file: file, path: c.model, version: info.version, fromCheckpoint: true, checkpointPath: info.path, seed: seed)
    }

    private static func version(of file: ModelFile) -> UInt64 {
        file.metadata[CheckpointStore.versionKey].flatMap(UInt64.init) ?? file.metadata["optim.step"].flatMap(UInt64.init) ?? 0
    }

    /// Runs until SIGTERM/SIGINT (or until `stop()`); returns after a clean shutdown.
    public func run(handleSignals: Bool = true) async throws {
        worker.start()
        var services: [any Service] = [ServingService(loop: loop, logger: logger, ready: ready)]
        if !configuration.http.isEmpty {
            let (host, port) = try Self.hostPort(configuration.http)
            services.append(HTTPService(host: host, port: port, metrics: metrics, handle: handle, logger: logger, ready: ready))
        }
        let notifier = SystemdNotifier()
        if notifier.enabled { services.append(SystemdService(notifier: notifier, handle: handle, ready: ready)) }
        if handleSignals, let source { services.append(ReloadService(source: source, handle: handle, notifier: notifier, logger: logger)) }
        if handleSignals { services.append(IgnoredSignalsService(logger: logger)) }
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger))
        try await withTaskCancellationHandler {
            try await group.run()
        } onCancel: {
            self.handle.requestStop()
        }
    }

    /// Stops the serving loop (as SIGTERM does).
    public func stop() { handle.requestStop() }

    /// Waits until the sockets are bound; returns the resolved endpoints.
    public func waitUntilReady() async throws -> ReadyInfo { try await ready.wait() }

    /// HOST:PORT; an IPv6 host in brackets ([::1]:9464), which getaddrinfo takes without them.
    static func hostPort(_ s: String) throws -> (String, Int) {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else {
            throw DaemonError("http: '\(s)' is not HOST:PORT")
        }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw DaemonError("http: '\(s)' has no host (127.0.0.1, or 0.0.0.0 for every interface)") }
        return (host, port)
    }
}

/// Hands the serving loop to the service that starts its thread. Unchecked because the loop is
/// not thread-safe: it is used by that one thread only; everything else reaches it through its
/// `DaemonHandle`.
final class LoopBox: @unchecked Sendable {
    let value: ServingLoop
    init(_ value: ServingLoop) { self.value = value }
}

/// Keeps the state directory (and its lock) for the daemon's lifetime.
final class StateDirectoryBox: @unchecked Sendable {
    let value: StateDirectory?
    init(_ value: StateDirectory?) { self.value = value }
}
