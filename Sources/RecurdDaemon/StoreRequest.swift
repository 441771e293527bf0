import RecurdModelFile
import RecurdNumerics

/// Work the serving thread hands the store's thread.
enum StoreRequest: Sendable {
    /// Read a stream's record (a stream not in memory spoke).
    case load(key: [UInt8])
    /// Write records (changed streams at the interval, evicted ones at once).
    case write([StoreRow])
    /// Delete records (END, `drop`).
    case delete([[UInt8]])
    /// Write a model checkpoint; `token` comes back with the result.
    case checkpoint(CheckpointSource, token: UInt64)
    /// Read and check a model file for `reload`; `token` comes back with the result. With a
    /// background `trainer`, a file of `architecture` is installed into it here, on this thread:
    /// that waits for the update in progress, which the serving thread must never do.
    case readModel(path: String, token: UInt64, architecture: ModelArchitecture, trainer: BackgroundTrainer?)
    /// A flush begins: writes are held and committed together at its `barrier`.
    case beginFlush
    /// Answer once everything before it is committed (a flush's end).
    case barrier(token: UInt64)
    /// A new `max-stored-streams`.
    case limit(maxStored: Int)
}

/// One stream's record on its way to the store.
struct StoreRow: Sendable {
    let key: [UInt8]
    let group: Int
    let record: [UInt8]
}
