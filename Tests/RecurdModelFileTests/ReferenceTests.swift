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

    struct FitCase: Decodable, CustomTestStringConvertible, Sendable {
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

    static let forwardCases: [ForwardCase] = load("cases.json")
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
        let config = LearningConfiguration(k1: c.k1, k2: c.k2, optimizer: OptimizerKind(rawValue: c.optimizer)!, learningRate: c.lr, clip: c.clip)
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
}
