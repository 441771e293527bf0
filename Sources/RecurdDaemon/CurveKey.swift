/// A CURVE public key in its Z85 text form (40 characters), held inline so that checking a
/// message's sender against an allow-list hashes 40 bytes and allocates nothing.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    private let words: (UInt64, UInt64, UInt64, UInt64, UInt64)

    /// From Z85 text; nil unless it is 40 characters that decode to a 32-byte key.
    public init?(z85: String) {
        guard ZMQCurveText.isKey(z85) else { return nil }
        let b = Array(z85.utf8)
        self.init(bytes: b)
    }

    /// From a NUL-terminated 40-character string (a connection's ZAP User-Id).
    public init?(cString p: UnsafePointer<CChar>) {
        let raw = UnsafeRawPointer(p)
        for i in 0..<40 where raw.load(fromByteOffset: i, as: UInt8.self) == 0 { return nil }
        guard raw.load(fromByteOffset: 40, as: UInt8.self) == 0 else { return nil }
        words = (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
    }

    private init(bytes b: [UInt8]) {
        words = b.withUnsafeBytes {
            ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
             $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        }
    }

    /// The Z85 text.
    public var z85: String {
        withUnsafeBytes(of: words) { String(decoding: $0, as: UTF8.self) }
    }

    public var description: String { z85 }

    public static func == (a: CurveKey, b: CurveKey) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3 && a.words.4 == b.words.4
    }

    public func hash(into h: inout Hasher) {
        h.combine(words.0); h.combine(words.1); h.combine(words.2); h.combine(words.3); h.combine(words.4)
    }
}
