/// Why a byte string is not a valid safetensors container. Each case names the place.
public enum SafeTensorsError: Error, Equatable, CustomStringConvertible {
    /// Fewer bytes than the 8-byte length prefix, or than the header it announces.
    case truncatedHeader(available: Int, needed: UInt64)
    /// A header length beyond the file or the 100 MB limit.
    case absurdHeaderLength(UInt64, fileSize: Int)
    /// The header is not a JSON object.
    case headerNotJSON(String)
    /// `__metadata__` is not a string → string map.
    case badMetadata(String)
    /// A tensor entry lacks a field or has one of the wrong type.
    case badEntry(tensor: String, reason: String)
    /// A tensor's byte range falls outside the data section or does not match its shape.
    case badDataRange(tensor: String, reason: String)

    public var description: String {
        switch self {
        case .truncatedHeader(let available, let needed):
            "truncated: the header needs \(needed) bytes but the file has \(available)"
        case .absurdHeaderLength(let length, let fileSize):
            "header length \(length) at byte offset 0 is impossible for a file of \(fileSize) bytes"
        case .headerNotJSON(let reason):
            "the header (byte offset 8) is not a JSON object: \(reason)"
        case .badMetadata(let reason):
            "__metadata__: \(reason)"
        case .badEntry(let tensor, let reason):
            "tensor \(tensor): \(reason)"
        case .badDataRange(let tensor, let reason):
            "tensor \(tensor): \(reason)"
        }
    }
}
