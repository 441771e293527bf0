/// Where one stream's TBPTT window (DESIGN §3.2) lives in a block of memory its owner provides:
/// a stream record's window section, or a trainer's job buffer.
///
/// ```
/// header   32 bytes   appended (u64), start, length, pending, broken (u32), kept (u32), pad
/// inputs   inputCapacity × (inputSize f32 | one i32 token)      ring, oldest at `start`
/// targets  k2 × (targetSize f32 | one i32 class)                explicit targets only
/// labels   k2 × u8: 1 when the entry has a target                explicit targets only
/// tags     savedStates × u64                                   which entry each saved state is
/// states   savedStates × stateSize f32                          s_{t−1} of the entries an update can start from
/// ```
///
/// Two target forms:
/// - *implied* (next-step targets): an entry's target is the next entry's input, so the ring
///   keeps the sequence of the last k2 + 1 inputs and no targets at all;
/// - *explicit*: k2 inputs and k2 targets. A learnable step sent without a target is an entry
///   too (label 0): the window stays a run of consecutive steps, and an update's loss is over
///   the labelled entries among its loss steps (none: no update).
///
/// An update starts from the saved state of its window's first entry only. Updates come every k1
/// entries counted from the last clear, so the first entry at an update is always entry 1 or an
/// entry `a` with `(a + k2 − 1) % k1 == 0`; at most `(k2 − 1) / k1 + 1` of them are alive at once,
/// so that many states are kept instead of k2 (a 64-unit LSTM with k1 16, k2 32 keeps 2, not 32).
public struct WindowLayout: Sendable, Equatable {
    public let k1: Int
    public let k2: Int
    public let stateSize: Int
    /// Floats per input (0 for token input).
    public let inputSize: Int
    public let tokenInput: Bool
    /// Next-step targets: entry i's target is entry i + 1's input.
    public let impliedTargets: Bool
    /// Floats per explicit target (0 for class targets or implied targets).
    public let targetSize: Int
    public let classTarget: Bool
    /// Saved states kept (see above).
    public let savedStates: Int
    /// Inputs held: k2 + 1 (implied) or k2.
    public let inputCapacity: Int

    static let headerBytes = 32
    /// Token ids below this (the vocabulary; token input) and class ids below this (the outputs;
    /// class targets): a stored window holding others is damaged.
    let tokenLimit: Int
    let classLimit: Int
    let inputStride: Int
    let targetStride: Int
    let inputsOffset: Int
    let targetsOffset: Int
    let labelsOffset: Int
    let tagsOffset: Int
    let statesOffset: Int
    /// Bytes of one window.
    public let byteCount: Int
    /// What `byteCount` was before the labels section existed: stored records' window descriptors
    /// keep it, so that windows written before it read back (their compact form is unchanged).
    public var descriptorByteCount: Int { ((((labelsOffset + 7) & ~7) + savedStates * (8 + stateSize * 4)) + 15) & ~15 }

    /// The window of a model with `architecture`; `impliedTargets` for next-step targets (the
    /// model must allow them: `OnlineLearner.nextStepProblem` is nil).
    public init(architecture a: ModelArchitecture, k1: Int, k2: Int, impliedTargets: Bool) {
        precondition(k1 >= 1 && k2 >= 1)
        self.init(architecture: a, k1: k1, k2: k2, impliedTargets: impliedTargets, savedStates: (k2 - 1) / k1 + 1)
    }

    /// A window keeping `savedStates` states (tests compare against one that keeps every state).
    public init(architecture a: ModelArchitecture, k1: Int, k2: Int, impliedTargets: Bool, savedStates: Int) {
        self.k1 = k1
        self.k2 = k2
        stateSize = a.stateSize
        if case .tokens = a.input { tokenInput = true; inputSize = 0 } else { tokenInput = false; inputSize = a.input.layerInputSize }
        self.impliedTargets = impliedTargets
        classTarget = a.head == .softmax
        targetSize = impliedTargets || classTarget ? 0 : a.outputSize
        self.savedStates = savedStates
        inputCapacity = impliedTargets ? k2 + 1 : k2
        if case .tokens(let vocabulary, _) = a.input { tokenLimit = vocabulary } else { tokenLimit = 0 }
        classLimit = a.outputSize
        inputStride = tokenInput ? 4 : inputSize * 4
        targetStride = impliedTargets ? 0 : (classTarget ? 4 : targetSize * 4)
        inputsOffset = Self.headerBytes
        targetsOffset = inputsOffset + inputCapacity * inputStride
        labelsOffset = targetsOffset + (impliedTargets ? 0 : k2 * targetStride)
        let tags = labelsOffset + (impliedTargets ? 0 : k2)
        tagsOffset = (tags + 7) & ~7
        statesOffset = tagsOffset + savedStates * 8
        byteCount = (statesOffset + savedStates * stateSize * 4 + 15) & ~15
    }

    /// Whether entry `a` (1-based, counted from the last clear) can be the first entry of a
    /// window at an update.
    @inline(__always)
    public func canStartWindow(_ a: UInt64) -> Bool {
        a == 1 || (a &+ UInt64(k2) &- 1) % UInt64(k1) == 0
    }
}
