import Foundation
import RecurdData
import RecurdModelFile
import RecurdNumerics
import RecurdStreams
import RecurdTestSupport
import Testing

/// recurd against vectors from an independent PyTorch implementation
/// (Tests/Fixtures/reference/generate.py, committed beside the fixtures).
@Suite struct ReferenceTests {
    struct ForwardCase: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let input: String
        let head: String
        let outputs: Int
        let input_file: String
        let steps: Int
        var testDescription: String { name }
    }

    /// A case's learning settings, as the fixtures' cases.json files spell them.
    protocol LearningCase {
        var k1: Int { get }
        var k2: Int { get }
        var optimizer: String { get }
        var lr: Float { get }
        var clip: Float { get }
    }

    struct FitCase: Decodable, CustomTestStringConvertible, Sendable, LearningCase {
        let name: String
        let input_file: String
        let k1: Int
        let k2: Int
        let optimizer: String
        let lr: Float
        let clip: Float
        var testDescription: String { name }
    }

    struct FitExpectation: Decodable {
        let steps: Int
        let targets: Int
        let updates: Int
        let mean_loss: Double
    }

    static func load<T: Decodable>(_ path: String) -> T {
        let url = FixturePaths.reference.appendingPathComponent(path)
        return try! JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    struct PartialCase: Decodable, CustomTestStringConvertible, Sendable, LearningCase {
        let name: String
        let k1: Int
        let k2: Int
        let optimizer: String
        let lr: Float
        let clip: Float
        let head: String
        let steps: Int
        var testDescription: String { name }
    }

    struct PartialSteps: Decodable {
        let x: [[Float]]
        /// A class id, a vector, or null (no target).
        let y: [PartialTarget?]
        let reset: [Bool]
    }

    enum PartialTarget: Decodable {
        case classIndex(Int32), values([Float])
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let id = try? c.decode(Int32.self) { self = .classIndex(id) } else { self = .values(try c.decode([Float].self)) }
        }
    }

    struct PartialExpectation: Decodable {
        let losses: [Double]
        let updates: Int
    }

    static let forwardCases: [ForwardCase] = load("cases.json")
    static let partialCases: [PartialCase] = load("partial/cases.json")
    static let fitCases: [FitCase] = load("fit/cases.json")

    static func stream(_ path: URL, tokens: Bool) throws -> RecordedStream {
        let bytes = try FixturePaths.bytes(path)
        return tokens ? TextReader.read(bytes) : try CSVReader.read(bytes)
    }

    /// The case's own input file if it has one, else the shared one.
    static func inputURL(_ folder: String, _ name: String, _ shared: String) -> URL {
        let own = FixturePaths.reference.appendingPathComponent("\(folder)/\(name)/input.txt")
        return FileManager.default.fileExists(atPath: own.path) ? own : FixturePaths.reference.appendingPathComponent(shared)
    }

    @Test(arguments: forwardCases)
    func stepwiseOutputsEqualPyTorch(_ c: ForwardCase) throws {
        let dir = FixturePaths.reference.appendingPathComponent("forward/\(c.name)")
        let file = try ModelFile.decode(FixturePaths.bytes(dir.appendingPathComponent("model.safetensors")), file: c.name)
        let model = file.model
        let stream = try Self.stream(Self.inputURL("forward", c.name, c.input_file), tokens: c.input == "tokens")
        let expected = try String(contentsOf: dir.appendingPathComponent("expected.csv"), encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: ",").map { Float($0)! } }
        #expect(stream.count == expected.count)
        let engine = StepEngine(layout: model.layout, maxBatch: 1)
        var worst: Float = 0
        for t in 0..<min(stream.count, expected.count) {
            switch stream {
            case .features(let values, let width, _):
                values.withUnsafeBufferPointer { engine.setFeatures(row: 0, $0.baseAddress! + t * width) }
            case .tokens(let ids):
                engine.setToken(row: 0, ids[t])
            }
            engine.step(weights: model.weights.pointer, batch: 1)
            let out = Array(UnsafeBufferPointer(start: engine.output(row: 0), count: c.outputs))
            worst = max(worst, maxAbsDifference(out, expected[t]))
        }
        #expect(worst < 2e-5, "max |recurd − PyTorch| = \(worst)")
    }

    @Test(arguments: fitCases)
    func fitEqualsPyTorch(_ c: FitCase) throws {
        let dir = FixturePaths.reference.appendingPathComponent("fit/\(c.name)")
        let file = try ModelFile.decode(FixturePaths.bytes(dir.appendingPathComponent("model.safetensors")), file: "model")
        let final = try ModelFile.decode(FixturePaths.bytes(dir.appendingPathComponent("final.safetensors")), file: "final")
        let expected: FitExpectation = Self.load("fit/\(c.name)/expected.json")
        let model = file.model
        let isTokens: Bool = if case .tokens = model.architecture.input { true } else { false }
        let stream = try Self.stream(Self.inputURL("fit", c.name, c.input_file), tokens: isTokens)
        let config = c.learning
        let learner = OnlineLearner(model: model, configuration: config)
        var sum = 0.0, targets = 0
        switch stream {
        case .features(let values, let width, _):
            values.withUnsafeBufferPointer { v in
                for t in 0..<stream.count {
                    if let l = learner.observe(features: v.baseAddress! + t * width) { sum += Double(l); targets += 1 }
                }
            }
        case .tokens(let ids):
            for id in ids { if let l = learner.observe(token: id) { sum += Double(l); targets += 1 } }
        }
        #expect(stream.count == expected.steps)
        #expect(targets == expected.targets)
        #expect(learner.updates == expected.updates)
        let meanLoss = sum / Double(targets)
        // The bar is 0.1 % and 5e-3; recurd lands orders of magnitude inside both.
        #expect(abs(meanLoss / expected.mean_loss - 1) < 1e-4, "mean loss \(meanLoss) vs \(expected.mean_loss)")
        let diff = maxAbsDifference(model.weights.array, final.model.weights.array)
        #expect(diff < 5e-4, "final weights differ by up to \(diff)")
    }

    /// Explicit targets on partly labelled streams (steps sent without a target stay in the
    /// window and carry no loss): the daemon's per-stream path — `StreamLearning` on a record,
    /// one step at a time, each due window trained at once as with `--sync-learning` — against
    /// Tests/Fixtures/reference/partial.py.
    @Test(arguments: partialCases)
    func partlyLabelledStreamsEqualPyTorch(_ c: PartialCase) throws {
        let dir = FixturePaths.reference.appendingPathComponent("partial/\(c.name)")
        let model = try ModelFile.decode(FixturePaths.bytes(dir.appendingPathComponent("model.safetensors")), file: "model").model
        let final = try ModelFile.decode(FixturePaths.bytes(dir.appendingPathComponent("final.safetensors")), file: "final").model
        let steps: PartialSteps = Self.load("partial/\(c.name)/steps.json")
        let expected: PartialExpectation = Self.load("partial/\(c.name)/expected.json")
        let arch = model.architecture
        let config = c.learning
        let layout = StreamRecordLayout(architecture: arch, learning: config, nextStepTargets: false, standardize: false, forecast: ForecastOptions())
        let core = UnsafeMutableRawPointer.allocate(byteCount: layout.coreBytes, alignment: 16)
        let windowMemory = UnsafeMutableRawPointer.allocate(byteCount: layout.window!.byteCount, alignment: 16)
        defer { core.deallocate(); windowMemory.deallocate() }
        let record = StreamRecord(layout: layout, core: core, window: windowMemory)
        record.initialize(now: 0)
        let learning = StreamLearning(layout: layout)
        let engine = StepEngine(layout: model.layout, maxBatch: 1)
        let trainer = Trainer(layout: model.layout, configuration: config)
        var losses: [Double] = [], updates = 0
        for t in 0..<c.steps {
            if steps.reset[t] { record.resetState() }
            let target = steps.y[t]
            var values: [Float] = [], id: Int32 = 0
            switch target {
            case .classIndex(let k)?: id = k
            case .values(let v)?: values = v
            case nil: break
            }
            try steps.x[t].withUnsafeBufferPointer { x in
                _ = learning.prepare(record, features: x.baseAddress!, token: 0, modelInput: engine.featureRow(0), explicitTarget: target != nil, learnable: true)
                engine.loadState(row: 0, from: record.state)
                engine.step(weights: model.weights.pointer, batch: 1)
                let outcome = values.withUnsafeBufferPointer { v in
                    learning.finish(record, logits: engine.logits(row: 0), stateBefore: record.state, modelInput: UnsafePointer(engine.featureRow(0)),
                                    token: 0, explicitTarget: target != nil, targetValues: values.isEmpty ? nil : v.baseAddress!, targetClass: id)
                }
                engine.storeState(row: 0, to: record.state)
                if let l = outcome.loss { losses.append(Double(l)) }
                if outcome.due {
                    let w = try #require(record.window)
                    if trainer.update(windows: [w], weights: model.weights.pointer) != nil { updates += 1 }
                }
            }
        }
        #expect(updates == expected.updates)
        #expect(losses.count == expected.losses.count)
        let worstLoss = zip(losses, expected.losses).map { abs($0 - $1) / max(abs($1), 1e-3) }.max() ?? 0
        #expect(worstLoss < 1e-4, "progressive losses differ by up to \(worstLoss) (relative)")
        let diff = maxAbsDifference(model.weights.array, final.weights.array)
        #expect(diff < 1e-5, "final weights differ by up to \(diff)")
    }
}

extension ReferenceTests.LearningCase {
    var learning: LearningConfiguration {
        LearningConfiguration(k1: k1, k2: k2, optimizer: OptimizerKind(rawValue: optimizer)!, learningRate: lr, clip: clip)
    }
}
