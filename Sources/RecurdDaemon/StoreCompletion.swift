import RecurdModelFile
import RecurdStore
import RecurdStreams

/// What the store's thread hands back to the serving thread.
enum StoreCompletion: Sendable {
    /// A stream's record, or nil when the store has none (a new stream) or it does not read
    /// (`unreadable`: the stream starts afresh, counted).
    case loaded(key: [UInt8], record: [UInt8]?, unreadable: Bool)
    case checkpointed(token: UInt64, Result<CheckpointInfo, CheckpointError>)
    /// A model file read for `reload`, with its `ModelSeed` fingerprint (made here, off the
    /// serving thread).
    /// With a background trainer, a file of the running architecture is already installed in it.
    case modelRead(token: UInt64, Result<(file: ModelFile, seed: String), CheckpointError>)
    /// Everything before the barrier is committed (`written`), or still waits for a retry.
    /// The keys in the store at start, as a filter (sent once, first).
    case keyFilter(KeyFilter)
    case barrier(token: UInt64, written: Bool)
}
