/// Input kinds of wire protocol v1.
public enum WireInputKind: UInt8, Sendable {
    /// One f32 vector of `xdim` per step.
    case features = 1
    /// One u32 token id per step.
    case token = 2
    /// One byte per step (text).
    case text = 3
}

/// Target kinds of wire protocol v1.
public enum WireTargetKind: UInt8, Sendable {
    case none = 0
    /// One f32 vector of `ydim` per step.
    case values = 1
    /// One u32 class id per step.
    case classIndex = 2
}

/// Input flags of wire protocol v1.
public struct WireFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Zero the stream's state before the first step; restart its numbering at this seq.
    public static let reset = WireFlags(rawValue: 1)
    /// Forget the stream after the last step.
    public static let end = WireFlags(rawValue: 2)
    /// Do not learn from these steps.
    public static let noLearn = WireFlags(rawValue: 4)
    /// Do not publish predictions for these steps.
    public static let noPredict = WireFlags(rawValue: 8)
    public static let all: WireFlags = [.reset, .end, .noLearn, .noPredict]
}

/// A decoded input payload: one or more consecutive steps of one stream.
public struct InputMessage: Sendable, Equatable {
    public var inputKind: WireInputKind
    public var targetKind: WireTargetKind
    public var flags: WireFlags
    /// Floats per step (features), else 1.
    public var xdim: Int
    /// Floats per step (value targets), 1 (class targets) or 0.
    public var ydim: Int
    public var steps: Int
    /// Seq of the first step; nil when a JSON message leaves it out (it then takes the next
    /// expected seq).
    public var seq: UInt64?
    /// Nanoseconds since the Unix epoch of the first step (0: unknown).
    public var timestamp: Int64
    /// `steps × xdim` floats (features).
    public var features: [Float]
    /// `steps` ids (token and text kinds).
    public var tokens: [UInt32]
    /// `steps × ydim` floats (value targets).
    public var targetValues: [Float]
    /// `steps` ids (class targets).
    public var targetClasses: [UInt32]

    public init(
        inputKind: WireInputKind, targetKind: WireTargetKind = .none, flags: WireFlags = [], xdim: Int, ydim: Int = 0,
        steps: Int, seq: UInt64?, timestamp: Int64 = 0, features: [Float] = [], tokens: [UInt32] = [],
        targetValues: [Float] = [], targetClasses: [UInt32] = []
    ) {
        self.inputKind = inputKind
        self.targetKind = targetKind
        self.flags = flags
        self.xdim = xdim
        self.ydim = ydim
        self.steps = steps
        self.seq = seq
        self.timestamp = timestamp
        self.features = features
        self.tokens = tokens
        self.targetValues = targetValues
        self.targetClasses = targetClasses
    }
}
