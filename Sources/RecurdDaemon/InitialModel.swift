import RecurdModelFile

/// The model the daemon starts with, as start-up chose it: the newest valid checkpoint, or the
/// `--model` file (which seeds an empty state directory).
struct InitialModel: Sendable {
    let file: ModelFile
    /// The `--model` path (for `reload` and `model`).
    let path: String?
    /// Model version to carry on from.
    let version: UInt64
    /// Came from a checkpoint (its version is already on disk).
    let fromCheckpoint: Bool
    /// The checkpoint file it came from (for `model`).
    var checkpointPath: String? = nil
    /// Fingerprint of the model file the state started from (`ModelSeed`), carried by checkpoints.
    var seed: String? = nil
}
