/// Applies TBPTT updates (DESIGN §3.3): gathers due windows, runs the batched forward and
/// backward, clips the global gradient norm and steps the optimiser.
///
/// Windows of different lengths (young streams) go through the engine in groups of equal
/// length; every window's loss counts equally (loss = mean over windows).
public final class Trainer {
    public let layout: ParameterLayout
    public let configuration: LearningConfiguration
    public let optimizer: Optimizer
    /// Global gradient-norm limit (0: none); starts at the configuration's and may be changed.
    public var clip: Float
    public let gradients: FloatBuffer
    private let engine: WindowEngine

    /// Norm of the last update's gradient before clipping.
    public private(set) var lastGradientNorm: Float = 0
    /// Updates skipped because the loss or the gradient was not finite.
    public private(set) var skippedUpdates = 0
    /// Windows left out of the last update because their own loss or gradient was not finite.
    public private(set) var lastExcludedWindows = 0

    public init(layout: ParameterLayout, configuration: LearningConfiguration, maxWindows: Int = 1) {
        self.layout = layout
        self.configuration = configuration
        clip = configuration.clip
        optimizer = Optimizer(kind: configuration.optimizer, learningRate: configuration.learningRate, parameterCount: layout.count)
        gradients = FloatBuffer(count: layout.count)
        engine = WindowEngine(layout: layout, maxWindows: maxWindows, maxLength: configuration.k2)
    }

    /// Adds the gradient of (mean over `windows` of each window's loss) into `gradients` without
    /// updating; returns that mean loss. Exposed for tests of batching.
    public func accumulateGradient(windows: [TrainingWindow], weights: UnsafePointer<Float>) -> Double {
        let total = windows.count
        var loss = 0.0
        var byLength: [Int: [TrainingWindow]] = [:]
        for w in windows where w.count > 0 { byLength[w.count, default: []].append(w) }
        for length in byLength.keys.sorted() {
            let group = byLength[length]!
            let lossSteps = min(configuration.k1, length)
            var index = 0
            while index < group.count {
                let chunk = min(engine.maxWindows, group.count - index)
                engine.begin(windows: chunk, length: length, lossSteps: lossSteps)
                for w in 0..<chunk { group[index + w].load(into: engine, window: w) }
                engine.forward(weights: weights)
                loss += engine.loss(lossScale: 1 / Float(lossSteps * total))
                engine.backward(weights: weights, gradients: gradients.pointer)
                index += chunk
            }
        }
        return loss / Double(total)
    }

    /// One update from `windows` applied to `weights` in place; returns the batch loss, or nil if
    /// the update was skipped because the loss or gradient was not finite (weights untouched).
    @discardableResult
    public func update(windows: [TrainingWindow], weights: UnsafeMutablePointer<Float>) -> Double? {
        gradients.zero()
        var loss = accumulateGradient(windows: windows, weights: weights)
        var norm = GradientClipping.norm(gradients.pointer, count: layout.count)
        lastExcludedWindows = 0
        if !(loss.isFinite && norm.isFinite) && windows.count > 1 {
            // One stream's overflow must not cost every other stream its update: the windows
            // that are finite on their own make the update (each tried alone, only in this case).
            let finite = windows.filter { w in
                gradients.zero()
                let l = accumulateGradient(windows: [w], weights: weights)
                return l.isFinite && GradientClipping.norm(gradients.pointer, count: layout.count).isFinite
            }
            if !finite.isEmpty {
                lastExcludedWindows = windows.count - finite.count
                gradients.zero()
                loss = accumulateGradient(windows: finite, weights: weights)
                norm = GradientClipping.norm(gradients.pointer, count: layout.count)
            }
        }
        for w in windows { w.pending = 0 }
        lastGradientNorm = norm
        guard loss.isFinite, norm.isFinite else {
            skippedUpdates += 1
            return nil
        }
        // Clipping folded into the optimiser's single pass over the gradient.
        optimizer.apply(parameters: weights, gradients: gradients.pointer, count: layout.count,
                        gradientScale: GradientClipping.coefficient(norm: norm, maxNorm: clip))
        return loss
    }
}
