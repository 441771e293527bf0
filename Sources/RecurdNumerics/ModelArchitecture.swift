/// The recurrent cell of every layer (DESIGN §1).
public enum CellKind: String, Sendable, CaseIterable, Codable {
    case lstm
    case gru

    /// Gates per hidden unit in the stacked weight matrices: 4 (i, f, g, o) or 3 (r, z, n).
    public var gateCount: Int { self == .lstm ? 4 : 3 }
}

/// The dense head applied to the top layer's hidden state at every step.
public enum HeadKind: String, Sendable, CaseIterable, Codable {
    /// Regression; loss is mean squared error over the outputs.
    case linear
    /// Classes or next token; loss is cross-entropy in nats.
    case softmax
    /// Independent labels; loss is binary cross-entropy averaged over the outputs.
    case sigmoid
}

/// What a step's input is.
public enum InputKind: Sendable, Equatable {
    /// A float vector of the given size per step.
    case features(size: Int)
    /// An integer id per step, looked up in a `vocabulary × embedding` table.
    case tokens(vocabulary: Int, embedding: Int)

    /// The size of the vector the first recurrent layer consumes.
    public var layerInputSize: Int {
        switch self {
        case .features(let size): size
        case .tokens(_, let embedding): embedding
        }
    }

    /// The number of token ids, or nil for features.
    public var vocabulary: Int? {
        if case .tokens(let v, _) = self { v } else { nil }
    }

    /// `features` or `tokens`, as the model file's metadata spells it.
    public var name: String {
        switch self {
        case .features: "features"
        case .tokens: "tokens"
        }
    }
}

/// The shape of a model: input → stacked LSTM/GRU layers → head.
public struct ModelArchitecture: Sendable, Equatable {
    public var cell: CellKind
    public var input: InputKind
    /// Hidden size of each layer, bottom first.
    public var hidden: [Int]
    public var outputSize: Int
    public var head: HeadKind
    /// The head predicts the change of its input: p_t = x_t + head(h_t) (DESIGN §3.7 (a)). With
    /// the head zero-initialised a fresh model forecasts persistence. Feature input, a linear
    /// head and as many outputs as inputs only; false is the plain, PyTorch-exact form.
    public var residual: Bool

    public init(cell: CellKind, input: InputKind, hidden: [Int], outputSize: Int, head: HeadKind, residual: Bool = false) {
        self.cell = cell
        self.input = input
        self.hidden = hidden
        self.outputSize = outputSize
        self.head = head
        self.residual = residual
    }

    /// Input size of layer `k`.
    public func layerInputSize(_ k: Int) -> Int { k == 0 ? input.layerInputSize : hidden[k - 1] }

    /// Hidden size of the top layer.
    public var topHidden: Int { hidden[hidden.count - 1] }

    /// Floats of recurrent state one stream carries: h for every layer, and c as well for LSTM.
    public var stateSize: Int { hidden.reduce(0, +) * (cell == .lstm ? 2 : 1) }

    /// Checks the sizes; returns a description of the first problem, or nil.
    public func problem() -> String? {
        if hidden.isEmpty { return "the model has no recurrent layer" }
        if let bad = hidden.first(where: { $0 < 1 || $0 > 65_536 }) { return "hidden size \(bad) is out of range 1…65536" }
        if outputSize < 1 || outputSize > 1 << 20 { return "output size \(outputSize) is out of range" }
        switch input {
        case .features(let size):
            if size < 1 || size > 65_535 { return "input size \(size) is out of range 1…65535" }
        case .tokens(let vocabulary, let embedding):
            if vocabulary < 1 || vocabulary > 1 << 24 { return "vocabulary \(vocabulary) is out of range" }
            if embedding < 1 || embedding > 65_536 { return "embedding size \(embedding) is out of range" }
        }
        if residual {
            guard case .features(let size) = input, head == .linear, outputSize == size else {
                return "a residual head needs feature input, a linear head and as many outputs as inputs"
            }
        }
        return nil
    }
}
