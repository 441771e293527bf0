import Foundation
import RecurdTestSupport
import Testing
@testable import RecurdNumerics

/// The streaming, windowed and batched paths compute the same function.
@Suite struct EquivalenceTests {
    static let architectures: [ModelArchitecture] = [
        ModelArchitecture(cell: .lstm, input: .features(size: 5), hidden: [12, 7], outputSize: 3, head: .linear),
        ModelArchitecture(cell: .gru, input: .features(size: 5), hidden: [12, 7], outputSize: 3, head: .sigmoid),
        ModelArchitecture(cell: .lstm, input: .tokens(vocabulary: 20, embedding: 6), hidden: [16, 9, 10], outputSize: 20, head: .softmax),
        ModelArchitecture(cell: .gru, input: .tokens(vocabulary: 20, embedding: 6), hidden: [33], outputSize: 20, head: .softmax),
        ModelArchitecture(cell: .lstm, input: .features(size: 5), hidden: [12, 7], outputSize: 5, head: .linear, residual: true),
    ]

    /// Inputs for `streams` streams over `steps` steps.
    struct Inputs {
        var features: [[[Float]]] = []   // [stream][step][feature]
        var tokens: [[Int32]] = []
        var states: [[Float]] = []
    }

    func inputs(_ arch: ModelArchitecture, streams: Int, steps: Int, seed: UInt64) -> Inputs {
        var rng = SeededGenerator(seed: seed)
        var result = Inputs()
        for _ in 0..<streams {
            result.states.append(randomFloats(arch.stateSize, amplitude: 0.7, rng: &rng))
            switch arch.input {
            case .features(let n):
                result.features.append((0..<steps).map { _ in randomFloats(n, amplitude: 1.5, rng: &rng) })
            case .tokens(let v, _):
                result.tokens.append((0..<steps).map { _ in Int32(rng.next() % UInt64(v)) })
            }
        }
        return result
    }

    func setInput(_ engine: StepEngine, row: Int, _ data: Inputs, stream: Int, step: Int) {
        if data.tokens.isEmpty {
            data.features[stream][step].withUnsafeBufferPointer { engine.setFeatures(row: row, $0.baseAddress!) }
        } else {
            engine.setToken(row: row, data.tokens[stream][step])
        }
    }

    /// DESIGN §3.7 (a): a fresh residual model's forecast is its input, whatever the state.
    @Test(arguments: [CellKind.lstm, .gru])
    func freshResidualModelForecastsPersistence(_ cell: CellKind) {
        let arch = ModelArchitecture(cell: cell, input: .features(size: 3), hidden: [16, 8], outputSize: 3, head: .linear, residual: true)
        let model = Model(architecture: arch, seed: 5)
        let engine = StepEngine(layout: model.layout, maxBatch: 2)
        var rng = SeededGenerator(seed: 9)
        for _ in 0..<20 {
            let x = randomFloats(6, amplitude: 3, rng: &rng)
            x.withUnsafeBufferPointer { engine.setFeatures(row: 0, $0.baseAddress!); engine.setFeatures(row: 1, $0.baseAddress! + 3) }
            engine.step(weights: model.weights.pointer, batch: 2)
            for row in 0..<2 {
                let y = Array(UnsafeBufferPointer(start: engine.output(row: row), count: 3))
                #expect(y == Array(x[(row * 3)..<(row * 3 + 3)]), "row \(row): \(y) vs input \(x)")
            }
        }
        #expect(arch.problem() == nil)
        #expect(ModelArchitecture(cell: cell, input: .features(size: 3), hidden: [4], outputSize: 2, head: .linear, residual: true).problem() != nil)
    }

    @Test(arguments: architectures)
    func batchOfStreamsEqualsSeparateStreams(_ arch: ModelArchitecture) {
        let model = makeModel(arch, seed: 8)
        let streams = 6, steps = 5
        let data = inputs(arch, streams: streams, steps: steps, seed: 17)
        let batched = StepEngine(layout: model.layout, maxBatch: streams)
        for s in 0..<streams { data.states[s].withUnsafeBufferPointer { batched.loadState(row: s, from: $0.baseAddress!) } }
        var batchedOutputs: [[[Float]]] = Array(repeating: [], count: streams)
        for t in 0..<steps {
            for s in 0..<streams { setInput(batched, row: s, data, stream: s, step: t) }
            batched.step(weights: model.weights.pointer, batch: streams)
            for s in 0..<streams { batchedOutputs[s].append(Array(UnsafeBufferPointer(start: batched.output(row: s), count: arch.outputSize))) }
        }
        for s in 0..<streams {
            let single = StepEngine(layout: model.layout, maxBatch: 1)
            data.states[s].withUnsafeBufferPointer { single.loadState(row: 0, from: $0.baseAddress!) }
            for t in 0..<steps {
                setInput(single, row: 0, data, stream: s, step: t)
                single.step(weights: model.weights.pointer, batch: 1)
                let out = Array(UnsafeBufferPointer(start: single.output(row: 0), count: arch.outputSize))
                #expect(maxAbsDifference(out, batchedOutputs[s][t]) < 1e-5, "stream \(s) step \(t)")
            }
            var a = [Float](repeating: 0, count: arch.stateSize), b = a
            a.withUnsafeMutableBufferPointer { single.storeState(row: 0, to: $0.baseAddress!) }
            b.withUnsafeMutableBufferPointer { batched.storeState(row: s, to: $0.baseAddress!) }
            #expect(maxAbsDifference(a, b) < 1e-5, "final state of stream \(s)")
        }
    }

    @Test(arguments: architectures)
    func stepwiseForwardEqualsWindowedForward(_ arch: ModelArchitecture) {
        let model = makeModel(arch, seed: 4)
        let windows = 3, steps = 7
        let data = inputs(arch, streams: windows, steps: steps, seed: 23)
        let window = WindowEngine(layout: model.layout, maxWindows: 4, maxLength: 10)
        window.begin(windows: windows, length: steps, lossSteps: 2)
        for w in 0..<windows {
            data.states[w].withUnsafeBufferPointer { window.setInitialState(window: w, from: $0.baseAddress!) }
            for t in 0..<steps {
                if data.tokens.isEmpty {
                    data.features[w][t].withUnsafeBufferPointer { window.setFeatures(step: t, window: w, $0.baseAddress!) }
                } else {
                    window.setToken(step: t, window: w, data.tokens[w][t])
                }
            }
        }
        window.forward(weights: model.weights.pointer, allSteps: true)
        for w in 0..<windows {
            let single = StepEngine(layout: model.layout, maxBatch: 1)
            data.states[w].withUnsafeBufferPointer { single.loadState(row: 0, from: $0.baseAddress!) }
            for t in 0..<steps {
                setInput(single, row: 0, data, stream: w, step: t)
                single.step(weights: model.weights.pointer, batch: 1)
                let a = Array(UnsafeBufferPointer(start: single.logits(row: 0), count: arch.outputSize))
                let b = Array(UnsafeBufferPointer(start: window.logits(step: t, window: w), count: arch.outputSize))
                #expect(maxAbsDifference(a, b) < 1e-5, "window \(w) step \(t)")
            }
        }
    }

    @Test(arguments: [CellKind.lstm, .gru])
    func batchedUpdateEqualsMeanOfSeparateGradients(_ cell: CellKind) {
        let arch = ModelArchitecture(cell: cell, input: .features(size: 3), hidden: [8, 5], outputSize: 3, head: .linear)
        let model = makeModel(arch, seed: 31)
        let config = LearningConfiguration(k1: 3, k2: 6, optimizer: .sgd, learningRate: 0.1, clip: 0)
        var rng = SeededGenerator(seed: 9)
        // Three streams' windows, one of them shorter (a young stream).
        let lengths = [6, 6, 4]
        var owned: [OwnedWindow] = []
        for length in lengths {
            let w = OwnedWindow(WindowLayout(architecture: arch, k1: config.k1, k2: config.k2, impliedTargets: false))
            for _ in 0..<length {
                w.append(x: randomFloats(3, rng: &rng), y: randomFloats(3, rng: &rng), state: randomFloats(arch.stateSize, amplitude: 0.5, rng: &rng))
            }
            owned.append(w)
        }
        let windows = owned.map(\.window)
        let batched = Trainer(layout: model.layout, configuration: config, maxWindows: 2)
        let batchLoss = batched.accumulateGradient(windows: windows, weights: model.weights.pointer)
        var mean = [Float](repeating: 0, count: model.layout.count)
        var meanLoss = 0.0
        for w in windows {
            let single = Trainer(layout: model.layout, configuration: config)
            meanLoss += single.accumulateGradient(windows: [w], weights: model.weights.pointer) / Double(windows.count)
            for i in 0..<mean.count { mean[i] += single.gradients[i] / Float(windows.count) }
        }
        #expect(abs(batchLoss - meanLoss) < 1e-6)
        #expect(maxAbsDifference(batched.gradients.array, mean) < 1e-6)
        #expect(mean.contains { abs($0) > 1e-3 })
    }

    /// A window keeps the saved state of only the entries that can start a window at an update;
    /// at every update it gives the same gradient as a window that keeps every state — with
    /// explicit targets, and with implied (next-step) targets, which keep k2 + 1 inputs and no
    /// targets.
    @Test(arguments: [(4, 10), (5, 5), (8, 3), (3, 16), (16, 32), (1, 6)])
    func windowsKeepTheStatesUpdatesNeed(k1: Int, k2: Int) {
        let arch = ModelArchitecture(cell: .gru, input: .features(size: 2), hidden: [6], outputSize: 2, head: .linear)
        let model = makeModel(arch, seed: 12)
        let config = LearningConfiguration(k1: k1, k2: k2, optimizer: .sgd, learningRate: 0.1, clip: 0)
        let lean = OwnedWindow(WindowLayout(architecture: arch, k1: k1, k2: k2, impliedTargets: false))
        let implied = OwnedWindow(WindowLayout(architecture: arch, k1: k1, k2: k2, impliedTargets: true))
        // Every entry keeps its state: k1 = 1 makes each one a possible window start.
        let full = OwnedWindow(WindowLayout(architecture: arch, k1: 1, k2: k2, impliedTargets: false, savedStates: k2))
        #expect(lean.window.layout.savedStates == (k2 - 1) / k1 + 1)
        var rng = SeededGenerator(seed: 4)
        var updates = 0
        var x = randomFloats(2, rng: &rng)
        x.withUnsafeBufferPointer { implied.window.restart(features: $0.baseAddress!, token: 0) }
        for _ in 0..<(5 * k1 + k2) {
            let y = randomFloats(2, rng: &rng), st = randomFloats(arch.stateSize, rng: &rng)
            lean.append(x: x, y: y, state: st)
            full.append(x: x, y: y, state: st)
            st.withUnsafeBufferPointer { implied.window.saveState($0.baseAddress!) }
            let impliedDue = y.withUnsafeBufferPointer { implied.window.pushTarget(features: $0.baseAddress!, token: 0) }
            #expect(impliedDue == (lean.window.pending == k1))
            x = y
            guard lean.window.pending == k1 else { continue }
            let trainers = (0..<3).map { _ in Trainer(layout: model.layout, configuration: config) }
            let losses = zip(trainers, [lean, implied, full]).map { $0.accumulateGradient(windows: [$1.window], weights: model.weights.pointer) }
            #expect(losses[0] == losses[2] && losses[1] == losses[2])
            #expect(trainers[0].gradients.array == trainers[2].gradients.array)
            #expect(trainers[1].gradients.array == trainers[2].gradients.array)
            for w in [lean, implied, full] { w.window.pending = 0 }
            updates += 1
        }
        #expect(updates == 5 + k2 / k1)
        #expect(lean.window.count == k2 && implied.window.count == k2)
    }

    /// Explicit targets: a step without a target (a break) before a window's first entry — on a
    /// fresh or cleared window too — leaves that entry's saved state to start the update from
    /// (it used to be wiped by the append that restarted the window, and the update ran from a
    /// zero state).
    @Test(arguments: [true, false])
    func aBreakBeforeTheFirstEntryKeepsItsState(clearedFirst: Bool) throws {
        let arch = ModelArchitecture(cell: .lstm, input: .features(size: 2), hidden: [3], outputSize: 2, head: .linear)
        for (k1, k2) in [(4, 8), (1, 5), (3, 3)] {
            let w = OwnedWindow(WindowLayout(architecture: arch, k1: k1, k2: k2, impliedTargets: false))
            var rng = SeededGenerator(seed: 9)
            if clearedFirst {
                for _ in 0..<(k1 + 1) { w.append(x: randomFloats(2, rng: &rng), y: randomFloats(2, rng: &rng), state: randomFloats(arch.stateSize, rng: &rng)) }
                w.window.clear()
            }
            w.window.markBroken()
            let first = randomFloats(arch.stateSize, rng: &rng)
            w.append(x: randomFloats(2, rng: &rng), y: randomFloats(2, rng: &rng), state: first)
            for _ in 1..<k1 { w.append(x: randomFloats(2, rng: &rng), y: randomFloats(2, rng: &rng), state: randomFloats(arch.stateSize, rng: &rng)) }
            #expect(w.window.isDue && w.window.count == k1)
            let kept = try #require(w.window.initialState(), "k1 \(k1), k2 \(k2): no state for the window's first entry")
            #expect(Array(UnsafeBufferPointer(start: kept, count: arch.stateSize)) == first)
        }
    }

    @Test func nonFiniteUpdateIsSkippedAndLeavesWeightsUntouched() {
        let arch = ModelArchitecture(cell: .gru, input: .features(size: 2), hidden: [4], outputSize: 2, head: .linear)
        let model = makeModel(arch, seed: 2)
        let before = model.weights.array
        let trainer = Trainer(layout: model.layout, configuration: LearningConfiguration(k1: 1, k2: 2, optimizer: .adam, learningRate: 0.1, clip: 1))
        let w = OwnedWindow(WindowLayout(architecture: arch, k1: 1, k2: 2, impliedTargets: false))
        w.append(x: [1, 2], y: [.infinity, 0], state: [Float](repeating: 0, count: arch.stateSize))
        #expect(trainer.update(windows: [w.window], weights: model.weights.pointer) == nil)
        #expect(trainer.skippedUpdates == 1)
        #expect(trainer.optimizer.step == 0)
        #expect(model.weights.array == before)
    }

    /// One window whose loss overflows does not cost the others their update: it is left out,
    /// and the update is exactly the one the others make alone.
    @Test func aNonFiniteWindowIsLeftOutOfABatch() {
        let arch = ModelArchitecture(cell: .gru, input: .features(size: 2), hidden: [4], outputSize: 2, head: .linear)
        let config = LearningConfiguration(k1: 1, k2: 2, optimizer: .adam, learningRate: 0.1, clip: 1)
        let layout = WindowLayout(architecture: arch, k1: 1, k2: 2, impliedTargets: false)
        let zeros = [Float](repeating: 0, count: arch.stateSize)
        let good = OwnedWindow(layout), other = OwnedWindow(layout), bad = OwnedWindow(layout)
        good.append(x: [1, 2], y: [0.5, -0.5], state: zeros)
        other.append(x: [-1, 0.5], y: [0.2, 0.1], state: zeros)
        bad.append(x: [1, 2], y: [3e38, 0], state: zeros)   // (p − y)² overflows float
        let batched = makeModel(arch, seed: 2), alone = makeModel(arch, seed: 2)
        let t1 = Trainer(layout: batched.layout, configuration: config, maxWindows: 3)
        let t2 = Trainer(layout: alone.layout, configuration: config, maxWindows: 3)
        let loss = t1.update(windows: [good.window, bad.window, other.window], weights: batched.weights.pointer)
        #expect(loss != nil && t1.lastExcludedWindows == 1 && t1.skippedUpdates == 0)
        _ = t2.update(windows: [good.window, other.window], weights: alone.weights.pointer)
        #expect(batched.weights.array == alone.weights.array)
        withExtendedLifetime((good, other, bad)) {}
    }
}

extension ModelArchitecture: CustomTestStringConvertible {
    public var testDescription: String { "\(cell) \(input.name) \(hidden) \(head)" }
}

import CRecurdKernels

/// The cells' AVX-512 and AVX2 kernels agree (each CPU runs one of them; this one may have both).
@Suite(.serialized) struct KernelVariantTests {
    @Test(arguments: [CellKind.lstm, .gru])
    func vectorWidthsAgree(_ cell: CellKind) {
        let arch = ModelArchitecture(cell: cell, input: .features(size: 5), hidden: [37, 16], outputSize: 3, head: .linear)
        let model = makeModel(arch, seed: 6)
        var rng = SeededGenerator(seed: 2)
        let inputs = (0..<6).map { _ in randomFloats(5 * 4, amplitude: 2, rng: &rng) }
        func run() -> [Float] {
            let engine = StepEngine(layout: model.layout, maxBatch: 4)
            var out: [Float] = []
            for x in inputs {
                for b in 0..<4 { x.withUnsafeBufferPointer { engine.setFeatures(row: b, $0.baseAddress! + b * 5) } }
                engine.step(weights: model.weights.pointer, batch: 4)
                for b in 0..<4 { out += Array(UnsafeBufferPointer(start: engine.output(row: b), count: 3)) }
            }
            return out
        }
        // Every variant on this thread only (other suites run on with the process-wide choice).
        var results: [[Float]] = []
        for isa in KernelVariantProductTests.isas {
            #expect(recurd_kernels_set_thread_isa(isa) == 1)
            results.append(run())
        }
        _ = recurd_kernels_set_thread_isa(RECURD_ISA_AUTO.rawValue)
        #expect(results.count >= 2, "only one variant on this CPU")
        for r in results.dropFirst() { #expect(maxAbsDifference(results[0], r) < 1e-5) }
    }

    /// The batched inference step (no gates kept, c updated in place) gives, bit for bit, what the
    /// training forward gives each row, in every variant and at awkward widths.
    @Test func lstmRowsStepEqualsTheForwardRowByRow() {
        var rng = SeededGenerator(seed: 12)
        for isa in KernelVariantProductTests.isas {
            _ = recurd_kernels_set_thread_isa(isa)
            for n in KernelVariantProductTests.sizes {
                let rows = 3, ldg = 4 * n + 5, ldh = n + 3
                let gates = randomFloats(rows * ldg, amplitude: 6, rng: &rng)
                let bih = randomFloats(4 * n, amplitude: 1, rng: &rng), bhh = randomFloats(4 * n, amplitude: 1, rng: &rng)
                let c0 = randomFloats(rows * n, amplitude: 3, rng: &rng)
                var c = c0, h = [Float](repeating: 0, count: rows * ldh)
                c.withUnsafeMutableBufferPointer { cp in
                    h.withUnsafeMutableBufferPointer { hp in
                        LSTMCell.step(rows: rows, hidden: n, gates: gates, ldg: ldg, biasIH: bih, biasHH: bhh,
                                      c: cp.baseAddress!, ldc: n, h: hp.baseAddress!, ldh: ldh)
                    }
                }
                for r in 0..<rows {
                    var g = Array(gates[(r * ldg)..<(r * ldg + 4 * n)])
                    var cr = Array(c0[(r * n)..<(r * n + n)]), hr = [Float](repeating: 0, count: n)
                    let cPrev = cr
                    LSTMCell.forward(hidden: n, gates: &g, biasIH: bih, biasHH: bhh, cPrev: cPrev, cOut: &cr, hOut: &hr)
                    let name = String(cString: recurd_kernels_isa_name(isa))
                    #expect(Array(c[(r * n)..<(r * n + n)]) == cr, "\(name) n \(n) row \(r): c")
                    #expect(Array(h[(r * ldh)..<(r * ldh + n)]) == hr, "\(name) n \(n) row \(r): h")
                }
            }
        }
        _ = recurd_kernels_set_thread_isa(RECURD_ISA_AUTO.rawValue)
    }

    /// The LSTM cells against the formulas evaluated in double, in every variant, at awkward widths
    /// (more than one of the kernel's 64-cell stages, partial vectors): gates, c and h.
    @Test func lstmCellsMatchTheFormulasInDouble() {
        var rng = SeededGenerator(seed: 13)
        func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
        for isa in KernelVariantProductTests.isas {
            _ = recurd_kernels_set_thread_isa(isa)
            let name = String(cString: recurd_kernels_isa_name(isa))
            for n in KernelVariantProductTests.sizes + [64, 200] {
                let pre = randomFloats(4 * n, amplitude: 6, rng: &rng)
                let bih = randomFloats(4 * n, amplitude: 1, rng: &rng), bhh = randomFloats(4 * n, amplitude: 1, rng: &rng)
                let cPrev = randomFloats(n, amplitude: 3, rng: &rng)
                var gates = pre, c = [Float](repeating: 0, count: n), h = [Float](repeating: 0, count: n)
                LSTMCell.forward(hidden: n, gates: &gates, biasIH: bih, biasHH: bhh, cPrev: cPrev, cOut: &c, hOut: &h)
                var worst = 0.0
                for j in 0..<n {
                    let x = (0..<4).map { k in Double(pre[k * n + j]) + Double(bih[k * n + j]) + Double(bhh[k * n + j]) }
                    let i = sigmoid(x[0]), f = sigmoid(x[1]), g = Foundation.tanh(x[2]), o = sigmoid(x[3])
                    let cr = f * Double(cPrev[j]) + i * g, hr = o * Foundation.tanh(cr)
                    for (got, want) in [(gates[j], i), (gates[n + j], f), (gates[2 * n + j], g), (gates[3 * n + j], o), (c[j], cr), (h[j], hr)] {
                        worst = max(worst, abs(Double(got) - want))
                    }
                }
                #expect(worst < 2e-6, "\(name) n \(n): max abs error \(worst)")
            }
        }
        _ = recurd_kernels_set_thread_isa(RECURD_ISA_AUTO.rawValue)
    }

    /// Gates driven far into saturation stay finite in both widths (exp must not overflow).
    @Test(arguments: [CellKind.lstm, .gru])
    func saturatedGatesStayFinite(_ cell: CellKind) {
        let arch = ModelArchitecture(cell: cell, input: .features(size: 2), hidden: [16], outputSize: 2, head: .sigmoid)
        let model = makeModel(arch, seed: 1)
        for slot in model.layout.slots where slot.name.contains("bias") {
            for i in 0..<slot.count { model.weights[slot.storageIndex(i)] = i % 2 == 0 ? -500 : 500 }
        }
        for isa in KernelVariantProductTests.isas {
            _ = recurd_kernels_set_thread_isa(isa)
            let engine = StepEngine(layout: model.layout, maxBatch: 2)
            let x: [Float] = [100, -100, -100, 100]
            for b in 0..<2 { x.withUnsafeBufferPointer { engine.setFeatures(row: b, $0.baseAddress! + 2 * b) } }
            engine.step(weights: model.weights.pointer, batch: 2)
            var state = [Float](repeating: 0, count: arch.stateSize)
            state.withUnsafeMutableBufferPointer { engine.storeState(row: 0, to: $0.baseAddress!) }
            #expect(state.allSatisfy { $0.isFinite }, "\(String(cString: recurd_kernels_isa_name(isa)))")
            #expect((0..<2).allSatisfy { engine.output(row: $0)[0].isFinite })
        }
        _ = recurd_kernels_set_thread_isa(RECURD_ISA_AUTO.rawValue)
    }
}
