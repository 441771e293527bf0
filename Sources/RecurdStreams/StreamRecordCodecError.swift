/// A stream record that cannot be decoded, with the byte offset of the problem.
public struct StreamRecordCodecError: Error, CustomStringConvertible, Equatable {
    public let offset: Int
    public let reason: String
    init(offset: Int, _ reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { "byte \(offset): \(reason)" }
}
