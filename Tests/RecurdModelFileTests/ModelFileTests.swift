import Foundation
import RecurdModelFile
import RecurdNumerics
import RecurdTestSupport
import SafeTensors
import Testing

@Suite struct ModelFileTests {
    static let architecture = ModelArchitecture(cell: .lstm, input: .features(size: 3), hidden: [6, 4], outputSize: 2, head: .linear)

    func encoded(_ arch: ModelArchitecture = architecture) -> [UInt8] {
        ModelFile(model: Model(architecture: arch, seed: 3)).encode()
    }

    /// Re-serialises with `edit` applied to the tensor list and metadata.
    func rewritten(_ edit: (inout [(name: String, shape: [Int], values: [Float])], inout [String: String]) -> Void) -> [UInt8] {
        let archive = try! SafeTensorsArchive(bytes: encoded())
        var tensors: [(name: String, shape: [Int], values: [Float])] = archive.entries.map { (name: $0.name, shape: $0.shape, values: archive.floats($0)) }
        var metadata = archive.metadata
        edit(&tensors, &metadata)
        return SafeTensorsArchive.serialize(tensors: tensors, metadata: metadata)
    }

    func refusal(_ bytes: [UInt8]) -> ModelFileError? {
        do {
            _ = try ModelFile.decode(bytes, file: "m.safetensors")
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        ModelArchitecture(cell: .lstm, input: .features(size: 3), hidden: [6, 4], outputSize: 2, head: .linear),
        ModelArchitecture(cell: .gru, input: .tokens(vocabulary: 256, embedding: 8), hidden: [5], outputSize: 256, head: .softmax),
        ModelArchitecture(cell: .gru, input: .features(size: 1), hidden: [3, 7, 2], outputSize: 4, head: .sigmoid),
        // `forecast: residual` in the metadata.
        ModelArchitecture(cell: .lstm, input: .features(size: 2), hidden: [4], outputSize: 2, head: .linear, residual: true),
    ])
    func roundTrip(_ arch: ModelArchitecture) throws {
        let model = Model(architecture: arch, seed: 9)
        let extras: [String: (shape: [Int], values: [Float])] = ["optim.exp_avg.head.bias": ([arch.outputSize], Array(repeating: 0.5, count: arch.outputSize))]
        let bytes = ModelFile(model: model, metadata: ["note": "x"], extras: extras).encode()
        let decoded = try ModelFile.decode(bytes, file: "round")
        #expect(decoded.model.architecture == arch)
        #expect(decoded.model.weights.array == model.weights.array)
        #expect(decoded.metadata["note"] == "x")
        #expect(decoded.metadata["format"] == "recurd/1")
        #expect(decoded.extras["optim.exp_avg.head.bias"]?.values == extras["optim.exp_avg.head.bias"]?.values)
        // The header is padded to 8 bytes as the reference writer does.
        let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(length % 8 == 0)
    }

    @Test func truncatedAnywhereIsRefused() {
        let bytes = encoded()
        for cut in [0, 3, 8, 20, 100, bytes.count / 2, bytes.count - 1] {
            let error = refusal(Array(bytes[0..<cut]))
            #expect(error != nil, "cut at \(cut)")
            #expect(error?.description.hasPrefix("m.safetensors: ") == true)
        }
        // A body cut short names the tensor whose data is missing.
        #expect(refusal(Array(bytes.dropLast(4)))?.tensor == "head.bias")
    }

    @Test func absurdHeaderLengthIsRefused() {
        var bytes = encoded()
        for i in 0..<8 { bytes[i] = 0xFF }
        let error = refusal(bytes)
        #expect(error?.description.contains("header length") == true)
        var big = encoded()
        big[0] = 0; big[1] = 0; big[2] = 0; big[3] = 0x10  // 256 MiB > file
        #expect(refusal(big) != nil)
    }

    /// Another framework's file says how to convert it: a Keras zip or a torch.save file is no
    /// safetensors at all, a PyTorch state dict in safetensors has no recurd metadata.
    @Test func otherFrameworksFilesPointToTheConverter() {
        let zip: [UInt8] = Array("PK\u{3}\u{4}".utf8) + [UInt8](repeating: 7, count: 200)
        #expect(refusal(zip)?.forUser.contains("python -m recurd.export") == true, "\(String(describing: refusal(zip)))")
        let stateDict = rewritten { _, metadata in metadata = [:] }
        let error = refusal(stateDict)
        #expect(error?.forUser.contains("not a recurd model file") == true && error?.forUser.contains("python -m recurd.export") == true,
                "\(String(describing: error))")
        // Checkpoints read back without the hint (a torn checkpoint is no other framework's file).
        #expect(error?.description.contains("recurd.export") == false)
        // A recurd file with a problem is not foreign: no hint.
        #expect(refusal(rewritten { tensors, _ in tensors.removeAll { $0.name == "head.weight" } })?.foreign == false)
    }

    @Test func headerThatIsNotJSONIsRefused() {
        var bytes = encoded()
        bytes[8] = UInt8(ascii: "[")
        #expect(refusal(bytes)?.description.contains("JSON") == true)
    }

    @Test func wrongShapeNamesTheTensor() {
        let bytes = rewritten { tensors, _ in
            let i = tensors.firstIndex { $0.name == "rnn.weight_hh_l1" }!
            tensors[i] = (tensors[i].name, [16, 3], Array(tensors[i].values.prefix(48)))
        }
        let error = refusal(bytes)
        #expect(error?.tensor == "rnn.weight_hh_l1", "\(String(describing: error))")
        let ih = rewritten { tensors, _ in
            let i = tensors.firstIndex { $0.name == "rnn.weight_ih_l1" }!
            tensors[i] = (tensors[i].name, [16, 5], Array(repeating: 0, count: 80))
        }
        #expect(refusal(ih)?.tensor == "rnn.weight_ih_l1")
        let head = rewritten { tensors, _ in
            let i = tensors.firstIndex { $0.name == "head.bias" }!
            tensors[i] = (tensors[i].name, [3], [0, 0, 0])
        }
        #expect(refusal(head)?.tensor == "head.bias")
    }

    @Test func missingTensorIsNamed() {
        for name in ["rnn.bias_hh_l0", "rnn.weight_hh_l1", "head.weight"] {
            let error = refusal(rewritten { tensors, _ in tensors.removeAll { $0.name == name } })
            #expect(error?.tensor == name, "\(String(describing: error))")
            #expect(error?.description.contains("missing") == true)
        }
    }

    @Test func unexpectedTensorIsNamed() {
        let error = refusal(rewritten { tensors, _ in tensors.append(("rnn.weight_ih_l7x", [2], [1, 2])) })
        #expect(error?.tensor == "rnn.weight_ih_l7x")
        #expect(error?.description.contains("unexpected") == true)
        // An embedding in a feature model is unexpected too.
        #expect(refusal(rewritten { tensors, _ in tensors.append(("embed.weight", [4, 3], Array(repeating: 0, count: 12))) })?.tensor == "embed.weight")
    }

    @Test func unknownCellAndBadMetadataAreRefused() {
        #expect(refusal(rewritten { _, m in m["cell"] = "transformer" })?.description.contains("unknown cell 'transformer'") == true)
        #expect(refusal(rewritten { _, m in m["head"] = "relu" })?.description.contains("unknown head") == true)
        #expect(refusal(rewritten { _, m in m["format"] = "other/2" })?.description.contains("format") == true)
        #expect(refusal(rewritten { _, m in m.removeValue(forKey: "input") })?.description.contains("'input'") == true)
        // Metadata saying GRU over LSTM-shaped tensors: the shapes do not match 3 gates.
        #expect(refusal(rewritten { _, m in m["cell"] = "gru" })?.tensor != nil)
        // Metadata saying tokens without an embedding.
        #expect(refusal(rewritten { _, m in m["input"] = "tokens" })?.tensor == "embed.weight")
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteValueIsNamed(_ bad: Float) {
        let error = refusal(rewritten { tensors, _ in
            let i = tensors.firstIndex { $0.name == "rnn.weight_ih_l0" }!
            tensors[i].values[5] = bad
        })
        #expect(error?.tensor == "rnn.weight_ih_l0")
        #expect(error?.description.contains("element 5") == true)
    }

    @Test func wrongDtypeIsRefused() {
        // Hand-edit the header: F32 → F64 for one tensor, keeping the byte ranges (now inconsistent).
        var bytes = encoded()
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        header = header.replacingOccurrences(of: "\"head.bias\":{\"dtype\":\"F32\"", with: "\"head.bias\":{\"dtype\":\"I32\"")
        bytes.replaceSubrange(8..<(8 + headerLength), with: Array(header.utf8))
        #expect(refusal(bytes)?.tensor == "head.bias")
    }

    @Test func overlappingDataIsRefused() {
        var bytes = encoded()
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        // Point head.bias (2 floats, at the end) at the first 8 bytes of the data.
        let range = header.range(of: "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[")!
        let tail = header[range.upperBound...]
        let close = tail.firstIndex(of: "]")!
        var edited = header
        edited.replaceSubrange(range.upperBound..<close, with: "0,8")
        while edited.utf8.count < headerLength { edited += " " }
        bytes.replaceSubrange(8..<(8 + headerLength), with: Array(edited.utf8))
        #expect(refusal(bytes) != nil)
    }

    /// A shape whose element count fits an Int but whose byte count does not: refused, naming
    /// the tensor (the byte count was once multiplied unchecked, a trap).
    @Test func aShapeBeyondAnyByteCountIsRefused() throws {
        let header = Array(#"{"t":{"dtype":"F32","shape":[3000000000,1000000000],"data_offsets":[0,0]}}"#.utf8)
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) } + header
        do {
            _ = try SafeTensorsArchive(bytes: bytes)
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("more than 2^63"), "\(error)")
        }
    }

    /// Bytes no tensor owns, after the data or between two tensors, are refused as the format's
    /// own library refuses them, naming the tensor and the byte offset.
    @Test func bytesNoTensorOwnsAreRefused() throws {
        let clean = encoded()
        let trailing = try #require(refusal(clean + [0, 0, 0, 0]))
        #expect("\(trailing)".contains("4 bytes no tensor owns follow its data, at byte offset \(clean.count)"), "\(trailing)")

        // A hole: the last tensor's data moved 4 bytes on.
        let headerLength = clean[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try #require(try JSONSerialization.jsonObject(with: Data(clean[8..<(8 + headerLength)])) as? [String: Any])
        let (name, entry) = try #require(header.filter { $0.key != "__metadata__" }.max { a, b in
            ((a.value as! [String: Any])["data_offsets"] as! [Int])[0] < ((b.value as! [String: Any])["data_offsets"] as! [Int])[0]
        })
        var moved = entry as! [String: Any]
        let offsets = moved["data_offsets"] as! [Int]
        moved["data_offsets"] = [offsets[0] + 4, offsets[1] + 4]
        header[name] = moved
        let json = Array(try JSONSerialization.data(withJSONObject: header))
        let data = Array(clean[(8 + headerLength)...])
        var holed = (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) } + json
        holed += data[0..<offsets[0]] + [0, 0, 0, 0] + data[offsets[0]...]
        let hole = try #require(refusal(holed))
        #expect(hole.tensor == name && "\(hole)".contains("4 bytes no tensor owns lie before its data"), "\(hole)")
    }

    /// An empty tensor at the offset of a non-empty one overlaps nothing (the format's library
    /// accepts it): the entries are ordered by begin, then end.
    @Test func anEmptyTensorSharingAnOffsetIsNotAnOverlap() throws {
        let clean = encoded()
        let archive = try SafeTensorsArchive(bytes: clean)
        let headerLength = clean[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try #require(try JSONSerialization.jsonObject(with: Data(clean[8..<(8 + headerLength)])) as? [String: Any])
        header["aaa.empty"] = ["dtype": "F32", "shape": [0], "data_offsets": [0, 0]]
        let json = Array(try JSONSerialization.data(withJSONObject: header))
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) } + json + Array(clean[(8 + headerLength)...])
        let reread = try SafeTensorsArchive(bytes: bytes)
        #expect(reread.entries.count == archive.entries.count + 1)
    }
}
