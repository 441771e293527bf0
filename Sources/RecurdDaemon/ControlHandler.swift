import Foundation
import RecurdNumerics
import RecurdStreams
import RecurdWire

/// Answers control commands (DESIGN §4) from what the serving thread keeps: counters, streams,
/// the model, the store. State-changing commands are logged with their arguments. No sockets:
/// a request's bytes in, a reply's bytes out (or a promise of one, for commands that wait on the
/// store's thread). Serving thread only.
struct ControlHandler {
    let counters: DaemonCounters
    let startedAt: Double
    let worker: StoreWorker?

    static let usage = "try: stats, streams, stream KEY, reset KEY, drop KEY, checkpoint, learning on|off, set NAME=VALUE, model, reload"
    /// Largest request read; bigger ones get an error reply.
    static let maxRequestBytes = 1 << 16

    func handle(_ request: [UInt8], core: ServingCore?, configuration: ServeConfiguration, apply: (ServeConfiguration) -> Void) -> ServingCore.ControlOutcome {
        guard request.count <= Self.maxRequestBytes else {
            return .reply(ControlReply.failure("request is \(request.count) bytes; control requests are at most \(Self.maxRequestBytes)"))
        }
        let command: ControlCommand
        do throws(ControlCommand.ParseError) {
            command = try ControlCommand.parse(String(decoding: request, as: UTF8.self))
        } catch {
            return .reply(ControlReply.failure("cannot read the request: \(error.reason); \(Self.usage)"))
        }
        return execute(command, core: core, configuration: configuration, apply: apply)
    }

    func execute(_ command: ControlCommand, core: ServingCore?, configuration: ServeConfiguration, apply: (ServeConfiguration) -> Void)
        -> ServingCore.ControlOutcome {
        let noModel = "no model yet: one is created when the first stream speaks"
        switch command {
        case .stats:
            return .reply(ControlReply.encode(stats(core: core, configuration: configuration)))
        case .streams:
            guard let core else { return .reply(ControlReply.encode(ControlReply.Streams(count: 0, stored: worker?.storedCount.load(ordering: .relaxed), loading: 0, streams: [], truncated: false))) }
            let now = Date().timeIntervalSince1970
            let listed = core.table.slotsByRecency.prefix(1000).map { info(core, slot: $0, now: now) }
            return .reply(ControlReply.encode(ControlReply.Streams(count: core.table.count, stored: storedCount(core), loading: core.residency.loadsInFlight,
                                                                   streams: Array(listed), truncated: core.table.count > listed.count)))
        case .stream(let key):
            guard let core else { return .reply(ControlReply.failure(noStream(key, core))) }
            let k = Array(key.utf8)
            switch k.withUnsafeBytes({ core.residency.lookup($0) }) {
            case .resident(let slot):
                return .reply(ControlReply.encode(info(core, slot: slot, now: Date().timeIntervalSince1970)))
            case .loading, .absent:
                // Maybe in the store (evicted, idle, or from before a restart): read back as if it
                // had spoken, so that a producer can continue its numbering from `next_seq`.
                core.awaitStream(k) { slot in
                    ControlReply.encode(info(core, slot: slot, now: Date().timeIntervalSince1970))
                } missing: {
                    ControlReply.failure("no stream '\(key)' (not in memory, nor in the store)")
                }
                return .deferred
            case .new:
                return .reply(ControlReply.failure(noStream(key, core)))
            }
        case .reset(let key):
            guard let core, let slot = core.table.slot(for: Array(key.utf8)) else {
                let stored = core?.residency.worker != nil
                return .reply(ControlReply.failure(stored ? "no stream '\(key)' in memory: reset applies to streams in memory (one in the store, if it is there, "
                    + "comes back when it speaks; a zero-step RESET message resets it then, and `drop` forgets it in the store too)" : noStream(key, core)))
            }
            core.table.record(slot).resetState()
            core.table.record(slot).announcesNewState = true
            core.table.markDirty(slot)
            core.logger.notice("stream reset by control command", metadata: ["stream": "\(key)"])
            return .reply(ControlReply.encode(ControlReply.Ack(ok: true, reset: key)))
        case .drop(let key):
            guard let core else { return .reply(ControlReply.failure(noStream(key, core))) }
            let k = Array(key.utf8)
            var note: String?
            switch k.withUnsafeBytes({ core.residency.lookup($0) }) {
            case .resident(let slot):
                core.residency.forget(slot, reason: .drop)
            case .absent:
                // In the store only (evicted or idle), or nowhere (the key filter only says
                // "maybe"): its record, if any, goes without being read back.
                core.residency.forgetStored(k)
                note = "not in memory: its record in the store, if there is one, is deleted"
            case .loading:
                return .reply(ControlReply.failure("stream '\(key)' is on its way back from the store; drop it again in a moment"))
            case .new:
                return .reply(ControlReply.failure("no stream '\(key)'"))
            }
            core.residency.submit()
            core.logger.notice("stream dropped by control command", metadata: ["stream": "\(key)"])
            return .reply(ControlReply.encode(ControlReply.Ack(ok: true, dropped: key, note: note)))
        case .checkpoint:
            guard let core else { return .reply(ControlReply.failure(noModel)) }
            core.logger.notice("checkpoint asked by control command")
            return core.checkpoint()
        case .learning(let on):
            var c = configuration
            c.learn = on
            apply(c)
            return .reply(ControlReply.encode(ControlReply.Ack(ok: true, learning: on)))
        case .set(let name, let value):
            guard let setting = ServeSettings.named(name) else {
                let hint = ServeSettings.suggestion(for: name).map { " (did you mean '\($0)'?)" } ?? ""
                return .reply(ControlReply.failure("no setting '\(name)'\(hint)"))
            }
            guard setting.reloadable else {
                let live = ServeSettings.all.filter(\.reloadable).map(\.key).joined(separator: ", ")
                return .reply(ControlReply.failure("'\(setting.key)' needs a restart; settable at run time: \(live)"))
            }
            var c = configuration
            do {
                try setting.apply(try setting.parse(value), to: &c)
            } catch {
                return .reply(ControlReply.failure(error.description))
            }
            if let problem = c.problem() { return .reply(ControlReply.failure(problem)) }
            if let core, let problem = Publisher.widthProblem(core.runtime.architecture, topK: c.topK) { return .reply(ControlReply.failure(problem)) }
            apply(c)
            return .reply(ControlReply.encode(ControlReply.Set(name: setting.key, value: setting.value(in: c))))
        case .model:
            guard let core else {
                return .reply(ControlReply.encode(ControlReply.Model(cell: nil, input: nil, input_size: nil, hidden: nil, outputs: nil, head: nil, parameters: nil,
                                                                     version: nil, file: nil, checkpoint: nil, vocabulary: nil, embedding: nil, note: noModel)))
            }
            let a = core.runtime.architecture
            var vocabulary: Int?, embedding: Int?
            if case .tokens(let v, let e) = a.input { vocabulary = v; embedding = e }
            return .reply(ControlReply.encode(ControlReply.Model(cell: a.cell.rawValue, input: a.input.name, input_size: a.input.layerInputSize, hidden: a.hidden,
                                                                 outputs: a.outputSize, head: a.head.rawValue, parameters: core.runtime.model.layout.count,
                                                                 version: core.runtime.version, file: core.runtime.modelPath, checkpoint: core.runtime.startCheckpoint, vocabulary: vocabulary,
                                                                 embedding: embedding, note: nil)))
        case .reload:
            guard let core else { return .reply(ControlReply.failure(noModel)) }
            core.logger.notice("model reload asked by control command")
            return core.reload()
        }
    }

    private func noStream(_ key: String, _ core: ServingCore?) -> String {
        core?.residency.worker != nil ? "no stream '\(key)' (not in memory, nor in the store)" : "no stream '\(key)'"
    }

    private func storedCount(_ core: ServingCore) -> Int? { core.residency.worker != nil ? worker?.storedCount.load(ordering: .relaxed) : nil }

    private func info(_ core: ServingCore, slot: Int, now: Double) -> ControlReply.Stream {
        let r = core.table.record(slot)
        let key = core.table.key(slot)
        let mean: Double? = r.lossCount > 0 ? r.lossSum / Double(r.lossCount) : nil
        return ControlReply.Stream(key: String(decoding: key, as: UTF8.self), key_group: KeyGroup.of(key), steps: r.steps, next_seq: r.nextSeq,
                                   idle_seconds: max(0, now - r.lastSeen), age_seconds: max(0, now - r.createdAt), targets: r.lossCount,
                                   mean_loss: mean, bits_per_byte: core.tokenModel ? mean.map { $0 / log(2.0) } : nil,
                                   learning_window: r.windowIfInUse?.count,
                                   anomaly_alerts: r.layout.anomalyScorers > 0 ? r.anomalyAlerts : nil)
    }

    private func stats(core: ServingCore?, configuration c: ServeConfiguration) -> ControlReply.Stats {
        var rejected: [String: UInt64] = [:]
        for r in WireError.Reason.inputReasons { rejected[r.rawValue] = counters.rejected[r] ?? 0 }
        var evictions: [String: UInt64] = [:], deleted: [String: UInt64] = [:]
        for reason in ForgetReason.allCases {
            if reason.keepsRecord { evictions[reason.rawValue] = counters.forgotten[reason] ?? 0 } else { deleted[reason.rawValue] = counters.forgotten[reason] ?? 0 }
        }
        if let worker { deleted[ForgetReason.storeLimit.rawValue] = UInt64(worker.trimmed.load(ordering: .relaxed)) }
        let background = core?.runtime.backgroundTrainer
        let trained = counters.windowsTrained + UInt64(background?.windowsTrained.load(ordering: .relaxed) ?? 0)
        let mean: Double? = counters.lossCount > 0 ? counters.lossSum / Double(counters.lossCount) : nil
        var store: ControlReply.Store?
        if let worker, let dir = c.stateDirectory {
            let last = worker.lastCheckpoint.load(ordering: .relaxed)
            store = ControlReply.Store(directory: dir, streams_stored: worker.storedCount.load(ordering: .relaxed), bytes: worker.storeBytes.load(ordering: .relaxed),
                                       loads: worker.loads.load(ordering: .relaxed), writes: worker.writes.load(ordering: .relaxed),
                                       write_failures: worker.writeFailures.load(ordering: .relaxed), records_lost: worker.recordsLost.load(ordering: .relaxed),
                                       records_restored: counters.recordsRestored, records_unreadable: counters.recordsUnreadable,
                                       trimmed: worker.trimmed.load(ordering: .relaxed), loading: core?.residency.loadsInFlight ?? 0,
                                       changed_pending: core?.residency.changedBacklog ?? 0, checkpoint_failures: worker.checkpointFailures.load(ordering: .relaxed),
                                       last_checkpoint_age_seconds: last == 0 ? nil : max(0, Date().timeIntervalSince1970 - Double(last)),
                                       last_checkpoint_version: core?.lastCheckpointVersion)
        }
        return ControlReply.Stats(
            uptime_seconds: Clock.seconds - startedAt, messages: counters.messages, steps: counters.steps, predictions: counters.predictions,
            output_messages: counters.outputMessages, output_dropped: counters.outputDropped, batches: counters.batches, rejected: rejected,
            rejected_total: rejected.values.reduce(0, +), duplicates: counters.duplicates, gaps: counters.gaps, streams: core?.table.count ?? 0,
            queued_messages: core?.scheduler.queuedMessages ?? 0, queued_input_bytes: core?.scheduler.queuedInputBytes ?? 0,
            streams_limit: core?.residency.maxStreams ?? c.maxStreams,
            evictions: evictions, deleted: deleted, model_version: core?.runtime.version ?? 0, learning: c.learn,
            learning_mode: c.syncLearning ? "sync" : "background",
            updates: counters.updates + UInt64(background?.updates.load(ordering: .relaxed) ?? 0),
            skipped_updates: counters.skippedUpdates + UInt64(background?.skipped.load(ordering: .relaxed) ?? 0),
            windows_due: counters.windowsDue, windows_trained: trained,
            trained_share: counters.windowsDue > 0 ? min(1, Double(trained) / Double(counters.windowsDue)) : nil,
            windows_coalesced: counters.windowsCoalesced, windows_dropped: counters.windowsDropped,
            lr: Double("\(c.learningRate)") ?? 0, clip: Double("\(c.clip)") ?? 0, targets: counters.lossCount, mean_loss: mean,
            bits_per_byte: (core?.tokenModel ?? false) ? mean.map { $0 / log(2.0) } : nil,
            anomaly_alerts: c.anomalyScores ? counters.anomalyAlerts : nil, anomaly_alert_level: c.anomalyScores ? Double("\(c.anomalyAlertLevel)") : nil,
            auth_denied: counters.zap.map { z in Dictionary(uniqueKeysWithValues: CurveRoles.Domain.allCases.map { ($0.rawValue, z.deniedCount($0)) }) },
            messages_not_learnt: counters.zap == nil ? nil : counters.messagesNotLearnt,
            store: store,
            input_connections: counters.connectionEvents)
    }
}
