import CoreMetrics
import Metrics
import Prometheus
import RecurdStreams
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
    private let forgotten: [ForgetReason: CoreMetrics.Counter]
    let streamsActive: CoreMetrics.Gauge
    let streamsStored: CoreMetrics.Gauge
    let storeBytes: CoreMetrics.Gauge
    let storeLoads: CoreMetrics.Counter
    let storeWrites: CoreMetrics.Counter
    let storeWriteFailures: CoreMetrics.Counter
    let storeRecordsLost: CoreMetrics.Counter
    let recordsRestored: CoreMetrics.Counter
    let recordsUnreadable: CoreMetrics.Counter
    let checkpointFailures: CoreMetrics.Counter
    let checkpointDuration: CoreMetrics.Gauge
    let lastCheckpointTime: CoreMetrics.Gauge
    let checkpointAge: CoreMetrics.Gauge
    let outputMessages: CoreMetrics.Counter
    let outputDropped: CoreMetrics.Counter
    let windowsDue: CoreMetrics.Counter
    let storeWaits: CoreMetrics.Counter
    let windowsTrained: CoreMetrics.Counter
    let outputSubscriptions: CoreMetrics.Gauge
    private let connectionEvents: [String: CoreMetrics.Counter]
    private let authDenials: [CurveRoles.Domain: CoreMetrics.Counter]
    /// Messages from producers outside trainers/: predicted and scored, not learnt from.
    let messagesNotLearnt: CoreMetrics.Counter
    let modelVersion: CoreMetrics.Gauge
    let updates: CoreMetrics.Counter
    let skippedUpdates: CoreMetrics.Counter
    let windowsCoalesced: CoreMetrics.Counter
    let windowsDropped: CoreMetrics.Counter
    /// Sum and count of progressive losses: their ratio over any interval is the mean loss.
    let lossSum: CoreMetrics.FloatingPointCounter
    let lossCount: CoreMetrics.Counter
    /// Steps whose anomaly score reached the alert level.
    let anomalyAlerts: CoreMetrics.Counter
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
        var forgotten: [ForgetReason: CoreMetrics.Counter] = [:]
        for reason in ForgetReason.allCases {
            // Evictions move a stream from memory to the store; deletions end it.
            let label = reason.keepsRecord ? "recurd_stream_evictions_total" : "recurd_streams_deleted_total"
            forgotten[reason] = CoreMetrics.Counter(label: label, dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        self.forgotten = forgotten
        streamsActive = CoreMetrics.Gauge(label: "recurd_streams_active", factory: factory)
        streamsStored = CoreMetrics.Gauge(label: "recurd_streams_stored", factory: factory)
        storeBytes = CoreMetrics.Gauge(label: "recurd_store_bytes", factory: factory)
        storeLoads = CoreMetrics.Counter(label: "recurd_store_loads_total", factory: factory)
        storeWrites = CoreMetrics.Counter(label: "recurd_store_writes_total", factory: factory)
        storeWriteFailures = CoreMetrics.Counter(label: "recurd_store_write_failures_total", factory: factory)
        storeRecordsLost = CoreMetrics.Counter(label: "recurd_store_records_lost_total", factory: factory)
        recordsRestored = CoreMetrics.Counter(label: "recurd_stream_records_restored_total", factory: factory)
        recordsUnreadable = CoreMetrics.Counter(label: "recurd_stream_records_unreadable_total", factory: factory)
        checkpointFailures = CoreMetrics.Counter(label: "recurd_checkpoint_failures_total", factory: factory)
        checkpointDuration = CoreMetrics.Gauge(label: "recurd_checkpoint_duration_seconds", factory: factory)
        lastCheckpointTime = CoreMetrics.Gauge(label: "recurd_checkpoint_last_success_timestamp_seconds", factory: factory)
        checkpointAge = CoreMetrics.Gauge(label: "recurd_checkpoint_age_seconds", factory: factory)
        outputMessages = CoreMetrics.Counter(label: "recurd_output_messages_total", factory: factory)
        outputDropped = CoreMetrics.Counter(label: "recurd_output_dropped_total", factory: factory)
        windowsDue = CoreMetrics.Counter(label: "recurd_training_windows_due_total", factory: factory)
        storeWaits = CoreMetrics.Counter(label: "recurd_store_input_waits_total", factory: factory)
        windowsTrained = CoreMetrics.Counter(label: "recurd_training_windows_trained_total", factory: factory)
        outputSubscriptions = CoreMetrics.Gauge(label: "recurd_output_subscriptions", factory: factory)
        var events: [String: CoreMetrics.Counter] = [:]
        for e in ["accepted", "connected", "disconnected", "handshake_failed", "auth_failed"] {
            events[e] = CoreMetrics.Counter(label: "recurd_input_connection_events_total", dimensions: [("event", e)], factory: factory)
        }
        connectionEvents = events
        modelVersion = CoreMetrics.Gauge(label: "recurd_model_version", factory: factory)
        updates = CoreMetrics.Counter(label: "recurd_model_updates_total", factory: factory)
        skippedUpdates = CoreMetrics.Counter(label: "recurd_skipped_updates_total", factory: factory)
        windowsCoalesced = CoreMetrics.Counter(label: "recurd_training_windows_coalesced_total", factory: factory)
        windowsDropped = CoreMetrics.Counter(label: "recurd_training_windows_dropped_total", factory: factory)
        lossSum = CoreMetrics.FloatingPointCounter(label: "recurd_progressive_loss_total", factory: factory)
        lossCount = CoreMetrics.Counter(label: "recurd_progressive_targets_total", factory: factory)
        anomalyAlerts = CoreMetrics.Counter(label: "recurd_anomaly_alerts_total", factory: factory)
        batchSize = CoreMetrics.Recorder(label: "recurd_batch_size", factory: factory)
        latency = CoreMetrics.Timer(label: "recurd_step_latency_seconds", factory: factory)
        var rejects: [WireError.Reason: CoreMetrics.Counter] = [:]
        for reason in WireError.Reason.inputReasons {
            rejects[reason] = CoreMetrics.Counter(label: "recurd_rejected_messages_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        self.rejects = rejects
        var denials: [CurveRoles.Domain: CoreMetrics.Counter] = [:]
        for d in CurveRoles.Domain.allCases {
            denials[d] = CoreMetrics.Counter(label: "recurd_auth_denied_total", dimensions: [("endpoint", d.rawValue)], factory: factory)
        }
        authDenials = denials
        messagesNotLearnt = CoreMetrics.Counter(label: "recurd_messages_not_learnt_total", factory: factory)
        streamsActive.record(0)
        streamsStored.record(0)
        modelVersion.record(0)
    }

    func rejected(_ reason: WireError.Reason) { rejects[reason]!.increment() }

    func streamsForgotten(_ reason: ForgetReason, by n: Int = 1) { forgotten[reason]!.increment(by: n) }

    func connectionEvent(_ event: String) { connectionEvents[event]?.increment() }

    func authDenied(_ endpoint: CurveRoles.Domain) { authDenials[endpoint]!.increment() }

    /// The Prometheus text exposition.
    func render() -> [UInt8] { registry.emitToBuffer() }
}
