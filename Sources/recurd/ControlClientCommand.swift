import ArgumentParser
import Foundation
import ZeroMQ

struct ControlClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Send a control command to a running daemon and print its JSON reply.",
        discussion: "Commands: stats, streams, stream KEY, reset KEY, drop KEY, checkpoint, learning on|off, set lr=X, model, reload."
    )

    @Option(help: "Control endpoint.") var connect = "tcp://127.0.0.1:5557"
    @Option(parsing: .unconditional, help: "Seconds to wait for the reply.") var timeout: Double = 5

    func validate() throws {
        if !(timeout > 0 && timeout <= 86_400) { throw ValidationError("--timeout must be between 0 and 86400 seconds") }
    }
    @OptionGroup var curve: CurveClientOptions
    @Argument(parsing: .remaining, help: "The command and its argument.") var command: [String]

    func run() throws {
        guard !command.isEmpty else { throw ValidationError("give a command, e.g. `recurd ctl stats`") }
        let client = ControlClient(endpoint: connect, timeout: timeout, context: try ZMQContext(), curve: curve)
        guard let reply = try client.raw(command.joined(separator: " ")) else {
            throw CLIError("no reply from \(connect) within \(timeout) s: is `recurd serve` running, with --control \(connect)? (pass --connect to name its control endpoint)")
        }
        let object = try? JSONSerialization.jsonObject(with: Data(reply))
        if let object, let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
            print(String(decoding: pretty, as: UTF8.self))
        } else {
            print(String(decoding: reply, as: UTF8.self))
        }
        if let o = object as? [String: Any], o["ok"] as? Bool == false { throw ExitCode(1) }
    }
}
