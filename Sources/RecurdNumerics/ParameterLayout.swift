/// Where one named tensor lives inside the flat parameter vector.
public struct TensorSlot: Sendable, Equatable {
    /// The DESIGN §2 name, e.g. `rnn.weight_ih_l0`.
    public let name: String
    /// Row-major shape.
    public let shape: [Int]
    /// Offset of the first element in the flat vector.
    public let offset: Int
    /// Elements from one row to the next in the flat vector (the last dimension's size when the
    /// tensor is contiguous; larger for a layer's interleaved W_ih and W_hh).
    public let rowStride: Int

    public init(name: String, shape: [Int], offset: Int, rowStride: Int? = nil) {
        self.name = name
        self.shape = shape
        self.offset = offset
        self.rowStride = rowStride ?? (shape.last ?? 1)
    }

    public var count: Int { shape.reduce(1, *) }

    /// Position in the flat vector of the tensor's `i`-th element in row-major order.
    @inline(__always)
    public func storageIndex(_ i: Int) -> Int {
        guard shape.count == 2 else { return offset + i }
        let cols = shape[1]
        return offset + (i / cols) * rowStride + i % cols
    }
}

/// Offsets of one recurrent layer's tensors in the flat parameter vector.
///
/// W_ih and W_hh are interleaved row by row into one (G·H, In + H) block, so that the LSTM's
/// gate pre-activations `[x | h] · [W_ih | W_hh]ᵀ` are a single matrix product; both are read
/// with row stride `blockStride`.
public struct LayerSlots: Sendable, Equatable {
    public let inputSize: Int
    public let hidden: Int
    /// (G·H, In), row stride `blockStride`; also the start of the (G·H, In + H) block.
    public let weightIH: Int
    /// (G·H, H), row stride `blockStride`.
    public let weightHH: Int
    /// In + H.
    public let blockStride: Int
    /// (G·H)
    public let biasIH: Int
    /// (G·H)
    public let biasHH: Int
}

/// All parameters of a model laid out in one flat float vector, in DESIGN §2 names.
///
/// One vector (rather than a tensor per array) lets the optimiser, the gradient buffer, gradient
/// clipping and weight publication each be a single loop or copy.
public struct ParameterLayout: Sendable, Equatable {
    public let architecture: ModelArchitecture
    public let layers: [LayerSlots]
    /// `embed.weight` (V, E), token input only.
    public let embed: Int?
    /// `head.weight` (O, H_last)
    public let headWeight: Int
    /// `head.bias` (O)
    public let headBias: Int
    /// Every tensor, in file order.
    public let slots: [TensorSlot]
    /// Total number of floats.
    public let count: Int

    public init(_ architecture: ModelArchitecture) {
        self.architecture = architecture
        var slots: [TensorSlot] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let slot = TensorSlot(name: name, shape: shape, offset: offset)
            slots.append(slot)
            offset += slot.count
            return slot.offset
        }
        /// A layer's (G·H, In + H) block holding W_ih then W_hh in each row.
        func addBlock(_ k: Int, rows: Int, inputSize: Int, hidden: Int) -> (Int, Int) {
            let stride = inputSize + hidden
            slots.append(TensorSlot(name: "rnn.weight_ih_l\(k)", shape: [rows, inputSize], offset: offset, rowStride: stride))
            slots.append(TensorSlot(name: "rnn.weight_hh_l\(k)", shape: [rows, hidden], offset: offset + inputSize, rowStride: stride))
            defer { offset += rows * stride }
            return (offset, offset + inputSize)
        }
        var embed: Int?
        if case .tokens(let vocabulary, let embedding) = architecture.input {
            embed = add("embed.weight", [vocabulary, embedding])
        }
        let g = architecture.cell.gateCount
        var layers: [LayerSlots] = []
        for (k, h) in architecture.hidden.enumerated() {
            let inputSize = architecture.layerInputSize(k)
            let (wih, whh) = addBlock(k, rows: g * h, inputSize: inputSize, hidden: h)
            let bih = add("rnn.bias_ih_l\(k)", [g * h])
            let bhh = add("rnn.bias_hh_l\(k)", [g * h])
            layers.append(LayerSlots(inputSize: inputSize, hidden: h, weightIH: wih, weightHH: whh, blockStride: inputSize + h,
                                     biasIH: bih, biasHH: bhh))
        }
        headWeight = add("head.weight", [architecture.outputSize, architecture.topHidden])
        headBias = add("head.bias", [architecture.outputSize])
        self.embed = embed
        self.layers = layers
        self.slots = slots
        self.count = offset
    }

    /// The slot of a tensor by name.
    public func slot(named name: String) -> TensorSlot? { slots.first { $0.name == name } }
}
