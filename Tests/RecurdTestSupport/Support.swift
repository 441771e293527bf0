import Foundation
import RecurdNumerics

/// The repository root (for the built binary and fixtures).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Paths of the committed fixtures.
public enum FixturePaths {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    public static var reference: URL { root.appendingPathComponent("reference") }

    public static func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }
}

/// A seeded model with weights scaled away from the near-linear regime, so tests are sensitive.
public func makeModel(_ architecture: ModelArchitecture, seed: UInt64, scale: Float = 1.5) -> Model {
    let model = Model(architecture: architecture, seed: seed)
    var rng = SeededGenerator(seed: seed &+ 99)
    for i in 0..<model.weights.count {
        // Perturb every element (biases too) so no gradient is trivially zero.
        model.weights[i] = model.weights[i] * scale + Float(rng.nextUnit() - 0.5) * 0.2
    }
    return model
}

/// Random floats in [-a, a].
public func randomFloats(_ count: Int, amplitude: Double = 1, rng: inout SeededGenerator) -> [Float] {
    (0..<count).map { _ in Float((rng.nextUnit() * 2 - 1) * amplitude) }
}

/// max |a − b|.
public func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}
