import Foundation
import Logging
import RecurdNumerics
import Synchronization

/// Online learning on threads of its own (DESIGN §3, daemon form).
///
/// The serving thread hands over snapshots of due windows (`submit`); the trainer takes up to
/// `train-batch` of them, oldest first and at most one per stream, runs one batched
/// forward/backward over all of them (loss = mean over windows), clips, steps the optimiser on
/// its own copy of the weights and publishes a new `WeightSnapshot`. The queue is bounded: when
/// it is full, a newer window of a stream already queued replaces the older one (coalesced),
/// otherwise it is dropped; both are counted. The serving thread never waits for training.
///
/// With the `background` priority two threads share the work, one at a time: one at SCHED_IDLE,
/// which takes only CPU time nothing else wants, and one at nice 19, which takes over once a
/// quarter of the queue waits (the trainer is falling behind) while serving has no backlog.
/// Linux does not let an unprivileged thread leave SCHED_IDLE, hence two threads. At SCHED_IDLE
/// alone the trainer got too little of a 2-core machine under load: the kernel places a waking
/// thread on a CPU that runs only SCHED_IDLE work as if it were idle, so serving's threads kept
/// preempting the trainer while the other core sat idle. At nice 19 alone, serving's p99 at
/// light load grew by a few hundred µs: a waking serving thread waits for the trainer's slice.
final class BackgroundTrainer: @unchecked Sendable {
    enum Submission { case queued, coalesced, dropped }

    private struct Queue {
        var queued: [Int] = []
        var free: [Int]
        var bySlot: [Int: Int] = [:]
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
    /// The trainer threads' wake-ups, by `Role`.
    private let wakes = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
    /// The `Role` whose thread trains now.
    private let active = Atomic<Int>(Role.idle.rawValue)
    private let stateLock = NSLock()
    private let trainBatch: Int
    /// Queued windows at which the nice-19 thread takes over (`background`).
    private let boostBacklog: Int
    private let learningRateBits: Atomic<UInt32>
    private let clipBits: Atomic<UInt32>
    private let logger: Logger
    private let skippedLog: RateLimitedLog
    private let metrics: DaemonMetrics
    /// Set by `start` and read by `stop`, both on the thread that owns the trainer.
    private var threads: [Thread] = []
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Which of the trainer's threads (see the type's comment).
    enum Role: Int { case idle = 0, boost = 1 }
    /// The thread that trains now.
    var activeRole: Role { Role(rawValue: active.load(ordering: .acquiring))! }
    /// Updates applied on the nice-19 thread (`background`).
    let boostedUpdates = Atomic<Int>(0)

    private(set) var version: UInt64
    let updates = Atomic<Int>(0)
    /// Windows that went into an applied update.
    let windowsTrained = Atomic<Int>(0)
    let skipped = Atomic<Int>(0)

    private let priority: ServeConfiguration.TrainerPriority
    /// When serving last handed over a window while it had a backlog (uptime ns; 0: never).
    private let backlogSeen = Atomic<UInt64>(0)
    /// The nice-19 thread gives the work back while serving had a backlog this recently: a
    /// backlog comes and goes between drains, and a few ms cover the gaps.
    static let servingBacklogNanoseconds: UInt64 = 5_000_000

    init(model: Model, configuration: LearningConfiguration, window: WindowLayout, trainBatch: Int, queueCapacity: Int,
         optimizerRestore: (Optimizer) -> Void, startVersion: UInt64, priority: ServeConfiguration.TrainerPriority = .background,
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
        boostBacklog = min(queueCapacity, max(4 * trainBatch, queueCapacity / 4))
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
        for role in priority == .background ? [Role.idle, .boost] : [.idle] {
            let t = Thread { [self] in run(role) }
            t.name = role == .idle ? "recurd-trainer" : "recurd-trainer2"
            threads.append(t)
            t.start()
        }
    }

    /// Stops after the update in progress and waits for the threads, then trains what is still
    /// queued on the calling thread for up to `drainSeconds` (the streams' records, flushed next,
    /// no longer hold these windows: untrained now, they are never trained). Returns how many
    /// windows were left untrained.
    @discardableResult
    func stop(drainSeconds: Double = 0) -> Int {
        if stopping.exchange(true, ordering: .acquiringAndReleasing) { return 0 }
        for w in wakes { w.signal() }
        for _ in threads { finished.wait() }
        let deadline = Clock.seconds + drainSeconds
        while queuedCount() > 0 && Clock.seconds < deadline { trainOnce(.idle) }
        return queuedCount()
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
        if pressure { backlogSeen.store(Clock.nanoseconds, ordering: .relaxed) }
        let (result, waiting): (Submission, Int) = queue.withLock { q in
            if let job = q.free.popLast() {
                jobs[job].copy(from: window)
                jobSlot[job] = slot
                q.bySlot[slot] = job
                q.queued.append(job)
                return (.queued, q.queued.count)
            }
            // Behind: the newest window of a stream still queued replaces it, else this one goes.
            if !pressure, let latest = q.bySlot[slot] {
                jobs[latest].copy(from: window)
                return (.coalesced, q.queued.count)
            }
            return (.dropped, q.queued.count)
        }
        if result == .queued {
            wakes[active.load(ordering: .acquiring)].signal()
            // The queue grows one window at a time, so it passes this mark exactly once on its way up.
            if priority == .background && waiting == boostBacklog { wakes[Role.boost.rawValue].signal() }
        }
        return result
    }

    private func run(_ role: Role) {
        setSchedulingPolicy(role)
        while true {
            _ = wakes[role.rawValue].wait(timeout: .now() + .milliseconds(100))
            if stopping.load(ordering: .acquiring) { break }
            if active.load(ordering: .acquiring) != role.rawValue {
                // The SCHED_IDLE thread can be starved by the very load that puts it behind, and
                // then never gets to hand the work over: the nice-19 thread takes it.
                guard role == .boost, queuedCount() >= boostBacklog, !servingHadBacklog(),
                      active.compareExchange(expected: Role.idle.rawValue, desired: Role.boost.rawValue, ordering: .acquiringAndReleasing).exchanged
                else { continue }
            }
            trainOnce(role)
            if priority == .background {
                // A quarter of the queue behind: the nice-19 thread, until the queue is nearly
                // empty or serving has a backlog. Below that the SCHED_IDLE thread may fall behind
                // for a while (it does for 100 ms and more even at light load) at no cost, and a
                // running nice-19 thread costs serving latency: waking, it waits for its slice.
                let waiting = queuedCount()
                let next = Self.nextRole(role, waiting: waiting, trainBatch: trainBatch, boostBacklog: boostBacklog,
                                         servingHadBacklog: servingHadBacklog())
                // Only while this thread still has the work: the other may have taken it meanwhile.
                if next != role { _ = active.compareExchange(expected: role.rawValue, desired: next.rawValue, ordering: .acquiringAndReleasing) }
            }
            // More work may already be waiting; loop (or hand over) without sleeping. Counted
            // after any hand-over, so a window queued meanwhile wakes the thread now active.
            if queuedCount() > 0 { wakes[active.load(ordering: .acquiring)].signal() }
        }
        finished.signal()
    }

    /// The thread to train next, after an update on `current`'s with `waiting` windows left.
    static func nextRole(_ current: Role, waiting: Int, trainBatch: Int, boostBacklog: Int, servingHadBacklog: Bool) -> Role {
        if servingHadBacklog || waiting < trainBatch { return .idle }
        return waiting >= boostBacklog ? .boost : current
    }

    private func queuedCount() -> Int { queue.withLock { $0.queued.count } }

    /// Whether serving handed over a window with a backlog within `servingBacklogNanoseconds`.
    private func servingHadBacklog() -> Bool {
        let seen = backlogSeen.load(ordering: .relaxed)
        let now = Clock.nanoseconds
        return seen != 0 && (seen >= now || now - seen < Self.servingBacklogNanoseconds)
    }

    /// Serving comes first (see `ServeConfiguration.TrainerPriority`); on Linux scheduling policy
    /// and nice value are per thread, and 0 names the calling thread.
    private func setSchedulingPolicy(_ role: Role) {
        #if os(Linux)
        func nice(_ n: Int32) { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, n) }
        switch (priority, role) {
        case (.idle, _), (.background, .idle):
            var parameters = sched_param(sched_priority: 0)
            let schedIdle: Int32 = 5   // SCHED_IDLE; Glibc's module does not export the constant
            if sched_setscheduler(0, schedIdle, &parameters) != 0 { nice(19) }
        case (.background, .boost):
            nice(19)
        case (.low, _):
            nice(10)
        case (.normal, _):
            break
        }
        #endif
    }

    /// Takes up to `train-batch` queued windows, oldest first and at most one per stream, and
    /// applies one update. Taking and training hold `stateLock` together, so that a stream's
    /// windows are applied in the order they came even when the work passes between threads.
    private func trainOnce(_ role: Role) {
        stateLock.lock()
        defer { stateLock.unlock() }
        var taken: [Int] = []
        taken.reserveCapacity(trainBatch)
        queue.withLock { q in
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
        }
        if taken.isEmpty { return }
        trainer.optimizer.learningRate = learningRate
        trainer.clip = clip
        let loss = trainer.update(windows: taken.map { jobs[$0] }, weights: master.pointer)
        if loss != nil {
            version += 1
            store.publish(WeightSnapshot(version: version, weights: Self.copy(master)))
            updates.add(1, ordering: .relaxed)
            if role == .boost { boostedUpdates.add(1, ordering: .relaxed) }
            // Windows whose own loss was not finite were left out (logged): not trained.
            let trained = taken.count - trainer.lastExcludedWindows
            windowsTrained.add(trained, ordering: .relaxed)
            metrics.updates.increment()
            metrics.windowsTrained.increment(by: trained)
            if trainer.lastExcludedWindows > 0 {
                skippedLog.warning("excluded", now: Clock.seconds, "windows with a non-finite loss or gradient left out of an update",
                                   metadata: ["windows": "\(trainer.lastExcludedWindows)"])
            }
            // recurd_model_version is the serving thread's to record (at each pin): two writers
            // could move the gauge backwards.
        } else {
            skipped.add(1, ordering: .relaxed)
            metrics.skippedUpdates.increment()
            skippedLog.warning("skipped", now: Clock.seconds, "skipped an update: non-finite loss or gradient", metadata: ["windows": "\(taken.count)"])
        }
        queue.withLock { q in q.free.append(contentsOf: taken) }
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
    /// are kept. Waits for the update in progress: called from the store's thread.
    func replaceWeights(_ weights: FloatBuffer) {
        stateLock.lock()
        defer { stateLock.unlock() }
        master.copy(from: weights)
        version += 1
        store.publish(WeightSnapshot(version: version, weights: Self.copy(master)))
    }
}
