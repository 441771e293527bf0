import RecurdForecast
import RecurdNumerics

/// DESIGN §3's per-stream bookkeeping, applied to a `StreamRecord` at each step: the progressive
/// loss, the window, the running standardisation. `recurd fit` (`OnlineLearner`) and the daemon
/// drive it the same way, so that the daemon with `--sync-learning` and one stream gives exactly
/// what `fit` gives:
///
/// 1. `prepare` before step t is predicted: standardise x_t into the model's input; with
///    next-step targets, resolve the previous step's target (progressive loss; the entry
///    (x_{t−1}, x_t, s_{t−2}) joins the window, which is due after k1 new entries).
/// 2. The caller runs any due update, then predicts step t.
/// 3. `finish` after the prediction, while the record still holds s_{t−1}: keep the logits;
///    keep s_{t−1} if step t's entry can start a window; with an explicit target, resolve it now
///    (loss; the entry (x_t, y_t, s_{t−1}) joins the window).
///
/// A step that cannot be learnt from (NO_LEARN, learning off, a producer outside `trainers/`, an
/// explicit target under next-step targets) is neither an input nor a target of any window: it
/// ends the window's run: the window restarts at the next learnable step, so a window
/// always replays consecutive steps.
public final class StreamLearning {
    public let layout: StreamRecordLayout
    private let outputs: Int
    private let inputSize: Int
    private let tokenInput: Bool
    /// (O) scratch for the loss.
    private let lossScratch: FloatBuffer
    /// (O) scratch for a standardised explicit target.
    private let targetScratch: FloatBuffer
    /// (O) scratch for the standardised published forecast.
    private let publishedScratch: FloatBuffer

    public init(layout: StreamRecordLayout) {
        self.layout = layout
        let a = layout.architecture
        outputs = a.outputSize
        if case .tokens = a.input { tokenInput = true; inputSize = 0 } else { tokenInput = false; inputSize = a.input.layerInputSize }
        lossScratch = FloatBuffer(count: outputs)
        // Also x_t's unclamped z when standardising (next-step targets: as many as the inputs).
        targetScratch = FloatBuffer(count: max(outputs, inputSize))
        publishedScratch = FloatBuffer(count: outputs)
    }

    /// What a step did to the record's learning.
    public struct Outcome {
        /// The progressive loss resolved, if any.
        public var loss: Float?
        /// The stream's window became due for an update.
        public var due = false
        /// The step's anomaly score, when scores are on and the step has one.
        public var anomaly: Float?
    }

    /// Before step t. `features`: x_t in the stream's units (nil for token input, which passes
    /// `token`); `modelInput`: where the model's input row is written (features only).
    /// `explicitTarget`: step t carries its own target. `learnable`: step t may enter the window.
    public func prepare(_ r: StreamRecord, features: UnsafePointer<Float>?, token: Int32, modelInput: UnsafeMutablePointer<Float>?,
                        explicitTarget: Bool, learnable: Bool) -> Outcome {
        var x: UnsafePointer<Float>? = features
        if let features, let modelInput {
            if layout.standardize {
                var n = r.standardCount
                RunningStandardizer.observe(features, into: modelInput, count: &n, mean: r.standardMean, m2: r.standardM2, n: inputSize)
                r.standardCount = n
            } else {
                modelInput.update(from: features, count: inputSize)
            }
            x = UnsafePointer(modelInput)
        }
        var out = Outcome()
        let flags = r.flags
        let resolves = flags.contains(.hasPrediction) && !explicitTarget
        if let context = r.textContext {
            // The published distribution was the context model's mixture: score that, then
            // let the contexts learn the byte.
            let symbol = UInt8(truncatingIfNeeded: token)
            if resolves {
                // The distribution kept from publishing, else (`fit` does not publish) the logits',
                // normalised once for however many bytes the context model asks about.
                var normalizer: Float?
                let p = TextContextModel.observe(context, buckets: layout.textBuckets, symbol: symbol) { s in
                    if let q = TextContextModel.networkProbability(context, of: s) { return Double(q) }
                    let logSum = normalizer ?? Loss.logNormalizer(r.lastLogits, count: outputs, scratch: lossScratch.pointer)
                    normalizer = logSum
                    return exp(-Double(logSum - r.lastLogits[Int(s)]))
                }
                out.loss = Float(-log(max(p, 1e-30)))
            } else {
                TextContextModel.learn(context, buckets: layout.textBuckets, symbol: symbol)
            }
        } else if resolves {
            // x_t is the target of step t−1.
            let target = lossTarget(r, features: features, modelInput: x)
            if layout.combine, let features {
                out.loss = publishedLoss(r, features: features, standardized: target!)
            } else {
                out.loss = Loss.value(layout.architecture.head, logits: r.lastLogits, count: outputs, values: target, classIndex: Int(token),
                                      scratch: lossScratch.pointer)
            }
        }
        if layout.anomalyScorers > 0 {
            if layout.forecasting, let features {
                var score = -Double.infinity
                for j in 0..<inputSize {
                    let p: Double = resolves ? Double(r.published[j]) : .nan
                    let s = AnomalyScorer.update(r.anomalyState(j), x: Double(features[j]), prediction: p)
                    score = s.isNaN || score.isNaN ? .nan : max(score, s)
                }
                out.anomaly = Float(score)
            } else if let loss = out.loss {
                out.anomaly = score(r, loss: loss)
            }
        }
        if layout.nextStepTargets, layout.window != nil {
            // x_t becomes step t−1's target only if step t is learnable too: a NO_LEARN step, or
            // one from a producer outside `trainers/`, must not choose what the model learns,
            // as input or as target. Otherwise the run ends here and restarts at the next
            // learnable step.
            if resolves && learnable && flags.contains(.previousLearnable), let w = r.windowIfInUse, w.isStarted {
                out.due = w.pushTarget(features: x, token: token)
            } else if learnable && !explicitTarget, let w = r.window {
                w.restart(features: x, token: token)
            }
        }
        // Read again: taking the window may have marked it in use.
        var after = r.flags
        after.remove(.hasPrediction)
        if learnable && !(explicitTarget && layout.nextStepTargets) { after.insert(.previousLearnable) } else { after.remove(.previousLearnable) }
        r.flags = after
        return out
    }

    /// After step t's prediction (`logits`), before the record's state becomes s_t:
    /// `stateBefore` is s_{t−1}, `modelInput` the step's (standardised) input row or nil for
    /// tokens. With an explicit target (`targetValues` in the stream's units, or `targetClass`),
    /// resolves it.
    public func finish(_ r: StreamRecord, logits: UnsafePointer<Float>, stateBefore: UnsafePointer<Float>, modelInput: UnsafePointer<Float>?,
                       token: Int32, explicitTarget: Bool, targetValues: UnsafePointer<Float>?, targetClass: Int32) -> Outcome {
        var out = Outcome()
        let learnable = r.flags.contains(.previousLearnable)
        guard explicitTarget else {
            r.lastLogits.update(from: logits, count: outputs)
            if layout.nextStepTargets { r.flags.insert(.hasPrediction) }
            if layout.window != nil {
                if layout.nextStepTargets {
                    if learnable { r.window?.saveState(stateBefore) }
                } else if learnable, let w = r.windowIfInUse {
                    // Explicit targets: a learnable step without one stays in the run (no loss of
                    // its own), so a sequence labelled at its end learns through all its steps.
                    // Only once the stream has sent a target: one that never does (predictions
                    // only) keeps no window.
                    w.saveState(stateBefore)
                    out.due = w.append(features: modelInput, token: token, targetValues: nil, targetClass: 0, labelled: false)
                } else {
                    r.windowIfInUse?.markBroken()
                }
            }
            return out
        }
        var y = targetValues
        if let targetValues, layout.standardize {
            RunningStandardizer.standardize(targetValues, into: targetScratch.pointer, count: r.standardCount, mean: r.standardMean,
                                            m2: r.standardM2, n: inputSize)
            y = UnsafePointer(targetScratch.pointer)
        }
        out.loss = Loss.value(layout.architecture.head, logits: logits, count: outputs, values: y, classIndex: Int(targetClass),
                              scratch: lossScratch.pointer)
        // A forecasting stream's scorers are its features' (fed in `prepare`), not the loss's.
        if layout.anomalyScorers > 0, !layout.forecasting, let loss = out.loss { out.anomaly = score(r, loss: loss) }
        if !layout.nextStepTargets, layout.window != nil {
            if learnable, let w = r.window {
                w.saveState(stateBefore)
                out.due = w.append(features: modelInput, token: token, targetValues: y, targetClass: targetClass)
            } else {
                r.windowIfInUse?.markBroken()
            }
        }
        r.flags.remove(.previousLearnable)
        return out
    }

    /// Writes what the stream publishes for its step: the prediction in the stream's units
    /// (destandardised when standardising) or, when combining, the combination of it with the
    /// simple forecasters, fed the step's input `features` (the stream's units).
    public func publishable(_ r: StreamRecord, outputs p: UnsafePointer<Float>, features: UnsafePointer<Float>? = nil,
                            into y: UnsafeMutablePointer<Float>) {
        if let context = r.textContext {
            TextContextModel.distribution(context, buckets: layout.textBuckets, base: p, into: y)
            return
        }
        if layout.standardize {
            RunningStandardizer.destandardize(p, into: y, count: r.standardCount, mean: r.standardMean, m2: r.standardM2, n: inputSize)
        } else {
            y.update(from: p, count: outputs)
        }
        if layout.combine, let features {
            for j in 0..<outputs {
                let combined = ForecastCombiner.step(r.combinerState(j), x: Double(features[j]), network: Double(y[j]))
                // Never a non-finite forecast: the network's, else persistence.
                if combined.isFinite && Float(combined).isFinite { y[j] = Float(combined) } else if !y[j].isFinite { y[j] = features[j] }
            }
        }
        if layout.publishedCount > 0 { r.published.update(from: y, count: outputs) }
    }

    /// x_t as losses measure it: standardised without the clamp the model sees it through (the
    /// loss is that of the prediction, as published), else the model's input as it is.
    private func lossTarget(_ r: StreamRecord, features: UnsafePointer<Float>?, modelInput x: UnsafePointer<Float>?) -> UnsafePointer<Float>? {
        guard layout.standardize, let features else { return x }
        RunningStandardizer.standardize(features, into: targetScratch.pointer, count: r.standardCount, mean: r.standardMean,
                                        m2: r.standardM2, n: inputSize)
        return UnsafePointer(targetScratch.pointer)
    }

    /// The published forecast's loss against x_t: mean squared error in standard deviations when
    /// standardising (against `z`, x_t's unclamped z; the same unit as the network's loss), else in
    /// the stream's units.
    private func publishedLoss(_ r: StreamRecord, features: UnsafePointer<Float>, standardized z: UnsafePointer<Float>) -> Float {
        if layout.standardize {
            RunningStandardizer.standardize(r.published, into: publishedScratch.pointer, count: r.standardCount, mean: r.standardMean,
                                            m2: r.standardM2, n: inputSize)
            return Loss.value(.linear, logits: publishedScratch.pointer, count: outputs, values: z, classIndex: 0, scratch: lossScratch.pointer)
        }
        return Loss.value(.linear, logits: r.published, count: outputs, values: features, classIndex: 0, scratch: lossScratch.pointer)
    }

    /// Streams that do not forecast their input score the surprise of their progressive loss.
    private func score(_ r: StreamRecord, loss: Float) -> Float {
        guard loss.isFinite else { return .nan }
        return Float(AnomalyScorer.update(r.anomalyState(0), x: Double(loss), prediction: .nan))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
