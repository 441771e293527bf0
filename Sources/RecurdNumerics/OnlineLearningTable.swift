/// DESIGN §3's per-stream bookkeeping for many streams in preallocated slots: the last
/// prediction (for the progressive loss of next-step targets), the TBPTT window, the state and
/// input of the previous step, and the optional running standardisation.
///
/// Both `recurd fit` (one slot) and the daemon (one slot per stream) drive it the same way, so
/// that the daemon with `--sync-learning` and one stream gives exactly what `fit` gives:
///
/// 1. `prepare` before step t is predicted: standardise x_t; with next-step targets, resolve the
///    previous step's target (progressive loss; the entry (x_{t−1}, x_t, s_{t−2}) joins the
///    window; the window is due after k1 new entries); remember s_{t−1} and x_t.
/// 2. The caller runs any due update, then predicts step t.
/// 3. `finish` after the prediction: keep its logits; with an explicit target, resolve it now
///    (loss; the entry (x_t, y_t, s_{t−1}) joins the window).
public final class OnlineLearningTable {
    public let architecture: ModelArchitecture
    public let capacity: Int
    /// nil: no learning (windows and previous states are not kept).
    public let learning: LearningConfiguration?
    /// The next step's input is the target of each step (when the model allows it).
    public let nextStepTargets: Bool
    /// Feature streams are standardised per stream (see `RunningStandardizer`).
    public let standardize: Bool

    private let outputs: Int
    private let inputSize: Int
    private let stateSize: Int
    private let tokenInput: Bool

    /// (capacity, O)
    private let lastLogits: FloatBuffer
    private var hasPrediction: [Bool]
    /// (capacity, stateSize): state before the latest step.
    private let previousState: FloatBuffer
    /// (capacity, In): the latest step's (standardised) input.
    private let previousInput: FloatBuffer
    private var previousToken: [Int32]
    private var previousLearnable: [Bool]
    private var windows: [StreamWindow?]
    private var standardCount: [Double]
    private let standardMean: UnsafeMutablePointer<Double>
    private let standardM2: UnsafeMutablePointer<Double>
    /// (O) scratch for the loss.
    private let lossScratch: FloatBuffer
    /// Slots whose window has k1 new entries, in the order they became due.
    public private(set) var due: [Int] = []
    private var isDue: [Bool]

    public init(architecture: ModelArchitecture, capacity: Int, learning: LearningConfiguration?, nextStepTargets: Bool, standardize: Bool) {
        self.architecture = architecture
        self.capacity = capacity
        self.learning = learning
        self.nextStepTargets = nextStepTargets && OnlineLearner.nextStepProblem(architecture) == nil
        if case .tokens = architecture.input { tokenInput = true } else { tokenInput = false }
        self.standardize = standardize && !tokenInput && architecture.head == .linear && OnlineLearner.nextStepProblem(architecture) == nil
        outputs = architecture.outputSize
        inputSize = tokenInput ? 0 : architecture.input.layerInputSize
        stateSize = architecture.stateSize
        let learns = learning != nil
        lastLogits = FloatBuffer(count: capacity * outputs)
        hasPrediction = Array(repeating: false, count: capacity)
        previousState = FloatBuffer(count: learns ? capacity * stateSize : 0)
        previousInput = FloatBuffer(count: learns ? capacity * inputSize : 0)
        previousToken = Array(repeating: 0, count: learns && tokenInput ? capacity : 0)
        previousLearnable = Array(repeating: false, count: capacity)
        windows = Array(repeating: nil, count: learns ? capacity : 0)
        let statistics = self.standardize ? capacity * inputSize : 0
        standardCount = Array(repeating: 0, count: self.standardize ? capacity : 0)
        standardMean = .allocate(capacity: max(statistics, 1))
        standardMean.initialize(repeating: 0, count: max(statistics, 1))
        standardM2 = .allocate(capacity: max(statistics, 1))
        standardM2.initialize(repeating: 0, count: max(statistics, 1))
        isDue = Array(repeating: false, count: capacity)
        lossScratch = FloatBuffer(count: outputs)
    }

    deinit {
        standardMean.deallocate()
        standardM2.deallocate()
    }

    /// A new stream in `slot`, or a RESET: no prediction pending, empty window, fresh statistics.
    public func reset(_ slot: Int) {
        hasPrediction[slot] = false
        previousLearnable[slot] = false
        if windows.indices.contains(slot) { windows[slot]?.clear() }
        if isDue[slot] { isDue[slot] = false; due.removeAll { $0 == slot } }
        if standardize {
            standardCount[slot] = 0
            (standardMean + slot * inputSize).update(repeating: 0, count: inputSize)
            (standardM2 + slot * inputSize).update(repeating: 0, count: inputSize)
        }
    }

    /// The slot's window (created on first use).
    public func window(_ slot: Int) -> StreamWindow {
        if let w = windows[slot] { return w }
        let w = StreamWindow(architecture: architecture, capacity: learning!.k2, stride: learning!.k1)
        windows[slot] = w
        return w
    }

    /// Whether the slot's last prediction awaits a next-step target.
    public func awaitsTarget(_ slot: Int) -> Bool { hasPrediction[slot] }

    // MARK: Step t

    /// Before step t: standardises the features into `modelInput` (the engine's row) and, with
    /// next-step targets, resolves the previous prediction's target. Returns its progressive
    /// loss, if one was resolved.
    ///
    /// - `features`: x_t in the stream's units (nil for token input, which passes `token`).
    /// - `stateBefore`: s_{t−1}. `explicitTarget`: step t carries its own target.
    /// - `learnable`: step t may enter the window (not NO_LEARN, learning on).
    public func prepare(slot: Int, features: UnsafePointer<Float>?, token: Int32, modelInput: UnsafeMutablePointer<Float>?,
                        stateBefore: UnsafePointer<Float>, explicitTarget: Bool, learnable: Bool) -> Float? {
        var x: UnsafePointer<Float>? = features
        if let features, let modelInput {
            if standardize {
                RunningStandardizer.observe(features, into: modelInput, count: &standardCount[slot], mean: standardMean + slot * inputSize,
                                            m2: standardM2 + slot * inputSize, n: inputSize)
            } else {
                modelInput.update(from: features, count: inputSize)
            }
            x = UnsafePointer(modelInput)
        }
        var loss: Float?
        if hasPrediction[slot] && !explicitTarget {
            // x_t is the target of step t−1.
            loss = Loss.value(architecture.head, logits: lastLogits.pointer + slot * outputs, count: outputs, values: x, classIndex: Int(token),
                              scratch: lossScratch.pointer)
            if learning != nil && previousLearnable[slot] {
                append(slot, features: previousInput.pointer + slot * inputSize, token: tokenInput ? previousToken[slot] : 0,
                       targetValues: x, targetClass: token, stateBefore: previousState.pointer + slot * stateSize)
            }
        }
        hasPrediction[slot] = false
        if learning != nil {
            // s_{t−1} is kept only if step t's entry can start a window (see `StreamWindow`).
            if learnable && window(slot).nextEntryNeedsState {
                (previousState.pointer + slot * stateSize).update(from: stateBefore, count: stateSize)
            }
            if tokenInput { previousToken[slot] = token } else if let x { (previousInput.pointer + slot * inputSize).update(from: x, count: inputSize) }
            previousLearnable[slot] = learnable
        }
        return loss
    }

    /// After step t's prediction (`logits`). With an explicit target (`targetValues` in the
    /// stream's units, or `targetClass`), resolves it and returns the progressive loss.
    public func finish(slot: Int, logits: UnsafePointer<Float>, explicitTarget: Bool, targetValues: UnsafePointer<Float>?,
                       targetClass: Int32, scratch: UnsafeMutablePointer<Float>) -> Float? {
        guard explicitTarget else {
            (lastLogits.pointer + slot * outputs).update(from: logits, count: outputs)
            hasPrediction[slot] = nextStepTargets
            return nil
        }
        var y = targetValues
        if let targetValues, standardize {
            RunningStandardizer.standardize(targetValues, into: scratch, count: standardCount[slot], mean: standardMean + slot * inputSize,
                                            m2: standardM2 + slot * inputSize, n: inputSize)
            y = UnsafePointer(scratch)
        }
        let loss = Loss.value(architecture.head, logits: logits, count: outputs, values: y, classIndex: Int(targetClass), scratch: lossScratch.pointer)
        if learning != nil && previousLearnable[slot] {
            append(slot, features: previousInput.pointer + slot * inputSize, token: tokenInput ? previousToken[slot] : 0,
                   targetValues: y, targetClass: targetClass, stateBefore: previousState.pointer + slot * stateSize)
            previousLearnable[slot] = false
        }
        return loss
    }

    /// Writes the slot's prediction in the stream's units (destandardised when standardising).
    public func publishable(slot: Int, outputs p: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        if standardize {
            RunningStandardizer.destandardize(p, into: y, count: standardCount[slot], mean: standardMean + slot * inputSize,
                                              m2: standardM2 + slot * inputSize, n: inputSize)
        } else {
            y.update(from: p, count: outputs)
        }
    }

    /// Moves the due slots into `slots` (replacing its contents, keeping its storage); their
    /// windows' `pending` is left to the update to clear.
    public func takeDue(into slots: inout [Int]) {
        slots.removeAll(keepingCapacity: true)
        swap(&slots, &due)
        for s in slots { isDue[s] = false }
    }

    private func append(_ slot: Int, features: UnsafePointer<Float>, token: Int32, targetValues: UnsafePointer<Float>?, targetClass: Int32,
                        stateBefore: UnsafePointer<Float>) {
        let w = window(slot)
        w.append(features: features, token: token, targetValues: targetValues, targetClass: targetClass, stateBefore: stateBefore)
        if w.pending >= learning!.k1 && !isDue[slot] {
            isDue[slot] = true
            due.append(slot)
        }
    }
}
