import RecurdModelFile
import RecurdNumerics

/// Where the store thread gets the model to checkpoint from.
enum CheckpointSource: @unchecked Sendable {
    /// A finished copy (inline learning: made by the serving thread, which owns the weights).
    case file(ModelFile, version: UInt64)
    /// The background trainer, asked for a consistent copy on the store thread.
    case trainer(BackgroundTrainer, metadata: [String: String])

    /// The model file and its version (may wait for the trainer's update in progress).
    func resolve() -> (ModelFile, UInt64) {
        switch self {
        case .file(let f, let v):
            return (f, v)
        case .trainer(let b, let metadata):
            let (weights, optimizer, version) = b.checkpointState()
            let state = OptimizerCheckpoint.encode(optimizer, layout: b.layout)
            return (ModelFile(model: Model(layout: b.layout, weights: weights), metadata: metadata.merging(state.metadata) { $1 }, extras: state.extras), version)
        }
    }
}
