/// The TBPTT and optimiser settings of DESIGN §3.
public struct LearningConfiguration: Sendable, Equatable {
    /// Steps between updates.
    public var k1: Int
    /// Window length (steps backpropagated through).
    public var k2: Int
    public var optimizer: OptimizerKind
    public var learningRate: Float
    /// Global gradient-norm limit; 0 disables clipping.
    public var clip: Float

    public init(k1: Int, k2: Int, optimizer: OptimizerKind, learningRate: Float, clip: Float) {
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.learningRate = learningRate
        self.clip = clip
    }

    /// Describes the first invalid setting, or nil.
    public func problem() -> String? {
        if k1 < 1 { return "k1 must be at least 1 (got \(k1))" }
        if k2 < 1 { return "k2 must be at least 1 (got \(k2))" }
        if k2 > 100_000 { return "k2 \(k2) is too large" }
        if !(learningRate.isFinite && learningRate >= 0) { return "learning rate must be a finite number ≥ 0 (got \(learningRate))" }
        if !(clip.isFinite && clip >= 0) { return "clip must be a finite number ≥ 0 (got \(clip))" }
        return nil
    }

    /// Legal but probably not meant: with k1 > k2 an update's window does not reach back to the
    /// previous update, so some targets are never learnt from.
    public var warning: String? {
        k1 > k2 ? "k1 \(k1) > k2 \(k2): each update backpropagates through the last \(k2) steps only, so \(k1 - k2) of every \(k1) targets are never learnt from (k1 ≤ k2 uses them all)" : nil
    }
}
