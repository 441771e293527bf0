/// A stream's key group (DESIGN §7): 64-bit FNV-1a of the key bytes modulo 4096. Fixed forever,
/// so that every instance, client and tool maps a key to the same group (Swift's `Hasher` is
/// seeded per process and must never be used for this).
public enum KeyGroup {
    public static let count = 4096

    /// The key group of `key`.
    @inline(__always)
    public static func of(_ key: UnsafeRawBufferPointer) -> Int { Int(hash(key) % UInt64(count)) }

    public static func of(_ key: [UInt8]) -> Int { key.withUnsafeBytes { of($0) } }

    /// 64-bit FNV-1a.
    @inline(__always)
    public static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        var h = Hasher()
        for b in key { h.add(byte: b) }
        return h.value
    }

    /// Incremental 64-bit FNV-1a.
    public struct Hasher {
        public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
        public init() {}
        @inline(__always) public mutating func add(byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        public mutating func add(_ v: UInt64) { for i in 0..<8 { add(byte: UInt8(truncatingIfNeeded: v >> (8 * i))) } }
        public mutating func add(_ s: String) { for b in s.utf8 { add(byte: b) }; add(byte: 0) }
    }
}
