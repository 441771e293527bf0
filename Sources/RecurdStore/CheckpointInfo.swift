/// A model checkpoint written or found on disk.
public struct CheckpointInfo: Sendable, Equatable {
    public let path: String
    /// Updates applied to the model (DESIGN §4's model version, unwrapped).
    public let version: UInt64
    public let bytes: Int
}
