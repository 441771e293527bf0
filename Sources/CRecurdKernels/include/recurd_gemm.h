// recurd's own dense float32 products: a cblas_sgemm replacement plus the single-stream
// matrix–vector products of the recurrent cells. Single-threaded (recurd brings its own
// threads), row-major, no allocation, no global scratch: every function is reentrant.
//
// Three implementations ("ISAs") share one blocking driver:
//   RECURD_ISA_PORTABLE  plain C written so that compilers auto-vectorise it (any CPU; NEON on
//                        arm64, SSE/AVX on x86 depending on the flags the file is built with);
//   RECURD_ISA_AVX2      AVX2 + FMA intrinsics (Haswell, Zen 1–3 and later);
//   RECURD_ISA_AVX512    AVX-512F/VL/DQ/BW intrinsics (Skylake-SP … Emerald Rapids, Zen 4/5).
// The x86 variants are compiled with per-function target attributes, so one compile with any
// flags (even none) yields all three; on other architectures only the portable one exists.
// The best available ISA is chosen from cpuid on first use; tests can force another.
//
// Inside one ISA, recurd_sgemm picks a path per call from the shape (see gemm_driver.h):
//   NT, m ≤ 16 (AVX-512; k ≥ 64 unless m ≤ 4)  dot products of A rows with B rows, no packing;
//   NT, m ≤ 64 (AVX-512) / 128 (AVX2)          pack Aᵀ (small), broadcast B from its rows;
//   NN/TN with m = 1                           vector × matrix, B streamed in place;
//   everything else                            pack B in NR-wide panels (on the stack), A read
//                                              in place, MR×NR register tiles.
// Resource use: under 40 KiB of stack per call (a 32 KiB packing buffer), no heap, no
// thread-local or global scratch.
// Speed notes: keep rows 64-byte aligned (row strides a multiple of 16 floats and 64-byte
// aligned bases, as recurd's FloatBuffer does): misaligned rows split every vector load and
// cost up to 2× on sgemv. Results agree with a double-precision reference to the usual
// k·ε bound; different ISAs and paths sum in different orders, so they are not bit-identical.
#ifndef RECURD_GEMM_H
#define RECURD_GEMM_H

#ifdef __cplusplus
extern "C" {
#endif

enum recurd_isa {
    RECURD_ISA_AUTO = -1,    ///< best the CPU supports (the default)
    RECURD_ISA_PORTABLE = 0,
    RECURD_ISA_AVX2 = 1,
    RECURD_ISA_AVX512 = 2,
};

/// C (m×n) = alpha · op(A) · op(B) + beta · C, exactly cblas_sgemm(CblasRowMajor, …):
/// op(A) is m×k, stored m×k (lda ≥ k) or, when `transA`, k×m (lda ≥ m) and used transposed;
/// op(B) is k×n, stored k×n (ldb ≥ n) or, when `transB`, n×k (ldb ≥ k). C is m×n, ldc ≥ n.
/// When beta == 0 the previous contents of C are never read (NaN/Inf in C do not propagate);
/// when k == 0 or alpha == 0 C becomes beta·C (zeros when beta == 0).
void recurd_sgemm(int transA, int transB, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb,
                  float beta, float *c, int ldc);

/// y (rows) = W · x, or y += W · x when `accumulate`. W is rows×cols, row stride ldw ≥ cols.
/// Tuned for one stream with W resident in L2: 16 rows (AVX-512) share each load of x and are
/// reduced together at the end, so the loop is bound by streaming W.
void recurd_sgemv(const float *w, int rows, int cols, int ldw, const float *x, float *y, int accumulate);

/// y (cols) = Wᵀ · d, or y += Wᵀ · d when `accumulate`. W is rows×cols, row stride ldw ≥ cols;
/// d has `rows` entries. Keeps up to 128 (AVX-512) entries of y in registers while W streams by.
void recurd_sgemv_t(const float *w, int rows, int cols, int ldw, const float *d, float *y, int accumulate);

/// Same as the three above with an explicit ISA (RECURD_ISA_AUTO for the current choice);
/// for tests and benchmarks that compare variants without touching the global choice. An ISA
/// the CPU lacks falls back to the best available one.
void recurd_sgemm_isa(int isa, int transA, int transB, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb,
                      float beta, float *c, int ldc);
void recurd_sgemv_isa(int isa, const float *w, int rows, int cols, int ldw, const float *x, float *y, int accumulate);
void recurd_sgemv_t_isa(int isa, const float *w, int rows, int cols, int ldw, const float *d, float *y, int accumulate);

/// A copy of W for recurd_sgemv_packed, made once per weight version: tiles of 8 rows, each
/// tile a run of 8×8 blocks (block p holds columns 8p…8p+7 of the tile's rows, row after
/// row), zero-padded to whole tiles and blocks. One stream's step then reads W sequentially.
/// The layout is the same for every ISA. `recurd_sgemv_packed_size` floats (a multiple of 64).
long recurd_sgemv_packed_size(int rows, int cols);
void recurd_sgemv_pack(const float *w, int rows, int cols, int ldw, float *packed);

/// y (rows) = W · x, or y += W · x when `accumulate`, from W's packed copy; equal bit for bit
/// to recurd_sgemv on the unpacked W with the same ISA where recurd_sgemv_packed_available says
/// so (today AVX2 and portable); elsewhere (AVX-512) the portable kernel computes it, slower and
/// with the portable sgemv's bits.
void recurd_sgemv_packed(const float *packed, int rows, int cols, const float *x, float *y, int accumulate);
void recurd_sgemv_packed_isa(int isa, const float *packed, int rows, int cols, const float *x, float *y, int accumulate);
int recurd_sgemv_packed_available(int isa);

/// A copy of W (n rows of k, row stride ldw ≥ k) for recurd_sgemm_packed, made once per weight
/// version: W's rows become the columns of 16-wide panels, k in blocks of 256, zero-padded to
/// whole panels. The layout is the same for every ISA. `recurd_sgemm_packed_size` floats.
long recurd_sgemm_packed_size(int n, int k);
void recurd_sgemm_pack(const float *w, int n, int k, int ldw, float *packed);

/// C (m×n) = alpha · A · Wᵀ + beta · C from W's packed copy (A m×k, lda ≥ k); for a batch of
/// streams against weights that stay, without recurd_sgemm's copy of W at every call. Equal bit
/// for bit to recurd_sgemm(0, 1, …) with the same ISA wherever that packs W itself (more than
/// a few dozen rows), and for every m to the same arithmetic, where recurd_sgemm_packed_available
/// says so (today AVX2 and portable); elsewhere (AVX-512, whose tile is wider) the portable
/// kernel computes it, slower and with its bits.
void recurd_sgemm_packed(int m, int n, int k, float alpha, const float *a, int lda,
                         const float *packed, float beta, float *c, int ldc);
void recurd_sgemm_packed_isa(int isa, int m, int n, int k, float alpha, const float *a, int lda,
                             const float *packed, float beta, float *c, int ldc);
int recurd_sgemm_packed_available(int isa);

/// Forces `isa` (or RECURD_ISA_AUTO) for all later calls; returns 1 if it is available on this
/// CPU and now in use, 0 otherwise (the choice is then unchanged). Each call reads the choice
/// once, atomically, so a concurrent switch never mixes two variants inside one product.
int recurd_kernels_set_isa(int isa);

/// Forces `isa` for the calling thread only (RECURD_ISA_AUTO: back to the process-wide choice);
/// returns 1 if it is available. Tests run every variant this way while other threads go on.
/// The cell kernels (recurd_kernels.h) follow the same choice.
int recurd_kernels_set_thread_isa(int isa);

/// The ISA now in use on this thread (never RECURD_ISA_AUTO).
int recurd_kernels_isa(void);

/// Whether the CPU (and this build) supports `isa`.
int recurd_kernels_isa_available(int isa);

/// "portable", "avx2", "avx512" (or "?").
const char *recurd_kernels_isa_name(int isa);

/// The single-core fp32 multiply-add peak in GFLOP/s measured with `isa`'s widest FMA over
/// `iterations` rounds of independent chains (0 when the CPU lacks it); for benchmark reports.
double recurd_fma_peak_gflops(int isa, long iterations);

#ifdef __cplusplus
}
#endif
#endif
