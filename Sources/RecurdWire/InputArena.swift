/// A decoded message's shape and where its values sit in an `InputArena`.
public struct InputHeader: Sendable, Equatable {
    public var inputKind: WireInputKind
    public var targetKind: WireTargetKind
    public var flags: WireFlags
    public var xdim: Int
    public var ydim: Int
    public var steps: Int
    /// Nil when a JSON message leaves it out (it then takes the next expected seq).
    public var seq: UInt64?
    public var timestamp: Int64
    /// Offsets of this message's values in the arena's arrays.
    public var featureOffset = 0
    public var tokenOffset = 0
    public var targetValueOffset = 0
    public var targetClassOffset = 0

    /// Bytes its decoded values take in an arena: inputs (features, or one u32 token a step) and
    /// targets, 4 bytes each.
    public var valueBytes: Int {
        let inputs = inputKind == .features ? steps * xdim : steps
        let targets = switch targetKind {
        case .none: 0
        case .values: steps * ydim
        case .classIndex: steps
        }
        return 4 * (inputs + targets)
    }
}

/// Reusable storage that decoded messages append their values to, so that decoding a batch of
/// messages allocates nothing once the arrays have grown (the daemon clears it every cycle).
public struct InputArena: Sendable {
    public var features: [Float] = []
    public var tokens: [UInt32] = []
    public var targetValues: [Float] = []
    public var targetClasses: [UInt32] = []

    public init() {}

    /// Bytes its arrays have room for (kept across `removeAll`).
    public var capacityBytes: Int { 4 * (features.capacity + tokens.capacity + targetValues.capacity + targetClasses.capacity) }

    public mutating func removeAll() {
        features.removeAll(keepingCapacity: true)
        tokens.removeAll(keepingCapacity: true)
        targetValues.removeAll(keepingCapacity: true)
        targetClasses.removeAll(keepingCapacity: true)
    }

    /// Marks the current lengths, to roll back a message that fails half-way.
    struct Mark { let f, t, tv, tc: Int }
    var mark: Mark { Mark(f: features.count, t: tokens.count, tv: targetValues.count, tc: targetClasses.count) }
    mutating func rollBack(to m: Mark) {
        features.removeLast(features.count - m.f)
        tokens.removeLast(tokens.count - m.t)
        targetValues.removeLast(targetValues.count - m.tv)
        targetClasses.removeLast(targetClasses.count - m.tc)
    }

    /// Appends a whole decoded message; returns its header with offsets.
    mutating func append(_ m: InputMessage) -> InputHeader {
        let h = InputHeader(inputKind: m.inputKind, targetKind: m.targetKind, flags: m.flags, xdim: m.xdim, ydim: m.ydim, steps: m.steps,
                            seq: m.seq, timestamp: m.timestamp, featureOffset: features.count, tokenOffset: tokens.count,
                            targetValueOffset: targetValues.count, targetClassOffset: targetClasses.count)
        features += m.features
        tokens += m.tokens
        targetValues += m.targetValues
        targetClasses += m.targetClasses
        return h
    }

    /// The message back as a standalone value.
    public func message(_ h: InputHeader) -> InputMessage {
        let nf = h.inputKind == .features ? h.steps * h.xdim : 0
        let nt = h.inputKind == .features ? 0 : h.steps
        let nv = h.targetKind == .values ? h.steps * h.ydim : 0
        let nc = h.targetKind == .classIndex ? h.steps : 0
        return InputMessage(inputKind: h.inputKind, targetKind: h.targetKind, flags: h.flags, xdim: h.xdim, ydim: h.ydim, steps: h.steps,
                            seq: h.seq, timestamp: h.timestamp, features: Array(features[h.featureOffset..<(h.featureOffset + nf)]),
                            tokens: Array(tokens[h.tokenOffset..<(h.tokenOffset + nt)]),
                            targetValues: Array(targetValues[h.targetValueOffset..<(h.targetValueOffset + nv)]),
                            targetClasses: Array(targetClasses[h.targetClassOffset..<(h.targetClassOffset + nc)]))
    }
}
