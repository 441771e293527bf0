import CRecurdKernels

/// Matrix and vector kernels on row-major float storage.
///
/// The dense products are recurd's own (`CRecurdKernels`, `recurd_gemm.h`): packed, register-
/// blocked sgemm and the single-stream sgemv in AVX-512, AVX2 and portable variants chosen at run
/// time, so speed and results do not depend on a system BLAS's CPU detection or environment.
/// `recurd bench kernels` measures them against the machine's peak and OpenBLAS.
public enum Kernels {
    /// Kept for callers that warm up before timing; the products need no set-up.
    public static func prepare() {}

    /// The instruction set the products and cells use on this thread ("avx512", "avx2", "portable").
    public static var instructionSet: String { String(cString: recurd_kernels_isa_name(recurd_kernels_isa())) }

    /// C (m×n) = alpha · op(A) · op(B) + beta · C, all row-major.
    ///
    /// `transA`: A is stored (k×m) and used transposed; `transB`: B is stored (n×k).
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        recurd_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// out (cols × rows, dense) = Aᵀ for A (rows × cols, row stride `ld`); in tiles of 8×8, so that
    /// both sides move whole cache lines.
    public static func transpose(_ a: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into out: UnsafeMutablePointer<Float>) {
        var r0 = 0
        while r0 < rows {
            let r1 = min(r0 + 8, rows)
            var c0 = 0
            while c0 < cols {
                let c1 = min(c0 + 8, cols)
                for r in r0..<r1 {
                    for c in c0..<c1 { out[c * rows + r] = a[r * ld + c] }
                }
                c0 = c1
            }
            r0 = r1
        }
    }

    /// y (rows) = W (rows×cols, row stride `ldw`) · x (cols), or `+=` when `accumulate`.
    @inline(__always)
    public static func matvec(
        _ w: UnsafePointer<Float>, rows: Int, cols: Int, ldw: Int,
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        recurd_sgemv(w, Int32(rows), Int32(cols), Int32(ldw), x, y, accumulate ? 1 : 0)
    }

    /// y (rows) = W · x from W's tile-packed copy (`PackedStepWeights`), `+=` when `accumulate`;
    /// equal bit for bit to `matvec` on the unpacked W. Only when `packedMatvecAvailable`.
    @inline(__always)
    public static func packedMatvec(
        _ packed: UnsafePointer<Float>, rows: Int, cols: Int,
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        recurd_sgemv_packed(packed, Int32(rows), Int32(cols), x, y, accumulate ? 1 : 0)
    }

    /// Floats of the tile-packed copy of a rows×cols matrix (a multiple of 64).
    public static func packedMatvecSize(rows: Int, cols: Int) -> Int { recurd_sgemv_packed_size(Int32(rows), Int32(cols)) }

    /// Writes the tile-packed copy of W (rows×cols, row stride `ldw`) that `packedMatvec` reads.
    public static func packForMatvec(_ w: UnsafePointer<Float>, rows: Int, cols: Int, ldw: Int, into packed: UnsafeMutablePointer<Float>) {
        recurd_sgemv_pack(w, Int32(rows), Int32(cols), Int32(ldw), packed)
    }

    /// Whether the kernels in use on this thread have a packed matvec (AVX2 and portable do).
    public static var packedMatvecAvailable: Bool { recurd_sgemv_packed_available(RECURD_ISA_AUTO.rawValue) != 0 }

    /// C (m×n) = A (m×k, row stride `lda`) · Wᵀ from W's panel copy (`packForGemm`), or
    /// C = A · Wᵀ + C when `accumulate`. Equal bit for bit to `gemm(transB: true, …)` on W for
    /// more than four rows; a batch of streams then skips that product's copy of W. Only when
    /// `packedGemmAvailable`.
    @inline(__always)
    public static func packedGemm(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, packed: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false
    ) {
        if m == 0 || n == 0 { return }
        recurd_sgemm_packed(Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), packed, accumulate ? 1 : 0, c, Int32(ldc))
    }

    /// Floats of W's panel copy (n rows of k).
    public static func packedGemmSize(n: Int, k: Int) -> Int { recurd_sgemm_packed_size(Int32(n), Int32(k)) }

    /// Writes the panel copy of W (n rows of k, row stride `ldw`) that `packedGemm` reads.
    public static func packForGemm(_ w: UnsafePointer<Float>, n: Int, k: Int, ldw: Int, into packed: UnsafeMutablePointer<Float>) {
        recurd_sgemm_pack(w, Int32(n), Int32(k), Int32(ldw), packed)
    }

    /// Whether the kernels in use on this thread have the panel product (AVX2 and portable do).
    public static var packedGemmAvailable: Bool { recurd_sgemm_packed_available(RECURD_ISA_AUTO.rawValue) != 0 }

    /// y (cols) = Wᵀ · d, with W (rows×cols, row stride `ldw`) and d (rows); `+=` when `accumulate`.
    ///
    /// The backward pass's sequential product `dh_{t−1} = W_hhᵀ · δ_t`.
    @inline(__always)
    public static func matvecTransposed(
        _ w: UnsafePointer<Float>, rows: Int, cols: Int, ldw: Int,
        _ d: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        recurd_sgemv_t(w, Int32(rows), Int32(cols), Int32(ldw), d, y, accumulate ? 1 : 0)
    }

    /// Σ a[i]·b[i].
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= count {
            acc0.addProduct(Vec.load(a + i), Vec.load(b + i))
            acc1.addProduct(Vec.load(a + i + 8), Vec.load(b + i + 8))
            i += 16
        }
        var s = (acc0 + acc1).sum()
        while i < count { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// y += alpha · x.
    @inline(__always)
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let a = SIMD8<Float>(repeating: alpha)
        var i = 0
        while i + 8 <= count {
            var v = Vec.load(y + i)
            v.addProduct(Vec.load(x + i), a)
            Vec.store(v, y + i)
            i += 8
        }
        while i < count { y[i] += alpha * x[i]; i += 1 }
    }

    /// y += x.
    @inline(__always)
    public static func add(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            Vec.store(Vec.load(y + i) + Vec.load(x + i), y + i)
            i += 8
        }
        while i < count { y[i] += x[i]; i += 1 }
    }

    /// Σ x[i]² in double precision, for gradient norms.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        // Two accumulators: one chain of dependent additions was the bound (their latency,
        // not the loads).
        var acc0 = SIMD8<Double>(), acc1 = SIMD8<Double>()
        var i = 0
        while i + 16 <= count {
            let v0 = SIMD8<Double>(Vec.load(x + i)), v1 = SIMD8<Double>(Vec.load(x + i + 8))
            acc0.addProduct(v0, v0)
            acc1.addProduct(v1, v1)
            i += 16
        }
        if i + 8 <= count {
            let v = SIMD8<Double>(Vec.load(x + i))
            acc0.addProduct(v, v)
            i += 8
        }
        var s = (acc0 + acc1).sum()
        while i < count { s += Double(x[i]) * Double(x[i]); i += 1 }
        return s
    }

    /// out (cols) += column sums of M (rows×cols, row stride `ld`).
    public static func addColumnSums(_ m: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { add(m + r * ld, out, count: cols) }
    }
}
