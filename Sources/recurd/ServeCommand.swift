import ArgumentParser
import Foundation
import Logging
import RecurdDaemon
import RecurdNumerics

extension ServeConfiguration.InputSocket: ExpressibleByArgument {}
extension ServeConfiguration.OutputFormat: ExpressibleByArgument {}
extension ServeConfiguration.GapPolicy: ExpressibleByArgument {}
extension ServeConfiguration.Targets: ExpressibleByArgument {}
extension ServeConfiguration.TrainerPriority: ExpressibleByArgument {}

/// The flags of `serve` (and `demo`), each overriding the config file.
struct ServeOptions: ParsableArguments {
    @Option(help: "Config file (flat TOML; keys are these flags' names).") var config: String?
    @Option(help: "Model file (default: create one when the first stream speaks).") var model: String?
    @Option(help: "Input endpoint to bind (repeatable; default tcp://127.0.0.1:5555).") var input: [String] = []
    @Option(name: .customLong("input-connect"), help: "Input endpoint to connect to (repeatable).") var inputConnect: [String] = []
    @Option(name: .customLong("input-socket"), help: "sub (default) or pull.") var inputSocket: ServeConfiguration.InputSocket?
    @Option(help: "SUB prefix to receive (repeatable; default everything).") var subscribe: [String] = []
    @Option(help: "Output PUB endpoint (default tcp://127.0.0.1:5556).") var output: String?
    @Option(name: .customLong("output-prefix"), help: "Prefix of the output topic (before the stream key).") var outputPrefix: String?
    @Option(name: .customLong("output-format"), help: "binary (default) or json.") var outputFormat: ServeConfiguration.OutputFormat?
    @Option(name: .customLong("top-k"), help: "Softmax heads: publish the k most probable classes (0: all).") var topK: Int?
    @Option(help: "Control REP endpoint (default tcp://127.0.0.1:5557; empty disables).") var control: String?
    @Option(help: "HOST:PORT for /metrics and /healthz (default 127.0.0.1:9464; empty disables).") var http: String?
    @Option(name: .customLong("state-dir"), help: "Directory for checkpoints.") var stateDir: String?
    @Flag(inversion: .prefixedNo, help: "Learn online (default on).") var learn: Bool?
    @Option(name: .customLong("max-streams"), help: "Streams kept; the least recently used is evicted beyond (default 10000).") var maxStreams: Int?
    @Option(name: .customLong("idle-timeout"), help: "Seconds of silence after which a stream is forgotten (default 3600; 0 never).") var idleTimeout: Double?
    @Option(name: .customLong("max-message-bytes"), help: "Largest payload accepted (default 1048576).") var maxMessageBytes: Int?
    @Option(name: .customLong("max-batch"), help: "Messages drained per batch (default 2048).") var maxBatch: Int?
    @Option(name: .customLong("on-gap"), help: "continue (default) or reset when a seq gap is seen.") var onGap: ServeConfiguration.GapPolicy?
    @Option(help: "next (default): the next step's input is the target; explicit: only sent targets.") var targets: ServeConfiguration.Targets?
    @Option(name: .customLong("log-level"), help: "trace, debug, info (default), notice, warning, error.") var logLevel: String?
    @Option(help: "Steps between a stream's updates (default 16).") var k1: Int?
    @Option(help: "Window length backpropagated through (default 32).") var k2: Int?
    @Option(help: "adam (default) or sgd.") var optimizer: OptimizerKind?
    @Option(help: "Learning rate (default 0.005).") var lr: Float?
    @Option(help: "Clip the global gradient norm to this (0: none; default 1).") var clip: Float?
    @Option(name: .customLong("train-batch"), help: "Most windows in one batched update (default 32).") var trainBatch: Int?
    @Option(name: .customLong("train-queue"), help: "Windows waiting for the trainer before newer ones coalesce or drop (default 256).") var trainQueue: Int?
    @Flag(name: .customLong("sync-learning"), help: "Train inline on the serving thread, deterministically (one stream then equals `recurd fit`).") var syncLearning = false
    @Flag(inversion: .prefixedNo, help: "Standardise feature streams per stream (default on).") var normalize: Bool?
    @Option(name: .customLong("trainer-priority"), help: "idle (default: only CPU serving leaves), low (nice 10) or normal.") var trainerPriority: ServeConfiguration.TrainerPriority?

    /// Built-in defaults, then the config file, then the flags.
    func configuration(base: ServeConfiguration = ServeConfiguration()) throws -> ServeConfiguration {
        var c = base
        if let config {
            let text = try String(decoding: FileIO.read(config, what: "config"), as: UTF8.self)
            do { c = try ConfigFile.apply(text, file: config, to: c) } catch { throw CLIError(error.description) }
        }
        if let model { c.model = model }
        if !input.isEmpty { c.inputBind = input }
        if !inputConnect.isEmpty {
            c.inputConnect = inputConnect
            if input.isEmpty && config == nil { c.inputBind = [] }
        }
        if let inputSocket { c.inputSocket = inputSocket }
        if !subscribe.isEmpty { c.subscribe = subscribe }
        if let output { c.output = output }
        if let outputPrefix { c.outputPrefix = outputPrefix }
        if let outputFormat { c.outputFormat = outputFormat }
        if let topK { c.topK = topK }
        if let control { c.control = control }
        if let http { c.http = http }
        if let stateDir { c.stateDirectory = stateDir }
        if let learn { c.learn = learn }
        if let maxStreams { c.maxStreams = maxStreams }
        if let idleTimeout { c.idleTimeout = idleTimeout }
        if let maxMessageBytes { c.maxMessageBytes = maxMessageBytes }
        if let maxBatch { c.maxBatch = maxBatch }
        if let onGap { c.onGap = onGap }
        if let targets { c.targets = targets }
        if let logLevel { c.logLevel = logLevel }
        if let k1 { c.k1 = k1 }
        if let k2 { c.k2 = k2 }
        if let optimizer { c.optimizer = optimizer }
        if let lr { c.learningRate = lr }
        if let clip { c.clip = clip }
        if let trainBatch { c.trainBatch = trainBatch }
        if let trainQueue { c.trainQueue = trainQueue }
        if syncLearning { c.syncLearning = true }
        if let normalize { c.normalize = normalize }
        if let trainerPriority { c.trainerPriority = trainerPriority }
        if let problem = c.problem() { throw CLIError(problem) }
        return c
    }
}

/// Structured logs to standard error (journald picks them up under systemd).
func makeLogger(level: String) -> Logger {
    var logger = Logger(label: "recurd") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = Logger.Level(rawValue: level) ?? .info
    return logger
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the daemon (ZeroMQ in, predictions out).")

    @OptionGroup var options: ServeOptions

    func run() async throws {
        let config = try options.configuration()
        let logger = makeLogger(level: config.logLevel)
        let daemon: Daemon
        do { daemon = try Daemon(configuration: config, logger: logger) } catch { throw CLIError("\(error)") }
        do { try await daemon.run() } catch { throw CLIError("\(error)") }
    }
}
