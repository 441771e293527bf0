import Foundation
import Logging
import RecurdModelFile
import RecurdNumerics
import RecurdWire
import Synchronization
import ZeroMQ

/// The serving thread: receives messages, keeps every stream's state, runs batched steps and
/// publishes predictions; answers control requests between batches.
///
/// One thread owns the sockets, the stream table and the step engine, so none of them needs a
/// lock. Each cycle drains what is waiting (up to `max-batch` messages), admits or rejects each,
/// then runs rounds of one batched step over every stream with a step pending — a many-step
/// message runs its steps in order, one per round — and publishes each message's predictions as
/// soon as its last step is done.
final class ServingLoop: @unchecked Sendable {
    private(set) var configuration: ServeConfiguration
    let logger: Logger
    let metrics: DaemonMetrics
    private let log: RateLimitedLog

    private var model: Model?
    private var modelPath: String?
    private var modelFile: ModelFile?
    private var engine: StepEngine!
    private var table: StreamTable!
    private var learner: OnlineLearningTable!
    /// Inline training (`--sync-learning`): updates `model.weights` in place.
    private var syncTrainer: Trainer?
    /// Training on its own thread, publishing weight snapshots.
    private var background: BackgroundTrainer?
    /// The snapshot the current cycle's weights come from, held so they stay alive while in use.
    private var pinned: WeightSnapshot?
    private var cycleWeights: UnsafePointer<Float>!
    private var syncVersion: UInt64 = 0
    private var scratch: FloatBuffer!
    private var tokenModel = false

    private var counters = DaemonCounters()
    private let startedAt = Clock.seconds
    private var learningEnabled: Bool
    /// Updates applied to the weights this cycle uses (mod 2³² on the wire).
    private var modelVersion: UInt32 = 0

    // Cross-thread signals.
    private let stopRequested = Atomic<Bool>(false)
    private let heartbeat = Atomic<UInt64>(0)
    private let statusText = Mutex("starting")

    /// One line for systemd's STATUS= (refreshed every second).
    var status: String { statusText.withLock { $0 } }

    // Reused per cycle.
    private var arena = InputArena()
    private var pendings: [PendingMessage] = []
    private var predictions: [Float] = []
    private var losses: [Float] = []
    /// Per slot: the last pending message of this cycle (valid when `chainCycle[slot] == cycleNumber`).
    private var chainTail: [Int] = []
    private var chainCycle: [UInt64] = []
    private var cycleNumber: UInt64 = 0
    private var payload: [UInt8] = []
    private var topic: [UInt8] = []
    /// Monotonic time when the current round's first message completed (0: none yet).
    private var roundClock: UInt64 = 0
    private lazy var outputPrefix = Array(configuration.outputPrefix.utf8)
    private var topIds: [UInt32] = []
    /// Slots whose windows are due, reused across rounds.
    private var due: [Int] = []
    private var topValues: [Float] = []

    /// Resolved endpoints once bound.
    private(set) var endpoints: ServingEndpoints?

    init(configuration: ServeConfiguration, model: ModelFile?, modelPath: String?, logger: Logger, metrics: DaemonMetrics) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.modelPath = modelPath
        learningEnabled = configuration.learn
        log = RateLimitedLog(logger: logger)
        modelFile = model
        if let model { install(model.model) }
    }

    // MARK: Lifecycle

    /// Asks the loop to stop after the batch in flight.
    func requestStop() { stopRequested.store(true, ordering: .relaxed) }

    /// Whether the loop turned within the last five seconds.
    var isHealthy: Bool {
        let beat = heartbeat.load(ordering: .relaxed)
        return beat != 0 && Clock.nanoseconds - beat < 5_000_000_000
    }

    /// Binds the sockets (on the calling thread, which must then run `serve`).
    func bind(context: ZMQContext) throws(ZMQError) -> ServingEndpoints {
        let e = try ServingEndpoints(context: context, configuration: configuration)
        endpoints = e
        return e
    }

    /// Runs until `requestStop`; then finishes the batch in flight, publishes it and closes.
    func serve(_ e: ServingEndpoints) {
        let multipart = ZMQMultipart(capacity: 2)
        let control = ZMQMultipart(capacity: 1)
        let poller = ZMQPoller(e.control.map { [e.input, $0] } ?? [e.input])
        var lastHousekeeping = Clock.seconds
        while !stopRequested.load(ordering: .relaxed) {
            heartbeat.store(Clock.nanoseconds, ordering: .relaxed)
            let ready: [Bool]
            do { ready = try poller.poll(timeoutMilliseconds: 100) } catch {
                logger.error("poll failed", metadata: ["error": "\(error)"])
                break
            }
            if ready.count > 1, ready[1], let c = e.control { handleControl(c, control) }
            if ready[0] { cycle(e, multipart) }
            let now = Clock.seconds
            if now - lastHousekeeping > 1 {
                expireIdleStreams(now: now)
                let line = "\(table?.count ?? 0) streams, \(counters.messages) messages, \(counters.predictions) predictions, model version \(modelVersion)"
                statusText.withLock { $0 = line }
                lastHousekeeping = now
            }
        }
        e.close()
        background?.stop()
        logger.info("serving loop stopped", metadata: ["messages": "\(counters.messages)", "predictions": "\(counters.predictions)"])
    }

    // MARK: Model

    private func install(_ m: Model) {
        model = m
        let a = m.architecture
        engine = StepEngine(layout: m.layout, maxBatch: configuration.maxBatch)
        table = StreamTable(capacity: configuration.maxStreams, stateSize: a.stateSize)
        chainTail = Array(repeating: -1, count: configuration.maxStreams)
        chainCycle = Array(repeating: 0, count: configuration.maxStreams)
        learner = OnlineLearningTable(architecture: a, capacity: configuration.maxStreams, learning: configuration.learning,
                                      nextStepTargets: configuration.targets == .next, standardize: configuration.normalize)
        scratch = FloatBuffer(count: a.outputSize)
        tokenModel = if case .tokens = a.input { true } else { false }
        let startVersion = modelFile.flatMap { $0.metadata["optim.step"] }.flatMap { UInt64($0) } ?? 0
        let restore: (Optimizer) -> Void = { [modelFile, logger] optimizer in
            if let file = modelFile, OptimizerCheckpoint.restore(optimizer, from: file) {
                logger.notice("optimizer state restored from the model file", metadata: ["step": "\(optimizer.step)"])
            }
        }
        if configuration.syncLearning {
            let t = Trainer(layout: m.layout, configuration: configuration.learning, maxWindows: configuration.trainBatch)
            restore(t.optimizer)
            syncTrainer = t
            syncVersion = startVersion
        } else {
            let b = BackgroundTrainer(model: m, configuration: configuration.learning, trainBatch: configuration.trainBatch,
                                      queueCapacity: configuration.trainQueue, optimizerRestore: restore, startVersion: startVersion,
                                      priority: configuration.trainerPriority, logger: logger, metrics: metrics)
            b.start()
            background = b
        }
        pinWeights()
    }

    /// Pins the weights for the coming cycle: the latest published snapshot (background
    /// training) or the model's own weights (inline training).
    private func pinWeights() {
        if let background {
            let s = background.store.load()
            pinned = s
            cycleWeights = UnsafePointer(s.weights.pointer)
            modelVersion = UInt32(truncatingIfNeeded: s.version)
        } else if let model {
            cycleWeights = UnsafePointer(model.weights.pointer)
            modelVersion = UInt32(truncatingIfNeeded: syncVersion)
        }
        metrics.modelVersion.record(Int64(modelVersion))
    }

    /// The last pending message of `slot` in this cycle.
    @inline(__always)
    private func tail(of slot: Int) -> Int? { chainCycle[slot] == cycleNumber ? chainTail[slot] : nil }

    private func resetStream(_ slot: Int) {
        table.reset(slot)
        learner.reset(slot)
    }

    /// With no model file, the first stream that speaks fixes the input: features of its xdim
    /// (linear or sigmoid head, outputs = inputs, next-step targets), or bytes/tokens (softmax
    /// over 256).
    private func createModel(for m: InputHeader) {
        let c = configuration
        let arch: ModelArchitecture
        switch m.inputKind {
        case .features:
            arch = ModelArchitecture(cell: c.newModelCell, input: .features(size: m.xdim), hidden: c.newModelHidden,
                                     outputSize: m.xdim, head: c.newModelHead == .softmax ? .linear : c.newModelHead)
        case .token, .text:
            arch = ModelArchitecture(cell: c.newModelCell, input: .tokens(vocabulary: 256, embedding: c.newModelEmbedding),
                                     hidden: c.newModelHidden, outputSize: 256, head: .softmax)
        }
        install(Model(architecture: arch, seed: c.newModelSeed))
        logger.notice("created a new model from the first stream", metadata: [
            "cell": "\(arch.cell.rawValue)", "input": "\(arch.input.name)", "input_size": "\(arch.input.layerInputSize)",
            "hidden": "\(arch.hidden)", "outputs": "\(arch.outputSize)", "head": "\(arch.head.rawValue)",
            "parameters": "\(model!.layout.count)",
        ])
    }

    // MARK: Cycle

    private func cycle(_ e: ServingEndpoints, _ parts: ZMQMultipart) {
        if model != nil { pinWeights() }
        arena.removeAll()
        pendings.removeAll(keepingCapacity: true)
        predictions.removeAll(keepingCapacity: true)
        losses.removeAll(keepingCapacity: true)
        cycleNumber &+= 1
        // One clock read per drain: the latency histogram measures from when the daemon took the
        // batch in, which is when its own work on every message of the batch starts.
        let drainStart = Clock.nanoseconds
        var drained = 0
        while drained < configuration.maxBatch {
            let got: Bool
            do { got = try parts.receive(from: e.input, dontWait: true) } catch {
                logger.error("receive failed", metadata: ["error": "\(error)"])
                break
            }
            guard got else { break }
            drained += 1
            admit(parts, receivedAt: drainStart)
        }
        if drained > 0 { metrics.messages.increment(by: drained) }
        // A big drain means messages queued while the last batch ran: serving is at its limit.
        if drained >= min(256, configuration.maxBatch), let background { background.servingBacklog.store(drainStart, ordering: .relaxed) }
        if !pendings.isEmpty { runSteps(e.output) }
    }

    private func reject(_ error: WireError, key: UnsafeRawBufferPointer?) {
        counters.rejected[error.reason, default: 0] += 1
        metrics.rejected(error.reason)
        var meta: Logger.Metadata = ["reason": "\(error.reason.rawValue)"]
        if let key { meta["stream"] = "\(String(decoding: key, as: UTF8.self))" }
        log.warning(error.reason.rawValue, now: Clock.seconds, "rejected message: \(error.detail)", metadata: meta)
    }

    /// Checks one received message and queues its steps, or rejects or drops it whole.
    private func admit(_ parts: ZMQMultipart, receivedAt: UInt64) {
        counters.messages += 1
        guard parts.frameCount == 2 else {
            reject(WireError(.frames, "\(parts.frameCount) frame\(parts.frameCount == 1 ? "" : "s"); expected 2 (stream key, payload)"), key: nil)
            return
        }
        let key = parts.frame(0)
        guard key.count >= 1, key.count <= 255 else {
            reject(WireError(.key, "frame 1: key is \(key.count) bytes; it must be 1–255"), key: nil)
            return
        }
        if let nul = key.firstIndex(of: 0) {
            reject(WireError(.key, "frame 1: key has a NUL byte at offset \(nul)"), key: nil)
            return
        }
        guard key.allSatisfy({ $0 < 0x80 }) || String(validating: key, as: UTF8.self) != nil else {
            reject(WireError(.key, "frame 1: key is not valid UTF-8"), key: nil)
            return
        }
        let body = parts.frame(1)
        guard body.count <= configuration.maxMessageBytes else {
            reject(WireError(.tooLarge, "frame 2: payload is \(body.count) bytes; the limit is \(configuration.maxMessageBytes)"), key: key)
            return
        }
        var message: InputHeader
        do { message = try InputDecoder.decode(body, into: &arena) } catch {
            reject(error, key: key)
            return
        }
        if model == nil {
            guard message.steps > 0 else { return }   // nothing to learn the input size from
            createModel(for: message)
            pinWeights()
        }
        do { try ModelAdmission.check(message, arena, architecture: model!.architecture) } catch {
            reject(error, key: key)
            return
        }
        let now = Clock.seconds
        var flags: OutputFlags = []
        var resetFirst = false
        let slot: Int
        if let existing = table.slot(for: key) {
            slot = existing
            let endPending = tail(of: slot).map { pendings[$0].message.flags.contains(.end) } ?? false
            if message.flags.contains(.reset) || endPending {
                flags.insert(.newState)
                resetFirst = true
                message.seq = message.seq ?? 0
            } else {
                let expected = table.nextSeq[slot]
                let seq = message.seq ?? expected
                message.seq = seq
                if seq < expected {
                    counters.duplicates += 1
                    metrics.duplicates.increment()
                    log.warning("duplicate", now: now, "dropped duplicate message: seq \(seq) but \(expected) expected",
                                metadata: ["stream": "\(String(decoding: key, as: UTF8.self))"])
                    return
                }
                if seq > expected {
                    counters.gaps += 1
                    metrics.gaps.increment()
                    flags.insert(.gap)
                    if configuration.onGap == .reset { flags.insert(.newState); resetFirst = true }
                }
            }
            table.touch(slot, now: now)
        } else {
            guard message.steps > 0 else { return }   // END or RESET of an unknown stream: nothing to do
            if table.count >= table.capacity, let victim = table.leastRecentlyUsed {
                table.remove(victim)
                learner.reset(victim)
                counters.evictedLRU += 1
                metrics.evictedLRU.increment()
            }
            slot = table.insert(key, now: now)!
            learner.reset(slot)
            flags.insert(.newState)
            message.seq = message.seq ?? 0
            metrics.streamsActive.record(table.count)
        }
        table.nextSeq[slot] = message.seq! &+ UInt64(message.steps)
        var p = PendingMessage(slot: slot, message: message, flags: flags, resetFirst: resetFirst, receivedAt: receivedAt)
        let o = model!.architecture.outputSize
        if !message.flags.contains(.noPredict) {
            p.outputOffset = predictions.count
            predictions.append(contentsOf: repeatElement(0, count: message.steps * o))
        }
        p.lossOffset = losses.count
        losses.append(contentsOf: repeatElement(.nan, count: message.steps))
        let index = pendings.count
        pendings.append(p)
        if let tail = tail(of: slot) { pendings[tail].nextInStream = index }
        chainTail[slot] = index
        chainCycle[slot] = cycleNumber
    }

    /// Rounds of batched steps until every admitted message is done.
    private func runSteps(_ output: ZMQSocket) {
        let o = model!.architecture.outputSize
        let engine = self.engine!, table = self.table!, learner = self.learner!, scratch = self.scratch!
        // Heads of each stream's queue, in arrival order: the messages no other one points to.
        var follows = [Bool](repeating: false, count: pendings.count)
        for p in pendings where p.nextInStream >= 0 { follows[p.nextInStream] = true }
        var active: [Int] = []
        for i in pendings.indices where !follows[i] { active.append(i) }
        var nextActive: [Int] = []
        var batch: [Int] = []
        while !active.isEmpty {
            // Messages with nothing (left) to step complete now; their successors move up.
            batch.removeAll(keepingCapacity: true)
            roundClock = 0
            for var i in active {
                while true {
                    if pendings[i].nextStep == 0 && pendings[i].resetFirst {
                        resetStream(pendings[i].slot)
                        pendings[i].resetFirst = false
                    }
                    if !pendings[i].finished { batch.append(i); break }
                    complete(i, output)
                    guard pendings[i].nextInStream >= 0 else { break }
                    i = pendings[i].nextInStream
                }
            }
            if batch.isEmpty { break }
            // Before each step: standardise, resolve next-step targets (DESIGN §3.5: the target
            // first, then any due update, then the prediction).
            for (row, i) in batch.enumerated() {
                let p = pendings[i]
                let t = p.nextStep
                let msg = p.message
                let state = table.state(p.slot)
                engine.loadState(row: row, from: state)
                let explicit = msg.targetKind != .none
                let learnable = learningEnabled && !msg.flags.contains(.noLearn)
                let loss: Float?
                if tokenModel {
                    let token = Int32(bitPattern: arena.tokens[msg.tokenOffset + t])
                    engine.setToken(row: row, token)
                    loss = learner.prepare(slot: p.slot, features: nil, token: token, modelInput: nil, stateBefore: state,
                                           explicitTarget: explicit, learnable: learnable)
                } else {
                    loss = arena.features.withUnsafeBufferPointer {
                        learner.prepare(slot: p.slot, features: $0.baseAddress! + msg.featureOffset + t * msg.xdim, token: 0,
                                        modelInput: engine.featureRow(row), stateBefore: state, explicitTarget: explicit, learnable: learnable)
                    }
                }
                if let loss { recordLoss(loss, slot: p.slot, at: p.lossOffset + t) }
            }
            learnDue()
            engine.step(weights: cycleWeights, batch: batch.count)
            counters.batches += 1
            metrics.batchSize.record(batch.count)
            nextActive.removeAll(keepingCapacity: true)
            for (row, i) in batch.enumerated() {
                let slot = pendings[i].slot
                let t = pendings[i].nextStep
                let msg = pendings[i].message
                engine.storeState(row: row, to: table.state(slot))
                let loss: Float? = switch msg.targetKind {
                case .none:
                    learner.finish(slot: slot, logits: engine.logits(row: row), explicitTarget: false, targetValues: nil, targetClass: 0, scratch: scratch.pointer)
                case .values:
                    arena.targetValues.withUnsafeBufferPointer {
                        learner.finish(slot: slot, logits: engine.logits(row: row), explicitTarget: true,
                                       targetValues: $0.baseAddress! + msg.targetValueOffset + t * msg.ydim, targetClass: 0, scratch: scratch.pointer)
                    }
                case .classIndex:
                    learner.finish(slot: slot, logits: engine.logits(row: row), explicitTarget: true, targetValues: nil,
                                   targetClass: Int32(bitPattern: arena.targetClasses[msg.targetClassOffset + t]), scratch: scratch.pointer)
                }
                if let loss { recordLoss(loss, slot: slot, at: pendings[i].lossOffset + t) }
                if !msg.flags.contains(.noPredict) {
                    predictions.withUnsafeMutableBufferPointer {
                        learner.publishable(slot: slot, outputs: engine.output(row: row), into: $0.baseAddress! + pendings[i].outputOffset + t * o)
                    }
                }
                table.steps[slot] += 1
                pendings[i].nextStep += 1
                nextActive.append(i)
            }
            // Explicit targets resolved right after their step may have made windows due.
            learnDue()
            counters.steps += UInt64(batch.count)
            metrics.steps.increment(by: batch.count)
            swap(&active, &nextActive)
        }
    }

    /// Runs (inline) or hands over (background) the updates of the windows now due.
    private func learnDue() {
        learner.takeDue(into: &due)
        guard !due.isEmpty else { return }
        guard learningEnabled else {
            // Turned off: entries resolved from steps taken while it was on are not acted upon.
            for slot in due { learner.window(slot).pending = 0 }
            return
        }
        if let syncTrainer, let model {
            syncTrainer.optimizer.learningRate = configuration.learningRate
            if syncTrainer.update(windows: due.map(learner.window), weights: model.weights.pointer) != nil {
                syncVersion += 1
                counters.updates += 1
                metrics.updates.increment()
                modelVersion = UInt32(truncatingIfNeeded: syncVersion)
                metrics.modelVersion.record(Int64(syncVersion))
            } else {
                counters.skippedUpdates += 1
                metrics.skippedUpdates.increment()
                log.warning("skipped", now: Clock.seconds, "skipped an update: non-finite loss or gradient")
            }
        } else if let background {
            let pressure = Clock.nanoseconds &- background.servingBacklog.load(ordering: .relaxed) < 2_000_000
            for slot in due {
                let w = learner.window(slot)
                switch background.submit(slot: slot, window: w, pressure: pressure) {
                case .queued: break
                case .coalesced: counters.windowsCoalesced += 1; metrics.windowsCoalesced.increment()
                case .dropped: counters.windowsDropped += 1; metrics.windowsDropped.increment()
                }
                w.pending = 0
            }
        }
    }

    private func recordLoss(_ loss: Float, slot: Int, at index: Int) {
        losses[index] = loss
        guard loss.isFinite else { return }
        table.lossSum[slot] += Double(loss)
        table.lossCount[slot] += 1
        counters.lossSum += Double(loss)
        counters.lossCount += 1
        metrics.lossSum.increment(by: Double(loss))
        metrics.lossCount.increment()
    }

    /// Publishes a finished message's predictions and applies END.
    private func complete(_ i: Int, _ output: ZMQSocket) {
        let p = pendings[i]
        if roundClock == 0 { roundClock = Clock.nanoseconds }
        if p.message.steps > 0 && !p.message.flags.contains(.noPredict) { publish(p, output) }
        if p.message.flags.contains(.end) {
            if p.nextInStream >= 0 {
                resetStream(p.slot)   // the stream speaks again in this very batch: a fresh start
            } else {
                table.remove(p.slot)
                learner.reset(p.slot)
                metrics.streamsActive.record(table.count)
            }
        }
        metrics.latency.recordNanoseconds(Int64(roundClock - p.receivedAt))
    }

    private func publish(_ p: PendingMessage, _ output: ZMQSocket) {
        let arch = model!.architecture
        let o = arch.outputSize
        let n = p.message.steps
        let topK = arch.head == .softmax && configuration.topK > 0 ? min(configuration.topK, o) : 0
        let kind: WireOutputKind = topK > 0 ? .topK : .vector
        let odim = topK > 0 ? topK : o
        if topK > 0 { selectTop(p, k: topK, outputs: o) }
        predictions.withUnsafeBufferPointer { pred in
            losses.withUnsafeBufferPointer { loss in
                topValues.withUnsafeBufferPointer { tv in
                    topIds.withUnsafeBufferPointer { ti in
                        let values = topK > 0 ? tv.baseAddress! : pred.baseAddress! + p.outputOffset
                        let ids = topK > 0 ? ti.baseAddress : nil
                        switch configuration.outputFormat {
                        case .binary:
                            OutputCodec.encodeBinary(into: &payload, kind: kind, flags: p.flags, odim: odim, steps: n, modelVersion: modelVersion,
                                                     seq: p.message.seq ?? 0, timestamp: p.message.timestamp, values: values, ids: ids,
                                                     losses: loss.baseAddress! + p.lossOffset)
                        case .json:
                            OutputCodec.encodeJSON(into: &payload, kind: kind, flags: p.flags, odim: odim, steps: n, modelVersion: modelVersion,
                                                   seq: p.message.seq ?? 0, timestamp: p.message.timestamp, values: values, ids: ids,
                                                   losses: loss.baseAddress! + p.lossOffset)
                        }
                    }
                }
            }
        }
        topic.removeAll(keepingCapacity: true)
        topic.append(contentsOf: outputPrefix)
        table.index.withKey(p.slot) { topic.append(contentsOf: $0) }
        do {
            try output.send(topic, more: true, dontWait: true)
            try output.send(payload, more: false, dontWait: true)
        } catch {
            log.warning("publish", now: Clock.seconds, "publish failed: \(error)")
            return
        }
        counters.outputMessages += 1
        counters.predictions += UInt64(n)
        metrics.predictions.increment(by: n)
    }

    /// The k most probable classes of each step, most probable first, kept sorted by insertion
    /// straight into the output arrays (no per-step allocation).
    private func selectTop(_ p: PendingMessage, k: Int, outputs o: Int) {
        let n = p.message.steps
        topIds.removeAll(keepingCapacity: true)
        topValues.removeAll(keepingCapacity: true)
        for s in 0..<n {
            let base = p.outputOffset + s * o, start = s * k
            for j in 0..<o {
                let v = predictions[base + j]
                let filled = topValues.count - start
                if filled == k && v <= topValues[start + k - 1] { continue }
                var at = start + min(filled, k - 1)
                if filled < k { topIds.append(0); topValues.append(0) }
                while at > start && topValues[at - 1] < v {
                    topIds[at] = topIds[at - 1]
                    topValues[at] = topValues[at - 1]
                    at -= 1
                }
                topIds[at] = UInt32(j)
                topValues[at] = v
            }
        }
    }

    // MARK: Housekeeping

    private func expireIdleStreams(now: Double) {
        guard configuration.idleTimeout > 0, let table else { return }
        while let victim = table.leastRecentlyUsed, now - table.lastSeen[victim] > configuration.idleTimeout {
            table.remove(victim)
            learner.reset(victim)
            counters.evictedIdle += 1
            metrics.evictedIdle.increment()
        }
        metrics.streamsActive.record(table.count)
    }

    // MARK: Control

    private func handleControl(_ socket: ZMQSocket, _ parts: ZMQMultipart) {
        do {
            guard try parts.receive(from: socket, dontWait: true) else { return }
        } catch {
            return
        }
        let request = String(decoding: parts.frame(0), as: UTF8.self)
        let reply = ControlCommand.parse(request).map(execute) ?? ["ok": false, "error": "cannot read the request; try: stats, streams, stream KEY, reset KEY, drop KEY, checkpoint, learning on|off, set lr=X, model, reload"]
        let data = (try? JSONSerialization.data(withJSONObject: reply, options: [.sortedKeys])) ?? Data(#"{"ok":false,"error":"reply encoding failed"}"#.utf8)
        do { _ = try socket.send(frames: [Array(data)]) } catch { logger.warning("control reply failed", metadata: ["error": "\(error)"]) }
    }

    private func execute(_ command: ControlCommand) -> [String: Any] {
        switch command {
        case .stats:
            return statsReply()
        case .streams:
            guard let table else { return ["ok": true, "count": 0, "streams": [Any]()] }
            let now = Clock.seconds
            let listed = table.slotsByRecency.prefix(1000).map { streamInfo(slot: $0, now: now) }
            return ["ok": true, "count": table.count, "streams": listed, "truncated": table.count > listed.count]
        case .stream(let key):
            guard let table, let slot = table.slot(for: Array(key.utf8)) else { return ["ok": false, "error": "no stream '\(key)'"] }
            var info = streamInfo(slot: slot, now: Clock.seconds)
            info["ok"] = true
            return info
        case .reset(let key):
            guard let table, let slot = table.slot(for: Array(key.utf8)) else { return ["ok": false, "error": "no stream '\(key)'"] }
            resetStream(slot)
            return ["ok": true, "reset": key]
        case .drop(let key):
            guard let table, let slot = table.slot(for: Array(key.utf8)) else { return ["ok": false, "error": "no stream '\(key)'"] }
            table.remove(slot)
            learner.reset(slot)
            metrics.streamsActive.record(table.count)
            return ["ok": true, "dropped": key]
        case .checkpoint:
            return checkpoint()
        case .learning(let on):
            learningEnabled = on
            logger.notice("learning \(on ? "on" : "off") by control command")
            return ["ok": true, "learning": on]
        case .set(let name, let value):
            guard name == "lr" else { return ["ok": false, "error": "cannot set '\(name)': settable at run time: lr"] }
            guard let lr = Float(value), lr.isFinite, lr >= 0 else { return ["ok": false, "error": "lr must be a finite number ≥ 0, got '\(value)'"] }
            configuration.learningRate = lr
            background?.learningRate = lr
            logger.notice("learning rate set by control command", metadata: ["lr": "\(lr)"])
            return ["ok": true, "lr": Double(lr)]
        case .model:
            guard let model else { return ["ok": true, "model": NSNull(), "note": "no model yet: one is created when the first stream speaks"] }
            let a = model.architecture
            var info: [String: Any] = [
                "ok": true, "cell": a.cell.rawValue, "input": a.input.name, "input_size": a.input.layerInputSize, "hidden": a.hidden,
                "outputs": a.outputSize, "head": a.head.rawValue, "parameters": model.layout.count, "version": Int(modelVersion),
                "file": modelPath ?? NSNull(),
            ]
            if case .tokens(let v, let e) = a.input { info["vocabulary"] = v; info["embedding"] = e }
            return info
        case .reload:
            return reload()
        }
    }

    private func streamInfo(slot: Int, now: Double) -> [String: Any] {
        var info: [String: Any] = [
            "key": String(decoding: table.key(slot), as: UTF8.self),
            "steps": Int(table.steps[slot]),
            "next_seq": Int(clamping: table.nextSeq[slot]),
            "idle_seconds": max(0, now - table.lastSeen[slot]),
            "age_seconds": max(0, now - table.createdAt[slot]),
            "targets": Int(table.lossCount[slot]),
        ]
        info["mean_loss"] = table.lossCount[slot] > 0 ? table.lossSum[slot] / Double(table.lossCount[slot]) : NSNull()
        if tokenModel, table.lossCount[slot] > 0 { info["bits_per_byte"] = table.lossSum[slot] / Double(table.lossCount[slot]) / Foundation.log(2.0) }
        return info
    }

    private func statsReply() -> [String: Any] {
        var rejected: [String: Int] = [:]
        for r in WireError.Reason.allCases { rejected[r.rawValue] = Int(counters.rejected[r] ?? 0) }
        return [
            "ok": true,
            "uptime_seconds": Clock.seconds - startedAt,
            "messages": Int(counters.messages),
            "steps": Int(counters.steps),
            "predictions": Int(counters.predictions),
            "output_messages": Int(counters.outputMessages),
            "batches": Int(counters.batches),
            "rejected": rejected,
            "rejected_total": rejected.values.reduce(0, +),
            "duplicates": Int(counters.duplicates),
            "gaps": Int(counters.gaps),
            "streams": table?.count ?? 0,
            "evictions": ["lru": Int(counters.evictedLRU), "idle": Int(counters.evictedIdle)],
            "model_version": Int(modelVersion),
            "learning": learningEnabled,
            "learning_mode": configuration.syncLearning ? "sync" : "background",
            "updates": Int(counters.updates) + (background?.updates.load(ordering: .relaxed) ?? 0),
            "skipped_updates": Int(counters.skippedUpdates) + (background?.skipped.load(ordering: .relaxed) ?? 0),
            "windows_coalesced": Int(counters.windowsCoalesced),
            "windows_dropped": Int(counters.windowsDropped),
            "lr": Double(configuration.learningRate),
            "targets": Int(counters.lossCount),
            "mean_loss": counters.lossCount > 0 ? counters.lossSum / Double(counters.lossCount) : NSNull(),
            "bits_per_byte": tokenModel && counters.lossCount > 0 ? counters.lossSum / Double(counters.lossCount) / Foundation.log(2.0) : NSNull(),
        ]
    }

    private func checkpoint() -> [String: Any] {
        guard let model else { return ["ok": false, "error": "no model yet"] }
        guard let dir = configuration.stateDirectory else { return ["ok": false, "error": "no state directory (set --state-dir)"] }
        let path = (dir as NSString).appendingPathComponent("model.safetensors")
        // Weights and optimiser from the same update (the background trainer's latest).
        let weights: FloatBuffer, optimizer: Optimizer?, version: UInt64
        if let background {
            (weights, optimizer, version) = background.checkpointState()
        } else {
            (weights, optimizer, version) = (model.weights, syncTrainer?.optimizer, syncVersion)
        }
        var extras: [String: (shape: [Int], values: [Float])] = [:]
        var metadata = ["recurd.version": "\(version)"]
        if let optimizer {
            let state = OptimizerCheckpoint.encode(optimizer, layout: model.layout)
            extras = state.extras
            metadata.merge(state.metadata) { $1 }
        }
        let file = ModelFile(model: Model(layout: model.layout, weights: weights), metadata: metadata, extras: extras)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data(file.encode()).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            return ["ok": false, "error": "\(path): \(error.localizedDescription)"]
        }
        logger.notice("checkpoint written", metadata: ["file": "\(path)", "version": "\(version)"])
        return ["ok": true, "file": path, "version": Int(version)]
    }

    private func reload() -> [String: Any] {
        guard let path = modelPath else { return ["ok": false, "error": "no model file to reload (the model was created in memory)"] }
        guard let data = FileManager.default.contents(atPath: path) else { return ["ok": false, "error": "\(path): cannot read"] }
        let file: ModelFile
        do { file = try ModelFile.decode([UInt8](data), file: path) } catch { return ["ok": false, "error": error.description] }
        guard let model, file.model.architecture == model.architecture else {
            return ["ok": false, "error": "\(path): the architecture differs from the running model's; restart to change it"]
        }
        if let background { background.replaceWeights(file.model.weights) } else { model.weights.copy(from: file.model.weights) }
        logger.notice("model reloaded", metadata: ["file": "\(path)"])
        return ["ok": true, "file": path]
    }
}
