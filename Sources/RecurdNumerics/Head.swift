import Foundation

/// The dense head's activation: logits → the prediction users see.
public enum Head {
    /// Writes the prediction for one row of `count` logits: identity, softmax probabilities or
    /// sigmoid probabilities.
    @inline(__always)
    public static func activate(_ head: HeadKind, logits: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        switch head {
        case .linear:
            out.update(from: logits, count: count)
        case .sigmoid:
            out.update(from: logits, count: count)
            Activations.sigmoid(out, count: count)
        case .softmax:
            var m = -Float.infinity
            for j in 0..<count { m = max(m, logits[j]) }
            for j in 0..<count { out[j] = logits[j] - m }
            Activations.exp(out, count: count)
            var s: Float = 0
            for j in 0..<count { s += out[j] }
            let inv = 1 / s
            for j in 0..<count { out[j] *= inv }
        }
    }
}
