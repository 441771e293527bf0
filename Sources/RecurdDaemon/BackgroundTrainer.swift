import Foundation
import Logging
import RecurdNumerics
import Synchronization

/// Online learning on a thread of its own (DESIGN §3, daemon form).
///
/// The serving thread hands over snapshots of due windows (`submit`); the trainer takes up to
/// `train-batch` of them, oldest first and at most one per stream, runs one batched
/// forward/backward over all of them (loss = mean over windows), clips, steps the optimiser on
/// its own copy of the weights and publishes a new `WeightSnapshot`. The queue is bounded: when
/// it is full, a newer window of a stream already queued replaces the older one (coalesced),
/// otherwise it is dropped; both are counted. The serving thread never waits for training.
final class BackgroundTrainer: @unchecked Sendable {
    enum Submission { case queued, coalesced, dropped }

    private struct Queue {
        var queued: [Int] = []
        var free: [Int]
        var bySlot: [Int: Int] = [:]
        var stop = false
    }

    let layout: ParameterLayout
    let store: WeightStore
    private let trainer: Trainer
    /// The trainer's own weights; published copies go to `store`.
    private let master: FloatBuffer
    /// Copies of submitted windows, `queueCapacity` blocks of the window layout.
    private let jobMemory: UnsafeMutableRawPointer
    private let jobs: [TrainingWindow]
    private var jobSlot: [Int]
    private let queue: Mutex<Queue>
    private let wake = DispatchSemaphore(value: 0)
    private let stateLock = NSLock()
    private let trainBatch: Int
    private let learningRateBits: Atomic<UInt32>
    private let clipBits: Atomic<UInt32>
    private let logger: Logger
    private let skippedLog: RateLimitedLog
    private let metrics: DaemonMetrics
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    private(set) var version: UInt64
    let updates = Atomic<Int>(0)
    /// Windows that went into an applied update.
    let windowsTrained = Atomic<Int>(0)
    let skipped = Atomic<Int>(0)

    private let priority: ServeConfiguration.TrainerPriority

    init(model: Model, configuration: LearningConfiguration, window: WindowLayout, trainBatch: Int, queueCapacity: Int,
         optimizerRestore: (Optimizer) -> Void, startVersion: UInt64, priority: ServeConfiguration.TrainerPriority = .idle,
         logger: Logger, metrics: DaemonMetrics) {
        self.priority = priority
        layout = model.layout
        trainer = Trainer(layout: model.layout, configuration: configuration, maxWindows: trainBatch)
        optimizerRestore(trainer.optimizer)
        master = FloatBuffer(count: model.layout.count)
        master.copy(from: model.weights)
        version = startVersion
        store = WeightStore(WeightSnapshot(version: startVersion, weights: Self.copy(master)))
        let memory = UnsafeMutableRawPointer.allocate(byteCount: queueCapacity * window.byteCount, alignment: 16)
        jobMemory = memory
        jobs = (0..<queueCapacity).map { TrainingWindow(layout: window, base: memory + $0 * window.byteCount) }
        jobSlot = Array(repeating: -1, count: queueCapacity)
        queue = Mutex(Queue(free: Array((0..<queueCapacity).reversed())))
        self.trainBatch = trainBatch
        learningRateBits = Atomic(configuration.learningRate.bitPattern)
        clipBits = Atomic(configuration.clip.bitPattern)
        self.logger = logger
        skippedLog = RateLimitedLog(logger: logger)
        self.metrics = metrics
    }

    deinit { jobMemory.deallocate() }

    private static func copy(_ b: FloatBuffer) -> FloatBuffer {
        let c = FloatBuffer(count: b.count)
        c.copy(from: b)
        return c
    }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "recurd-trainer"
        thread = t
        t.start()
    }

    /// Stops after the update in progress and waits for the thread.
    func stop() {
        queue.withLock { $0.stop = true }
        wake.signal()
        if thread != nil { finished.wait() }
    }

    var learningRate: Float {
        get { Float(bitPattern: learningRateBits.load(ordering: .relaxed)) }
        set { learningRateBits.store(newValue.bitPattern, ordering: .relaxed) }
    }

    var clip: Float {
        get { Float(bitPattern: clipBits.load(ordering: .relaxed)) }
        set { clipBits.store(newValue.bitPattern, ordering: .relaxed) }
    }

    /// Hands over a copy of `window` for stream slot `slot` (serving thread). Under `pressure`
    /// (serving has a backlog) a full queue drops the window rather than spend a copy on
    /// coalescing it.
    func submit(slot: Int, window: TrainingWindow, pressure: Bool = false) -> Submission {
        let result: Submission = queue.withLock { q in
            if let job = q.free.popLast() {
                jobs[job].copy(from: window)
                jobSlot[job] = slot
                q.bySlot[slot] = job
                q.queued.append(job)
                return .queued
            }
            // Behind: the newest window of a stream still queued replaces it, else this one goes.
            if !pressure, let latest = q.bySlot[slot] {
                jobs[latest].copy(from: window)
                return .coalesced
            }
            return .dropped
        }
        if result == .queued { wake.signal() }
        return result
    }

    private func run() {
        // Serving comes first (see `ServeConfiguration.TrainerPriority`); on Linux scheduling
        // policy and nice value are per thread, and 0 names the calling thread.
        #if os(Linux)
        switch priority {
        case .idle:
            var parameters = sched_param(sched_priority: 0)
            let schedIdle: Int32 = 5   // SCHED_IDLE; Glibc's module does not export the constant
            if sched_setscheduler(0, schedIdle, &parameters) != 0 {
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            }
        case .low:
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        case .normal:
            break
        }
        #endif
        while true {
            // No standing aside while serving has a backlog: at SCHED_IDLE the scheduler already
            // gives serving the CPU whenever it wants it, and pausing the trainer besides only
            // left CPU idle (interleaved A/B on 2 cores at 100k msg/s: 78, 88, 61 % of due
            // windows trained without the pause, 65, 56, 42 % with it; the max rate with
            // learning on was the same within noise).
            _ = wake.wait(timeout: .now() + .milliseconds(100))
            var taken: [Int] = []
            taken.reserveCapacity(trainBatch)
            let stop: Bool = queue.withLock { q in
                // Oldest first, at most one window per stream: a stream's windows are successive
                // updates, as in `fit` (DESIGN §3), never averaged into one. The serving thread
                // waits for this lock to submit, so the scan is short: the oldest 4 batches' worth.
                let scan = min(q.queued.count, 4 * trainBatch)
                var kept = 0
                for read in 0..<scan {
                    let job = q.queued[read], slot = jobSlot[job]
                    if taken.count < trainBatch && !taken.contains(where: { jobSlot[$0] == slot }) {
                        taken.append(job)
                        if q.bySlot[slot] == job { q.bySlot[slot] = nil }
                    } else {
                        q.queued[kept] = job
                        kept += 1
                    }
                }
                q.queued.removeSubrange(kept..<scan)
                return q.stop
            }
            if stop { break }
            if taken.isEmpty { continue }
            stateLock.lock()
            trainer.optimizer.learningRate = learningRate
            trainer.clip = clip
            let loss = trainer.update(windows: taken.map { jobs[$0] }, weights: master.pointer)
            if loss != nil {
                version += 1
                store.publish(WeightSnapshot(version: version, weights: Self.copy(master)))
                updates.add(1, ordering: .relaxed)
                windowsTrained.add(taken.count, ordering: .relaxed)
                metrics.updates.increment()
                metrics.windowsTrained.increment(by: taken.count)
                metrics.modelVersion.record(Int64(version))
            } else {
                skipped.add(1, ordering: .relaxed)
                metrics.skippedUpdates.increment()
                skippedLog.warning("skipped", now: Clock.seconds, "skipped an update: non-finite loss or gradient", metadata: ["windows": "\(taken.count)"])
            }
            stateLock.unlock()
            queue.withLock { q in q.free.append(contentsOf: taken) }
            // More work may already be waiting; loop without sleeping.
            if queue.withLock({ !$0.queued.isEmpty }) { wake.signal() }
        }
        finished.signal()
    }

    /// A consistent copy of the weights and optimiser at the latest update (for checkpoints);
    /// waits for the update in progress, if any. Called from the store's thread, never from
    /// the serving thread, which must not wait for this (possibly SCHED_IDLE) thread.
    func checkpointState() -> (weights: FloatBuffer, optimizer: Optimizer, version: UInt64) {
        stateLock.lock()
        defer { stateLock.unlock() }
        let copy = Optimizer(kind: trainer.optimizer.kind, learningRate: trainer.optimizer.learningRate, parameterCount: layout.count)
        copy.restore(step: trainer.optimizer.step, first: trainer.optimizer.firstMoment.array, second: trainer.optimizer.secondMoment.array)
        return (Self.copy(master), copy, version)
    }

    /// Replaces the weights (the `reload` command) as a new version; the optimiser's moments
    /// are kept. Returns the new version.
    func replaceWeights(_ weights: FloatBuffer) -> UInt64 {
        stateLock.lock()
        defer { stateLock.unlock() }
        master.copy(from: weights)
        version += 1
        store.publish(WeightSnapshot(version: version, weights: Self.copy(master)))
        return version
    }
}
