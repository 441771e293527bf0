import RecurdNumerics

/// Every stream's identity and recurrent state, in preallocated slots.
///
/// Keys map to slot indices; each slot owns `stateSize` floats of packed state (see
/// `StepEngine`); the learning bookkeeping lives in an `OnlineLearningTable` with the same slots.
/// Slots are kept in least-recently-used order in an intrusive list, so touching a stream and
/// finding the eviction victim are O(1). Owned by the serving thread; not thread-safe.
final class StreamTable {
    let capacity: Int
    let stateSize: Int

    /// (capacity, stateSize)
    let states: FloatBuffer

    /// Which slots hold a stream.
    private(set) var live: [Bool]
    /// Next expected seq.
    var nextSeq: [UInt64]
    /// Monotonic seconds of the stream's last message (idle timeout, `stream` command).
    var lastSeen: [Double]
    /// Steps consumed.
    var steps: [UInt64]
    /// Progressive loss sum and count (running loss per stream).
    var lossSum: [Double]
    var lossCount: [UInt64]
    var createdAt: [Double]

    private(set) var index: StreamKeyIndex
    private var free: [Int32]
    // LRU list: head = most recent.
    private var prev: [Int32]
    private var next: [Int32]
    private var head: Int32 = -1
    private var tail: Int32 = -1

    var count: Int { index.count }

    init(capacity: Int, stateSize: Int) {
        self.capacity = capacity
        self.stateSize = stateSize
        states = FloatBuffer(count: capacity * stateSize)
        live = Array(repeating: false, count: capacity)
        index = StreamKeyIndex(capacity: capacity)
        nextSeq = Array(repeating: 0, count: capacity)
        lastSeen = Array(repeating: 0, count: capacity)
        steps = Array(repeating: 0, count: capacity)
        lossSum = Array(repeating: 0, count: capacity)
        lossCount = Array(repeating: 0, count: capacity)
        createdAt = Array(repeating: 0, count: capacity)
        free = (0..<Int32(capacity)).reversed()
        prev = Array(repeating: -1, count: capacity)
        next = Array(repeating: -1, count: capacity)
    }

    func slot(for key: UnsafeRawBufferPointer) -> Int? { index.slot(for: key) }

    func slot(for key: [UInt8]) -> Int? { key.withUnsafeBytes { index.slot(for: $0) } }

    /// The key of a live slot.
    func key(_ slot: Int) -> [UInt8] { index.key(slot) }

    /// The slot of a new stream; nil when the table is full (evict first).
    func insert(_ key: UnsafeRawBufferPointer, now: Double) -> Int? {
        guard let s = free.popLast() else { return nil }
        let slot = Int(s)
        index.insert(key, slot: slot)
        live[slot] = true
        reset(slot)
        steps[slot] = 0
        lossSum[slot] = 0
        lossCount[slot] = 0
        createdAt[slot] = now
        lastSeen[slot] = now
        pushFront(s)
        return slot
    }

    /// Zeroes a stream's state (a new stream or RESET).
    func reset(_ slot: Int) {
        (states.pointer + slot * stateSize).update(repeating: 0, count: stateSize)
    }

    /// Forgets a stream and frees its slot.
    func remove(_ slot: Int) {
        guard live[slot] else { return }
        index.remove(slot: slot)
        live[slot] = false
        unlink(Int32(slot))
        free.append(Int32(slot))
    }

    /// Marks a stream as just used.
    func touch(_ slot: Int, now: Double) {
        lastSeen[slot] = now
        let s = Int32(slot)
        if head == s { return }
        unlink(s)
        pushFront(s)
    }

    /// The least recently used stream.
    var leastRecentlyUsed: Int? { tail >= 0 ? Int(tail) : nil }

    /// All live slots, most recent first.
    var slotsByRecency: [Int] {
        var out: [Int] = []
        var s = head
        while s >= 0 { out.append(Int(s)); s = next[Int(s)] }
        return out
    }

    func state(_ slot: Int) -> UnsafeMutablePointer<Float> { states.pointer + slot * stateSize }

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
