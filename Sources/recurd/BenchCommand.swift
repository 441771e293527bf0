import ArgumentParser
import Foundation
import RecurdData
import RecurdModelFile
import RecurdNumerics
import RecurdStreams

/// `recurd bench …`: the measurements the README quotes. Each prints one JSON object per line
/// (so `Benchmarks/compare.py` can put recurd and its peers in one table) or, with `--table`,
/// a readable line.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks the README quotes (one thread each).",
        subcommands: [BenchStep.self, BenchFit.self, BenchTrain.self, BenchKernels.self, BenchLoad.self, BenchStore.self]
    )
}

/// Monotonic nanoseconds.
@inline(__always) func nowNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// The model a bench command runs: the model file if one is given, else a new feature model
/// (linear head, seed 1) from the command's flags.
func benchModel(file: String?, cell: CellKind, hidden: String, inputSize: Int, outputSize: Int) throws -> Model {
    if let file { return try ModelLoading.loadModel(file).model }
    let arch = ModelArchitecture(cell: cell, input: .features(size: inputSize), hidden: try parseSizes(hidden, flag: "--hidden"),
                                 outputSize: outputSize, head: .linear)
    if let problem = arch.problem() { throw CLIError(problem) }
    return Model(architecture: arch, seed: 1)
}

/// Prints a benchmark result as a JSON line.
func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Streaming step: a batch of streams through a stacked LSTM/GRU, state loaded and stored per stream as the daemon does."
    )

    @Option(help: "Model file (default: a new model from the flags below).") var model: String?
    @Option(help: "lstm or gru.") var cell: CellKind = .lstm
    @Option(help: "Hidden sizes.") var hidden: String = "128,128"
    @Option(name: .customLong("input-size"), parsing: .unconditional) var inputSize: Int = 32
    @Option(name: .customLong("output-size"), parsing: .unconditional) var outputSize: Int = 32
    @Option(parsing: .unconditional, help: "Streams stepped together.") var batch: Int = 1
    @Option(parsing: .unconditional, help: "Timed steps (per stream).") var steps: Int = 20_000
    @Option(parsing: .unconditional, help: "Untimed warm-up steps.") var warmup: Int = 1_000
    @Flag(help: "Steps read the weights as they are, not from their packed copies (for comparison).") var unpacked = false

    func run() throws {
        let m = try benchModel(file: model, cell: cell, hidden: hidden, inputSize: inputSize, outputSize: outputSize)
        guard case .features(let n) = m.architecture.input else { throw CLIError("bench step takes a feature model") }
        Kernels.prepare()
        let engine = StepEngine(layout: m.layout, maxBatch: batch)
        // As `recurd run` and the daemon do for steps with unchanged weights: the copy this batch reads.
        let packed = unpacked ? nil : PackedStepWeights(layout: m.layout, weights: m.weights.pointer, tiles: batch == 1, panels: batch > 1)
        let stateSize = m.architecture.stateSize
        // Per-stream state slots and a ring of inputs, as the daemon holds them.
        let states = FloatBuffer(count: batch * stateSize)
        var rng = SeededGenerator(seed: 7)
        let inputs = FloatBuffer((0..<(64 * batch * n)).map { _ in Float(rng.nextUnit() * 2 - 1) })
        var checksum: Float = 0
        func step(_ t: Int) {
            for b in 0..<batch {
                engine.loadState(row: b, from: states.pointer + b * stateSize)
                engine.setFeatures(row: b, inputs.pointer + ((t % 64) * batch + b) * n)
            }
            engine.step(weights: m.weights.pointer, batch: batch, packed: packed)
            for b in 0..<batch {
                engine.storeState(row: b, to: states.pointer + b * stateSize)
                checksum += engine.output(row: b)[0]
            }
        }
        for t in 0..<warmup { step(t) }
        var latencies = [UInt64](repeating: 0, count: steps)
        let start = nowNanoseconds()
        for t in 0..<steps {
            let t0 = nowNanoseconds()
            step(t)
            latencies[t] = nowNanoseconds() - t0
        }
        let seconds = Double(nowNanoseconds() - start) / 1e9
        latencies.sort()
        emit([
            "bench": "step", "impl": "recurd", "cell": m.architecture.cell.rawValue, "hidden": m.architecture.hidden,
            "input": n, "outputs": m.architecture.outputSize, "batch": batch, "steps": steps,
            "us_per_step": seconds / Double(steps) * 1e6,
            "p50_us": Double(latencies[steps / 2]) / 1e3, "p99_us": Double(latencies[steps * 99 / 100]) / 1e3,
            "stream_steps_per_second": Double(steps * batch) / seconds,
            "checksum_finite": checksum.isFinite,
        ])
    }
}

struct BenchFit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "`recurd fit` on a byte stream (DESIGN §3): byte LSTM, embedding, softmax head, Adam."
    )

    @Option(help: "Text file to learn.") var input: String
    @Option(parsing: .unconditional, help: "Steps (bytes) to use.") var steps: Int = 50_000
    @Option(help: "Hidden sizes.") var hidden: String = "128"
    @Option(parsing: .unconditional) var embed: Int = 32
    @Option(parsing: .unconditional) var k1: Int = 16
    @Option(parsing: .unconditional) var k2: Int = 32
    @Option(parsing: .unconditional) var lr: Float = 0.005
    @Option(parsing: .unconditional) var clip: Float = 1

    func run() throws {
        let arch = ModelArchitecture(cell: .lstm, input: .tokens(vocabulary: 256, embedding: embed), hidden: try parseSizes(hidden, flag: "--hidden"),
                                     outputSize: 256, head: .softmax)
        let bytes = Array(try FileIO.read(input, what: "input").prefix(steps))
        Kernels.prepare()
        let learner = OnlineLearner(model: Model(architecture: arch, seed: 1),
                                    configuration: LearningConfiguration(k1: k1, k2: k2, optimizer: .adam, learningRate: lr, clip: clip))
        var sum = 0.0, targets = 0
        let start = nowNanoseconds()
        for b in bytes {
            if let l = learner.observe(token: Int32(b)) { sum += Double(l); targets += 1 }
        }
        let seconds = Double(nowNanoseconds() - start) / 1e9
        emit([
            "bench": "fit", "impl": "recurd", "hidden": arch.hidden, "embed": embed, "k1": k1, "k2": k2, "steps": bytes.count,
            "updates": learner.updates, "seconds": seconds, "steps_per_second": Double(bytes.count) / seconds,
            "mean_loss": sum / Double(max(targets, 1)),
        ])
    }
}

