import Foundation
import Logging
import RecurdModelFile
import RecurdStore
import RecurdStreams
import Synchronization

/// The store's own thread (DESIGN §6): it reads and writes stream records in SQLite and writes
/// model checkpoints, so the serving thread never waits on the disk.
///
/// Requests are handled in order. Writes are gathered and committed in one transaction when the
/// queue runs dry; until then (and while a failed commit waits to be retried) a load finds a
/// stream's newest record in the pending set, so a stream evicted and back at once is exact.
/// When the disk fails (full, read-only) serving goes on: the failure is logged (rate-limited)
/// and counted, pending writes are kept (up to a bound) and retried with back-off, and earlier
/// checkpoints stay intact.
final class StoreWorker: @unchecked Sendable {
    private let store: StreamStore?
    private let checkpoints: CheckpointStore?
    private let logger: Logger
    private let metrics: DaemonMetrics
    private let wake: WakeSignal
    private let requests = Mutex<[StoreRequest]>([])
    private let completions = Mutex<[StoreCompletion]>([])
    private let ready = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    // Owned by the store thread.
    private var pending: [[UInt8]: StoreRow] = [:]
    private var pendingBytes = 0
    private var deletes: Set<[UInt8]> = []
    private var retryAt: Double = 0
    private var backoff: Double = 1
    private var maxStored: Int
    /// A flush is in progress: its writes wait for its barrier, to commit in one transaction.
    private var holding = false
    private let log: RateLimitedLog

    /// Seconds between commits at most (unless `commitBytes` are waiting).
    static let commitDelay = 0.05
    static let commitBytes = 8 << 20
    private var lastCommit = 0.0

    /// Pending writes kept while the disk refuses them; beyond, the oldest are lost (counted).
    static let maxPendingBytes = 256 << 20
    /// A flush's writes wait for its barrier to commit in one transaction, unless this much waits:
    /// below the backlog at which the serving thread stops handing records over (64 MiB), or a
    /// flush of large records would wait on itself.
    static let holdBytes = 32 << 20

    /// Counters the serving thread reads for `stats` (the metrics carry the same).
    let loads = Atomic<Int>(0)
    let writes = Atomic<Int>(0)
    let writeFailures = Atomic<Int>(0)
    let recordsLost = Atomic<Int>(0)
    let trimmed = Atomic<Int>(0)
    let storedCount = Atomic<Int>(0)
    let storeBytes = Atomic<Int>(0)
    let checkpointFailures = Atomic<Int>(0)
    /// Unix seconds of the last good checkpoint (0: none this run).
    let lastCheckpoint = Atomic<UInt64>(0)
    /// Record bytes handed over and not yet committed (queued requests and pending writes).
    private let backlog = Atomic<Int>(0)
    /// The last commit failed and the store is retrying (the disk is full or read-only).
    private let failing = Atomic<Bool>(false)

    /// Record bytes waiting to be committed.
    var backlogBytes: Int { backlog.load(ordering: .relaxed) }

    /// Whether the store keeps up: writes are committing and the backlog is under `limit`
    /// bytes. While it does not (and is not failing, when serving must go on regardless), the
    /// serving thread stops taking input, so producers feel the store's pace instead of records
    /// being lost.
    func isBehind(limit: Int) -> Bool { backlogBytes > limit && !failing.load(ordering: .relaxed) }

    init(store: StreamStore?, checkpoints: CheckpointStore?, maxStored: Int, logger: Logger, metrics: DaemonMetrics, wake: WakeSignal) {
        self.store = store
        self.checkpoints = checkpoints
        self.maxStored = maxStored
        self.logger = logger
        self.metrics = metrics
        self.wake = wake
        log = RateLimitedLog(logger: logger, interval: 10)
        // What a restart found on disk, not 0 until the first write.
        publishSize(streams: store?.count ?? 0, bytes: store?.bytes ?? 0)
    }

    /// The store's stream count and size, for `stats` and the metrics.
    private func publishSize(streams: Int, bytes: Int64) {
        storedCount.store(streams, ordering: .relaxed)
        metrics.streamsStored.record(streams)
        storeBytes.store(Int(bytes), ordering: .relaxed)
        metrics.storeBytes.record(bytes)
    }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "recurd-store"
        thread = t
        t.start()
    }

    /// Counts records given up: by the store (a failing disk), or by the serving thread before
    /// handing them over (a final flush out of time).
    func countLost(_ n: Int) {
        guard n > 0 else { return }
        recordsLost.add(n, ordering: .relaxed)
        metrics.storeRecordsLost.increment(by: n)
    }

    /// Queues `request` (serving thread; never waits).
    func submit(_ request: StoreRequest) {
        if case .write(let rows) = request { backlog.add(rows.reduce(0) { $0 + $1.record.count }, ordering: .relaxed) }
        requests.withLock { $0.append(request) }
        ready.signal()
    }

    /// Results so far (serving thread).
    func takeCompletions() -> [StoreCompletion] {
        completions.withLock { c in
            defer { c.removeAll(keepingCapacity: true) }
            return c
        }
    }

    /// Handles everything queued, then stops the thread (shutdown).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        ready.signal()
        if thread != nil { finished.wait() }
    }

    private func complete(_ c: StoreCompletion) {
        completions.withLock { $0.append(c) }
        wake.signal()
    }

    private func run() {
        if let store {
            var filter = KeyFilter(capacity: maxStored)
            do {
                try store.forEachKey { filter.insert($0) }
                complete(.keyFilter(filter))
            } catch {
                logger.error("cannot read the stored keys; every new stream asks the store", metadata: ["error": "\(error)"])
            }
        }
        while true {
            let timeout: DispatchTime = pending.isEmpty && deletes.isEmpty ? .now() + .seconds(1) : .now() + .milliseconds(Int(Self.commitDelay * 1000))
            _ = ready.wait(timeout: timeout)
            let batch = requests.withLock { r in
                defer { r.removeAll(keepingCapacity: true) }
                return r
            }
            for request in batch { handle(request) }
            // Commits wait a little so that loads (a returning stream's first prediction waits on
            // one) are not queued behind a transaction per message; a full batch goes at once.
            let now = Clock.seconds
            if pendingBytes > Self.commitBytes || (now - lastCommit >= Self.commitDelay && (!batch.isEmpty || now >= retryAt)) { commit() }
            if stopping.load(ordering: .relaxed) && requests.withLock({ $0.isEmpty }) {
                // At shutdown the retry back-off no longer applies: the disk may have room again
                // since the last failure. A few tries, half a second apart, within the unit's
                // stop timeout.
                for attempt in 0..<5 where !pending.isEmpty || !deletes.isEmpty {
                    if attempt > 0 { Thread.sleep(forTimeInterval: 0.5) }
                    commit(force: true)
                }
                if let store, pending.isEmpty {
                    do { try store.mergeJournal() } catch {
                        logger.warning("could not merge the store's journal into its file at shutdown; it is merged when the store is next opened",
                                       metadata: ["error": "\(error)"])
                    }
                }
                if !pending.isEmpty {
                    logger.error("stream records could not be written at shutdown; they are lost", metadata: ["records": "\(pending.count)"])
                    backlog.subtract(pendingBytes, ordering: .relaxed)
                    countLost(pending.count)
                }
                break
            }
        }
        finished.signal()
    }

    private func handle(_ request: StoreRequest) {
        switch request {
        case .load(let key):
            let (record, unreadable) = load(key)
            complete(.loaded(key: key, record: record, unreadable: unreadable))
        case .write(let rows):
            for row in rows {
                enqueue(row)
                // Large records (text streams' context models) fill the pending set fast: commit
                // on the way, flush or not, rather than hold more than the bound below.
                if pendingBytes > Self.holdBytes { commit() }
            }
        case .delete(let keys):
            for key in keys {
                if let old = pending.removeValue(forKey: key) {
                    pendingBytes -= old.record.count
                    backlog.subtract(old.record.count, ordering: .relaxed)
                }
                deletes.insert(key)
            }
        case .checkpoint(let source, let token):
            complete(.checkpointed(token: token, writeCheckpoint(source)))
        case .readModel(let path, let token, let architecture, let trainer):
            let result = readModel(path)
            if case .success(let (file, _)) = result, let trainer, file.model.architecture == architecture {
                trainer.replaceWeights(file.model.weights)
            }
            complete(.modelRead(token: token, result))
        case .beginFlush:
            holding = true
        case .barrier(let token):
            holding = false
            commit()
            complete(.barrier(token: token, written: pending.isEmpty && deletes.isEmpty))
        case .limit(let maxStored):
            self.maxStored = maxStored
        }
    }

    private func enqueue(_ row: StoreRow) {
        if let old = pending.updateValue(row, forKey: row.key) {
            pendingBytes -= old.record.count
            backlog.subtract(old.record.count, ordering: .relaxed)
        }
        pendingBytes += row.record.count
        deletes.remove(row.key)
        // Only a failing disk lets this grow (`write` commits on the way otherwise, and serving
        // stops taking input while the store is merely behind): only then are records given up.
        while pendingBytes > Self.maxPendingBytes, failing.load(ordering: .relaxed), let victim = pending.keys.first {
            let bytes = pending.removeValue(forKey: victim)!.record.count
            pendingBytes -= bytes
            backlog.subtract(bytes, ordering: .relaxed)
            countLost(1)
            log.warning("lost", now: Clock.seconds, "the store cannot write and holds too much; stream records are lost", metadata: ["stream": "\(String(decoding: victim, as: UTF8.self))"])
        }
    }

    /// The stream's record (nil: none), and whether one was there but did not read.
    private func load(_ key: [UInt8]) -> ([UInt8]?, unreadable: Bool) {
        if let row = pending[key] { return (row.record, false) }
        if deletes.contains(key) { return (nil, false) }
        guard let store else { return (nil, false) }
        loads.add(1, ordering: .relaxed)
        metrics.storeLoads.increment()
        // A passing fault (busy, an I/O error that clears) is tried again before the record counts
        // as unreadable: the stream would start afresh and its next write replace the good row.
        var attempt = 0
        while true {
            do { return (try store.load(key), false) } catch {
                attempt += 1
                if error.isTransientDiskFault && attempt < 4 {
                    usleep(UInt32(50_000 << (2 * (attempt - 1))))   // 50, 200, 800 ms: the store's own thread
                    continue
                }
                log.warning("load", now: Clock.seconds, "cannot read a stream's record; it starts afresh: \(error)",
                            metadata: ["stream": "\(String(decoding: key, as: UTF8.self))"])
                return (nil, true)
            }
        }
    }

    /// Commits pending deletes and writes in one transaction; on failure keeps them for a retry.
    private func commit(force: Bool = false) {
        lastCommit = Clock.seconds
        guard let store, !pending.isEmpty || !deletes.isEmpty else { return }
        guard force || Clock.seconds >= retryAt else { return }
        guard !holding || pendingBytes > Self.holdBytes || stopping.load(ordering: .relaxed) else { return }
        let rows = Array(pending.values)
        do {
            if !deletes.isEmpty { try store.delete(Array(deletes)) }
            deletes.removeAll()
            try store.write(rows.map { ($0.key, $0.group, $0.record) })
            writes.add(rows.count, ordering: .relaxed)
            metrics.storeWrites.increment(by: rows.count)
            pending.removeAll(keepingCapacity: true)
            backlog.subtract(pendingBytes, ordering: .relaxed)
            pendingBytes = 0
            backoff = 1
            retryAt = 0
            failing.store(false, ordering: .relaxed)
            let dropped = try store.trim(to: maxStored)
            if !dropped.isEmpty {
                trimmed.add(dropped.count, ordering: .relaxed)
                metrics.streamsForgotten(.storeLimit, by: dropped.count)
            }
        } catch {
            failing.store(true, ordering: .relaxed)
            writeFailures.add(1, ordering: .relaxed)
            metrics.storeWriteFailures.increment()
            retryAt = Clock.seconds + backoff
            log.warning("write", now: Clock.seconds, "cannot write stream records; serving goes on and the store retries in \(Int(backoff)) s: \(error)",
                        metadata: ["records": "\(rows.count)"])
            backoff = min(backoff * 2, 30)
        }
        publishSize(streams: store.count, bytes: store.bytes)
    }

    private func writeCheckpoint(_ source: CheckpointSource) -> Result<CheckpointInfo, CheckpointError> {
        guard let checkpoints else { return .failure(CheckpointError("no state directory (set --state-dir)")) }
        let started = Clock.seconds
        let (file, version) = source.resolve()
        do {
            let info = try checkpoints.write(file, version: version)
            let seconds = Clock.seconds - started
            metrics.checkpointDuration.record(seconds)
            lastCheckpoint.store(UInt64(Date().timeIntervalSince1970), ordering: .relaxed)
            metrics.lastCheckpointTime.record(Date().timeIntervalSince1970)
            return .success(info)
        } catch {
            checkpointFailures.add(1, ordering: .relaxed)
            metrics.checkpointFailures.increment()
            let e = error as? CheckpointError ?? CheckpointError("\(error)")
            log.warning("checkpoint", now: Clock.seconds, "checkpoint failed; the previous one stays: \(e)")
            return .failure(e)
        }
    }

    private func readModel(_ path: String) -> Result<(file: ModelFile, seed: String), CheckpointError> {
        guard let data = FileManager.default.contents(atPath: path) else { return .failure(CheckpointError("\(path): cannot read")) }
        do throws(CheckpointError) { try CheckpointStore.verifyRecordedChecksum([UInt8](data), path: path) } catch { return .failure(error) }
        do {
            let file = try ModelFile.decode([UInt8](data), file: path)
            return .success((file, ModelSeed.fingerprint(file)))
        } catch {
            return .failure(CheckpointError(error.forUser))
        }
    }
}
