import Foundation
import RecurdWire
import Testing

/// The golden payloads in Tests/Fixtures/wire were written by the Python client's codec
/// (Clients/python/src/recurd/wire.py, via generate.py). Reading them here ties the Swift codecs,
/// the Python package and docs/PROTOCOL.md to the same bytes.
@Suite struct GoldenFixtureTests {
    struct Entry: @unchecked Sendable, CustomTestStringConvertible {
        let file: String
        let json: [String: Any]
        var testDescription: String { file }
        var isBinary: Bool { (json["encoding"] as? String) == "binary" }
        var isInput: Bool { (json["direction"] as? String) == "input" }
        var fields: [String: Any]? { json["fields"] as? [String: Any] }
        var error: [String: Any]? { json["error"] as? [String: Any] }
    }

    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/wire")

    static let entries: [Entry] = {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("manifest.json")),
              let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let files = manifest["files"] as? [[String: Any]] else { return [] }
        return files.map { Entry(file: $0["file"] as! String, json: $0) }
    }()

    static func bytes(_ e: Entry) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: folder.appendingPathComponent(e.file)))
    }

    @Test func manifestCoversEveryKind() {
        #expect(Self.entries.count >= 100, "manifest.json missing or short")
        #expect(Self.entries.contains { $0.isInput && $0.error != nil })
        #expect(Self.entries.contains { !$0.isInput && $0.error != nil })
        #expect(Self.entries.contains { !$0.isInput && ($0.fields?["anomaly"] is [Any]) })
    }

    // MARK: - Helpers turning manifest JSON into Swift values

    static func floats(_ v: Any?) -> [Float] {
        guard let list = v as? [Any] else { return [] }
        return list.flatMap { item -> [Float] in
            if let row = item as? [Any] { return floats(row) }
            if let n = item as? NSNumber { return [n.floatValue] }
            return [.nan]
        }
    }

    static func ints(_ v: Any?) -> [UInt32] {
        guard let list = v as? [Any] else { return [] }
        return list.flatMap { item -> [UInt32] in
            if let row = item as? [Any] { return ints(row) }
            return [(item as! NSNumber).uint32Value]
        }
    }

    /// Bit-exact float comparison, with every NaN equal to every other.
    static func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    static func equal(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
    }

    // MARK: - Inputs

    @Test(arguments: entries.filter { $0.isInput && $0.fields != nil })
    func validInputDecodes(_ e: Entry) throws {
        let f = e.fields!
        let payload = try Self.bytes(e)
        let m = try InputDecoder.decode(payload)
        #expect(m.inputKind.rawValue == (f["input_kind"] as! NSNumber).uint8Value)
        #expect(m.targetKind.rawValue == (f["target_kind"] as! NSNumber).uint8Value)
        #expect(m.flags.rawValue == (f["flags"] as! NSNumber).uint16Value)
        #expect(m.steps == (f["steps"] as! NSNumber).intValue)
        if m.steps > 0 {
            #expect(m.xdim == (f["xdim"] as! NSNumber).intValue)
            #expect(m.ydim == (f["ydim"] as! NSNumber).intValue)
        }
        if let seq = f["seq"] as? NSNumber { #expect(m.seq == seq.uint64Value) } else { #expect(m.seq == nil) }
        #expect(m.timestamp == (f["ts"] as! NSNumber).int64Value)
        #expect(Self.same(m.features, Self.floats(f["x"])))
        #expect(m.tokens == Self.ints(f["tokens"]))
        if let text = f["text"] as? String { #expect(m.tokens == Array(text.utf8).map(UInt32.init)) }
        #expect(Self.same(m.targetValues, Self.floats(f["y"])))
        #expect(m.targetClasses == Self.ints(f["labels"]))
        // The Swift encoder writes the same bytes the Python one did.
        if e.isBinary { #expect(InputEncoder.encode(m) == payload) }
    }

    @Test(arguments: entries.filter { $0.isInput && $0.error != nil })
    func invalidInputIsRefusedForItsReason(_ e: Entry) throws {
        let err = e.error!, payload = try Self.bytes(e)
        do {
            _ = try InputDecoder.decode(payload)
            Issue.record("\(e.file) was accepted")
        } catch {
            #expect(error.reason.rawValue == err["reason"] as! String, "\(error)")
            if let offset = err["offset"] as? NSNumber { #expect(error.detail.contains("\(offset.intValue)"), "\(error)") }
        }
    }

    // MARK: - Outputs

    @Test(arguments: entries.filter { !$0.isInput && $0.fields != nil })
    func validOutputDecodesAndEncodesToTheSameBytes(_ e: Entry) throws {
        let f = e.fields!
        let payload = try Self.bytes(e)
        let m = try OutputCodec.decode(payload)
        #expect(m.kind.rawValue == (f["output_kind"] as! NSNumber).uint8Value)
        #expect(m.flags.rawValue == (f["flags"] as! NSNumber).uint8Value)
        #expect(m.odim == (f["odim"] as! NSNumber).intValue)
        #expect(m.steps == (f["steps"] as! NSNumber).intValue)
        #expect(m.modelVersion == (f["model_version"] as! NSNumber).uint32Value)
        #expect(m.seq == (f["seq"] as! NSNumber).uint64Value)
        #expect(m.timestamp == (f["ts"] as! NSNumber).int64Value)
        // JSON has no negative zero for Foundation's parser (-0 reads as the integer 0).
        #expect(e.isBinary ? Self.same(m.values, Self.floats(f["values"])) : Self.equal(m.values, Self.floats(f["values"])))
        #expect(m.ids == Self.ints(f["ids"]))
        #expect(Self.same(m.losses, Self.floats(f["losses"])))
        #expect(Self.same(m.anomaly, Self.floats(f["anomaly"])))

        // The daemon's encoder, given the manifest's fields, reproduces the fixture byte for byte,
        // into a reused buffer of stale bytes, longer or shorter than the payload.
        let values = Self.floats(f["values"]), ids = Self.ints(f["ids"]), losses = Self.floats(f["losses"])
        let anomaly = Self.floats(f["anomaly"])
        for stale in [payload.count + 37, payload.count / 2] {
            var out = [UInt8](repeating: 0xA5, count: stale)
            values.withUnsafeBufferPointer { v in ids.withUnsafeBufferPointer { i in losses.withUnsafeBufferPointer { l in
                anomaly.withUnsafeBufferPointer { a in
                    let scores = m.flags.contains(.anomaly) ? a.baseAddress ?? UnsafePointer(l.baseAddress!) : nil
                    if e.isBinary {
                        OutputCodec.encodeBinary(into: &out, kind: m.kind, flags: m.flags, odim: m.odim, steps: m.steps, modelVersion: m.modelVersion,
                                                 seq: m.seq, timestamp: m.timestamp, values: v.baseAddress ?? UnsafePointer(l.baseAddress!),
                                                 ids: m.kind == .topK ? i.baseAddress : nil, losses: l.baseAddress!, anomaly: scores)
                    } else {
                        OutputCodec.encodeJSON(into: &out, kind: m.kind, flags: m.flags, odim: m.odim, steps: m.steps, modelVersion: m.modelVersion,
                                               seq: m.seq, timestamp: m.timestamp, values: v.baseAddress ?? UnsafePointer(l.baseAddress!),
                                               ids: m.kind == .topK ? i.baseAddress : nil, losses: l.baseAddress!, anomaly: scores)
                    }
                }
            } } }
            #expect(out == payload, "stale \(stale): \(String(decoding: out, as: UTF8.self))")
        }
    }

    @Test(arguments: entries.filter { !$0.isInput && $0.error != nil })
    func invalidOutputIsRefusedForItsReason(_ e: Entry) throws {
        let err = e.error!, payload = try Self.bytes(e)
        do {
            _ = try OutputCodec.decode(payload)
            Issue.record("\(e.file) was accepted")
        } catch {
            #expect(error.reason.rawValue == err["reason"] as! String, "\(error)")
            if let offset = err["offset"] as? NSNumber { #expect(error.detail.contains("\(offset.intValue)"), "\(error)") }
        }
    }
}
