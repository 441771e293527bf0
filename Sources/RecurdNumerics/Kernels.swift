import CBLAS

/// Matrix and vector kernels on row-major float storage.
///
/// Large products go to OpenBLAS `cblas_sgemm`, pinned to one thread (recurd gets parallelism
/// from its own threads). Matrix–vector products for a single stream use the SIMD kernels below,
/// which beat `cblas_sgemv` at recurrent-layer sizes because they skip the library's dispatch and
/// keep four rows' accumulators in registers; `recurd bench kernels` measures both.
public enum Kernels {
    /// Pins OpenBLAS to one thread once per process.
    private static let blasConfigured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Calls this before timing anything so the one-time BLAS set-up is not measured.
    public static func prepare() { _ = blasConfigured }

    /// The OpenBLAS core name it picked for this CPU (for benchmark reports).
    public static var blasCore: String {
        prepare()
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

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
        if k == 0 {
            if beta == 0 {
                for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) }
            } else if beta != 1 {
                for r in 0..<m { for j in 0..<n { c[r * ldc + j] *= beta } }
            }
            return
        }
        _ = blasConfigured
        cblas_sgemm(
            Int32(RecurdCblasRowMajor.rawValue),
            Int32(transA ? RecurdCblasTrans.rawValue : RecurdCblasNoTrans.rawValue),
            Int32(transB ? RecurdCblasTrans.rawValue : RecurdCblasNoTrans.rawValue),
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y (rows) = W (rows×cols, row stride `ldw`) · x (cols), or `+=` when `accumulate`.
    ///
    /// Eight rows at a time share each load of x and keep eight independent FMA chains in flight;
    /// at recurrent sizes the product is bound by streaming W from L2 (`recurd bench kernels`).
    public static func matvec(
        _ w: UnsafePointer<Float>, rows: Int, cols: Int, ldw: Int,
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        let vectorCols = cols & ~7
        var r = 0
        while r + 8 <= rows {
            let w0 = w + r * ldw
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
            var j = 0
            while j < vectorCols {
                let xv = Vec.load(x + j)
                a0.addProduct(Vec.load(w0 + j), xv); a1.addProduct(Vec.load(w0 + ldw + j), xv)
                a2.addProduct(Vec.load(w0 + 2 * ldw + j), xv); a3.addProduct(Vec.load(w0 + 3 * ldw + j), xv)
                a4.addProduct(Vec.load(w0 + 4 * ldw + j), xv); a5.addProduct(Vec.load(w0 + 5 * ldw + j), xv)
                a6.addProduct(Vec.load(w0 + 6 * ldw + j), xv); a7.addProduct(Vec.load(w0 + 7 * ldw + j), xv)
                j += 8
            }
            var sums = SIMD8<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum(), a4.sum(), a5.sum(), a6.sum(), a7.sum())
            while j < cols {
                let xj = x[j]
                for i in 0..<8 { sums[i] += w0[i * ldw + j] * xj }
                j += 1
            }
            if accumulate { sums += Vec.load(y + r) }
            Vec.store(sums, y + r)
            r += 8
        }
        while r < rows {
            let s = dot(w + r * ldw, x, count: cols)
            if accumulate { y[r] += s } else { y[r] = s }
            r += 1
        }
    }

    /// y (cols) = Wᵀ · d, with W (rows×cols, row stride `ldw`) and d (rows); `+=` when `accumulate`.
    ///
    /// The backward pass's sequential product `dh_{t−1} = W_hhᵀ · δ_t`.
    public static func matvecTransposed(
        _ w: UnsafePointer<Float>, rows: Int, cols: Int, ldw: Int,
        _ d: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        if !accumulate { y.update(repeating: 0, count: cols) }
        // Columns in blocks of 32 so the accumulators stay in registers while rows stream by.
        var j = 0
        while j + 32 <= cols {
            var a0 = Vec.load(y + j), a1 = Vec.load(y + j + 8), a2 = Vec.load(y + j + 16), a3 = Vec.load(y + j + 24)
            var r = 0
            while r < rows {
                let s = SIMD8<Float>(repeating: d[r])
                let row = w + r * ldw + j
                a0.addProduct(Vec.load(row), s)
                a1.addProduct(Vec.load(row + 8), s)
                a2.addProduct(Vec.load(row + 16), s)
                a3.addProduct(Vec.load(row + 24), s)
                r += 1
            }
            Vec.store(a0, y + j); Vec.store(a1, y + j + 8); Vec.store(a2, y + j + 16); Vec.store(a3, y + j + 24)
            j += 32
        }
        while j + 8 <= cols {
            var a0 = Vec.load(y + j)
            for r in 0..<rows { a0.addProduct(Vec.load(w + r * ldw + j), SIMD8<Float>(repeating: d[r])) }
            Vec.store(a0, y + j)
            j += 8
        }
        while j < cols {
            var s: Float = 0
            for r in 0..<rows { s += w[r * ldw + j] * d[r] }
            y[j] += s
            j += 1
        }
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
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let v = SIMD8<Double>(Vec.load(x + i))
            acc.addProduct(v, v)
            i += 8
        }
        var s = acc.sum()
        while i < count { s += Double(x[i]) * Double(x[i]); i += 1 }
        return s
    }

    /// out (cols) += column sums of M (rows×cols, row stride `ld`).
    public static func addColumnSums(_ m: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { add(m + r * ld, out, count: cols) }
    }
}
