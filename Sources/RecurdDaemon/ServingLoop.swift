import Foundation
import Logging
import RecurdModelFile
import RecurdNumerics
import RecurdStreams
import RecurdWire
import ZeroMQ

/// The serving thread: receives messages, runs the serving core's cycles, answers control
/// requests, applies reloads, and at the end drains, checkpoints and flushes.
///
/// One thread owns the sockets and the core, so none of them needs a lock; other threads reach
/// it only through its `DaemonHandle` (stop, reload, health) and the store worker's queues.
final class ServingLoop {
    /// The loop's phases.
    enum State {
        /// No model yet: the first stream that speaks fixes its input, and the model is created.
        case awaitingModel
        /// Serving with a model.
        case serving(ServingCore)
        /// Stop asked: no more input; finishing the work in flight, then the final checkpoint.
        case draining(ServingCore?)
    }

    private(set) var state: State = .awaitingModel
    private var configuration: ServeConfiguration
    let handle: DaemonHandle
    let worker: StoreWorker
    let stateDirectory: String?
    let logger: Logger
    let logControl: LogControl
    let metrics: DaemonMetrics
    let counters = DaemonCounters()
    private let control: ControlHandler
    /// Per-event warnings of the loop itself (connections, messages before a model exists), rate-limited per kind.
    private lazy var connectionLog = RateLimitedLog(logger: logger, interval: 10)
    /// The output's re-bind after a consumer key's removal, retried every second while it fails.
    private lazy var bindLog = RateLimitedLog(logger: logger, interval: 30)
    private var endpoints: ServingEndpoints?
    private let startedAt = Clock.seconds
    private let startedAtWall = Date().timeIntervalSince1970
    private var initialModel: InitialModel?
    private var sink: (any OutputSink)?
    /// A control request whose reply waits for the store's thread.
    private var controlWaiting = false
    /// With CURVE: the authentication handler, and the serving thread's copy of the allow-lists
    /// (each message's key is checked against it, so a key removed on SIGHUP is refused at once).
    private var zap: ZAPHandler?
    private var roles: CurveRoles?
    /// Says what is wrong with the state directory, if anything (checked every second).
    private let stateDirectoryProblem: (() -> String?)?
    private var lastStateDirectoryLog = -Double.infinity

    init(configuration: ServeConfiguration, initialModel: InitialModel?, worker: StoreWorker, stateDirectory: String?,
         stateDirectoryProblem: (() -> String?)? = nil, handle: DaemonHandle, logger: Logger, logControl: LogControl, metrics: DaemonMetrics) {
        self.configuration = configuration
        self.stateDirectoryProblem = stateDirectoryProblem
        self.initialModel = initialModel
        self.worker = worker
        self.stateDirectory = stateDirectory
        self.handle = handle
        self.logger = logger
        self.logControl = logControl
        self.metrics = metrics
        control = ControlHandler(counters: counters, startedAt: Clock.seconds, worker: worker)
    }

    private var core: ServingCore? {
        switch state {
        case .awaitingModel: nil
        case .serving(let c): c
        case .draining(let c): c
        }
    }

    /// libzmq's I/O threads: CURVE's encryption and decryption run there, so it gets a second one.
    var ioThreads: Int32 { configuration.curveServerCert == nil ? 1 : 2 }

    /// Binds the sockets (on the calling thread, which must then run `serve`); with CURVE, first
    /// starts the authentication handler.
    func bind(context: ZMQContext) throws -> ServingEndpoints {
        var secret: [UInt8]?
        if let certPath = configuration.curveServerCert, let dir = configuration.curveClients {
            guard ZMQCurve.isAvailable else { throw DaemonError("curve-server-cert: this libzmq (\(ZMQContext.libraryVersion)) was built without CURVE") }
            let cert = try CurveCertificate.load(certPath)
            guard let sec = cert.secretKey, let bytes = ZMQCurve.decode(sec) else {
                throw DaemonError("\(certPath): no secret-key line; curve-server-cert is the server's secret certificate (NAME.key_secret)")
            }
            // A hand-edited certificate whose halves differ would announce a public key no
            // client can authenticate against.
            guard ZMQCurve.publicKey(ofSecret: sec) == cert.publicKey else {
                throw DaemonError("\(certPath): its public-key is not the public half of its secret-key (give a certificate as `recurd keygen` writes)")
            }
            if let mode = (try? FileManager.default.attributesOfItem(atPath: certPath))?[.posixPermissions] as? Int, mode & 0o077 != 0 {
                logger.warning("the server's secret certificate can be read by other users; chmod 600 it",
                               metadata: ["file": "\(certPath)", "mode": "\(String(mode, radix: 8))"])
            }
            let r = try loadRoles(dir)
            zap = try ZAPHandler(context: context, roles: r, logger: logger, metrics: metrics)
            roles = r
            counters.zap = zap
            secret = bytes
            logger.notice("CURVE on input, output and control", metadata: [
                "server_key": "\(cert.publicKey)", "producers": "\(r.producers.count)", "consumers": "\(r.consumers.count)",
                "operators": "\(r.operators.count)", "trainers": "\(r.trainers.map { "\($0.count)" } ?? "all producers")",
            ])
            warnIfNobodyTrains(r, directory: dir)
        }
        return try ServingEndpoints(context: context, configuration: configuration, curveSecretKey: secret)
    }

    /// SIGHUP: the allow-lists are read again; on an error the old ones stay. Producers' and
    /// operators' messages are checked one by one against the new lists; subscribers are not
    /// (an output has no per-message sender), so when a consumer key goes the output re-binds:
    /// every subscriber's connection closes, they reconnect (ZeroMQ does it on its own) and
    /// authenticate again, and the removed one is refused.
    private func reloadRoles(_ new: ServeConfiguration) {
        guard let zap, let dir = configuration.curveClients else { return }
        do {
            let r = try loadRoles(dir)
            let consumerRemoved = !(roles?.consumers.isSubset(of: r.consumers) ?? true)
            zap.update(r)
            roles = r
            if consumerRemoved, let e = endpoints {
                // Not bound (an earlier re-bind still pending): nothing to undo.
                if !handle.isOutputUnbound {
                    do {
                        try e.output.unbind(e.boundOutput)
                        handle.setOutputUnbound(true)
                    } catch {
                        logger.error("could not unbind the output to cut off a removed consumer; restart to cut it off", metadata: ["error": "\(error)"])
                    }
                }
                if handle.isOutputUnbound { bindOutput(e, patience: 2) }
            }
            warnIfNobodyTrains(r, directory: dir)
            logger.notice("allow-lists reloaded", metadata: [
                "producers": "\(r.producers.count)", "consumers": "\(r.consumers.count)", "operators": "\(r.operators.count)",
                "trainers": "\(r.trainers.map { "\($0.count)" } ?? "all producers")",
            ])
        } catch {
            logger.error("allow-lists not reloaded; the old ones stay", metadata: ["error": "\(error)"])
        }
    }

    /// The allow-lists in `dir`, each file that grants nothing named in a warning.
    private func loadRoles(_ dir: String) throws(DaemonError) -> CurveRoles {
        var skipped: [String] = []
        let r = try CurveRoles.load(directory: dir, skipped: &skipped)
        for why in skipped { logger.warning("curve-clients: a file skipped", metadata: ["why": "\(why)"]) }
        return r
    }

    /// Binds the output again after `unbind`. libzmq closes the old listener on its I/O thread,
    /// after `unbind` returns, so the address can stay in use for a moment: tried for up to
    /// `patience` seconds, then again at every housekeeping tick, `/healthz` unhealthy until it
    /// is bound (no one can receive predictions).
    private func bindOutput(_ e: ServingEndpoints, patience: Double) {
        let deadline = Clock.seconds + patience
        while true {
            do {
                try e.output.bind(e.boundOutput)
                handle.setOutputUnbound(false)
                logger.notice("a consumer key was removed: the output re-bound, subscribers reconnect and authenticate again",
                              metadata: ["output": "\(e.boundOutput)"])
                return
            } catch {
                guard Clock.seconds < deadline else {
                    bindLog.log(.error, "bind", now: Clock.seconds, "the output is not bound again yet after a consumer key was removed; retrying every second",
                                metadata: ["output": "\(e.boundOutput)", "error": "\(error)"])
                    return
                }
                usleep(10_000)
            }
        }
    }

    /// An empty trainers/ folder is easy to make by accident (it turns learning off for every
    /// producer), so it is said loudly, not only as "trainers=0".
    private func warnIfNobodyTrains(_ r: CurveRoles, directory: String) {
        guard let t = r.trainers, t.isEmpty, configuration.learn else { return }
        logger.warning("trainers/ is empty: no producer's steps are learnt from; add the producers that may train, or remove the folder to let every producer train",
                       metadata: ["folder": "\(directory)/trainers"])
    }

    // MARK: Model

    private func install(_ file: ModelFile, path: String?, version: UInt64, checkpointed: Bool, checkpointPath: String? = nil, seed: String? = nil) {
        let c = configuration
        let layout = StreamRecordLayout(architecture: file.model.architecture, learning: c.learning, nextStepTargets: c.targets == .next,
                                        standardize: c.normalize, forecast: c.forecastOptions)
        let runtime = ModelRuntime(model: file.model, modelPath: path, startVersion: version, configuration: c, window: layout.window,
                                   optimizerState: file, logger: logger, metrics: metrics)
        // Otherwise the operator sees learning on, targets 0 and no loss, and nothing says why.
        if c.learn && c.targets == .next, let problem = OnlineLearner.nextStepProblem(file.model.architecture) {
            logger.warning("\(problem): with --targets next this model learns and scores only from targets that messages carry (see --targets explicit)")
        }
        if checkpointed { runtime.checkpointedVersion = version }
        runtime.startCheckpoint = checkpointPath
        runtime.seed = seed
        state = .serving(ServingCore(configuration: c, layout: layout, runtime: runtime, sink: sink!, worker: worker, stateDirectory: stateDirectory,
                                     counters: counters, metrics: metrics, logger: logger))
    }

    /// With no model file, the first stream that speaks fixes the input: features of its xdim
    /// (linear or sigmoid head, outputs = inputs, next-step targets), or bytes/tokens (softmax
    /// over 256).
    private func createModel(for m: InputHeader) {
        let c = configuration
        if m.inputKind == .text && c.pretrainedText {
            do {
                let file = try PretrainedTextModel.load()
                let a = file.model.architecture
                // The new-model settings still say what a created model is: the bundled weights
                // stand in only for a model of their own shape.
                if a.cell == c.newModelCell && a.hidden == c.newModelHidden && a.input == .tokens(vocabulary: 256, embedding: c.newModelEmbedding) {
                    install(file, path: nil, version: 0, checkpointed: false, seed: ModelSeed.pretrained)
                    logger.notice("created the model from the bundled pre-trained text model", metadata: [
                        "cell": "\(a.cell.rawValue)", "hidden": "\(a.hidden)", "embedding": "\(c.newModelEmbedding)",
                        "parameters": "\(file.model.layout.count)",
                    ])
                    return
                }
                logger.notice("the new-model settings differ from the bundled text model's shape; creating a new model", metadata: [
                    "bundled": "\(a.cell.rawValue) \(a.hidden), embedding \(a.input.layerInputSize)",
                ])
            } catch {
                logger.error("the bundled text model does not load; creating a new one", metadata: ["error": "\(error)"])
            }
        }
        let arch: ModelArchitecture
        switch m.inputKind {
        case .features:
            let head: HeadKind = c.newModelHead == .softmax ? .linear : c.newModelHead
            arch = ModelArchitecture(cell: c.newModelCell, input: .features(size: m.xdim), hidden: c.newModelHidden,
                                     outputSize: m.xdim, head: head, residual: c.forecast == .residual && head == .linear)
        case .token, .text:
            arch = ModelArchitecture(cell: c.newModelCell, input: .tokens(vocabulary: 256, embedding: c.newModelEmbedding),
                                     hidden: c.newModelHidden, outputSize: 256, head: .softmax)
        }
        let model = Model(architecture: arch, seed: c.newModelSeed)
        install(ModelFile(model: model), path: nil, version: 0, checkpointed: false, seed: ModelSeed.created)
        logger.notice("created a new model from the first stream", metadata: [
            "cell": "\(arch.cell.rawValue)", "input": "\(arch.input.name)", "input_size": "\(arch.input.layerInputSize)",
            "hidden": "\(arch.hidden)", "outputs": "\(arch.outputSize)", "head": "\(arch.head.rawValue)\(arch.residual ? " (residual)" : "")",
            "parameters": "\(model.layout.count)",
        ])
    }

    // MARK: Loop

    /// Runs until the handle asks to stop; then drains, checkpoints, flushes and closes.
    func serve(_ e: ServingEndpoints) {
        sink = SocketOutputSink(e.output)
        endpoints = e
        if let m = initialModel {
            install(m.file, path: m.path, version: m.version, checkpointed: m.fromCheckpoint, checkpointPath: m.checkpointPath, seed: m.seed)
            initialModel = nil
        }
        let multipart = ZMQMultipart(capacity: 2)
        let controlMessage = ZMQMultipart(capacity: 1)
        // Poll order: input, output (subscriptions), the input's monitor, control, then the wake pipe.
        let sockets = [e.input, e.output, e.inputMonitor] + (e.control.map { [$0] } ?? []) + [e.outputMonitor, e.controlMonitor].compactMap { $0 }
        let controlIndex = e.control == nil ? -1 : 3
        let outputMonitorIndex = e.outputMonitor == nil ? -1 : (e.control == nil ? 3 : 4)
        let controlMonitorIndex = e.controlMonitor == nil ? -1 : outputMonitorIndex + 1
        // poll(2) on the sockets' notification descriptors, not zmq_poll: one system call per
        // cycle instead of one plus two per socket (see ZMQNotificationPoller). A socket is read
        // when its descriptor fires or when it is `unread`: not yet read to empty (the input
        // after a full batch) or sent on since (control after a reply). Once a second every
        // socket is read anyway, in case a send cleared a descriptor before its news was read.
        let poller: ZMQNotificationPoller
        do { poller = try ZMQNotificationPoller(sockets, descriptors: [handle.wake.descriptor]) } catch {
            logger.error("cannot poll the sockets", metadata: ["error": "\(error)"])
            finish(e)
            return
        }
        var unread = Array(repeating: true, count: sockets.count)
        var ready = Array(repeating: false, count: sockets.count + 1)
        let wakeIndex = sockets.count
        var lastHousekeeping = Clock.seconds
        while true {
            handle.beat()
            if handle.stopRequested {
                state = .draining(core)
                logger.notice("stopping: finishing the work in flight")
                break
            }
            let busy = core?.scheduler.hasWork ?? false
            // A flush handing over its streams goes on a pass at a time: a short wait, not 100 ms.
            let wait: Int32 = busy || unread.contains(true) ? 0 : (core?.isHandingOver == true ? 2 : 100)
            do { try poller.poll(timeoutMilliseconds: wait, into: &ready) } catch {
                logger.error("poll failed", metadata: ["error": "\(error)"])
                break
            }
            for i in unread.indices where unread[i] {
                ready[i] = true
                unread[i] = false
            }
            if ready[wakeIndex] { handle.wake.drain() }
            if let (generation, new) = handle.takeReload() {
                apply(new)
                reloadRoles(new)
                handle.reloadApplied(generation)
            }
            core?.beginCycle()
            core?.handleCompletions()
            if ready[1] { readSubscriptions(e.output) }
            if ready[2] { readMonitor(e.inputMonitor) }
            if outputMonitorIndex >= 0, ready[outputMonitorIndex], let m = e.outputMonitor { readDenials(m, .output) }
            if controlMonitorIndex >= 0, ready[controlMonitorIndex], let m = e.controlMonitor { readDenials(m, .control) }
            if controlIndex >= 0, ready[controlIndex], !controlWaiting, let c = e.control {
                // A request read (or replied to) leaves control to be read again: its reply's send
                // may have cleared the descriptor for the next request.
                if handleControl(c, controlMessage) { unread[controlIndex] = true }
            }
            if ready[0] {
                if stateDirectory != nil, worker.isBehind(limit: StreamResidency.backlogLimit) {
                    // The store is behind: leave the input queued (producers feel the pace) rather than lose records.
                    if storeBehindSince == 0 { storeBehindSince = Clock.seconds }
                    if Clock.seconds - storeBehindSince > DaemonHandle.storeStallSeconds, !handle.isStoreStalled {
                        handle.setStoreStalled(true)
                        logger.error("the store has held the input back for over \(Int(DaemonHandle.storeStallSeconds)) s; /healthz reports unhealthy until it catches up",
                                     metadata: ["backlog_bytes": "\(worker.backlogBytes)"])
                    }
                    storeWaits += 1
                    metrics.storeWaits.increment()
                    if storeWaits == 1 || Clock.seconds - lastStoreWaitLog > 10 {
                        lastStoreWaitLog = Clock.seconds
                        logger.warning("the store is behind; input waits until it catches up", metadata: ["backlog_bytes": "\(worker.backlogBytes)"])
                    }
                    usleep(200)
                    unread[0] = true
                } else {
                    if storeBehindSince != 0 {
                        storeBehindSince = 0
                        if handle.isStoreStalled {
                            handle.setStoreStalled(false)
                            logger.notice("the store caught up; input is read again")
                        }
                    }
                    if drain(e.input, multipart) { unread[0] = true }
                }
            }
            core?.scheduler.run(pressure: pressure)
            core?.residency.trim()
            if sendReadyReplies(e.control), controlIndex >= 0 { unread[controlIndex] = true }
            let now = Clock.seconds
            if now - lastHousekeeping >= 1 {
                if handle.isOutputUnbound, let e = endpoints { bindOutput(e, patience: 0) }
                checkStateDirectory(now: now)
                core?.housekeeping(now: now, wallClock: Date().timeIntervalSince1970)
                refreshStatus()
                lastHousekeeping = now
                unread = Array(repeating: true, count: sockets.count)
            } else {
                core?.residency.submit()
            }
            core?.continueFlush()
        }
        finish(e)
    }

    private var pressure = false
    private var storeWaits = 0
    /// When input began to wait for the store without a break (0: it does not).
    private var storeBehindSince = 0.0
    private var lastStoreWaitLog = 0.0

    /// Drains what is waiting on the input (up to `max-batch` messages) into the core; returns
    /// whether more may be waiting: it stopped at `max-batch`, held input back, or a signal
    /// interrupted it.
    private func drain(_ input: ZMQSocket, _ parts: ZMQMultipart) -> Bool {
        // One clock read per drain: the latency histogram measures from when the daemon took the
        // batch in, which is when its own work on every message of the batch starts.
        let drainStart = Clock.nanoseconds
        var drained = 0
        var interrupted = false, heldBack = false
        while drained < configuration.maxBatch {
            // Input waits in ZeroMQ (producers feel it) rather than be refused: when no stream can
            // come into memory, or when this pass has gathered as many records for the store as
            // one hand-over takes (evictions of text streams, 4 MiB each with their context models).
            // So does input past the queue's bound, and past 50 ms of decoding in one drain (a
            // batch of large JSON messages), so that the loop turns and publishes between.
            if let core, core.residency.isFullOfWork || core.residency.turnIsFull || core.scheduler.isFull {
                heldBack = true
                break
            }
            if drained & 15 == 15, Clock.nanoseconds - drainStart > 50_000_000 {
                heldBack = true
                break
            }
            let got: Bool
            do { got = try parts.receive(from: input, dontWait: true) } catch {
                interrupted = error.interrupted
                if !interrupted { logger.error("receive failed", metadata: ["error": "\(error)"]) }
                break
            }
            guard got else { break }
            drained += 1
            counters.messages += 1
            admit(parts, receivedAt: drainStart)
        }
        if drained > 0 { metrics.messages.increment(by: drained) }
        // A big drain means messages queued while the last batch ran: serving is at its limit.
        pressure = drained >= min(256, configuration.maxBatch)
        return drained >= configuration.maxBatch || interrupted || heldBack
    }

    private func admit(_ parts: ZMQMultipart, receivedAt: UInt64) {
        var learnable = true
        if let roles {
            // Every message carries the key its connection authenticated with: one removed from
            // producers/ since (SIGHUP) is refused here, even on a connection already open.
            guard let id = parts.userId, let key = CurveKey(cString: id), roles.producers.contains(key) else {
                zap?.countDenied(.input)
                connectionLog.warning("revoked producer", now: Clock.seconds, "message refused: its producer's key is no longer in producers/",
                                      metadata: ["key": "\(parts.userId.flatMap { CurveKey(cString: $0) }?.z85 ?? "none")"])
                return
            }
            if !roles.trains(key) {
                learnable = false
                counters.messagesNotLearnt += 1
                metrics.messagesNotLearnt.increment()
            }
        }
        let frames = parts.frameCount
        let key = frames >= 1 ? parts.frame(0) : UnsafeRawBufferPointer(start: nil, count: 0)
        let payload = frames >= 2 ? parts.frame(1) : UnsafeRawBufferPointer(start: nil, count: 0)
        if case .awaitingModel = state {
            // Decode without a model to learn the input; a zero-step message cannot say it.
            var scratch = InputArena()
            let header: InputHeader
            do throws(WireError) {
                header = try MessageCheck.decode(frames: frames, key: key, payload: payload, maxMessageBytes: configuration.maxMessageBytes,
                                                 architecture: nil, into: &scratch)
            } catch {
                rejectWithoutModel(error)
                return
            }
            guard header.steps > 0 else { return }
            createModel(for: header)
            core?.beginCycle()
        }
        core?.admit(frames: frames, key: key, payload: payload, receivedAt: receivedAt, learnable: learnable)
    }

    /// XPUB hands up subscribe and unsubscribe messages; reading them keeps their queue empty
    /// and tells how many subscriptions the output has.
    private func readSubscriptions(_ output: ZMQSocket) {
        while let frames = try? output.receiveFrames(dontWait: true), let first = frames.first?.first {
            subscriptions += first == 1 ? 1 : (first == 0 ? -1 : 0)
        }
        metrics.outputSubscriptions.record(max(0, subscriptions))
    }
    private var subscriptions = 0

    /// Counts (and logs, rate-limited) the input's connection events.
    private func readMonitor(_ monitor: ZMQSocket) {
        while let event = monitor.nextMonitorEvent() {
            guard event.kind != .other && event.kind != .handshakeSucceeded else { continue }
            if zap != nil && event.kind == .handshakeFailed { deny(.input, event) }
            counters.connectionEvents[event.kind.rawValue, default: 0] += 1
            metrics.connectionEvent(event.kind.rawValue)
            // A producer that exits closes its connection: routine, so info; a failed
            // handshake (wrong key, plaintext against CURVE) is a problem to look at.
            if event.kind == .handshakeFailed || event.kind == .disconnected {
                connectionLog.log(event.kind == .disconnected ? .info : .warning, event.kind.rawValue, now: Clock.seconds,
                                  "input connection \(event.kind == .disconnected ? "closed" : "handshake failed")", metadata: ["endpoint": "\(event.endpoint)"])
            }
        }
    }

    /// With CURVE, the output's and control's failed handshakes: plaintext clients (the ZAP
    /// handler counts the keys it refuses itself).
    private func readDenials(_ monitor: ZMQSocket, _ domain: CurveRoles.Domain) {
        while let event = monitor.nextMonitorEvent() {
            if event.kind == .handshakeFailed { deny(domain, event) }
        }
    }

    private func deny(_ domain: CurveRoles.Domain, _ event: ZMQMonitorEvent) {
        zap?.countDenied(domain)
        connectionLog.warning("plaintext \(domain.rawValue)", now: Clock.seconds, "connection refused: no CURVE handshake (a plaintext client, another mechanism, a wrong server key, or a connection closed before its handshake)",
                              metadata: ["endpoint": "\(domain.rawValue)", "peer": "\(event.endpoint)"])
    }

    private func rejectWithoutModel(_ error: WireError) {
        counters.rejected[error.reason, default: 0] += 1
        metrics.rejected(error.reason)
        connectionLog.warning(error.reason.rawValue, now: Clock.seconds, "rejected message: \(error.detail)", metadata: ["reason": "\(error.reason.rawValue)"])
    }

    // MARK: Settings

    /// Applies a reloaded configuration: live settings now, the rest logged as waiting for a restart.
    private func apply(_ new: ServeConfiguration) {
        // The live settings of `new` over the running rest: valid each on its own, the mix may not
        // be (max-streams from the file against the running max-batch); then nothing changes.
        var merged = configuration
        for s in ServeSettings.all where s.reloadable { try? s.apply(s.value(in: new), to: &merged) }
        if let problem = merged.problem() {
            logger.error("settings not reloaded: with the running settings that need a restart, \(problem)")
            return
        }
        // Said here, model or not, so that a `set` or `learning off` before the first stream leaves
        // a line too.
        for s in ServeSettings.all where s.value(in: new) != s.value(in: configuration) {
            if s.reloadable {
                logger.notice("setting changed", metadata: ["setting": "\(s.key)", "from": "\(s.value(in: configuration))", "to": "\(s.value(in: new))"])
            } else if !s.flagOnly {
                logger.warning("setting changed in the config but needs a restart; still using the old value",
                               metadata: ["setting": "\(s.key)", "running": "\(s.value(in: configuration))", "new": "\(s.value(in: new))"])
            }
        }
        let c = core?.apply(merged) ?? merged
        if c.logLevel != configuration.logLevel { logControl.level = c.logLevel }
        if c.maxMessageBytes != configuration.maxMessageBytes {
            // New connections get the new limit; libzmq keeps the old one for open connections.
            try? endpoints?.input.setMaxMessageSize(ServingEndpoints.inputReceiveLimit(c))
        }
        configuration = c
    }

    // MARK: Control

    /// Reads and answers (or defers) one control request; returns whether there was one.
    private func handleControl(_ socket: ZMQSocket, _ parts: ZMQMultipart) -> Bool {
        do {
            guard try parts.receive(from: socket, dontWait: true) else { return false }
        } catch {
            return false
        }
        if let roles, !(parts.userId.flatMap { CurveKey(cString: $0) }.map { roles.operators.contains($0) } ?? false) {
            zap?.countDenied(.control)
            reply(socket, ControlReply.failure("not an operator: this key was removed from operators/"))
            return true
        }
        // A request is one frame; only the first is kept (the rest were counted and discarded).
        guard parts.frameCount == 1 else {
            reply(socket, ControlReply.failure("a control request is one frame; this one had \(parts.frameCount)"))
            return true
        }
        let outcome = control.handle(Array(parts.frame(0)), core: core, configuration: configuration) { apply($0) }
        switch outcome {
        case .reply(let r): reply(socket, r)
        case .deferred: controlWaiting = true
        }
        return true
    }

    /// Sends the replies to deferred control requests that are ready; returns whether it sent any.
    @discardableResult
    private func sendReadyReplies(_ socket: ZMQSocket?) -> Bool {
        guard controlWaiting, let socket, let core else { return false }
        var sent = false
        for r in core.takeReadyReplies() {
            reply(socket, r)
            controlWaiting = false
            sent = true
        }
        return sent
    }

    private func reply(_ socket: ZMQSocket, _ r: ControlReply.Encoded) {
        do { _ = try socket.send(frames: [r.bytes]) } catch { logger.warning("control reply failed", metadata: ["error": "\(error)"]) }
    }

    // MARK: Status

    /// A state directory deleted or replaced while running would take every later write with it
    /// without an error (SQLite writes on into the unlinked file): say so loudly, and make
    /// `/healthz` unhealthy until it is back.
    private func checkStateDirectory(now: Double) {
        guard let stateDirectoryProblem else { return }
        if let problem = stateDirectoryProblem() {
            if !handle.isStateDirectoryLost || now - lastStateDirectoryLog >= 60 {
                lastStateDirectoryLog = now
                logger.error("""
                    \(problem): stream states and checkpoints written from now on will not be found by the next start; \
                    put it back, or stop recurd (SIGTERM) and start it again
                    """)
            }
            handle.setStateDirectoryLost(true)
        } else if handle.isStateDirectoryLost {
            logger.notice("the state directory is in place again", metadata: ["path": "\(stateDirectory ?? "")"])
            handle.setStateDirectoryLost(false)
        }
    }

    private func refreshStatus() {
        let stored = stateDirectory != nil ? ", \(worker.storedCount.load(ordering: .relaxed)) stored" : ""
        handle.setStatus("\(core?.table.count ?? 0) streams\(stored), \(counters.messages) messages, \(counters.predictions) predictions, model version \(core?.runtime.version ?? 0)")
        // From start until the first flush brings the state directory up to date, so that an
        // alert on it fires when none ever does. Before the first stream there is nothing to keep.
        if stateDirectory != nil, let core {
            metrics.checkpointAge.record(max(0, Date().timeIntervalSince1970 - (core.upToDateAt ?? startedAtWall)))
        }
    }

    // MARK: Stop

    /// SIGTERM: finish every queued step and publish it, stop the trainer, checkpoint the model,
    /// write every changed stream, wait for the store, close.
    private func finish(_ e: ServingEndpoints) {
        let poller = ZMQPoller([], descriptors: [handle.wake.descriptor])
        // Messages the input socket has already taken in from the network are served, not closed
        // away with it; for at most a few seconds, so that a producer that keeps sending cannot
        // hold the stop off (what it still has queued is lost with its connection: ZeroMQ has no
        // acknowledgements).
        let parts = ZMQMultipart(capacity: 2)
        let drainDeadline = Clock.seconds + 5
        // Serving what was taken in stops after 6 s, so that the trainer's last windows (2 s),
        // the final flush (up to 18 s) and closing the sockets end within the unit's
        // TimeoutStopSec=30 rather than be killed half-way.
        let serveDeadline = Clock.seconds + 6
        var taking = true
        while true {
            if taking {
                let before = counters.messages
                core?.residency.beginTurn()   // drain's budget of records for the store
                let more = drain(e.input, parts)
                taking = (counters.messages > before || more) && Clock.seconds < drainDeadline
            }
            guard let core else { if taking { continue } else { break } }
            guard taking || core.hasPendingWork else { break }
            if Clock.seconds > serveDeadline, core.scheduler.hasWork {
                let dropped = core.scheduler.cancelAll()
                logger.warning("stopping: queued messages left unserved", metadata: ["messages": "\(dropped)"])
                continue
            }
            core.beginCycle()
            core.handleCompletions()
            core.scheduler.run(pressure: taking)
            core.residency.submit()
            core.continueFlush()
            // Waiting on the store, not on a record that waits for the scheduler to free a slot.
            if core.residency.loadsInFlight > 0 && !core.scheduler.hasWork { _ = try? poller.poll(timeoutMilliseconds: 50); handle.wake.drain() }
        }
        if let core {
            // Queued windows are trained (2 s at most) before the checkpoint, which then holds
            // every update: the records flushed below no longer hold those windows.
            let untrained = core.runtime.stop(drainSeconds: 2)
            if untrained > 0 {
                counters.windowsDropped += UInt64(untrained)
                metrics.windowsDropped.increment(by: untrained)
                logger.warning("stopping: queued training windows left untrained", metadata: ["windows": "\(untrained)"])
            }
            if stateDirectory != nil {
                let token = core.flush(checkpointModel: core.runtime.version != core.lastCheckpointVersion, waiter: .flush, fresh: true)
                let deadline = Clock.seconds + 18
                while let token, !core.flushed.contains(token), Clock.seconds < deadline {
                    _ = try? poller.poll(timeoutMilliseconds: core.isHandingOver ? 2 : 100)
                    handle.wake.drain()
                    // A turn's budget of records per wait, without starting a serving cycle.
                    core.residency.beginTurn()
                    core.handleCompletions()
                    core.continueFlush()
                }
                if let token, !core.flushed.contains(token) {
                    let lost = core.abandonFlush()
                    logger.error("the final flush did not finish in 18 s: changed streams not handed to the store are lost (counted); what it has is still written as it stops",
                                 metadata: ["streams_not_written": "\(lost)"])
                }
            }
            sendReadyReplies(e.control)
        }
        worker.stop()
        e.close()
        zap?.stop()
        logger.info("serving loop stopped", metadata: ["messages": "\(counters.messages)", "predictions": "\(counters.predictions)"])
    }
}
