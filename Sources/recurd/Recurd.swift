import ArgumentParser
import RecurdDaemon

@main
struct Recurd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recurd",
        abstract: "Stateful LSTM/GRU inference and online learning for streams.",
        version: BuildInfo.description,
        subcommands: [ServeCommand.self, DemoCommand.self, InitCommand.self, RunCommand.self, FitCommand.self, PublishCommand.self, TailCommand.self, ControlClientCommand.self, KeygenCommand.self, BenchCommand.self]
    )
}
