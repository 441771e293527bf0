/// Reads token ids written as text: whole numbers separated by commas, spaces, tabs or line
/// breaks (one per line, or a line of ids), for token models whose vocabulary is not the 256
/// bytes of text. Errors name the line and the id's place on it.
public enum TokenReader {
    /// `vocabulary`: ids must be below it (nil: any id up to 2³¹ − 1).
    public static func read(_ bytes: [UInt8], vocabulary: Int? = nil) throws(RecordedStreamError) -> RecordedStream {
        var ids: [Int32] = []
        var line = 1, onLine = 0
        // A UTF-8 byte-order mark, as in CSV.
        var i = bytes.withUnsafeBufferPointer(ByteOrderMark.length)
        var start = i
        func isSeparator(_ c: UInt8) -> Bool { c == UInt8(ascii: ",") || c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") || c == UInt8(ascii: "\n") }
        while i <= bytes.count {
            if i == bytes.count || isSeparator(bytes[i]) {
                if i > start {
                    onLine += 1
                    let field = bytes[start..<i]
                    var value = 0
                    var valid = field.count <= 10
                    for c in field where valid {
                        if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { value = value * 10 + Int(c - UInt8(ascii: "0")) } else { valid = false }
                    }
                    guard valid, value <= Int(Int32.max) else {
                        throw RecordedStreamError("line \(line), token \(onLine): '\(String(decoding: field, as: UTF8.self))' is not a token id (a whole number ≥ 0)")
                    }
                    if let vocabulary, value >= vocabulary {
                        throw RecordedStreamError("line \(line), token \(onLine): \(value) is outside the model's vocabulary of \(vocabulary)")
                    }
                    ids.append(Int32(value))
                }
                if i < bytes.count && bytes[i] == UInt8(ascii: "\n") { line += 1; onLine = 0 }
                start = i + 1
            }
            i += 1
        }
        return .tokens(ids)
    }
}
