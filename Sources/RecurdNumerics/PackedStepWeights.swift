/// A tile-packed copy of the matrices one stream's step multiplies by: per layer the
/// [W_ih | W_hh] block (LSTM) or W_ih and W_hh apart (GRU), and the head.
///
/// A single-stream step streams every weight once, from L3 when the model is larger than L2
/// (868 KB for two 128-wide LSTM layers). Read row by row that is eight concurrent streams per
/// tile of rows; packed it is one sequential stream, which the prefetchers keep further ahead:
/// about 10 % per step on Zen 3. The products are equal bit for bit to the row-major ones.
///
/// The copy is of one version of the weights: whoever changes the weights (an update, a
/// reload) must `pack` again before the next step that uses it, or step without it.
public final class PackedStepWeights {
    public let layout: ParameterLayout
    private let buffer: FloatBuffer

    /// One packed matrix: where it comes from in the flat weights and where its copy is.
    private struct Matrix {
        let source: Int, rows: Int, cols: Int, ldw: Int
        let offset: Int
    }

    /// Per layer: the gate matrix (LSTM: [W_ih | W_hh]; GRU: W_ih).
    private let gateMatrices: [Matrix]
    /// Per layer, GRU only: W_hh.
    private let recurrentMatrices: [Matrix]
    private let headMatrix: Matrix

    public init(layout: ParameterLayout) {
        self.layout = layout
        let arch = layout.architecture
        let g = arch.cell.gateCount
        var offset = 0
        func matrix(_ source: Int, rows: Int, cols: Int, ldw: Int) -> Matrix {
            defer { offset += Kernels.packedMatvecSize(rows: rows, cols: cols) }
            return Matrix(source: source, rows: rows, cols: cols, ldw: ldw, offset: offset)
        }
        var gates: [Matrix] = [], recurrent: [Matrix] = []
        for (k, slots) in layout.layers.enumerated() {
            let n = arch.hidden[k], stride = slots.blockStride
            if arch.cell == .lstm {
                gates.append(matrix(slots.weightIH, rows: g * n, cols: stride, ldw: stride))
            } else {
                gates.append(matrix(slots.weightIH, rows: g * n, cols: slots.inputSize, ldw: stride))
                recurrent.append(matrix(slots.weightHH, rows: g * n, cols: n, ldw: stride))
            }
        }
        headMatrix = matrix(layout.headWeight, rows: arch.outputSize, cols: arch.topHidden, ldw: arch.topHidden)
        gateMatrices = gates
        recurrentMatrices = recurrent
        buffer = FloatBuffer(count: offset)
    }

    /// A packed copy of `weights` (a flat vector in `layout`).
    public convenience init(layout: ParameterLayout, weights: UnsafePointer<Float>) {
        self.init(layout: layout)
        pack(weights)
    }

    /// Re-packs from `weights`; about one pass over them.
    public func pack(_ weights: UnsafePointer<Float>) {
        for m in gateMatrices + recurrentMatrices + [headMatrix] {
            Kernels.packForMatvec(weights + m.source, rows: m.rows, cols: m.cols, ldw: m.ldw, into: buffer.pointer + m.offset)
        }
    }

    /// y = layer `k`'s gate matrix · x (LSTM: x is [x | h]; GRU: the layer's input).
    func multiplyGates(_ k: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) { multiply(gateMatrices[k], x, y) }
    /// y = layer `k`'s W_hh · h (GRU).
    func multiplyRecurrent(_ k: Int, _ h: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) { multiply(recurrentMatrices[k], h, y) }
    /// y = the head weight · h.
    func multiplyHead(_ h: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) { multiply(headMatrix, h, y) }

    @inline(__always)
    private func multiply(_ m: Matrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        Kernels.packedMatvec(buffer.pointer + m.offset, rows: m.rows, cols: m.cols, x, y, accumulate: false)
    }
}
