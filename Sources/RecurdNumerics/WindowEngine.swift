/// The windowed forward pass and backpropagation through time for a batch of windows: the
/// training path of DESIGN §3.3.
///
/// A call covers `windows` windows of the same length `length`, each starting from its own saved
/// state. Rows are time-major (row = t·windows + w), so every product that does not depend on
/// the recurrence — the input projection, the head, all weight gradients — is one matrix product
/// over all steps of all windows; only `h·W_hhᵀ` forward and `δ·W_hh` backward run step by step.
///
/// Usage: `begin`, set the initial states, inputs and targets, then `forward`, `loss`, `backward`.
public final class WindowEngine {
    public let layout: ParameterLayout
    public let maxWindows: Int
    public let maxLength: Int
    private var architecture: ModelArchitecture { layout.architecture }

    public private(set) var windows = 0
    public private(set) var length = 0
    /// Steps at the end of each window that carry loss: min(k1, length).
    public private(set) var lossSteps = 0

    /// (T·W, In_0) layer-0 input.
    private let input: FloatBuffer
    private var tokens: [Int32]
    /// Per layer ((T+1)·W, H_k): h_{−1} (the saved state) then h_0 … h_{T−1}.
    private let hs: [FloatBuffer]
    /// Per layer ((T+1)·W, H_k), LSTM only.
    private let cs: [FloatBuffer]
    /// Per layer (T·W, H_k), LSTM only: tanh(c_t), kept by the forward pass for the backward one.
    private let tanhCs: [FloatBuffer]
    /// Per layer (T·W, G·H_k): pre-activations, then activated gates (GRU: input part).
    private let gates: [FloatBuffer]
    /// Per layer (T·W, 3·H_k), GRU recurrent part.
    private let recurrentGates: [FloatBuffer]
    /// Per layer (T·W, G·H_k): ∂L/∂ gate pre-activations (GRU: input part).
    private let dGates: [FloatBuffer]
    /// Per layer (T·W, 3·H_k): GRU ∂L/∂ recurrent part.
    private let dRecurrentGates: [FloatBuffer]
    /// Per layer (T·W, H_k): ∂L/∂h_t from above (the head, or the next layer's input).
    private let dHidden: [FloatBuffer]
    /// (W, H_max) scratch carried backward through time.
    private let dhNext: FloatBuffer
    private let dcNext: FloatBuffer
    /// (T·W, E): ∂L/∂ embedding rows, token models.
    private let dInput: FloatBuffer
    /// (T·W, O) logits of every step (only the loss steps are computed during training).
    private let logitBuffer: FloatBuffer
    private let dLogits: FloatBuffer
    /// (T·W, O) float targets, or class ids.
    private let targetValues: FloatBuffer
    private var targetClasses: [Int32]
    /// Rows (t·W + w) whose step has no target (a partly labelled window): no loss there.
    private var unlabelled: [Bool]
    private var anyUnlabelled = false
    /// Per window: its loss steps that have a target (filled by `loss` when some have none).
    private var labelledSteps: [Int]
    /// (O) scratch for the loss.
    private let lossScratch: FloatBuffer
    /// Per layer: W_hh rearranged once per forward for the step-by-step product h·W_hhᵀ.
    /// Several windows: W_hhᵀ (H_k, G·H_k), which the GEMM reads as its B operand in place
    /// instead of repacking W_hh at every step (13 µs against 17 µs a step for 32 windows of a
    /// 64-unit LSTM on Zen 3). One window: W_hh tile-packed for the matrix–vector product, one
    /// sequential stream from L2 instead of eight row streams (512 × 128: 4.1 → 3.0 µs a step on
    /// Zen 3), equal bit for bit.
    private let recurrentCopy: [FloatBuffer]

    public init(layout: ParameterLayout, maxWindows: Int, maxLength: Int) {
        precondition(maxWindows >= 1 && maxLength >= 1)
        self.layout = layout
        self.maxWindows = maxWindows
        self.maxLength = maxLength
        let arch = layout.architecture
        let rows = maxWindows * maxLength
        let g = arch.cell.gateCount
        let isLSTM = arch.cell == .lstm
        input = FloatBuffer(count: rows * arch.input.layerInputSize)
        tokens = Array(repeating: 0, count: rows)
        hs = arch.hidden.map { FloatBuffer(count: (maxLength + 1) * maxWindows * $0) }
        cs = arch.hidden.map { FloatBuffer(count: isLSTM ? (maxLength + 1) * maxWindows * $0 : 0) }
        tanhCs = arch.hidden.map { FloatBuffer(count: isLSTM ? rows * $0 : 0) }
        gates = arch.hidden.map { FloatBuffer(count: rows * g * $0) }
        recurrentGates = arch.hidden.map { FloatBuffer(count: isLSTM ? 0 : rows * g * $0) }
        dGates = arch.hidden.map { FloatBuffer(count: rows * g * $0) }
        dRecurrentGates = arch.hidden.map { FloatBuffer(count: isLSTM ? 0 : rows * g * $0) }
        dHidden = arch.hidden.map { FloatBuffer(count: rows * $0) }
        let hMax = arch.hidden.max() ?? 0
        dhNext = FloatBuffer(count: maxWindows * hMax)
        dcNext = FloatBuffer(count: maxWindows * hMax)
        if case .tokens(_, let e) = arch.input { dInput = FloatBuffer(count: rows * e) } else { dInput = FloatBuffer(count: 0) }
        logitBuffer = FloatBuffer(count: rows * arch.outputSize)
        dLogits = FloatBuffer(count: rows * arch.outputSize)
        targetValues = FloatBuffer(count: rows * arch.outputSize)
        targetClasses = Array(repeating: 0, count: rows)
        unlabelled = Array(repeating: false, count: rows)
        labelledSteps = Array(repeating: 0, count: maxWindows)
        lossScratch = FloatBuffer(count: arch.outputSize)
        recurrentCopy = arch.hidden.map { n in
            FloatBuffer(count: max(maxWindows > 1 ? g * n * n : 0, Kernels.packedMatvecSize(rows: g * n, cols: n)))
        }
    }

    /// Starts a batch of `windows` windows of `length` steps; the last `lossSteps` steps carry loss.
    public func begin(windows: Int, length: Int, lossSteps: Int) {
        precondition(windows >= 1 && windows <= maxWindows, "windows \(windows) outside 1…\(maxWindows)")
        precondition(length >= 1 && length <= maxLength, "length \(length) outside 1…\(maxLength)")
        precondition(lossSteps >= 1 && lossSteps <= length)
        if anyUnlabelled {
            for r in 0..<(self.windows * self.length) { unlabelled[r] = false }   // the rows the last batch used
            anyUnlabelled = false
        }
        self.windows = windows
        self.length = length
        self.lossSteps = lossSteps
    }

    /// Loads window `w`'s saved initial state (packed as in `StepEngine`).
    public func setInitialState(window w: Int, from state: UnsafePointer<Float>) {
        var offset = 0
        for k in 0..<hs.count {
            let n = architecture.hidden[k]
            (hs[k].pointer + w * n).update(from: state + offset, count: n)
            offset += n
            if architecture.cell == .lstm {
                (cs[k].pointer + w * n).update(from: state + offset, count: n)
                offset += n
            }
        }
    }

    /// Sets the feature input of step `t` of window `w`.
    public func setFeatures(step t: Int, window w: Int, _ values: UnsafePointer<Float>) {
        let n = architecture.input.layerInputSize
        (input.pointer + (t * windows + w) * n).update(from: values, count: n)
    }

    /// Sets the token input of step `t` of window `w`.
    public func setToken(step t: Int, window w: Int, _ id: Int32) { tokens[t * windows + w] = id }

    /// Sets a float target (O values) of step `t` of window `w`.
    public func setTarget(step t: Int, window w: Int, values: UnsafePointer<Float>) {
        let o = architecture.outputSize
        (targetValues.pointer + (t * windows + w) * o).update(from: values, count: o)
    }

    /// Sets a class-id target of step `t` of window `w`.
    public func setTarget(step t: Int, window w: Int, classIndex: Int32) { targetClasses[t * windows + w] = classIndex }
    /// Step `t` of window `w` has no target: it carries no loss, and a window's loss is the mean
    /// over its loss steps that have one (each window needs at least one).
    public func setNoTarget(step t: Int, window w: Int) {
        unlabelled[t * windows + w] = true
        anyUnlabelled = true
    }

    /// The logits of step `t` of window `w` after `forward` (loss steps, or all with `allSteps`).
    public func logits(step t: Int, window w: Int) -> UnsafePointer<Float> {
        UnsafePointer(logitBuffer.pointer + (t * windows + w) * architecture.outputSize)
    }

    // MARK: Forward

    /// Runs the window forward with `weights`, keeping what backward needs. The head runs on the
    /// loss steps, or on every step when `allSteps` (tests compare it with the step-wise path).
    public func forward(weights: UnsafePointer<Float>, allSteps: Bool = false) {
        let arch = architecture
        let g = arch.cell.gateCount
        let W = windows, T = length
        var x = UnsafePointer(input.pointer)
        if case .tokens(_, let e) = arch.input, let embed = layout.embed {
            for r in 0..<(T * W) {
                (input.pointer + r * e).update(from: weights + embed + Int(tokens[r]) * e, count: e)
            }
        }
        for k in 0..<arch.hidden.count {
            let n = arch.hidden[k], gn = g * n
            let slots = layout.layers[k]
            let gatesP = gates[k].pointer, hP = hs[k].pointer
            Kernels.gemm(transB: true, m: T * W, n: gn, k: slots.inputSize, a: x, lda: slots.inputSize,
                         b: weights + slots.weightIH, ldb: slots.blockStride, beta: 0, c: gatesP, ldc: gn)
            let packed = W == 1 && Kernels.packedMatvecAvailable
            if W > 1 {
                Kernels.transpose(weights + slots.weightHH, rows: gn, cols: n, ld: slots.blockStride, into: recurrentCopy[k].pointer)
            } else if packed {
                Kernels.packForMatvec(weights + slots.weightHH, rows: gn, cols: n, ldw: slots.blockStride, into: recurrentCopy[k].pointer)
            }
            for t in 0..<T {
                let hPrev = hP + t * W * n, hOut = hP + (t + 1) * W * n
                let gt = gatesP + t * W * gn
                let rt = arch.cell == .lstm ? gt : recurrentGates[k].pointer + t * W * gn
                recurrentProduct(weights + slots.weightHH, copy: recurrentCopy[k].pointer, packed: packed, hidden: n, ldw: slots.blockStride,
                                 h: hPrev, into: rt, accumulate: arch.cell == .lstm)
                for w in 0..<W {
                    if arch.cell == .lstm {
                        let cP = cs[k].pointer
                        LSTMCell.forward(hidden: n, gates: gt + w * gn, biasIH: weights + slots.biasIH, biasHH: weights + slots.biasHH,
                                         cPrev: cP + (t * W + w) * n, cOut: cP + ((t + 1) * W + w) * n, hOut: hOut + w * n,
                                         tanhC: tanhCs[k].pointer + (t * W + w) * n)
                    } else {
                        GRUCell.forward(hidden: n, gi: gt + w * gn, gh: rt + w * gn, biasIH: weights + slots.biasIH,
                                        biasHH: weights + slots.biasHH, hPrev: hPrev + w * n, hOut: hOut + w * n)
                    }
                }
            }
            x = UnsafePointer(hP + W * n)
        }
        let first = allSteps ? 0 : T - lossSteps
        let o = arch.outputSize, top = arch.topHidden
        let topH = hs[hs.count - 1].pointer + (first + 1) * W * top
        let logitsP = logitBuffer.pointer + first * W * o
        Kernels.gemm(transB: true, m: (T - first) * W, n: o, k: top, a: topH, lda: top,
                     b: weights + layout.headWeight, ldb: top, beta: 0, c: logitsP, ldc: o)
        for r in 0..<((T - first) * W) { Kernels.add(weights + layout.headBias, logitsP + r * o, count: o) }
        // The residual's skip adds the step's own input; no parameter is on that path, so
        // backward is unchanged.
        if arch.residual {
            let inputSize = arch.input.layerInputSize
            for r in 0..<((T - first) * W) { Kernels.add(UnsafePointer(input.pointer + (first * W + r) * inputSize), logitsP + r * o, count: o) }
        }
    }

    /// h·W_hhᵀ for the W rows of one step: a matrix–vector product for a single window (from
    /// the packed `copy` when `packed`), else a product with W_hhᵀ (`copy`, H × G·H) as it is
    /// laid out.
    @inline(__always)
    private func recurrentProduct(_ whh: UnsafePointer<Float>, copy: UnsafePointer<Float>, packed: Bool, hidden n: Int, ldw: Int,
                                  h: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let gn = architecture.cell.gateCount * n
        if windows > 1 {
            Kernels.gemm(m: windows, n: gn, k: n, a: h, lda: n, b: copy, ldb: gn, beta: accumulate ? 1 : 0, c: out, ldc: gn)
        } else if packed {
            Kernels.packedMatvec(copy, rows: gn, cols: n, h, out, accumulate: accumulate)
        } else {
            Kernels.matvec(whh, rows: gn, cols: n, ldw: ldw, h, out, accumulate: accumulate)
        }
    }

    // MARK: Loss

    /// Computes L on the loss steps after `forward` and sets ∂(lossScale·ΣL)/∂logits.
    /// Returns Σ over windows of each window's mean L over its loss steps. A window with loss
    /// steps that have no target (`setNoTarget`) takes the mean over the n that have one: their
    /// weight is lossScale·lossSteps / n.
    public func loss(lossScale: Float) -> Double {
        let arch = architecture
        let o = arch.outputSize, W = windows
        let first = length - lossSteps
        dLogits.pointer.update(repeating: 0, count: length * W * o)
        if anyUnlabelled {
            for w in 0..<W {
                labelledSteps[w] = 0
                for t in first..<length where !unlabelled[t * W + w] { labelledSteps[w] += 1 }
            }
        }
        var total = 0.0
        for t in first..<length {
            for w in 0..<W {
                let r = t * W + w
                // Fully labelled windows (all of them, without `setNoTarget`) take lossScale as it is.
                let n = anyUnlabelled ? labelledSteps[w] : lossSteps
                if anyUnlabelled && unlabelled[r] { continue }
                let l = Loss.accumulate(arch.head, logits: logitBuffer.pointer + r * o, count: o,
                                        values: targetValues.pointer + r * o, classIndex: Int(targetClasses[r]),
                                        weight: n == lossSteps ? lossScale : lossScale * Float(lossSteps) / Float(n),
                                        gradient: dLogits.pointer + r * o, scratch: lossScratch.pointer)
                total += n == lossSteps ? Double(l) : Double(l) * Double(lossSteps) / Double(n)
            }
        }
        return total / Double(lossSteps)
    }

    // MARK: Backward

    /// Backpropagates through the whole window and adds every parameter's gradient into
    /// `gradients` (a flat vector in `layout`). No gradient flows into the initial states.
    public func backward(weights: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>) {
        let arch = architecture
        let g = arch.cell.gateCount
        let W = windows, T = length, L = lossSteps
        let o = arch.outputSize, top = arch.topHidden
        let topLayer = arch.hidden.count - 1
        let isLSTM = arch.cell == .lstm

        // Head.
        let dLog = dLogits.pointer + (T - L) * W * o
        let topLossH = hs[topLayer].pointer + (T - L + 1) * W * top
        Kernels.gemm(transA: true, m: o, n: top, k: L * W, a: dLog, lda: o, b: topLossH, ldb: top,
                     beta: 1, c: gradients + layout.headWeight, ldc: top)
        Kernels.addColumnSums(dLog, rows: L * W, cols: o, ld: o, into: gradients + layout.headBias)
        let dTop = dHidden[topLayer].pointer
        dTop.update(repeating: 0, count: (T - L) * W * top)
        Kernels.gemm(m: L * W, n: top, k: o, a: dLog, lda: o, b: weights + layout.headWeight, ldb: top,
                     beta: 0, c: dTop + (T - L) * W * top, ldc: top)

        for k in stride(from: topLayer, through: 0, by: -1) {
            let n = arch.hidden[k], gn = g * n
            let slots = layout.layers[k]
            let dh = dHidden[k].pointer, dA = dGates[k].pointer
            let dR = isLSTM ? dA : dRecurrentGates[k].pointer
            let hP = hs[k].pointer
            dhNext.pointer.update(repeating: 0, count: W * n)
            dcNext.pointer.update(repeating: 0, count: W * n)
            for t in stride(from: T - 1, through: 0, by: -1) {
                let dht = dh + t * W * n
                Kernels.add(dhNext.pointer, dht, count: W * n)
                for w in 0..<W {
                    if isLSTM {
                        let cP = cs[k].pointer
                        LSTMCell.backward(hidden: n, dh: dht + w * n, dc: dcNext.pointer + w * n, gates: gates[k].pointer + (t * W + w) * gn,
                                          cPrev: cP + (t * W + w) * n, tanhC: tanhCs[k].pointer + (t * W + w) * n, dGates: dA + (t * W + w) * gn)
                    } else {
                        GRUCell.backward(hidden: n, dh: dht + w * n, gi: gates[k].pointer + (t * W + w) * gn,
                                         gh: recurrentGates[k].pointer + (t * W + w) * gn, hPrev: hP + (t * W + w) * n,
                                         dGi: dA + (t * W + w) * gn, dGh: dR + (t * W + w) * gn, dhPrev: dhNext.pointer + w * n)
                    }
                }
                // δ·W_hh into ∂L/∂h_{t−1}; nothing flows into the saved initial state.
                if t > 0 {
                    let dRt = UnsafePointer(dR + t * W * gn)
                    if W == 1 {
                        Kernels.matvecTransposed(weights + slots.weightHH, rows: gn, cols: n, ldw: slots.blockStride, dRt, dhNext.pointer, accumulate: !isLSTM)
                    } else {
                        Kernels.gemm(m: W, n: n, k: gn, a: dRt, lda: gn, b: weights + slots.weightHH, ldb: slots.blockStride,
                                     beta: isLSTM ? 0 : 1, c: dhNext.pointer, ldc: n)
                    }
                }
            }
            // Weight gradients over all steps at once.
            let x: UnsafePointer<Float> = k == 0 ? UnsafePointer(input.pointer) : UnsafePointer(hs[k - 1].pointer + W * arch.hidden[k - 1])
            Kernels.gemm(transA: true, m: gn, n: slots.inputSize, k: T * W, a: dA, lda: gn, b: x, ldb: slots.inputSize,
                         beta: 1, c: gradients + slots.weightIH, ldc: slots.blockStride)
            Kernels.gemm(transA: true, m: gn, n: n, k: T * W, a: dR, lda: gn, b: hP, ldb: n,
                         beta: 1, c: gradients + slots.weightHH, ldc: slots.blockStride)
            Kernels.addColumnSums(dA, rows: T * W, cols: gn, ld: gn, into: gradients + slots.biasIH)
            Kernels.addColumnSums(dR, rows: T * W, cols: gn, ld: gn, into: gradients + slots.biasHH)
            if k > 0 {
                let below = arch.hidden[k - 1]
                Kernels.gemm(m: T * W, n: below, k: gn, a: dA, lda: gn, b: weights + slots.weightIH, ldb: slots.blockStride,
                             beta: 0, c: dHidden[k - 1].pointer, ldc: below)
            } else if case .tokens(_, let e) = arch.input, let embed = layout.embed {
                Kernels.gemm(m: T * W, n: e, k: gn, a: dA, lda: gn, b: weights + slots.weightIH, ldb: slots.blockStride,
                             beta: 0, c: dInput.pointer, ldc: e)
                for r in 0..<(T * W) {
                    Kernels.add(dInput.pointer + r * e, gradients + embed + Int(tokens[r]) * e, count: e)
                }
            }
        }
    }
}
