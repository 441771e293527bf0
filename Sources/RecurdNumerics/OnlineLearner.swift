/// DESIGN §3 for one stream with next-step targets: predict, then learn.
///
/// Each `observe` call is one arriving step x_t. It first resolves the previous step's target
/// (x_t itself): records the progressive loss of the previous prediction, appends
/// (x_{t−1}, x_t, s_{t−2}) to the window and runs an update when k1 entries are new; only then
/// does it predict step t with the weights as they now are.
public final class OnlineLearner {
    public let model: Model
    public let configuration: LearningConfiguration
    public let trainer: Trainer
    private let engine: StepEngine
    private let window: StreamWindow
    private let architecture: ModelArchitecture
    private let tokenInput: Bool

    /// State before the most recent step (s_{t−1} once step t is predicted).
    private let stateBefore: FloatBuffer
    private let previousInput: FloatBuffer
    private var previousToken: Int32 = 0
    private let previousLogits: FloatBuffer
    private var hasPrevious = false

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

    public init(model: Model, configuration: LearningConfiguration) {
        precondition(Self.nextStepProblem(model.architecture) == nil)
        self.model = model
        self.configuration = configuration
        architecture = model.architecture
        if case .tokens = architecture.input { tokenInput = true } else { tokenInput = false }
        trainer = Trainer(layout: model.layout, configuration: configuration)
        engine = StepEngine(layout: model.layout, maxBatch: 1)
        window = StreamWindow(architecture: architecture, capacity: configuration.k2)
        stateBefore = FloatBuffer(count: architecture.stateSize)
        previousInput = FloatBuffer(count: tokenInput ? 0 : architecture.input.layerInputSize)
        previousLogits = FloatBuffer(count: architecture.outputSize)
    }

    /// The prediction for the most recent step (head outputs).
    public var prediction: UnsafePointer<Float> { engine.output(row: 0) }

    /// Observes a feature step; returns the previous prediction's progressive loss, if any.
    @discardableResult
    public func observe(features x: UnsafePointer<Float>) -> Float? {
        var loss: Float?
        if hasPrevious {
            loss = Loss.value(architecture.head, logits: previousLogits.pointer, count: architecture.outputSize, values: x, classIndex: 0)
            window.append(features: previousInput.pointer, token: 0, targetValues: x, targetClass: 0, stateBefore: stateBefore.pointer)
            learnIfDue()
        }
        previousInput.pointer.update(from: x, count: previousInput.count)
        engine.setFeatures(row: 0, x)
        predict()
        return loss
    }

    /// Observes a token step; returns the previous prediction's progressive loss, if any.
    @discardableResult
    public func observe(token: Int32) -> Float? {
        var loss: Float?
        if hasPrevious {
            loss = Loss.value(architecture.head, logits: previousLogits.pointer, count: architecture.outputSize, values: nil, classIndex: Int(token))
            window.append(features: nil, token: previousToken, targetValues: nil, targetClass: token, stateBefore: stateBefore.pointer)
            learnIfDue()
        }
        previousToken = token
        engine.setToken(row: 0, token)
        predict()
        return loss
    }

    private func learnIfDue() {
        guard window.pending >= configuration.k1 else { return }
        if trainer.update(windows: [window], weights: model.weights.pointer) != nil { updates += 1 }
    }

    private func predict() {
        engine.storeState(row: 0, to: stateBefore.pointer)
        engine.step(weights: model.weights.pointer, batch: 1)
        previousLogits.pointer.update(from: engine.logits(row: 0), count: architecture.outputSize)
        hasPrevious = true
    }
}
