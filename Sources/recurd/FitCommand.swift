import ArgumentParser
import Foundation
import RecurdData
import RecurdModelFile
import RecurdNumerics
import RecurdStore
import RecurdStreams

struct FitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Online TBPTT (DESIGN §3) on one recorded stream with next-step targets; single-threaded and deterministic."
    )

    @Option(help: "Model file to start from.") var model: String
    @Option(help: "Recorded stream: a CSV of features, a text file, or token ids (see --format).") var input: String
    @Option(help: "csv, text (a token per byte) or tokens (token ids; default: from the model's input: csv for features, text for 256 tokens, tokens for other vocabularies).") var format: StreamFormat?
    @Option(parsing: .unconditional, help: "0-based CSV columns to use as features.") var columns: String?
    @Option(parsing: .unconditional, help: "Steps between updates.") var k1: Int
    @Option(parsing: .unconditional, help: "Window length backpropagated through.") var k2: Int
    @Option(help: "adam or sgd.") var optimizer: OptimizerKind
    @Option(parsing: .unconditional, help: "Learning rate.") var lr: Float
    @Option(parsing: .unconditional, help: "Clip the global gradient norm to this (0: no clipping).") var clip: Float
    @Option(help: "Write the final model here.") var save: String?
    @Option(help: "Write a JSON report here.") var report: String?
    @Flag(help: "Standardise each feature with its running mean and variance (off by default, so results compare with any framework's).") var normalize = false
    @Flag(help: "Print only the summary, not the curve as it goes.") var quiet = false
    @Option(parsing: .unconditional, help: "Text models: score the daemon's published distribution, the network's refined by a per-stream context model of this many bytes (0, the default: the network's own, as any framework computes it).") var textContextBytes = 0

    /// Malformed flag values are usage errors, answered with this command's usage.
    func validate() throws {
        if let columns { _ = try parseColumns(columns) }
        if textContextBytes < 0 { throw ValidationError("--text-context-bytes must be ≥ 0") }
    }

    func run() throws {
        let config = LearningConfiguration(k1: k1, k2: k2, optimizer: optimizer, learningRate: lr, clip: clip)
        if let problem = config.problem() { throw CLIError(problem) }
        if let warning = config.warning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        try checkOutputs()
        let file = try ModelLoading.loadModel(model)
        let m = file.model
        if let problem = OnlineLearner.nextStepProblem(m.architecture) { throw CLIError("\(model): \(problem)") }
        if textContextBytes > 0, case .features = m.architecture.input {
            throw CLIError("--text-context-bytes scores text models; \(model) takes features")
        }
        let cols = try columns.map { try parseColumns($0) }
        let stream = try ModelLoading.loadStream(input, format: format, columns: cols, for: m.architecture)
        guard stream.count >= 2 else { throw CLIError("\(input): fit needs at least 2 steps (one target)") }

        Kernels.prepare()
        if normalize && m.architecture.head != .linear { throw CLIError("--normalize needs a feature model with a linear head (next-step regression)") }
        let learner = OnlineLearner(model: m, configuration: config, standardize: normalize,
                                    forecast: ForecastOptions(textContextBytes: textContextBytes))
        var curve = ProgressCurve(block: 1_000)
        let started = DispatchTime.now().uptimeNanoseconds
        switch stream {
        case .features(let values, let width, _):
            values.withUnsafeBufferPointer { v in
                for t in 0..<stream.count {
                    if let loss = learner.observe(features: v.baseAddress! + t * width) { record(loss, &curve) }
                }
            }
        case .tokens(let ids):
            for id in ids {
                if let loss = learner.observe(token: id) { record(loss, &curve) }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        curve.finish()

        let isText: Bool = if case .tokens = stream { true } else { false }
        let softmax = m.architecture.head == .softmax
        let summary = FitReport(
            steps: stream.count, targets: curve.count, updates: learner.updates,
            skippedUpdates: learner.trainer.skippedUpdates, meanLoss: curve.mean, secondHalfLoss: curve.secondHalfMean,
            bitsPerByte: softmax && isText ? curve.mean / log(2) : nil,
            stepsPerSecond: Double(stream.count) / seconds, seconds: seconds,
            lossUnit: softmax ? "nats" : (m.architecture.head == .linear ? (normalize ? "squared standard deviations" : "squared units") : "nats (binary cross-entropy)"),
            curve: curve.points)
        var line = "steps \(summary.steps)  targets \(summary.targets)  updates \(summary.updates)  mean loss \(format6(summary.meanLoss)) \(summary.lossUnit)"
        if let bpb = summary.bitsPerByte { line += "  (\(format6(bpb)) bits/byte)" }
        line += "  \(Int(summary.stepsPerSecond)) steps/s"
        print(line)
        if let save {
            // Not the checksum or version of a checkpoint it may have started from: they are of
            // the weights before training, and a daemon would refuse the file as damaged.
            let metadata = file.metadata.filter { !CheckpointStore.checkpointOnlyKeys.contains($0.key) }
            try FileIO.writeAtomically(ModelFile(model: m, metadata: metadata).encode(), to: save)
        }
        if let report {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            // A loss that overflowed (a learning rate far too high) is written as the string
            // "inf" or "nan" (Python's float() reads both) instead of failing the report.
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try FileIO.writeAtomically(Array(try encoder.encode(summary)), to: report)
        }
    }

    /// Before the fit, not after it: an output that cannot be written, or two outputs in one file
    /// (the report would replace the model).
    private func checkOutputs() throws {
        if let save, let report, URL(fileURLWithPath: save).standardizedFileURL == URL(fileURLWithPath: report).standardizedFileURL {
            throw CLIError("--save and --report name the same file (\(save)); the report would replace the model")
        }
        for (flag, path) in [("--save", save), ("--report", report)] {
            guard let path else { continue }
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("\(flag) \(path): the folder \(folder) does not exist")
            }
            guard access(folder, W_OK) == 0 else { throw CLIError("\(flag) \(path): the folder \(folder) is not writable") }
        }
    }

    private func record(_ loss: Float, _ curve: inout ProgressCurve) {
        if let point = curve.add(Double(loss)), !quiet {
            print("targets \(point.targets)  loss \(format6(point.blockLoss))  running \(format6(point.runningLoss))")
            fflush(nil)
        }
    }
}
