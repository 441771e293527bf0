// Portable implementation: plain C, no intrinsics, written as fixed-size loops over small
// arrays so that GCC and Clang vectorise it for whatever the target offers (SSE2 on baseline
// x86-64, AVX2 under -mavx2, NEON on arm64). Used on CPUs without AVX2 and as the reference
// variant that tests force on x86.
#include "gemm_internal.h"
#include <stddef.h>
#include <string.h>

#define ISA_ATTR
#define INLINE static inline __attribute__((always_inline))
#define NAME(x) x##_portable
#define ISA_NAME_STR "portable"
#ifndef IMPL_SYMBOL
#define IMPL_SYMBOL recurd_gemm_impl_portable
#endif

// 4×16 tile: 64 accumulators = 16 NEON / 16 SSE / 8 AVX registers, the most that fits in 16
// 128-bit registers with B and the broadcast alongside.
#define VL 16
#define MR_MAX 4
#define NR 16
#define KC_MAX 256
#define MC_BYTES (512 << 10)
#define DOT_MAX_M 4
#define DOT_MIN_K 0
#define DOT_ALWAYS_M 4
#define PACK_NN_MIN_M 8

// GCC/Clang vector extensions (not intrinsics): the same source gives SSE2 on x86-64, NEON on
// arm64 and whatever else the target has; plain nested loops over a float[4][16] accumulator
// were left scalar by both compilers' cost models (≈3 GFLOP/s).
typedef float vf4 __attribute__((vector_size(16)));
INLINE vf4 ld4(const float *p) { vf4 v; memcpy(&v, p, sizeof v); return v; }

INLINE void uk_tile(const int MRc, const int AT, int kc, const float *restrict a, long lda,
                    const float *restrict b, long ldbp, float *restrict c, long ldc,
                    float alpha, float beta, int nr) {
    vf4 acc[MR_MAX][4];
    for (int i = 0; i < MRc; i++)
        for (int v = 0; v < 4; v++) acc[i][v] = (vf4){ 0.0f, 0.0f, 0.0f, 0.0f };
    for (int p = 0; p < kc; p++) {
        const float *bp = b + p * ldbp;
        const vf4 b0 = ld4(bp), b1 = ld4(bp + 4), b2 = ld4(bp + 8), b3 = ld4(bp + 12);
        for (int i = 0; i < MRc; i++) {
            const float s = AT ? a[p * lda + i] : a[i * lda + p];
            const vf4 ai = { s, s, s, s };
            acc[i][0] = acc[i][0] + ai * b0;
            acc[i][1] = acc[i][1] + ai * b1;
            acc[i][2] = acc[i][2] + ai * b2;
            acc[i][3] = acc[i][3] + ai * b3;
        }
    }
    for (int i = 0; i < MRc; i++) {
        float r[NR];
        memcpy(r, acc[i], sizeof r);
        float *ci = c + i * ldc;
        if (beta == 0.0f) for (int j = 0; j < nr; j++) ci[j] = alpha * r[j];
        else for (int j = 0; j < nr; j++) ci[j] = alpha * r[j] + beta * ci[j];
    }
}

static void NAME(ukernel)(int mr, int nr, int at, int kc, const float *a, long lda,
                          const float *b, long ldbp, float *c, long ldc, float alpha, float beta) {
    switch (mr * 2 + (at != 0)) {
        case 2: uk_tile(1, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
        case 3: uk_tile(1, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
        case 4: uk_tile(2, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
        case 5: uk_tile(2, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
        case 6: uk_tile(3, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
        case 7: uk_tile(3, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
        case 8: uk_tile(4, 0, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
        default: uk_tile(4, 1, kc, a, lda, b, ldbp, c, ldc, alpha, beta, nr); break;
    }
}

/// Transposed copy in 16×16 blocks: the block (1 KiB) stays in L1 while it is turned around.
static void NAME(pack_bt)(int kc, int nr, const float *b, long ldb, float *buf) {
    for (int p0 = 0; p0 < kc; p0 += 16) {
        const int pe = kc - p0 < 16 ? kc : p0 + 16;
        for (int j = 0; j < NR; j++) {
            if (j < nr) { const float *bj = b + j * ldb; for (int p = p0; p < pe; p++) buf[p * NR + j] = bj[p]; }
            else for (int p = p0; p < pe; p++) buf[p * NR + j] = 0.0f;
        }
    }
}

static void NAME(pack_bn)(int kc, int nr, const float *b, long ldb, float *buf) {
    for (int p = 0; p < kc; p++)
        for (int j = 0; j < NR; j++) buf[p * NR + j] = j < nr ? b[p * ldb + j] : 0.0f;
}

/// C[i][j] for up to 4 rows of B at once, each a dot product over k kept in 8 partial sums
/// (fixed-width lanes the vectoriser maps to registers without reassociating anything).
static void NAME(dot_nt)(int m, int n, int k, float alpha, const float *a, long lda,
                         const float *b, long ldb, float beta, float *c, long ldc) {
    for (int i = 0; i < m; i++) {
        const float *ai = a + i * lda;
        for (int j0 = 0; j0 < n; j0 += 4) {
            const int nj = n - j0 < 4 ? n - j0 : 4;
            const float *bp[4];
            for (int j = 0; j < 4; j++) bp[j] = b + (j0 + (j < nj ? j : 0)) * ldb;
            float s[4][8] = {{0}};
            int p = 0;
            for (; p + 8 <= k; p += 8)
                for (int j = 0; j < 4; j++)
                    for (int l = 0; l < 8; l++) s[j][l] += ai[p + l] * bp[j][p + l];
            for (int j = 0; j < nj; j++) {
                float t = ((s[j][0] + s[j][1]) + (s[j][2] + s[j][3])) + ((s[j][4] + s[j][5]) + (s[j][6] + s[j][7]));
                for (int q = p; q < k; q++) t += ai[q] * bp[j][q];
                float *cij = c + i * ldc + j0 + j;
                *cij = beta != 0.0f ? alpha * t + beta * *cij : alpha * t;
            }
        }
    }
}

/// y = W·x (+ y) from recurd_sgemv_pack's layout, eight rows at a time, with dot_nt's
/// arithmetic per row (eight partial sums over whole blocks, the same pairwise reduction, the
/// ragged tail added one by one after it), so the result equals recurd_sgemv's bit for bit.
#define SGEMV_PACKED NAME(sgemv_packed)
static void NAME(sgemv_packed)(const float *w, int rows, int cols, const float *x, float *y, int accumulate) {
    if (rows <= 0) return;
    if (cols <= 0) { recurd_scale_c(1, rows, accumulate ? 1.0f : 0.0f, y, rows); return; }
    const int kb = (cols + 7) / 8, full = cols / 8;
    for (int t = 0; 8 * t < rows; t++) {
        const float *b = w + (long)t * kb * 64;
        // Lanes as vectors (left to the vectoriser, float[8][8] stayed scalar: 4 GFLOP/s); four
        // rows at a time, so that accumulators and x fit 16 SSE registers.
        const int nr = rows - 8 * t < 8 ? rows - 8 * t : 8;
        float sums[8][8];
        for (int h = 0; h < 8; h += 4) {
            vf4 lo[4], hi[4];
            for (int q = 0; q < 4; q++) lo[q] = hi[q] = (vf4){ 0.0f, 0.0f, 0.0f, 0.0f };
            for (int p = 0; p < full; p++) {
                const vf4 x0 = ld4(x + 8 * p), x1 = ld4(x + 8 * p + 4);
                const float *bp = b + 64 * p + 8 * h;
                for (int q = 0; q < 4; q++) {
                    lo[q] = lo[q] + x0 * ld4(bp + 8 * q);
                    hi[q] = hi[q] + x1 * ld4(bp + 8 * q + 4);
                }
            }
            for (int q = 0; q < 4; q++) {
                memcpy(sums[h + q], &lo[q], sizeof lo[q]);
                memcpy(sums[h + q] + 4, &hi[q], sizeof hi[q]);
            }
        }
        for (int q = 0; q < nr; q++) {
            const float *s = sums[q];
            float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
            for (int c = 8 * full; c < cols; c++) r += x[c] * b[64 * full + 8 * q + (c - 8 * full)];
            y[8 * t + q] = accumulate ? r + y[8 * t + q] : r;
        }
    }
}

/// y = alpha·xᵀB + beta·y, 64 columns of y kept in a local accumulator while B's rows stream.
static void NAME(vecmat)(int n, int k, float alpha, const float *x, long incx,
                         const float *b, long ldb, float beta, float *y) {
    for (int j0 = 0; j0 < n; j0 += 64) {
        const int w = n - j0 < 64 ? n - j0 : 64;
        float acc[64] = {0};
        if (w == 64) {
            for (int p = 0; p < k; p++) {
                const float xp = x[p * incx], *bp = b + p * ldb + j0;
                for (int j = 0; j < 64; j++) acc[j] += xp * bp[j];
            }
        } else {
            for (int p = 0; p < k; p++) {
                const float xp = x[p * incx], *bp = b + p * ldb + j0;
                for (int j = 0; j < w; j++) acc[j] += xp * bp[j];
            }
        }
        for (int j = 0; j < w; j++) y[j0 + j] = beta != 0.0f ? alpha * acc[j] + beta * y[j0 + j] : alpha * acc[j];
    }
}

#include "gemm_driver.h"
