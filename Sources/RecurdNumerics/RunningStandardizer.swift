/// Per-stream online standardisation of feature vectors (DESIGN §3 extension, documented in the
/// README): a running mean and variance per feature, updated with each input *before* that
/// input is standardised.
///
/// After n inputs (Welford, double precision): μ = mean, σ² = M2 / n (population variance),
/// σ = sqrt(σ² + 1e-12). An input x becomes z = (x − μ) / σ; a prediction p in standardised
/// units is published as p·σ + μ. Because x is counted before it is standardised, |z| ≤ √(n−1):
/// the first steps of a stream cannot blow up (the first input is always 0).
public enum RunningStandardizer {
    static let varianceFloor = 1e-12

    /// Counts `x` (n floats) into the statistics and writes its standardised value to `z`.
    @inline(__always)
    public static func observe(_ x: UnsafePointer<Float>, into z: UnsafeMutablePointer<Float>, count: inout Double,
                               mean: UnsafeMutablePointer<Double>, m2: UnsafeMutablePointer<Double>, n: Int) {
        count += 1
        for j in 0..<n {
            let v = Double(x[j])
            let delta = v - mean[j]
            mean[j] += delta / count
            m2[j] += delta * (v - mean[j])
        }
        standardize(x, into: z, count: count, mean: mean, m2: m2, n: n)
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
