// AVX-512 implementation (Skylake-SP and later Xeons, Ice/Sapphire/Emerald Rapids, Zen 4/5).
// Compiled with per-function target attributes, so this file builds with any flags and its
// code only runs after dispatch.c has seen avx512f/vl/dq/bw in cpuid.
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

#define ISA_ATTR __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define NAME(x) x##_avx512
#define ISA_NAME_STR "avx512"
#ifndef IMPL_SYMBOL
#define IMPL_SYMBOL recurd_gemm_impl_avx512
#endif

// Register tile 12×32: 24 zmm accumulators + 2 for the B row + spare; per k step 2 vector
// loads and 12 broadcast loads feed 24 FMAs, so the two FMA ports, not the load ports, are
// the limit. 24 independent chains also hide
// the 4-cycle FMA latency (8 needed). NR = 32 keeps a 256-deep packed B panel at 32 KiB,
// inside the 48 KiB L1 of Golden Cove (and Zen 4/5's 32/48 KiB with k ≤ 160 blocks).
#define VL 16
#define MR_MAX 12
#define NR 32
// Tunables, overridable with -D for A/B experiments (tools/ab.sh); the values are the
// measured best on Emerald Rapids with clang and gcc (REPORT.md has the numbers):
//   KC_MAX 256        k block; 384/512 measured equal, 256 keeps the panel in L1.
//   MC_BYTES 1 MiB    rows of A streamed per B panel (A stays in the 2 MiB L2).
//   DOT_MAX_M 16, DOT_MIN_K 64, DOT_ALWAYS_M 4
//                     NT with m ≤ 16 (and k ≥ 64, or m ≤ 4) skips packing: at m = 16 the
//                     16×16-transposing pack of B costs a third of the product; at k = 32
//                     the per-tile reduction of the dot path costs more than the pack.
//   TNT_MAX_M 64      other NT products with m ≤ 64 pack Aᵀ instead of B (tnt below):
//                     +6–20 % at m = 32–64, +45 % at m = 16, k = 32; equal at m = 128.
//   PACK_NN_MIN_M 64  NN/TN copy B panels only for taller A (m = 32: +18 % without).
//   DOT_PREFETCH 1    prefetch the next dot tile's B rows (+3–4 % for 4-row tiles).
//   AT_PREFETCH 8     with A transposed (TN weight gradients) each k step of a tile reads a
//                     new line lda floats further; at lda = 512 (2 KiB) those lines share
//                     two L1 sets and evict each other, so fetch 8 steps ahead: +10 % at
//                     512×128×256 TN (4 equal, 16 worse).
#ifndef KC_MAX
#define KC_MAX 256
#endif
#ifndef MC_BYTES
#define MC_BYTES (1 << 20)
#endif
#ifndef DOT_MAX_M
#define DOT_MAX_M 16
#endif
#ifndef DOT_ALWAYS_M
#define DOT_ALWAYS_M 4
#endif
#ifndef DOT_MIN_K
#define DOT_MIN_K 64
#endif
#ifndef PACK_NN_MIN_M
#define PACK_NN_MIN_M 64
#endif
#ifndef DOT_PREFETCH
#define DOT_PREFETCH 1
#endif
#ifndef TNT_MAX_M
#define TNT_MAX_M 64
#endif
#ifndef AT_PREFETCH
#define AT_PREFETCH 8
#endif

INLINE ISA_ATTR __mmask16 mask_first(int w) {
    return w >= 16 ? (__mmask16)0xFFFF : w <= 0 ? (__mmask16)0 : (__mmask16)((1u << w) - 1u);
}

// ---- GEMM micro-kernel ---------------------------------------------------------------------

/// One MRc×(NVc·16) tile; MRc, NVc and AT are compile-time constants at every call site, so
/// the accumulator arrays become registers and the loops unroll completely.
INLINE ISA_ATTR void uk_tile(const int MRc, const int NVc, const int AT, int kc,
                             const float *restrict a, long lda, const float *restrict b, long ldbp,
                             float *restrict c, long ldc, float alpha, float beta, int nr) {
    __m512 acc0[MR_MAX], acc1[MR_MAX];
#pragma GCC unroll 16
    for (int i = 0; i < MRc; i++) {
        acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps();
    }
    if (AT) {
        // A stored transposed: the MRc values of one k are contiguous.
        for (int p = 0; p < kc; p++) {
            if (AT_PREFETCH) _mm_prefetch((const char *)(a + AT_PREFETCH * lda), _MM_HINT_T0);
            const __m512 b0 = _mm512_loadu_ps(b);
            const __m512 b1 = NVc > 1 ? _mm512_loadu_ps(b + 16) : b0;
#pragma GCC unroll 16
            for (int i = 0; i < MRc; i++) {
                const __m512 ai = _mm512_set1_ps(a[i]);
                acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
                if (NVc > 1) acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
            }
            a += lda;
            b += ldbp;
        }
    } else {
        // A row-major: MRc row streams, each read sequentially.
        const float *ar[MR_MAX];
#pragma GCC unroll 16
        for (int i = 0; i < MRc; i++) ar[i] = a + i * lda;
        for (int p = 0; p < kc; p++) {
            const __m512 b0 = _mm512_loadu_ps(b);
            const __m512 b1 = NVc > 1 ? _mm512_loadu_ps(b + 16) : b0;
#pragma GCC unroll 16
            for (int i = 0; i < MRc; i++) {
                const __m512 ai = _mm512_set1_ps(ar[i][p]);
                acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
                if (NVc > 1) acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
            }
            b += ldbp;
        }
    }
    // C update once per tile: masked on the last vector so partial panels need no scalar tail;
    // beta == 0 never loads C.
    const __mmask16 m0 = NVc > 1 ? (__mmask16)0xFFFF : mask_first(nr);
    const __mmask16 m1 = mask_first(nr - 16);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MRc; i++) {
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(acc0[i], va);
        if (beta != 0.0f) r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
        _mm512_mask_storeu_ps(ci, m0, r0);
        if (NVc > 1) {
            __m512 r1 = _mm512_mul_ps(acc1[i], va);
            if (beta != 0.0f) r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
            _mm512_mask_storeu_ps(ci + 16, m1, r1);
        }
    }
}

ISA_ATTR static void NAME(ukernel)(int mr, int nr, int at, int kc, const float *a, long lda,
                                   const float *b, long ldbp, float *c, long ldc, float alpha, float beta) {
    const int wide = nr > 16;
#define UK_CASE(R) \
    case R: \
        if (at) { if (wide) uk_tile(R, 2, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); \
                  else uk_tile(R, 1, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); } \
        else    { if (wide) uk_tile(R, 2, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); \
                  else uk_tile(R, 1, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); } \
        break;
    switch (mr) {
        UK_CASE(1) UK_CASE(2) UK_CASE(3) UK_CASE(4) UK_CASE(5) UK_CASE(6)
        UK_CASE(7) UK_CASE(8) UK_CASE(9) UK_CASE(10) UK_CASE(11) UK_CASE(12)
    }
#undef UK_CASE
}

// ---- Packing ---------------------------------------------------------------------------------

/// In-register 16×16 transpose: four rounds of 16 two-source shuffles (64 shuffles per 256
/// floats, ≈0.25 cycle per element on the shuffle port), versus ≈1 cycle per element for
/// scalar strided copies; it is what makes packing a transposed B cheap enough for m ≈ 16–256.
INLINE ISA_ATTR void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    for (int h = 0; h < 16; h += 8)
        for (int q = 0; q < 4; q++) {
            t[h + q] = _mm512_shuffle_f32x4(r[h + q], r[h + q + 4], 0x88);
            t[h + q + 4] = _mm512_shuffle_f32x4(r[h + q], r[h + q + 4], 0xdd);
        }
    for (int q = 0; q < 8; q++) {
        r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
        r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xdd);
    }
}

ISA_ATTR static void NAME(pack_bt)(int kc, int nr, const float *b, long ldb, float *buf) {
    for (int j0 = 0; j0 < NR; j0 += 16) {
        const int rows = nr - j0;
        float *dst = buf + j0;
        if (rows <= 0) {
            for (int p = 0; p < kc; p++) _mm512_store_ps(dst + p * NR, _mm512_setzero_ps());
            continue;
        }
        for (int p = 0; p < kc; p += 16) {
            const int w = kc - p < 16 ? kc - p : 16;
            const __mmask16 mk = mask_first(w);
            __m512 r[16];
#pragma GCC unroll 16
            for (int jj = 0; jj < 16; jj++)
                r[jj] = jj < rows ? _mm512_maskz_loadu_ps(mk, b + (j0 + jj) * ldb + p) : _mm512_setzero_ps();
            transpose16(r);
            if (w == 16) {
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) _mm512_store_ps(dst + (p + q) * NR, r[q]);
            } else {
                for (int q = 0; q < w; q++) _mm512_store_ps(dst + (p + q) * NR, r[q]);
            }
        }
    }
}

ISA_ATTR static void NAME(pack_bn)(int kc, int nr, const float *b, long ldb, float *buf) {
    const __mmask16 m0 = mask_first(nr), m1 = mask_first(nr - 16);
    for (int p = 0; p < kc; p++) {
        _mm512_store_ps(buf + p * NR, _mm512_maskz_loadu_ps(m0, b + p * ldb));
        _mm512_store_ps(buf + p * NR + 16, _mm512_maskz_loadu_ps(m1, b + p * ldb + 16));
    }
}

// ---- Dot-product path (NT with few rows; sgemv) ----------------------------------------------

/// r[q] = horizontal sum of v[q], q = 0…15: 15 pairwise combine steps (30 shuffles, 15 adds)
/// instead of 16 independent reductions (≈128 operations).
INLINE ISA_ATTR __m512 reduce16(const __m512 v[16]) {
    __m512 s1[8], s2[4], s3[2];
    // Halve the width repeatedly while doubling the number of vectors packed per register.
    for (int i = 0; i < 8; i++)   // 256-bit halves: [v2i lo+hi, v2i+1 lo+hi]
        s1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                              _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
    for (int i = 0; i < 4; i++)   // 128-bit blocks: one per source vector
        s2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0x88),
                              _mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++)
        s3[i] = _mm512_add_ps(_mm512_unpacklo_ps(s2[2 * i], s2[2 * i + 1]), _mm512_unpackhi_ps(s2[2 * i], s2[2 * i + 1]));
    __m512 r = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(s3[0]), _mm512_castps_pd(s3[1]))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(s3[0]), _mm512_castps_pd(s3[1]))));
    // The rounds above leave lane l holding source REDUCE16_SRC[l]; put it back in order.
    const __m512i perm = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    return _mm512_permutexvar_ps(perm, r);
}

/// An MRd×(16/MRd) block of C (MRd = 2 or 4) from dot products along k: MRd rows of A and
/// 16/MRd rows of B are loaded once per 16 k-values and combined in 16 FMAs (10 or 8 loads
/// per 16 FMAs). Rows beyond mrows/nrows read row 0 again and are discarded at the store.
INLINE ISA_ATTR void dot_tile(const int MRd, int k, const float *a, long lda, int mrows,
                              const float *b, long ldb, int nrows, float *c, long ldc, float alpha, float beta) {
    const int NJ = 16 / MRd;
    const float *ap[4], *bp[8];
#pragma GCC unroll 16
    for (int i = 0; i < MRd; i++) ap[i] = a + (i < mrows ? i : 0) * lda;
#pragma GCC unroll 16
    for (int j = 0; j < NJ; j++) bp[j] = b + (j < nrows ? j : 0) * ldb;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
    int p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 av[4];
#pragma GCC unroll 16
        for (int i = 0; i < MRd; i++) av[i] = _mm512_loadu_ps(ap[i] + p);
#pragma GCC unroll 16
        for (int j = 0; j < NJ; j++) {
            const __m512 bv = _mm512_loadu_ps(bp[j] + p);
            // The same line of the next tile's rows, which stream from L2: +3–4 % with 4 rows
            // of A; with fewer the extra pointers cost more registers than the prefetch saves.
            if (DOT_PREFETCH && MRd >= 4) _mm_prefetch((const char *)(bp[j] + NJ * ldb + p), _MM_HINT_T0);
#pragma GCC unroll 16
            for (int i = 0; i < MRd; i++) acc[i * NJ + j] = _mm512_fmadd_ps(av[i], bv, acc[i * NJ + j]);
        }
    }
    if (p < k) {
        const __mmask16 mk = mask_first(k - p);
        __m512 av[4];
#pragma GCC unroll 16
        for (int i = 0; i < MRd; i++) av[i] = _mm512_maskz_loadu_ps(mk, ap[i] + p);
#pragma GCC unroll 16
        for (int j = 0; j < NJ; j++) {
            const __m512 bv = _mm512_maskz_loadu_ps(mk, bp[j] + p);
#pragma GCC unroll 16
            for (int i = 0; i < MRd; i++) acc[i * NJ + j] = _mm512_fmadd_ps(av[i], bv, acc[i * NJ + j]);
        }
    }
    __m512 r = _mm512_mul_ps(reduce16(acc), _mm512_set1_ps(alpha));
    // Row i of the block is one 256-bit (MRd = 2) or 128-bit (MRd = 4) slice of r.
    const __mmask8 m = (__mmask8)mask_first(nrows);
    if (MRd == 2) {
        for (int i = 0; i < mrows; i++) {
            __m256 ri = i == 0 ? _mm512_castps512_ps256(r) : _mm512_extractf32x8_ps(r, 1);
            if (beta != 0.0f) ri = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskz_loadu_ps(m, c + i * ldc), ri);
            _mm256_mask_storeu_ps(c + i * ldc, m, ri);
        }
    } else {
        const __m128 parts[4] = { _mm512_castps512_ps128(r), _mm512_extractf32x4_ps(r, 1),
                                  _mm512_extractf32x4_ps(r, 2), _mm512_extractf32x4_ps(r, 3) };
        for (int i = 0; i < mrows; i++) {
            __m128 ri = parts[i];
            if (beta != 0.0f) ri = _mm_fmadd_ps(_mm_set1_ps(beta), _mm_maskz_loadu_ps(m, c + i * ldc), ri);
            _mm_mask_storeu_ps(c + i * ldc, m, ri);
        }
    }
}

/// One row of A against 8 rows of B (sgemv): two accumulators per row (even and odd
/// 16-float chunks of k) give 16 independent chains from only 8 B streams; fewer concurrent
/// streams than a 16-row tile keep the L1 fill buffers and the L2 prefetcher ahead.
INLINE ISA_ATTR void dot_row8(int k, const float *a, const float *b, long ldb, int nrows,
                              float *c, float alpha, float beta) {
    const float *bp[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) bp[j] = b + (j < nrows ? j : 0) * ldb;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
    int p = 0;
    for (; p + 32 <= k; p += 32) {
        const __m512 a0 = _mm512_loadu_ps(a + p), a1 = _mm512_loadu_ps(a + p + 16);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            acc[j] = _mm512_fmadd_ps(a0, _mm512_loadu_ps(bp[j] + p), acc[j]);
            acc[j + 8] = _mm512_fmadd_ps(a1, _mm512_loadu_ps(bp[j] + p + 16), acc[j + 8]);
        }
    }
    for (; p < k; p += 16) {
        const __mmask16 mk = mask_first(k - p);
        const __m512 a0 = _mm512_maskz_loadu_ps(mk, a + p);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[j] = _mm512_fmadd_ps(a0, _mm512_maskz_loadu_ps(mk, bp[j] + p), acc[j]);
    }
    const __m512 r16 = reduce16(acc);   // lanes j and j + 8 hold the two halves of row j
    __m256 r = _mm256_add_ps(_mm512_castps512_ps256(r16), _mm512_extractf32x8_ps(r16, 1));
    r = _mm256_mul_ps(r, _mm256_set1_ps(alpha));
    const __mmask8 m = (__mmask8)mask_first(nrows);
    if (beta != 0.0f) r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskz_loadu_ps(m, c), r);
    _mm256_mask_storeu_ps(c, m, r);
}

/// Rows of A in groups of 4 (4×4 blocks: A and B loads balanced, 3 rows padded to 4); a pair
/// of rows uses 2×8 blocks, a single row (sgemv) dot_row8.
ISA_ATTR static void NAME(dot_nt)(int m, int n, int k, float alpha, const float *a, long lda,
                                  const float *b, long ldb, float beta, float *c, long ldc) {
    for (int i = 0; i < m;) {
        const int rem = m - i;
        const float *ai = a + i * lda;
        if (rem == 1) {
            for (int j = 0; j < n; j += 8)
                dot_row8(k, ai, b + j * ldb, ldb, n - j < 8 ? n - j : 8, c + i * ldc + j, alpha, beta);
            i += 1;
        } else if (rem == 2) {
            for (int j = 0; j < n; j += 8)
                dot_tile(2, k, ai, lda, 2, b + j * ldb, ldb, n - j < 8 ? n - j : 8, c + i * ldc + j, ldc, alpha, beta);
            i += 2;
        } else {
            const int mrows = rem < 4 ? rem : 4;
            for (int j = 0; j < n; j += 4)
                dot_tile(4, k, ai, lda, mrows, b + j * ldb, ldb, n - j < 4 ? n - j : 4, c + i * ldc + j, ldc, alpha, beta);
            i += mrows;
        }
    }
}

// ---- Transposed-tile path (NT with a few dozen rows) -----------------------------------------

/// C = A·Wᵀ computed as its transpose: Aᵀ (32 rows of A, packed k-major: cheap, m·k floats)
/// is the vector operand and W is broadcast straight from its rows, so the large operand is
/// never packed; the register tile holds Cᵀ and is turned around with the same 16×16
/// transpose at the store (0.25–0.33 shuffle per C entry instead of 0.25 per B entry).
/// Tile: NV vectors of 16 rows of C × NJ columns (2×12 or 1×16 accumulators).
INLINE ISA_ATTR void tnt_tile(const int NV, const int NJ, int kc, const float *restrict at,
                              const float *restrict w, long ldw, int nj, int mrows,
                              float *restrict c, long ldc, float alpha, float beta) {
    const float *wr[16];
#pragma GCC unroll 16
    for (int j = 0; j < NJ; j++) wr[j] = w + (j < nj ? j : 0) * ldw;
    __m512 acc0[16], acc1[16];
#pragma GCC unroll 16
    for (int j = 0; j < NJ; j++) { acc0[j] = _mm512_setzero_ps(); acc1[j] = _mm512_setzero_ps(); }
    for (int p = 0; p < kc; p++) {
        const __m512 a0 = _mm512_load_ps(at + p * NR);
        const __m512 a1 = NV > 1 ? _mm512_load_ps(at + p * NR + 16) : a0;
#pragma GCC unroll 16
        for (int j = 0; j < NJ; j++) {
            const __m512 wj = _mm512_set1_ps(wr[j][p]);
            acc0[j] = _mm512_fmadd_ps(a0, wj, acc0[j]);
            if (NV > 1) acc1[j] = _mm512_fmadd_ps(a1, wj, acc1[j]);
        }
    }
    const __mmask16 m = mask_first(nj);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int v = 0; v < NV; v++) {
        __m512 r[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) r[j] = j < NJ ? (v ? acc1[j] : acc0[j]) : _mm512_setzero_ps();
        transpose16(r);   // r[q] = row 16·v + q of the C tile
        const int rows = mrows - 16 * v < 16 ? mrows - 16 * v : 16;
        for (int q = 0; q < rows; q++) {
            float *ci = c + (16 * v + q) * ldc;
            __m512 x = _mm512_mul_ps(r[q], va);
            if (beta != 0.0f) x = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, ci), x);
            _mm512_mask_storeu_ps(ci, m, x);
        }
    }
}

#define HAVE_TNT 1
ISA_ATTR static void NAME(tnt)(int m, int n, int k, float alpha, const float *a, long lda,
                               const float *b, long ldb, float beta, float *c, long ldc) {
    float at[KC_MAX * NR] __attribute__((aligned(64)));
    for (int pc = 0; pc < k; pc += KC_MAX) {
        const int kc = k - pc < KC_MAX ? k - pc : KC_MAX;
        const float beta_k = pc == 0 ? beta : 1.0f;
        for (int i0 = 0; i0 < m; i0 += 32) {
            const int mt = m - i0 < 32 ? m - i0 : 32;
            NAME(pack_bt)(kc, mt, a + (long)i0 * lda + pc, lda, at);   // Aᵀ, zero-padded to 32
            float *ci = c + (long)i0 * ldc;
            const float *bk = b + pc;
            if (mt > 16) {
                for (int j = 0; j < n; j += 12)
                    tnt_tile(2, 12, kc, at, bk + (long)j * ldb, ldb, n - j < 12 ? n - j : 12, mt, ci + j, ldc, alpha, beta_k);
            } else {
                for (int j = 0; j < n; j += 16)
                    tnt_tile(1, 16, kc, at, bk + (long)j * ldb, ldb, n - j < 16 ? n - j : 16, mt, ci + j, ldc, alpha, beta_k);
            }
        }
    }
}

// ---- Vector × matrix (NN with one row; sgemv_t) ----------------------------------------------

/// y[0 … 16·NB) (last vector masked) = alpha·Σ_p x_p·B_p + beta·y. Two accumulator sets (even
/// and odd p) give 2·NB independent FMA chains, enough to cover latency for NB ≥ 4.
INLINE ISA_ATTR void vecmat_block(const int NB, int k, const float *x, long incx, const float *b, long ldb,
                                  __mmask16 mlast, float alpha, float beta, float *y) {
    __m512 acc0[8], acc1[8];
#pragma GCC unroll 8
    for (int v = 0; v < NB; v++) { acc0[v] = _mm512_setzero_ps(); acc1[v] = _mm512_setzero_ps(); }
    int p = 0;
    for (; p + 2 <= k; p += 2) {
        const __m512 x0 = _mm512_set1_ps(x[p * incx]), x1 = _mm512_set1_ps(x[(p + 1) * incx]);
        const float *b0 = b + p * ldb, *b1 = b0 + ldb;
#pragma GCC unroll 8
        for (int v = 0; v < NB; v++) {
            const __mmask16 mv = v == NB - 1 ? mlast : (__mmask16)0xFFFF;
            acc0[v] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(mv, b0 + 16 * v), acc0[v]);
            acc1[v] = _mm512_fmadd_ps(x1, _mm512_maskz_loadu_ps(mv, b1 + 16 * v), acc1[v]);
        }
    }
    if (p < k) {
        const __m512 x0 = _mm512_set1_ps(x[p * incx]);
        const float *b0 = b + p * ldb;
#pragma GCC unroll 8
        for (int v = 0; v < NB; v++) {
            const __mmask16 mv = v == NB - 1 ? mlast : (__mmask16)0xFFFF;
            acc0[v] = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(mv, b0 + 16 * v), acc0[v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int v = 0; v < NB; v++) {
        const __mmask16 mv = v == NB - 1 ? mlast : (__mmask16)0xFFFF;
        __m512 r = _mm512_mul_ps(_mm512_add_ps(acc0[v], acc1[v]), va);
        if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mv, y + 16 * v), r);
        _mm512_mask_storeu_ps(y + 16 * v, mv, r);
    }
}

ISA_ATTR static void NAME(vecmat)(int n, int k, float alpha, const float *x, long incx,
                                  const float *b, long ldb, float beta, float *y) {
    for (int j = 0; j < n; j += 128) {
        const int w = n - j < 128 ? n - j : 128;
        const int nb = (w + 15) / 16;
        const __mmask16 ml = mask_first(w - 16 * (nb - 1));
        switch (nb) {
#define VM_CASE(B) case B: vecmat_block(B, k, x, incx, b + j, ldb, ml, alpha, beta, y + j); break;
            VM_CASE(1) VM_CASE(2) VM_CASE(3) VM_CASE(4) VM_CASE(5) VM_CASE(6) VM_CASE(7) VM_CASE(8)
#undef VM_CASE
        }
    }
}

#include "gemm_driver.h"

#else
typedef int recurd_gemm_avx512_unused;   // ISO C forbids an empty translation unit
#endif
