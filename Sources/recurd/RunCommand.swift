import ArgumentParser
import Foundation
import RecurdData
import RecurdModelFile
import RecurdNumerics

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Step-wise predictions of one recorded stream.")

    @Option(help: "Model file.") var model: String
    @Option(help: "Recorded stream: a CSV of features, a text file, or token ids (see --format).") var input: String
    @Option(help: "csv, text (a token per byte) or tokens (token ids; default: from the model's input: csv for features, text for 256 tokens, tokens for other vocabularies).") var format: StreamFormat?
    @Option(parsing: .unconditional, help: "0-based CSV columns to use as features, e.g. 1,2.") var columns: String?
    @Option(help: "Write predictions here instead of standard output.") var output: String?
    @Flag(help: "Standardise each feature with its running mean and variance and print predictions in the stream's units, as `recurd serve` does by default (for a model trained with it).") var normalize = false

    /// Malformed flag values are usage errors, answered with this command's usage.
    func validate() throws {
        if let columns { _ = try parseColumns(columns) }
    }

    func run() throws {
        let file = try ModelLoading.loadModel(model)
        let m = file.model
        let cols = try columns.map { try parseColumns($0) }
        let stream = try ModelLoading.loadStream(input, format: format, columns: cols, for: m.architecture)
        let engine = StepEngine(layout: m.layout, maxBatch: 1)
        // One stream, weights that never change here: the one-stream copy only.
        let packed = PackedStepWeights(layout: m.layout, weights: m.weights.pointer, tiles: true, panels: false)
        let o = m.architecture.outputSize
        var out: [UInt8] = []
        // The output goes out every MiB: room for that, not for the whole stream's.
        out.reserveCapacity(min(stream.count * o * 12, 2 << 20))
        let sink = OutputSink(path: output)
        // Said before the stream is computed, not after.
        if let problem = sink.openProblem { throw CLIError(problem) }
        if normalize {
            guard case .features(let n) = m.architecture.input, m.architecture.head == .linear, o == n else {
                throw CLIError("\(model): --normalize applies to feature models whose linear head predicts their own input (\(m.architecture.head) head, \(o) outputs)")
            }
        }
        switch stream {
        case .features(let values, let width, _):
            // The daemon's rule (DESIGN §3): each step is standardised with the statistics that
            // include it, and the prediction is mapped back with them.
            var count = 0.0
            let mean = UnsafeMutablePointer<Double>.allocate(capacity: width), m2 = UnsafeMutablePointer<Double>.allocate(capacity: width)
            mean.initialize(repeating: 0, count: width); m2.initialize(repeating: 0, count: width)
            let z = FloatBuffer(count: width), y = FloatBuffer(count: max(o, 1))
            defer { mean.deallocate(); m2.deallocate() }
            values.withUnsafeBufferPointer { v in
                for t in 0..<stream.count {
                    if normalize {
                        RunningStandardizer.observe(v.baseAddress! + t * width, into: z.pointer, count: &count, mean: mean, m2: m2, n: width)
                        engine.setFeatures(row: 0, z.pointer)
                    } else {
                        engine.setFeatures(row: 0, v.baseAddress! + t * width)
                    }
                    engine.step(weights: m.weights.pointer, batch: 1, packed: packed)
                    if normalize {
                        RunningStandardizer.destandardize(engine.output(row: 0), into: y.pointer, count: count, mean: mean, m2: m2, n: width)
                        NumberFormatting.appendLine(y.pointer, count: o, to: &out)
                    } else {
                        NumberFormatting.appendLine(engine.output(row: 0), count: o, to: &out)
                    }
                    if out.count > 1 << 20 { sink.write(&out) }
                }
            }
        case .tokens(let ids):
            if normalize { throw CLIError("\(model): --normalize applies to feature models, not token input") }
            for id in ids {
                engine.setToken(row: 0, id)
                engine.step(weights: m.weights.pointer, batch: 1, packed: packed)
                NumberFormatting.appendLine(engine.output(row: 0), count: o, to: &out)
                if out.count > 1 << 20 { sink.write(&out) }
            }
        }
        sink.write(&out)
        try sink.finish()
    }
}

/// Parses "1,2" into 0-based column indices.
func parseColumns(_ text: String) throws -> [Int] {
    var result: [Int] = []
    for p in text.split(separator: ",", omittingEmptySubsequences: false) {
        guard let n = Int(p.trimmingCharacters(in: .whitespaces)), n >= 0 else {
            throw ValidationError("--columns takes 0-based column numbers separated by commas, got '\(text)'")
        }
        result.append(n)
    }
    return result
}

/// Streams output to a file (written to a temporary name, renamed at the end) or stdout.
final class OutputSink {
    private let path: String?
    private let temporary: String?
    private let fd: Int32
    private var failed = false
    /// Why the output file could not be opened, if it could not.
    private(set) var openProblem: String?

    init(path: String?) {
        self.path = path
        if let path {
            let tmp = path + ".tmp-\(getpid())"
            temporary = tmp
            fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            if fd < 0 { openProblem = "\(path): cannot write output: \(String(cString: strerror(errno)))" }
        } else {
            temporary = nil
            fd = 1
        }
    }

    func write(_ bytes: inout [UInt8]) {
        if fd >= 0, !failed {
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n < 0 { if errno == EINTR { continue }; failed = true; return }
                    offset += n
                }
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }

    func finish() throws {
        guard let path, let temporary else {
            if failed { throw CLIError("cannot write to standard output") }
            return
        }
        guard fd >= 0 else { throw CLIError("\(path): cannot write output: \(String(cString: strerror(errno)))") }
        let closeFailed = close(fd) != 0
        if failed || closeFailed || rename(temporary, path) != 0 {
            unlink(temporary)
            throw CLIError("\(path): cannot write output")
        }
    }
}
