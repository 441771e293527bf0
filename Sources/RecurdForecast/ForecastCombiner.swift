import Foundation

/// One feature's online combination of the network's forecast with nine cheap forecasters
/// (DESIGN §3.7 (b)), so that what a stream publishes starts as persistence and moves to
/// whatever has been forecasting best lately.
///
/// Experts, each a forecast of x_{t+1} made after x_t:
/// 0 persistence · 1 running mean · 2–4 EWMA (rates 0.5, 0.1, 0.02) · 5 RLS-AR(8) with intercept
/// on the scaled differences (forgetting 0.999, covariance trace capped) · 6 persistence + drift ·
/// 7 slow EWMA (0.005) · 8 spike-robust persistence · 9 the network.
///
/// Level 1 is a discounted Hedge over the ten on squared errors scaled by persistence's running
/// MSE (each step's loss capped at 16, discount 0.98, η 0.25): it follows the best expert of the
/// last ~50 steps. Level 2 is a slow Hedge (discount 0.9995, η 1) over {level-1 mix,
/// persistence, running mean} that starts at (¼, ½, ¼): the safety net that keeps the published
/// forecast near the better baseline whenever the mix loses to it over the long run.
///
/// An outlier gate in front keeps a lone glitch (a sensor's 1e9 or −9999) from poisoning the
/// experts and the loss scale for thousands of steps: a value far from the last one the experts
/// saw (more than 40 running mean |differences|) and no nearer the spike-robust level than half
/// that is held back. Nothing learns from it; the forecast published is the previous one (or the
/// value, once most of this stream's far values have been confirmed). The next value
/// confirms it (a level shift, a burst) when it is far from the value before the held one too:
/// the held value is then replayed first, exactly as if it had passed. Otherwise it is dropped.
///
/// The state is `stateSize` doubles, all zero for a new stream (initialised on its first step),
/// kept in the stream's record. Pure maths: a port of the reference `combiner_ref.py`
/// (Tests/Fixtures/forecast), which the tests match step by step.
public enum ForecastCombiner {
    public static let experts = 10
    static let eta1 = 0.25, gamma1 = 0.98, clip1 = 16.0
    static let eta2 = 1.0, gamma2 = 0.9995
    /// Level 2's per-step loss cap: only so that no loss becomes infinite (it never binds on real
    /// data; 0.9995·∞ would stay ∞ for good).
    static let clip2 = 1e6
    /// The loss scale's floor: float32's resolution of x (relative), and an absolute one. After a
    /// long constant run persistence's running MSE decays towards 0, and every tiny error of the
    /// other forecasters would look enormous, locking level 2 onto persistence for a long time.
    static let scaleFloorRelative = 1e-12, scaleFloorAbsolute = 1e-30
    static let prior: (Double, Double, Double) = (0.25, 0.5, 0.25)
    static let scaleRate = 0.01
    static let arOrder = 8, arLambda = 0.999, arDelta = 10.0, arTraceCap = 1e3, arClip = 5.0
    static let robustC = 3.0, robustRate = 0.02
    /// The gate: a far value is more than `outlierDistance` running mean |differences| away;
    /// `levelShare`, `warmup` steps, the discount of the far and confirmed counts, and the cap
    /// on persistence's squared error (in units of the scale) before it updates the scale.
    static let outlierDistance = 40.0, levelShare = 0.5, warmup = 10, confirmDiscount = 0.9, scaleHuber = 1000.0

    // Offsets in the state (doubles).
    static let t = 0, scale = 1, previous = 2, sum = 3, ewma5 = 4, ewma1 = 5, ewma02 = 6, ewma005 = 7
    static let drift = 8, diffScale = 9, diffCount = 10, level = 11, deviation = 12
    static let arWeights = 13                       // 9
    static let arP = arWeights + 9                  // 81
    static let arHistory = arP + 81                 // 8
    static let loss1 = arHistory + 8                // 10
    static let weight1 = loss1 + experts            // 10
    static let loss2 = weight1 + experts            // 3
    static let weight2 = loss2 + 3                  // 3
    static let forecasts = weight2 + 3              // 10
    static let mixInputs = forecasts + experts      // 3
    static let held = mixInputs + 3, heldValue = held + 1, heldPrevious = held + 2, heldNetwork = held + 3
    static let farCount = held + 4, confirmedCount = held + 5
    /// Doubles of state per feature.
    public static let stateSize = held + 6

    /// Feeds x_t with the network's forecast of x_{t+1} (NaN: none, counted as persistence) and
    /// returns the forecast of x_{t+1} to publish.
    public static func step(_ s: UnsafeMutablePointer<Double>, x: Double, network: Double) -> Double {
        switch gate(s, x: x) {
        case .hold:
            s[heldNetwork] = network
            return (s[confirmedCount] + 1) / (s[farCount] + 2) > 0.5 ? x : level2(s)
        case .confirm:
            _ = process(s, x: s[heldValue], network: s[heldNetwork])
        case .pass:
            break
        }
        return process(s, x: x, network: network)
    }

    private enum Gate { case pass, hold, confirm }

    /// Holds x back, confirms the value held back (to be replayed before x), or lets x pass.
    private static func gate(_ s: UnsafeMutablePointer<Double>, x: Double) -> Gate {
        let limit = outlierDistance * s[diffScale]
        if s[held] != 0 {
            s[held] = 0
            if abs(x - s[heldPrevious]) > limit {
                s[confirmedCount] += 1
                return .confirm
            }
        }
        if Int(s[t]) < warmup || s[diffScale] <= 0 || abs(x - s[previous]) <= limit
            || abs(x - s[level]) <= levelShare * abs(x - s[previous]) {
            return .pass
        }
        s[farCount] = confirmDiscount * s[farCount] + 1
        s[confirmedCount] *= confirmDiscount
        s[held] = 1
        s[heldValue] = x
        s[heldPrevious] = s[previous]
        return .hold
    }

    @inline(__always)
    private static func level2(_ s: UnsafeMutablePointer<Double>) -> Double {
        s[weight2] * s[mixInputs] + s[weight2 + 1] * s[mixInputs + 1] + s[weight2 + 2] * s[mixInputs + 2]
    }

    /// One step of the experts and both levels on a value that passed the gate.
    private static func process(_ s: UnsafeMutablePointer<Double>, x: Double, network: Double) -> Double {
        let n = Int(s[t])
        if n == 0 { initialize(s) }
        if n >= 1 {
            // The losses of the forecasts made for x; persistence's squared error sets the scale.
            var e0 = (x - s[forecasts]) * (x - s[forecasts])
            // Against the floored scale: a scale of exactly 0 (a flat start) must be able to grow.
            if n >= warmup { e0 = min(e0, scaleHuber * max(s[scale], scaleFloorRelative * x * x, scaleFloorAbsolute)) }
            s[scale] += (e0 - s[scale]) * max(scaleRate, 1 / Double(n))
            let sc = max(s[scale], scaleFloorRelative * x * x, scaleFloorAbsolute)
            learn(s, losses: loss1, weights: weight1, inputs: forecasts, count: experts, x: x, scale: sc,
                  eta: eta1, gamma: gamma1, clip: clip1, offsets: (0, 0, 0))
            learn(s, losses: loss2, weights: weight2, inputs: mixInputs, count: 3, x: x, scale: sc,
                  eta: eta2, gamma: gamma2, clip: clip2, offsets: priorLosses)
        }
        updateExperts(s, x: x, n: n)
        s[forecasts + 9] = network.isNaN ? x : network
        var mix = 0.0
        for i in 0..<experts { mix += s[weight1 + i] * s[forecasts + i] }
        s[mixInputs] = mix
        s[mixInputs + 1] = s[forecasts]
        s[mixInputs + 2] = s[forecasts + 1]
        s[t] = Double(n + 1)
        return level2(s)
    }

    /// Level 2's starting weights as initial losses, −ln(w)/η.
    static let priorLosses: (Double, Double, Double) = (-log(prior.0) / eta2, -log(prior.1) / eta2, -log(prior.2) / eta2)

    private static func initialize(_ s: UnsafeMutablePointer<Double>) {
        s.update(repeating: 0, count: stateSize)
        for i in 0..<experts { s[weight1 + i] = 1 / Double(experts) }
        s[weight2] = prior.0
        s[weight2 + 1] = prior.1
        s[weight2 + 2] = prior.2
        for i in 0..<9 { s[arP + i * 9 + i] = arDelta }
    }

    /// Discounted Hedge: L_i ← γ·L_i + min(clip, (x − f_i)²/scale); w ∝ exp(−η(L + L0 − min)).
    /// `offsets`: L0 of the first three entries (level 2's prior), the others' is 0.
    @inline(__always)
    private static func learn(_ s: UnsafeMutablePointer<Double>, losses: Int, weights: Int, inputs: Int, count: Int,
                              x: Double, scale: Double, eta: Double, gamma: Double, clip: Double, offsets: (Double, Double, Double)) {
        @inline(__always) func offset(_ i: Int) -> Double { i == 0 ? offsets.0 : i == 1 ? offsets.1 : i == 2 ? offsets.2 : 0 }
        var lowest = Double.infinity
        for i in 0..<count {
            let e = x - s[inputs + i]
            s[losses + i] = gamma * s[losses + i] + min(clip, e * e / scale)
            lowest = min(lowest, s[losses + i] + offset(i))
        }
        var total = 0.0
        for i in 0..<count {
            let w = exp(-eta * (s[losses + i] + offset(i) - lowest))
            s[weights + i] = w
            total += w
        }
        for i in 0..<count { s[weights + i] /= total }
    }

    /// Updates the nine cheap experts with x_t and writes their forecasts of x_{t+1}.
    private static func updateExperts(_ s: UnsafeMutablePointer<Double>, x: Double, n: Int) {
        if n == 0 {
            s[ewma5] = x; s[ewma1] = x; s[ewma02] = x; s[ewma005] = x; s[level] = x
        }
        s[sum] += x
        s[ewma5] += 0.5 * (x - s[ewma5])
        s[ewma1] += 0.1 * (x - s[ewma1])
        s[ewma02] += 0.02 * (x - s[ewma02])
        s[ewma005] += 0.005 * (x - s[ewma005])
        var ar = x
        if n >= 1 {
            let d = x - s[previous]
            s[drift] += 0.02 * (d - s[drift])
            s[diffCount] += 1
            s[diffScale] += (abs(d) - s[diffScale]) / min(s[diffCount], 1000)
            let sc = s[diffScale] > 0 ? s[diffScale] : 1
            // A confirmed jump reaches the regression bounded by the gate's distance.
            ar = x + regress(s, max(-outlierDistance, min(outlierDistance, d / sc))) * sc
        }
        // Spike-robust persistence: the forecast from the state before x, then the update.
        var robust = x
        if s[deviation] > 0 {
            let dev = max(-robustC * s[deviation], min(robustC * s[deviation], x - s[level]))
            robust = s[level] + dev
        }
        s[deviation] += robustRate * (abs(x - s[level]) - s[deviation])
        s[level] += robustRate * (x - s[level])
        s[previous] = x
        let f = s + forecasts
        f[0] = x
        f[1] = s[sum] / Double(n + 1)
        f[2] = s[ewma5]
        f[3] = s[ewma1]
        f[4] = s[ewma02]
        f[5] = ar
        f[6] = x + s[drift]
        f[7] = s[ewma005]
        f[8] = robust
    }

    /// Recursive least squares on the last `arOrder` scaled differences with an intercept; returns
    /// the clamped prediction of the next scaled difference.
    private static func regress(_ s: UnsafeMutablePointer<Double>, _ y: Double) -> Double {
        let d = arOrder + 1
        let w = s + arWeights, p = s + arP, hist = s + arHistory
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * d) { buf in
            let phi = buf.baseAddress!, pphi = phi + d
            phi[0] = 1
            for k in 0..<arOrder { phi[k + 1] = hist[k] }
            var den = arLambda
            for i in 0..<d {
                var acc = 0.0
                for j in 0..<d { acc += p[i * d + j] * phi[j] }
                pphi[i] = acc
            }
            for i in 0..<d { den += phi[i] * pphi[i] }
            var err = y
            for i in 0..<d { err -= w[i] * phi[i] }
            let invDen = 1 / den, invLambda = 1 / arLambda
            for i in 0..<d { w[i] += pphi[i] * invDen * err }
            for i in 0..<d {
                let gi = pphi[i] * invDen
                let row = p + i * d
                for j in 0..<d { row[j] = (row[j] - gi * pphi[j]) * invLambda }
            }
            var trace = 0.0
            for i in 0..<d { trace += p[i * d + i] }
            // Flat stretches wind the covariance up until one step blows the forecast away.
            if trace > arTraceCap * Double(d) {
                let k = arTraceCap * Double(d) / trace
                for i in 0..<(d * d) { p[i] *= k }
            }
            for k in stride(from: arOrder - 1, to: 0, by: -1) { hist[k] = hist[k - 1] }
            hist[0] = y
            var prediction = w[0]
            for k in 0..<arOrder { prediction += w[k + 1] * hist[k] }
            return max(-arClip, min(arClip, prediction))
        }
    }
}
