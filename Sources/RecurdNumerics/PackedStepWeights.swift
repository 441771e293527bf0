/// Packed copies of the matrices a step multiplies by: per layer the [W_ih | W_hh] block (LSTM)
/// or W_ih and W_hh apart (GRU), and the head.
///
/// Two copies of each, one per kind of step:
/// - one stream: tile-packed for the matrix–vector product. A single-stream step streams every
///   weight once, from L3 when the model is larger than L2 (868 KB for two 128-wide LSTM
///   layers). Read row by row that is eight concurrent streams per tile of rows; packed it is
///   one sequential stream, which the prefetchers keep further ahead: about 10 % per step on
///   Zen 3. The products are equal bit for bit to the row-major ones.
/// - a batch: in the GEMM micro-kernel's 16-wide panels. Without them every product copies and
///   transposes all of W first, which for a few streams costs more than the product itself
///   (2–4 streams: 2–3× faster with the panels on Zen 3; 256 streams: the copy is about 3 %).
///   Equal bit for bit to the unpacked product for more than four rows.
///
/// The copies are of one version of the weights: whoever changes the weights (an update, a
/// reload) must `pack` again (or `invalidate`) before the next step that uses them, or step
/// without them. Each kind can be packed on its own (`pack(_:tiles:panels:)`); a step uses its
/// kind's copy only when it is there.
public final class PackedStepWeights {
    public let layout: ParameterLayout
    private let buffer: FloatBuffer
    /// Whether the one-stream copy and the batch copy hold the weights last packed.
    public private(set) var hasTiles = false, hasPanels = false

    /// One packed matrix: where it comes from in the flat weights and where its copies are.
    private struct Matrix {
        let source: Int, rows: Int, cols: Int, ldw: Int
        /// The tile-packed copy (one stream) and the panel copy (a batch).
        let tiles: Int, panels: Int
    }

    /// Per layer: the gate matrix (LSTM: [W_ih | W_hh]; GRU: W_ih).
    private let gateMatrices: [Matrix]
    /// Per layer, GRU only: W_hh.
    private let recurrentMatrices: [Matrix]
    private let headMatrix: Matrix
    /// All of the above, for packing.
    private let matrices: [Matrix]

    public init(layout: ParameterLayout) {
        self.layout = layout
        let arch = layout.architecture
        let g = arch.cell.gateCount
        var offset = 0
        func matrix(_ source: Int, rows: Int, cols: Int, ldw: Int) -> Matrix {
            let tiles = offset, panels = tiles + Kernels.packedMatvecSize(rows: rows, cols: cols)
            offset = panels + Kernels.packedGemmSize(n: rows, k: cols)
            return Matrix(source: source, rows: rows, cols: cols, ldw: ldw, tiles: tiles, panels: panels)
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
        matrices = gates + recurrent + [headMatrix]
        buffer = FloatBuffer(count: offset)
    }

    /// Packed copies of `weights` (a flat vector in `layout`): both, or the chosen ones.
    public convenience init(layout: ParameterLayout, weights: UnsafePointer<Float>, tiles: Bool = true, panels: Bool = true) {
        self.init(layout: layout)
        pack(weights, tiles: tiles, panels: panels)
    }

    /// Packs the chosen copies from `weights` (both by default): the tiles cost about one pass
    /// over the weights, the panels two to three. A copy not chosen keeps what it held, so after
    /// the weights change call `invalidate` first.
    public func pack(_ weights: UnsafePointer<Float>, tiles: Bool = true, panels: Bool = true) {
        for m in matrices {
            if tiles { Kernels.packForMatvec(weights + m.source, rows: m.rows, cols: m.cols, ldw: m.ldw, into: buffer.pointer + m.tiles) }
            if panels { Kernels.packForGemm(weights + m.source, n: m.rows, k: m.cols, ldw: m.ldw, into: buffer.pointer + m.panels) }
        }
        hasTiles = hasTiles || tiles
        hasPanels = hasPanels || panels
    }

    /// Marks both copies stale (the weights changed).
    public func invalidate() { hasTiles = false; hasPanels = false }

    /// Whether the kernels in use on this thread have the packed product a step of `batch` rows
    /// reads (the tiles for one row, the panels for more).
    public static func kernelsRead(batch: Int) -> Bool {
        batch == 1 ? Kernels.packedMatvecAvailable : Kernels.packedGemmAvailable
    }

    /// Whether a step of `batch` rows can use these copies: its kind is here and the kernels
    /// read it.
    public func serves(batch: Int) -> Bool { (batch == 1 ? hasTiles : hasPanels) && Self.kernelsRead(batch: batch) }

    /// Row by row (`batch` rows of x, row stride `ldx`, into rows of y, stride `ldy`): y = layer
    /// `k`'s gate matrix · x (LSTM: x is [x | h]; GRU: the layer's input).
    func multiplyGates(_ k: Int, _ x: UnsafePointer<Float>, batch: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        multiply(gateMatrices[k], x, batch, ldx, y, ldy)
    }
    /// y = layer `k`'s W_hh · h (GRU), row by row as above.
    func multiplyRecurrent(_ k: Int, _ h: UnsafePointer<Float>, batch: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        multiply(recurrentMatrices[k], h, batch, ldx, y, ldy)
    }
    /// y = the head weight · h, row by row as above.
    func multiplyHead(_ h: UnsafePointer<Float>, batch: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        multiply(headMatrix, h, batch, ldx, y, ldy)
    }

    @inline(__always)
    private func multiply(_ m: Matrix, _ x: UnsafePointer<Float>, _ batch: Int, _ ldx: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int) {
        if batch == 1 {
            Kernels.packedMatvec(buffer.pointer + m.tiles, rows: m.rows, cols: m.cols, x, y, accumulate: false)
        } else {
            Kernels.packedGemm(m: batch, n: m.rows, k: m.cols, a: x, lda: ldx, packed: buffer.pointer + m.panels, c: y, ldc: ldy)
        }
    }
}
