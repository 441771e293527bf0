import CoreMetrics
import Metrics
import Prometheus
import RecurdWire

/// The daemon's Prometheus metrics (`recurd_*`, base units, no per-stream labels), through
/// swift-metrics handles backed by one swift-prometheus registry that `/metrics` renders.
final class DaemonMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let messages: CoreMetrics.Counter
    let steps: CoreMetrics.Counter
    let predictions: CoreMetrics.Counter
    let duplicates: CoreMetrics.Counter
    let gaps: CoreMetrics.Counter
    let evictedLRU: CoreMetrics.Counter
    let evictedIdle: CoreMetrics.Counter
    let streamsActive: CoreMetrics.Gauge
    let modelVersion: CoreMetrics.Gauge
    let updates: CoreMetrics.Counter
    let skippedUpdates: CoreMetrics.Counter
    let windowsCoalesced: CoreMetrics.Counter
    let windowsDropped: CoreMetrics.Counter
    /// Sum and count of progressive losses: their ratio over any interval is the mean loss.
    let lossSum: CoreMetrics.FloatingPointCounter
    let lossCount: CoreMetrics.Counter
    let batchSize: CoreMetrics.Recorder
    let latency: CoreMetrics.Timer
    private let rejects: [WireError.Reason: CoreMetrics.Counter]

    init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["recurd_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
        factory.durationHistogramBuckets["recurd_step_latency_seconds"] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1),
        ]
        messages = CoreMetrics.Counter(label: "recurd_messages_total", factory: factory)
        steps = CoreMetrics.Counter(label: "recurd_steps_total", factory: factory)
        predictions = CoreMetrics.Counter(label: "recurd_predictions_total", factory: factory)
        duplicates = CoreMetrics.Counter(label: "recurd_duplicate_messages_total", factory: factory)
        gaps = CoreMetrics.Counter(label: "recurd_sequence_gaps_total", factory: factory)
        evictedLRU = CoreMetrics.Counter(label: "recurd_stream_evictions_total", dimensions: [("reason", "lru")], factory: factory)
        evictedIdle = CoreMetrics.Counter(label: "recurd_stream_evictions_total", dimensions: [("reason", "idle")], factory: factory)
        streamsActive = CoreMetrics.Gauge(label: "recurd_streams_active", factory: factory)
        modelVersion = CoreMetrics.Gauge(label: "recurd_model_version", factory: factory)
        updates = CoreMetrics.Counter(label: "recurd_model_updates_total", factory: factory)
        skippedUpdates = CoreMetrics.Counter(label: "recurd_skipped_updates_total", factory: factory)
        windowsCoalesced = CoreMetrics.Counter(label: "recurd_training_windows_coalesced_total", factory: factory)
        windowsDropped = CoreMetrics.Counter(label: "recurd_training_windows_dropped_total", factory: factory)
        lossSum = CoreMetrics.FloatingPointCounter(label: "recurd_progressive_loss_sum", factory: factory)
        lossCount = CoreMetrics.Counter(label: "recurd_progressive_targets_total", factory: factory)
        batchSize = CoreMetrics.Recorder(label: "recurd_batch_size", factory: factory)
        latency = CoreMetrics.Timer(label: "recurd_step_latency_seconds", factory: factory)
        var rejects: [WireError.Reason: CoreMetrics.Counter] = [:]
        for reason in WireError.Reason.allCases {
            rejects[reason] = CoreMetrics.Counter(label: "recurd_rejected_messages_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        self.rejects = rejects
        streamsActive.record(0)
        modelVersion.record(0)
    }

    func rejected(_ reason: WireError.Reason) { rejects[reason]!.increment() }

    /// The Prometheus text exposition.
    func render() -> [UInt8] { registry.emitToBuffer() }
}
