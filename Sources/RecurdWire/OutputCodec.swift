import Foundation

/// Encodes and decodes output payloads (wire protocol v1, DESIGN §4), binary or JSON.
public enum OutputCodec {
    public static let magic: UInt8 = 0x50
    public static let headerSize = 32

    /// Appends the binary payload to `out` (cleared first). `values` holds `steps × odim` floats
    /// (vector kind) or probabilities with `ids` (top-k); `losses` holds `steps` floats.
    public static func encodeBinary(
        into out: inout [UInt8], kind: WireOutputKind, flags: OutputFlags, odim: Int, steps: Int, modelVersion: UInt32,
        seq: UInt64, timestamp: Int64, values: UnsafePointer<Float>, ids: UnsafePointer<UInt32>?, losses: UnsafePointer<Float>
    ) {
        let per = kind == .vector ? 4 : 8
        let size = headerSize + steps * odim * per + steps * 4
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: repeatElement(0, count: size))
        out.withUnsafeMutableBytes { p in
            p[0] = magic
            p[1] = 1
            p[2] = kind.rawValue
            p[3] = flags.rawValue
            p.storeBytes(of: UInt16(truncatingIfNeeded: odim).littleEndian, toByteOffset: 4, as: UInt16.self)
            p.storeBytes(of: UInt32(truncatingIfNeeded: steps).littleEndian, toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: modelVersion.littleEndian, toByteOffset: 12, as: UInt32.self)
            p.storeBytes(of: seq.littleEndian, toByteOffset: 16, as: UInt64.self)
            p.storeBytes(of: timestamp.littleEndian, toByteOffset: 24, as: Int64.self)
            var offset = headerSize
            let n = steps * odim
            switch kind {
            case .vector:
                for i in 0..<n { p.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: offset, as: UInt32.self); offset += 4 }
            case .topK:
                for i in 0..<n {
                    p.storeBytes(of: ids![i].littleEndian, toByteOffset: offset, as: UInt32.self)
                    p.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: offset + 4, as: UInt32.self)
                    offset += 8
                }
            }
            for i in 0..<steps { p.storeBytes(of: losses[i].bitPattern.littleEndian, toByteOffset: offset, as: UInt32.self); offset += 4 }
        }
    }

    /// Appends the JSON payload to `out` (cleared first):
    /// `{"seq":7,"ts":0,"version":3,"new":false,"gap":false,"y":[[…],…],"loss":[null,…]}`, with
    /// `"more":true` after `"gap"` on all but the last output of a long message.
    /// (top-k: `"top":[[[id,p],…],…]` instead of `"y"`).
    public static func encodeJSON(
        into out: inout [UInt8], kind: WireOutputKind, flags: OutputFlags, odim: Int, steps: Int, modelVersion: UInt32,
        seq: UInt64, timestamp: Int64, values: UnsafePointer<Float>, ids: UnsafePointer<UInt32>?, losses: UnsafePointer<Float>
    ) {
        out.removeAll(keepingCapacity: true)
        func put(_ s: String) { out.append(contentsOf: s.utf8) }
        put("{\"seq\":\(seq),\"ts\":\(timestamp),\"version\":\(modelVersion),\"new\":\(flags.contains(.newState)),\"gap\":\(flags.contains(.gap)),")
        if flags.contains(.more) { put("\"more\":true,") }
        put(kind == .vector ? "\"y\":[" : "\"top\":[")
        for s in 0..<steps {
            if s > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            for j in 0..<odim {
                if j > 0 { out.append(UInt8(ascii: ",")) }
                let i = s * odim + j
                if kind == .topK { put("[\(ids![i]),"); appendNumber(values[i], to: &out); out.append(UInt8(ascii: "]")) } else { appendNumber(values[i], to: &out) }
            }
            out.append(UInt8(ascii: "]"))
        }
        put("],\"loss\":[")
        for s in 0..<steps {
            if s > 0 { out.append(UInt8(ascii: ",")) }
            appendNumber(losses[s], to: &out)
        }
        put("]}")
    }

    /// `%.9g`, or `null` for NaN/∞ (JSON has no such numbers).
    static func appendNumber(_ v: Float, to out: inout [UInt8]) {
        guard v.isFinite else { out.append(contentsOf: "null".utf8); return }
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { buffer in
            let n = withVaList([Double(v)]) { vsnprintf(buffer.baseAddress!, 32, "%.9g", $0) }
            buffer.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0[0..<Int(n)]) }
        }
    }

    /// Decodes a binary or JSON output payload.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> OutputMessage {
        if bytes.first == UInt8(ascii: "{") { return try decodeJSON(bytes) }
        var result: Result<OutputMessage, WireError>!
        bytes.withUnsafeBytes { p in result = Result { () throws(WireError) in try decodeBinary(p) } }
        return try result.get()
    }

    static func decodeBinary(_ p: UnsafeRawBufferPointer) throws(WireError) -> OutputMessage {
        guard p.count >= headerSize else { throw WireError(.short, "output payload is \(p.count) bytes; the header needs 32") }
        guard p[0] == magic else { throw WireError(.magic, "byte 0 is 0x\(String(p[0], radix: 16)); expected 0x50 ('P')") }
        guard p[1] == 1 else { throw WireError(.version, "byte 1: version \(p[1])") }
        guard let kind = WireOutputKind(rawValue: p[2]) else { throw WireError(.inputKind, "byte 2: output kind \(p[2]) is unknown") }
        let flags = OutputFlags(rawValue: p[3])
        let odim = Int(p.u16(4)), steps = Int(p.u32(8))
        let per = kind == .vector ? 4 : 8
        guard p.count - headerSize == steps * odim * per + steps * 4 else {
            throw WireError(.length, "output body is \(p.count - headerSize) bytes; \(steps) steps of \(odim) need \(steps * odim * per + steps * 4)")
        }
        var values: [Float] = [], ids: [UInt32] = []
        var offset = headerSize
        for _ in 0..<(steps * odim) {
            if kind == .topK { ids.append(p.u32(offset)); offset += 4 }
            values.append(p.f32(offset)); offset += 4
        }
        let losses = (0..<steps).map { p.f32(offset + 4 * $0) }
        return OutputMessage(kind: kind, flags: flags, odim: odim, steps: steps, modelVersion: p.u32(12), seq: p.u64(16),
                             timestamp: Int64(bitPattern: p.u64(24)), values: values, ids: ids, losses: losses)
    }

    static func decodeJSON(_ bytes: [UInt8]) throws(WireError) -> OutputMessage {
        guard let o = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { throw WireError(.json, "output is not a JSON object") }
        func int(_ k: String) -> Int64 { (o[k] as? NSNumber)?.int64Value ?? 0 }
        var flags: OutputFlags = []
        if o["new"] as? Bool == true { flags.insert(.newState) }
        if o["gap"] as? Bool == true { flags.insert(.gap) }
        if o["more"] as? Bool == true { flags.insert(.more) }
        let lossList = (o["loss"] as? [Any]) ?? []
        let losses = lossList.map { ($0 as? NSNumber)?.floatValue ?? .nan }
        var values: [Float] = [], ids: [UInt32] = []
        var kind = WireOutputKind.vector, odim = 0
        if let rows = o["y"] as? [[Any]] {
            for r in rows { odim = r.count; values += r.map { ($0 as? NSNumber)?.floatValue ?? .nan } }
        } else if let rows = o["top"] as? [[[Any]]] {
            kind = .topK
            for r in rows {
                odim = r.count
                for pair in r { ids.append(UInt32((pair[0] as? NSNumber)?.uint32Value ?? 0)); values.append((pair[1] as? NSNumber)?.floatValue ?? .nan) }
            }
        } else {
            throw WireError(.json, "output has neither 'y' nor 'top'")
        }
        return OutputMessage(kind: kind, flags: flags, odim: odim, steps: losses.count, modelVersion: UInt32(truncatingIfNeeded: int("version")),
                             seq: UInt64(bitPattern: int("seq")), timestamp: int("ts"), values: values, ids: ids, losses: losses)
    }
}
