import RecurdNumerics

/// One versioned binary encoding of a stream's record, for the store (and anything else that
/// moves a stream). Little-endian:
///
/// ```
/// 0   u32  magic "RSR1" (0x31525352)
/// 4   u16  format version (1)
/// 6   u16  section count
/// 8   u64  layout fingerprint (`StreamRecordLayout.fingerprint`)
/// 16  sections: u16 id, u16 reserved, u32 length, then `length` bytes
///       1 core header (64 bytes)   2 state (stateSize f32)   3 last logits (O f32)
///       4 standardiser (2·In f64)  5 window (descriptor, then `TrainingWindow.encodeCompact`)
///       6 forecast (published forecast, combiner states)   7 anomaly (alert count, scorer states)
/// ```
/// Sections 6 and 7 exist only when the daemon combines or scores; a record read under other
/// settings starts those parts afresh and keeps the rest.
///
/// Decoding checks everything against the running layout and refuses, naming the byte offset,
/// a record for another model. A window written under other k1/k2 or targets is dropped (the
/// stream keeps its state and starts a new window). Unknown sections are skipped.
public enum StreamRecordCodec {
    static let magic: UInt32 = 0x3152_5352
    public static let version: UInt16 = 1

    enum Section: UInt16 {
        case core = 1, state = 2, logits = 3, standardizer = 4, window = 5, forecast = 6, anomaly = 7, text = 8
    }

    /// The descriptor written before a window block: what its layout depends on.
    static func descriptor(_ w: WindowLayout) -> [UInt32] {
        [UInt32(w.k1), UInt32(w.k2), w.impliedTargets ? 1 : 0, w.tokenInput ? 1 : 0, w.classTarget ? 1 : 0,
         UInt32(w.inputSize), UInt32(w.targetSize), UInt32(w.stateSize), UInt32(w.savedStates), UInt32(w.descriptorByteCount)]
    }

    /// The record's bytes (appended to `out`, which is cleared first).
    public static func encode(_ r: StreamRecord, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        let l = r.layout
        let window = r.windowIfInUse
        let sections = 4 + (window != nil ? 1 : 0) + (l.forecastBytes > 0 ? 1 : 0) + (l.anomalyBytes > 0 ? 1 : 0) + (l.textBytes > 0 ? 1 : 0)
        put(magic, &out)
        put(version, &out)
        put(UInt16(sections), &out)
        put(l.fingerprint, &out)
        section(.core, UnsafeRawBufferPointer(start: r.core, count: StreamRecordLayout.headerBytes), &out)
        section(.state, UnsafeRawBufferPointer(start: r.core + l.stateOffset, count: l.architecture.stateSize * 4), &out)
        section(.logits, UnsafeRawBufferPointer(start: r.core + l.logitsOffset, count: l.architecture.outputSize * 4), &out)
        section(.standardizer, UnsafeRawBufferPointer(start: r.core + l.meanOffset, count: l.standardizedInputs * 16), &out)
        if l.forecastBytes > 0 { section(.forecast, UnsafeRawBufferPointer(start: r.core + l.publishedOffset, count: l.forecastBytes), &out) }
        if l.anomalyBytes > 0 { section(.anomaly, UnsafeRawBufferPointer(start: r.core + l.anomalyOffset, count: l.anomalyBytes), &out) }
        if l.textBytes > 0 { section(.text, UnsafeRawBufferPointer(start: r.core + l.textOffset, count: l.textBytes), &out) }
        if let window {
            let d = descriptor(window.layout)
            put(Section.window.rawValue, &out)
            put(UInt16(0), &out)
            let lengthAt = out.count
            put(UInt32(0), &out)
            let bodyStart = out.count
            for v in d { put(v, &out) }
            window.encodeCompact(into: &out)
            let length = UInt32(out.count - bodyStart).littleEndian
            withUnsafeBytes(of: length) { for i in 0..<4 { out[lengthAt + i] = $0[i] } }
        }
    }

    /// Convenience: the record's bytes.
    public static func encode(_ r: StreamRecord) -> [UInt8] {
        var out: [UInt8] = []
        encode(r, into: &out)
        return out
    }

    /// Fills `r` from `bytes`. On error the record is left initialised as a new stream.
    public static func decode(_ bytes: UnsafeRawBufferPointer, into r: StreamRecord, now: Double) throws(StreamRecordCodecError) {
        r.initialize(now: now)
        do {
            try decodeSections(bytes, into: r)
        } catch {
            r.initialize(now: now)
            throw error
        }
    }

    public static func decode(_ bytes: [UInt8], into r: StreamRecord, now: Double) throws(StreamRecordCodecError) {
        let result: Result<Void, StreamRecordCodecError> = bytes.withUnsafeBytes { b in
            Result { () throws(StreamRecordCodecError) in try decode(b, into: r, now: now) }
        }
        try result.get()
    }

    private static func decodeSections(_ b: UnsafeRawBufferPointer, into r: StreamRecord) throws(StreamRecordCodecError) {
        let l = r.layout
        guard b.count >= 16 else { throw StreamRecordCodecError(offset: 0, "record is \(b.count) bytes; the header needs 16") }
        guard b.loadUnaligned(as: UInt32.self) == magic else { throw StreamRecordCodecError(offset: 0, "not a stream record (bad magic)") }
        let v = b.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        guard v == version else { throw StreamRecordCodecError(offset: 4, "record format version \(v); this recurd reads \(version)") }
        let sections = Int(b.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        let fp = b.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        guard fp == l.fingerprint else {
            throw StreamRecordCodecError(offset: 8, "record belongs to another model (fingerprint \(hex(fp)), this model's is \(hex(l.fingerprint)))")
        }
        var at = 16
        var seen: Set<UInt16> = []
        var forecastRead = false
        for _ in 0..<sections {
            guard at + 8 <= b.count else { throw StreamRecordCodecError(offset: at, "section header runs past the end (\(b.count) bytes)") }
            let id = b.loadUnaligned(fromByteOffset: at, as: UInt16.self)
            let length = Int(b.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self))
            let body = at + 8
            guard body + length <= b.count else { throw StreamRecordCodecError(offset: at, "section \(id) of \(length) bytes runs past the end (\(b.count) bytes)") }
            func expect(_ n: Int, _ what: String) throws(StreamRecordCodecError) {
                guard length == n else { throw StreamRecordCodecError(offset: at, "\(what) section is \(length) bytes; this model's is \(n)") }
            }
            func copy(to offset: Int) { (r.core + offset).copyMemory(from: b.baseAddress! + body, byteCount: length) }
            switch Section(rawValue: id) {
            case .core:
                try expect(StreamRecordLayout.headerBytes, "core")
                copy(to: 0)
                // The window flag is set below only if the window section is taken.
                r.flags.remove(.windowInUse)
            case .state:
                try expect(l.architecture.stateSize * 4, "state")
                copy(to: l.stateOffset)
                if let bad = (0..<l.architecture.stateSize).first(where: { !r.state[$0].isFinite }) {
                    throw StreamRecordCodecError(offset: body + bad * 4, "state has a non-finite value at element \(bad)")
                }
            case .logits:
                try expect(l.architecture.outputSize * 4, "prediction")
                copy(to: l.logitsOffset)
            case .standardizer:
                try expect(l.standardizedInputs * 16, "standardiser")
                copy(to: l.meanOffset)
            case .window:
                guard let w = l.window, let base = r.windowBase else { break }   // this daemon keeps no windows
                let d = descriptor(w)
                guard length >= d.count * 4,
                      (0..<d.count).allSatisfy({ b.loadUnaligned(fromByteOffset: body + $0 * 4, as: UInt32.self) == d[$0] }) else {
                    break   // written under other learning settings: the stream starts a new window
                }
                let compact = UnsafeRawBufferPointer(rebasing: b[(body + d.count * 4)..<(body + length)])
                guard TrainingWindow(layout: w, base: base).decodeCompact(compact) == compact.count else {
                    throw StreamRecordCodecError(offset: body, "window section does not read back (\(length) bytes)")
                }
                r.flags.insert(.windowInUse)
            case .forecast:
                // Written under other forecast settings (or before the combiner's state grew): the
                // combiner starts afresh.
                if length == l.forecastBytes && length > 0 {
                    copy(to: l.publishedOffset)
                    forecastRead = true
                }
            case .anomaly:
                if length == l.anomalyBytes && length > 0 { copy(to: l.anomalyOffset) }
            case .text:
                // Written with another context size: the stream's contexts start empty.
                if length == l.textBytes && length > 0 { copy(to: l.textOffset) }
            case nil:
                break   // a later format's section: skipped
            }
            seen.insert(id)
            at = body + length
        }
        for s in [Section.core, .state, .logits, .standardizer] where !seen.contains(s.rawValue) {
            throw StreamRecordCodecError(offset: at, "record has no \(s) section")
        }
        // Without the forecast it published last, the stream's next step has nothing to be scored
        // against (its loss and anomaly score would be those of a forecast of 0).
        if l.forecastBytes > 0 && !forecastRead { r.flags.remove(.hasPrediction) }
    }

    private static func section(_ s: Section, _ bytes: UnsafeRawBufferPointer, _ out: inout [UInt8]) {
        put(s.rawValue, &out)
        put(UInt16(0), &out)
        put(UInt32(bytes.count), &out)
        out.append(contentsOf: bytes)
    }

    @inline(__always)
    private static func put<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func hex(_ v: UInt64) -> String { String(v, radix: 16) }
}
