import RecurdNumerics

/// Every setting of `recurd serve`, in the order `serve --help`, `Deploy/recurd.toml` and the
/// README list them. Defaults are `ServeConfiguration()`'s.
public enum ServeSettings {
    public static var all: [Setting] {
        [
            .optionalString("model", \.model, "Model file; seeds an empty state directory (default: created from the first stream)"),
            .strings("input", \.inputBind, "Input endpoints to bind (repeat the flag for several; '' for none)"),
            .strings("input-connect", \.inputConnect, "Input endpoints to connect to (repeat the flag for several)"),
            .choice("input-socket", \.inputSocket, "sub, or pull for producers that must not lose a message"),
            .strings("subscribe", \.subscribe, "SUB key prefixes to receive (empty: everything)"),
            .string("output", \.output, "PUB endpoint for predictions"),
            .string("output-prefix", \.outputPrefix, "Prefix of the output topic, before the stream key"),
            .choice("output-format", \.outputFormat, "Output payloads: binary or json"),
            .integer("top-k", \.topK, "Softmax heads: publish the k most probable classes (0: all)", reloadable: true),
            .string("control", \.control, "Control REP endpoint (empty: off)"),
            .string("http", \.http, "HOST:PORT for /metrics and /healthz (empty: off)"),
            .optionalString("curve-server-cert", \.curveServerCert, "The server's secret CURVE certificate: CURVE on input, output and control"),
            .optionalString("curve-clients", \.curveClients, "Folder of allowed clients' public certificates (producers/, consumers/, operators/, trainers/), re-read on SIGHUP"),
            .optionalString("state-dir", \.stateDirectory, "Stream store and model checkpoints (default: none, nothing lasts)"),
            .number("checkpoint-interval", \.checkpointInterval, "Seconds between writes of changed streams and a changed model", reloadable: true),
            .integer("max-stored-streams", \.maxStoredStreams, "Streams kept in the store; the least recently written beyond are deleted", reloadable: true),
            .bool("reset-model", \.resetModel, "Start over from --model, setting aside the state directory's checkpoints and streams",
                  flagOnly: true),
            .bool("learn", \.learn, "Learn online", reloadable: true),
            .integer("max-streams", \.maxStreams, "Streams in memory; the least recently used beyond go to the store", reloadable: true),
            .number("idle-timeout", \.idleTimeout, "Seconds of silence before a stream leaves memory (0: never)", reloadable: true),
            .integer("max-message-bytes", \.maxMessageBytes, "Largest payload accepted", reloadable: true),
            .integer("max-output-bytes", \.maxOutputBytes, "Largest binary output message; longer answers come in chunks (of at least one step; JSON outputs are larger)", reloadable: true),
            .integer("max-batch", \.maxBatch, "Messages drained per batch"),
            .choice("on-gap", \.onGap, "What a sequence gap does: continue or reset", reloadable: true),
            .choice("targets", \.targets, "next: each step's target is the next input; explicit: only sent targets"),
            .integer("high-water-mark", \.highWaterMark, "ZeroMQ queue limits, messages"),
            .choice("log-level", \.logLevel, "Log level", reloadable: true),
            .choice("log-format", \.logFormat, "Log lines: text (journald priorities under systemd) or json"),
            .integer("k1", \.k1, "Steps between a stream's updates"),
            .integer("k2", \.k2, "Window length backpropagated through"),
            .choice("optimizer", \.optimizer, "adam or sgd"),
            .float("lr", \.learningRate, "Learning rate, in [0, 1]", reloadable: true),
            .float("clip", \.clip, "Clip the global gradient norm to this (0: no clipping)", reloadable: true),
            .integer("train-batch", \.trainBatch, "Most windows in one batched update"),
            .integer("train-queue", \.trainQueue, "Windows waiting for the trainer before newer ones coalesce or drop"),
            .choice("trainer-priority", \.trainerPriority, "background (SCHED_IDLE, and a nice-19 thread while the trainer is a quarter of its queue behind and serving keeps up), idle (SCHED_IDLE only), low (nice 10) or normal"),
            .bool("sync-learning", \.syncLearning, "Train inline on the serving thread, deterministically"),
            .bool("normalize", \.normalize, "Standardise feature streams per stream (models whose linear head predicts their next input, with next-step targets)"),
            .bool("combine", \.combine, "Publish the network's output combined online with simple models: forecasters for feature streams, the context model for text (--no-combine: the network's own outputs)"),
            .bool("anomaly-scores", \.anomalyScores, "Outputs carry a per-step anomaly score in [0, 1]"),
            .float("anomaly-alert-level", \.anomalyAlertLevel, "Scores at or above this count as alerts (stats, metrics)", reloadable: true),
            .integer("text-context-bytes", \.textContextBytes, "Memory of each text stream's context model, which sharpens the network's next-byte distribution (0: off; --no-combine turns it off too)"),
            .integer("text-context-memory", \.textContextMemory, "Memory for the context models of all text streams in memory together: no more text streams stay in memory than fit at text-context-bytes each; the least recently used beyond go to the store (0: half of what the process may use: MemoryMax=, else the machine's memory)", reloadable: true),
            .choice("forecast", \.forecast, "Head of a created feature model: residual (predicts the change; starts as persistence) or level"),
            .bool("pretrained-text", \.pretrainedText, "A text stream's created model starts from the bundled byte model pre-trained on Shakespeare, when the new-model settings are its shape (the defaults)"),
            .choice("new-model-cell", \.newModelCell, "Cell of a model created from the first stream"),
            .integers("new-model-hidden", \.newModelHidden, "Hidden sizes of a created model, bottom first"),
            .choice("new-model-head", \.newModelHead, "Head of a created feature model"),
            .integer("new-model-embedding", \.newModelEmbedding, "Embedding size of a created text model"),
            .seed("new-model-seed", \.newModelSeed, "Seed of a created model's initialisation"),
        ]
    }

    /// The setting named `key` (`_` and `-` are the same).
    public static func named(_ key: String) -> Setting? {
        let k = String(key.map { $0 == "_" ? "-" : $0 })
        return all.first { $0.key == k }
    }

    /// The declared keys closest to `key`, for "did you mean" hints.
    /// `flag`: a command-line name, where a switch may also be spelt `no-KEY` (so that a
    /// misspelt `--no-normalise` is told `--no-normalize`, not its opposite).
    static func suggestion(for key: String, flag: Bool = false) -> String? {
        let k = Array(key)
        func distance(_ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for (i, ca) in k.enumerated() {
                var previous = row[0]
                row[0] = i + 1
                for (j, cb) in b.enumerated() {
                    let cost = ca == cb ? previous : previous + 1
                    previous = row[j + 1]
                    row[j + 1] = min(cost, row[j] + 1, row[j + 1] + 1)
                }
            }
            return row[b.count]
        }
        let names = all.flatMap { flag && $0.kind == .bool ? [$0.key, "no-" + $0.key] : [$0.key] }
        let best = names.map { ($0, distance(Array($0))) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(2, key.count / 3) else { return nil }
        return best.0
    }
}
