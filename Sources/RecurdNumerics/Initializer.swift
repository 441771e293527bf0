/// Keras' default initialisation for a new model (DESIGN §1), seeded and reproducible:
/// Glorot-uniform input kernels and head, orthogonal recurrent kernels, zero biases except the
/// LSTM forget gate's (1, Keras `unit_forget_bias`), embedding uniform in ±0.05.
public enum Initializer {
    /// Returns a flat parameter vector for `layout`.
    public static func initialize(_ layout: ParameterLayout, seed: UInt64) -> FloatBuffer {
        var rng = SeededGenerator(seed: seed)
        let p = FloatBuffer(count: layout.count)
        let arch = layout.architecture
        let g = arch.cell.gateCount
        if let embed = layout.embed, case .tokens(let v, let e) = arch.input {
            for i in 0..<(v * e) { p[embed + i] = Float(rng.nextUnit() * 0.1 - 0.05) }
        }
        for (k, slots) in layout.layers.enumerated() {
            let n = arch.hidden[k]
            // Keras' kernel is (In, G·H): fans are In and G·H.
            glorot(p, offset: slots.weightIH, rows: g * n, cols: slots.inputSize, stride: slots.blockStride, fanIn: slots.inputSize, fanOut: g * n, rng: &rng)
            // Keras' recurrent kernel is (H, G·H) with orthonormal rows; ours is its transpose.
            let q = orthogonal(rows: n, cols: g * n, rng: &rng)
            for r in 0..<(g * n) {
                for c in 0..<n { p[slots.weightHH + r * slots.blockStride + c] = Float(q[c * g * n + r]) }
            }
            if arch.cell == .lstm {
                for j in 0..<n { p[slots.biasIH + n + j] = 1 }
            }
        }
        glorot(p, offset: layout.headWeight, rows: arch.outputSize, cols: arch.topHidden, stride: arch.topHidden,
               fanIn: arch.topHidden, fanOut: arch.outputSize, rng: &rng)
        // A residual head starts at zero, so a fresh model forecasts persistence (the draws above
        // still happen: the other weights are the same as the plain form's for a seed).
        if arch.residual { (p.pointer + layout.headWeight).update(repeating: 0, count: arch.outputSize * arch.topHidden) }
        return p
    }

    private static func glorot(_ p: FloatBuffer, offset: Int, rows: Int, cols: Int, stride: Int, fanIn: Int, fanOut: Int, rng: inout SeededGenerator) {
        let limit = (6.0 / Double(fanIn + fanOut)).squareRoot()
        for r in 0..<rows {
            for c in 0..<cols { p[offset + r * stride + c] = Float((rng.nextUnit() * 2 - 1) * limit) }
        }
    }

    /// A rows×cols matrix (row-major) with orthonormal rows if rows ≤ cols, else orthonormal
    /// columns, as Keras' `Orthogonal`: QR of a Gaussian matrix with the signs of R's diagonal.
    static func orthogonal(rows: Int, cols: Int, rng: inout SeededGenerator) -> [Double] {
        let tall = max(rows, cols), wide = min(rows, cols)
        // a: tall×wide Gaussian, column-major for Gram–Schmidt.
        var a = [Double](repeating: 0, count: tall * wide)
        for i in 0..<(tall * wide) { a[i] = rng.nextNormal() }
        // Modified Gram–Schmidt, twice for numerical orthogonality; q's columns replace a's.
        for j in 0..<wide {
            for _ in 0..<2 {
                for i in 0..<j {
                    var d = 0.0
                    for r in 0..<tall { d += a[i * tall + r] * a[j * tall + r] }
                    for r in 0..<tall { a[j * tall + r] -= d * a[i * tall + r] }
                }
            }
            var norm = 0.0
            for r in 0..<tall { norm += a[j * tall + r] * a[j * tall + r] }
            norm = norm.squareRoot()
            for r in 0..<tall { a[j * tall + r] /= norm }
        }
        // q is tall×wide with orthonormal columns; Gram–Schmidt already gives R a positive diagonal.
        var out = [Double](repeating: 0, count: rows * cols)
        for r in 0..<tall {
            for c in 0..<wide {
                let value = a[c * tall + r]
                if rows >= cols { out[r * cols + c] = value } else { out[c * cols + r] = value }
            }
        }
        return out
    }
}
