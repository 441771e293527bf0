// AVX2 + FMA implementation (Haswell and later, Zen 1 and later): 16 ymm registers.
// Compiled with per-function target attributes, so this file builds with any flags and its
// code only runs after dispatch.c has seen avx2 and fma in cpuid.
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

#define ISA_ATTR __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define NAME(x) x##_avx2
#define ISA_NAME_STR "avx2"
#ifndef IMPL_SYMBOL
#define IMPL_SYMBOL recurd_gemm_impl_avx2
#endif

// Register tile 6×16 (the BLIS Haswell shape): 12 ymm accumulators + 2 B vectors + 1
// broadcast = 15 of 16 registers; per k step 2 loads + 6 broadcasts feed 12 FMAs, and 12
// chains cover the 5-cycle × 2-port FMA latency of Haswell/Skylake (10 needed).
#define VL 8
#define MR_MAX 6
#define NR 16
// Tunables (-D for tools/ab.sh; measured on Emerald Rapids running this AVX2 code):
//   DOT_MAX_M 4       NT with m ≤ 4 uses unpacked dot products (m = 8: 0.8× of the alternatives).
//   TNT_MAX_M 128     other NT with m ≤ 128 pack Aᵀ instead of B: +57 % at m = 8, +35 % at
//                     16, +18 % at 32, +8 % at 64, +4 % at 128; equal at 256 (head: 0.8×).
//   PACK_NN_MIN_M 64  NN/TN copy B panels only for taller A (m = 32: +10 % without).
#ifndef KC_MAX
#define KC_MAX 256
#endif
#ifndef MC_BYTES
#define MC_BYTES (512 << 10)
#endif
#ifndef DOT_MAX_M
#define DOT_MAX_M 4
#endif
#ifndef DOT_ALWAYS_M
#define DOT_ALWAYS_M 4
#endif
#ifndef DOT_MIN_K
#define DOT_MIN_K 0
#endif
#ifndef PACK_NN_MIN_M
#define PACK_NN_MIN_M 64
#endif
#ifndef TNT_MAX_M
#define TNT_MAX_M 128
#endif

INLINE ISA_ATTR __m256i mask_first(int w) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// ---- GEMM micro-kernel ---------------------------------------------------------------------

INLINE ISA_ATTR void uk_tile(const int MRc, const int NVc, const int AT, int kc,
                             const float *restrict a, long lda, const float *restrict b, long ldbp,
                             float *restrict c, long ldc, float alpha, float beta, int nr) {
    __m256 acc0[MR_MAX], acc1[MR_MAX];
#pragma GCC unroll 8
    for (int i = 0; i < MRc; i++) { acc0[i] = _mm256_setzero_ps(); acc1[i] = _mm256_setzero_ps(); }
    if (AT) {
        for (int p = 0; p < kc; p++) {
            const __m256 b0 = _mm256_loadu_ps(b);
            const __m256 b1 = NVc > 1 ? _mm256_loadu_ps(b + 8) : b0;
#pragma GCC unroll 8
            for (int i = 0; i < MRc; i++) {
                const __m256 ai = _mm256_broadcast_ss(a + i);
                acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
                if (NVc > 1) acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
            }
            a += lda;
            b += ldbp;
        }
    } else {
        const float *ar[MR_MAX];
#pragma GCC unroll 8
        for (int i = 0; i < MRc; i++) ar[i] = a + i * lda;
        for (int p = 0; p < kc; p++) {
            const __m256 b0 = _mm256_loadu_ps(b);
            const __m256 b1 = NVc > 1 ? _mm256_loadu_ps(b + 8) : b0;
#pragma GCC unroll 8
            for (int i = 0; i < MRc; i++) {
                const __m256 ai = _mm256_broadcast_ss(ar[i] + p);
                acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
                if (NVc > 1) acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
            }
            b += ldbp;
        }
    }
    const int full = nr >= 8 * NVc;
    const __m256i m0 = NVc > 1 ? _mm256_set1_epi32(-1) : mask_first(nr);
    const __m256i m1 = mask_first(nr - 8);
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MRc; i++) {
        float *ci = c + i * ldc;
        __m256 r0 = _mm256_mul_ps(acc0[i], va);
        __m256 r1 = _mm256_mul_ps(acc1[i], va);
        if (full) {   // unmasked: vmaskmov costs extra uops on Intel
            if (beta != 0.0f) r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
            _mm256_storeu_ps(ci, r0);
            if (NVc > 1) {
                if (beta != 0.0f) r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
                _mm256_storeu_ps(ci + 8, r1);
            }
        } else {
            if (beta != 0.0f) r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, m0), r0);
            _mm256_maskstore_ps(ci, m0, r0);
            if (NVc > 1) {
                if (beta != 0.0f) r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, m1), r1);
                _mm256_maskstore_ps(ci + 8, m1, r1);
            }
        }
    }
}

ISA_ATTR static void NAME(ukernel)(int mr, int nr, int at, int kc, const float *a, long lda,
                                   const float *b, long ldbp, float *c, long ldc, float alpha, float beta) {
    const int wide = nr > 8;
#define UK_CASE(R) \
    case R: \
        if (at) { if (wide) uk_tile(R, 2, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); \
                  else uk_tile(R, 1, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); } \
        else    { if (wide) uk_tile(R, 2, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); \
                  else uk_tile(R, 1, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); } \
        break;
    switch (mr) { UK_CASE(1) UK_CASE(2) UK_CASE(3) UK_CASE(4) UK_CASE(5) UK_CASE(6) }
#undef UK_CASE
}

// ---- Packing ---------------------------------------------------------------------------------

/// In-register 8×8 transpose (24 shuffles per 64 floats).
INLINE ISA_ATTR void transpose8(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) { t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]); t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); }
    for (int i = 0; i < 8; i += 4) {
        s[i + 0] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(s[q], s[q + 4], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(s[q], s[q + 4], 0x31);
    }
}

ISA_ATTR static void NAME(pack_bt)(int kc, int nr, const float *b, long ldb, float *buf) {
    for (int j0 = 0; j0 < NR; j0 += 8) {
        const int rows = nr - j0;
        float *dst = buf + j0;
        if (rows <= 0) {
            for (int p = 0; p < kc; p++) _mm256_store_ps(dst + p * NR, _mm256_setzero_ps());
            continue;
        }
        for (int p = 0; p < kc; p += 8) {
            const int w = kc - p < 8 ? kc - p : 8;
            __m256 r[8];
            if (w == 8) {
#pragma GCC unroll 8
                for (int jj = 0; jj < 8; jj++) r[jj] = jj < rows ? _mm256_loadu_ps(b + (j0 + jj) * ldb + p) : _mm256_setzero_ps();
            } else {
                const __m256i mk = mask_first(w);
#pragma GCC unroll 8
                for (int jj = 0; jj < 8; jj++) r[jj] = jj < rows ? _mm256_maskload_ps(b + (j0 + jj) * ldb + p, mk) : _mm256_setzero_ps();
            }
            transpose8(r);
            for (int q = 0; q < w; q++) _mm256_store_ps(dst + (p + q) * NR, r[q]);
        }
    }
}

ISA_ATTR static void NAME(pack_bn)(int kc, int nr, const float *b, long ldb, float *buf) {
    if (nr == NR) {
        for (int p = 0; p < kc; p++) {
            _mm256_store_ps(buf + p * NR, _mm256_loadu_ps(b + p * ldb));
            _mm256_store_ps(buf + p * NR + 8, _mm256_loadu_ps(b + p * ldb + 8));
        }
        return;
    }
    const __m256i m0 = mask_first(nr), m1 = mask_first(nr - 8);
    for (int p = 0; p < kc; p++) {
        _mm256_store_ps(buf + p * NR, _mm256_maskload_ps(b + p * ldb, m0));
        _mm256_store_ps(buf + p * NR + 8, _mm256_maskload_ps(b + p * ldb + 8, m1));
    }
}

// ---- Dot-product path (NT with few rows; sgemv) ----------------------------------------------

/// r[q] = horizontal sum of v[q], q = 0…7 (6 hadds, 2 lane permutes, 1 add).
INLINE ISA_ATTR __m256 reduce8(const __m256 v[8]) {
    const __m256 h01 = _mm256_hadd_ps(v[0], v[1]), h23 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 h45 = _mm256_hadd_ps(v[4], v[5]), h67 = _mm256_hadd_ps(v[6], v[7]);
    const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

/// An MRd×(8/MRd) block of C from dot products along k (see the AVX-512 variant).
INLINE ISA_ATTR void dot_tile(const int MRd, int k, const float *a, long lda, int mrows,
                              const float *b, long ldb, int nrows, float *c, long ldc, float alpha, float beta) {
    const int NJ = 8 / MRd;
    const float *ap[4], *bp[8];
#pragma GCC unroll 8
    for (int i = 0; i < MRd; i++) ap[i] = a + (i < mrows ? i : 0) * lda;
#pragma GCC unroll 8
    for (int j = 0; j < NJ; j++) bp[j] = b + (j < nrows ? j : 0) * ldb;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();
    int p = 0;
    for (; p + 8 <= k; p += 8) {
        __m256 av[4];
#pragma GCC unroll 8
        for (int i = 0; i < MRd; i++) av[i] = _mm256_loadu_ps(ap[i] + p);
#pragma GCC unroll 8
        for (int j = 0; j < NJ; j++) {
            const __m256 bv = _mm256_loadu_ps(bp[j] + p);
#pragma GCC unroll 8
            for (int i = 0; i < MRd; i++) acc[i * NJ + j] = _mm256_fmadd_ps(av[i], bv, acc[i * NJ + j]);
        }
    }
    if (p < k) {
        const __m256i mk = mask_first(k - p);
        __m256 av[4];
#pragma GCC unroll 8
        for (int i = 0; i < MRd; i++) av[i] = _mm256_maskload_ps(ap[i] + p, mk);
#pragma GCC unroll 8
        for (int j = 0; j < NJ; j++) {
            const __m256 bv = _mm256_maskload_ps(bp[j] + p, mk);
#pragma GCC unroll 8
            for (int i = 0; i < MRd; i++) acc[i * NJ + j] = _mm256_fmadd_ps(av[i], bv, acc[i * NJ + j]);
        }
    }
    __m256 r = _mm256_mul_ps(reduce8(acc), _mm256_set1_ps(alpha));
    if (MRd == 1 && nrows == 8) {
        if (beta != 0.0f) r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c), r);
        _mm256_storeu_ps(c, r);
        return;
    }
    float tmp[8] __attribute__((aligned(32)));
    _mm256_store_ps(tmp, r);
    for (int i = 0; i < mrows; i++)
        for (int j = 0; j < nrows; j++) {
            float *cij = c + i * ldc + j;
            *cij = beta != 0.0f ? tmp[i * NJ + j] + beta * *cij : tmp[i * NJ + j];
        }
}

ISA_ATTR static void NAME(dot_nt)(int m, int n, int k, float alpha, const float *a, long lda,
                                  const float *b, long ldb, float beta, float *c, long ldc) {
    for (int i = 0; i < m;) {
        const int rem = m - i;
        const int g = rem >= 3 ? 4 : rem;
        const int mrows = rem < g ? rem : g;
        const int nj = 8 / g;
        for (int j = 0; j < n; j += nj) {
            const int nrows = n - j < nj ? n - j : nj;
            const float *ai = a + i * lda, *bj = b + j * ldb;
            float *cij = c + i * ldc + j;
            switch (g) {
                case 1: dot_tile(1, k, ai, lda, mrows, bj, ldb, nrows, cij, ldc, alpha, beta); break;
                case 2: dot_tile(2, k, ai, lda, mrows, bj, ldb, nrows, cij, ldc, alpha, beta); break;
                default: dot_tile(4, k, ai, lda, mrows, bj, ldb, nrows, cij, ldc, alpha, beta); break;
            }
        }
        i += mrows;
    }
}

// ---- Tile-packed sgemv (one stream, weights packed once per snapshot) -------------------------

/// y = W·x (+ y) from recurd_sgemv_pack's layout: the same FMAs in the same order as
/// dot_tile(1, …) (eight lanes per row, zero-padded tail, reduce8), so the result equals
/// recurd_sgemv's bit for bit. W arrives as one sequential stream instead of eight row streams,
/// which the L2 prefetcher follows further ahead when W comes from L3.
#define SGEMV_PACKED NAME(sgemv_packed)
ISA_ATTR static void NAME(sgemv_packed)(const float *w, int rows, int cols, const float *x, float *y, int accumulate) {
    if (rows <= 0) return;
    if (cols <= 0) { recurd_scale_c(1, rows, accumulate ? 1.0f : 0.0f, y, rows); return; }
    const int kb = (cols + 7) / 8, full = cols / 8;
    // x past cols is never read: the tail's lanes are zero in x and in the packed W alike.
    const __m256 x_tail = full < kb ? _mm256_maskload_ps(x + 8 * full, mask_first(cols - 8 * full)) : _mm256_setzero_ps();
    for (int t = 0; 8 * t < rows; t++) {
        const float *b = w + (long)t * kb * 64;
        __m256 acc[8];
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();
        for (int p = 0; p < full; p++) {
            const __m256 xv = _mm256_loadu_ps(x + 8 * p);
            const float *bp = b + 64 * p;
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) acc[q] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp + 8 * q), acc[q]);
        }
        if (full < kb) {
            const float *bp = b + 64 * full;
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) acc[q] = _mm256_fmadd_ps(x_tail, _mm256_loadu_ps(bp + 8 * q), acc[q]);
        }
        __m256 r = reduce8(acc);
        float *yt = y + 8 * t;
        const int nr = rows - 8 * t < 8 ? rows - 8 * t : 8;
        if (nr == 8) {
            if (accumulate) r = _mm256_add_ps(_mm256_loadu_ps(yt), r);
            _mm256_storeu_ps(yt, r);
        } else {
            const __m256i m = mask_first(nr);
            if (accumulate) r = _mm256_add_ps(_mm256_maskload_ps(yt, m), r);
            _mm256_maskstore_ps(yt, m, r);
        }
    }
}

// ---- Transposed-tile path (NT with a few dozen rows; see the AVX-512 variant) -----------------

/// Cᵀ tile of NV·8 rows × NJ columns of C: Aᵀ (16 rows, packed) is the vector operand, W is
/// broadcast from its rows; 8×8 transposes at the store. 2×6 or 1×8 accumulators.
INLINE ISA_ATTR void tnt_tile(const int NV, const int NJ, int kc, const float *restrict at,
                              const float *restrict w, long ldw, int nj, int mrows,
                              float *restrict c, long ldc, float alpha, float beta) {
    const float *wr[8];
#pragma GCC unroll 8
    for (int j = 0; j < NJ; j++) wr[j] = w + (j < nj ? j : 0) * ldw;
    __m256 acc0[8], acc1[8];
#pragma GCC unroll 8
    for (int j = 0; j < NJ; j++) { acc0[j] = _mm256_setzero_ps(); acc1[j] = _mm256_setzero_ps(); }
    for (int p = 0; p < kc; p++) {
        const __m256 a0 = _mm256_load_ps(at + p * NR);
        const __m256 a1 = NV > 1 ? _mm256_load_ps(at + p * NR + 8) : a0;
#pragma GCC unroll 8
        for (int j = 0; j < NJ; j++) {
            const __m256 wj = _mm256_broadcast_ss(wr[j] + p);
            acc0[j] = _mm256_fmadd_ps(a0, wj, acc0[j]);
            if (NV > 1) acc1[j] = _mm256_fmadd_ps(a1, wj, acc1[j]);
        }
    }
    const __m256i m = mask_first(nj);
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int v = 0; v < NV; v++) {
        __m256 r[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) r[j] = j < NJ ? (v ? acc1[j] : acc0[j]) : _mm256_setzero_ps();
        transpose8(r);   // r[q] = row 8·v + q of the C tile
        const int rows = mrows - 8 * v < 8 ? mrows - 8 * v : 8;
        for (int q = 0; q < rows; q++) {
            float *ci = c + (8 * v + q) * ldc;
            __m256 x = _mm256_mul_ps(r[q], va);
            if (beta != 0.0f) x = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, m), x);
            _mm256_maskstore_ps(ci, m, x);
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
        for (int i0 = 0; i0 < m; i0 += 16) {
            const int mt = m - i0 < 16 ? m - i0 : 16;
            NAME(pack_bt)(kc, mt, a + (long)i0 * lda + pc, lda, at);   // Aᵀ, zero-padded to 16
            float *ci = c + (long)i0 * ldc;
            const float *bk = b + pc;
            if (mt > 8) {
                for (int j = 0; j < n; j += 6)
                    tnt_tile(2, 6, kc, at, bk + (long)j * ldb, ldb, n - j < 6 ? n - j : 6, mt, ci + j, ldc, alpha, beta_k);
            } else {
                for (int j = 0; j < n; j += 8)
                    tnt_tile(1, 8, kc, at, bk + (long)j * ldb, ldb, n - j < 8 ? n - j : 8, mt, ci + j, ldc, alpha, beta_k);
            }
        }
    }
}

// ---- Vector × matrix (NN with one row; sgemv_t) ----------------------------------------------

/// y[0 … 8·NB) = alpha·Σ_p x_p·B_p + beta·y; the caller passes full vectors only (NB·8 ≤ n),
/// the ragged tail goes through vecmat_tail.
INLINE ISA_ATTR void vecmat_block(const int NB, int k, const float *x, long incx, const float *b, long ldb,
                                  float alpha, float beta, float *y) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < NB; v++) acc[v] = _mm256_setzero_ps();
    for (int p = 0; p < k; p++) {
        const __m256 xv = _mm256_broadcast_ss(x + p * incx);
        const float *bp = b + p * ldb;
#pragma GCC unroll 8
        for (int v = 0; v < NB; v++) acc[v] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(bp + 8 * v), acc[v]);
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int v = 0; v < NB; v++) {
        __m256 r = _mm256_mul_ps(acc[v], va);
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(y + 8 * v), r);
        _mm256_storeu_ps(y + 8 * v, r);
    }
}

ISA_ATTR static void NAME(vecmat)(int n, int k, float alpha, const float *x, long incx,
                                  const float *b, long ldb, float beta, float *y) {
    int j = 0;
    for (; j + 8 <= n; j += 64) {
        const int nb = (n - j) / 8 < 8 ? (n - j) / 8 : 8;
        switch (nb) {
#define VM_CASE(B) case B: vecmat_block(B, k, x, incx, b + j, ldb, alpha, beta, y + j); break;
            VM_CASE(1) VM_CASE(2) VM_CASE(3) VM_CASE(4) VM_CASE(5) VM_CASE(6) VM_CASE(7) VM_CASE(8)
#undef VM_CASE
        }
        if (nb < 8) { j += 8 * nb; break; }
    }
    if (j < n) {   // fewer than 8 columns left: one masked vector
        const __m256i m = mask_first(n - j);
        __m256 acc = _mm256_setzero_ps();
        for (int p = 0; p < k; p++)
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(x + p * incx), _mm256_maskload_ps(b + p * ldb + j, m), acc);
        acc = _mm256_mul_ps(acc, _mm256_set1_ps(alpha));
        if (beta != 0.0f) acc = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(y + j, m), acc);
        _mm256_maskstore_ps(y + j, m, acc);
    }
}

#include "gemm_driver.h"

#else
typedef int recurd_gemm_avx2_unused;   // ISO C forbids an empty translation unit
#endif
