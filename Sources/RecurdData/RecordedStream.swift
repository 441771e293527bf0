/// A recorded stream read from a file: feature rows, or token ids (one per text byte).
public enum RecordedStream: Sendable, Equatable {
    /// `rows × width` floats, row-major.
    case features(values: [Float], width: Int, columns: [String])
    /// One token id per step.
    case tokens([Int32])

    /// Number of steps.
    public var count: Int {
        switch self {
        case .features(let values, let width, _): width == 0 ? 0 : values.count / width
        case .tokens(let ids): ids.count
        }
    }
}

/// Why a recorded stream could not be read; `description` says where (line, column, byte offset).
public struct RecordedStreamError: Error, CustomStringConvertible, Equatable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
