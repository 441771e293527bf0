import Foundation

/// A stream's anomaly score (`--anomaly-scores`, DESIGN §4 output bit2): per step a number in
/// [0, 1) saying how surprising the step's value was, from the stream's own history; no labels.
///
/// Three parts, each a surprise S ≥ 0, the largest of which counts:
/// - **value range** S_v = 5·(1 + e) when the value lies outside the range seen so far by more
///   than 2 % of it (e: the excess in units of the range; the range shrinks very slowly toward the
///   running mean, so old extremes fade);
/// - **error record** S_r = 2.5·a/M when the forecast's absolute error a beats the decaying record
///   M of earlier errors (the part that depends on the prediction);
/// - **context** S_m from two `MotifMemory` time scales (blocks of 12 and 24 steps): the recent
///   block-level trajectory compared with the patterns seen recently.
///
/// raw = S/(S + 10); the published score is raw only when it beats every raw of the previous 30
/// steps, else 0, so that an episode alarms once. Nothing scores in the first 50 steps; the first
/// step is NaN (no prediction before it). After a step is scored, its value enters the range and
/// the error record with bounded growth (and, after 200 blocks, the block means' range): a
/// sensor's 1e9 is one alarm, not a range of 1e9 that hides every later range break. Tuned on the
/// Numenta Anomaly Benchmark; state is
/// `stateSize` doubles, zero for a new stream. A port of the reference `anomaly_ref.py`
/// (Tests/Fixtures/forecast), which the tests match step by step.
public enum AnomalyScorer {
    static let rangeDecay = 3e-6, meanRate = 0.001, tolerance = 0.02, rangeWeight = 5.0
    static let recordWeight = 2.5, recordDecay = 1e-4
    static let blocks = (12, 24)
    static let squash = 10.0, suppression = 30, warm = 50
    /// Bounded growth once scoring, so that one glitch cannot blind the score afterwards (the
    /// step's own score sees the value as it is): the range grows by at most its own width a step,
    /// the error record by at most a factor 4.
    static let rangeGrowth = 1.0, recordGrowth = 4.0

    // What every step touches comes first (two cache lines): the range, the error record, the
    // suppression ring's position and count of non-zero entries, the motifs' block accumulators.
    static let tAt = 0, lowAt = 1, highAt = 2, meanAt = 3, recordAt = 4, ringPosAt = 5, ringNonZeroAt = 6
    static let accumulator1At = 7, accumulator2At = 9
    static let ringAt = 12
    static let motif1At = ringAt + suppression
    static let motif2At = motif1At + MotifMemory.stateSize
    /// Doubles of state per scored value.
    public static let stateSize = motif2At + MotifMemory.stateSize

    /// The score of value `x` given `prediction`, the forecast of it made a step earlier (NaN when
    /// there was none). NaN on a stream's first step, else in [0, 1).
    public static func update(_ s: UnsafeMutablePointer<Double>, x: Double, prediction: Double) -> Double {
        let t = Int(s[tAt])
        var rangeSurprise = 0.0, recordSurprise = 0.0
        if t == 0 {
            s[lowAt] = x; s[highAt] = x; s[meanAt] = x
        } else {
            if !prediction.isNaN {
                let a = abs(x - prediction)
                if t > warm && s[recordAt] > 0 && a > s[recordAt] { recordSurprise = recordWeight * a / s[recordAt] }
                let counted = t > warm && s[recordAt] > 0 ? min(a, recordGrowth * s[recordAt]) : a
                s[recordAt] = max(counted, s[recordAt] * (1 - recordDecay))
            }
            let range = s[highAt] - s[lowAt]
            let excess: Double = range > 0 ? max(x - s[highAt], s[lowAt] - x) / range : (x != s[highAt] ? 1 : 0)
            if excess > tolerance && t > warm { rangeSurprise = rangeWeight * (1 + excess) }
            let counted = t > warm && range > 0 ? min(max(x, s[lowAt] - rangeGrowth * range), s[highAt] + rangeGrowth * range) : x
            s[meanAt] += (counted - s[meanAt]) * max(meanRate, 1 / Double(t + 1))
            s[highAt] -= rangeDecay * (s[highAt] - s[meanAt])
            s[lowAt] -= rangeDecay * (s[lowAt] - s[meanAt])
            s[highAt] = max(s[highAt], counted)
            s[lowAt] = min(s[lowAt], counted)
        }
        let m1 = MotifMemory.step(s + motif1At, accumulator: s + accumulator1At, x: x, t: t, block: blocks.0, warm: warm)
        let m2 = MotifMemory.step(s + motif2At, accumulator: s + accumulator2At, x: x, t: t, block: blocks.1, warm: warm)
        let surprise = max(rangeSurprise, recordSurprise, m1, m2)
        let raw = surprise / (surprise + squash)
        // Most steps score nothing and the ring is all zeros: then it need not be read.
        var recent = 0.0
        if s[ringNonZeroAt] > 0 {
            for i in 0..<suppression { recent = max(recent, s[ringAt + i]) }
        }
        let score = raw > recent ? raw : 0
        let pos = Int(s[ringPosAt])
        if raw > 0 || s[ringNonZeroAt] > 0 {
            if s[ringAt + pos] > 0 { s[ringNonZeroAt] -= 1 }
            if raw > 0 { s[ringNonZeroAt] += 1 }
            s[ringAt + pos] = raw
        }
        s[ringPosAt] = Double((pos + 1) % suppression)
        s[tAt] = Double(t + 1)
        return t == 0 ? .nan : score
    }
}
