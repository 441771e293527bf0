/// A fixed-size, zero-initialised, 64-byte-aligned block of `Float`s.
///
/// The hot loops work on raw pointers into buffers like this one, allocated once at start-up,
/// so that a step allocates nothing and never pays for copy-on-write checks.
public final class FloatBuffer: @unchecked Sendable {
    /// Number of floats.
    public let count: Int
    /// Start of the storage; valid for `count` elements while the buffer lives.
    public let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` floats, all zero.
    public init(count: Int) {
        precondition(count >= 0, "negative buffer size")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Allocates a buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { pointer.deallocate() }

    /// A copy of the contents as an array (tests, serialisation; not for hot paths).
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// Copies `other`'s contents into this buffer; the sizes must match.
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "buffer size mismatch \(other.count) vs \(count)")
        pointer.update(from: other.pointer, count: count)
    }

    /// Element access, bounds-checked (tests and cold paths).
    public subscript(index: Int) -> Float {
        get { precondition(index >= 0 && index < count); return pointer[index] }
        set { precondition(index >= 0 && index < count); pointer[index] = newValue }
    }
}
