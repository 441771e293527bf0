import RecurdTestSupport
import Testing
@testable import RecurdNumerics

@Suite struct InitializerTests {
    @Test(arguments: [CellKind.lstm, .gru])
    func kerasDefaults(_ cell: CellKind) {
        let arch = ModelArchitecture(cell: cell, input: .tokens(vocabulary: 30, embedding: 8), hidden: [16, 12], outputSize: 30, head: .softmax)
        let model = Model(architecture: arch, seed: 42)
        let layout = model.layout
        let g = cell.gateCount
        for (k, slots) in layout.layers.enumerated() {
            let n = arch.hidden[k]
            // Recurrent kernel (G·H × H): orthonormal columns (Keras' (H × G·H) has orthonormal rows).
            for a in 0..<n {
                for b in 0..<n {
                    var d: Double = 0
                    for r in 0..<(g * n) { d += Double(model.weights[slots.weightHH + r * slots.blockStride + a]) * Double(model.weights[slots.weightHH + r * slots.blockStride + b]) }
                    #expect(abs(d - (a == b ? 1 : 0)) < 1e-5, "layer \(k) columns \(a),\(b)")
                }
            }
            // Glorot-uniform input kernel within its limit, and not degenerate.
            let limit = Float((6.0 / Double(slots.inputSize + g * n)).squareRoot())
            let wih = (0..<(g * n * slots.inputSize)).map { model.weights[slots.weightIH + ($0 / slots.inputSize) * slots.blockStride + $0 % slots.inputSize] }
            #expect(wih.allSatisfy { abs($0) <= limit })
            #expect(wih.map(abs).max()! > limit * 0.9)
            // Biases: zero, except LSTM's forget gate (sum of the two biases = 1).
            for j in 0..<(g * n) {
                let sum = model.weights[slots.biasIH + j] + model.weights[slots.biasHH + j]
                let expected: Float = (cell == .lstm && j >= n && j < 2 * n) ? 1 : 0
                #expect(sum == expected, "layer \(k) bias \(j)")
            }
        }
        #expect((0..<(30 * 8)).allSatisfy { abs(model.weights[layout.embed! + $0]) <= 0.05 })
    }

    @Test func seededAndReproducible() {
        let arch = ModelArchitecture(cell: .lstm, input: .features(size: 3), hidden: [8], outputSize: 3, head: .linear)
        #expect(Model(architecture: arch, seed: 7).weights.array == Model(architecture: arch, seed: 7).weights.array)
        #expect(Model(architecture: arch, seed: 7).weights.array != Model(architecture: arch, seed: 8).weights.array)
    }
}
