/// The pointwise part of an LSTM step, PyTorch `nn.LSTM` semantics (gate order i, f, g, o):
/// `c' = σ(f)⊙c + σ(i)⊙tanh(g)`, `h' = σ(o)⊙tanh(c')`.
///
/// The gate pre-activations come from one fused product `x·W_ihᵀ + h·W_hhᵀ` done by the caller;
/// these functions add the two biases, apply the nonlinearities and, for training, keep the
/// activated gates in place for the backward pass, which sits right below its forward.
enum LSTMCell {
    typealias V = SIMD8<Float>

    /// One row: `gates` (4H) holds the pre-activations and receives the activated gates;
    /// `c` (H) and `h` (H) are updated in place. `cOut`/`hOut` may alias `c`/`h`.
    @inline(__always)
    static func forward(
        hidden n: Int, gates: UnsafeMutablePointer<Float>,
        biasIH: UnsafePointer<Float>, biasHH: UnsafePointer<Float>,
        cPrev: UnsafePointer<Float>, cOut: UnsafeMutablePointer<Float>, hOut: UnsafeMutablePointer<Float>
    ) {
        var j = 0
        while j < n {
            let w = min(8, n - j)
            let i = Activations.sigmoid(Vec.load(gates + j, w) + Vec.load(biasIH + j, w) + Vec.load(biasHH + j, w))
            let f = Activations.sigmoid(Vec.load(gates + n + j, w) + Vec.load(biasIH + n + j, w) + Vec.load(biasHH + n + j, w))
            let g = Activations.tanh(Vec.load(gates + 2 * n + j, w) + Vec.load(biasIH + 2 * n + j, w) + Vec.load(biasHH + 2 * n + j, w))
            let o = Activations.sigmoid(Vec.load(gates + 3 * n + j, w) + Vec.load(biasIH + 3 * n + j, w) + Vec.load(biasHH + 3 * n + j, w))
            let c = f * Vec.load(cPrev + j, w) + i * g
            Vec.store(i, gates + j, w)
            Vec.store(f, gates + n + j, w)
            Vec.store(g, gates + 2 * n + j, w)
            Vec.store(o, gates + 3 * n + j, w)
            Vec.store(c, cOut + j, w)
            Vec.store(o * Activations.tanh(c), hOut + j, w)
            j += 8
        }
    }

    /// One row of the backward pass at step t.
    ///
    /// - `dh` (H): ∂L/∂h_t from above and from step t+1.
    /// - `dc` (H): on entry ∂L/∂c_t from step t+1; on exit ∂L/∂c_{t−1}.
    /// - `gates` (4H): the activated gates of step t; `cPrev`, `c`: c_{t−1} and c_t.
    /// - `dGates` (4H): receives ∂L/∂(pre-activations), which feed every weight gradient.
    @inline(__always)
    static func backward(
        hidden n: Int, dh: UnsafePointer<Float>, dc: UnsafeMutablePointer<Float>,
        gates: UnsafePointer<Float>, cPrev: UnsafePointer<Float>, c: UnsafePointer<Float>,
        dGates: UnsafeMutablePointer<Float>
    ) {
        let one = V(repeating: 1)
        var j = 0
        while j < n {
            let w = min(8, n - j)
            let i = Vec.load(gates + j, w), f = Vec.load(gates + n + j, w)
            let g = Vec.load(gates + 2 * n + j, w), o = Vec.load(gates + 3 * n + j, w)
            let tc = Activations.tanh(Vec.load(c + j, w))
            let dhv = Vec.load(dh + j, w)
            let dct = Vec.load(dc + j, w) + dhv * o * (one - tc * tc)
            let di = dct * g, dg = dct * i, df = dct * Vec.load(cPrev + j, w), dout = dhv * tc
            Vec.store(di * i * (one - i), dGates + j, w)
            Vec.store(df * f * (one - f), dGates + n + j, w)
            Vec.store(dg * (one - g * g), dGates + 2 * n + j, w)
            Vec.store(dout * o * (one - o), dGates + 3 * n + j, w)
            Vec.store(dct * f, dc + j, w)
            j += 8
        }
    }
}
