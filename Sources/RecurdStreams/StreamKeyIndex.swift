import Foundation

/// Stream keys → slots without allocating per lookup: an open-addressing hash table (linear
/// probing, backward-shift deletion) over each slot's key bytes, looked up straight from a
/// received frame's bytes. Keys of up to `inlineLength` bytes (most) live inline in one flat
/// array, so a stream's key costs no allocation of its own; longer ones are kept aside. Grows
/// (rehashes) when the slot capacity grows.
struct StreamKeyIndex {
    static let maxKeyLength = 255
    static let inlineLength = 23

    private var buckets: [Int32]
    private var mask: Int
    /// Per slot: the key's length, then up to `inlineLength` bytes (24 bytes a slot).
    private var inline: [UInt8]
    /// Keys longer than `inlineLength`, by slot.
    private var long: [Int: [UInt8]] = [:]
    private var hashes: [UInt64]
    private(set) var count = 0

    init(capacity: Int) {
        inline = Array(repeating: 0, count: capacity * (Self.inlineLength + 1))
        hashes = Array(repeating: 0, count: capacity)
        buckets = Array(repeating: -1, count: Self.bucketCount(capacity))
        mask = buckets.count - 1
    }

    private static func bucketCount(_ capacity: Int) -> Int {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        return size
    }

    var capacity: Int { hashes.count }

    /// Room for slots up to `capacity`.
    mutating func grow(to capacity: Int) {
        guard capacity > hashes.count else { return }
        inline.append(contentsOf: repeatElement(0, count: (capacity - hashes.count) * (Self.inlineLength + 1)))
        hashes.append(contentsOf: repeatElement(0, count: capacity - hashes.count))
        let size = Self.bucketCount(capacity)
        guard size > buckets.count else { return }
        let old = buckets
        buckets = Array(repeating: -1, count: size)
        mask = size - 1
        for s in old where s >= 0 {
            var i = Int(truncatingIfNeeded: hashes[Int(s)]) & mask
            while buckets[i] >= 0 { i = (i + 1) & mask }
            buckets[i] = s
        }
    }

    /// 64-bit FNV-1a, the key-group hash (DESIGN §7).
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { KeyGroup.hash(key) }

    private func length(_ slot: Int) -> Int { Int(inline[slot * (Self.inlineLength + 1)]) }

    private func matches(_ slot: Int, _ key: UnsafeRawBufferPointer, _ h: UInt64) -> Bool {
        guard hashes[slot] == h, length(slot) == key.count else { return false }
        return withKey(slot) { memcmp($0.baseAddress!, key.baseAddress!, key.count) == 0 }
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
        let at = slot * (Self.inlineLength + 1)
        inline[at] = UInt8(key.count)
        if key.count <= Self.inlineLength {
            inline.withUnsafeMutableBytes { ($0.baseAddress! + at + 1).copyMemory(from: key.baseAddress!, byteCount: key.count) }
        } else {
            long[slot] = Array(key)
        }
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
        if length(slot) > Self.inlineLength { long[slot] = nil }
        inline[slot * (Self.inlineLength + 1)] = 0
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
    func key(_ slot: Int) -> [UInt8] { withKey(slot) { Array($0) } }

    /// Calls `body` with the key bytes of `slot`, without copying.
    func withKey<R>(_ slot: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let n = length(slot)
        if n > Self.inlineLength { return try long[slot]!.withUnsafeBytes(body) }
        return try inline.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[(slot * (Self.inlineLength + 1) + 1)..<(slot * (Self.inlineLength + 1) + 1 + n)])) }
    }
}
