import Foundation
import Logging
import Synchronization

/// The daemon's logs: one line per event on standard error, which journald collects under
/// systemd. Text lines start with a syslog priority prefix (`<4>` for warnings) when stderr is
/// the journal (`$JOURNAL_STREAM`), so `journalctl -p warning` works; JSON lines carry the same
/// fields for log shippers. The level is shared by every logger of the process and changes on
/// SIGHUP.
public final class LogControl: Sendable {
    public enum Format: String, Sendable, CaseIterable { case text, json }

    private let levelIndex: Atomic<Int>
    let format: Format
    let journal: Bool
    private let lock = Mutex(())
    private let sink: @Sendable (String) -> Void

    /// `sink` takes each line (without its newline); by default standard error.
    public init(level: ServeConfiguration.LogLevel, format: Format = .text, environment: [String: String] = ProcessInfo.processInfo.environment,
                sink: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        levelIndex = Atomic(Self.index(level))
        self.format = format
        journal = environment["JOURNAL_STREAM"] != nil
        self.sink = sink
    }

    private static func index(_ l: ServeConfiguration.LogLevel) -> Int { ServeConfiguration.LogLevel.allCases.firstIndex(of: l)! }

    public var level: ServeConfiguration.LogLevel {
        get { ServeConfiguration.LogLevel.allCases[levelIndex.load(ordering: .relaxed)] }
        set { levelIndex.store(Self.index(newValue), ordering: .relaxed) }
    }

    /// A logger writing through this control.
    public func logger(label: String = "recurd") -> Logger {
        Logger(label: label) { [self] label in Handler(control: self, label: label) }
    }

    func write(_ line: String) {
        lock.withLock { _ in sink(line) }
    }

    struct Handler: LogHandler {
        let control: LogControl
        let label: String
        var metadata: Logger.Metadata = [:]

        var logLevel: Logger.Level {
            get { Logger.Level(rawValue: control.level.rawValue) ?? .info }
            set { control.level = ServeConfiguration.LogLevel(rawValue: newValue.rawValue) ?? .info }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        /// Fields that hold names, paths, keys or text: strings even when they look like numbers
        /// (a stream called "42" stays "42"), so that each field has one JSON type.
        static let textFields: Set<String> = [
            "stream", "key", "file", "path", "model", "checkpoint", "config", "folder", "retired", "bundled", "store",
            "endpoint", "input", "output", "control", "address", "peer", "server_key",
            // A count of keys, or "all producers": always a string, so the field keeps one type.
            "trainers",
            "error", "reason", "why", "zmq", "setting", "from", "to", "new", "running", "mode", "level", "message", "cell", "head", "hidden",
        ]

        /// A counter, size or version as a JSON number; everything else as the text it is.
        static func jsonValue(key: String, _ text: String) -> Any {
            guard !textFields.contains(key) else { return text }
            // Only what reads back as the same text: "007" or "1.50" stay strings.
            if let n = Int64(text), String(n) == text { return n }
            if text.contains("."), let d = Double(text), d.isFinite, "\(d)" == text { return d }
            return text
        }

        /// `text` with its control characters escaped (\n, \r, \t, \u{…}): a stream key or a JSON
        /// field name is the sender's text, and a newline in it would start a log line of its
        /// own, which journald would read with whatever `<N>` priority it begins with.
        static func escaped(_ text: String) -> String {
            guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
            var out = ""
            for u in text.unicodeScalars {
                switch u {
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where u.properties.generalCategory == .control: out += "\\u{\(String(u.value, radix: 16))}"
                default: out.unicodeScalars.append(u)
                }
            }
            return out
        }

        /// syslog priorities (journald's `-p`).
        static func priority(_ level: Logger.Level) -> Int {
            switch level {
            case .trace, .debug: 7
            case .info: 6
            case .notice: 5
            case .warning: 4
            case .error: 3
            case .critical: 2
            }
        }

        func log(event: LogEvent) {
            var all = metadata
            if let m = event.metadata { all.merge(m) { $1 } }
            let time = Date().ISO8601Format()
            switch control.format {
            case .text:
                let fields = all.keys.sorted().map { "\(Self.escaped($0))=\(Self.escaped("\(all[$0]!)"))" }.joined(separator: " ")
                let prefix = control.journal ? "<\(Self.priority(event.level))>" : "\(time) "
                control.write("\(prefix)\(event.level) \(label): \(Self.escaped("\(event.message)"))\(fields.isEmpty ? "" : " " + fields)")
            case .json:
                var object: [String: Any] = ["time": time, "level": "\(event.level)", "logger": label, "message": "\(event.message)"]
                for (k, v) in all where object[k] == nil { object[k] = Self.jsonValue(key: k, "\(v)") }
                let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
                control.write(String(decoding: data, as: UTF8.self))
            }
        }
    }
}
