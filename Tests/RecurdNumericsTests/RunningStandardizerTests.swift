import RecurdNumerics
import RecurdTestSupport
import Testing

/// The running standardiser: Welford's statistics on ordinary data, and a sensor's glitch
/// bounded in what it counts and in what the model sees.
@Suite struct RunningStandardizerTests {
    /// Streams `xs` (one feature) through the standardiser; returns what the model saw of each
    /// input and the final mean and population variance.
    static func run(_ xs: [Float]) -> (z: [Float], mean: Double, variance: Double) {
        var count = 0.0, mean = 0.0, m2 = 0.0
        var out: [Float] = []
        for var x in xs {
            var z: Float = 0
            RunningStandardizer.observe(&x, into: &z, count: &count, mean: &mean, m2: &m2, n: 1)
            out.append(z)
        }
        return (out, mean, m2 / count)
    }

    static func noise(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in 50 + 4 * Float.random(in: -1...1, using: &rng) }
    }

    /// On data without glitches the statistics are the two-pass mean and population variance.
    @Test func ordinaryDataGetsWelfordsStatistics() {
        let xs = Self.noise(5000, seed: 1)
        let (z, mean, variance) = Self.run(xs)
        let m = xs.reduce(0.0) { $0 + Double($1) } / Double(xs.count)
        let v = xs.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(xs.count)
        #expect(abs(mean - m) < 1e-9 * m && abs(variance - v) < 1e-9 * v, "mean \(mean) against \(m), variance \(variance) against \(v)")
        #expect(z[0] == 0)
        #expect(abs(Double(z[4999]) - (Double(xs[4999]) - m) / v.squareRoot()) < 1e-5)
    }

    /// A lone 1e9 after a thousand readings: it is counted as at most 8 standard deviations and
    /// the model sees 8. The statistics, and so what the model sees of the readings after it, stay
    /// within a few per cent of the clean stream's. (Counted in full, the glitch made σ ≈ 3e7 and
    /// every later reading a z of about −0.03 ± 0.0001: the network saw a constant.)
    @Test func aGlitchIsCountedBoundedAndSeenClamped() {
        let clean = Self.noise(2000, seed: 2)
        var glitched = clean
        glitched[1000] = 1e9
        let a = Self.run(clean), b = Self.run(glitched)
        #expect(b.z[1000] == RunningStandardizer.modelLimit)
        #expect(abs(b.mean - a.mean) < 0.02 * a.variance.squareRoot(), "mean \(b.mean) against \(a.mean)")
        #expect(abs(b.variance / a.variance - 1) < 0.05, "variance \(b.variance) against \(a.variance)")
        let worst = (1001..<2000).map { abs(b.z[$0] - a.z[$0]) }.max()!
        #expect(worst < 0.1, "what the model saw after the glitch moved by up to \(worst) standard deviations")
    }

    /// The bound waits for the first ten readings (too few to know a spread) and for a stream
    /// whose readings have all been equal (a flat start has no spread to bound by), and a level
    /// shift is still learnt: after a step of 17 standard deviations the mean keeps moving.
    @Test func theBoundWaitsForASpreadAndShiftsAreStillCounted() {
        // The fifth reading counted in full: z = (1000 − 201.2) / 399.4 ≈ 2.0 (bounded it would
        // be counted as 5.5 and seen as 8).
        let early = Self.run([1, 2, 1, 2, 1000]).z[4]
        #expect(abs(early - 2) < 0.01, "the fifth reading is counted in full: z \(early)")
        let late = Self.run([1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1000])
        #expect(late.z[10] == RunningStandardizer.modelLimit && late.mean < 2, "the eleventh is bounded: z \(late.z[10]), mean \(late.mean)")
        let flat = Self.run(Array(repeating: 5, count: 20) + [100])
        #expect(abs(flat.mean - 200 / 21.0) < 1e-9, "after a flat start the first movement is counted in full: mean \(flat.mean)")
        let xs = Self.noise(1000, seed: 3) + Self.noise(1000, seed: 4).map { $0 + 40 }
        let (_, mean, variance) = Self.run(xs)
        #expect(mean > 60 && variance > 100, "after 1000 readings at the new level: mean \(mean), variance \(variance)")
    }
}
