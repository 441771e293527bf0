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
    /// Per layer: offset of the packed gate matrix (LSTM: [W_ih | W_hh]; GRU: W_ih).
    private let gateOffsets: [Int]
    /// Per layer, GRU only: offset of the packed W_hh.
    private let recurrentOffsets: [Int]
    private let headOffset: Int

    public init(layout: ParameterLayout) {
        self.layout = layout
        let arch = layout.architecture
        let g = arch.cell.gateCount
        var offset = 0
        var gateOffsets: [Int] = [], recurrentOffsets: [Int] = []
        for (k, slots) in layout.layers.enumerated() {
            let gn = g * arch.hidden[k]
            gateOffsets.append(offset)
            if arch.cell == .lstm {
                offset += Kernels.packedMatvecSize(rows: gn, cols: slots.blockStride)
            } else {
                offset += Kernels.packedMatvecSize(rows: gn, cols: slots.inputSize)
                recurrentOffsets.append(offset)
                offset += Kernels.packedMatvecSize(rows: gn, cols: arch.hidden[k])
            }
        }
        headOffset = offset
        offset += Kernels.packedMatvecSize(rows: arch.outputSize, cols: arch.topHidden)
        self.gateOffsets = gateOffsets
        self.recurrentOffsets = recurrentOffsets
        buffer = FloatBuffer(count: offset)
    }

    /// A packed copy of `weights` (a flat vector in `layout`).
    public convenience init(layout: ParameterLayout, weights: UnsafePointer<Float>) {
        self.init(layout: layout)
        pack(weights)
    }

    /// Re-packs from `weights`; about one pass over them.
    public func pack(_ weights: UnsafePointer<Float>) {
        let arch = layout.architecture
        let g = arch.cell.gateCount
        for (k, slots) in layout.layers.enumerated() {
            let n = arch.hidden[k]
            let stride = slots.blockStride
            if arch.cell == .lstm {
                Kernels.packForMatvec(weights + slots.weightIH, rows: g * n, cols: stride, ldw: stride, into: buffer.pointer + gateOffsets[k])
            } else {
                Kernels.packForMatvec(weights + slots.weightIH, rows: g * n, cols: slots.inputSize, ldw: stride, into: buffer.pointer + gateOffsets[k])
                Kernels.packForMatvec(weights + slots.weightHH, rows: g * n, cols: n, ldw: stride, into: buffer.pointer + recurrentOffsets[k])
            }
        }
        let top = arch.topHidden
        Kernels.packForMatvec(weights + layout.headWeight, rows: arch.outputSize, cols: top, ldw: top, into: buffer.pointer + headOffset)
    }

    /// Layer `k`'s packed gate matrix (LSTM: [W_ih | W_hh]; GRU: W_ih).
    func gates(_ k: Int) -> UnsafePointer<Float> { UnsafePointer(buffer.pointer + gateOffsets[k]) }
    /// Layer `k`'s packed W_hh (GRU).
    func recurrent(_ k: Int) -> UnsafePointer<Float> { UnsafePointer(buffer.pointer + recurrentOffsets[k]) }
    /// The packed head weight.
    var head: UnsafePointer<Float> { UnsafePointer(buffer.pointer + headOffset) }
}
