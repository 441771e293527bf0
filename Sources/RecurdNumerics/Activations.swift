import CRecurdKernels

/// Elementwise functions used by the heads and losses: the C kernels (`CRecurdKernels`) the
/// cells use, so there is one implementation of exp, sigmoid and tanh.
///
/// `exp` is the Cephes single-precision polynomial (≈1 ulp on its range); sigmoid and tanh are
/// built on it. Their absolute error stays below 1e-7, far inside the 2e-5 agreement the project
/// promises with PyTorch, while costing a fraction of a scalar `expf` call per element.
public enum Activations {
    /// Applies sigmoid in place to `count` floats.
    public static func sigmoid(_ p: UnsafeMutablePointer<Float>, count: Int) { recurd_sigmoid(p, Int32(count)) }

    /// Applies tanh in place to `count` floats.
    public static func tanh(_ p: UnsafeMutablePointer<Float>, count: Int) { recurd_tanh(p, Int32(count)) }

    /// Applies exp in place to `count` floats.
    public static func exp(_ p: UnsafeMutablePointer<Float>, count: Int) { recurd_exp(p, Int32(count)) }

    /// Scalar versions with the same numerics (cold paths and tests).
    public static func sigmoid(_ x: Float) -> Float { scalar(x, recurd_sigmoid) }
    public static func tanh(_ x: Float) -> Float { scalar(x, recurd_tanh) }
    public static func exp(_ x: Float) -> Float { scalar(x, recurd_exp) }

    private static func scalar(_ x: Float, _ f: (UnsafeMutablePointer<Float>?, Int32) -> Void) -> Float {
        var v = x
        f(&v, 1)
        return v
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
