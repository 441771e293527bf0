import RecurdNumerics

/// The streams in memory: each key's slot and record, in least-recently-used order.
///
/// Records live in slabs (`RecordSlab`): a core block per slot, and a window block per slot that
/// is touched only once the stream learns. Keys map to slots through `StreamKeyIndex`; an
/// intrusive list keeps recency, so touching a stream and finding the eviction victim are O(1).
/// Slots with work in flight are pinned and never chosen for eviction. Changed records are
/// listed as dirty for the store. Owned by the serving thread; not thread-safe.
public final class StreamTable {
    public let layout: StreamRecordLayout
    public private(set) var capacity: Int

    private let cores: RecordSlab
    private let windows: RecordSlab?
    private var index: StreamKeyIndex
    private var live: [Bool]
    private var free: [Int32]
    // LRU list: head = most recent.
    private var prev: [Int32]
    private var next: [Int32]
    private var head: Int32 = -1
    private var tail: Int32 = -1
    private var pins: [UInt32]
    private var dirty: [Bool]
    /// Live slots marked dirty.
    public private(set) var dirtyCount = 0

    public var count: Int { index.count }

    public init(layout: StreamRecordLayout, capacity: Int) {
        precondition(capacity >= 1)
        self.layout = layout
        self.capacity = capacity
        cores = RecordSlab(slotBytes: layout.coreBytes)
        windows = layout.window.map { RecordSlab(slotBytes: $0.byteCount) }
        index = StreamKeyIndex(capacity: capacity)
        live = Array(repeating: false, count: capacity)
        free = (0..<Int32(capacity)).reversed()
        prev = Array(repeating: -1, count: capacity)
        next = Array(repeating: -1, count: capacity)
        pins = Array(repeating: 0, count: capacity)
        dirty = Array(repeating: false, count: capacity)
    }

    /// Raises the number of slots (slabs grow in place; records never move).
    public func grow(to newCapacity: Int) {
        guard newCapacity > capacity else { return }
        let added = newCapacity - capacity
        index.grow(to: newCapacity)
        live += repeatElement(false, count: added)
        free = (Int32(capacity)..<Int32(newCapacity)).reversed() + free
        prev += repeatElement(-1, count: added)
        next += repeatElement(-1, count: added)
        pins += repeatElement(0, count: added)
        dirty += repeatElement(false, count: added)
        capacity = newCapacity
    }

    // MARK: Lookup

    public func slot(for key: UnsafeRawBufferPointer) -> Int? { index.slot(for: key) }

    public func slot(for key: [UInt8]) -> Int? { key.withUnsafeBytes { index.slot(for: $0) } }

    /// The key of a live slot.
    public func key(_ slot: Int) -> [UInt8] { index.key(slot) }

    /// Calls `body` with a live slot's key bytes, without copying.
    public func withKey<R>(_ slot: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try index.withKey(slot, body) }

    /// The record of a live slot.
    @inline(__always)
    public func record(_ slot: Int) -> StreamRecord {
        StreamRecord(layout: layout, core: cores.pointer(slot), window: windows?.pointer(slot))
    }

    public func isLive(_ slot: Int) -> Bool { slot < capacity && live[slot] }

    // MARK: Changes

    /// Whether a slot is free (otherwise evict first).
    public var isFull: Bool { free.isEmpty }

    /// A slot for a new stream with `key`, its record zeroed (`StreamRecord.initialize`); nil when
    /// every slot is taken.
    public func insert(_ key: UnsafeRawBufferPointer, now: Double) -> Int? {
        guard let slot = allocate(key) else { return nil }
        record(slot).initialize(now: now)
        return slot
    }

    /// A slot for `key` whose record the caller fills in (a record coming back from the store).
    public func insertUninitialized(_ key: UnsafeRawBufferPointer) -> Int? { allocate(key) }

    private func allocate(_ key: UnsafeRawBufferPointer) -> Int? {
        guard let s = free.popLast() else { return nil }
        let slot = Int(s)
        index.insert(key, slot: slot)
        live[slot] = true
        pins[slot] = 0
        dirty[slot] = false
        pushFront(s)
        return slot
    }

    /// Forgets the stream in `slot` and frees the slot. What happens to its stored record is the
    /// caller's part (see `ForgetReason`); `reason` is for the caller's counters and logs.
    public func forget(_ slot: Int, reason: ForgetReason) {
        guard live[slot] else { return }
        precondition(pins[slot] == 0, "forgetting a stream with work in flight (\(reason))")
        // A large record (a text stream's context model, 4 MiB) gives its pages back now rather
        // than when the slot is next used, which after the limit of streams was lowered is never.
        if cores.slotBytes >= 64 * RecordSlab.pageSize { RecordSlab.zero(cores.pointer(slot), count: cores.slotBytes) }
        index.remove(slot: slot)
        live[slot] = false
        if dirty[slot] { dirtyCount -= 1 }
        dirty[slot] = false
        unlink(Int32(slot))
        free.append(Int32(slot))
    }

    /// Marks a stream as just used.
    public func touch(_ slot: Int, now: Double) {
        record(slot).lastSeen = now
        let s = Int32(slot)
        if head == s { return }
        unlink(s)
        pushFront(s)
    }

    /// Work in flight for `slot` (a queued message): it cannot be evicted until unpinned.
    public func pin(_ slot: Int) {
        if pins[slot] == 0 { pinnedSlots += 1 }
        pins[slot] += 1
    }
    public func unpin(_ slot: Int) {
        pins[slot] -= 1
        if pins[slot] == 0 { pinnedSlots -= 1 }
    }
    /// Live slots with work in flight.
    public private(set) var pinnedSlots = 0
    public func isPinned(_ slot: Int) -> Bool { pins[slot] > 0 }

    /// The least recently used stream with no work in flight.
    public var evictionCandidate: Int? {
        var s = tail
        while s >= 0 {
            if pins[Int(s)] == 0 { return Int(s) }
            s = prev[Int(s)]
        }
        return nil
    }

    /// Streams silent since before `cutoff` (Unix seconds), least recent first, unpinned; at most `limit`.
    public func idle(before cutoff: Double, limit: Int) -> [Int] {
        var out: [Int] = []
        var s = tail
        while s >= 0, out.count < limit {
            let slot = Int(s)
            if record(slot).lastSeen >= cutoff { break }
            if pins[slot] == 0 { out.append(slot) }
            s = prev[slot]
        }
        return out
    }

    /// All live slots, most recent first.
    public var slotsByRecency: [Int] {
        var out: [Int] = []
        var s = head
        while s >= 0 { out.append(Int(s)); s = next[Int(s)] }
        return out
    }

    // MARK: Dirty records

    /// The record changed since it was last written to the store.
    @inline(__always)
    public func markDirty(_ slot: Int) {
        if !dirty[slot] {
            dirty[slot] = true
            dirtyCount += 1
        }
    }

    public func isDirty(_ slot: Int) -> Bool { dirty[slot] }

    /// The slots whose records changed since last written: a scan of the flags, once per flush
    /// (about a millisecond for a million slots), so that no list of them grows between flushes.
    public var dirtySlots: [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(dirtyCount)
        for slot in 0..<capacity where dirty[slot] && live[slot] { out.append(Int32(slot)) }
        return out
    }

    /// Marks `slot` clean if it is live and dirty (its record is about to be written); whether it was.
    public func takeDirty(_ slot: Int) -> Bool {
        guard live[slot] && dirty[slot] else { return false }
        dirty[slot] = false
        dirtyCount -= 1
        return true
    }


    // MARK: LRU list

    private func pushFront(_ s: Int32) {
        prev[Int(s)] = -1
        next[Int(s)] = head
        if head >= 0 { prev[Int(head)] = s }
        head = s
        if tail < 0 { tail = s }
    }

    private func unlink(_ s: Int32) {
        let p = prev[Int(s)], n = next[Int(s)]
        if p >= 0 { next[Int(p)] = n } else if head == s { head = n }
        if n >= 0 { prev[Int(n)] = p } else if tail == s { tail = p }
        prev[Int(s)] = -1
        next[Int(s)] = -1
    }
}
