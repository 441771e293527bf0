import Foundation

/// Decodes input payloads (wire protocol v1, DESIGN §4): the 32-byte binary form, or JSON when
/// the first byte is `{`. Structure only — whether the model can take the message is the
/// daemon's check. Never traps on any input.
public enum InputDecoder {
    public static let magic: UInt8 = 0x52
    public static let version: UInt8 = 1
    public static let headerSize = 32

    public static func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> InputMessage {
        var arena = InputArena()
        let header = try decode(payload, into: &arena)
        return arena.message(header)
    }

    /// Decodes `payload`, appending its values to `arena`; on failure the arena is unchanged.
    public static func decode(_ payload: UnsafeRawBufferPointer, into arena: inout InputArena) throws(WireError) -> InputHeader {
        if payload.first == UInt8(ascii: "{") { return arena.append(try JSONInputDecoder.decode(payload)) }
        let mark = arena.mark
        do {
            return try decodeBinary(payload, into: &arena)
        } catch {
            arena.rollBack(to: mark)
            throw error
        }
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> InputMessage {
        var result: Result<InputMessage, WireError>!
        payload.withUnsafeBytes { p in result = Result { () throws(WireError) in try decode(p) } }
        return try result.get()
    }

    static func decodeBinary(_ p: UnsafeRawBufferPointer, into arena: inout InputArena) throws(WireError) -> InputHeader {
        guard p.count >= headerSize else {
            if let first = p.first, first != magic {
                throw WireError(.magic, "byte 0 is 0x\(String(first, radix: 16)); expected 0x52 ('R', binary) or '{' (JSON)")
            }
            throw WireError(.short, "payload is \(p.count) bytes; the binary header needs \(headerSize)")
        }
        guard p[0] == magic else { throw WireError(.magic, "byte 0 is 0x\(String(p[0], radix: 16)); expected 0x52 ('R', binary) or '{' (JSON)") }
        guard p[1] == version else { throw WireError(.version, "byte 1: version \(p[1]) is not supported (this daemon speaks 1)") }
        guard let inputKind = WireInputKind(rawValue: p[2]) else { throw WireError(.inputKind, "byte 2: input kind \(p[2]) is unknown (1 f32 vector, 2 u32 token, 3 text)") }
        guard let targetKind = WireTargetKind(rawValue: p[3]) else { throw WireError(.targetKind, "byte 3: target kind \(p[3]) is unknown (0 none, 1 f32 vector, 2 u32 class)") }
        let rawFlags = p.u16(4)
        let flags = WireFlags(rawValue: rawFlags)
        guard WireFlags.all.isSuperset(of: flags) else { throw WireError(.flags, "byte 4: flags 0x\(String(rawFlags, radix: 16)) set unknown bits (known: 0xf)") }
        let xdim = Int(p.u16(6)), ydim = Int(p.u16(8))
        let steps = Int(p.u32(12))
        guard steps > 0 || !flags.isDisjoint(with: [.reset, .end]) else {
            throw WireError(.empty, "byte 12: zero steps is allowed only with RESET or END")
        }
        // A zero-step RESET or END carries no values: its kinds and dims say nothing and are not checked.
        if steps > 0 {
            switch inputKind {
            case .features: guard xdim >= 1 else { throw WireError(.xdim, "byte 6: xdim is 0 for f32 vector input") }
            case .token, .text: guard xdim == 1 else { throw WireError(.xdim, "byte 6: xdim is \(xdim); it must be 1 for token and text input") }
            }
            switch targetKind {
            case .none: guard ydim == 0 else { throw WireError(.ydim, "byte 8: ydim is \(ydim) but there are no targets (must be 0)") }
            case .values: guard ydim >= 1 else { throw WireError(.ydim, "byte 8: ydim is 0 for f32 vector targets") }
            case .classIndex: guard ydim == 1 else { throw WireError(.ydim, "byte 8: ydim is \(ydim); it must be 1 for class targets") }
            }
        }
        guard p.u16(10) == 0 else { throw WireError(.reserved, "byte 10: reserved field is \(p.u16(10)), must be 0") }
        let seq = p.u64(16)
        let timestamp = Int64(bitPattern: p.u64(24))
        let inputBytes = switch inputKind {
        case .features: steps * xdim * 4
        case .token: steps * 4
        case .text: steps
        }
        let targetBytes = targetKind == .classIndex ? steps * 4 : steps * ydim * 4
        let body = p.count - headerSize
        guard body == inputBytes + targetBytes else {
            throw WireError(.length, "body from byte 32 is \(body) bytes; \(steps) step\(steps == 1 ? "" : "s") need \(inputBytes) input + \(targetBytes) target bytes")
        }
        let header = InputHeader(inputKind: inputKind, targetKind: targetKind, flags: flags, xdim: xdim, ydim: ydim, steps: steps,
                                 seq: seq, timestamp: timestamp, featureOffset: arena.features.count, tokenOffset: arena.tokens.count,
                                 targetValueOffset: arena.targetValues.count, targetClassOffset: arena.targetClasses.count)
        var offset = headerSize
        switch inputKind {
        case .features:
            try floats(p, at: offset, count: steps * xdim, width: xdim, what: "input", into: &arena.features)
        case .token:
            for i in 0..<steps { arena.tokens.append(p.u32(offset + 4 * i)) }
        case .text:
            for i in 0..<steps { arena.tokens.append(UInt32(p[offset + i])) }
        }
        offset += inputBytes
        switch targetKind {
        case .none: break
        case .values: try floats(p, at: offset, count: steps * ydim, width: ydim, what: "target", into: &arena.targetValues)
        case .classIndex: for i in 0..<steps { arena.targetClasses.append(p.u32(offset + 4 * i)) }
        }
        return header
    }

    private static func floats(_ p: UnsafeRawBufferPointer, at offset: Int, count: Int, width: Int, what: String,
                               into out: inout [Float]) throws(WireError) {
        // Doubling, not the exact size: reserveCapacity allocates exactly what it is asked for, so
        // reserving message by message into an arena that has outgrown its capacity copied the
        // whole arena at every message (a cycle of N messages cost N² floats of memmove).
        if out.capacity < out.count + count { out.reserveCapacity(max(out.count + count, 2 * out.capacity)) }
        for i in 0..<count {
            let v = p.f32(offset + 4 * i)
            guard v.isFinite else {
                throw WireError(.nonFinite, "\(what) value \(v) at byte offset \(offset + 4 * i) (step \(i / width), element \(i % width))")
            }
            out.append(v)
        }
    }
}
