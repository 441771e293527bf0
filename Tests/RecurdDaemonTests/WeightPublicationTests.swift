import Foundation
import Logging
@testable import RecurdDaemon
import RecurdNumerics
import RecurdTestSupport
import Synchronization
import Testing

/// The background trainer publishes whole weight snapshots; a reader's pinned snapshot never
/// changes under it, and versions only go forward — under continuous load.
@Suite struct WeightPublicationTests {
    /// A full window of random entries (explicit targets), in memory the test keeps alive.
    func window(_ arch: ModelArchitecture, _ rng: inout SeededGenerator, capacity: Int, stride: Int) -> OwnedWindow {
        let w = OwnedWindow(WindowLayout(architecture: arch, k1: stride, k2: capacity, impliedTargets: false))
        for _ in 0..<capacity {
            w.append(x: randomFloats(2, rng: &rng), y: randomFloats(2, rng: &rng), state: randomFloats(arch.stateSize, amplitude: 0.5, rng: &rng))
        }
        return w
    }

    func layout(_ arch: ModelArchitecture, _ c: LearningConfiguration) -> WindowLayout {
        WindowLayout(architecture: arch, k1: c.k1, k2: c.k2, impliedTargets: false)
    }

    /// The small LSTM, model and Adam settings the trainer tests share.
    func smallLSTM() -> (ModelArchitecture, Model, LearningConfiguration) {
        let arch = ModelArchitecture(cell: .lstm, input: .features(size: 2), hidden: [8], outputSize: 2, head: .linear)
        return (arch, Model(architecture: arch, seed: 5), LearningConfiguration(k1: 2, k2: 4, optimizer: .adam, learningRate: 0.01, clip: 1))
    }

    func makeTrainer(_ model: Model, _ c: LearningConfiguration, batch: Int, queue: Int,
                 priority: ServeConfiguration.TrainerPriority = .background) -> BackgroundTrainer {
        BackgroundTrainer(model: model, configuration: c, window: layout(model.architecture, c), trainBatch: batch, queueCapacity: queue,
                          optimizerRestore: { _ in }, startVersion: 0, priority: priority, logger: Logger(label: "test"), metrics: DaemonMetrics())
    }

    /// How far `trainer`'s weights are from `model`'s after one thread's successive updates of
    /// `batches`, in order.
    func distance(_ trainer: BackgroundTrainer, fromUpdatesOf model: Model, _ c: LearningConfiguration, batches: [[OwnedWindow]]) -> Float {
        let reference = Trainer(layout: model.layout, configuration: c, maxWindows: batches.map(\.count).max() ?? 1)
        let weights = FloatBuffer(count: model.layout.count)
        weights.copy(from: model.weights)
        for batch in batches { _ = reference.update(windows: batch.map(\.window), weights: weights.pointer) }
        return zip(trainer.store.load().weights.array, weights.array).map { abs($0 - $1) }.max() ?? .infinity
    }

    @Test func publishedWeightsNeverTear() throws {
        let arch = ModelArchitecture(cell: .lstm, input: .features(size: 2), hidden: [32], outputSize: 2, head: .linear)
        let model = Model(architecture: arch, seed: 3)
        let config = LearningConfiguration(k1: 4, k2: 8, optimizer: .adam, learningRate: 0.01, clip: 1)
        let trainer = makeTrainer(model, config, batch: 4, queue: 16)
        trainer.start()
        let stop = Atomic<Bool>(false)
        let problems = Mutex<[String]>([])
        let versionsSeen = Mutex<Set<UInt64>>([])
        let reader = Thread {
            var last: UInt64 = 0
            while !stop.load(ordering: .relaxed) {
                let s = trainer.store.load()
                if s.version < last { problems.withLock { $0.append("version went back from \(last) to \(s.version)") } }
                last = s.version
                versionsSeen.withLock { _ = $0.insert(s.version) }
                let before = s.weights.array
                // Compute with it, as a serving cycle would, while the trainer keeps publishing.
                let engine = StepEngine(layout: model.layout, maxBatch: 1)
                let x: [Float] = [0.3, -0.7]
                var outputs: [[Float]] = []
                for _ in 0..<2 {
                    engine.zeroState(row: 0)
                    x.withUnsafeBufferPointer { engine.setFeatures(row: 0, $0.baseAddress!) }
                    engine.step(weights: s.weights.pointer, batch: 1)
                    outputs.append(Array(UnsafeBufferPointer(start: engine.output(row: 0), count: 2)))
                    usleep(200)
                }
                if s.weights.array != before { problems.withLock { $0.append("snapshot \(s.version) changed while pinned") } }
                if outputs[0] != outputs[1] { problems.withLock { $0.append("two predictions from snapshot \(s.version) differ") } }
            }
        }
        reader.start()
        var rng = SeededGenerator(seed: 11)
        // The trainer runs at SCHED_IDLE until it is far behind, so on a busy machine (a parallel
        // test run) it gets time only now and then: keep feeding it until it has published
        // enough, within a bound.
        let deadline = Date().addingTimeInterval(60)
        var submitted = 0
        while Date() < deadline && (trainer.updates.load(ordering: .relaxed) < 20 || versionsSeen.withLock({ $0.count }) < 5) {
            let w = window(arch, &rng, capacity: 8, stride: 4)
            _ = trainer.submit(slot: submitted % 8, window: w.window)
            submitted += 1
            if submitted % 64 == 0 { usleep(1_000) }
        }
        stop.store(true, ordering: .relaxed)
        while !reader.isFinished { usleep(1000) }
        trainer.stop()
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 })")
        #expect(trainer.updates.load(ordering: .relaxed) >= 20, "the trainer hardly ran")
        #expect(versionsSeen.withLock { $0.count } >= 5, "the reader saw too few versions to mean anything")
        #expect(trainer.store.load().version == UInt64(trainer.updates.load(ordering: .relaxed)))
    }

    /// Two windows of one stream are two successive updates (as `fit` applies them), never one
    /// averaged step; windows of different streams share an update.
    @Test func aStreamsWindowsAreSuccessiveUpdates() throws {
        let (arch, model, config) = smallLSTM()
        let trainer = makeTrainer(model, config, batch: 4, queue: 8, priority: .normal)
        var rng = SeededGenerator(seed: 9)
        let first = window(arch, &rng, capacity: 4, stride: 2), second = window(arch, &rng, capacity: 4, stride: 2)
        let other = window(arch, &rng, capacity: 4, stride: 2)
        // Queued before the trainer starts, so that it finds all three at once.
        #expect(trainer.submit(slot: 0, window: first.window) == .queued)
        #expect(trainer.submit(slot: 0, window: second.window) == .queued)
        #expect(trainer.submit(slot: 1, window: other.window) == .queued)
        trainer.start()
        let deadline = Date().addingTimeInterval(30)
        while trainer.windowsTrained.load(ordering: .relaxed) < 3 && Date() < deadline { usleep(1_000) }
        trainer.stop()
        #expect(trainer.windowsTrained.load(ordering: .relaxed) == 3)
        #expect(trainer.updates.load(ordering: .relaxed) == 2)

        let worst = distance(trainer, fromUpdatesOf: model, config, batches: [[first, other], [second]])
        #expect(worst == 0, "weights differ from two successive updates by up to \(worst)")
    }

    /// `background`: a quarter of the queue behind, the nice-19 thread takes over, and gives the
    /// work back once the queue is empty; the updates are the same, in the same order, as one
    /// thread's.
    @Test func backgroundHandsTheWorkToItsSecondThreadWhenBehind() throws {
        let (arch, model, config) = smallLSTM()
        // Queue 32, batches of 4: the second thread takes over at 16 waiting.
        let trainer = makeTrainer(model, config, batch: 4, queue: 32)
        var rng = SeededGenerator(seed: 21)
        let windows = (0..<32).map { _ in window(arch, &rng, capacity: 4, stride: 2) }
        // One window per stream, all queued before the threads start: eight batches, oldest first.
        for (slot, w) in windows.enumerated() { #expect(trainer.submit(slot: slot, window: w.window) == .queued) }
        trainer.start()
        // The thread that trains decides who trains next after counting its update: wait for both.
        // (The second thread takes the work itself, so a SCHED_IDLE thread starved by a parallel
        // test run does not hold this up.)
        let deadline = Date().addingTimeInterval(30)
        while (trainer.windowsTrained.load(ordering: .relaxed) < 32 || trainer.activeRole != .idle) && Date() < deadline { usleep(1_000) }
        trainer.stop()
        #expect(trainer.windowsTrained.load(ordering: .relaxed) == 32)
        #expect(trainer.boostedUpdates.load(ordering: .relaxed) >= 1, "the second thread never took over with 16 or more of 32 windows waiting")
        #expect(trainer.activeRole == .idle, "the work stayed with the second thread after the queue emptied")

        let worst = distance(trainer, fromUpdatesOf: model, config, batches: stride(from: 0, to: 32, by: 4).map { Array(windows[$0..<$0 + 4]) })
        #expect(worst == 0, "weights differ from one thread's successive updates by up to \(worst)")
    }

    /// At a stop the windows still queued are trained (the streams' records, flushed next, no
    /// longer hold them), in order, on the stopping thread: none is lost unseen.
    @Test func stopTrainsWhatIsStillQueued() throws {
        let (arch, model, config) = smallLSTM()
        let trainer = makeTrainer(model, config, batch: 4, queue: 16, priority: .idle)
        var rng = SeededGenerator(seed: 33)
        let windows = (0..<12).map { _ in window(arch, &rng, capacity: 4, stride: 2) }
        for (slot, w) in windows.enumerated() { #expect(trainer.submit(slot: slot, window: w.window) == .queued) }
        // Never started: only the stop's drain trains them.
        #expect(trainer.stop(drainSeconds: 30) == 0)
        #expect(trainer.windowsTrained.load(ordering: .relaxed) == 12 && trainer.updates.load(ordering: .relaxed) == 3)
        let worst = distance(trainer, fromUpdatesOf: model, config, batches: stride(from: 0, to: 12, by: 4).map { Array(windows[$0..<$0 + 4]) })
        #expect(worst == 0, "weights differ from one thread's successive updates by up to \(worst)")
        let idle = makeTrainer(model, config, batch: 4, queue: 16, priority: .idle)
        for (slot, w) in windows.prefix(5).enumerated() { _ = idle.submit(slot: slot, window: w.window) }
        #expect(idle.stop() == 5, "a stop without time to drain reports what it left")
    }

    @Test func theSecondThreadTakesOverOnlyWhenFarBehindAndServingKeepsUp() {
        typealias T = BackgroundTrainer
        #expect(T.nextRole(.idle, waiting: 15, trainBatch: 4, boostBacklog: 16, servingHadBacklog: false) == .idle)
        #expect(T.nextRole(.idle, waiting: 16, trainBatch: 4, boostBacklog: 16, servingHadBacklog: false) == .boost)
        #expect(T.nextRole(.idle, waiting: 16, trainBatch: 4, boostBacklog: 16, servingHadBacklog: true) == .idle)
        // Between the marks the thread that has the work keeps it.
        #expect(T.nextRole(.boost, waiting: 4, trainBatch: 4, boostBacklog: 16, servingHadBacklog: false) == .boost)
        #expect(T.nextRole(.boost, waiting: 3, trainBatch: 4, boostBacklog: 16, servingHadBacklog: false) == .idle)
        #expect(T.nextRole(.boost, waiting: 30, trainBatch: 4, boostBacklog: 16, servingHadBacklog: true) == .idle)
    }

    @Test func fullQueueCoalescesPerStreamThenDrops() throws {
        let arch = ModelArchitecture(cell: .gru, input: .features(size: 2), hidden: [4], outputSize: 2, head: .linear)
        let model = Model(architecture: arch, seed: 3)
        let config = LearningConfiguration(k1: 2, k2: 2, optimizer: .sgd, learningRate: 0.01, clip: 0)
        // Not started: nothing drains the queue of two.
        let trainer = makeTrainer(model, config, batch: 2, queue: 2)
        var rng = SeededGenerator(seed: 1)
        let owned = window(arch, &rng, capacity: 2, stride: 2)
        let w = owned.window
        #expect(trainer.submit(slot: 0, window: w) == .queued)
        #expect(trainer.submit(slot: 1, window: w) == .queued)
        #expect(trainer.submit(slot: 0, window: w) == .coalesced)
        #expect(trainer.submit(slot: 2, window: w) == .dropped)
    }
}
