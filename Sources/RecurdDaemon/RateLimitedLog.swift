import Logging

/// Logs each kind of event at most once per interval, with the number suppressed since — a bad
/// producer costs a counter and a log line per second, never a flood.
final class RateLimitedLog {
    private let logger: Logger
    private let interval: Double
    private var last: [String: Double] = [:]
    private var suppressed: [String: Int] = [:]

    init(logger: Logger, interval: Double = 1) {
        self.logger = logger
        self.interval = interval
    }

    func warning(_ kind: String, now: Double, _ message: @autoclosure () -> String, metadata: Logger.Metadata = [:]) {
        log(.warning, kind, now: now, message(), metadata: metadata)
    }

    /// At `level` (an event that is routine, not a problem: at info it stays out of
    /// `journalctl -p warning`).
    func log(_ level: Logger.Level, _ kind: String, now: Double, _ message: @autoclosure () -> String, metadata: Logger.Metadata = [:]) {
        if let t = last[kind], now - t < interval {
            suppressed[kind, default: 0] += 1
            return
        }
        var meta = metadata
        if let n = suppressed[kind], n > 0 { meta["suppressed"] = "\(n)" }
        suppressed[kind] = 0
        last[kind] = now
        logger.log(level: level, "\(message())", metadata: meta)
    }
}
