/// DESIGN §3 for one stream with next-step targets: predict, then learn (`recurd fit`).
///
/// Each `observe` call is one arriving step x_t. It first resolves the previous step's target
/// (x_t itself): records the progressive loss of the previous prediction, appends
/// (x_{t−1}, x_t, s_{t−2}) to the window and runs an update when k1 entries are new; only then
/// does it predict step t with the weights as they now are. The bookkeeping is the daemon's
/// (`OnlineLearningTable`), with one slot.
public final class OnlineLearner {
    public let model: Model
    public let configuration: LearningConfiguration
    public let trainer: Trainer
    private let engine: StepEngine
    private let table: OnlineLearningTable
    private let stateBefore: FloatBuffer
    private let scratch: FloatBuffer
    private var due: [Int] = []

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
    public init(model: Model, configuration: LearningConfiguration, standardize: Bool = false) {
        precondition(Self.nextStepProblem(model.architecture) == nil)
        self.model = model
        self.configuration = configuration
        trainer = Trainer(layout: model.layout, configuration: configuration)
        engine = StepEngine(layout: model.layout, maxBatch: 1)
        table = OnlineLearningTable(architecture: model.architecture, capacity: 1, learning: configuration, nextStepTargets: true, standardize: standardize)
        stateBefore = FloatBuffer(count: model.architecture.stateSize)
        scratch = FloatBuffer(count: model.architecture.outputSize)
    }

    /// The prediction for the most recent step (head outputs, in the stream's units).
    public var prediction: [Float] {
        var out = [Float](repeating: 0, count: model.architecture.outputSize)
        out.withUnsafeMutableBufferPointer { table.publishable(slot: 0, outputs: engine.output(row: 0), into: $0.baseAddress!) }
        return out
    }

    /// Observes a feature step; returns the previous prediction's progressive loss, if any.
    @discardableResult
    public func observe(features x: UnsafePointer<Float>) -> Float? {
        engine.storeState(row: 0, to: stateBefore.pointer)
        let loss = table.prepare(slot: 0, features: x, token: 0, modelInput: engine.featureRow(0), stateBefore: stateBefore.pointer,
                                 explicitTarget: false, learnable: true)
        predict()
        return loss
    }

    /// Observes a token step; returns the previous prediction's progressive loss, if any.
    @discardableResult
    public func observe(token: Int32) -> Float? {
        engine.storeState(row: 0, to: stateBefore.pointer)
        let loss = table.prepare(slot: 0, features: nil, token: token, modelInput: nil, stateBefore: stateBefore.pointer,
                                 explicitTarget: false, learnable: true)
        engine.setToken(row: 0, token)
        predict()
        return loss
    }

    private func predict() {
        table.takeDue(into: &due)
        if !due.isEmpty, trainer.update(windows: due.map(table.window), weights: model.weights.pointer) != nil { updates += 1 }
        engine.step(weights: model.weights.pointer, batch: 1)
        _ = table.finish(slot: 0, logits: engine.logits(row: 0), explicitTarget: false, targetValues: nil, targetClass: 0, scratch: scratch.pointer)
    }
}
