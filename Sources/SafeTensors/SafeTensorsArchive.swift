import Foundation

/// A parsed safetensors container: header, metadata and the raw bytes of each tensor.
///
/// Format: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}`), then the
/// data section; offsets are relative to its start. This type only converts bytes; reading and
/// writing files is the caller's business.
public struct SafeTensorsArchive: Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        /// Byte range within the data section.
        public let begin: Int
        public let end: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// Header lengths above this are refused before any allocation (the reference reader's limit).
    public static let maximumHeaderLength: UInt64 = 100_000_000

    public let metadata: [String: String]
    /// Entries in data-offset order.
    public let entries: [Entry]
    /// Absolute offset of the data section in `bytes`.
    public let dataStart: Int
    public let bytes: [UInt8]

    /// Parses and checks the container structure (not the tensors' meaning).
    public init(bytes: [UInt8]) throws(SafeTensorsError) {
        guard bytes.count >= 8 else { throw .truncatedHeader(available: bytes.count, needed: 8) }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        if length > Self.maximumHeaderLength { throw .absurdHeaderLength(length, fileSize: bytes.count) }
        guard UInt64(bytes.count) >= 8 + length else { throw .truncatedHeader(available: bytes.count, needed: 8 + length) }
        let headerBytes = Data(bytes[8..<(8 + Int(length))])
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw .headerNotJSON("invalid JSON")
        }
        guard let object = json as? [String: Any] else { throw .headerNotJSON("not an object") }
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw .badMetadata("not an object") }
                for (k, v) in map {
                    guard let s = v as? String else { throw .badMetadata("value of \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let fields = value as? [String: Any] else { throw .badEntry(tensor: name, reason: "entry is not an object") }
            guard let dtype = fields["dtype"] as? String else { throw .badEntry(tensor: name, reason: "missing dtype") }
            guard let shapeValues = fields["shape"] as? [Any] else { throw .badEntry(tensor: name, reason: "missing shape") }
            var shape: [Int] = []
            for s in shapeValues {
                guard let d = Self.integer(s), d >= 0, d <= Int(UInt32.max) else {
                    throw .badEntry(tensor: name, reason: "shape \(shapeValues) is not a list of non-negative integers")
                }
                shape.append(d)
            }
            guard let offsets = fields["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = Self.integer(offsets[0]), let end = Self.integer(offsets[1]) else {
                throw .badEntry(tensor: name, reason: "data_offsets must be two integers")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        let dataStart = 8 + Int(length)
        let dataLength = bytes.count - dataStart
        // By offsets then name, as the format's own library orders them (an empty tensor at the
        // offset of a non-empty one comes first and overlaps nothing).
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var previousEnd = 0
        for e in entries {
            guard e.begin >= 0, e.end >= e.begin else {
                throw .badDataRange(tensor: e.name, reason: "data_offsets [\(e.begin), \(e.end)] are not an increasing range")
            }
            guard e.end <= dataLength else {
                throw .badDataRange(tensor: e.name, reason: "data ends at byte offset \(dataStart + e.end) but the file has \(bytes.count) bytes (truncated)")
            }
            if let size = Self.elementSize(e.dtype) {
                // In bytes, every product checked: a crafted shape must be refused, not trap.
                let (bytes, overflow) = e.shape.reduce((size, false)) { acc, d in
                    let r = acc.0.multipliedReportingOverflow(by: d)
                    return (r.partialValue, acc.1 || r.overflow)
                }
                guard !overflow, bytes == e.end - e.begin else {
                    throw .badDataRange(tensor: e.name, reason: "shape \(e.shape) of \(e.dtype) needs \(overflow ? "more than 2^63" : "\(bytes)") bytes but data_offsets give \(e.end - e.begin)")
                }
            }
            guard e.begin >= previousEnd else {
                throw .badDataRange(tensor: e.name, reason: "data overlaps the previous tensor at byte offset \(dataStart + e.begin)")
            }
            // The format's own library refuses holes and trailing bytes too: a file with either was
            // not written by a safetensors writer, and its tensors may not be what they claim.
            guard e.begin == previousEnd else {
                throw .badDataRange(tensor: e.name, reason: "\(e.begin - previousEnd) bytes no tensor owns lie before its data, at byte offset \(dataStart + previousEnd)")
            }
            previousEnd = e.end
        }
        if previousEnd != dataLength, let last = entries.last {
            throw .badDataRange(tensor: last.name, reason: "\(dataLength - previousEnd) bytes no tensor owns follow its data, at byte offset \(dataStart + previousEnd)")
        }
        self.metadata = metadata
        self.entries = entries
        self.dataStart = dataStart
        self.bytes = bytes
    }

    /// Bytes per element of the dtypes the format defines, or nil for an unknown dtype.
    public static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F64", "I64", "U64": 8
        case "F32", "I32", "U32": 4
        case "F16", "BF16", "I16", "U16": 2
        case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": 1
        default: nil
        }
    }

    private static func integer(_ value: Any) -> Int? {
        if let n = value as? NSNumber {
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) < 9e15 else { return nil }
            return Int(d)
        }
        return nil
    }

    /// The entry named `name`.
    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// An F32 tensor's values (little-endian on disk).
    public func floats(_ entry: Entry) -> [Float] {
        let n = entry.elementCount
        var out = [Float](repeating: 0, count: n)
        let start = dataStart + entry.begin
        out.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start..<(start + n * 4)]))
            }
        }
        #if _endian(big)
        for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
        #endif
        return out
    }

    /// Serialises F32 tensors and metadata. Tensors are written in the given order; the header
    /// is padded with spaces to a multiple of 8 bytes, as the reference writer does.
    public static func serialize(tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String]) -> [UInt8] {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(fields.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "tensor \(t.name): shape and value count differ")
            let end = offset + t.values.count * 4
            parts.append("\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + offset)
        let n = UInt64(headerBytes.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        out.append(contentsOf: headerBytes)
        for t in tensors {
            for v in t.values {
                let bits = v.bitPattern.littleEndian
                out.append(UInt8(truncatingIfNeeded: bits))
                out.append(UInt8(truncatingIfNeeded: bits >> 8))
                out.append(UInt8(truncatingIfNeeded: bits >> 16))
                out.append(UInt8(truncatingIfNeeded: bits >> 24))
            }
        }
        return out
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
