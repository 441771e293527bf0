/// Global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_`.
public enum GradientClipping {
    /// The L2 norm of `count` floats (summed in double precision).
    public static func norm(_ g: UnsafePointer<Float>, count: Int) -> Float {
        Float(Kernels.sumOfSquares(g, count: count).squareRoot())
    }

    /// The factor that brings a gradient of L2 norm `norm` to at most `maxNorm` (≤ 0 disables):
    /// `maxNorm / (norm + 1e-6)` when that is below 1, as PyTorch computes it.
    public static func coefficient(norm: Float, maxNorm: Float) -> Float {
        guard maxNorm > 0 else { return 1 }
        let c = maxNorm / (norm + 1e-6)
        return c < 1 ? c : 1
    }

    /// Scales `g` so its L2 norm is at most `maxNorm` (≤ 0 disables); returns the norm before.
    @discardableResult
    public static func clip(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
        let n = norm(g, count: count)
        let c = coefficient(norm: n, maxNorm: maxNorm)
        if c < 1 {
            let scaled = SIMD8<Float>(repeating: c)
            let whole = count & ~7
            var i = 0
            while i < whole {
                Vec.store(Vec.load(g + i) * scaled, g + i)
                i += 8
            }
            if whole < count { Vec.store(Vec.load(g + whole, count - whole) * scaled, g + whole, count - whole) }
        }
        return n
    }
}
