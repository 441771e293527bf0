// The blocking driver shared by every ISA, included once per ISA file (the same pattern as
// cell_kernels_template.h) so the loop structure cannot drift between variants while each
// variant's micro-kernels inline into it. The including file defines:
//   NAME(x)            appends the ISA suffix;      ISA_ATTR   its target attribute (or nothing)
//   MR_MAX, NR         register tile: up to MR_MAX rows of C × NR columns
//   VL                 vector lanes (panel columns are padded to a multiple of it)
//   KC_MAX             depth of one packed B panel (KC_MAX×NR floats live on the stack, in L1)
//   MC_BYTES           how much of A one pass over a B panel may stream (sized to stay in L2)
//   DOT_MAX_M          NT products with m ≤ this use the unpacked dot-product path …
//   DOT_MIN_K          … when m ≤ DOT_ALWAYS_M or k ≥ this (each dot tile ends in a reduction that
//                      short k cannot amortise; then packing B is cheaper)
//   PACK_NN_MIN_M      NN/TN products copy B panels only when m exceeds this
//   IMPL_SYMBOL        name of the exported recurd_gemm_impl
// and these functions:
//   NAME(ukernel)(mr, nr, at, kc, a, lda, b, ldbp, c, ldc, alpha, beta)
//       C[mr×nr] = alpha·A·Bp + beta·C for one tile; A(i,p) = at ? a[p·lda+i] : a[i·lda+p];
//       Bp(p,j) = b[p·ldbp+j], readable up to the next multiple of VL columns.
//   NAME(pack_bt)(kc, nr, b, ldb, buf)   buf[p·NR+j] = b[j·ldb+p], zero for j ≥ nr
//   NAME(pack_bn)(kc, nr, b, ldb, buf)   buf[p·NR+j] = b[p·ldb+j], zero for j ≥ nr
//   NAME(dot_nt)(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)      small-m A·Bᵀ, no packing
//   NAME(vecmat)(n, k, alpha, x, incx, b, ldb, beta, y)             y(1×n) = alpha·xᵀB + beta·y
// and optionally SGEMV_PACKED, the variant's sgemv over recurd_sgemv_pack's layout, equal to its
// sgemv bit for bit (NULL: the variant has none and callers use the row-major sgemv).
// and optionally (HAVE_TNT, TNT_MAX_M) NAME(tnt)(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
//       A·Bᵀ for a few dozen rows by packing Aᵀ instead of B (x86 files).

/// Loop order (BLIS-style, minus the A packing): k in blocks of KC_MAX → rows in blocks of
/// MC → one NR-wide B panel, packed into an L1-resident stack buffer → every MR-row tile of
/// the block. A is read in place: its rows are contiguous in k (or, transposed, its MR values
/// for one k are contiguous), so the micro-kernel broadcasts straight from it and packing A
/// would only add traffic. B is packed because the kernel needs NR consecutive columns per k,
/// which a transposed B (recurd's weights, W·x) does not have in memory.
///
/// With `panels` (W already in recurd_sgemm_pack's layout, used as a transposed B; `b` is then
/// not read) the same loop runs with the packing taken out, so both give the same bits.
ISA_ATTR static void NAME(blocked)(int ta, int tb, int m, int n, int k, float alpha,
                                   const float *a, long lda, const float *b, long ldb, const float *panels,
                                   float beta, float *c, long ldc) {
    float buf[KC_MAX * NR] __attribute__((aligned(64)));
    const int pack_nn = m > PACK_NN_MIN_M;
    const int kc_first = k < KC_MAX ? k : KC_MAX;
    int mc_max = (int)(MC_BYTES / (sizeof(float) * (size_t)kc_first)) / MR_MAX * MR_MAX;
    if (mc_max < MR_MAX) mc_max = MR_MAX;
    const long npad = (long)(n + NR - 1) / NR * NR;   // the panel copy's padded width

    for (int pc = 0; pc < k; pc += KC_MAX) {
        const int kc = k - pc < KC_MAX ? k - pc : KC_MAX;
        const float beta_k = pc == 0 ? beta : 1.0f;   // later k blocks add to the first's result
        const float *ak = ta ? a + (long)pc * lda : a + pc;
        for (int ic = 0; ic < m; ic += mc_max) {
            const int mc = m - ic < mc_max ? m - ic : mc_max;
            const float *ai = ta ? ak + ic : ak + (long)ic * lda;
            const recurd_row_split split = recurd_split_rows(mc, MR_MAX);
            for (int jc = 0; jc < n; jc += NR) {
                const int nr = n - jc < NR ? n - jc : NR;
                const float *bp;
                long ldbp;
                if (panels) {
                    bp = panels + (long)pc * npad + (long)jc * kc; ldbp = NR;
                } else if (tb) {
                    NAME(pack_bt)(kc, nr, b + (long)jc * ldb + pc, ldb, buf);
                    bp = buf; ldbp = NR;
                } else if (pack_nn || nr % VL != 0) {
                    // Copying gives the kernel one dense stream (no 4 KiB-aliasing between
                    // rows, no partial vectors); it pays once the panel serves many tiles.
                    NAME(pack_bn)(kc, nr, b + (long)pc * ldb + jc, ldb, buf);
                    bp = buf; ldbp = NR;
                } else {
                    bp = b + (long)pc * ldb + jc; ldbp = ldb;
                }
                for (int t = 0, ir = 0; t < split.tiles; t++) {
                    const int mr = split.base + (t < split.extra);
                    NAME(ukernel)(mr, nr, ta, kc, ta ? ai + ir : ai + (long)ir * lda, lda, bp, ldbp,
                                  c + (long)(ic + ir) * ldc + jc, ldc, alpha, beta_k);
                    ir += mr;
                }
            }
        }
    }
}

/// C = alpha·op(A)·op(B) + beta·C, choosing the path by shape; the general one is `blocked`.
ISA_ATTR static void NAME(sgemm)(int ta, int tb, int m, int n, int k, float alpha,
                                 const float *a, long lda, const float *b, long ldb,
                                 float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) { recurd_scale_c(m, n, beta, c, ldc); return; }
    // A few rows against a transposed B: packing B would cost as much as the product itself,
    // so every C entry is a dot product of two contiguous rows instead.
    if (tb && !ta && m <= DOT_MAX_M && (m <= DOT_ALWAYS_M || k >= DOT_MIN_K)) {
        NAME(dot_nt)(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#if defined(HAVE_TNT)
    // A few dozen rows against a transposed B: pack Aᵀ (small) instead of B (large).
    if (tb && !ta && m <= TNT_MAX_M) { NAME(tnt)(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return; }
#endif
    // One row against an untransposed B: a vector–matrix product streaming B's rows.
    if (!tb && m == 1) { NAME(vecmat)(n, k, alpha, a, ta ? lda : 1, b, ldb, beta, c); return; }

    NAME(blocked)(ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, beta, c, ldc);
}

ISA_ATTR static void NAME(sgemv)(const float *w, int rows, int cols, long ldw, const float *x, float *y, int accumulate) {
    if (rows <= 0) return;
    if (cols <= 0) { recurd_scale_c(1, rows, accumulate ? 1.0f : 0.0f, y, rows); return; }
    NAME(dot_nt)(1, rows, cols, 1.0f, x, cols, w, ldw, accumulate ? 1.0f : 0.0f, y, rows);
}

ISA_ATTR static void NAME(sgemv_t)(const float *w, int rows, int cols, long ldw, const float *d, float *y, int accumulate) {
    if (cols <= 0) return;
    if (rows <= 0) { recurd_scale_c(1, cols, accumulate ? 1.0f : 0.0f, y, cols); return; }
    NAME(vecmat)(cols, rows, 1.0f, d, 1, w, ldw, accumulate ? 1.0f : 0.0f, y);
}

#if NR == RECURD_PANEL_NR && KC_MAX == RECURD_PANEL_KC
/// C = alpha·A·Wᵀ + beta·C with W already in panels: `blocked` without the packing. A few rows
/// then cost what their products cost, not a transposing copy of all of W.
ISA_ATTR static void NAME(sgemm_panels)(int m, int n, int k, float alpha, const float *a, long lda,
                                        const float *panels, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) { recurd_scale_c(m, n, beta, c, ldc); return; }
    NAME(blocked)(0, 1, m, n, k, alpha, a, lda, NULL, 0, panels, beta, c, ldc);
}
#define SGEMM_PANELS NAME(sgemm_panels)
#else
#define SGEMM_PANELS NULL   // this variant's tile or k block differs from the shared layout
#endif

#ifndef SGEMV_PACKED
#define SGEMV_PACKED NULL   // no packed sgemv that matches this variant's sgemv bit for bit yet
#endif
const recurd_gemm_impl IMPL_SYMBOL = { ISA_NAME_STR, NAME(sgemm), NAME(sgemv), NAME(sgemv_t), SGEMV_PACKED, SGEMM_PANELS };
