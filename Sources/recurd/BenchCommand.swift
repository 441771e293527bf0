import ArgumentParser

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Benchmarks the README quotes.")
    func run() throws { throw CLIError("bench: not built yet") }
}
