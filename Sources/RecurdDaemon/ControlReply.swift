import Foundation

/// Control replies (DESIGN §4): JSON objects with `"ok"`, and `"error"` when the command failed.
/// Each command's reply is a `Codable` struct; optional fields are left out when nil.
enum ControlReply {
    /// Any reply, ready to encode.
    struct Encoded {
        let bytes: [UInt8]
    }

    static func encode<T: Encodable>(_ reply: T) -> Encoded {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(reply) else { return Encoded(bytes: Array(#"{"error":"reply encoding failed","ok":false}"#.utf8)) }
        return Encoded(bytes: Array(data))
    }

    static func failure(_ message: String) -> Encoded { encode(Ack(ok: false, error: message)) }

    /// The reply of commands that do one thing.
    struct Ack: Encodable {
        var ok: Bool
        var error: String?
        var reset: String?
        var dropped: String?
        var learning: Bool?
        var file: String?
        var version: UInt64?
        var note: String?
        var bytes: Int?
    }

    /// `set NAME=VALUE`: `{"ok":true,"setting":NAME,"value":V, NAME: V}`.
    struct Set: Encodable {
        let name: String
        let value: SettingValue

        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ s: String) { stringValue = s }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(true, forKey: Key("ok"))
            try c.encode(name, forKey: Key("setting"))
            for key in [Key("value"), Key(name)] {
                switch value {
                case .string(let s): try c.encode(s, forKey: key)
                case .strings(let a): try c.encode(a, forKey: key)
                case .integer(let i): try c.encode(i, forKey: key)
                case .integers(let a): try c.encode(a, forKey: key)
                case .number(let d): try c.encode(d, forKey: key)
                case .bool(let b): try c.encode(b, forKey: key)
                case .none: try c.encodeNil(forKey: key)
                }
            }
        }
    }

    struct Stream: Encodable {
        var ok = true
        let key: String
        let key_group: Int
        let steps: UInt64
        let next_seq: UInt64
        let idle_seconds: Double
        let age_seconds: Double
        let targets: UInt64
        let mean_loss: Double?
        let bits_per_byte: Double?
        let learning_window: Int?
        /// Steps of this stream whose anomaly score reached the alert level (nil: scores off).
        let anomaly_alerts: UInt64?
    }

    struct Streams: Encodable {
        var ok = true
        let count: Int
        let stored: Int?
        let loading: Int
        let streams: [Stream]
        let truncated: Bool
    }

    struct Model: Encodable {
        var ok = true
        let cell: String?
        let input: String?
        let input_size: Int?
        let hidden: [Int]?
        let outputs: Int?
        let head: String?
        let parameters: Int?
        let version: UInt64?
        let file: String?
        /// The checkpoint the daemon started from, when it did (its weights won over `file`'s).
        let checkpoint: String?
        let vocabulary: Int?
        let embedding: Int?
        let note: String?
    }

    struct Stats: Encodable {
        var ok = true
        let uptime_seconds: Double
        let messages: UInt64
        let steps: UInt64
        let predictions: UInt64
        let output_messages: UInt64
        let output_dropped: UInt64
        let batches: UInt64
        let rejected: [String: UInt64]
        let rejected_total: UInt64
        let duplicates: UInt64
        let gaps: UInt64
        let streams: Int
        /// Messages taken from the input and not yet served, and their decoded values' bytes
        /// (bounded: past 65,536 messages or 64 MiB the input waits in ZeroMQ).
        let queued_messages: Int
        let queued_input_bytes: Int
        /// Streams that may stay in memory: max-streams, or fewer for text (text-context-memory).
        let streams_limit: Int
        let evictions: [String: UInt64]
        let deleted: [String: UInt64]
        let model_version: UInt64
        let learning: Bool
        let learning_mode: String
        let updates: UInt64
        let skipped_updates: UInt64
        let windows_due: UInt64
        let windows_trained: UInt64
        /// Trained / due windows since start (nil before any was due).
        let trained_share: Double?
        let windows_coalesced: UInt64
        let windows_dropped: UInt64
        let lr: Double
        let clip: Double
        let targets: UInt64
        let mean_loss: Double?
        let bits_per_byte: Double?
        /// Steps whose anomaly score reached `anomaly_alert_level` (nil: scores off).
        let anomaly_alerts: UInt64?
        let anomaly_alert_level: Double?
        /// With CURVE: connections and messages refused per endpoint, and messages from producers
        /// outside trainers/ (not learnt from).
        let auth_denied: [String: Int]?
        let messages_not_learnt: UInt64?
        let store: Store?
        let input_connections: [String: UInt64]
    }

    struct Store: Encodable {
        let directory: String
        let streams_stored: Int
        let bytes: Int
        let loads: Int
        let writes: Int
        let write_failures: Int
        let records_lost: Int
        let records_restored: UInt64
        let records_unreadable: UInt64
        let trimmed: Int
        let loading: Int
        let changed_pending: Int
        let checkpoint_failures: Int
        let last_checkpoint_age_seconds: Double?
        let last_checkpoint_version: UInt64?
    }
}
