/// A Bloom filter over stream keys: "certainly not stored" or "maybe stored". The daemon asks the
/// store for a key it does not hold in memory only when the filter says maybe, so a new stream
/// (the common case in a flood of new keys) starts at once, without a round trip to the store's
/// thread. Keys are never removed (a deleted stream only costs a needless lookup later). Fixed
/// size, chosen for the store's limit: about 10 bits per key, 7 probes, ≈ 1 % false positives.
public struct KeyFilter: Sendable {
    private var words: [UInt64]
    private let mask: UInt64
    private static let probes = 7

    /// A filter for about `capacity` keys.
    public init(capacity: Int) {
        var bits: UInt64 = 1 << 16
        while bits < UInt64(max(capacity, 1)) * 10 && bits < 1 << 34 { bits <<= 1 }
        words = Array(repeating: 0, count: Int(bits / 64))
        mask = bits - 1
    }

    /// Bytes the filter takes.
    public var bytes: Int { words.count * 8 }

    @inline(__always)
    private static func hashes(_ key: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        let h1 = KeyGroup.hash(key)
        // A second, independent-enough hash for double hashing: the first, remixed (splitmix64).
        var z = h1 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (h1, (z ^ (z >> 31)) | 1)
    }

    public mutating func insert(_ key: UnsafeRawBufferPointer) {
        let (h1, h2) = Self.hashes(key)
        for i in 0..<UInt64(Self.probes) {
            let bit = (h1 &+ i &* h2) & mask
            words[Int(bit >> 6)] |= 1 << (bit & 63)
        }
    }

    public mutating func insert(_ key: [UInt8]) { key.withUnsafeBytes { insert($0) } }

    /// False when `key` was certainly never inserted.
    public func mayContain(_ key: UnsafeRawBufferPointer) -> Bool {
        let (h1, h2) = Self.hashes(key)
        for i in 0..<UInt64(Self.probes) {
            let bit = (h1 &+ i &* h2) & mask
            if words[Int(bit >> 6)] & (1 << (bit & 63)) == 0 { return false }
        }
        return true
    }
}
