/// Output kinds of wire protocol v1.
public enum WireOutputKind: UInt8, Sendable {
    /// One f32 vector of `odim` per step.
    case vector = 1
    /// `odim` = k (u32 id, f32 probability) pairs per step, most probable first.
    case topK = 2
}

/// Output flags of wire protocol v1.
public struct OutputFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The stream's state was new or reset before this message's first step.
    public static let newState = OutputFlags(rawValue: 1)
    /// A gap in the stream's seq preceded this message.
    public static let gap = OutputFlags(rawValue: 2)
    /// Anomaly scores follow the losses (n f32 in [0, 1]).
    public static let anomaly = OutputFlags(rawValue: 4)
    /// More outputs for the same input message follow (a long message answered in chunks).
    public static let more = OutputFlags(rawValue: 8)
    /// Every flag this version defines; other bits are refused.
    public static let all: OutputFlags = [.newState, .gap, .anomaly, .more]
}

/// A decoded output payload (what `recurd tail` and clients read).
public struct OutputMessage: Sendable, Equatable {
    public var kind: WireOutputKind
    public var flags: OutputFlags
    /// Floats per step, or k.
    public var odim: Int
    public var steps: Int
    /// Updates applied to the model that made these predictions (mod 2³²).
    public var modelVersion: UInt32
    public var seq: UInt64
    public var timestamp: Int64
    /// `steps × odim` predictions (vector kind), or the probabilities of the top-k pairs.
    public var values: [Float]
    /// `steps × k` ids (top-k kind).
    public var ids: [UInt32]
    /// Per step: the progressive loss of the previous prediction against the target this message
    /// revealed, NaN where none.
    public var losses: [Float]
    /// Per step, when `flags` has `.anomaly`: how surprising the step's input was, in [0, 1]
    /// (NaN where there was no prediction before it). Empty otherwise.
    public var anomaly: [Float]

    public init(kind: WireOutputKind, flags: OutputFlags, odim: Int, steps: Int, modelVersion: UInt32, seq: UInt64,
                timestamp: Int64, values: [Float], ids: [UInt32] = [], losses: [Float], anomaly: [Float] = []) {
        self.kind = kind
        self.flags = flags
        self.odim = odim
        self.steps = steps
        self.modelVersion = modelVersion
        self.seq = seq
        self.timestamp = timestamp
        self.values = values
        self.ids = ids
        self.losses = losses
        self.anomaly = anomaly
    }
}
