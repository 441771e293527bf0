/// Where one named tensor lives inside the flat parameter vector.
public struct TensorSlot: Sendable, Equatable {
    /// The DESIGN §2 name, e.g. `rnn.weight_ih_l0`.
    public let name: String
    /// Row-major shape.
    public let shape: [Int]
    /// Offset of the first element in the flat vector.
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Offsets of one recurrent layer's tensors in the flat parameter vector.
public struct LayerSlots: Sendable, Equatable {
    public let inputSize: Int
    public let hidden: Int
    /// (G·H, In)
    public let weightIH: Int
    /// (G·H, H)
    public let weightHH: Int
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
        var embed: Int?
        if case .tokens(let vocabulary, let embedding) = architecture.input {
            embed = add("embed.weight", [vocabulary, embedding])
        }
        let g = architecture.cell.gateCount
        var layers: [LayerSlots] = []
        for (k, h) in architecture.hidden.enumerated() {
            let inputSize = architecture.layerInputSize(k)
            let wih = add("rnn.weight_ih_l\(k)", [g * h, inputSize])
            let whh = add("rnn.weight_hh_l\(k)", [g * h, h])
            let bih = add("rnn.bias_ih_l\(k)", [g * h])
            let bhh = add("rnn.bias_hh_l\(k)", [g * h])
            layers.append(LayerSlots(inputSize: inputSize, hidden: h, weightIH: wih, weightHH: whh, biasIH: bih, biasHH: bhh))
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
