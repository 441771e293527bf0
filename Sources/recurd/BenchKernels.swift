import ArgumentParser
import CRecurdKernels
import Foundation
import RecurdNumerics

/// `recurd bench kernels`: recurd's own products at the shapes recurd runs, in every
/// instruction-set variant this CPU has, against the machine's measured multiply-add peak and
/// against OpenBLAS (loaded at run time if installed; never a dependency of recurd) — once as
/// the environment leaves it and once with `OPENBLAS_CORETYPE=Haswell` and once without it
/// (child processes: OpenBLAS reads the variable when it loads). Reports the CPU with the figures.
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "recurd's sgemm/sgemv at recurd's shapes against the machine's peak and OpenBLAS (with and without OPENBLAS_CORETYPE)."
    )

    @Option(parsing: .unconditional, help: "Timed batches per measurement (the best is kept: the other core may be busy).") var repeats: Int = 7
    @Flag(help: "Readable table instead of JSON lines.") var table = false
    @Flag(name: .customLong("openblas-only"), help: .hidden) var openblasOnly = false

    /// One product recurd runs.
    struct Shape {
        let name: String
        let kind: Kind
        /// gemvPacked: the same product as gemv from the tile-packed copy a one-stream step reads;
        /// gemmPacked: the same product as gemm (A·Bᵀ) from the panel copy a batched step reads.
        enum Kind { case gemm, gemv, gemvT, gemvPacked, gemmPacked }
        var ta = false, tb = false
        let m: Int, n: Int, k: Int
        var lda = 0, ldb = 0, ldc = 0
        var beta: Float = 0
        var flops: Double { kind == .gemm || kind == .gemmPacked ? 2.0 * Double(m * n * k) : 2.0 * Double(m * k) }
    }

    /// 2-layer LSTM input 32, hidden 128, output 32 (gate rows 512; [x|h] 160 and 256), its GRU
    /// twin, and `fit` on a byte LSTM 128 (embedding 32, 256 classes, k2 32).
    static let shapes: [Shape] = [
        Shape(name: "step256 lstm L0 256x512x160", kind: .gemm, tb: true, m: 256, n: 512, k: 160, lda: 160, ldb: 160, ldc: 512),
        Shape(name: "step256 lstm L1 256x512x256", kind: .gemm, tb: true, m: 256, n: 512, k: 256, lda: 256, ldb: 256, ldc: 512),
        Shape(name: "step256 head 256x32x128", kind: .gemm, tb: true, m: 256, n: 32, k: 128, lda: 256, ldb: 128, ldc: 32),
        Shape(name: "step256 gru hh 256x384x128", kind: .gemm, tb: true, m: 256, n: 384, k: 128, lda: 160, ldb: 160, ldc: 384),
        Shape(name: "step16 lstm L0 16x512x160", kind: .gemm, tb: true, m: 16, n: 512, k: 160, lda: 160, ldb: 160, ldc: 512),
        Shape(name: "step4 lstm L0 4x512x160", kind: .gemm, tb: true, m: 4, n: 512, k: 160, lda: 160, ldb: 160, ldc: 512),
        Shape(name: "step256 panels lstm L0 256x512x160", kind: .gemmPacked, tb: true, m: 256, n: 512, k: 160, lda: 160, ldb: 160, ldc: 512),
        Shape(name: "step16 panels lstm L0 16x512x160", kind: .gemmPacked, tb: true, m: 16, n: 512, k: 160, lda: 160, ldb: 160, ldc: 512),
        Shape(name: "step4 panels lstm L0 4x512x160", kind: .gemmPacked, tb: true, m: 4, n: 512, k: 160, lda: 160, ldb: 160, ldc: 512),
        Shape(name: "gemv lstm L0 512x160", kind: .gemv, m: 512, n: 0, k: 160, lda: 160),
        Shape(name: "gemv lstm L1 512x256", kind: .gemv, m: 512, n: 0, k: 256, lda: 256),
        Shape(name: "gemv head 32x128", kind: .gemv, m: 32, n: 0, k: 128, lda: 128),
        Shape(name: "gemv packed lstm L0 512x160", kind: .gemvPacked, m: 512, n: 0, k: 160, lda: 160),
        Shape(name: "gemv packed lstm L1 512x256", kind: .gemvPacked, m: 512, n: 0, k: 256, lda: 256),
        Shape(name: "fit in-proj 32x512x32", kind: .gemm, tb: true, m: 32, n: 512, k: 32, lda: 32, ldb: 160, ldc: 512),
        Shape(name: "fit dW_hh 512x128x32 +=", kind: .gemm, ta: true, m: 512, n: 128, k: 32, lda: 512, ldb: 128, ldc: 160, beta: 1),
        Shape(name: "fit dTop 32x128x256", kind: .gemm, m: 32, n: 128, k: 256, lda: 256, ldb: 128, ldc: 128),
        Shape(name: "fit rec fwd gemv 512x128", kind: .gemv, m: 512, n: 0, k: 128, lda: 160),
        Shape(name: "fit rec gemv packed 512x128", kind: .gemvPacked, m: 512, n: 0, k: 128, lda: 160),
        Shape(name: "fit rec bwd gemv_t 512x128", kind: .gemvT, m: 512, n: 0, k: 128, lda: 160),
    ]

    typealias CblasSgemm = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                           UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias CblasSgemv = @convention(c) (Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
                                           Float, UnsafeMutablePointer<Float>?, Int32) -> Void

    /// OpenBLAS, if installed: its sgemm, sgemv, core name.
    static func openBLAS() -> (sgemm: CblasSgemm, sgemv: CblasSgemv, core: String)? {
        for name in ["libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"] {
            guard let h = dlopen(name, RTLD_NOW) else { continue }
            guard let g = dlsym(h, "cblas_sgemm"), let v = dlsym(h, "cblas_sgemv") else { continue }
            if let setThreads = dlsym(h, "openblas_set_num_threads") {
                unsafeBitCast(setThreads, to: (@convention(c) (Int32) -> Void).self)(1)
            }
            var core = "unknown"
            if let c = dlsym(h, "openblas_get_corename"), let s = unsafeBitCast(c, to: (@convention(c) () -> UnsafePointer<CChar>?).self)() {
                core = String(cString: s)
            }
            return (unsafeBitCast(g, to: CblasSgemm.self), unsafeBitCast(v, to: CblasSgemv.self), core)
        }
        return nil
    }

    /// Buffers for one shape, filled with values in [−0.5, 0.5].
    final class Operands {
        let a: FloatBuffer, b: FloatBuffer, c: FloatBuffer
        /// gemvPacked: `a` tile-packed; gemmPacked: `b` in panels.
        let packed: FloatBuffer?
        init(_ s: Shape) {
            var rng = SeededGenerator(seed: 7)
            func buffer(_ n: Int) -> FloatBuffer { FloatBuffer((0..<max(n, 1)).map { _ in Float(rng.nextUnit() - 0.5) }) }
            switch s.kind {
            case .gemm, .gemmPacked:
                a = buffer((s.ta ? s.k : s.m) * s.lda)
                b = buffer((s.tb ? s.n : s.k) * s.ldb)
                c = buffer(s.m * s.ldc)
            case .gemv, .gemvT, .gemvPacked:
                a = buffer(s.m * s.lda)
                b = buffer(max(s.m, s.k))
                c = buffer(max(s.m, s.k))
            }
            switch s.kind {
            case .gemvPacked:
                let p = FloatBuffer(count: Kernels.packedMatvecSize(rows: s.m, cols: s.k))
                Kernels.packForMatvec(a.pointer, rows: s.m, cols: s.k, ldw: s.lda, into: p.pointer)
                packed = p
            case .gemmPacked:
                let p = FloatBuffer(count: Kernels.packedGemmSize(n: s.n, k: s.k))
                Kernels.packForGemm(b.pointer, n: s.n, k: s.k, ldw: s.ldb, into: p.pointer)
                packed = p
            case .gemm, .gemv, .gemvT:
                packed = nil
            }
        }
    }

    /// GFLOP/s of `body`: the best of `repeats` batches each at least 20 ms long.
    func measure(_ s: Shape, _ body: () -> Void) -> Double {
        body()
        var reps = 1
        while true {
            let t0 = nowNanoseconds()
            for _ in 0..<reps { body() }
            if nowNanoseconds() - t0 > 20_000_000 { break }
            reps *= 2
        }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = nowNanoseconds()
            for _ in 0..<reps { body() }
            best = min(best, Double(nowNanoseconds() - t0) / Double(reps))
        }
        return s.flops / best
    }

    func ours(_ s: Shape, isa: Int32, _ o: Operands) -> Double {
        switch s.kind {
        case .gemm:
            return measure(s) {
                recurd_sgemm_isa(isa, s.ta ? 1 : 0, s.tb ? 1 : 0, Int32(s.m), Int32(s.n), Int32(s.k), 1, o.a.pointer, Int32(s.lda), o.b.pointer,
                                 Int32(s.ldb), s.beta, o.c.pointer, Int32(s.ldc))
            }
        case .gemv:
            return measure(s) { recurd_sgemv_isa(isa, o.a.pointer, Int32(s.m), Int32(s.k), Int32(s.lda), o.b.pointer, o.c.pointer, 0) }
        case .gemvT:
            return measure(s) { recurd_sgemv_t_isa(isa, o.a.pointer, Int32(s.m), Int32(s.k), Int32(s.lda), o.b.pointer, o.c.pointer, 0) }
        case .gemvPacked:
            guard recurd_sgemv_packed_available(isa) != 0, let packed = o.packed else { return 0 }
            return measure(s) { recurd_sgemv_packed_isa(isa, packed.pointer, Int32(s.m), Int32(s.k), o.b.pointer, o.c.pointer, 0) }
        case .gemmPacked:
            guard recurd_sgemm_packed_available(isa) != 0, let packed = o.packed else { return 0 }
            return measure(s) {
                recurd_sgemm_packed_isa(isa, Int32(s.m), Int32(s.n), Int32(s.k), 1, o.a.pointer, Int32(s.lda), packed.pointer, s.beta, o.c.pointer, Int32(s.ldc))
            }
        }
    }

    func blas(_ s: Shape, _ lib: (sgemm: CblasSgemm, sgemv: CblasSgemv, core: String), _ o: Operands) -> Double {
        let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112
        switch s.kind {
        case .gemm, .gemmPacked:
            return measure(s) {
                lib.sgemm(rowMajor, s.ta ? trans : noTrans, s.tb ? trans : noTrans, Int32(s.m), Int32(s.n), Int32(s.k), 1, o.a.pointer, Int32(s.lda),
                          o.b.pointer, Int32(s.ldb), s.beta, o.c.pointer, Int32(s.ldc))
            }
        case .gemv, .gemvPacked:
            return measure(s) { lib.sgemv(rowMajor, noTrans, Int32(s.m), Int32(s.k), 1, o.a.pointer, Int32(s.lda), o.b.pointer, 1, 0, o.c.pointer, 1) }
        case .gemvT:
            return measure(s) { lib.sgemv(rowMajor, trans, Int32(s.m), Int32(s.k), 1, o.a.pointer, Int32(s.lda), o.b.pointer, 1, 0, o.c.pointer, 1) }
        }
    }

    /// OpenBLAS in a child process with `coretype` (nil: unset), as JSON per shape.
    func blasChild(coretype: String?) -> (core: String, gflops: [String: Double])? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        p.arguments = ["bench", "kernels", "--openblas-only", "--repeats", "\(repeats)"]
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        if let coretype { env["OPENBLAS_CORETYPE"] = coretype } else { env.removeValue(forKey: "OPENBLAS_CORETYPE") }
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var core = "?"
        var g: [String: Double] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            if let c = o["openblas_core"] as? String { core = c }
            if let n = o["shape"] as? String, let v = o["gflops"] as? Double { g[n] = v }
        }
        return g.isEmpty ? nil : (core, g)
    }

    static func cpu() -> [String: String] {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String {
            info.split(separator: "\n").first { $0.hasPrefix(name) }.map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "?"
        }
        let flags = Set(field("flags").split(separator: " ").map(String.init))
        let relevant = ["avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512_fp16", "avx512_bf16", "amx_tile"].filter(flags.contains)
        return ["model_name": field("model name"), "family": field("cpu family"), "model": field("model\t"), "flags": relevant.joined(separator: " ")]
    }

    func run() throws {
        if openblasOnly {
            guard let lib = Self.openBLAS() else { return }
            emit(["openblas_core": lib.core])
            for s in Self.shapes { emit(["shape": s.name, "gflops": blas(s, lib, Operands(s))]) }
            return
        }
        let cpu = Self.cpu()
        let isas = [RECURD_ISA_AVX512.rawValue, RECURD_ISA_AVX2.rawValue, RECURD_ISA_PORTABLE.rawValue].filter { recurd_kernels_isa_available($0) != 0 }
        let peaks = [RECURD_ISA_AVX512.rawValue, RECURD_ISA_AVX2.rawValue].map { isa in (0..<5).map { _ in recurd_fma_peak_gflops(isa, 2_000_000) }.max() ?? 0 }
        let peak = peaks.max() ?? 0
        let unset = blasChild(coretype: nil), haswell = blasChild(coretype: "Haswell")
        var rows: [[String: Any]] = []
        for s in Self.shapes {
            let o = Operands(s)
            var row: [String: Any] = ["bench": "kernels", "shape": s.name]
            for isa in isas { row["recurd_\(String(cString: recurd_kernels_isa_name(isa)))_gflops"] = ours(s, isa: isa, o) }
            if let g = unset?.gflops[s.name] { row["openblas_unset_gflops"] = g }
            if let g = haswell?.gflops[s.name] { row["openblas_haswell_gflops"] = g }
            let best = isas.map { row["recurd_\(String(cString: recurd_kernels_isa_name($0)))_gflops"] as! Double }.max() ?? 0
            row["recurd_best_gflops"] = best
            row["percent_of_peak"] = peak > 0 ? 100 * best / peak : 0
            rows.append(row)
        }
        let header: [String: Any] = ["bench": "kernels-machine", "cpu": cpu, "fma_peak_avx512_gflops": peaks[0], "fma_peak_avx2_gflops": peaks[1],
                                     "openblas_core_unset": unset?.core ?? "not installed", "openblas_core_haswell": haswell?.core ?? "not installed",
                                     "recurd_isa": Kernels.instructionSet]
        if !table {
            emit(header)
            for r in rows { emit(r) }
            return
        }
        print("CPU: \(cpu["model_name"]!) (family \(cpu["family"]!), model \(cpu["model"]!)); flags: \(cpu["flags"]!)")
        print(String(format: "FMA peak, one core: %.1f GFLOP/s (AVX-512), %.1f (AVX2)", peaks[0], peaks[1]))
        print("OpenBLAS core: \(unset?.core ?? "not installed") with OPENBLAS_CORETYPE unset, \(haswell?.core ?? "not installed") with Haswell")
        let names = isas.map { String(cString: recurd_kernels_isa_name($0)) }
        print(["shape".padding(toLength: 36, withPad: " ", startingAt: 0)] .joined() + names.map { $0.leftPad(9) }.joined() + "   OB unset  OB Haswell  % peak")
        for r in rows {
            var line = (r["shape"] as! String).padding(toLength: 36, withPad: " ", startingAt: 0)
            for n in names { line += String(format: "%9.1f", r["recurd_\(n)_gflops"] as! Double) }
            line += String(format: "%11.1f%12.1f%8.0f", r["openblas_unset_gflops"] as? Double ?? 0, r["openblas_haswell_gflops"] as? Double ?? 0, r["percent_of_peak"] as! Double)
            print(line)
        }
    }
}
