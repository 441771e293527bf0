import CRecurdKernels

/// Vectorised elementwise functions used by the cells and heads.
///
/// `exp` is the Cephes single-precision polynomial (≈1 ulp on its range); sigmoid and tanh are
/// built on it. Their absolute error stays below 1e-7, far inside the 2e-5 agreement the project
/// promises with PyTorch, while costing a fraction of a scalar `expf` call per element.
public enum Activations {
    public typealias V = SIMD8<Float>

    @inline(__always)
    public static func exp(_ x: V) -> V {
        let lo = V(repeating: -87.3), hi = V(repeating: 88.7)
        let clamped = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
        // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits, so
        // n is had both as a float and as an integer without a (non-vectorising) conversion.
        let magic = V(repeating: 12_582_912)
        let shifted = clamped * V(repeating: 1.442_695_04) + magic
        let n = shifted - magic
        var r = clamped - n * V(repeating: 0.693_359_375)
        r = r - n * V(repeating: -2.121_944_4e-4)
        let z = r * r
        var y = V(repeating: 1.987_569_15e-4)
        y = y * r + V(repeating: 1.398_199_95e-3)
        y = y * r + V(repeating: 8.333_451_9e-3)
        y = y * r + V(repeating: 4.166_579_59e-2)
        y = y * r + V(repeating: 1.666_666_55e-1)
        y = y * r + V(repeating: 5.000_000_12e-1)
        y = y * z + r + V(repeating: 1)
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let exponent = (integer &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: V.self)
    }

    @inline(__always)
    public static func sigmoid(_ x: V) -> V { V(repeating: 1) / (V(repeating: 1) + exp(-x)) }

    @inline(__always)
    public static func tanh(_ x: V) -> V {
        // tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}); the sign is put back afterwards.
        let magnitude = abs(x)
        let t = exp(V(repeating: -2) * magnitude)
        let positive = (V(repeating: 1) - t) / (V(repeating: 1) + t)
        return positive.replacing(with: -positive, where: x .< 0)
    }

    @inline(__always)
    static func abs(_ x: V) -> V {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: V.self)
    }

    /// Scalar versions with the same numerics, for tails and tests.
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float { sigmoid(V(repeating: x))[0] }
    @inline(__always)
    public static func tanh(_ x: Float) -> Float { tanh(V(repeating: x))[0] }
    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    /// Applies sigmoid in place to `count` floats.
    public static func sigmoid(_ p: UnsafeMutablePointer<Float>, count: Int) { recurd_sigmoid(p, Int32(count)) }

    /// Applies tanh in place to `count` floats.
    public static func tanh(_ p: UnsafeMutablePointer<Float>, count: Int) { recurd_tanh(p, Int32(count)) }

    /// Applies exp in place to `count` floats.
    public static func exp(_ p: UnsafeMutablePointer<Float>, count: Int) { recurd_exp(p, Int32(count)) }

    @inline(__always)
    static func map(_ p: UnsafeMutablePointer<Float>, count: Int, _ f: (V) -> V) {
        var i = 0
        while i + 8 <= count {
            Vec.store(f(Vec.load(p + i)), p + i)
            i += 8
        }
        if i < count {
            var tail = V(repeating: 0)
            for j in 0..<(count - i) { tail[j] = p[i + j] }
            let out = f(tail)
            for j in 0..<(count - i) { p[i + j] = out[j] }
        }
    }
}

/// Unaligned SIMD loads and stores through raw pointers.
@usableFromInline
enum Vec {
    @inline(__always) @usableFromInline
    static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) @usableFromInline
    static func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) @usableFromInline
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }
}

extension Vec {
    /// Loads `n` ≤ 8 floats, zero-filling the rest, so hidden sizes need not be multiples of 8.
    @inline(__always) @usableFromInline
    static func load(_ p: UnsafePointer<Float>, _ n: Int) -> SIMD8<Float> {
        if n == 8 { return load(p) }
        var v = SIMD8<Float>()
        for i in 0..<n { v[i] = p[i] }
        return v
    }
    @inline(__always) @usableFromInline
    static func load(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> SIMD8<Float> {
        load(UnsafePointer(p), n)
    }
    @inline(__always) @usableFromInline
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n == 8 { store(v, p); return }
        for i in 0..<n { p[i] = v[i] }
    }
}
