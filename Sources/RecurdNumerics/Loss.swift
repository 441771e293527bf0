import Foundation

/// The per-step loss `L` of DESIGN §3.4 and its gradient with respect to the head's logits.
public enum Loss {
    /// L for one row. `values` holds `count` floats (linear, sigmoid); `classIndex` the class
    /// (softmax). `scratch` (count floats), when given, lets softmax use the vectorised exp.
    public static func value(
        _ head: HeadKind, logits: UnsafePointer<Float>, count: Int,
        values: UnsafePointer<Float>?, classIndex: Int, scratch: UnsafeMutablePointer<Float>? = nil
    ) -> Float {
        switch head {
        case .linear:
            var s: Float = 0
            for j in 0..<count { let d = logits[j] - values![j]; s += d * d }
            return s / Float(count)
        case .sigmoid:
            var s: Float = 0
            for j in 0..<count { s += binaryCrossEntropy(logit: logits[j], target: values![j]) }
            return s / Float(count)
        case .softmax:
            return withScratch(scratch, count) { logSumExp(logits, count: count, scratch: $0).0 } - logits[classIndex]
        }
    }

    /// log Σ exp(l_j) over `count` logits (`scratch`: count floats): the softmax loss of class c
    /// is this minus l_c, bit for bit as `value` computes it, so a caller needing several classes'
    /// probabilities of one row computes it once.
    public static func logNormalizer(_ logits: UnsafePointer<Float>, count: Int, scratch: UnsafeMutablePointer<Float>) -> Float {
        logSumExp(logits, count: count, scratch: scratch).0
    }

    /// L for one row, and `gradient += weight · ∂L/∂logits`. `scratch` as in `value`.
    public static func accumulate(
        _ head: HeadKind, logits: UnsafePointer<Float>, count: Int,
        values: UnsafePointer<Float>?, classIndex: Int, weight: Float, gradient: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>? = nil
    ) -> Float {
        switch head {
        case .linear:
            var s: Float = 0
            let scale = 2 * weight / Float(count)
            for j in 0..<count {
                let d = logits[j] - values![j]
                s += d * d
                gradient[j] += scale * d
            }
            return s / Float(count)
        case .sigmoid:
            var s: Float = 0
            let scale = weight / Float(count)
            for j in 0..<count {
                let l = logits[j], t = values![j]
                s += binaryCrossEntropy(logit: l, target: t)
                gradient[j] += scale * (Activations.sigmoid(l) - t)
            }
            return s / Float(count)
        case .softmax:
            return withScratch(scratch, count) { scratch in
                // scratch holds e^{l−m} and sum is Σ of them: softmax = scratch / sum.
                let (lse, sum) = logSumExp(logits, count: count, scratch: scratch)
                Kernels.axpy(weight / sum, scratch, gradient, count: count)
                gradient[classIndex] -= weight
                return lse - logits[classIndex]
            }
        }
    }

    /// Runs `body` with `scratch`, or with a temporary buffer of `count` floats when there is
    /// none (callers on hot paths pass their own).
    @inline(__always)
    static func withScratch(_ scratch: UnsafeMutablePointer<Float>?, _ count: Int, _ body: (UnsafeMutablePointer<Float>) -> Float) -> Float {
        if let scratch { return body(scratch) }
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { body($0.baseAddress!) }
    }

    /// log Σ exp(l_j) with the vectorised exp; leaves e^{l_j − max} in `scratch` and returns
    /// their sum too.
    @inline(__always)
    static func logSumExp(_ logits: UnsafePointer<Float>, count: Int, scratch: UnsafeMutablePointer<Float>) -> (Float, Float) {
        var m = -Float.infinity
        for j in 0..<count { m = max(m, logits[j]) }
        for j in 0..<count { scratch[j] = logits[j] - m }
        Activations.exp(scratch, count: count)
        var s: Float = 0
        for j in 0..<count { s += scratch[j] }
        return (m + Foundation.log(s), s)
    }

    /// BCE from a logit, as `torch.nn.functional.binary_cross_entropy_with_logits`:
    /// max(l, 0) − l·t + log(1 + e^{−|l|}).
    @inline(__always)
    static func binaryCrossEntropy(logit l: Float, target t: Float) -> Float {
        max(l, 0) - l * t + Foundation.log1p(Foundation.exp(-Swift.abs(l)))
    }
}
