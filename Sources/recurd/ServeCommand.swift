import ArgumentParser
import Foundation
import Logging
import RecurdDaemon
import RecurdNumerics

/// `serve`'s settings are declared once, in `ServeSettings`: its flags are read from that
/// declaration (and `--help` lists them from it) rather than declared again here.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon (ZeroMQ in, predictions out).",
        usage: "recurd serve [--config FILE] [--SETTING VALUE …]",
        discussion: "`recurd serve --help` lists every setting.")

    @Argument(parsing: .captureForPassthrough, help: .hidden) var arguments: [String] = []

    static var help: String {
        [
            "OVERVIEW: \(configuration.abstract)", "",
            "USAGE: recurd serve [--config FILE] [--SETTING VALUE …]", "",
            SettingsSource.helpText, "",
            "SIGTERM finishes the work in flight, checkpoints and exits 0; SIGHUP reloads the settings marked [live].",
        ].joined(separator: "\n")
    }

    func run() async throws {
        if arguments.contains("--help") || arguments.contains("-h") {
            print(Self.help)
            return
        }
        // A reload asked for while the daemon starts (opening the store, reading a checkpoint)
        // must not end it: SIGHUP's default action until the reload service takes it over.
        signal(SIGHUP, SIG_IGN)
        let source: SettingsSource
        let config: ServeConfiguration
        do {
            source = try SettingsSource.parse(arguments: arguments)
            config = try source.resolve()
        } catch {
            throw CLIError(error.description)
        }
        let logs = LogControl(level: config.logLevel, format: config.logFormat)
        let daemon: Daemon
        do { daemon = try Daemon(configuration: config, source: source, logControl: logs) } catch { throw CLIError("\(error)") }
        do { try await daemon.run() } catch { throw CLIError("\(error)") }
    }
}

/// Structured logs to standard error for the command-line tools (the daemon has `LogControl`).
func makeLogger(level: String) -> Logger {
    LogControl(level: ServeConfiguration.LogLevel(rawValue: level) ?? .info).logger()
}
