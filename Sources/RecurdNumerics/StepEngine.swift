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

    /// Per layer (maxBatch, In_k + H_k): each row is the layer's input x followed by its hidden
    /// state h, so that one product with the layer's [W_ih | W_hh] block gives all gates.
    private let xh: [FloatBuffer]
    /// Token ids per row, for token models.
    private var tokens: [Int32]
    /// Per layer (maxBatch, H_k); LSTM only (empty buffers for GRU).
    private let c: [FloatBuffer]
    /// Per layer (maxBatch, G·H_k): gate pre-activations (LSTM all; GRU input part).
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
        xh = layout.layers.map { FloatBuffer(count: maxBatch * $0.blockStride) }
        tokens = Array(repeating: 0, count: maxBatch)
        c = arch.hidden.map { FloatBuffer(count: arch.cell == .lstm ? maxBatch * $0 : 0) }
        gates = arch.hidden.map { FloatBuffer(count: maxBatch * g * $0) }
        recurrentGates = arch.hidden.map { FloatBuffer(count: arch.cell == .gru ? maxBatch * g * $0 : 0) }
        logitBuffer = FloatBuffer(count: maxBatch * arch.outputSize)
        outputBuffer = FloatBuffer(count: maxBatch * arch.outputSize)
    }

    /// Row `row`'s h of layer `k`.
    @inline(__always)
    private func hidden(_ k: Int, row: Int) -> UnsafeMutablePointer<Float> {
        let slots = layout.layers[k]
        return xh[k].pointer + row * slots.blockStride + slots.inputSize
    }

    // MARK: State

    /// Copies a stream's packed state (`architecture.stateSize` floats) into batch row `row`.
    public func loadState(row: Int, from state: UnsafePointer<Float>) {
        var offset = 0
        for k in 0..<xh.count {
            let n = architecture.hidden[k]
            hidden(k, row: row).update(from: state + offset, count: n)
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
        for k in 0..<xh.count {
            let n = architecture.hidden[k]
            (state + offset).update(from: hidden(k, row: row), count: n)
            offset += n
            if architecture.cell == .lstm {
                (state + offset).update(from: c[k].pointer + row * n, count: n)
                offset += n
            }
        }
    }

    /// Zeroes batch row `row`'s state (a new or reset stream).
    public func zeroState(row: Int) {
        for k in 0..<xh.count {
            let n = architecture.hidden[k]
            hidden(k, row: row).update(repeating: 0, count: n)
            if architecture.cell == .lstm { (c[k].pointer + row * n).update(repeating: 0, count: n) }
        }
    }

    // MARK: Input

    /// Sets row `row`'s feature vector (`input_size` floats).
    public func setFeatures(row: Int, _ values: UnsafePointer<Float>) {
        featureRow(row).update(from: values, count: architecture.input.layerInputSize)
    }

    /// Sets row `row`'s token id; the caller has checked it against the vocabulary.
    public func setToken(row: Int, _ id: Int32) { tokens[row] = id }

    /// The buffer row for features, to be written in place (avoids a copy for callers that decode).
    public func featureRow(_ row: Int) -> UnsafeMutablePointer<Float> {
        xh[0].pointer + row * layout.layers[0].blockStride
    }

    // MARK: Step

    /// Runs one step for rows `0..<batch` with the weights at `weights` (a flat vector in `layout`).
    ///
    /// `packed`, a packed copy of these same weights, makes a one-row step read them
    /// sequentially and a batch skip each product's copy of W (same results, bit for bit, for one
    /// row and for more than four); it is ignored where the kernels in use have no packed product.
    public func step(weights: UnsafePointer<Float>, batch: Int, packed: PackedStepWeights? = nil) {
        precondition(batch >= 1 && batch <= maxBatch)
        let arch = architecture
        let g = arch.cell.gateCount
        let packed = packed?.serves(batch: batch) == true ? packed : nil
        if let packed { precondition(packed.layout.count == layout.count, "packed weights of another layout") }
        if case .tokens(_, let e) = arch.input, let embed = layout.embed {
            let stride = layout.layers[0].blockStride
            for b in 0..<batch {
                (xh[0].pointer + b * stride).update(from: weights + embed + Int(tokens[b]) * e, count: e)
            }
        }
        for k in 0..<arch.hidden.count {
            let n = arch.hidden[k]
            let slots = layout.layers[k]
            let stride = slots.blockStride
            let gn = g * n
            let gatesP = gates[k].pointer
            let rows = xh[k].pointer
            if arch.cell == .lstm {
                // [x | h] · [W_ih | W_hh]ᵀ: one product for all gates.
                if let packed {
                    packed.multiplyGates(k, rows, batch: batch, ldx: stride, into: gatesP, ldy: gn)
                } else if batch == 1 {
                    Kernels.matvec(weights + slots.weightIH, rows: gn, cols: stride, ldw: stride, rows, gatesP, accumulate: false)
                } else {
                    Kernels.gemm(transB: true, m: batch, n: gn, k: stride, a: rows, lda: stride,
                                 b: weights + slots.weightIH, ldb: stride, beta: 0, c: gatesP, ldc: gn)
                }
                LSTMCell.step(rows: batch, hidden: n, gates: gatesP, ldg: gn, biasIH: weights + slots.biasIH, biasHH: weights + slots.biasHH,
                              c: c[k].pointer, ldc: n, h: rows + slots.inputSize, ldh: stride)
            } else {
                // The reset gate multiplies only the recurrent part of the candidate: two products.
                let rec = recurrentGates[k].pointer
                if let packed {
                    packed.multiplyGates(k, rows, batch: batch, ldx: stride, into: gatesP, ldy: gn)
                    packed.multiplyRecurrent(k, rows + slots.inputSize, batch: batch, ldx: stride, into: rec, ldy: gn)
                } else if batch == 1 {
                    Kernels.matvec(weights + slots.weightIH, rows: gn, cols: slots.inputSize, ldw: stride, rows, gatesP, accumulate: false)
                    Kernels.matvec(weights + slots.weightHH, rows: gn, cols: n, ldw: stride, rows + slots.inputSize, rec, accumulate: false)
                } else {
                    Kernels.gemm(transB: true, m: batch, n: gn, k: slots.inputSize, a: rows, lda: stride,
                                 b: weights + slots.weightIH, ldb: stride, beta: 0, c: gatesP, ldc: gn)
                    Kernels.gemm(transB: true, m: batch, n: gn, k: n, a: rows + slots.inputSize, lda: stride,
                                 b: weights + slots.weightHH, ldb: stride, beta: 0, c: rec, ldc: gn)
                }
                for b in 0..<batch {
                    let h = rows + b * stride + slots.inputSize
                    GRUCell.forward(hidden: n, gi: gatesP + b * gn, gh: rec + b * gn, biasIH: weights + slots.biasIH,
                                    biasHH: weights + slots.biasHH, hPrev: h, hOut: h)
                }
            }
            if k + 1 < arch.hidden.count {
                let nextStride = layout.layers[k + 1].blockStride
                for b in 0..<batch {
                    (xh[k + 1].pointer + b * nextStride).update(from: rows + b * stride + slots.inputSize, count: n)
                }
            }
        }
        let o = arch.outputSize
        let top = arch.topHidden
        let topSlots = layout.layers[layout.layers.count - 1]
        let topH = UnsafePointer(xh[xh.count - 1].pointer + topSlots.inputSize)
        if let packed {
            packed.multiplyHead(topH, batch: batch, ldx: topSlots.blockStride, into: logitBuffer.pointer, ldy: o)
        } else if batch == 1 {
            Kernels.matvec(weights + layout.headWeight, rows: o, cols: top, ldw: top, topH, logitBuffer.pointer, accumulate: false)
        } else {
            Kernels.gemm(transB: true, m: batch, n: o, k: top, a: topH, lda: topSlots.blockStride, b: weights + layout.headWeight, ldb: top,
                         beta: 0, c: logitBuffer.pointer, ldc: o)
        }
        for b in 0..<batch {
            let l = logitBuffer.pointer + b * o
            Kernels.add(weights + layout.headBias, l, count: o)
            if arch.residual { Kernels.add(UnsafePointer(featureRow(b)), l, count: o) }
            Head.activate(arch.head, logits: l, into: outputBuffer.pointer + b * o, count: o)
        }
    }

    /// Row `row`'s prediction after `step`: head outputs (probabilities for softmax and sigmoid).
    public func output(row: Int) -> UnsafePointer<Float> { UnsafePointer(outputBuffer.pointer + row * architecture.outputSize) }

    /// Row `row`'s logits after `step` (the loss is computed from these, for accuracy).
    public func logits(row: Int) -> UnsafePointer<Float> { UnsafePointer(logitBuffer.pointer + row * architecture.outputSize) }
}
