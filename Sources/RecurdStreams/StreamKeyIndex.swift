import Foundation

/// Stream keys → slots without allocating per lookup: an open-addressing hash table (linear
/// probing, backward-shift deletion) over each slot's key bytes, looked up straight from a
/// received frame's bytes. Grows (rehashes) when the slot capacity grows.
struct StreamKeyIndex {
    static let maxKeyLength = 255

    private var buckets: [Int32]
    private var mask: Int
    /// Each slot's key (empty when free).
    private var keys: [[UInt8]]
    private var hashes: [UInt64]
    private(set) var count = 0

    init(capacity: Int) {
        keys = Array(repeating: [], count: capacity)
        hashes = Array(repeating: 0, count: capacity)
        buckets = Array(repeating: -1, count: Self.bucketCount(capacity))
        mask = buckets.count - 1
    }

    private static func bucketCount(_ capacity: Int) -> Int {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        return size
    }

    var capacity: Int { keys.count }

    /// Room for slots up to `capacity`.
    mutating func grow(to capacity: Int) {
        guard capacity > keys.count else { return }
        keys.append(contentsOf: repeatElement([], count: capacity - keys.count))
        hashes.append(contentsOf: repeatElement(0, count: capacity - hashes.count))
        let size = Self.bucketCount(capacity)
        guard size > buckets.count else { return }
        buckets = Array(repeating: -1, count: size)
        mask = size - 1
        for slot in keys.indices where !keys[slot].isEmpty {
            var i = Int(truncatingIfNeeded: hashes[slot]) & mask
            while buckets[i] >= 0 { i = (i + 1) & mask }
            buckets[i] = Int32(slot)
        }
    }

    /// 64-bit FNV-1a, the key-group hash (DESIGN §7).
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { KeyGroup.hash(key) }

    private func matches(_ slot: Int, _ key: UnsafeRawBufferPointer, _ h: UInt64) -> Bool {
        guard hashes[slot] == h, keys[slot].count == key.count else { return false }
        return keys[slot].withUnsafeBytes { memcmp($0.baseAddress!, key.baseAddress!, key.count) == 0 }
    }

    func slot(for key: UnsafeRawBufferPointer) -> Int? {
        guard key.count > 0 else { return nil }
        let h = Self.hash(key)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = Int(buckets[i])
            if s < 0 { return nil }
            if matches(s, key, h) { return s }
            i = (i + 1) & mask
        }
    }

    /// Adds `key` for `slot` (the key must not be present; 1–255 bytes).
    mutating func insert(_ key: UnsafeRawBufferPointer, slot: Int) {
        precondition(key.count >= 1 && key.count <= Self.maxKeyLength)
        let h = Self.hash(key)
        hashes[slot] = h
        keys[slot] = Array(key)
        var i = Int(truncatingIfNeeded: h) & mask
        while buckets[i] >= 0 { i = (i + 1) & mask }
        buckets[i] = Int32(slot)
        count += 1
    }

    /// Removes `slot`'s key.
    mutating func remove(slot: Int) {
        var i = Int(truncatingIfNeeded: hashes[slot]) & mask
        while Int(buckets[i]) != slot {
            guard buckets[i] >= 0 else { return }
            i = (i + 1) & mask
        }
        buckets[i] = -1
        keys[slot] = []
        count -= 1
        // Backward shift: move later entries of the probe run into the hole.
        var j = (i + 1) & mask
        while buckets[j] >= 0 {
            let home = Int(truncatingIfNeeded: hashes[Int(buckets[j])]) & mask
            // Entry at j may move to i if its home is not in (i, j] cyclically.
            let movable = i <= j ? (home <= i || home > j) : (home <= i && home > j)
            if movable {
                buckets[i] = buckets[j]
                buckets[j] = -1
                i = j
            }
            j = (j + 1) & mask
        }
    }

    /// The key bytes of `slot`.
    func key(_ slot: Int) -> [UInt8] { keys[slot] }

    /// Calls `body` with the key bytes of `slot`, without copying.
    func withKey<R>(_ slot: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try keys[slot].withUnsafeBytes(body)
    }
}
