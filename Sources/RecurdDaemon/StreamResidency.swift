import Foundation
import Logging
import RecurdStreams

/// Which streams are in memory, and their way to and from the store (DESIGN §6): the one path
/// that forgets a stream (`forget`, by reason), eviction to make room, streams coming back from
/// the store (their messages parked until the record arrives), and the writing of changed
/// records. Without a state directory, evicted streams are simply forgotten. Serving thread only.
final class StreamResidency {
    let table: StreamTable
    /// nil: no state directory.
    let worker: StoreWorker?
    private let counters: DaemonCounters
    private let metrics: DaemonMetrics
    private let log: RateLimitedLog
    private let logger: Logger
    /// Streams kept in memory (may be lowered or raised live).
    private(set) var maxStreams: Int
    /// Called before a stream is forgotten (the scheduler drops its queued messages).
    var willForget: (Int) -> Void = { _ in }

    /// A message for a stream whose record is on its way from the store.
    struct ParkedMessage {
        let payload: [UInt8]
        let receivedAt: UInt64
        /// Its producer may train the model (`trainers/`).
        let learnable: Bool
    }
    private var loading: [[UInt8]: [ParkedMessage]] = [:]
    /// Keys that may be in the store (nil until the store's thread has read them at start:
    /// until then every stream not in memory is looked up).
    private var filter: KeyFilter?
    /// Keys written before the filter arrived, to add to it.
    private var writtenBeforeFilter: [[UInt8]] = []
    private var writes: [StoreRow] = []
    private var deletes: [[UInt8]] = []
    /// Bytes of records gathered for the store this turn of the serving loop: callers make no
    /// more past `handoverBytes` — a text stream's record carries its context model, 4 MiB by
    /// default, so a turn that evicted or flushed a few hundred would otherwise copy gigabytes.
    private var turnBytes = 0
    static let handoverBytes = 16 << 20
    /// The store's backlog beyond which no more records are made for it (input waits too).
    static let backlogLimit = 64 << 20

    /// A new turn of the serving loop: a new `handoverBytes` budget.
    func beginTurn() { turnBytes = 0 }
    /// This turn has gathered a hand-over's worth of records: make no more until the next.
    var turnIsFull: Bool { turnBytes >= Self.handoverBytes }
    /// The store has `backlogLimit` or more waiting (false without a store).
    var storeIsBehind: Bool { worker?.isBehind(limit: Self.backlogLimit) == true }

    init(table: StreamTable, worker: StoreWorker?, maxStreams: Int, counters: DaemonCounters, metrics: DaemonMetrics, logger: Logger) {
        self.table = table
        self.worker = worker
        self.maxStreams = maxStreams
        self.counters = counters
        self.metrics = metrics
        self.logger = logger
        log = RateLimitedLog(logger: logger)
    }

    enum Lookup {
        case resident(Int)
        /// Its record is being read from the store.
        case loading
        /// Neither in memory nor being read, and maybe in the store.
        case absent
        /// Certainly not in the store (or there is no store): a new stream.
        case new
    }

    func lookup(_ key: UnsafeRawBufferPointer) -> Lookup {
        if let slot = table.slot(for: key) { return .resident(slot) }
        guard worker != nil else { return .new }
        if !loading.isEmpty, loading[Array(key)] != nil { return .loading }
        if let filter, !filter.mayContain(key) { return .new }
        return .absent
    }

    /// The store's keys at start, read by its thread.
    func filterArrived(_ f: KeyFilter) {
        var f = f
        for key in writtenBeforeFilter { f.insert(key) }
        writtenBeforeFilter = []
        filter = f
    }

    /// Streams whose records are being read.
    var loadsInFlight: Int { loading.count }
    /// The store's keys have arrived (until then every stream not in memory is looked up).
    var hasKeyFilter: Bool { filter != nil }

    /// Bytes of the messages parked; beyond `maxParkedBytes` a message is refused (busy), so
    /// that streams waiting for room while every slot has queued work cannot grow memory.
    private(set) var parkedBytes = 0
    static let maxParkedBytes = 64 << 20

    /// Keeps a message of a stream not in memory, asking the store for its record if not asked
    /// yet; false (nothing kept) when the parked messages are at their bound.
    func park(key: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, receivedAt: UInt64, learnable: Bool) -> Bool {
        guard parkedBytes + payload.count <= Self.maxParkedBytes else { return false }
        parkedBytes += payload.count
        let k = Array(key)
        requestLoad(k)
        loading[k]!.append(ParkedMessage(payload: Array(payload), receivedAt: receivedAt, learnable: learnable))
        return true
    }

    /// Asks the store for a stream's record, unless asked already (a control request asks with
    /// no message waiting). The writes and deletes gathered so far go first: the stream may have
    /// been evicted earlier in this pass, and the store must answer with that newest record.
    func requestLoad(_ key: [UInt8]) {
        guard loading[key] == nil else { return }
        loading[key] = []
        submit()
        worker?.submit(.load(key: key))
    }

    /// Ends a load that found nothing and has no message waiting (a control request's): no slot
    /// is taken, nothing evicted to make room for it. Returns false when messages are waiting.
    func abandonEmptyLoad(_ key: [UInt8]) -> Bool {
        guard loading[key]?.isEmpty == true else { return false }
        loading[key] = nil
        return true
    }

    /// Installs a record the store returned (or a new one when it had none); returns the slot and
    /// the messages parked for it, in arrival order; nil when no slot can be freed now (every
    /// stream in memory has queued work), with nothing changed: the caller tries again later.
    func arrived(key: [UInt8], record bytes: [UInt8]?, unreadable: Bool, now: Double) -> (slot: Int, parked: [ParkedMessage])? {
        guard makeRoom() else { return nil }
        let parked = loading.removeValue(forKey: key) ?? []
        parkedBytes -= parked.reduce(0) { $0 + $1.payload.count }
        if unreadable {
            // The store's thread logged it; the stream starts afresh below.
            counters.recordsUnreadable += 1
            metrics.recordsUnreadable.increment()
        }
        let slot = key.withUnsafeBytes { table.insertUninitialized($0) }!
        let r = table.record(slot)
        if let bytes {
            do {
                try StreamRecordCodec.decode(bytes, into: r, now: now)
                counters.recordsRestored += 1
                metrics.recordsRestored.increment()
            } catch {
                counters.recordsUnreadable += 1
                metrics.recordsUnreadable.increment()
                log.warning("unreadable", now: Clock.seconds, "a stored stream record cannot be read; the stream starts afresh: \(error)",
                            metadata: ["stream": "\(String(decoding: key, as: UTF8.self))"])
            }
        } else {
            r.initialize(now: now)
        }
        metrics.streamsActive.record(table.count)
        return (slot, parked)
    }

    /// A slot for a new stream (no store to ask), or nil when there is no room.
    func insertNew(_ key: UnsafeRawBufferPointer, now: Double) -> Int? {
        guard makeRoom() else { return nil }
        let slot = table.insert(key, now: now)
        metrics.streamsActive.record(table.count)
        return slot
    }

    /// Evicts least recently used streams until one more fits; false when all have work in flight.
    private func makeRoom() -> Bool {
        // Above a lowered limit `trim` evicts the excess a few a turn; one eviction makes room.
        let keep = max(maxStreams, table.count) - 1
        while table.count > keep || table.isFull {
            guard let victim = table.evictionCandidate else { return false }
            forget(victim, reason: .lru)
        }
        return true
    }

    /// Forgets the stream in `slot`: its record goes to the store (LRU, idle) or is deleted from
    /// it (END, drop), per `reason`; counted by reason.
    func forget(_ slot: Int, reason: ForgetReason) {
        guard table.isLive(slot) else { return }
        willForget(slot)
        if worker != nil {
            let key = table.key(slot)
            if reason.keepsRecord {
                if table.isDirty(slot) { gather(row(slot, key: key)) }
            } else {
                forgetStored(key)
            }
        }
        table.forget(slot, reason: reason)
        counters.forgotten[reason, default: 0] += 1
        metrics.streamsForgotten(reason)
        metrics.streamsActive.record(table.count)
    }

    /// Deletes a stream's record from the store at the next `submit`: one `forget` lets go of,
    /// or one not in memory (`drop`; not counted, as it may have had no record). The key filter
    /// may keep the key; a later load finds nothing.
    func forgetStored(_ key: [UInt8]) {
        // A write of the same key not yet handed over would land after the delete.
        writes.removeAll { $0.key == key }
        deletes.append(key)
    }

    /// Adds a record to the writes for the store. Its key goes into the filter at once: a message
    /// of the stream later in this same pass must ask the store (`requestLoad` hands this write
    /// over first), not start the stream afresh.
    private func gather(_ row: StoreRow) {
        writes.append(row)
        turnBytes += row.record.count
        if filter != nil { filter!.insert(row.key) } else { writtenBeforeFilter.append(row.key) }
    }

    /// Frees the slot of a stream that never got a message in (nothing to count or store).
    func discardFresh(_ slot: Int) {
        guard table.isLive(slot), table.record(slot).isFresh else { return }
        table.forget(slot, reason: .drop)
        metrics.streamsActive.record(table.count)
    }

    private func row(_ slot: Int, key: [UInt8]) -> StoreRow {
        StoreRow(key: key, group: KeyGroup.of(key), record: StreamRecordCodec.encode(table.record(slot)))
    }

    /// Streams silent longer than `timeout` seconds leave memory (to the store, if any).
    func expireIdle(now: Double, timeout: Double) {
        guard timeout > 0 else { return }
        for slot in table.idle(before: now - timeout, limit: 10_000) { forget(slot, reason: .idle) }
    }

    /// A new limit of streams in memory: the table grows to it, or `trim` evicts down to it, a
    /// few at a time.
    func setMaxStreams(_ n: Int) {
        maxStreams = n
        if n > table.capacity { table.grow(to: n) }
        trim()
    }

    /// Evicts streams beyond the limit (after it was lowered), at most `handoverBytes` of records
    /// a pass; the serving loop calls it every pass.
    func trim() {
        guard table.count > maxStreams, !storeIsBehind else { return }
        while table.count > maxStreams && !turnIsFull, let victim = table.evictionCandidate {
            forget(victim, reason: .lru)
        }
    }

    /// No stream could be admitted now: the limit is reached and every stream in memory has
    /// work in flight. The serving loop then leaves input queued rather than refuse it as busy.
    var isFullOfWork: Bool { table.count >= maxStreams && table.pinnedSlots >= table.count }

    /// Encodes the changed records of `slots` (taken from its end) for the store, stopping once
    /// `handoverBytes` are gathered.
    func writeChanged(from slots: inout [Int32]) {
        guard worker != nil else { slots = []; return }
        while !turnIsFull, let s = slots.popLast() {
            let slot = Int(s)
            if table.takeDirty(slot) { gather(row(slot, key: table.key(slot))) }
        }
    }

    /// Changed records not yet handed to the store.
    var changedBacklog: Int { worker == nil ? 0 : table.dirtyCount }

    /// Hands gathered writes and deletes to the store's thread.
    func submit() {
        guard let worker else { return }
        if !deletes.isEmpty {
            worker.submit(.delete(deletes))
            deletes.removeAll(keepingCapacity: true)
        }
        if !writes.isEmpty {
            worker.submit(.write(writes))
            writes.removeAll(keepingCapacity: true)
        }
    }
}
