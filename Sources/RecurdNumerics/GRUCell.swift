import CRecurdKernels

/// The pointwise part of a GRU step, PyTorch `nn.GRU` semantics (gate order r, z, n, reset
/// applied to the recurrent product after its bias — Keras `reset_after=True`):
/// `r = σ(x_r + b_ir + h_r + b_hr)`, `z = σ(x_z + b_iz + h_z + b_hz)`,
/// `n = tanh(x_n + b_in + r⊙(h_n + b_hn))`, `h' = (1−z)⊙n + z⊙h`.
///
/// The input and recurrent products arrive separately (`gi` = x·W_ihᵀ, `gh` = h·W_hhᵀ) because
/// the reset gate multiplies only the recurrent part of the candidate.
enum GRUCell {
    /// One row: `gi` (3H) receives the activated r, z, n; `gh` (3H) keeps in its n-slot
    /// `h_n + b_hn`, which the backward pass needs. `hOut` may alias `hPrev`.
    @inline(__always)
    static func forward(
        hidden n: Int, gi: UnsafeMutablePointer<Float>, gh: UnsafeMutablePointer<Float>,
        biasIH: UnsafePointer<Float>, biasHH: UnsafePointer<Float>,
        hPrev: UnsafePointer<Float>, hOut: UnsafeMutablePointer<Float>
    ) {
        recurd_gru_forward(Int32(n), gi, gh, biasIH, biasHH, hPrev, hOut)
    }

    /// One row of the backward pass at step t.
    ///
    /// - `dh` (H): ∂L/∂h_t. `gi` (3H): activated r, z, n; `gh` (3H): `h_n + b_hn` in its n-slot.
    /// - `dGi` (3H): receives ∂L/∂(x·W_ihᵀ + b_ih); `dGh` (3H): ∂L/∂(h·W_hhᵀ + b_hh).
    /// - `dhPrev` (H): receives the direct part z⊙dh of ∂L/∂h_{t−1} (the caller adds dGh·W_hh).
    ///   With dan = dh⊙(1−z)⊙(1−n²): d(r) = dan⊙(h_n+b_hn)⊙r(1−r), d(z) = dh⊙(h−n)⊙z(1−z);
    ///   the recurrent n-slot gets dan⊙r.
    @inline(__always)
    static func backward(
        hidden n: Int, dh: UnsafePointer<Float>, gi: UnsafePointer<Float>, gh: UnsafePointer<Float>,
        hPrev: UnsafePointer<Float>, dGi: UnsafeMutablePointer<Float>, dGh: UnsafeMutablePointer<Float>,
        dhPrev: UnsafeMutablePointer<Float>
    ) {
        recurd_gru_backward(Int32(n), dh, gi, gh, hPrev, dGi, dGh, dhPrev)
    }
}
