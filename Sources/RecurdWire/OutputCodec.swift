import Foundation

/// Encodes and decodes output payloads (wire protocol v1, DESIGN §4), binary or JSON.
public enum OutputCodec {
    public static let magic: UInt8 = 0x50
    public static let headerSize = 32

    /// Writes the binary payload into `out` (replacing what it held). `values` holds `steps × odim` floats
    /// (vector kind) or probabilities with `ids` (top-k); `losses` holds `steps` floats.
    public static func encodeBinary(
        into out: inout [UInt8], kind: WireOutputKind, flags: OutputFlags, odim: Int, steps: Int, modelVersion: UInt32,
        seq: UInt64, timestamp: Int64, values: UnsafePointer<Float>, ids: UnsafePointer<UInt32>?, losses: UnsafePointer<Float>,
        anomaly: UnsafePointer<Float>? = nil
    ) {
        let per = kind == .vector ? 4 : 8
        var flags = flags
        if anomaly != nil { flags.insert(.anomaly) } else { flags.remove(.anomaly) }
        let size = headerSize + steps * odim * per + steps * (anomaly == nil ? 4 : 8)
        // Every byte below is written, so the buffer is only resized, not cleared: a stream's
        // outputs are mostly one size, and zero-filling each was a visible share of serving.
        if out.count > size {
            out.removeLast(out.count - size)
        } else if out.count < size {
            out.append(contentsOf: repeatElement(0, count: size - out.count))
        }
        out.withUnsafeMutableBytes { p in
            p[0] = magic
            p[1] = 1
            p[2] = kind.rawValue
            p[3] = flags.rawValue
            p.storeBytes(of: UInt16(truncatingIfNeeded: odim).littleEndian, toByteOffset: 4, as: UInt16.self)
            p.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
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
            if let anomaly {
                for i in 0..<steps { p.storeBytes(of: anomaly[i].bitPattern.littleEndian, toByteOffset: offset, as: UInt32.self); offset += 4 }
            }
        }
    }

    /// Appends the JSON payload to `out` (cleared first):
    /// `{"seq":7,"ts":0,"version":3,"new":false,"gap":false,"y":[[…],…],"loss":[null,…]}`
    /// (top-k: `"top":[[[id,p],…],…]` instead of `"y"`), then `"anomaly":[…]` when scored and
    /// `"more":true` last on all but the final output of a long message. The golden fixtures in
    /// Tests/Fixtures/wire hold this byte for byte.
    public static func encodeJSON(
        into out: inout [UInt8], kind: WireOutputKind, flags: OutputFlags, odim: Int, steps: Int, modelVersion: UInt32,
        seq: UInt64, timestamp: Int64, values: UnsafePointer<Float>, ids: UnsafePointer<UInt32>?, losses: UnsafePointer<Float>,
        anomaly: UnsafePointer<Float>? = nil
    ) {
        out.removeAll(keepingCapacity: true)
        func put(_ s: String) { out.append(contentsOf: s.utf8) }
        func list(_ v: UnsafePointer<Float>) {
            out.append(UInt8(ascii: "["))
            for s in 0..<steps {
                if s > 0 { out.append(UInt8(ascii: ",")) }
                appendNumber(v[s], to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        put("{\"seq\":\(seq),\"ts\":\(timestamp),\"version\":\(modelVersion),\"new\":\(flags.contains(.newState)),\"gap\":\(flags.contains(.gap)),")
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
        put("],\"loss\":")
        list(losses)
        if let anomaly {
            put(",\"anomaly\":")
            list(anomaly)
        }
        if flags.contains(.more) { put(",\"more\":true") }
        out.append(UInt8(ascii: "}"))
    }

    /// `%.9g`, or `null` for NaN/∞ (JSON has no such numbers).
    static func appendNumber(_ v: Float, to out: inout [UInt8]) {
        guard v.isFinite else { out.append(contentsOf: "null".utf8); return }
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 32) { buffer in
            let n = withVaList([Double(v)]) { vsnprintf(buffer.baseAddress!, 32, "%.9g", $0) }
            buffer.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0[0..<Int(n)]) }
        }
    }

    /// The timestamp of a binary output without decoding the rest (nil when `p` is not one):
    /// what a latency probe reads.
    public static func timestamp(ofBinary p: UnsafeRawBufferPointer) -> Int64? {
        guard p.count >= headerSize, p[0] == magic else { return nil }
        return Int64(bitPattern: p.u64(24))
    }

    /// The flags of a binary output without decoding the rest (nil when `p` is not one): whether
    /// more chunks of the same input message follow (`.more`).
    public static func flags(ofBinary p: UnsafeRawBufferPointer) -> OutputFlags? {
        guard p.count >= headerSize, p[0] == magic else { return nil }
        return OutputFlags(rawValue: p[3])
    }

    /// Decodes a binary or JSON output payload.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> OutputMessage {
        if bytes.first == UInt8(ascii: "{") { return try decodeJSON(bytes) }
        var result: Result<OutputMessage, WireError>!
        bytes.withUnsafeBytes { p in result = Result { () throws(WireError) in try decodeBinary(p) } }
        return try result.get()
    }

    static func decodeBinary(_ p: UnsafeRawBufferPointer) throws(WireError) -> OutputMessage {
        guard p.count >= headerSize else {
            if let first = p.first, first != magic {
                throw WireError(.magic, "byte 0 is 0x\(String(first, radix: 16)); expected 0x50 ('P', binary) or '{' (JSON)")
            }
            throw WireError(.short, "output payload is \(p.count) bytes; the header needs \(headerSize)")
        }
        guard p[0] == magic else { throw WireError(.magic, "byte 0 is 0x\(String(p[0], radix: 16)); expected 0x50 ('P', binary) or '{' (JSON)") }
        guard p[1] == 1 else { throw WireError(.version, "byte 1: version \(p[1]) is not supported (this reader speaks 1)") }
        guard let kind = WireOutputKind(rawValue: p[2]) else {
            throw WireError(.outputKind, "byte 2: output kind \(p[2]) is unknown (1 f32 vector, 2 top-k)")
        }
        let flags = OutputFlags(rawValue: p[3])
        guard OutputFlags.all.isSuperset(of: flags) else {
            throw WireError(.flags, "byte 3: flags 0x\(String(p[3], radix: 16)) set unknown bits (known: 0xf)")
        }
        guard p.u16(6) == 0 else { throw WireError(.reserved, "byte 6: reserved field is \(p.u16(6)), must be 0") }
        let odim = Int(p.u16(4)), steps = Int(p.u32(8))
        let per = kind == .vector ? 4 : 8
        let scored = flags.contains(.anomaly)
        let need = steps * odim * per + steps * (scored ? 8 : 4)
        guard p.count - headerSize == need else {
            let parts = "\(steps * odim * per) prediction + \(steps * 4) loss" + (scored ? " + \(steps * 4) anomaly" : "")
            throw WireError(.length, "output body from byte 32 is \(p.count - headerSize) bytes; \(steps) step\(steps == 1 ? "" : "s") of \(odim) need \(parts) bytes")
        }
        var values: [Float] = [], ids: [UInt32] = []
        values.reserveCapacity(steps * odim)
        var offset = headerSize
        for _ in 0..<(steps * odim) {
            if kind == .topK { ids.append(p.u32(offset)); offset += 4 }
            values.append(p.f32(offset)); offset += 4
        }
        let losses = (0..<steps).map { p.f32(offset + 4 * $0) }
        offset += 4 * steps
        let anomaly = scored ? (0..<steps).map { p.f32(offset + 4 * $0) } : []
        return OutputMessage(kind: kind, flags: flags, odim: odim, steps: steps, modelVersion: p.u32(12), seq: p.u64(16),
                             timestamp: Int64(bitPattern: p.u64(24)), values: values, ids: ids, losses: losses, anomaly: anomaly)
    }

    static func decodeJSON(_ bytes: [UInt8]) throws(WireError) -> OutputMessage {
        guard let o = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw WireError(.json, "output is not a JSON object (\(bytes.count) bytes)")
        }
        func integer(_ k: String) throws(WireError) -> Int64 {
            guard let v = o[k], let n = JSONNumbers.integer(v) else { throw WireError(.json, "output has no integer '\(k)'") }
            return n
        }
        func floats(_ k: String) throws(WireError) -> [Float]? {
            guard let raw = o[k] else { return nil }
            guard let list = raw as? [Any] else { throw WireError(.json, "'\(k)' must be an array") }
            var out: [Float] = []
            for v in list {
                if v is NSNull { out.append(.nan); continue }
                guard let n = v as? NSNumber, !JSONNumbers.isBool(v) else { throw WireError(.json, "'\(k)' holds something that is neither a number nor null") }
                out.append(n.floatValue)
            }
            return out
        }
        var flags: OutputFlags = []
        for (key, flag) in [("new", OutputFlags.newState), ("gap", .gap), ("more", .more)] {
            guard let v = o[key] else { continue }
            guard JSONNumbers.isBool(v), let b = v as? Bool else { throw WireError(.json, "'\(key)' must be true or false") }
            if b { flags.insert(flag) }
        }
        guard let losses = try floats("loss") else { throw WireError(.json, "output has no 'loss'") }
        let steps = losses.count
        var anomaly: [Float] = []
        if let scores = try floats("anomaly") {
            guard scores.count == steps else { throw WireError(.json, "'anomaly' has \(scores.count) scores for \(steps) steps") }
            anomaly = scores
            flags.insert(.anomaly)
        }
        var values: [Float] = [], ids: [UInt32] = []
        var kind = WireOutputKind.vector, odim = 0, first = true
        func row(_ r: Any, _ name: String) throws(WireError) -> [Any] {
            guard let list = r as? [Any] else { throw WireError(.json, "'\(name)' rows must be arrays") }
            if first { odim = list.count; first = false }
            guard list.count == odim else { throw WireError(.json, "'\(name)' rows have different lengths") }
            return list
        }
        func number(_ v: Any, _ name: String) throws(WireError) -> Float {
            if v is NSNull { return .nan }
            guard let n = v as? NSNumber, !JSONNumbers.isBool(v) else { throw WireError(.json, "'\(name)' holds something that is not a number") }
            return n.floatValue
        }
        if let rows = o["y"] as? [Any] {
            guard rows.count == steps else { throw WireError(.json, "'y' must be an array of \(steps) rows (one per loss)") }
            for r in rows { for v in try row(r, "y") { values.append(try number(v, "y")) } }
        } else if let rows = o["top"] as? [Any] {
            kind = .topK
            guard rows.count == steps else { throw WireError(.json, "'top' must be an array of \(steps) rows (one per loss)") }
            for r in rows {
                for pair in try row(r, "top") {
                    guard let two = pair as? [Any], two.count == 2, let id = two[0] as? NSNumber, !JSONNumbers.isBool(two[0]),
                          let exact = UInt32(exactly: id.doubleValue) else {
                        throw WireError(.json, "'top' pairs must be [id, probability]")
                    }
                    ids.append(exact)
                    values.append(try number(two[1], "top"))
                }
            }
        } else {
            throw WireError(.json, "output has neither 'y' nor 'top'")
        }
        let version = try integer("version")
        guard let seq = o["seq"].flatMap(JSONNumbers.unsignedInteger) else { throw WireError(.json, "output has no integer 'seq'") }
        let ts = o["ts"] == nil ? 0 : try integer("ts")
        guard (0...Int64(UInt32.max)).contains(version) else { throw WireError(.json, "'version' \(version) is not a u32") }
        return OutputMessage(kind: kind, flags: flags, odim: odim, steps: steps, modelVersion: UInt32(version),
                             seq: seq, timestamp: ts, values: values, ids: ids, losses: losses, anomaly: anomaly)
    }
}
