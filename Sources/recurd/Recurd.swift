import ArgumentParser

@main
struct Recurd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recurd",
        abstract: "Stateful LSTM/GRU inference and online learning for streams.",
        subcommands: [InitCommand.self, RunCommand.self, FitCommand.self, BenchCommand.self]
    )
}
