import Foundation

/// One time scale of the anomaly score's context: a tiny online clustering of the last `window`
/// block means (blocks of `block` steps), scaled to the range of all earlier block means, with a
/// peaks-over-threshold tail fitted online to the distance from each pattern to its nearest
/// prototype. A pattern unlike any seen recently scores its tail surprise, in decades.
///
/// It is the cheap analogue of the context novelty that the best NAB detectors (ARTime, CAD OSE)
/// use. State: the block accumulator (2 doubles, kept with the scorer's other per-step fields so a
/// step touches few cache lines) and `stateSize` doubles touched once per block; zero for a new
/// stream.
enum MotifMemory {
    static let window = 4, prototypes = 16
    static let eta = 0.035, vigilance = 0.2, usageDecay = 0.999
    static let tau = 0.95, kappa = 0.06, betaRate = 0.015, meanRate = 0.05, weight = 3.0
    /// The block means' range grows by at most `growth` of its width a block after `growthAfter` blocks.
    static let growth = 2.0, growthAfter = 200

    static let blocksAt = 0, lowAt = 1, highAt = 2, usedCountAt = 3, scoredAt = 4
    static let thresholdAt = 5, betaAt = 6, meanDistanceAt = 7, excessesAt = 8
    static let windowAt = 9
    static let centresAt = windowAt + window
    static let usageAt = centresAt + prototypes * window
    static let stateSize = usageAt + prototypes

    /// Feeds x_t (`t`: 0-based step, `warm`: steps before anything scores) into the block
    /// accumulator `acc` (sum, count); at the end of a block, scores the pattern against the
    /// memory `s`. Returns the surprise S_m, > 0 only at the end of a block.
    @inline(__always)
    static func step(_ s: UnsafeMutablePointer<Double>, accumulator acc: UnsafeMutablePointer<Double>, x: Double, t: Int, block: Int,
                     warm: Int) -> Double {
        acc[0] += x
        acc[1] += 1
        guard Int(acc[1]) >= block else { return 0 }
        return endBlock(s, mean: acc[0] / Double(block), accumulator: acc, t: t, warm: warm)
    }

    private static func endBlock(_ s: UnsafeMutablePointer<Double>, mean v: Double, accumulator acc: UnsafeMutablePointer<Double>, t: Int,
                                 warm: Int) -> Double {
        acc[0] = 0
        acc[1] = 0
        if s[blocksAt] == 0 { s[lowAt] = v; s[highAt] = v }
        let win = s + windowAt
        for j in 0..<(window - 1) { win[j] = win[j + 1] }
        win[window - 1] = v
        s[blocksAt] += 1
        var surprise = 0.0
        let range = s[highAt] - s[lowAt]
        if Int(s[blocksAt]) >= window && range > 0 {
            withUnsafeTemporaryAllocation(of: Double.self, capacity: window) { fb in
                let f = fb.baseAddress!
                for j in 0..<window { f[j] = min(1.5, max(-0.5, (win[j] - s[lowAt]) / range)) }
                var best = 1e9, nearest = -1
                let used = Int(s[usedCountAt])
                for k in 0..<used {
                    let c = s + centresAt + k * window
                    var d = 0.0
                    for j in 0..<window { d += abs(f[j] - c[j]) }
                    d /= Double(window)
                    if d < best { best = d; nearest = k }
                }
                if nearest < 0 { best = 0 }
                s[scoredAt] += 1
                let scored = s[scoredAt]
                // Score against the tail fitted so far, then update the tail.
                if t > warm && scored > Double(2 * window) && s[betaAt] > 0 && best > s[thresholdAt] {
                    surprise = weight * (-log10(1 - tau) + (best - s[thresholdAt]) / s[betaAt] / M_LN10)
                }
                s[meanDistanceAt] += (abs(best) - s[meanDistanceAt]) * max(meanRate, 1 / (scored + 1))
                if best > s[thresholdAt] {
                    s[excessesAt] += 1
                    s[betaAt] += ((best - s[thresholdAt]) - s[betaAt]) * max(betaRate, 1 / s[excessesAt])
                    s[thresholdAt] += kappa * s[meanDistanceAt] * tau
                } else {
                    s[thresholdAt] -= kappa * s[meanDistanceAt] * (1 - tau)
                }
                // Learn: the nearest prototype moves toward the pattern, or the least used is replaced.
                for k in 0..<used { s[usageAt + k] *= usageDecay }
                if nearest >= 0 && best < vigilance {
                    let c = s + centresAt + nearest * window
                    for j in 0..<window { c[j] += eta * (f[j] - c[j]) }
                    s[usageAt + nearest] += 1
                } else {
                    var slot = used
                    if used < prototypes {
                        s[usedCountAt] += 1
                    } else {
                        slot = 0
                        for k in 1..<prototypes where s[usageAt + k] < s[usageAt + slot] { slot = k }
                    }
                    (s + centresAt + slot * window).update(from: f, count: window)
                    s[usageAt + slot] = 1
                }
            }
        }
        // After enough blocks to know the range, it grows by at most twice its width a block.
        var counted = v
        if Int(s[blocksAt]) > growthAfter && s[highAt] > s[lowAt] {
            let r = growth * (s[highAt] - s[lowAt])
            counted = min(max(v, s[lowAt] - r), s[highAt] + r)
        }
        s[lowAt] = min(s[lowAt], counted)
        s[highAt] = max(s[highAt], counted)
        return surprise
    }
}
