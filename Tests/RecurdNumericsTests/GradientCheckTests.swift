import Foundation
import RecurdTestSupport
import Testing
@testable import RecurdNumerics

/// Finite-difference checks of the analytic gradients: centred differences of the window loss
/// against `WindowEngine.backward`, for every parameter element.
@Suite struct GradientCheckTests {
    struct Case: CustomStringConvertible, Sendable {
        let cell: CellKind
        let hidden: [Int]
        let head: HeadKind
        let tokens: Bool
        var residual = false
        /// Some loss steps without a target (a partly labelled window): window 0 misses two of
        /// its four, window 1 has only its last.
        var masked = false
        var description: String { "\(cell) \(hidden) \(head) \(tokens ? "tokens" : "features")\(residual ? " residual" : "")\(masked ? " masked" : "")" }
        func unlabelled(step t: Int, window w: Int) -> Bool { masked && (w == 0 ? (t == 2 || t == 4) : t < 5) }
    }

    static let cases: [Case] = [
        // Each layer type with each head and loss, one layer.
        Case(cell: .lstm, hidden: [5], head: .linear, tokens: false),
        Case(cell: .lstm, hidden: [5], head: .sigmoid, tokens: false),
        Case(cell: .lstm, hidden: [5], head: .softmax, tokens: true),
        Case(cell: .gru, hidden: [5], head: .linear, tokens: false),
        Case(cell: .gru, hidden: [5], head: .sigmoid, tokens: false),
        Case(cell: .gru, hidden: [5], head: .softmax, tokens: true),
        // A multi-step window through two stacked layers of different sizes.
        Case(cell: .lstm, hidden: [6, 4], head: .linear, tokens: false),
        Case(cell: .gru, hidden: [6, 4], head: .linear, tokens: false),
        Case(cell: .lstm, hidden: [9, 3], head: .softmax, tokens: true),
        Case(cell: .gru, hidden: [3, 9], head: .sigmoid, tokens: true),
        // Residual heads (the forecast is input + head): the skip adds no parameter path.
        Case(cell: .lstm, hidden: [5], head: .linear, tokens: false, residual: true),
        Case(cell: .gru, hidden: [6, 4], head: .linear, tokens: false, residual: true),
        // Partly labelled windows: the loss is each window's mean over its labelled steps.
        Case(cell: .lstm, hidden: [6, 4], head: .linear, tokens: false, masked: true),
        Case(cell: .gru, hidden: [5], head: .softmax, tokens: true, masked: true),
        Case(cell: .lstm, hidden: [5], head: .sigmoid, tokens: false, masked: true),
    ]

    @Test(arguments: cases)
    func windowGradientMatchesFiniteDifferences(_ c: Case) {
        let vocabulary = 7, outputs = c.head == .softmax ? vocabulary : (c.residual ? 4 : 3)
        let input: InputKind = c.tokens ? .tokens(vocabulary: vocabulary, embedding: 3) : .features(size: 4)
        let arch = ModelArchitecture(cell: c.cell, input: input, hidden: c.hidden, outputSize: outputs, head: c.head, residual: c.residual)
        let model = makeModel(arch, seed: 11, scale: 1.2)
        let windows = 2, length = 6, lossSteps = 4
        let engine = WindowEngine(layout: model.layout, maxWindows: windows, maxLength: length)
        engine.begin(windows: windows, length: length, lossSteps: lossSteps)
        var rng = SeededGenerator(seed: 3)
        for w in 0..<windows {
            let state = randomFloats(arch.stateSize, amplitude: 0.8, rng: &rng)
            state.withUnsafeBufferPointer { engine.setInitialState(window: w, from: $0.baseAddress!) }
            for t in 0..<length {
                if c.tokens {
                    engine.setToken(step: t, window: w, Int32(rng.next() % UInt64(vocabulary)))
                } else {
                    let x = randomFloats(4, rng: &rng)
                    x.withUnsafeBufferPointer { engine.setFeatures(step: t, window: w, $0.baseAddress!) }
                }
                if c.unlabelled(step: t, window: w) {
                    engine.setNoTarget(step: t, window: w)
                    continue
                }
                switch c.head {
                case .softmax: engine.setTarget(step: t, window: w, classIndex: Int32(rng.next() % UInt64(outputs)))
                case .linear:
                    let y = randomFloats(outputs, rng: &rng)
                    y.withUnsafeBufferPointer { engine.setTarget(step: t, window: w, values: $0.baseAddress!) }
                case .sigmoid:
                    let y = (0..<outputs).map { _ in Float(rng.nextUnit()) }
                    y.withUnsafeBufferPointer { engine.setTarget(step: t, window: w, values: $0.baseAddress!) }
                }
            }
        }
        let scale = 1 / Float(lossSteps * windows)
        let objective = { () -> Double in
            engine.forward(weights: model.weights.pointer)
            return engine.loss(lossScale: scale) / Double(windows)
        }
        let gradients = FloatBuffer(count: model.layout.count)
        _ = objective()
        engine.backward(weights: model.weights.pointer, gradients: gradients.pointer)

        let eps: Float = 2e-3
        var worst: Double = 0, worstName = ""
        var checked = 0
        for slot in model.layout.slots {
            for i in 0..<slot.count {
                let index = slot.storageIndex(i)
                let saved = model.weights[index]
                model.weights[index] = saved + eps
                let plus = objective()
                model.weights[index] = saved - eps
                let minus = objective()
                model.weights[index] = saved
                let numeric = (plus - minus) / Double(2 * eps)
                let analytic = Double(gradients[index])
                // Float32 forward passes limit the differences to ~1e-4 absolute.
                let error = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-2)
                if error > worst { worst = error; worstName = "\(slot.name)[\(i)] analytic \(analytic) numeric \(numeric)" }
                checked += 1
            }
        }
        #expect(checked == model.layout.count)
        #expect(worst < 1e-2, "worst relative error \(worst) at \(worstName)")
        // And the gradient is not trivially zero anywhere in the stack.
        for slot in model.layout.slots where !slot.name.hasPrefix("embed") {
            let norm = (0..<slot.count).map { Double(gradients[slot.storageIndex($0)]) }.map { $0 * $0 }.reduce(0, +)
            #expect(norm > 1e-12, "\(slot.name) has a zero gradient")
        }
    }

    @Test(arguments: HeadKind.allCases)
    func lossGradientMatchesFiniteDifferences(_ head: HeadKind) {
        var rng = SeededGenerator(seed: 21)
        let n = 6
        var logits = randomFloats(n, amplitude: 2, rng: &rng)
        let values = head == .sigmoid ? (0..<n).map { _ in Float(rng.nextUnit()) } : randomFloats(n, rng: &rng)
        let cls = 4
        var grad = [Float](repeating: 0, count: n)
        let weight: Float = 0.7
        _ = logits.withUnsafeBufferPointer { l in values.withUnsafeBufferPointer { v in grad.withUnsafeMutableBufferPointer { g in
            Loss.accumulate(head, logits: l.baseAddress!, count: n, values: v.baseAddress!, classIndex: cls, weight: weight, gradient: g.baseAddress!)
        } } }
        for j in 0..<n {
            func loss() -> Double {
                Double(logits.withUnsafeBufferPointer { l in values.withUnsafeBufferPointer { v in
                    Loss.value(head, logits: l.baseAddress!, count: n, values: v.baseAddress!, classIndex: cls)
                } })
            }
            let saved = logits[j]
            logits[j] = saved + 1e-2; let plus = loss()
            logits[j] = saved - 1e-2; let minus = loss()
            logits[j] = saved
            let numeric = Double(weight) * (plus - minus) / 2e-2
            #expect(abs(numeric - Double(grad[j])) < 2e-4, "\(head) logit \(j): analytic \(grad[j]) numeric \(numeric)")
        }
    }

    @Test func lossValuesMatchDefinitions() {
        let logits: [Float] = [0.5, -1, 2]
        let values: [Float] = [1, 0, 0.5]
        logits.withUnsafeBufferPointer { l in values.withUnsafeBufferPointer { v in
            let mse = Loss.value(.linear, logits: l.baseAddress!, count: 3, values: v.baseAddress!, classIndex: 0)
            #expect(abs(Double(mse) - (0.25 + 1 + 2.25) / 3) < 1e-6)
            let ce = Loss.value(.softmax, logits: l.baseAddress!, count: 3, values: nil, classIndex: 2)
            let z = Foundation.exp(0.5) + Foundation.exp(-1.0) + Foundation.exp(2.0)
            #expect(abs(Double(ce) - (Foundation.log(z) - 2)) < 1e-6)
            let bce = Loss.value(.sigmoid, logits: l.baseAddress!, count: 3, values: v.baseAddress!, classIndex: 0)
            func s(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
            let expected = -[(0.5, 1.0), (-1.0, 0.0), (2.0, 0.5)].map { (x, t) in t * Foundation.log(s(x)) + (1 - t) * Foundation.log(1 - s(x)) }.reduce(0, +) / 3
            #expect(abs(Double(bce) - expected) < 1e-6)
        } }
    }
}
