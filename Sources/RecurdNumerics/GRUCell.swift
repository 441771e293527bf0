/// The pointwise part of a GRU step, PyTorch `nn.GRU` semantics (gate order r, z, n, reset
/// applied to the recurrent product after its bias — Keras `reset_after=True`):
/// `r = σ(x_r + b_ir + h_r + b_hr)`, `z = σ(x_z + b_iz + h_z + b_hz)`,
/// `n = tanh(x_n + b_in + r⊙(h_n + b_hn))`, `h' = (1−z)⊙n + z⊙h`.
///
/// The input and recurrent products arrive separately (`gi` = x·W_ihᵀ, `gh` = h·W_hhᵀ) because
/// the reset gate multiplies only the recurrent part of the candidate.
enum GRUCell {
    typealias V = SIMD8<Float>

    /// One row: `gi` (3H) receives the activated r, z, n; `gh` (3H) keeps in its n-slot
    /// `h_n + b_hn`, which the backward pass needs. `hOut` may alias `hPrev`.
    @inline(__always)
    static func forward(
        hidden n: Int, gi: UnsafeMutablePointer<Float>, gh: UnsafeMutablePointer<Float>,
        biasIH: UnsafePointer<Float>, biasHH: UnsafePointer<Float>,
        hPrev: UnsafePointer<Float>, hOut: UnsafeMutablePointer<Float>
    ) {
        let one = V(repeating: 1)
        var j = 0
        while j < n {
            let w = min(8, n - j)
            let r = Activations.sigmoid(Vec.load(gi + j, w) + Vec.load(biasIH + j, w) + Vec.load(gh + j, w) + Vec.load(biasHH + j, w))
            let z = Activations.sigmoid(Vec.load(gi + n + j, w) + Vec.load(biasIH + n + j, w) + Vec.load(gh + n + j, w) + Vec.load(biasHH + n + j, w))
            let hn = Vec.load(gh + 2 * n + j, w) + Vec.load(biasHH + 2 * n + j, w)
            let cand = Activations.tanh(Vec.load(gi + 2 * n + j, w) + Vec.load(biasIH + 2 * n + j, w) + r * hn)
            let h = (one - z) * cand + z * Vec.load(hPrev + j, w)
            Vec.store(r, gi + j, w)
            Vec.store(z, gi + n + j, w)
            Vec.store(cand, gi + 2 * n + j, w)
            Vec.store(hn, gh + 2 * n + j, w)
            Vec.store(h, hOut + j, w)
            j += 8
        }
    }

    /// One row of the backward pass at step t.
    ///
    /// - `dh` (H): ∂L/∂h_t. `gi` (3H): activated r, z, n; `gh` (3H): `h_n + b_hn` in its n-slot.
    /// - `dGi` (3H): receives ∂L/∂(x·W_ihᵀ + b_ih); `dGh` (3H): ∂L/∂(h·W_hhᵀ + b_hh).
    /// - `dhPrev` (H): receives the direct part z⊙dh of ∂L/∂h_{t−1} (the caller adds dGh·W_hh).
    @inline(__always)
    static func backward(
        hidden n: Int, dh: UnsafePointer<Float>, gi: UnsafePointer<Float>, gh: UnsafePointer<Float>,
        hPrev: UnsafePointer<Float>, dGi: UnsafeMutablePointer<Float>, dGh: UnsafeMutablePointer<Float>,
        dhPrev: UnsafeMutablePointer<Float>
    ) {
        let one = V(repeating: 1)
        var j = 0
        while j < n {
            let w = min(8, n - j)
            let r = Vec.load(gi + j, w), z = Vec.load(gi + n + j, w), cand = Vec.load(gi + 2 * n + j, w)
            let hn = Vec.load(gh + 2 * n + j, w)
            let dhv = Vec.load(dh + j, w)
            let dn = dhv * (one - z)
            let dz = dhv * (Vec.load(hPrev + j, w) - cand)
            let dan = dn * (one - cand * cand)
            let dar = dan * hn * r * (one - r)
            let daz = dz * z * (one - z)
            Vec.store(dar, dGi + j, w); Vec.store(daz, dGi + n + j, w); Vec.store(dan, dGi + 2 * n + j, w)
            Vec.store(dar, dGh + j, w); Vec.store(daz, dGh + n + j, w); Vec.store(dan * r, dGh + 2 * n + j, w)
            Vec.store(dhv * z, dhPrev + j, w)
            j += 8
        }
    }
}
