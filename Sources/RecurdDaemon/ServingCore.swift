import Foundation
import Logging
import RecurdModelFile
import RecurdNumerics
import RecurdStore
import RecurdStreams
import RecurdWire

/// Everything the serving thread does once there is a model: admission and sequence policy,
/// the step scheduler, publishing, the streams' residency and store traffic, periodic
/// checkpoints, and the settings that change live. No sockets: messages come in as bytes and
/// predictions leave through the publisher's sink, so it can be driven in-process. Serving
/// thread only.
final class ServingCore {
    private(set) var configuration: ServeConfiguration
    let runtime: ModelRuntime
    let table: StreamTable
    let residency: StreamResidency
    let scheduler: StepScheduler
    let publisher: Publisher
    let counters: DaemonCounters
    let metrics: DaemonMetrics
    let worker: StoreWorker?
    let stateDirectory: String?
    let logger: Logger
    private let log: RateLimitedLog
    let tokenModel: Bool
    /// Bytes a stream's text context model may grow to (0: not a text model, or none).
    private let textBytes: Int

    /// Seconds (monotonic) of the last periodic flush.
    private var lastFlush = Clock.seconds
    private var nextToken: UInt64 = 1
    /// Checkpoint results waiting for their flush's barrier.
    private var checkpointResults: [UInt64: Result<CheckpointInfo, CheckpointError>] = [:]
    /// What to do when a token's store answer comes back.
    enum Waiter {
        /// A control reply (`checkpoint`, `reload`) waits for it.
        case control
        /// A periodic or final flush.
        case flush
    }
    private var waiters: [UInt64: Waiter] = [:]
    /// Control replies that became ready.
    private(set) var readyReplies: [ControlReply.Encoded] = []
    private(set) var lastCheckpointVersion: UInt64?

    /// Rounds of batched steps per serving cycle: a long message runs this many of its steps,
    /// then the loop takes new messages and control requests before it goes on (about a
    /// millisecond of work for a text model), so no message waits behind another's length.
    static let roundsPerCycle = 64
    /// …and at most this long (a slow machine or build reaches it first).
    static let cycleBudgetNanoseconds: UInt64 = 2_000_000

    /// Steps per output message, so that none exceeds `max-output-bytes`.
    static func chunkSteps(_ c: ServeConfiguration, _ a: ModelArchitecture) -> Int {
        let k = a.head == .softmax && c.topK > 0 ? min(c.topK, a.outputSize) : 0
        let perStep = (k > 0 ? 8 * k : 4 * a.outputSize) + (c.anomalyScores ? 8 : 4)
        return max(1, (c.maxOutputBytes - 32) / perStep)
    }

    init(configuration c: ServeConfiguration, layout: StreamRecordLayout, runtime: ModelRuntime, sink: any OutputSink, worker: StoreWorker?,
         stateDirectory: String?, counters: DaemonCounters, metrics: DaemonMetrics, logger: Logger) {
        configuration = c
        self.runtime = runtime
        self.counters = counters
        self.metrics = metrics
        self.worker = worker
        self.stateDirectory = stateDirectory
        self.logger = logger
        log = RateLimitedLog(logger: logger)
        let a = runtime.architecture
        tokenModel = if case .tokens = a.input { true } else { false }
        textBytes = layout.textBytes
        table = StreamTable(layout: layout, capacity: c.maxStreams)
        residency = StreamResidency(table: table, worker: stateDirectory == nil ? nil : worker, maxStreams: c.maxStreams, counters: counters,
                                    metrics: metrics, logger: logger)
        publisher = Publisher(sink: sink, configuration: c, architecture: a)
        scheduler = StepScheduler(table: table, learning: StreamLearning(layout: layout), runtime: runtime, publisher: publisher, counters: counters,
                                  metrics: metrics, learningEnabled: c.learn)
        scheduler.forget = { [unowned residency] slot, reason in residency.forget(slot, reason: reason) }
        scheduler.maxRounds = Self.roundsPerCycle
        scheduler.cycleBudgetNanoseconds = Self.cycleBudgetNanoseconds
        scheduler.chunkSteps = Self.chunkSteps(c, a)
        scheduler.alertLevel = c.anomalyAlertLevel
        residency.willForget = { [unowned scheduler] slot in scheduler.cancel(slot) }
        lastCheckpointVersion = runtime.checkpointedVersion
        applyStreamLimit(c)
    }

    // MARK: Admission

    /// Starts a serving cycle (before admitting its messages).
    func beginCycle() {
        residency.beginTurn()
        scheduler.beginCycle()
        runtime.pin()
    }

    /// Checks one received message and queues its steps, parks it while its stream comes back
    /// from the store, or rejects or drops it whole (counted).
    /// `learnable` false: the producer may not train the model (outside `trainers/`), so the
    /// message's steps are predicted and scored as if it carried NO_LEARN.
    func admit(frames: Int, key: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, receivedAt: UInt64, learnable: Bool = true) {
        var header: InputHeader
        do throws(WireError) {
            header = try MessageCheck.decode(frames: frames, key: key, payload: payload, maxMessageBytes: configuration.maxMessageBytes,
                                             architecture: runtime.architecture, into: &scheduler.arenas[scheduler.currentArena])
        } catch {
            reject(error, key: frames == 2 && error.reason != .key ? key : nil)
            return
        }
        if !learnable { header.flags.insert(.noLearn) }
        let now = Date().timeIntervalSince1970
        switch residency.lookup(key) {
        case .resident(let slot):
            accept(header, slot: slot, key: key, receivedAt: receivedAt, now: now)
        case .loading, .absent:
            guard residency.park(key: key, payload: payload, receivedAt: receivedAt, learnable: learnable) else { return reject(busy(), key: key) }
        case .new:
            guard header.steps > 0 else { return }   // END or RESET of an unknown stream: nothing to do
            guard let slot = residency.insertNew(key, now: now) else { return reject(busy(), key: key) }
            accept(header, slot: slot, key: key, receivedAt: receivedAt, now: now)
        }
    }

    private func busy() -> WireError {
        let what = residency.maxStreams < configuration.maxStreams ? "raise text-context-memory or lower text-context-bytes" : "raise max-streams"
        return WireError(.busy, "all \(residency.maxStreams) streams in memory have work in flight; \(what)")
    }

    /// Sets how many streams stay in memory: `max-streams`, or fewer for text streams whose
    /// context models would not fit `text-context-memory` (said when it binds and when it changes).
    private func applyStreamLimit(_ c: ServeConfiguration) {
        // The process's memory limit (files under /proc and /sys) is read only where it decides.
        let memory = textBytes > 0 && c.textContextMemory == 0 ? MemoryLimit.current() : nil
        let limit = c.residentStreams(textBytes: textBytes, memoryLimit: memory?.bytes ?? 0)
        let previous = residency.maxStreams
        if limit != previous { residency.setMaxStreams(limit) }
        guard limit < c.maxStreams, limit != previous else { return }
        func size(_ bytes: UInt64) -> String { bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB" }
        let budget = memory.map { "half of \($0.source) (\(size($0.bytes / 2)))" } ?? "text-context-memory (\(size(UInt64(c.textContextMemory))))"
        let metadata: Logger.Metadata = ["streams_in_memory": "\(limit)", "max_streams": "\(c.maxStreams)", "text_context_bytes": "\(textBytes)"]
        let message = "at most \(limit) text streams stay in memory, not max-streams (\(c.maxStreams)): that many context models of \(size(UInt64(textBytes))) fill \(budget)"
        if stateDirectory != nil {
            logger.notice("\(message); the least recently used beyond go to the store and come back when they speak", metadata: metadata)
        } else {
            logger.warning("\(message); with no state directory the least recently used beyond are forgotten, their state lost (set state-dir to keep them)",
                           metadata: metadata)
        }
    }

    private func accept(_ header: InputHeader, slot: Int, key: UnsafeRawBufferPointer, receivedAt: UInt64, now: Double) {
        let r = table.record(slot)
        if r.isFresh && header.steps == 0 {
            // END or RESET of a stream nobody knows: nothing to do, nothing to keep.
            if !table.isPinned(slot) { residency.discardFresh(slot) }
            return
        }
        let afterEnd = scheduler.lastQueued(slot)?.header.flags.contains(.end) ?? false
        let verdict = SequencePolicy.verdict(flags: header.flags, seq: header.seq, stream: r.isFresh ? nil : r.nextSeq, afterEnd: afterEnd,
                                             anySeq: r.acceptsAnySeq, onGap: configuration.onGap)
        switch verdict {
        case .duplicate(let seq, let expected):
            counters.duplicates += 1
            metrics.duplicates.increment()
            log.warning("duplicate", now: Clock.seconds, "dropped duplicate message: seq \(seq) but \(expected) expected",
                        metadata: ["stream": "\(String(decoding: key, as: UTF8.self))"])
        case .accept(let seq, let flags, let resetFirst, let breakFirst):
            if flags.contains(.gap) {
                counters.gaps += 1
                metrics.gaps.increment()
            }
            var h = header
            h.seq = seq
            r.nextSeq = seq &+ UInt64(h.steps)
            if header.seq != nil { r.acceptsAnySeq = false } else if header.flags.contains(.reset) { r.acceptsAnySeq = true }
            r.isFresh = false
            table.touch(slot, now: now)
            table.markDirty(slot)
            scheduler.enqueue(slot: slot, header: h, flags: flags, resetFirst: resetFirst, breakFirst: breakFirst, receivedAt: receivedAt)
        }
    }

    func reject(_ error: WireError, key: UnsafeRawBufferPointer?) {
        counters.rejected[error.reason, default: 0] += 1
        metrics.rejected(error.reason)
        var meta: Logger.Metadata = ["reason": "\(error.reason.rawValue)"]
        if let key { meta["stream"] = "\(String(decoding: key, as: UTF8.self))" }
        log.warning(error.reason.rawValue, now: Clock.seconds, "rejected message: \(error.detail)", metadata: meta)
    }

    // MARK: Store traffic

    /// Takes what the store's thread has finished: returning streams (their parked messages are
    /// admitted now), checkpoint and flush results.
    func handleCompletions() {
        guard let worker else { return }
        var completions = worker.takeCompletions()
        if !waitingForRoom.isEmpty {
            completions = waitingForRoom + completions
            waitingForRoom.removeAll()
        }
        var noRoom = false
        for c in completions {
            switch c {
            case .loaded(let key, let record, let unreadable):
                if record == nil, !unreadable, let q = streamQuery, q.key == key, residency.abandonEmptyLoad(key) {
                    streamQuery = nil
                    readyReplies.append(q.missing())
                    continue
                }
                // Every stream in memory has queued work (a burst of loads came back at once, say
                // after the store was slow): the record waits for the scheduler to free a slot,
                // its messages parked (bounded: see `park`), rather than being refused as busy.
                // Once one found no room, the rest of this call's would not either.
                // Likewise once this pass has gathered a hand-over's worth of evicted records
                // (text streams': 4 MiB each), so that a burst of returns cannot copy gigabytes.
                if residency.turnIsFull { noRoom = true }
                guard !noRoom, let (slot, parked) = residency.arrived(key: key, record: record, unreadable: unreadable, now: Date().timeIntervalSince1970) else {
                    noRoom = true
                    waitingForRoom.append(c)
                    continue
                }
                for p in parked {
                    key.withUnsafeBytes { k in
                        p.payload.withUnsafeBytes { payload in
                            admit(frames: 2, key: k, payload: payload, receivedAt: p.receivedAt, learnable: p.learnable)
                        }
                    }
                }
                if let q = streamQuery, q.key == key {
                    streamQuery = nil
                    readyReplies.append(table.isLive(slot) && !table.record(slot).isFresh ? q.found(slot) : q.missing())
                }
                // A load that brought nothing to do (a lone END) leaves nothing behind.
                if table.isLive(slot), table.record(slot).isFresh, !table.isPinned(slot) { residency.discardFresh(slot) }
            case .checkpointed(let token, let result):
                if case .success(let info) = result {
                    lastCheckpointVersion = info.version
                    logger.notice("checkpoint written", metadata: ["file": "\(info.path)", "version": "\(info.version)", "bytes": "\(info.bytes)"])
                }
                checkpointResults[token] = result
            case .keyFilter(let filter):
                residency.filterArrived(filter)
            case .modelRead(let token, let result):
                finishReload(token: token, result)
            case .barrier(let token, let written):
                finishFlush(token: token, written: written)
            }
        }
    }

    private func token(_ waiter: Waiter) -> UInt64 {
        let t = nextToken
        nextToken += 1
        waiters[t] = waiter
        return t
    }

    /// Writes changed streams (and the model, if it changed) every `checkpoint-interval`.
    func housekeeping(now: Double, wallClock: Double) {
        residency.expireIdle(now: wallClock, timeout: configuration.idleTimeout)
        if worker != nil, stateDirectory != nil, now - lastFlush >= configuration.checkpointInterval {
            lastFlush = now
            _ = flush(checkpointModel: runtime.version != lastCheckpointVersion, waiter: .flush)
        }
        residency.submit()
    }

    /// Starts a flush: the model checkpoint (if asked), every stream changed by now, then a
    /// barrier whose token is returned. The streams go over a turn at a time (`continueFlush`).
    /// A flush asked for while one is still handing over its streams joins it: a periodic one
    /// adds nothing (a slow store must not keep one flush growing), a `fresh` one (a control
    /// `checkpoint`, the final flush) adds the streams changed since and a new model checkpoint.
    @discardableResult
    func flush(checkpointModel: Bool, waiter: Waiter, fresh: Bool = false) -> UInt64? {
        guard let worker, stateDirectory != nil else { return nil }
        let t: UInt64
        if let running = flushing {
            t = running.token
            if waiter == .control { waiters[t] = .control }
            if fresh {
                flushing!.slots = table.dirtySlots   // every slot of the old list still dirty, and the rest
                flushing!.modelCheckpointed = false
                flushStartedAt[t] = Date().timeIntervalSince1970
            }
        } else {
            worker.submit(.beginFlush)
            t = token(waiter)
            flushing = (t, table.dirtySlots, false)
            flushStartedAt[t] = Date().timeIntervalSince1970
        }
        if checkpointModel && !flushing!.modelCheckpointed {
            flushing!.modelCheckpointed = true
            worker.submit(.checkpoint(runtime.checkpointSource(metadata: runtime.seed.map { [ModelSeed.key: $0] } ?? [:]), token: t))
        }
        continueFlush()
        return t
    }

    /// The flush handing over its streams: its token, the streams changed when it began that
    /// are still to go, and whether the model checkpoint is in it.
    private var flushing: (token: UInt64, slots: [Int32], modelCheckpointed: Bool)?
    /// When each flush took its list of changed streams: what it leaves up to date.
    private var flushStartedAt: [UInt64: Double] = [:]
    /// Gives up the running flush's streams not yet handed over (the final flush ran out of
    /// time): counted as lost records, and returned.
    func abandonFlush() -> Int {
        guard let f = flushing else { return 0 }
        flushing = nil
        flushStartedAt[f.token] = nil
        let lost = f.slots.reduce(0) { $0 + (table.isLive(Int($1)) && table.isDirty(Int($1)) ? 1 : 0) }
        worker?.countLost(lost)
        return lost
    }

    /// A flush is handing over its streams, or returned records wait for the next pass (the
    /// serving loop then does not sleep long).
    var isHandingOver: Bool { flushing != nil || !waitingForRoom.isEmpty }

    /// Hands the running flush's next changed streams to the store, up to
    /// `StreamResidency.handoverBytes` a pass and only while the store keeps up, then its barrier.
    /// In one go, a flush of a few hundred text streams (4 MiB each with their context models)
    /// copied gigabytes at once, and the store lost what it could not hold. The serving loop
    /// calls this every pass.
    func continueFlush() {
        guard var f = flushing, let worker else { return }
        if !residency.storeIsBehind { residency.writeChanged(from: &f.slots) }
        residency.submit()
        if f.slots.isEmpty {
            worker.submit(.barrier(token: f.token))
            flushing = nil
        } else {
            flushing = f
        }
    }

    private func finishFlush(token: UInt64, written: Bool) {
        let waiter = waiters.removeValue(forKey: token)
        let checkpoint = checkpointResults.removeValue(forKey: token)
        flushed.insert(token)
        var checkpointFailed = false
        if case .failure? = checkpoint { checkpointFailed = true }
        let startedAt = flushStartedAt.removeValue(forKey: token)
        if written && !checkpointFailed { upToDateAt = startedAt ?? Date().timeIntervalSince1970 }
        guard waiter == .control else { return }
        switch checkpoint {
        case .failure(let e)?:
            readyReplies.append(ControlReply.failure("\(e)"))
        case .success(let info)?:
            readyReplies.append(ControlReply.encode(ControlReply.Ack(ok: written, error: written ? nil : "stream records not yet written (the store retries)",
                                                                     file: info.path, version: info.version, bytes: info.bytes)))
        case nil:
            readyReplies.append(ControlReply.encode(ControlReply.Ack(ok: written, error: written ? nil : "stream records not yet written (the store retries)",
                                                                     version: lastCheckpointVersion, note: "model unchanged since its last checkpoint")))
        }
    }

    /// When a flush last left the state directory up to date (every changed stream written, the
    /// model checkpointed if it had changed): what a crash would lose is younger than this.
    private(set) var upToDateAt: Double?

    /// Barriers answered (for the final flush at shutdown).
    private(set) var flushed: Set<UInt64> = []

    func takeReadyReplies() -> [ControlReply.Encoded] {
        defer { readyReplies.removeAll() }
        return readyReplies
    }

    // MARK: Control

    /// What a control command's answer is.
    enum ControlOutcome {
        case reply(ControlReply.Encoded)
        /// The answer comes later (`takeReadyReplies`), once the store's thread has done its part.
        case deferred
    }

    func checkpoint() -> ControlOutcome {
        guard stateDirectory != nil else { return .reply(ControlReply.failure("no state directory (set --state-dir)")) }
        // Always write the model on request, so `checkpoint` leaves a file even if unchanged.
        _ = flush(checkpointModel: true, waiter: .control, fresh: true)
        return .deferred
    }

    /// Records back from the store while no slot could be freed; tried again at the next call.
    private var waitingForRoom: [StoreCompletion] = []

    /// A `stream KEY` request for a stream not in memory: its reply once the store has answered.
    private var streamQuery: (key: [UInt8], found: (Int) -> ControlReply.Encoded, missing: () -> ControlReply.Encoded)?

    /// Brings `key` back from the store (unless on its way already) and replies with `found` (its
    /// slot, once in memory) or `missing` (the store has no such stream).
    func awaitStream(_ key: [UInt8], found: @escaping (Int) -> ControlReply.Encoded, missing: @escaping () -> ControlReply.Encoded) {
        streamQuery = (key, found, missing)
        residency.requestLoad(key)
    }

    func reload() -> ControlOutcome {
        guard let path = runtime.modelPath ?? configuration.model else {
            return .reply(ControlReply.failure("no model file to reload (the model was created in memory)"))
        }
        guard let worker else { return .reply(ControlReply.failure("no store thread")) }
        worker.submit(.readModel(path: path, token: token(.control), architecture: runtime.architecture, trainer: runtime.backgroundTrainer))
        return .deferred
    }

    private func finishReload(token: UInt64, _ result: Result<(file: ModelFile, seed: String), CheckpointError>) {
        waiters.removeValue(forKey: token)
        switch result {
        case .failure(let e):
            readyReplies.append(ControlReply.failure("\(e)"))
        case .success(let (file, seed)):
            guard file.model.architecture == runtime.architecture else {
                readyReplies.append(ControlReply.failure("\(runtime.modelPath ?? configuration.model ?? "model"): the architecture differs from the running model's; restart (with --reset-model) to change it"))
                return
            }
            runtime.replaceWeights(file.model.weights)
            runtime.seed = seed
            runtime.startCheckpoint = nil
            logger.notice("model reloaded", metadata: ["file": "\(runtime.modelPath ?? configuration.model ?? "")", "version": "\(runtime.version)"])
            readyReplies.append(ControlReply.encode(ControlReply.Ack(ok: true, file: runtime.modelPath ?? configuration.model, version: runtime.version)))
        }
    }

    // MARK: Settings that change live

    /// Applies `new`, the running configuration with its live settings changed (`ServingLoop`
    /// merges, checks and logs them); returns what is applied: `new`, but a `top-k` too wide for
    /// the model's output header stays as it was.
    func apply(_ new: ServeConfiguration) -> ServeConfiguration {
        var c = new
        if let problem = Publisher.widthProblem(runtime.architecture, topK: c.topK) {
            logger.error("top-k kept at \(configuration.topK): \(problem)")
            c.topK = configuration.topK
        }
        configuration = c
        scheduler.learningEnabled = c.learn
        runtime.apply(learningRate: c.learningRate, clip: c.clip)
        publisher.topK = c.topK
        scheduler.chunkSteps = Self.chunkSteps(c, runtime.architecture)
        scheduler.alertLevel = c.anomalyAlertLevel
        applyStreamLimit(c)
        worker?.submit(.limit(maxStored: c.maxStoredStreams))
        return c
    }

    // MARK: Shutdown

    /// Whether work remains before a clean stop: queued steps, streams coming back from the store.
    var hasPendingWork: Bool { scheduler.hasWork || residency.loadsInFlight > 0 }
}
