/// A model: its architecture, the layout of its parameters and their values.
public final class Model: @unchecked Sendable {
    public let layout: ParameterLayout
    /// The flat parameter vector in `layout` order.
    public let weights: FloatBuffer
    public var architecture: ModelArchitecture { layout.architecture }

    public init(layout: ParameterLayout, weights: FloatBuffer) {
        precondition(weights.count == layout.count, "weights \(weights.count) for a layout of \(layout.count)")
        self.layout = layout
        self.weights = weights
    }

    /// A new model with Keras' default initialisation.
    public convenience init(architecture: ModelArchitecture, seed: UInt64) {
        let layout = ParameterLayout(architecture)
        self.init(layout: layout, weights: Initializer.initialize(layout, seed: seed))
    }

    /// A deep copy.
    public func copy() -> Model {
        let w = FloatBuffer(count: weights.count)
        w.copy(from: weights)
        return Model(layout: layout, weights: w)
    }
}
