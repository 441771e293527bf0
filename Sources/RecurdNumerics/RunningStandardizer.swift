/// Per-stream online standardisation of feature vectors (DESIGN §3 extension, documented in the
/// README): a running mean and variance per feature, updated with each input *before* that
/// input is standardised.
///
/// After n inputs (Welford, double precision): μ = mean, σ² = M2 / n (population variance),
/// σ = sqrt(σ² + 1e-12). An input x becomes z = (x − μ) / σ; a prediction p in standardised
/// units is published as p·σ + μ. Because x is counted before it is standardised, the first
/// steps of a stream cannot blow up (the first input is always 0).
///
/// Robust to a sensor's glitches: after `warmup` inputs (and once they have not all been equal),
/// an input is counted no farther than `countLimit` standard deviations from the mean (a lone
/// 1e9 would otherwise own the mean and variance for the rest of the stream), and the model sees
/// z clamped to ±`modelLimit` (`observe`): a glitch costs the network one bounded step and one
/// bounded target, not weights pushed by a loss of 1e16. The price: after a change of regime to
/// many times the spread seen so far, the variance grows by at most a factor (1 + 63/n) a step, so
/// the statistics follow it over a share of n steps rather than at once. Losses use the
/// unclamped z (`standardize`).
public enum RunningStandardizer {
    static let varianceFloor = 1e-12
    /// Inputs counted in full before the bound applies; the bound on a counted input and on
    /// what the model sees, in standard deviations.
    public static let warmup = 10.0, countLimit = 8.0, modelLimit: Float = 8

    /// Counts `x` (n floats) into the statistics and writes what the model sees of it to `z`.
    @inline(__always)
    public static func observe(_ x: UnsafePointer<Float>, into z: UnsafeMutablePointer<Float>, count: inout Double,
                               mean: UnsafeMutablePointer<Double>, m2: UnsafeMutablePointer<Double>, n: Int) {
        let bounded = count >= warmup
        count += 1
        for j in 0..<n {
            var v = Double(x[j])
            // Not while every input so far was the same (M2 = 0, a flat start): a bound of 8 × the
            // variance floor would let the statistics follow the first real movement only slowly.
            if bounded && m2[j] > 0 {
                let limit = countLimit * sigma(count - 1, m2[j])
                v = min(max(v, mean[j] - limit), mean[j] + limit)
            }
            let delta = v - mean[j]
            mean[j] += delta / count
            m2[j] += delta * (v - mean[j])
        }
        // As the model sees it (and so as a next-step target): clamped to ±modelLimit.
        standardize(x, into: z, count: count, mean: mean, m2: m2, n: n)
        for j in 0..<n { z[j] = min(max(z[j], -modelLimit), modelLimit) }
    }

    /// z = (x − μ) / σ with the current statistics (no update).
    @inline(__always)
    public static func standardize(_ x: UnsafePointer<Float>, into z: UnsafeMutablePointer<Float>, count: Double,
                                   mean: UnsafePointer<Double>, m2: UnsafePointer<Double>, n: Int) {
        for j in 0..<n { z[j] = Float((Double(x[j]) - mean[j]) / sigma(count, m2[j])) }
    }

    /// y = p·σ + μ: a standardised prediction in the stream's units.
    @inline(__always)
    public static func destandardize(_ p: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Double,
                                     mean: UnsafePointer<Double>, m2: UnsafePointer<Double>, n: Int) {
        // Within float's range: a stream whose statistics took in a sentinel such as -3.4e38 would
        // otherwise publish ±∞.
        let limit = Double(Float.greatestFiniteMagnitude)
        for j in 0..<n { y[j] = Float(min(limit, max(-limit, Double(p[j]) * sigma(count, m2[j]) + mean[j]))) }
    }

    @inline(__always)
    static func sigma(_ count: Double, _ m2: Double) -> Double {
        count > 0 ? (m2 / count + varianceFloor).squareRoot() : 1
    }
}
