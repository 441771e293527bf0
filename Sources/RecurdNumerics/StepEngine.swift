/// One step of up to `maxBatch` independent streams at once: the streaming (inference) path.
///
/// Each stream's state sits in one row of the engine's batch buffers; callers load a stream's
/// packed state into a row, set its input, run `step`, read the prediction and store the state
/// back. All buffers are allocated here, once, so a step allocates nothing.
///
/// Packed state layout (what a stream stores between steps): for each layer k, `h_k` (H_k) and,
/// for LSTM, `c_k` (H_k) right after it.
public final class StepEngine {
    public let layout: ParameterLayout
    public let maxBatch: Int
    private var architecture: ModelArchitecture { layout.architecture }

    /// (maxBatch, In_0): layer-0 input rows (features, or gathered embedding rows).
    private let input: FloatBuffer
    /// Token ids per row, for token models.
    private var tokens: [Int32]
    /// Per layer (maxBatch, H_k).
    private let h: [FloatBuffer]
    /// Per layer (maxBatch, H_k); LSTM only (empty buffers for GRU).
    private let c: [FloatBuffer]
    /// Per layer (maxBatch, G·H_k): gate pre-activations (LSTM fused; GRU input part).
    private let gates: [FloatBuffer]
    /// Per layer (maxBatch, 3·H_k): GRU recurrent part.
    private let recurrentGates: [FloatBuffer]
    /// (maxBatch, O)
    private let logitBuffer: FloatBuffer
    /// (maxBatch, O)
    private let outputBuffer: FloatBuffer

    public init(layout: ParameterLayout, maxBatch: Int) {
        precondition(maxBatch >= 1)
        self.layout = layout
        self.maxBatch = maxBatch
        let arch = layout.architecture
        let g = arch.cell.gateCount
        input = FloatBuffer(count: maxBatch * arch.input.layerInputSize)
        tokens = Array(repeating: 0, count: maxBatch)
        h = arch.hidden.map { FloatBuffer(count: maxBatch * $0) }
        c = arch.hidden.map { FloatBuffer(count: arch.cell == .lstm ? maxBatch * $0 : 0) }
        gates = arch.hidden.map { FloatBuffer(count: maxBatch * g * $0) }
        recurrentGates = arch.hidden.map { FloatBuffer(count: arch.cell == .gru ? maxBatch * g * $0 : 0) }
        logitBuffer = FloatBuffer(count: maxBatch * arch.outputSize)
        outputBuffer = FloatBuffer(count: maxBatch * arch.outputSize)
    }

    // MARK: State

    /// Copies a stream's packed state (`architecture.stateSize` floats) into batch row `row`.
    public func loadState(row: Int, from state: UnsafePointer<Float>) {
        var offset = 0
        for k in 0..<h.count {
            let n = architecture.hidden[k]
            (h[k].pointer + row * n).update(from: state + offset, count: n)
            offset += n
            if architecture.cell == .lstm {
                (c[k].pointer + row * n).update(from: state + offset, count: n)
                offset += n
            }
        }
    }

    /// Copies batch row `row`'s state out into a stream's packed state.
    public func storeState(row: Int, to state: UnsafeMutablePointer<Float>) {
        var offset = 0
        for k in 0..<h.count {
            let n = architecture.hidden[k]
            (state + offset).update(from: h[k].pointer + row * n, count: n)
            offset += n
            if architecture.cell == .lstm {
                (state + offset).update(from: c[k].pointer + row * n, count: n)
                offset += n
            }
        }
    }

    /// Zeroes batch row `row`'s state (a new or reset stream).
    public func zeroState(row: Int) {
        for k in 0..<h.count {
            let n = architecture.hidden[k]
            (h[k].pointer + row * n).update(repeating: 0, count: n)
            if architecture.cell == .lstm { (c[k].pointer + row * n).update(repeating: 0, count: n) }
        }
    }

    // MARK: Input

    /// Sets row `row`'s feature vector (`input_size` floats).
    public func setFeatures(row: Int, _ values: UnsafePointer<Float>) {
        let n = architecture.input.layerInputSize
        (input.pointer + row * n).update(from: values, count: n)
    }

    /// Sets row `row`'s token id; the caller has checked it against the vocabulary.
    public func setToken(row: Int, _ id: Int32) { tokens[row] = id }

    /// The buffer row for features, to be written in place (avoids a copy for callers that decode).
    public func featureRow(_ row: Int) -> UnsafeMutablePointer<Float> {
        input.pointer + row * architecture.input.layerInputSize
    }

    // MARK: Step

    /// Runs one step for rows `0..<batch` with the weights at `weights` (a flat vector in `layout`).
    public func step(weights: UnsafePointer<Float>, batch: Int) {
        precondition(batch >= 1 && batch <= maxBatch)
        let arch = architecture
        let g = arch.cell.gateCount
        var x: UnsafePointer<Float> = UnsafePointer(input.pointer)
        var xStride = arch.input.layerInputSize
        if case .tokens(_, let e) = arch.input, let embed = layout.embed {
            if batch > 1 {
                // Gather the rows so one matrix product serves the whole batch.
                for b in 0..<batch {
                    (input.pointer + b * e).update(from: weights + embed + Int(tokens[b]) * e, count: e)
                }
            } else {
                x = weights + embed + Int(tokens[0]) * e
            }
            xStride = e
        }
        for k in 0..<arch.hidden.count {
            let n = arch.hidden[k]
            let slots = layout.layers[k]
            let gh = g * n
            let gatesP = gates[k].pointer
            let hP = h[k].pointer
            let rec = arch.cell == .lstm ? gatesP : recurrentGates[k].pointer
            if batch == 1 {
                Kernels.matvec(weights + slots.weightIH, rows: gh, cols: slots.inputSize, ldw: slots.inputSize, x, gatesP, accumulate: false)
                Kernels.matvec(weights + slots.weightHH, rows: gh, cols: n, ldw: n, hP, rec, accumulate: arch.cell == .lstm)
            } else {
                Kernels.gemm(transB: true, m: batch, n: gh, k: slots.inputSize, a: x, lda: xStride,
                             b: weights + slots.weightIH, ldb: slots.inputSize, beta: 0, c: gatesP, ldc: gh)
                Kernels.gemm(transB: true, m: batch, n: gh, k: n, a: hP, lda: n,
                             b: weights + slots.weightHH, ldb: n, beta: arch.cell == .lstm ? 1 : 0, c: rec, ldc: gh)
            }
            for b in 0..<batch {
                if arch.cell == .lstm {
                    let cP = c[k].pointer + b * n
                    LSTMCell.forward(hidden: n, gates: gatesP + b * gh, biasIH: weights + slots.biasIH, biasHH: weights + slots.biasHH,
                                     cPrev: cP, cOut: cP, hOut: hP + b * n)
                } else {
                    GRUCell.forward(hidden: n, gi: gatesP + b * gh, gh: rec + b * gh, biasIH: weights + slots.biasIH,
                                    biasHH: weights + slots.biasHH, hPrev: hP + b * n, hOut: hP + b * n)
                }
            }
            x = UnsafePointer(hP)
            xStride = n
        }
        let o = arch.outputSize
        let top = arch.topHidden
        if batch == 1 {
            Kernels.matvec(weights + layout.headWeight, rows: o, cols: top, ldw: top, x, logitBuffer.pointer, accumulate: false)
        } else {
            Kernels.gemm(transB: true, m: batch, n: o, k: top, a: x, lda: top, b: weights + layout.headWeight, ldb: top,
                         beta: 0, c: logitBuffer.pointer, ldc: o)
        }
        for b in 0..<batch {
            let l = logitBuffer.pointer + b * o
            Kernels.add(weights + layout.headBias, l, count: o)
            Head.activate(arch.head, logits: l, into: outputBuffer.pointer + b * o, count: o)
        }
    }

    /// Row `row`'s prediction after `step`: head outputs (probabilities for softmax and sigmoid).
    public func output(row: Int) -> UnsafePointer<Float> { UnsafePointer(outputBuffer.pointer + row * architecture.outputSize) }

    /// Row `row`'s logits after `step` (the loss is computed from these, for accuracy).
    public func logits(row: Int) -> UnsafePointer<Float> { UnsafePointer(logitBuffer.pointer + row * architecture.outputSize) }
}
