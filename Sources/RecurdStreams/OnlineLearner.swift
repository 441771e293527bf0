import RecurdNumerics

/// DESIGN §3 for one stream with next-step targets: predict, then learn (`recurd fit`).
///
/// Each `observe` call is one arriving step x_t. It first resolves the previous step's target
/// (x_t itself): records the progressive loss of the previous prediction, appends
/// (x_{t−1}, x_t, s_{t−2}) to the window and runs an update when k1 entries are new; only then
/// does it predict step t with the weights as they now are. The bookkeeping is the daemon's
/// (`StreamLearning` on a `StreamRecord`).
public final class OnlineLearner {
    public let model: Model
    public let configuration: LearningConfiguration
    public let trainer: Trainer
    private let engine: StepEngine
    private let learning: StreamLearning
    private let record: StreamRecord
    private let core: UnsafeMutableRawPointer
    private let windowMemory: UnsafeMutableRawPointer
    private let stateBefore: FloatBuffer

    /// Updates applied.
    public private(set) var updates = 0

    /// Checks that next-step targets make sense for `architecture`; returns the problem or nil.
    public static func nextStepProblem(_ architecture: ModelArchitecture) -> String? {
        switch (architecture.input, architecture.head) {
        case (.tokens(let vocabulary, _), .softmax):
            return architecture.outputSize == vocabulary ? nil
                : "next-token targets need a softmax head over the vocabulary (output size \(architecture.outputSize), vocabulary \(vocabulary))"
        case (.tokens, _):
            return "next-step targets for a token model need a softmax head (this model's head is \(architecture.head.rawValue))"
        case (.features(let size), .linear), (.features(let size), .sigmoid):
            return architecture.outputSize == size ? nil
                : "next-step targets need output size = input size (output \(architecture.outputSize), input \(size))"
        case (.features, .softmax):
            return "next-step targets for a feature model need a linear or sigmoid head, not softmax"
        }
    }

    /// `standardize`: per-stream running standardisation of the features (fit's `--normalize`).
    public init(model: Model, configuration: LearningConfiguration, standardize: Bool = false, forecast: ForecastOptions = ForecastOptions()) {
        precondition(Self.nextStepProblem(model.architecture) == nil)
        self.model = model
        self.configuration = configuration
        trainer = Trainer(layout: model.layout, configuration: configuration)
        engine = StepEngine(layout: model.layout, maxBatch: 1)
        let layout = StreamRecordLayout(architecture: model.architecture, learning: configuration, nextStepTargets: true, standardize: standardize,
                                        forecast: forecast)
        learning = StreamLearning(layout: layout)
        core = .allocate(byteCount: layout.coreBytes, alignment: 16)
        windowMemory = .allocate(byteCount: layout.window!.byteCount, alignment: 16)
        record = StreamRecord(layout: layout, core: core, window: windowMemory)
        record.initialize(now: 0)
        stateBefore = FloatBuffer(count: model.architecture.stateSize)
    }

    deinit {
        core.deallocate()
        windowMemory.deallocate()
    }

    /// The prediction for the most recent step (head outputs, in the stream's units).
    public var prediction: [Float] {
        var out = [Float](repeating: 0, count: model.architecture.outputSize)
        out.withUnsafeMutableBufferPointer { learning.publishable(record, outputs: engine.output(row: 0), into: $0.baseAddress!) }
        return out
    }

    /// Observes a feature step; returns the previous prediction's progressive loss, if any.
    @discardableResult
    public func observe(features x: UnsafePointer<Float>) -> Float? {
        let outcome = learning.prepare(record, features: x, token: 0, modelInput: engine.featureRow(0), explicitTarget: false, learnable: true)
        predict(due: outcome.due, token: 0)
        return outcome.loss
    }

    /// Observes a token step; returns the previous prediction's progressive loss, if any.
    @discardableResult
    public func observe(token: Int32) -> Float? {
        let outcome = learning.prepare(record, features: nil, token: token, modelInput: nil, explicitTarget: false, learnable: true)
        engine.setToken(row: 0, token)
        predict(due: outcome.due, token: token)
        return outcome.loss
    }

    private func predict(due: Bool, token: Int32) {
        if due, let w = record.window, trainer.update(windows: [w], weights: model.weights.pointer) != nil { updates += 1 }
        engine.loadState(row: 0, from: record.state)
        engine.step(weights: model.weights.pointer, batch: 1)
        _ = learning.finish(record, logits: engine.logits(row: 0), stateBefore: record.state, modelInput: UnsafePointer(engine.featureRow(0)),
                            token: token, explicitTarget: false, targetValues: nil, targetClass: 0)
        engine.storeState(row: 0, to: record.state)
    }
}
