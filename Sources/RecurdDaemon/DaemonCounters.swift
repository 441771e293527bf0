import RecurdStreams
import RecurdWire

/// Plain counters the serving thread keeps for the `stats` control command (the Prometheus
/// metrics carry the same numbers for scraping). Serving thread only.
final class DaemonCounters {
    var messages: UInt64 = 0
    var steps: UInt64 = 0
    var predictions: UInt64 = 0
    var outputMessages: UInt64 = 0
    var outputDropped: UInt64 = 0
    var duplicates: UInt64 = 0
    var gaps: UInt64 = 0
    var forgotten: [ForgetReason: UInt64] = [:]
    var batches: UInt64 = 0
    var rejected: [WireError.Reason: UInt64] = [:]
    var updates: UInt64 = 0
    var skippedUpdates: UInt64 = 0
    var windowsDue: UInt64 = 0
    /// Inline learning's trained windows (the background trainer counts its own).
    var windowsTrained: UInt64 = 0
    var windowsCoalesced: UInt64 = 0
    var windowsDropped: UInt64 = 0
    var lossSum: Double = 0
    var lossCount: UInt64 = 0
    /// Steps whose anomaly score reached the alert level.
    var anomalyAlerts: UInt64 = 0
    /// Messages from producers outside trainers/ (CURVE on): predicted and scored, not learnt from.
    var messagesNotLearnt: UInt64 = 0
    /// The authentication handler (CURVE on), for its denial counts.
    var zap: ZAPHandler?
    var recordsRestored: UInt64 = 0
    var recordsUnreadable: UInt64 = 0
    var connectionEvents: [String: UInt64] = [:]
}
