import Logging
import RecurdNumerics
import RecurdStreams
import RecurdWire

/// Runs admitted messages as rounds of batched steps: each round takes one step of every stream
/// with work queued (a many-step message runs its steps in order, one per round; a stream's
/// messages run in arrival order), runs DESIGN §3's bookkeeping around one batched step, hands
/// due windows to learning, and publishes each message's predictions when it finishes — or in
/// chunks of at most `chunkSteps` steps, and at the end of a cycle of at most `maxRounds`
/// rounds, so that one long message never holds the others up. Serving thread only; no sockets
/// (outputs go to the `Publisher`'s sink).
final class StepScheduler {
    let table: StreamTable
    let learning: StreamLearning
    let runtime: ModelRuntime
    let publisher: Publisher
    let counters: DaemonCounters
    let metrics: DaemonMetrics
    /// Learning on (`learn`, `learning on|off`).
    var learningEnabled: Bool
    /// Rounds per `run` (a cycle); the rest carries over.
    var maxRounds = Int.max
    /// Time a `run` may take before the rest carries over (checked between rounds).
    var cycleBudgetNanoseconds: UInt64 = .max
    /// Steps per output message of one input message.
    var chunkSteps = Int.max
    /// Called when END finishes a stream (the residency's one forget path).
    var forget: (Int, ForgetReason) -> Void = { _, _ in }

    private var messages: [ScheduledMessage] = []
    private var freeMessages: [Int32] = []
    private var queueHead: [Int32] = []
    private var queueTail: [Int32] = []
    /// Slots with queued messages, in the order they became active.
    private var active: [Int] = []
    private var nextActive: [Int] = []
    private var deferred: [Int] = []
    private var batch: [Int32] = []
    private var due: [Int] = []
    private var dueWindows: [TrainingWindow] = []
    private var stepped: [Int32] = []

    // Inputs: one arena per cycle, kept while a message decoded into it is queued.
    /// Decoding writes into `arenas[currentArena]`.
    var arenas: [InputArena] = [InputArena()]
    private var arenaUses: [Int] = [0]
    private(set) var currentArena = 0

    // This cycle's outputs.
    private var predictions: [Float] = []
    private var losses: [Float] = []
    /// Per step, beside the losses: anomaly scores (only when scores are on).
    private var anomalies: [Float] = []
    private let scoring: Bool
    /// Scores at or above this count as alerts (stats, metrics).
    var alertLevel: Float = 0.5

    private let outputs: Int
    private let tokenModel: Bool

    init(table: StreamTable, learning: StreamLearning, runtime: ModelRuntime, publisher: Publisher, counters: DaemonCounters,
         metrics: DaemonMetrics, learningEnabled: Bool) {
        self.table = table
        self.learning = learning
        self.runtime = runtime
        self.publisher = publisher
        self.counters = counters
        self.metrics = metrics
        self.learningEnabled = learningEnabled
        outputs = runtime.architecture.outputSize
        tokenModel = if case .tokens = runtime.architecture.input { true } else { false }
        scoring = learning.layout.anomalyScorers > 0
        fitTable()
    }

    /// Whether any message is queued.
    var hasWork: Bool { !active.isEmpty }

    /// Messages queued (all streams).
    var queuedMessages: Int { messages.count - freeMessages.count }

    /// Bytes of decoded input held by queued messages (kept as they are queued and released:
    /// the serving loop asks before every message it takes in).
    private(set) var queuedInputBytes = 0

    /// Queued input past which the serving loop leaves the rest in ZeroMQ (producers then feel
    /// the pace): without it, a producer sending faster than serving would grow memory without
    /// limit, and a stop would have that much to serve first.
    static let maxQueuedInputBytes = 64 << 20
    static let maxQueuedMessages = 65_536
    /// A free arena larger than this is replaced by a new one rather than kept for reuse.
    static let keptArenaBytes = 16 << 20

    /// The queue is at its bound: take no more input until it shrinks.
    var isFull: Bool { queuedMessages >= Self.maxQueuedMessages || queuedInputBytes >= Self.maxQueuedInputBytes }

    /// Drops every queued message unanswered (a stop past its deadline); returns how many. Each
    /// stream's next seq goes back to its first step not taken, so that the record the stop
    /// flushes does not count the dropped steps as served (a resend would be a duplicate).
    func cancelAll() -> Int {
        let dropped = queuedMessages
        for slot in active {
            let head = messages[Int(queueHead[slot])]
            if let seq = head.header.seq {
                table.record(slot).nextSeq = seq &+ UInt64(head.started ? head.nextStep : 0)
                table.markDirty(slot)
            }
            releaseQueue(slot)
        }
        active.removeAll()
        return dropped
    }

    private func fitTable() {
        if queueHead.count < table.capacity {
            let added = table.capacity - queueHead.count
            queueHead += repeatElement(-1, count: added)
            queueTail += repeatElement(-1, count: added)
        }
    }

    // MARK: Admission side

    /// Starts a cycle's decoding: the arena new messages go into.
    func beginCycle() {
        fitTable()
        // An arena a burst of long messages grew lets its memory go once it is free again.
        for i in arenas.indices where arenaUses[i] == 0 && arenas[i].capacityBytes > Self.keptArenaBytes { arenas[i] = InputArena() }
        if arenaUses[currentArena] == 0 {
            arenas[currentArena].removeAll()
            return
        }
        if let free = arenaUses.firstIndex(of: 0) {
            currentArena = free
        } else {
            arenas.append(InputArena())
            arenaUses.append(0)
            currentArena = arenas.count - 1
        }
        arenas[currentArena].removeAll()
    }

    /// The last queued message of `slot`, if any.
    func lastQueued(_ slot: Int) -> ScheduledMessage? {
        // The table may have grown since the cycle began (`set max-streams` from control).
        if slot >= queueTail.count { fitTable() }
        let t = queueTail[slot]
        return t >= 0 ? messages[Int(t)] : nil
    }

    /// Queues a checked message (decoded into the current arena) for `slot`.
    func enqueue(slot: Int, header: InputHeader, flags: OutputFlags, resetFirst: Bool, breakFirst: Bool, receivedAt: UInt64) {
        let m = ScheduledMessage(slot: slot, header: header, arena: currentArena, flags: flags, resetFirst: resetFirst, breakFirst: breakFirst,
                                 receivedAt: receivedAt)
        let index: Int32
        if let f = freeMessages.popLast() {
            index = f
            messages[Int(f)] = m
        } else {
            index = Int32(messages.count)
            messages.append(m)
        }
        arenaUses[currentArena] += 1
        queuedInputBytes += header.valueBytes
        table.pin(slot)
        if slot >= queueTail.count { fitTable() }
        if queueTail[slot] >= 0 {
            messages[Int(queueTail[slot])].next = index
        } else {
            queueHead[slot] = index
            active.append(slot)
        }
        queueTail[slot] = index
    }

    /// Drops `slot`'s queued messages unanswered (the stream is dropped by control).
    func cancel(_ slot: Int) {
        guard slot < queueHead.count else { return }   // a slot added since the cycle began has nothing queued
        releaseQueue(slot)
        active.removeAll { $0 == slot }
    }

    /// Frees every message queued for `slot` (unanswered) and empties its queue.
    private func releaseQueue(_ slot: Int) {
        var i = queueHead[slot]
        while i >= 0 {
            let next = messages[Int(i)].next
            release(Int(i))
            table.unpin(slot)
            i = next
        }
        queueHead[slot] = -1
        queueTail[slot] = -1
    }

    private func release(_ i: Int) {
        arenaUses[messages[i].arena] -= 1
        queuedInputBytes -= messages[i].header.valueBytes
        freeMessages.append(Int32(i))
    }

    // MARK: Rounds

    /// Runs up to `maxRounds` rounds; publishes what each message has done by the end.
    /// `pressure`: serving has a backlog (the background trainer then drops rather than coalesces).
    func run(pressure: Bool) {
        predictions.removeAll(keepingCapacity: true)
        losses.removeAll(keepingCapacity: true)
        anomalies.removeAll(keepingCapacity: true)
        var rounds = 0
        let capacity = runtime.engine.maxBatch
        let started = Clock.nanoseconds
        while !active.isEmpty && rounds < maxRounds && (rounds == 0 || Clock.nanoseconds &- started < cycleBudgetNanoseconds) {
            batch.removeAll(keepingCapacity: true)
            nextActive.removeAll(keepingCapacity: true)
            deferred.removeAll(keepingCapacity: true)
            for slot in active {
                // A full batch: the rest wait for the next round, first in line.
                if batch.count == capacity {
                    deferred.append(slot)
                    continue
                }
                // Messages with nothing (left) to step complete now; their successors move up.
                while queueHead[slot] >= 0 {
                    let i = Int(queueHead[slot])
                    start(i)
                    if !messages[i].finished {
                        batch.append(Int32(i))
                        break
                    }
                    complete(i)
                }
                if queueHead[slot] >= 0 { nextActive.append(slot) }
            }
            active.removeAll(keepingCapacity: true)
            active.append(contentsOf: deferred)
            active.append(contentsOf: nextActive)
            if batch.isEmpty { break }
            step(pressure: pressure)
            rounds += 1
        }
        // Streams whose last message finished in the last round leave the active list.
        active.removeAll { queueHead[$0] < 0 }
        // A message cut by the round limit publishes what it has: the next cycle goes on.
        for slot in active {
            let i = Int(queueHead[slot])
            if messages[i].nextStep > messages[i].chunkStart { publishChunk(i, final: false) }
        }
    }

    /// Applies what must happen before a message's first step.
    private func start(_ i: Int) {
        guard !messages[i].started else { return }
        messages[i].started = true
        let r = table.record(messages[i].slot)
        if messages[i].resetFirst { r.resetState() }
        if messages[i].breakFirst { r.breakSequence() }
        // A flush may have taken the stream's changes between admission and now: what starting
        // changes (a reset, a broken sequence, the flags handed on) is written again.
        table.markDirty(messages[i].slot)
        // A message that publishes nothing (NO_PREDICT, no steps) hands its new-state and gap
        // flags on to the stream's next output; one that publishes takes those handed to it.
        let publishes = messages[i].header.steps > 0 && !messages[i].header.flags.contains(.noPredict)
        if r.announcesNewState { messages[i].flags.insert(.newState) }
        if r.announcesGap { messages[i].flags.insert(.gap) }
        r.announcesNewState = !publishes && messages[i].flags.contains(.newState)
        r.announcesGap = !publishes && messages[i].flags.contains(.gap)
    }

    /// One batched step of the messages in `batch`.
    private func step(pressure: Bool) {
        let engine = runtime.engine
        let o = outputs
        // Before each step: standardise, resolve next-step targets (DESIGN §3.5: the target
        // first, then any due update, then the prediction).
        for (row, index) in batch.enumerated() {
            let i = Int(index)
            let m = messages[i]
            let t = m.nextStep
            let h = m.header
            let r = table.record(m.slot)
            if m.outputOffset < 0 { allocateChunk(i) }
            engine.loadState(row: row, from: r.state)
            let explicit = h.targetKind != .none
            let learnable = learningEnabled && !h.flags.contains(.noLearn)
            let outcome: StreamLearning.Outcome
            if tokenModel {
                let token = Int32(bitPattern: arenas[m.arena].tokens[h.tokenOffset + t])
                engine.setToken(row: row, token)
                outcome = learning.prepare(r, features: nil, token: token, modelInput: nil, explicitTarget: explicit, learnable: learnable)
            } else {
                outcome = arenas[m.arena].features.withUnsafeBufferPointer {
                    learning.prepare(r, features: $0.baseAddress! + h.featureOffset + t * h.xdim, token: 0, modelInput: engine.featureRow(row),
                                     explicitTarget: explicit, learnable: learnable)
                }
            }
            record(outcome, slot: m.slot, at: messages[i].lossOffset + (t - m.chunkStart))
        }
        learnDue(pressure: pressure)
        engine.step(weights: runtime.weights, batch: batch.count, packed: runtime.packedWeights(batch: batch.count))
        counters.batches += 1
        metrics.batchSize.record(batch.count)
        for (row, index) in batch.enumerated() {
            let i = Int(index)
            let m = messages[i]
            let t = m.nextStep
            let h = m.header
            let r = table.record(m.slot)
            let token: Int32 = tokenModel ? Int32(bitPattern: arenas[m.arena].tokens[h.tokenOffset + t]) : 0
            let input: UnsafePointer<Float>? = tokenModel ? nil : UnsafePointer(engine.featureRow(row))
            let outcome: StreamLearning.Outcome = switch h.targetKind {
            case .none:
                learning.finish(r, logits: engine.logits(row: row), stateBefore: r.state, modelInput: input, token: token, explicitTarget: false,
                                targetValues: nil, targetClass: 0)
            case .values:
                arenas[m.arena].targetValues.withUnsafeBufferPointer {
                    learning.finish(r, logits: engine.logits(row: row), stateBefore: r.state, modelInput: input, token: token, explicitTarget: true,
                                    targetValues: $0.baseAddress! + h.targetValueOffset + t * h.ydim, targetClass: 0)
                }
            case .classIndex:
                learning.finish(r, logits: engine.logits(row: row), stateBefore: r.state, modelInput: input, token: token, explicitTarget: true,
                                targetValues: nil, targetClass: Int32(bitPattern: arenas[m.arena].targetClasses[h.targetClassOffset + t]))
            }
            engine.storeState(row: row, to: r.state)
            let at = t - m.chunkStart
            record(outcome, slot: m.slot, at: m.lossOffset + at)
            predictions.withUnsafeMutableBufferPointer { p in
                if tokenModel {
                    learning.publishable(r, outputs: engine.output(row: row), into: p.baseAddress! + m.outputOffset + at * o)
                } else {
                    arenas[m.arena].features.withUnsafeBufferPointer {
                        learning.publishable(r, outputs: engine.output(row: row), features: $0.baseAddress! + h.featureOffset + t * h.xdim,
                                             into: p.baseAddress! + m.outputOffset + at * o)
                    }
                }
            }
            r.steps += 1
            table.markDirty(m.slot)
            messages[i].nextStep += 1
        }
        // Explicit targets resolved right after their step may have made windows due.
        learnDue(pressure: pressure)
        counters.steps += UInt64(batch.count)
        metrics.steps.increment(by: batch.count)
        for index in batch {
            let i = Int(index)
            if messages[i].finished {
                complete(i)
            } else if messages[i].nextStep - messages[i].chunkStart >= messages[i].chunkCapacity {
                publishChunk(i, final: false)
            }
        }
    }

    /// Room in this cycle's buffers for the message's next chunk.
    private func allocateChunk(_ i: Int) {
        let n = min(messages[i].header.steps - messages[i].nextStep, chunkSteps)
        messages[i].chunkCapacity = n
        messages[i].outputOffset = predictions.count
        predictions.append(contentsOf: repeatElement(0, count: n * outputs))
        messages[i].lossOffset = losses.count
        losses.append(contentsOf: repeatElement(.nan, count: n))
        if scoring { anomalies.append(contentsOf: repeatElement(.nan, count: n)) }
    }

    private func record(_ outcome: StreamLearning.Outcome, slot: Int, at index: Int) {
        if outcome.due { due.append(slot) }
        if let score = outcome.anomaly {
            anomalies[index] = score
            if score >= alertLevel {
                table.record(slot).anomalyAlerts += 1
                counters.anomalyAlerts += 1
                metrics.anomalyAlerts.increment()
            }
        }
        guard let loss = outcome.loss else { return }
        losses[index] = loss
        guard loss.isFinite else { return }
        let r = table.record(slot)
        r.lossSum += Double(loss)
        r.lossCount += 1
        counters.lossSum += Double(loss)
        counters.lossCount += 1
        metrics.lossSum.increment(by: Double(loss))
        metrics.lossCount.increment()
    }

    /// Runs (inline) or hands over (background) the updates of the windows now due.
    private func learnDue(pressure: Bool) {
        guard !due.isEmpty else { return }
        counters.windowsDue += UInt64(due.count)
        metrics.windowsDue.increment(by: due.count)
        dueWindows.removeAll(keepingCapacity: true)
        for slot in due { if let w = table.record(slot).windowIfInUse { dueWindows.append(w) } }
        if learningEnabled {
            let outcome = runtime.learn(dueWindows, slots: due, pressure: pressure)
            counters.updates += UInt64(outcome.updates)
            counters.windowsTrained += UInt64(outcome.trained)
            if outcome.trained > 0 { metrics.windowsTrained.increment(by: outcome.trained) }
            counters.skippedUpdates += UInt64(outcome.skipped)
            counters.windowsCoalesced += UInt64(outcome.coalesced)
            counters.windowsDropped += UInt64(outcome.dropped)
            if outcome.updates > 0 { metrics.updates.increment(by: outcome.updates) }
            if outcome.skipped > 0 { metrics.skippedUpdates.increment(by: outcome.skipped) }
            if outcome.coalesced > 0 { metrics.windowsCoalesced.increment(by: outcome.coalesced) }
            if outcome.dropped > 0 { metrics.windowsDropped.increment(by: outcome.dropped) }
        } else {
            // Turned off: entries resolved from steps taken while it was on are not acted upon.
            for w in dueWindows { w.pending = 0 }
        }
        due.removeAll(keepingCapacity: true)
    }

    /// Publishes the message's steps since its last chunk.
    private func publishChunk(_ i: Int, final: Bool) {
        let m = messages[i]
        let n = m.nextStep - m.chunkStart
        messages[i].chunkStart = m.nextStep
        messages[i].outputOffset = -1
        guard n > 0, !m.header.flags.contains(.noPredict) else { return }
        var flags: OutputFlags = m.chunkStart == 0 ? m.flags : []
        // A control `reset` between cycles, in the middle of this message: the state was new
        // before this chunk's first step (chunks end at cycle ends), so this chunk says so.
        if m.chunkStart > 0 {
            let r = table.record(m.slot)
            if r.announcesNewState {
                flags.insert(.newState)
                r.announcesNewState = false
            }
            if r.announcesGap {
                flags.insert(.gap)
                r.announcesGap = false
            }
        }
        if !final { flags.insert(.more) }
        let sent = table.withKey(m.slot) { key in
            predictions.withUnsafeBufferPointer { p in
                losses.withUnsafeBufferPointer { l in
                    anomalies.withUnsafeBufferPointer { a in
                        publisher.publish(key: key, flags: flags, steps: n, modelVersion: runtime.wireVersion, seq: (m.header.seq ?? 0) &+ UInt64(m.chunkStart),
                                          timestamp: m.header.timestamp, values: p.baseAddress! + m.outputOffset, losses: l.baseAddress! + m.lossOffset,
                                          anomaly: scoring ? a.baseAddress! + m.lossOffset : nil)
                    }
                }
            }
        }
        if sent {
            counters.outputMessages += 1
            counters.predictions += UInt64(n)
            metrics.outputMessages.increment()
            metrics.predictions.increment(by: n)
        } else {
            counters.outputDropped += 1
            metrics.outputDropped.increment()
            // The stream's next output says what this one would have.
            let r = table.record(m.slot)
            if flags.contains(.newState) { r.announcesNewState = true }
            if flags.contains(.gap) { r.announcesGap = true }
        }
    }

    /// A message is done: its last chunk goes out, END applies, the stream's next message moves up.
    private func complete(_ i: Int) {
        let m = messages[i]
        if m.header.steps > 0 { publishChunk(i, final: true) }
        let slot = m.slot
        queueHead[slot] = m.next
        if m.next < 0 { queueTail[slot] = -1 }
        release(i)
        table.unpin(slot)
        if m.header.steps == 0 && m.header.flags.contains(.reset) {
            table.record(slot).announcesNewState = true
            table.markDirty(slot)
        }
        metrics.latency.recordNanoseconds(Int64(Clock.nanoseconds &- m.receivedAt))
        if m.header.flags.contains(.end) && m.next < 0 { forget(slot, .end) }
    }
}
