import CRecurdKernels

/// The pointwise part of an LSTM step, PyTorch `nn.LSTM` semantics (gate order i, f, g, o):
/// `c' = σ(f)⊙c + σ(i)⊙tanh(g)`, `h' = σ(o)⊙tanh(c')`.
///
/// The gate pre-activations come from one fused product `x·W_ihᵀ + h·W_hhᵀ` done by the caller;
/// these functions add the two biases, apply the nonlinearities and, for training, keep the
/// activated gates in place for the backward pass, which sits right below its forward.
enum LSTMCell {
    /// One row: `gates` (4H) holds the pre-activations and receives the activated gates;
    /// `c` (H) and `h` (H) are updated in place. `cOut`/`hOut` may alias `c`/`h`. `tanhC` (H),
    /// when given, receives tanh(c_t) for `backward`.
    @inline(__always)
    static func forward(
        hidden n: Int, gates: UnsafeMutablePointer<Float>,
        biasIH: UnsafePointer<Float>, biasHH: UnsafePointer<Float>,
        cPrev: UnsafePointer<Float>, cOut: UnsafeMutablePointer<Float>, hOut: UnsafeMutablePointer<Float>,
        tanhC: UnsafeMutablePointer<Float>? = nil
    ) {
        recurd_lstm_forward(Int32(n), gates, biasIH, biasHH, cPrev, cOut, hOut, tanhC)
    }

    /// `rows` rows at once, for inference (the activated gates are not kept): row r's
    /// pre-activations at `gates + r·ldg`, its `c` and `h` (updated in place) at `c + r·ldc` and
    /// `h + r·ldh`. Bit for bit what `forward` gives each row.
    @inline(__always)
    static func step(
        rows: Int, hidden n: Int, gates: UnsafePointer<Float>, ldg: Int,
        biasIH: UnsafePointer<Float>, biasHH: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, h: UnsafeMutablePointer<Float>, ldh: Int
    ) {
        recurd_lstm_step_rows(Int32(rows), Int32(n), gates, ldg, biasIH, biasHH, c, ldc, h, ldh)
    }

    /// One row of the backward pass at step t.
    ///
    /// - `dh` (H): ∂L/∂h_t from above and from step t+1.
    /// - `dc` (H): on entry ∂L/∂c_t from step t+1; on exit ∂L/∂c_{t−1}.
    /// - `gates` (4H): the activated gates of step t; `cPrev`: c_{t−1}; `tanhC`: tanh(c_t), as
    ///   `forward` kept it.
    /// - `dGates` (4H): receives ∂L/∂(pre-activations), which feed every weight gradient:
    ///   with tc = tanh(c_t) and δc = dc + dh⊙o⊙(1−tc²): di = δc⊙g⊙i(1−i), df = δc⊙c_{t−1}⊙f(1−f),
    ///   dg = δc⊙i⊙(1−g²), do = dh⊙tc⊙o(1−o), and dc_{t−1} = δc⊙f.
    @inline(__always)
    static func backward(
        hidden n: Int, dh: UnsafePointer<Float>, dc: UnsafeMutablePointer<Float>,
        gates: UnsafePointer<Float>, cPrev: UnsafePointer<Float>, tanhC: UnsafePointer<Float>,
        dGates: UnsafeMutablePointer<Float>
    ) {
        recurd_lstm_backward(Int32(n), dh, dc, gates, cPrev, tanhC, dGates)
    }
}
