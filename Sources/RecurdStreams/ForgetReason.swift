/// Why a stream leaves memory. One path forgets a stream (`StreamTable.forget`); the reason says
/// what becomes of its record.
public enum ForgetReason: String, Sendable, CaseIterable {
    /// The END flag: the stream is finished; its record is deleted from the store too.
    case end
    /// The `drop KEY` control command: deleted from the store too.
    case drop
    /// Least recently used while memory is full (`max-streams`, or `text-context-memory` for text
    /// streams): written to the store, to come back when the stream speaks again (forgotten when
    /// there is no store).
    case lru
    /// Silent longer than `idle-timeout`: written to the store (forgotten when there is none).
    case idle
    /// The oldest stored stream beyond `max-stored-streams`: deleted from the store.
    case storeLimit = "store_limit"

    /// Whether the record is kept in the store rather than deleted.
    public var keepsRecord: Bool { self == .lru || self == .idle }
}
