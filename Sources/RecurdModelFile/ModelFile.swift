import RecurdNumerics
import SafeTensors

/// DESIGN §2: a model as a safetensors file with `recurd/1` metadata.
///
/// Decoding checks everything a file can get wrong — structure, metadata, missing, unexpected or
/// misshapen tensors, non-finite values — and refuses with an error naming the file and tensor.
/// Tensors under `optim.` and `norm.` (daemon checkpoints) are kept aside as extras.
public struct ModelFile: Sendable {
    public static let formatName = "recurd/1"
    /// Prefixes of tensors a checkpoint may add beside the model's own.
    public static let extraPrefixes = ["optim.", "norm."]

    public let model: Model
    /// All metadata, including keys recurd does not interpret.
    public let metadata: [String: String]
    /// Checkpoint tensors (`optim.*`, `norm.*`) by name.
    public let extras: [String: (shape: [Int], values: [Float])]

    public init(model: Model, metadata: [String: String] = [:], extras: [String: (shape: [Int], values: [Float])] = [:]) {
        self.model = model
        self.metadata = metadata
        self.extras = extras
    }

    /// Decodes and validates `bytes`; `file` is used in error messages only.
    public static func decode(_ bytes: [UInt8], file: String) throws(ModelFileError) -> ModelFile {
        let archive: SafeTensorsArchive
        do {
            archive = try SafeTensorsArchive(bytes: bytes)
        } catch {
            switch error {
            case .badEntry(let t, let r), .badDataRange(let t, let r): throw ModelFileError(file: file, tensor: t, reason: r)
            default: throw ModelFileError(file: file, reason: error.description, foreign: true)
            }
        }
        let meta = archive.metadata
        // A safetensors file of another tool (a PyTorch state dict, say) has no recurd format.
        if meta["format"] == nil && meta["cell"] == nil {
            throw ModelFileError(file: file, reason: "a safetensors file but not a recurd model file: its metadata has no 'format'", foreign: true)
        }
        func required(_ key: String) throws(ModelFileError) -> String {
            guard let v = meta[key] else { throw ModelFileError(file: file, reason: "metadata has no '\(key)' (expected format, cell, input, head)") }
            return v
        }
        let format = try required("format")
        guard format == formatName else { throw ModelFileError(file: file, reason: "metadata format is '\(format)', expected '\(formatName)'") }
        let cellName = try required("cell")
        guard let cell = CellKind(rawValue: cellName) else { throw ModelFileError(file: file, reason: "unknown cell '\(cellName)' (expected lstm or gru)") }
        let inputName = try required("input")
        guard inputName == "features" || inputName == "tokens" else { throw ModelFileError(file: file, reason: "unknown input '\(inputName)' (expected features or tokens)") }
        let headName = try required("head")
        guard let head = HeadKind(rawValue: headName) else { throw ModelFileError(file: file, reason: "unknown head '\(headName)' (expected linear, softmax or sigmoid)") }

        var byName: [String: SafeTensorsArchive.Entry] = [:]
        for e in archive.entries { byName[e.name] = e }
        func entry(_ name: String) throws(ModelFileError) -> SafeTensorsArchive.Entry {
            guard let e = byName[name] else { throw ModelFileError(file: file, tensor: name, reason: "missing") }
            guard e.dtype == "F32" else { throw ModelFileError(file: file, tensor: name, reason: "dtype is \(e.dtype); recurd reads F32") }
            return e
        }
        func shape(_ name: String, rank: Int) throws(ModelFileError) -> [Int] {
            let s = try entry(name).shape
            guard s.count == rank else { throw ModelFileError(file: file, tensor: name, reason: "has rank \(s.count) (shape \(s)), expected \(rank)") }
            guard !s.contains(0) else { throw ModelFileError(file: file, tensor: name, reason: "has an empty dimension (shape \(s))") }
            return s
        }

        let g = cell.gateCount
        let input: InputKind
        if inputName == "tokens" {
            let s = try shape("embed.weight", rank: 2)
            input = .tokens(vocabulary: s[0], embedding: s[1])
        } else {
            let s = try shape("rnn.weight_ih_l0", rank: 2)
            input = .features(size: s[1])
        }
        var hidden: [Int] = []
        var k = 0
        while byName["rnn.weight_ih_l\(k)"] != nil || byName["rnn.weight_hh_l\(k)"] != nil {
            let hh = try shape("rnn.weight_hh_l\(k)", rank: 2)
            let h = hh[1]
            guard hh[0] == g * h else {
                throw ModelFileError(file: file, tensor: "rnn.weight_hh_l\(k)", reason: "shape \(hh) should be [\(g * h), \(h)] for \(cellName.uppercased()) (\(g) gates)")
            }
            let inputSize = k == 0 ? input.layerInputSize : hidden[k - 1]
            let ih = try shape("rnn.weight_ih_l\(k)", rank: 2)
            guard ih == [g * h, inputSize] else {
                throw ModelFileError(file: file, tensor: "rnn.weight_ih_l\(k)", reason: "shape \(ih) should be [\(g * h), \(inputSize)]")
            }
            for b in ["rnn.bias_ih_l\(k)", "rnn.bias_hh_l\(k)"] {
                let s = try shape(b, rank: 1)
                guard s == [g * h] else { throw ModelFileError(file: file, tensor: b, reason: "shape \(s) should be [\(g * h)]") }
            }
            hidden.append(h)
            k += 1
        }
        guard !hidden.isEmpty else { throw ModelFileError(file: file, tensor: "rnn.weight_ih_l0", reason: "missing") }
        let hw = try shape("head.weight", rank: 2)
        guard hw[1] == hidden[hidden.count - 1] else {
            throw ModelFileError(file: file, tensor: "head.weight", reason: "shape \(hw) should have \(hidden[hidden.count - 1]) columns (the top layer's hidden size)")
        }
        let hb = try shape("head.bias", rank: 1)
        guard hb == [hw[0]] else { throw ModelFileError(file: file, tensor: "head.bias", reason: "shape \(hb) should be [\(hw[0])]") }

        // `forecast` (recurd's own key; absent in files from other tools): "residual" heads
        // predict the change of their input (DESIGN §3.7 (a)), "level" is the plain form.
        let forecast = meta["forecast"] ?? "level"
        guard forecast == "level" || forecast == "residual" else {
            throw ModelFileError(file: file, reason: "metadata forecast is '\(forecast)' (expected level or residual)")
        }
        let architecture = ModelArchitecture(cell: cell, input: input, hidden: hidden, outputSize: hw[0], head: head, residual: forecast == "residual")
        if let problem = architecture.problem() { throw ModelFileError(file: file, reason: problem) }
        let layout = ParameterLayout(architecture)
        let known = Set(layout.slots.map(\.name))
        var extras: [String: (shape: [Int], values: [Float])] = [:]
        for e in archive.entries where !known.contains(e.name) {
            guard extraPrefixes.contains(where: { e.name.hasPrefix($0) }) else {
                throw ModelFileError(file: file, tensor: e.name, reason: "unexpected tensor for a \(hidden.count)-layer \(cellName) \(inputName) model")
            }
            guard e.dtype == "F32" else { throw ModelFileError(file: file, tensor: e.name, reason: "dtype is \(e.dtype); recurd reads F32") }
            extras[e.name] = (e.shape, archive.floats(e))
        }
        let weights = FloatBuffer(count: layout.count)
        for slot in layout.slots {
            let e = try entry(slot.name)
            let values = archive.floats(e)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw ModelFileError(file: file, tensor: slot.name, reason: "non-finite value \(values[bad]) at element \(bad)")
            }
            for (i, v) in values.enumerated() { weights.pointer[slot.storageIndex(i)] = v }
        }
        for (name, extra) in extras {
            if let bad = extra.values.firstIndex(where: { !$0.isFinite }) {
                throw ModelFileError(file: file, tensor: name, reason: "non-finite value \(extra.values[bad]) at element \(bad)")
            }
        }
        return ModelFile(model: Model(layout: layout, weights: weights), metadata: meta, extras: extras)
    }

    /// The metadata recurd writes for `architecture`, merged over `extra`.
    public static func metadata(for architecture: ModelArchitecture, extra: [String: String] = [:]) -> [String: String] {
        var m = extra
        m["format"] = formatName
        m["cell"] = architecture.cell.rawValue
        m["input"] = architecture.input.name
        m["head"] = architecture.head.rawValue
        if architecture.residual { m["forecast"] = "residual" } else { m.removeValue(forKey: "forecast") }
        return m
    }

    /// Encodes the model (and extras) as safetensors bytes.
    public func encode() -> [UInt8] {
        let layout = model.layout
        var tensors: [(name: String, shape: [Int], values: [Float])] = layout.slots.map { slot in
            (slot.name, slot.shape, (0..<slot.count).map { model.weights.pointer[slot.storageIndex($0)] })
        }
        for name in extras.keys.sorted() { tensors.append((name, extras[name]!.shape, extras[name]!.values)) }
        return SafeTensorsArchive.serialize(tensors: tensors, metadata: Self.metadata(for: model.architecture, extra: metadata))
    }
}
