import Foundation
import RecurdWire
import Testing

/// A small deterministic generator so failures reproduce.
struct LCG: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state ^ (state >> 29)
    }
}

@Suite struct InputDecoderTests {
    static let features = InputMessage(inputKind: .features, targetKind: .values, flags: [.reset], xdim: 3, ydim: 2, steps: 2,
                                       seq: 41, timestamp: 1_700_000_000_000_000_000,
                                       features: [1, 2, 3, 4, 5, 6], targetValues: [0.5, -0.5, 1.5, -1.5])
    static let tokens = InputMessage(inputKind: .token, targetKind: .classIndex, flags: [.end, .noLearn], xdim: 1, ydim: 1, steps: 3,
                                     seq: 0, tokens: [7, 0, 255], targetClasses: [1, 2, 3])
    static let text = InputMessage(inputKind: .text, xdim: 1, steps: 5, seq: 9, tokens: Array("hello".utf8).map(UInt32.init))
    static let valid = [features, tokens, text]

    @Test(arguments: valid)
    func binaryRoundTrip(_ m: InputMessage) throws {
        #expect(try InputDecoder.decode(InputEncoder.encode(m)) == m)
    }

    @Test func headerLayoutIsDesignSection4() throws {
        let bytes = InputEncoder.encode(Self.features)
        #expect(bytes.count == 32 + 6 * 4 + 4 * 4)
        #expect(Array(bytes[0..<4]) == [0x52, 1, 1, 1])
        #expect(bytes[4] == 1 && bytes[5] == 0)          // flags RESET
        #expect(bytes[6] == 3 && bytes[8] == 2)          // xdim, ydim
        #expect(bytes[12] == 2)                          // steps
        #expect(bytes[16] == 41)                         // seq
    }

    /// An arena that outgrows its capacity grows by doubling, so a cycle of N messages costs
    /// O(N) copying, not a copy of the whole arena at every message.
    @Test func arenaGrowsGeometrically() throws {
        var arena = InputArena()
        let bytes = InputEncoder.encode(InputMessage(inputKind: .features, targetKind: .values, xdim: 8, ydim: 8, steps: 1, seq: 0,
                                                     features: [Float](repeating: 0.25, count: 8), targetValues: [Float](repeating: 1, count: 8)))
        var featureCapacities: Set<Int> = [], targetCapacities: Set<Int> = []
        for _ in 0..<4_000 {
            _ = try bytes.withUnsafeBytes { p throws(WireError) in try InputDecoder.decode(p, into: &arena) }
            featureCapacities.insert(arena.features.capacity)
            targetCapacities.insert(arena.targetValues.capacity)
        }
        #expect(arena.features.count == 32_000)
        // 32,000 floats by doubling: about 15 sizes; by exact reservations it was 4,000.
        #expect(featureCapacities.count <= 20, "\(featureCapacities.count) reallocations of the features")
        #expect(targetCapacities.count <= 20, "\(targetCapacities.count) reallocations of the targets")
    }

    @Test(arguments: valid)
    func everyTruncationIsRefused(_ m: InputMessage) {
        let bytes = InputEncoder.encode(m)
        for cut in 0..<bytes.count {
            #expect(throws: WireError.self, "cut at \(cut)") { try InputDecoder.decode(Array(bytes[0..<cut])) }
            if cut >= 32 {
                do { _ = try InputDecoder.decode(Array(bytes[0..<cut])) } catch {
                    #expect(error.reason == .length, "cut at \(cut): \(error)")
                }
            }
        }
        for extra in 1...9 {
            do {
                _ = try InputDecoder.decode(bytes + Array(repeating: 0, count: extra))
                Issue.record("\(extra) extra bytes accepted")
            } catch {
                #expect(error.reason == .length)
            }
        }
    }

    @Test func eachHeaderFieldIsChecked() {
        func refused(_ edit: (inout [UInt8]) -> Void) -> WireError.Reason? {
            var b = InputEncoder.encode(Self.features)
            edit(&b)
            do { _ = try InputDecoder.decode(b); return nil } catch { return error.reason }
        }
        #expect(refused { $0[0] = 0x51 } == .magic)
        #expect(refused { $0[1] = 2 } == .version)
        #expect(refused { $0[2] = 4 } == .inputKind)
        #expect(refused { $0[3] = 3 } == .targetKind)
        #expect(refused { $0[4] = 0x10 } == .flags)
        #expect(refused { $0[6] = 0 } == .xdim)
        #expect(refused { $0[8] = 0 } == .ydim)
        #expect(refused { $0[10] = 1 } == .reserved)
        #expect(refused { $0[12] = 3 } == .length)
        #expect(refused { $0.replaceSubrange(32..<36, with: [0, 0, 0xC0, 0x7F]) } == .nonFinite)   // NaN
        #expect(refused { $0.replaceSubrange(56..<60, with: [0, 0, 0x80, 0x7F]) } == .nonFinite)   // +∞ target
        // Zero steps need RESET or END.
        var empty = InputMessage(inputKind: .features, xdim: 2, steps: 0, seq: 1)
        #expect(throws: WireError(.empty, "byte 12: zero steps is allowed only with RESET or END")) { try InputDecoder.decode(InputEncoder.encode(empty)) }
        empty.flags = [.end]
        #expect((try? InputDecoder.decode(InputEncoder.encode(empty))) == empty)
        // Token input needs xdim 1.
        var t = InputEncoder.encode(Self.tokens)
        t[6] = 2
        #expect(throws: WireError.self) { try InputDecoder.decode(t) }
    }

    @Test func errorsSayWhere() {
        var b = InputEncoder.encode(Self.features)
        b.replaceSubrange(40..<44, with: [0, 0, 0x80, 0xFF])   // −∞ at step 0, element 2
        do { _ = try InputDecoder.decode(b) } catch {
            #expect(error.detail == "input value -inf at byte offset 40 (step 0, element 2)")
        }
    }

    @Test func randomBytesNeverCrash() {
        var rng = LCG(state: 1)
        var accepted = 0
        for i in 0..<20_000 {
            let n = Int(rng.next() % 80)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Half the time start from a plausible header so deeper checks are reached.
            if i % 2 == 0 && n >= 4 { bytes[0] = 0x52; bytes[1] = 1; bytes[2] = UInt8(1 + rng.next() % 3); bytes[3] = UInt8(rng.next() % 3) }
            if let m = try? InputDecoder.decode(bytes) {
                accepted += 1
                // Whatever decodes re-encodes to the same bytes.
                #expect(InputEncoder.encode(m) == bytes)
            }
        }
        #expect(accepted < 20_000)
    }

    @Test func randomMutationsOfValidMessages() {
        var rng = LCG(state: 2)
        for base in Self.valid {
            let bytes = InputEncoder.encode(base)
            for _ in 0..<3_000 {
                var b = bytes
                for _ in 0..<(1 + rng.next() % 3) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                if let m = try? InputDecoder.decode(b) { #expect(InputEncoder.encode(m) == b) }
            }
        }
    }
}

@Suite struct JSONInputTests {
    func decode(_ s: String) throws(WireError) -> InputMessage { try InputDecoder.decode(Array(s.utf8)) }

    @Test func forms() throws {
        let x = try decode(#"{"seq": 7, "ts": 5, "x": [1, 2.5]}"#)
        #expect(x == InputMessage(inputKind: .features, xdim: 2, steps: 1, seq: 7, timestamp: 5, features: [1, 2.5]))
        let xs = try decode(#"{"xs": [[1], [2], [3]], "ys": [[0], [1], [0]], "reset": true}"#)
        #expect(xs.steps == 3 && xs.xdim == 1 && xs.seq == nil && xs.flags == [.reset] && xs.targetValues == [0, 1, 0] && xs.targetKind == .values)
        let tokens = try decode(#"{"seq": 1, "tokens": [3, 4], "labels": [1, 0], "no_learn": true}"#)
        #expect(tokens.inputKind == .token && tokens.tokens == [3, 4] && tokens.targetClasses == [1, 0] && tokens.flags == [.noLearn])
        let text = try decode(#"{"text": "hé", "end": true, "no_predict": false}"#)
        #expect(text.inputKind == .text && text.tokens == [0x68, 0xC3, 0xA9] && text.steps == 3 && text.flags == [.end])
        let label = try decode(#"{"x": [1], "label": 4}"#)
        #expect(label.targetClasses == [4] && label.ydim == 1)
        #expect(try decode(#"{"end": true}"#).steps == 0)
    }

    @Test(arguments: [
        (#"{"x": [1], "xx": 2}"#, WireError.Reason.json),
        (#"{"x": [1], "tokens": [2]}"#, .json),
        (#"{"x": "a"}"#, .json),
        (#"{"x": [true]}"#, .json),
        (#"{"xs": [[1, 2], [3]]}"#, .xdim),
        (#"{"x": []}"#, .xdim),
        (#"{"x": [1e39]}"#, .nonFinite),
        (#"{"x": [1e999]}"#, .nonFinite),
        (#"{"y": [-1e400], "x": [1]}"#, .nonFinite),
        (#"{"seq": -1, "x": [1]}"#, .json),
        (#"{"seq": 1.5, "x": [1]}"#, .json),
        (#"{"x": [1], "ys": [[1], [2]]}"#, .json),
        (#"{"tokens": [-1]}"#, .json),
        (#"{"reset": 1, "x": [1]}"#, .json),
        (#"{}"#, .empty),
        (#"{"x": [1]"#, .json),
        (#"[1, 2]"#, .magic),
        (#"{"x": [1], "label": "a"}"#, .json),
    ])
    func refusals(_ text: String, _ reason: WireError.Reason) {
        do {
            _ = try decode(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.reason == reason, "\(text): \(error)")
        }
    }

    @Test func jsonSyntaxErrorsSayWhatAndWhere() {
        for (text, says) in [(#"{"x": [NaN]}"#, "Invalid value at byte offset 7"), (#"{"x": [1"#, "Unexpected end of file")] {
            do {
                _ = try decode(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.reason == .json && error.detail.contains("invalid JSON (\(text.utf8.count) bytes): ") && error.detail.contains(says), "\(text): \(error)")
            }
        }
    }

    @Test func aNumberBeyondAnyFloatIsNonFiniteWithItsOffset() {
        do {
            _ = try decode(#"{"x": [1, 1e999]}"#)
            Issue.record("accepted 1e999")
        } catch {
            #expect(error.reason == .nonFinite && error.detail.contains("step 0 element 1"), "\(error)")
        }
        // Where no number may be that large, the field's own error, not non_finite.
        for (text, reason) in [(#"{"seq":1e999,"x":[1]}"#, WireError.Reason.json), (#"{"x":[1],"bogus":1e999}"#, .json),
                               (#"{"x":[1],"y":[-1e999]}"#, .nonFinite), (#"{"xs":[[1],[2e9999]]}"#, .nonFinite)] {
            do {
                _ = try decode(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.reason == reason, "\(text): \(error)")
            }
        }
    }

    /// 20,000 numbers beyond a Double in one payload: refused as non_finite at the first, in one
    /// pass (the fallback once re-decoded itself per number, 20,000 calls deep).
    @Test func manyNumbersBeyondAnyFloatAreRefusedInOnePass() {
        let text = #"{"xs":["# + Array(repeating: "[1e999]", count: 20_000).joined(separator: ",") + "]}"
        do {
            _ = try decode(text)
            Issue.record("accepted 20,000 × 1e999")
        } catch {
            #expect(error.reason == .nonFinite && error.detail.contains("step 0 element 0"), "\(error)")
        }
        // Inside a string the same characters are text, not a number.
        #expect((try? decode(#"{"text":"1e999 \"1e999"}"#))?.steps == 12)
    }

    /// Rows wider than the binary form's u16 xdim/ydim are refused in JSON too.
    @Test func jsonRowsWiderThanAU16AreRefused() {
        let wide = "[" + Array(repeating: "0", count: 65_536).joined(separator: ",") + "]"
        for (text, reason) in [("{\"x\":\(wide)}", WireError.Reason.xdim), ("{\"x\":[1],\"y\":\(wide)}", .ydim)] {
            do {
                _ = try decode(text)
                Issue.record("accepted a row of 65536")
            } catch {
                #expect(error.reason == reason && error.detail.contains("more than 65535"), "\(error)")
            }
        }
    }

    /// What Foundation lets through and RFC 8259 does not: refused, saying what and where.
    @Test func repeatedFieldsAndTrailingCommasAreRefused() {
        for (text, says) in [
            (#"{"x": [1], "x": [2]}"#, "field 'x' given twice in one object (byte offset 11)"),
            (#"{"x": [1], "\u0078": [2]}"#, "field 'x' given twice"),
            (#"{"seq": 1, "x": [1], "seq": 2}"#, "field 'seq' given twice"),
            (#"{"x": [1],}"#, "trailing comma before '}' (byte offset 10)"),
            (#"{"xs": [[1], [2],]}"#, "trailing comma before ']' (byte offset 17)"),
        ] {
            do {
                _ = try decode(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.reason == .json && error.detail.contains(says), "\(text): \(error)")
            }
        }
    }

    /// Commas, brackets, quotes and names inside strings are not structure.
    @Test func strictnessReadsStringsAsStrings() throws {
        let text = try decode(#"{"text": "a,}],\"x\": [1],\"x\":{"}"#)
        #expect(text.steps == 19)
        #expect(try decode(#"{"xs": [[1, 2], [3, 4]], "ys": [[1, 2], [3, 4]]}"#).steps == 2)
        let nested = Array(#"{"a": {"b": 1}, "c": {"b": 2}, "d": [{"b": 1}, {"b": 1}]}"#.utf8)
        #expect(nested.withUnsafeBytes { JSONStrictness.problem(in: $0) } == nil)
    }

    @Test func randomJSONishBytesNeverCrash() {
        var rng = LCG(state: 3)
        let alphabet = Array(#"{}[]",:0123456789.-eExyseqtokn trufals"#.utf8)
        for _ in 0..<5_000 {
            var bytes: [UInt8] = [UInt8(ascii: "{")]
            for _ in 0..<Int(rng.next() % 40) { bytes.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
            _ = try? InputDecoder.decode(bytes)
        }
    }
}

@Suite struct OutputCodecTests {
    @Test(arguments: [false, true])
    func roundTrip(_ json: Bool) throws {
        let values: [Float] = [0.25, -1, 3e-7, 12345.678]
        let losses: [Float] = [.nan, 0.5]
        var out: [UInt8] = []
        values.withUnsafeBufferPointer { v in losses.withUnsafeBufferPointer { l in
            if json {
                OutputCodec.encodeJSON(into: &out, kind: .vector, flags: [.gap], odim: 2, steps: 2, modelVersion: 9, seq: 100, timestamp: -3,
                                       values: v.baseAddress!, ids: nil, losses: l.baseAddress!)
            } else {
                OutputCodec.encodeBinary(into: &out, kind: .vector, flags: [.gap], odim: 2, steps: 2, modelVersion: 9, seq: 100, timestamp: -3,
                                         values: v.baseAddress!, ids: nil, losses: l.baseAddress!)
            }
        } }
        if !json { #expect(out.count == 32 + 4 * 4 + 2 * 4) }
        let m = try OutputCodec.decode(out)
        #expect(m.kind == .vector && m.flags == [.gap] && m.odim == 2 && m.steps == 2 && m.modelVersion == 9 && m.seq == 100 && m.timestamp == -3)
        #expect(m.values == values)
        #expect(m.losses[0].isNaN && m.losses[1] == 0.5)
    }

    @Test func topK() throws {
        let p: [Float] = [0.7, 0.2], ids: [UInt32] = [65, 66], l: [Float] = [1.25]
        var out: [UInt8] = []
        p.withUnsafeBufferPointer { pv in ids.withUnsafeBufferPointer { iv in l.withUnsafeBufferPointer { lv in
            OutputCodec.encodeBinary(into: &out, kind: .topK, flags: [.newState], odim: 2, steps: 1, modelVersion: 0, seq: 0, timestamp: 0,
                                     values: pv.baseAddress!, ids: iv.baseAddress!, losses: lv.baseAddress!)
        } } }
        let m = try OutputCodec.decode(out)
        #expect(m.kind == .topK && m.ids == ids && m.values == p && m.losses == l && m.flags == [.newState])
    }
}
