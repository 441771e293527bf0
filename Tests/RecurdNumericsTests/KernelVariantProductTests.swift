import CRecurdKernels
import Foundation
import RecurdTestSupport
import Testing
@testable import RecurdNumerics

/// recurd's own products in every instruction-set variant this CPU has, each forced in turn,
/// against plain loops (double accumulation) on random shapes, awkward sizes included.
@Suite struct KernelVariantProductTests {
    static let isas: [Int32] = [RECURD_ISA_PORTABLE.rawValue, RECURD_ISA_AVX2.rawValue, RECURD_ISA_AVX512.rawValue].filter { recurd_kernels_isa_available($0) != 0 }
    static let sizes = [1, 7, 15, 17, 33, 129]

    /// cblas_sgemm row-major semantics, written out.
    static func reference(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: [Float], _ lda: Int, _ b: [Float], _ ldb: Int,
                          _ beta: Float, _ c: [Float], _ ldc: Int) -> [Double] {
        var out = c.map(Double.init)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for l in 0..<k { s += Double(ta ? a[l * lda + i] : a[i * lda + l]) * Double(tb ? b[j * ldb + l] : b[l * ldb + j]) }
                out[i * ldc + j] = Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j]))
            }
        }
        return out
    }

    @Test(arguments: isas)
    func sgemmMatchesLoops(_ isa: Int32) {
        var rng = SeededGenerator(seed: UInt64(isa + 10))
        var cases: [(Int, Int, Int)] = []
        for m in Self.sizes { for n in Self.sizes { cases.append((m, n, Self.sizes[(m + n) % Self.sizes.count])) } }
        cases += [(256, 512, 160), (4, 512, 160), (32, 512, 32), (512, 128, 32), (8, 128, 512)]
        for (index, (m, n, k)) in cases.enumerated() {
            let ta = index % 2 == 1, tb = index % 3 != 0
            let lda = (ta ? m : k) + index % 3, ldb = (tb ? k : n) + index % 2, ldc = n + index % 4
            let a = randomFloats((ta ? k : m) * lda, rng: &rng), b = randomFloats((tb ? n : k) * ldb, rng: &rng)
            let betas: [Float] = [0, 1, 0.5]
            let beta = betas[index % 3]
            // beta 0 must ignore what C held, NaN included.
            let c0 = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : randomFloats(m * ldc, rng: &rng)
            let alpha: Float = index % 5 == 0 ? 0.75 : 1
            var c = c0
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                recurd_sgemm_isa(isa, ta ? 1 : 0, tb ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, ap.baseAddress!, Int32(lda), bp.baseAddress!, Int32(ldb),
                                 beta, cp.baseAddress!, Int32(ldc))
            } } }
            let expected = Self.reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc)
            var worst = 0.0
            for i in 0..<m { for j in 0..<n { worst = max(worst, abs(Double(c[i * ldc + j]) - expected[i * ldc + j])) } }
            #expect(worst <= 1e-5 * Double(k + 1), "\(String(cString: recurd_kernels_isa_name(isa))) m \(m) n \(n) k \(k) ta \(ta) tb \(tb) β \(beta): \(worst)")
        }
    }

    @Test(arguments: isas)
    func sgemvBothWaysMatchLoops(_ isa: Int32) {
        var rng = SeededGenerator(seed: UInt64(isa + 20))
        for rows in Self.sizes + [512] {
            for cols in Self.sizes + [160] {
                let ldw = cols + rows % 3
                let w = randomFloats(rows * ldw, rng: &rng), x = randomFloats(cols, rng: &rng), d = randomFloats(rows, rng: &rng)
                for accumulate in [false, true] {
                    var y = randomFloats(rows, rng: &rng)
                    let y0 = y
                    w.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                        recurd_sgemv_isa(isa, wp.baseAddress!, Int32(rows), Int32(cols), Int32(ldw), xp.baseAddress!, yp.baseAddress!, accumulate ? 1 : 0)
                    } } }
                    for r in 0..<rows {
                        var s = accumulate ? Double(y0[r]) : 0
                        for c in 0..<cols { s += Double(w[r * ldw + c]) * Double(x[c]) }
                        #expect(abs(Double(y[r]) - s) < 1e-5 * Double(cols + 1), "sgemv \(isa) \(rows)×\(cols) row \(r)")
                    }
                    var z = randomFloats(cols, rng: &rng)
                    let z0 = z
                    w.withUnsafeBufferPointer { wp in d.withUnsafeBufferPointer { dp in z.withUnsafeMutableBufferPointer { zp in
                        recurd_sgemv_t_isa(isa, wp.baseAddress!, Int32(rows), Int32(cols), Int32(ldw), dp.baseAddress!, zp.baseAddress!, accumulate ? 1 : 0)
                    } } }
                    for c in 0..<cols {
                        var s = accumulate ? Double(z0[c]) : 0
                        for r in 0..<rows { s += Double(w[r * ldw + c]) * Double(d[r]) }
                        #expect(abs(Double(z[c]) - s) < 1e-5 * Double(rows + 1), "sgemv_t \(isa) \(rows)×\(cols) col \(c)")
                    }
                }
            }
        }
    }

    /// The tile-packed sgemv gives recurd_sgemv's bits in each variant that has one (the others
    /// fall back to the portable kernel: the same values to rounding), never reads x past `cols`
    /// (NaN there would show) and never writes y past `rows`.
    @Test(arguments: isas)
    func packedSgemvEqualsTheRowMajorOneBitForBit(_ isa: Int32) {
        let name = String(cString: recurd_kernels_isa_name(isa))
        let available = recurd_sgemv_packed_available(isa) != 0
        if !available { #expect(isa == RECURD_ISA_AVX512.rawValue, "\(name) has no packed sgemv") }
        var rng = SeededGenerator(seed: UInt64(isa + 30))
        for rows in Self.sizes + [512] {
            for cols in Self.sizes + [160] {
                let ldw = cols + rows % 3
                let w = randomFloats(rows * ldw, rng: &rng)
                let x = randomFloats(cols, rng: &rng) + [Float](repeating: .nan, count: 8)
                var packed = [Float](repeating: .nan, count: recurd_sgemv_packed_size(Int32(rows), Int32(cols)))
                #expect(packed.count % 64 == 0 && packed.count >= rows * cols)
                packed.withUnsafeMutableBufferPointer { recurd_sgemv_pack(w, Int32(rows), Int32(cols), Int32(ldw), $0.baseAddress!) }
                for accumulate in [false, true] {
                    let y0 = randomFloats(rows, rng: &rng) + [-7]
                    var expected = y0, got = y0
                    expected.withUnsafeMutableBufferPointer {
                        recurd_sgemv_isa(isa, w, Int32(rows), Int32(cols), Int32(ldw), x, $0.baseAddress!, accumulate ? 1 : 0)
                    }
                    got.withUnsafeMutableBufferPointer {
                        recurd_sgemv_packed_isa(isa, packed, Int32(rows), Int32(cols), x, $0.baseAddress!, accumulate ? 1 : 0)
                    }
                    if available {
                        #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "\(name) \(rows)×\(cols) accumulate \(accumulate)")
                    } else {
                        let worst = zip(got, expected).map { abs(Double($0) - Double($1)) }.max() ?? 0
                        #expect(worst < 1e-5 * Double(cols + 1), "\(name) \(rows)×\(cols) accumulate \(accumulate): fallback off by \(worst)")
                    }
                    #expect(got[rows] == -7, "\(name) \(rows)×\(cols) wrote past y")
                }
            }
        }
    }

    /// The panel-packed product gives recurd_sgemm's bits for more than four rows in each variant
    /// that has one, and the loops' values for any m in every variant (the others fall back to
    /// the portable kernel); never reads A past k (NaN there would show) nor writes C past n; k
    /// over 256 crosses a panel block.
    @Test(arguments: isas)
    func packedSgemmEqualsTheUnpackedOneBitForBit(_ isa: Int32) {
        let name = String(cString: recurd_kernels_isa_name(isa))
        let available = recurd_sgemm_packed_available(isa) != 0
        if !available { #expect(isa == RECURD_ISA_AVX512.rawValue, "\(name) has no panel product") }
        var rng = SeededGenerator(seed: UInt64(isa + 40))
        for m in [1, 2, 3, 4, 5, 6, 8, 17, 33, 129] {
            for n in Self.sizes + [512] {
                for k in [1, 7, 33, 300] {
                    let lda = k + 3, ldw = k + n % 3, ldc = n + 2
                    var a = randomFloats(m * lda, rng: &rng)
                    for i in 0..<m { for l in k..<lda { a[i * lda + l] = .nan } }
                    let w = randomFloats(n * ldw, rng: &rng)
                    var packed = [Float](repeating: .nan, count: recurd_sgemm_packed_size(Int32(n), Int32(k)))
                    #expect(packed.count >= n * k)
                    packed.withUnsafeMutableBufferPointer { recurd_sgemm_pack(w, Int32(n), Int32(k), Int32(ldw), $0.baseAddress!) }
                    for accumulate in [false, true] {
                        var c0 = randomFloats(m * ldc, rng: &rng)
                        for i in 0..<m { for j in n..<ldc { c0[i * ldc + j] = -7 } }
                        var expected = c0, got = c0
                        expected.withUnsafeMutableBufferPointer {
                            recurd_sgemm_isa(isa, 0, 1, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), w, Int32(ldw), accumulate ? 1 : 0, $0.baseAddress!, Int32(ldc))
                        }
                        got.withUnsafeMutableBufferPointer {
                            recurd_sgemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), packed, accumulate ? 1 : 0, $0.baseAddress!, Int32(ldc))
                        }
                        let what = "\(name) \(m)×\(n)×\(k) accumulate \(accumulate)"
                        if available && m > 4 { #expect(got.map(\.bitPattern) == expected.map(\.bitPattern), "\(what): not the unpacked bits") }
                        let loops = Self.reference(false, true, m, n, k, 1, a, lda, w, ldw, accumulate ? 1 : 0, c0, ldc)
                        var worst = 0.0
                        for i in 0..<m { for j in 0..<n { worst = max(worst, abs(Double(got[i * ldc + j]) - loops[i * ldc + j])) } }
                        #expect(worst <= 1e-5 * Double(k + 1), "\(what): \(worst) from the loops")
                        #expect((0..<m).allSatisfy { i in (n..<ldc).allSatisfy { got[i * ldc + $0] == -7 } }, "\(what): wrote past n")
                    }
                }
            }
        }
    }

    /// A step with the packed copies equals the unpacked step bit for bit, for both cells, for
    /// one stream and for a batch of five, over several steps (the state carries any difference
    /// forward).
    @Test(arguments: [CellKind.lstm, .gru])
    func stepWithPackedWeightsEqualsTheRowMajorStep(_ cell: CellKind) {
        let arch = ModelArchitecture(cell: cell, input: .features(size: 7), hidden: [33, 17], outputSize: 5, head: .linear)
        let model = makeModel(arch, seed: 9)
        let packed = PackedStepWeights(layout: model.layout, weights: model.weights.pointer)
        var rng = SeededGenerator(seed: 4)
        let inputs = (0..<(8 * 5)).map { _ in randomFloats(7, amplitude: 2, rng: &rng) }
        for isa in Self.isas {
            _ = recurd_kernels_set_thread_isa(isa)
            for batch in [1, 5] where batch == 1 ? recurd_sgemv_packed_available(isa) != 0 : recurd_sgemm_packed_available(isa) != 0 {
                func run(_ packed: PackedStepWeights?) -> [Float] {
                    let engine = StepEngine(layout: model.layout, maxBatch: batch)
                    var out: [Float] = []
                    for t in 0..<8 {
                        for b in 0..<batch { inputs[t * 5 + b].withUnsafeBufferPointer { engine.setFeatures(row: b, $0.baseAddress!) } }
                        engine.step(weights: model.weights.pointer, batch: batch, packed: packed)
                        for b in 0..<batch { out += Array(UnsafeBufferPointer(start: engine.output(row: b), count: 5)) }
                    }
                    return out
                }
                #expect(run(packed).map(\.bitPattern) == run(nil).map(\.bitPattern), "\(cell) \(String(cString: recurd_kernels_isa_name(isa))) batch \(batch)")
            }
        }
        _ = recurd_kernels_set_thread_isa(RECURD_ISA_AUTO.rawValue)
    }
}
