import CZlib

/// How a stream record is kept on disk: its bytes regrouped four by four (every float's first
/// bytes together, then the second, …; the exponents and signs of neighbouring floats are alike)
/// and deflated. Records are mostly float32 state, inputs and saved states, which plain deflate
/// hardly shrinks; regrouped, they shrink by about a quarter. No I/O.
public enum RecordCompression {
    /// Encodings of a stored record.
    public enum Encoding: Int64, Sendable {
        case raw = 0
        case shuffledDeflate = 1
    }

    /// The stored form of `record`: shuffled and deflated, or raw when that is no smaller.
    public static func compress(_ record: [UInt8]) -> (Encoding, [UInt8]) {
        let n = record.count
        var shuffled = [UInt8](repeating: 0, count: n)
        let lanes = n / 4
        record.withUnsafeBytes { src in
            shuffled.withUnsafeMutableBytes { dst in
                for lane in 0..<4 {
                    for i in 0..<lanes { dst[lane * lanes + i] = src[i * 4 + lane] }
                }
                for i in (lanes * 4)..<n { dst[i] = src[i] }
            }
        }
        var out = [UInt8](repeating: 0, count: Int(compressBound(uLong(n))) + 4)
        var length = uLong(out.count - 4)
        let rc = out.withUnsafeMutableBytes { o in
            shuffled.withUnsafeBytes { s in
                compress2(o.baseAddress!.assumingMemoryBound(to: Bytef.self) + 4, &length, s.baseAddress!.assumingMemoryBound(to: Bytef.self), uLong(n), 1)
            }
        }
        guard rc == Z_OK, Int(length) + 4 < n, n <= Int(UInt32.max) else { return (.raw, record) }
        withUnsafeBytes(of: UInt32(n).littleEndian) { for i in 0..<4 { out[i] = $0[i] } }
        out.removeLast(out.count - Int(length) - 4)
        return (.shuffledDeflate, out)
    }

    /// The record back from its stored form; nil when the bytes are damaged.
    public static func decompress(_ stored: UnsafeRawBufferPointer, encoding: Encoding) -> [UInt8]? {
        switch encoding {
        case .raw:
            return Array(stored)
        case .shuffledDeflate:
            guard stored.count >= 4 else { return nil }
            let n = Int(UInt32(littleEndian: stored.loadUnaligned(as: UInt32.self)))
            // Deflate expands at most about 1032:1, so a length beyond that of these bytes is damage
            // (refused before allocating it), while a large record (a text stream's context model
            // of up to 1 GiB) still reads back.
            guard n <= 1032 * (stored.count - 4) + 64 else { return nil }
            var shuffled = [UInt8](repeating: 0, count: n)
            var length = uLong(n)
            let rc = shuffled.withUnsafeMutableBytes { d in
                uncompress(d.baseAddress!.assumingMemoryBound(to: Bytef.self), &length,
                           (stored.baseAddress! + 4).assumingMemoryBound(to: Bytef.self), uLong(stored.count - 4))
            }
            guard rc == Z_OK, Int(length) == n else { return nil }
            var record = [UInt8](repeating: 0, count: n)
            let lanes = n / 4
            shuffled.withUnsafeBytes { src in
                record.withUnsafeMutableBytes { dst in
                    for lane in 0..<4 {
                        for i in 0..<lanes { dst[i * 4 + lane] = src[lane * lanes + i] }
                    }
                    for i in (lanes * 4)..<n { dst[i] = src[i] }
                }
            }
            return record
        }
    }
}
