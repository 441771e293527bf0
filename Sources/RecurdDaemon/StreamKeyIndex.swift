/// Stream keys → slots without allocating: an open-addressing hash table (linear probing,
/// backward-shift deletion) over key bytes stored per slot, looked up straight from a received
/// frame's bytes.
struct StreamKeyIndex {
    static let maxKeyLength = 255

    private var buckets: [Int32]
    private let mask: Int
    /// (capacity, 255) key bytes and each slot's key length.
    private var keyBytes: [UInt8]
    private var keyLength: [UInt8]
    private var hashes: [UInt64]
    private(set) var count = 0

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        buckets = Array(repeating: -1, count: size)
        mask = size - 1
        keyBytes = Array(repeating: 0, count: capacity * Self.maxKeyLength)
        keyLength = Array(repeating: 0, count: capacity)
        hashes = Array(repeating: 0, count: capacity)
    }

    /// FNV-1a: short keys, no setup cost.
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    private func matches(_ slot: Int, _ key: UnsafeRawBufferPointer, _ h: UInt64) -> Bool {
        guard hashes[slot] == h, Int(keyLength[slot]) == key.count else { return false }
        return keyBytes.withUnsafeBytes { stored in
            memcmp(stored.baseAddress! + slot * Self.maxKeyLength, key.baseAddress!, key.count) == 0
        }
    }

    func slot(for key: UnsafeRawBufferPointer) -> Int? {
        let h = Self.hash(key)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = Int(buckets[i])
            if s < 0 { return nil }
            if matches(s, key, h) { return s }
            i = (i + 1) & mask
        }
    }

    /// Adds `key` for `slot` (the key must not be present).
    mutating func insert(_ key: UnsafeRawBufferPointer, slot: Int) {
        let h = Self.hash(key)
        hashes[slot] = h
        keyLength[slot] = UInt8(key.count)
        keyBytes.withUnsafeMutableBytes { ($0.baseAddress! + slot * Self.maxKeyLength).copyMemory(from: key.baseAddress!, byteCount: key.count) }
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
    func key(_ slot: Int) -> [UInt8] {
        Array(keyBytes[(slot * Self.maxKeyLength)..<(slot * Self.maxKeyLength + Int(keyLength[slot]))])
    }

    /// Calls `body` with the key bytes of `slot`, without copying.
    func withKey<R>(_ slot: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try keyBytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[(slot * Self.maxKeyLength)..<(slot * Self.maxKeyLength + Int(keyLength[slot]))])) }
    }
}

import Foundation
