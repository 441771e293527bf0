/// One stream's TBPTT window (DESIGN §3.2): the last `k2` entries (x_t, y_t, s_{t−1}) in a
/// preallocated ring, and the count of entries since the stream's last update.
///
/// An update needs the saved state of its window's *first* entry only. Updates come every k1
/// entries (counted from the window's last `clear`), so the first entry at an update is always
/// one of appends 1, k1 − k2 + 1, 2·k1 − k2 + 1, …; only those entries keep their state, which
/// spares a state copy on all the others.
public final class StreamWindow {
    public let capacity: Int
    /// Entries between updates (k1).
    public let stride: Int
    let inputSize: Int
    let targetSize: Int
    let stateSize: Int
    let tokenInput: Bool
    let classTarget: Bool

    private let inputs: FloatBuffer
    private var tokens: [Int32]
    private let targets: FloatBuffer
    private var classes: [Int32]
    private let states: FloatBuffer
    /// Ring position of the oldest entry.
    private var start = 0
    /// Entries held (≤ capacity).
    public private(set) var count = 0
    /// Entries added since the last update.
    public var pending = 0
    /// Entries added since the last `clear`.
    private var appended = 0

    public init(architecture: ModelArchitecture, capacity: Int, stride: Int) {
        precondition(capacity >= 1 && stride >= 1)
        self.capacity = capacity
        self.stride = stride
        if case .tokens = architecture.input { tokenInput = true; inputSize = 0 } else { tokenInput = false; inputSize = architecture.input.layerInputSize }
        classTarget = architecture.head == .softmax
        targetSize = classTarget ? 0 : architecture.outputSize
        stateSize = architecture.stateSize
        inputs = FloatBuffer(count: capacity * inputSize)
        tokens = Array(repeating: 0, count: tokenInput ? capacity : 0)
        targets = FloatBuffer(count: capacity * targetSize)
        classes = Array(repeating: 0, count: classTarget ? capacity : 0)
        states = FloatBuffer(count: capacity * stateSize)
    }

    /// Empties the window (stream reset).
    public func clear() { start = 0; count = 0; pending = 0; appended = 0 }

    /// Whether the next entry can become the first of a window at an update, so that its state
    /// must be kept.
    public var nextEntryNeedsState: Bool {
        let a = appended + 1
        return a == 1 || (a + capacity - 1) % stride == 0
    }

    /// Appends an entry, evicting the oldest when full. Exactly one of `features`/`token` and one
    /// of `targetValues`/`targetClass` is used, per the model's input and head. `stateBefore` is
    /// read only when `nextEntryNeedsState` was true.
    public func append(features: UnsafePointer<Float>?, token: Int32, targetValues: UnsafePointer<Float>?, targetClass: Int32,
                       stateBefore: UnsafePointer<Float>) {
        let keepState = nextEntryNeedsState
        appended += 1
        let slot: Int
        if count < capacity {
            slot = (start + count) % capacity
            count += 1
        } else {
            slot = start
            start = (start + 1) % capacity
        }
        if tokenInput { tokens[slot] = token } else { (inputs.pointer + slot * inputSize).update(from: features!, count: inputSize) }
        if classTarget { classes[slot] = targetClass } else { (targets.pointer + slot * targetSize).update(from: targetValues!, count: targetSize) }
        if keepState { (states.pointer + slot * stateSize).update(from: stateBefore, count: stateSize) }
        pending += 1
    }

    @inline(__always) private func slot(_ i: Int) -> Int { (start + i) % capacity }

    fileprivate func copyStorage(from other: StreamWindow) {
        inputs.copy(from: other.inputs)
        tokens = other.tokens
        targets.copy(from: other.targets)
        classes = other.classes
        states.copy(from: other.states)
        start = other.start
        count = other.count
        pending = other.pending
        appended = other.appended
    }

    /// Loads this window (oldest first) into window `w` of `engine`, which has `begin` called.
    func load(into engine: WindowEngine, window w: Int) {
        engine.setInitialState(window: w, from: states.pointer + slot(0) * stateSize)
        for i in 0..<count {
            let s = slot(i)
            if tokenInput { engine.setToken(step: i, window: w, tokens[s]) } else { engine.setFeatures(step: i, window: w, inputs.pointer + s * inputSize) }
            if classTarget { engine.setTarget(step: i, window: w, classIndex: classes[s]) } else { engine.setTarget(step: i, window: w, values: targets.pointer + s * targetSize) }
        }
    }
}

extension StreamWindow {
    /// Makes this window a copy of `other` (same model and capacity): a snapshot handed to the
    /// background trainer while the stream's own window keeps filling.
    public func copy(from other: StreamWindow) {
        precondition(other.capacity == capacity && other.stateSize == stateSize && other.stride == stride)
        copyStorage(from: other)
    }
}
