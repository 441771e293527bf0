import Foundation
import RecurdTestSupport
import Testing
@testable import RecurdNumerics

@Suite struct KernelTests {
    @Test(arguments: [(1, 1), (3, 5), (4, 16), (8, 17), (37, 33), (512, 128), (13, 160)])
    func matvecMatchesNaive(rows: Int, cols: Int) {
        var rng = SeededGenerator(seed: UInt64(rows * 1000 + cols))
        let w = randomFloats(rows * cols, rng: &rng), x = randomFloats(cols, rng: &rng), y0 = randomFloats(rows, rng: &rng)
        for accumulate in [false, true] {
            var y = y0
            w.withUnsafeBufferPointer { wp in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                Kernels.matvec(wp.baseAddress!, rows: rows, cols: cols, ldw: cols, xp.baseAddress!, yp.baseAddress!, accumulate: accumulate)
            } } }
            for r in 0..<rows {
                var s = accumulate ? Double(y0[r]) : 0
                for c in 0..<cols { s += Double(w[r * cols + c]) * Double(x[c]) }
                #expect(abs(Double(y[r]) - s) < 1e-4, "row \(r)")
            }
        }
    }

    /// Tiles of 8 with ragged edges, and a row stride wider than the rows.
    @Test(arguments: [(1, 1), (7, 15), (8, 8), (17, 33), (256, 64), (13, 129)])
    func transposeMatchesNaive(rows: Int, cols: Int) {
        var rng = SeededGenerator(seed: UInt64(rows * 31 + cols))
        let ld = cols + 3
        let a = randomFloats(rows * ld, rng: &rng)
        var out = [Float](repeating: .nan, count: rows * cols)
        a.withUnsafeBufferPointer { ap in out.withUnsafeMutableBufferPointer { op in
            Kernels.transpose(ap.baseAddress!, rows: rows, cols: cols, ld: ld, into: op.baseAddress!)
        } }
        var mismatches = 0
        for r in 0..<rows {
            for c in 0..<cols where out[c * rows + r] != a[r * ld + c] { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: [(1, 1), (5, 3), (16, 4), (17, 8), (33, 37), (512, 128), (96, 40)])
    func transposedMatvecMatchesNaive(rows: Int, cols: Int) {
        var rng = SeededGenerator(seed: UInt64(rows * 7 + cols))
        let w = randomFloats(rows * cols, rng: &rng), d = randomFloats(rows, rng: &rng), y0 = randomFloats(cols, rng: &rng)
        for accumulate in [false, true] {
            var y = y0
            w.withUnsafeBufferPointer { wp in d.withUnsafeBufferPointer { dp in y.withUnsafeMutableBufferPointer { yp in
                Kernels.matvecTransposed(wp.baseAddress!, rows: rows, cols: cols, ldw: cols, dp.baseAddress!, yp.baseAddress!, accumulate: accumulate)
            } } }
            for c in 0..<cols {
                var s = accumulate ? Double(y0[c]) : 0
                for r in 0..<rows { s += Double(w[r * cols + c]) * Double(d[r]) }
                #expect(abs(Double(y[c]) - s) < 1e-4, "column \(c)")
            }
        }
    }

    @Test func gemmTransposeCombinations() {
        var rng = SeededGenerator(seed: 5)
        let m = 7, n = 9, k = 11
        let a = randomFloats(m * k, rng: &rng), b = randomFloats(k * n, rng: &rng)
        // Reference C = A·B with A (m×k), B (k×n).
        var expected = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for l in 0..<k { expected[i * n + j] += Double(a[i * k + l]) * Double(b[l * n + j]) } } }
        let aT = (0..<(k * m)).map { a[($0 % m) * k + $0 / m] }   // (k×m)
        let bT = (0..<(n * k)).map { b[($0 % k) * n + $0 / k] }   // (n×k)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            var c = [Float](repeating: 0, count: m * n)
            let aa = ta ? aT : a, bb = tb ? bT : b
            aa.withUnsafeBufferPointer { ap in bb.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                Kernels.gemm(transA: ta, transB: tb, m: m, n: n, k: k, a: ap.baseAddress!, lda: ta ? m : k,
                             b: bp.baseAddress!, ldb: tb ? k : n, beta: 0, c: cp.baseAddress!, ldc: n)
            } } }
            for i in 0..<(m * n) { #expect(abs(Double(c[i]) - expected[i]) < 1e-4, "transA \(ta) transB \(tb) element \(i)") }
        }
    }

    @Test func activationsMatchLibm() {
        var worstExp: Double = 0, worstSigmoid: Double = 0, worstTanh: Double = 0
        var x = -30.0
        while x <= 30 {
            let f = Float(x)
            let e = Double(Activations.exp(f)), reference = Foundation.exp(Double(f))
            worstExp = max(worstExp, abs(e - reference) / reference)
            worstSigmoid = max(worstSigmoid, abs(Double(Activations.sigmoid(f)) - 1 / (1 + Foundation.exp(-Double(f)))))
            worstTanh = max(worstTanh, abs(Double(Activations.tanh(f)) - Foundation.tanh(Double(f))))
            x += 0.0137
        }
        #expect(worstExp < 5e-7, "exp relative error \(worstExp)")
        #expect(worstSigmoid < 2e-7, "sigmoid absolute error \(worstSigmoid)")
        #expect(worstTanh < 3e-7, "tanh absolute error \(worstTanh)")
        // The C kernels the cells use (buffer versions), on the same grid.
        let grid = (0..<4380).map { Float(-30 + Double($0) * 0.0137) }
        var e = grid, sg = grid, th = grid
        e.withUnsafeMutableBufferPointer { Activations.exp($0.baseAddress!, count: $0.count) }
        sg.withUnsafeMutableBufferPointer { Activations.sigmoid($0.baseAddress!, count: $0.count) }
        th.withUnsafeMutableBufferPointer { Activations.tanh($0.baseAddress!, count: $0.count) }
        for (i, x) in grid.enumerated() {
            let d = Double(x)
            #expect(abs(Double(e[i]) - Foundation.exp(d)) / Foundation.exp(d) < 5e-7, "exp(\(x))")
            #expect(abs(Double(sg[i]) - 1 / (1 + Foundation.exp(-d))) < 2e-7, "sigmoid(\(x))")
            #expect(abs(Double(th[i]) - Foundation.tanh(d)) < 3e-7, "tanh(\(x))")
        }
        #expect(Activations.sigmoid(-200) >= 0 && Activations.sigmoid(-200) < 1e-30)
        #expect(Activations.sigmoid(200) == 1)
        #expect(Activations.tanh(-200) == -1)
    }

    @Test func clippingMatchesTorchRule() {
        var g: [Float] = [3, 4]   // norm 5
        let norm = g.withUnsafeMutableBufferPointer { GradientClipping.clip($0.baseAddress!, count: 2, maxNorm: 1) }
        #expect(abs(norm - 5) < 1e-6)
        #expect(abs(g[0] - 3 / (5 + 1e-6)) < 1e-6 && abs(g[1] - 4 / (5 + 1e-6)) < 1e-6)
        var small: [Float] = [0.3, 0.4]
        _ = small.withUnsafeMutableBufferPointer { GradientClipping.clip($0.baseAddress!, count: 2, maxNorm: 1) }
        #expect(small == [0.3, 0.4])
        // Lengths that cross the vector loops' whole-vector and remainder parts.
        for count in [1, 7, 8, 9, 15, 16, 17, 23, 24, 33, 40] {
            let original = (0..<count).map { Float(($0 * 7919) % 13) - 6.5 }
            let exact = original.reduce(0.0) { $0 + Double($1) * Double($1) }
            var g = original
            let n = g.withUnsafeMutableBufferPointer { GradientClipping.clip($0.baseAddress!, count: count, maxNorm: 0.5) }
            #expect(abs(Double(n) - exact.squareRoot()) <= 1e-6 * exact.squareRoot(), "norm, count \(count)")
            let c = 0.5 / (n + 1e-6)
            for i in 0..<count { #expect(g[i] == original[i] * c, "element \(i) of \(count)") }
        }
    }

    @Test func adamFirstStepsMatchClosedForm() {
        // Two Adam steps on one parameter with gradient 0.5 then −0.25, lr 0.1, computed by hand
        // from torch.optim.Adam's update rule.
        let opt = Optimizer(kind: .adam, learningRate: 0.1, parameterCount: 1)
        var p: [Float] = [1]
        for g in [Float(0.5), -0.25] {
            let grads = [g]
            p.withUnsafeMutableBufferPointer { pp in grads.withUnsafeBufferPointer { opt.apply(parameters: pp.baseAddress!, gradients: $0.baseAddress!, count: 1) } }
        }
        var m = 0.0, v = 0.0, expected = 1.0
        for (t, g) in [0.5, -0.25].enumerated() {
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            let step = Double(t + 1)
            expected -= 0.1 / (1 - pow(0.9, step)) * m / (v.squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8)
        }
        #expect(abs(Double(p[0]) - expected) < 1e-6)
        #expect(opt.step == 2)
    }

    @Test func adamUpdatesEveryElementOfLongVectors() {
        // 21 = two whole vectors and a remainder of five: each element is its own one-parameter
        // Adam (with its own gradients) and must match the closed form, wherever it sits.
        let count = 21
        let opt = Optimizer(kind: .adam, learningRate: 0.05, parameterCount: count)
        var p = (0..<count).map { Float($0) / 10 }
        let grads: [[Float]] = [(0..<count).map { Float($0 % 5) - 2 }, (0..<count).map { 0.5 - Float($0 % 3) }, (0..<count).map { Float($0) / 7 }]
        for g in grads {
            p.withUnsafeMutableBufferPointer { pp in g.withUnsafeBufferPointer { opt.apply(parameters: pp.baseAddress!, gradients: $0.baseAddress!, count: count, gradientScale: 0.5) } }
        }
        for i in 0..<count {
            var m = 0.0, v = 0.0, expected = Double(i) / 10
            for (t, g) in grads.enumerated() {
                let gi = 0.5 * Double(g[i])
                m = 0.9 * m + 0.1 * gi
                v = 0.999 * v + 0.001 * gi * gi
                let step = Double(t + 1)
                expected -= 0.05 / (1 - pow(0.9, step)) * m / (v.squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8)
            }
            #expect(abs(Double(p[i]) - expected) < 1e-5, "element \(i)")
        }
    }
}
