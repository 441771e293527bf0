/// Why an input message was refused. `reason` is the counter label (`recurd_rejected_messages_total
/// {reason=…}`); `detail` says what was wrong and where (frame, byte offset, step).
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Every way a message can be wrong.
    public enum Reason: String, CaseIterable, Sendable {
        /// Not exactly two frames (key, payload).
        case frames
        /// Key empty, over 255 bytes, containing NUL or not UTF-8.
        case key
        /// Payload over the configured maximum size.
        case tooLarge = "too_large"
        /// Shorter than the 32-byte binary header.
        case short
        /// Neither 'R' (binary) nor '{' (JSON) first.
        case magic
        case version
        case inputKind = "input_kind"
        case targetKind = "target_kind"
        /// Output kind unknown (reading outputs only: clients and `recurd tail`).
        case outputKind = "output_kind"
        /// Unknown flag bits.
        case flags
        /// Reserved field not zero.
        case reserved
        /// xdim not valid for the input kind.
        case xdim
        /// ydim not valid for the target kind.
        case ydim
        /// Zero steps without RESET or END.
        case empty
        /// The body's length does not match the header.
        case length
        /// A NaN or infinite input or target.
        case nonFinite = "non_finite"
        /// Invalid JSON, or a JSON field of the wrong type or count.
        case json
        /// The model takes a different input kind (features vs tokens).
        case kind
        /// Features of a size the model does not take.
        case dimension
        /// A token id outside the model's vocabulary.
        case token
        /// Explicit targets the model's head cannot take (size or kind).
        case target
        /// No room for the message: messages parked for streams on their way back from the store
        /// are at their bound (input otherwise waits in ZeroMQ while every stream in memory is busy).
        case busy

        /// The reasons an input message can be refused for: the daemon's counter labels.
        public static let inputReasons = allCases.filter { $0 != .outputKind }
    }

    public let reason: Reason
    public let detail: String

    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}
