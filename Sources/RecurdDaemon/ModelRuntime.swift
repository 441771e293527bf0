import Foundation
import Logging
import RecurdModelFile
import RecurdNumerics
import RecurdStreams

/// The model as the serving thread uses it: the architecture, the step engine, the weights this
/// cycle predicts with (pinned), the model version, and learning — inline (`--sync-learning`,
/// updating the model's weights in place between steps) or on the background trainer's thread
/// (publishing whole weight snapshots).
final class ModelRuntime {
    enum Learning {
        case inline(Trainer)
        case background(BackgroundTrainer)
    }

    let model: Model
    var architecture: ModelArchitecture { model.architecture }
    let engine: StepEngine
    let learning: Learning
    /// The model file this came from (for `reload` and `model`), if any.
    let modelPath: String?
    /// Updates applied to the weights this cycle uses.
    private(set) var version: UInt64
    /// The weights of the coming steps.
    private(set) var weights: UnsafePointer<Float>
    /// The snapshot `weights` points into, held so it stays alive while in use.
    private var pinned: WeightSnapshot?
    /// Version of the last model checkpoint written (or loaded), to skip unchanged models.
    var checkpointedVersion: UInt64?
    /// The checkpoint the daemon started from, if it did (for `model`).
    var startCheckpoint: String?
    /// `ModelSeed` of the model file the weights started from; written into checkpoints.
    var seed: String?
    /// The weights' packed copies for steps; current until `weights` change (an update, a
    /// reload, a newly pinned snapshot).
    private var packed: PackedStepWeights?
    /// Steps of each kind (one row, a batch) served by these weights since they changed.
    private var oneRowSteps = 0, batchSteps = 0
    private let metrics: DaemonMetrics

    init(model: Model, modelPath: String?, startVersion: UInt64, configuration c: ServeConfiguration, window: WindowLayout?,
         optimizerState: ModelFile?, logger: Logger, metrics: DaemonMetrics) {
        self.model = model
        self.modelPath = modelPath
        self.metrics = metrics
        engine = StepEngine(layout: model.layout, maxBatch: c.maxBatch)
        version = startVersion
        let restore: (Optimizer) -> Void = { optimizer in
            if let file = optimizerState, OptimizerCheckpoint.restore(optimizer, from: file) {
                logger.notice("optimizer state restored", metadata: ["step": "\(optimizer.step)"])
            }
        }
        if c.syncLearning || window == nil {
            let t = Trainer(layout: model.layout, configuration: c.learning, maxWindows: c.trainBatch)
            restore(t.optimizer)
            learning = .inline(t)
        } else {
            let b = BackgroundTrainer(model: model, configuration: c.learning, window: window!, trainBatch: c.trainBatch,
                                      queueCapacity: c.trainQueue, optimizerRestore: restore, startVersion: startVersion,
                                      priority: c.trainerPriority, logger: logger, metrics: metrics)
            b.start()
            learning = .background(b)
        }
        weights = UnsafePointer(model.weights.pointer)
        pin()
    }

    /// Pins the weights for the coming cycle: the latest published snapshot (background) or the
    /// model's own weights (inline).
    func pin() {
        switch learning {
        case .background(let b):
            let s = b.store.load()
            if s !== pinned { weightsChanged() }
            pinned = s
            weights = UnsafePointer(s.weights.pointer)
            version = s.version
        case .inline:
            weights = UnsafePointer(model.weights.pointer)
        }
        metrics.modelVersion.record(Int64(version))
    }

    /// The packed copies of `weights` for a coming step of `batch` rows, or nil to read them as
    /// they are.
    ///
    /// Each kind is packed on its own, once these weights have served `packAfterSteps` steps of
    /// that kind: the rent-or-buy rule (at most twice the better choice). Under learning and light
    /// load weights change every few steps, and a copy per change would cost more than it saves.
    /// For the 868 KB compare model the one-stream copy costs about two steps and saves about a
    /// tenth of each; the batch copy costs 85–120 µs and saves the copy of W each batched product
    /// otherwise makes, and with 2–4 streams half the product's time.
    func packedWeights(batch: Int) -> PackedStepWeights? {
        if let p = packed, p.serves(batch: batch) { return p }
        let oneRow = batch == 1
        guard PackedStepWeights.kernelsRead(batch: batch) else { return nil }
        if oneRow { oneRowSteps += 1 } else { batchSteps += 1 }
        guard (oneRow ? oneRowSteps : batchSteps) >= Self.packAfterSteps else { return nil }
        let p = packed ?? PackedStepWeights(layout: model.layout)
        p.pack(weights, tiles: oneRow, panels: !oneRow)
        packed = p
        return p
    }

    static let packAfterSteps = 16

    private func weightsChanged() {
        packed?.invalidate()
        oneRowSteps = 0
        batchSteps = 0
    }

    /// The version as the wire carries it (mod 2³²).
    var wireVersion: UInt32 { UInt32(truncatingIfNeeded: version) }

    var backgroundTrainer: BackgroundTrainer? {
        if case .background(let b) = learning { return b }
        return nil
    }

    /// Applies settings that may change while running.
    func apply(learningRate: Float, clip: Float) {
        switch learning {
        case .inline(let t):
            t.optimizer.learningRate = learningRate
            t.clip = clip
        case .background(let b):
            b.learningRate = learningRate
            b.clip = clip
        }
    }

    /// Counts of what became of due windows handed to `learn`.
    struct LearnOutcome {
        var updates = 0
        var skipped = 0
        var trained = 0
        var coalesced = 0
        var dropped = 0
    }

    /// Runs (inline) or hands over (background) the updates of `windows` (of streams `slots`).
    func learn(_ windows: [TrainingWindow], slots: [Int], pressure: Bool) -> LearnOutcome {
        var out = LearnOutcome()
        switch learning {
        case .inline(let t):
            if t.update(windows: windows, weights: model.weights.pointer) != nil {
                version += 1
                weightsChanged()
                out.updates = 1
                out.trained = windows.count - t.lastExcludedWindows   // a window with a non-finite loss is left out
                metrics.modelVersion.record(Int64(version))
            } else {
                out.skipped = 1
            }
        case .background(let b):
            for (w, slot) in zip(windows, slots) {
                switch b.submit(slot: slot, window: w, pressure: pressure) {
                case .queued: break
                case .coalesced: out.coalesced += 1
                case .dropped: out.dropped += 1
                }
                w.pending = 0
            }
        }
        return out
    }

    /// Replaces the weights with `weights` (the `reload` command) as a new version.
    /// Background: the store thread has already installed them into the trainer
    /// (`StoreRequest.readModel`), which serving must not wait for; only pinned here.
    func replaceWeights(_ weights: FloatBuffer) {
        switch learning {
        case .inline:
            model.weights.copy(from: weights)
            version += 1
            weightsChanged()
        case .background:
            pin()
        }
    }

    /// What the store thread needs to write a checkpoint: inline, a copy made now (the serving
    /// thread owns those weights); background, the trainer, which the store thread asks for a
    /// consistent copy itself so that serving never waits for it.
    func checkpointSource(metadata: [String: String]) -> CheckpointSource {
        switch learning {
        case .inline(let t):
            let copy = model.copy()
            let optimizer = OptimizerCheckpoint.encode(t.optimizer, layout: model.layout)
            let file = ModelFile(model: copy, metadata: metadata.merging(optimizer.metadata) { $1 }, extras: optimizer.extras)
            return .file(file, version: version)
        case .background(let b):
            return .trainer(b, metadata: metadata)
        }
    }

    /// Stops the background trainer (after its update in progress).
    /// Stops the background trainer, training what it still holds for up to `drainSeconds`;
    /// returns the windows left untrained. The pinned version is then the trainer's last.
    @discardableResult
    func stop(drainSeconds: Double = 0) -> Int {
        let left = backgroundTrainer?.stop(drainSeconds: drainSeconds) ?? 0
        pin()
        return left
    }
}
