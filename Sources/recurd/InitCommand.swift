import Foundation
import ArgumentParser
import RecurdDaemon
import RecurdModelFile
import RecurdNumerics

extension CellKind: ExpressibleByArgument {}
extension HeadKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension StreamFormat: ExpressibleByArgument {}

/// Parses "64" or "64,32" into sizes.
func parseSizes(_ text: String, flag: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    var sizes: [Int] = []
    for p in parts {
        guard let n = Int(p.trimmingCharacters(in: .whitespaces)), n > 0 else {
            throw ValidationError("\(flag) takes positive integers separated by commas, got '\(text)'")
        }
        sizes.append(n)
    }
    return sizes
}

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Write a new model file from architecture flags.")

    @Option(help: "Recurrent cell: lstm or gru.") var cell: CellKind
    @Option(help: "Hidden size of each layer, bottom first, e.g. 64 or 128,64.") var hidden: String
    @Option(name: .customLong("input-size"), parsing: .unconditional, help: "Features per step (feature input).") var inputSize: Int?
    @Option(parsing: .unconditional, help: "Vocabulary size (token input; 256 for bytes).") var vocab: Int?
    @Option(parsing: .unconditional, help: "Embedding size (token input).") var embed: Int?
    @Option(name: .customLong("output-size"), parsing: .unconditional, help: "Outputs of the head.") var outputSize: Int
    @Option(help: "Head: linear, softmax or sigmoid.") var head: HeadKind
    @Flag(help: "The head predicts the change of its input, starting at zero (a fresh model forecasts persistence); feature input, linear head, as many outputs as inputs.") var residual = false
    @Option(parsing: .unconditional, help: "Random seed for the initialisation.") var seed: UInt64 = 1
    @Option(name: [.short, .long], help: "Model file to write.") var output: String

    func validate() throws {
        if inputSize != nil && (vocab != nil || embed != nil) { throw ValidationError("give either --input-size or --vocab with --embed, not both") }
        if inputSize == nil && (vocab == nil || embed == nil) { throw ValidationError("give --input-size N for features, or --vocab V and --embed E for tokens") }
        _ = try parseSizes(hidden, flag: "--hidden")
    }

    func run() throws {
        let sizes = try parseSizes(hidden, flag: "--hidden")
        let input: InputKind = if let inputSize { .features(size: inputSize) } else { .tokens(vocabulary: vocab!, embedding: embed!) }
        let architecture = ModelArchitecture(cell: cell, input: input, hidden: sizes, outputSize: outputSize, head: head, residual: residual)
        if let problem = architecture.problem() { throw CLIError(problem) }
        try Self.checkMemory(architecture, hidden: sizes)
        let model = Model(architecture: architecture, seed: seed)
        try FileIO.writeAtomically(ModelFile(model: model).encode(), to: output)
        print("wrote \(output): \(architecture.cell.rawValue) \(sizes.map(String.init).joined(separator: ","))\(residual ? ", residual head" : ""), \(model.layout.count) parameters")
    }

    /// A failed allocation ends a Swift process with a trap and a backtrace; a model too large
    /// for the process is refused first, saying how much it needs. The estimate: the weights
    /// are alive three times over while the file is made (the model, the tensors' copies, the
    /// file's bytes) plus the largest recurrent matrix in doubles while it is orthogonalised;
    /// the limit is the cgroup's (MemoryMax=) or the machine's memory.
    static func checkMemory(_ architecture: ModelArchitecture, hidden: [Int]) throws {
        let parameters = ParameterLayout(architecture).count
        let gates = architecture.cell == .lstm ? 4 : 3
        let largest = hidden.map { gates * $0 * $0 }.max() ?? 0
        let needed = Double(parameters) * 16 + Double(largest) * 8
        let limit = MemoryLimit.current()
        func gb(_ b: Double) -> String { String(format: "%.1f GB", b / 1e9) }
        guard needed < Double(limit.bytes) else {
            throw CLIError("--hidden \(hidden.map(String.init).joined(separator: ",")): a model of \(parameters) parameters "
                + "(\(gb(Double(parameters) * 4)) of weights) needs about \(gb(needed)) of memory to create; "
                + "\(limit.source) is \(gb(Double(limit.bytes)))")
        }
    }
}
