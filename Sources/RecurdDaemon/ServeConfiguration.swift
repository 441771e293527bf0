import RecurdNumerics
import RecurdStreams

/// Everything `recurd serve` can be told, with the built-in defaults (loopback only).
///
/// Set by a config file (`--config F`), then by flags, which win. Names match the flags; the
/// README's configuration reference lists each one.
public struct ServeConfiguration: Sendable, Equatable {
    public enum InputSocket: String, Sendable, CaseIterable { case sub, pull }
    public enum OutputFormat: String, Sendable, CaseIterable { case binary, json }
    public enum GapPolicy: String, Sendable, CaseIterable { case `continue`, reset }
    /// How the background trainer shares the CPU with serving.
    public enum TrainerPriority: String, Sendable, CaseIterable {
        /// Two threads taking turns (the default): one at SCHED_IDLE, and one at nice 19 that
        /// takes over while a quarter of the training queue waits and serving has no backlog.
        /// On 2 cores it trains (nearly) every due window up to about half the max serving rate
        /// where `idle` trained half of them, with `idle`'s latency at light load; the top rate
        /// with learning on comes out some 20 % lower (see `BackgroundTrainer`, README).
        case background
        /// Linux SCHED_IDLE: only CPU time nothing else wants. Serving keeps its full throughput;
        /// on a busy small machine the trainer drops more windows (counted).
        case idle
        /// nice 10: trains more on a busy machine, at some cost to serving latency.
        case low
        /// The same priority as serving.
        case normal
    }
    public enum LogLevel: String, Sendable, CaseIterable { case trace, debug, info, notice, warning, error, critical }
    /// What the head of a created feature model predicts (DESIGN §3.7 (a)).
    public enum Forecast: String, Sendable, CaseIterable {
        /// The change of the standardised input, the head starting at zero: a fresh model
        /// forecasts persistence.
        case residual
        /// The next value itself: the plain, PyTorch-exact form.
        case level
    }
    public enum Targets: String, Sendable, CaseIterable {
        /// The next step's input is the target of each step (when the model allows it).
        case next
        /// Only targets sent with the steps count.
        case explicit
    }

    /// Model file; nil: create one from the `new-model` settings when the first stream speaks.
    public var model: String?
    /// Endpoints the input socket binds.
    public var inputBind: [String] = ["tcp://127.0.0.1:5555"]
    /// Endpoints the input socket connects to.
    public var inputConnect: [String] = []
    public var inputSocket: InputSocket = .sub
    /// SUB prefixes; empty: everything.
    public var subscribe: [String] = []
    public var output: String = "tcp://127.0.0.1:5556"
    /// Prepended to the stream key in the output's first frame.
    public var outputPrefix: String = ""
    public var outputFormat: OutputFormat = .binary
    /// For softmax heads: publish the k most probable classes instead of the whole vector (0: all).
    public var topK: Int = 0
    public var control: String = "tcp://127.0.0.1:5557"
    /// The server's secret CURVE certificate (zcert): CURVE on input, output and control.
    public var curveServerCert: String?
    /// Folder of allowed clients' public certificates: producers/, consumers/, operators/,
    /// optional trainers/ (re-read on SIGHUP).
    public var curveClients: String?
    /// HOST:PORT of the /metrics and /healthz server; empty disables it.
    public var http: String = "127.0.0.1:9464"
    /// Stream store and model checkpoints (DESIGN §6); nil: nothing is kept across restarts.
    public var stateDirectory: String?
    /// Seconds between writes of changed streams and of a changed model.
    public var checkpointInterval: Double = 30
    /// Streams kept in the store; beyond, the least recently written are deleted (counted).
    public var maxStoredStreams: Int = 1_000_000
    /// Start over from `--model`, setting aside the state directory's checkpoints and streams.
    public var resetModel: Bool = false
    public var learn: Bool = true
    public var maxStreams: Int = 10_000
    /// Seconds without a message after which a stream is forgotten (0: never).
    public var idleTimeout: Double = 3_600
    public var maxMessageBytes: Int = 1 << 20
    /// Largest output message: a long input message is answered in chunks of at most this size.
    public var maxOutputBytes: Int = 64 << 10
    /// Messages drained per batch.
    public var maxBatch: Int = 2048
    public var onGap: GapPolicy = .continue
    public var targets: Targets = .next
    /// Output and input queue limits (ZeroMQ high-water marks), messages.
    public var highWaterMark: Int = 100_000
    public var logLevel: LogLevel = .info
    /// text (journald priority prefixes under systemd) or json, one object per line.
    public var logFormat: LogControl.Format = .text

    // Online learning (DESIGN §3).
    /// Steps between updates of a stream.
    public var k1: Int = 16
    /// Window length backpropagated through.
    public var k2: Int = 32
    public var optimizer: OptimizerKind = .adam
    public var learningRate: Float = 0.005
    /// Global gradient-norm limit (0: none).
    public var clip: Float = 1
    /// Most windows in one batched update.
    public var trainBatch: Int = 32
    /// Windows waiting for the trainer; beyond, newer windows coalesce or are dropped.
    public var trainQueue: Int = 4096
    public var trainerPriority: TrainerPriority = .background
    /// Train inline on the serving thread, deterministically (one stream then equals `recurd fit`).
    public var syncLearning: Bool = false
    /// Standardise feature streams with next-step targets per stream (running mean and variance).
    public var normalize: Bool = true

    // Forecasting (DESIGN §3.7) and anomaly scores (§4).
    /// The head of a created feature model (a model file says its own).
    public var forecast: Forecast = .residual
    /// Feature streams publish the online combination of the network's forecast with simple ones.
    public var combine: Bool = true
    /// Outputs carry per-step anomaly scores.
    public var anomalyScores: Bool = false
    /// Scores at or above this count as alerts in `stats`, `stream KEY` and the metrics.
    public var anomalyAlertLevel: Float = 0.3
    /// Bytes of each text stream's context model, which sharpens the network's next-byte
    /// distribution (0: publish the network's as it is).
    public var textContextBytes: Int = 4 << 20
    /// Bytes the context models of all text streams in memory may take together; 0: half of
    /// what the process may use (`MemoryLimit`).
    public var textContextMemory: Int = 0

    // The model created when there is no model file.
    /// A text stream's created model starts from the bundled pre-trained byte model, when the
    /// new-model settings describe its shape.
    public var pretrainedText: Bool = true
    public var newModelCell: CellKind = .lstm
    public var newModelHidden: [Int] = [64]
    public var newModelHead: HeadKind = .linear
    public var newModelEmbedding: Int = 16
    public var newModelSeed: UInt64 = 1

    public init() {}

    /// The combiner and anomaly settings, as the stream records need them.
    /// `--no-combine` serves the network's own outputs for text too: the context model is a
    /// combination like the forecasters, and users turning combining off expect their
    /// framework's numbers (a walkthrough with a converted Keras model found them 0.08 apart).
    public var forecastOptions: ForecastOptions {
        ForecastOptions(combine: combine, anomalyScores: anomalyScores, textContextBytes: combine ? textContextBytes : 0)
    }

    /// The TBPTT and optimiser settings.
    public var learning: LearningConfiguration {
        LearningConfiguration(k1: k1, k2: k2, optimizer: optimizer, learningRate: learningRate, clip: clip)
    }

    /// Streams kept in memory for records whose text context model may grow to `textBytes`
    /// (0: none): `max-streams`, and no more text streams than `text-context-memory` holds at
    /// their full size (0: half of `memoryLimit`). Without this bound the defaults, 10,000 × 4 MiB,
    /// let a few thousand busy text streams take the process past `MemoryMax=`, and the OOM
    /// killer ends it without a checkpoint; with it the least recently used go to the store.
    public func residentStreams(textBytes: Int, memoryLimit: UInt64) -> Int {
        guard textBytes > 0 else { return maxStreams }
        let budget = textContextMemory > 0 ? UInt64(textContextMemory) : memoryLimit / 2
        let fit = budget / UInt64(textBytes)
        return max(1, fit >= UInt64(maxStreams) ? maxStreams : Int(fit))
    }

    /// The first invalid setting, or nil.
    public func problem() -> String? {
        if let p = learning.problem() { return p }
        if trainBatch < 1 { return "train-batch must be at least 1" }
        if trainQueue < trainBatch { return "train-queue (\(trainQueue)) must be at least train-batch (\(trainBatch))" }
        if maxStreams < 1 { return "max-streams must be at least 1" }
        // Slots and batch rows are allocated up front.
        if maxStreams > 10_000_000 { return "max-streams must be at most 10000000 (each slot is allocated up front; more streams live in the store)" }
        if maxBatch < 1 { return "max-batch must be at least 1" }
        if maxBatch > 65_536 { return "max-batch must be at most 65536" }
        if textContextBytes < 0 || textContextBytes > 1 << 30 { return "text-context-bytes must be between 0 and 1073741824" }
        if textContextMemory < 0 { return "text-context-memory must be ≥ 0 (0: half of what the process may use)" }
        if maxStreams <= maxBatch { return "max-streams (\(maxStreams)) must exceed max-batch (\(maxBatch))" }
        if maxMessageBytes < 64 { return "max-message-bytes must be at least 64" }
        if maxMessageBytes > 256 << 20 { return "max-message-bytes must be at most 256 MiB" }
        if maxOutputBytes < 1024 { return "max-output-bytes must be at least 1024" }
        if idleTimeout < 0 || !idleTimeout.isFinite { return "idle-timeout must be ≥ 0 seconds" }
        if topK < 0 { return "top-k must be ≥ 0" }
        if inputBind.isEmpty && inputConnect.isEmpty { return "no input endpoint (give --input or --input-connect)" }
        if newModelHidden.isEmpty || newModelHidden.contains(where: { $0 < 1 || $0 > 65_536 }) { return "new-model-hidden must be sizes in 1…65536" }
        if newModelEmbedding < 1 || newModelEmbedding > 65_536 { return "new-model-embedding must be in 1…65536" }
        if !http.isEmpty, (try? Daemon.hostPort(http)) == nil { return "http: '\(http)' is not HOST:PORT (IPv6: [::1]:9464)" }
        if !(checkpointInterval >= 1 && checkpointInterval <= 86_400) { return "checkpoint-interval must be between 1 and 86400 seconds" }
        if maxStoredStreams < 1 { return "max-stored-streams must be at least 1" }
        if learningRate > 1 { return "lr \(learningRate) is above 1, which destroys a model's weights; use a value in [0, 1]" }
        if clip > 1e6 { return "clip must be at most 1e6 (0 disables clipping)" }
        if highWaterMark < 1 { return "high-water-mark must be at least 1 (0 would let memory grow without bound)" }
        if topK > 65_535 { return "top-k must be at most 65535" }
        if !(anomalyAlertLevel > 0 && anomalyAlertLevel <= 1) { return "anomaly-alert-level must be in (0, 1]" }
        if (curveServerCert == nil) != (curveClients == nil) {
            return "curve-server-cert and curve-clients go together: the server's secret certificate, and the folder of the clients allowed"
        }
        if resetModel && model == nil { return "reset-model needs --model: the model to start over from" }
        return nil
    }
}
