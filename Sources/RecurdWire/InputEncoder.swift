/// Encodes binary input payloads (for `recurd publish`, the load generator and tests).
public enum InputEncoder {
    public static func encode(_ m: InputMessage) -> [UInt8] {
        var out: [UInt8] = []
        encode(m, into: &out)
        return out
    }

    /// Appends the binary form of `m` to `out`.
    public static func encode(_ m: InputMessage, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + 32 + m.features.count * 4 + m.tokens.count * 4 + m.targetValues.count * 4 + m.targetClasses.count * 4)
        out.append(InputDecoder.magic)
        out.append(InputDecoder.version)
        out.append(m.inputKind.rawValue)
        out.append(m.targetKind.rawValue)
        out.appendLE(m.flags.rawValue)
        out.appendLE(UInt16(truncatingIfNeeded: m.xdim))
        out.appendLE(UInt16(truncatingIfNeeded: m.ydim))
        out.appendLE(UInt16(0))
        out.appendLE(UInt32(truncatingIfNeeded: m.steps))
        out.appendLE(m.seq ?? 0)
        out.appendLE(m.timestamp)
        switch m.inputKind {
        case .features: for v in m.features { out.appendLE(v) }
        case .token: for t in m.tokens { out.appendLE(t) }
        case .text: for t in m.tokens { out.append(UInt8(truncatingIfNeeded: t)) }
        }
        switch m.targetKind {
        case .none: break
        case .values: for v in m.targetValues { out.appendLE(v) }
        case .classIndex: for c in m.targetClasses { out.appendLE(c) }
        }
    }

    /// Rewrites the seq and timestamp of an encoded binary input in place, so a sender can reuse
    /// one encoded message (`recurd bench load`).
    public static func patch(_ payload: inout [UInt8], seq: UInt64, timestamp: Int64) {
        precondition(payload.count >= InputDecoder.headerSize && payload[0] == InputDecoder.magic, "not a binary input payload")
        payload.withUnsafeMutableBytes { p in
            p.storeBytes(of: seq.littleEndian, toByteOffset: 16, as: UInt64.self)
            p.storeBytes(of: timestamp.littleEndian, toByteOffset: 24, as: Int64.self)
        }
    }
}
