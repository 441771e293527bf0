// Internal interface between the public entry points (dispatch.c) and the per-ISA
// implementations (gemm_portable.c, gemm_avx2.c, gemm_avx512.c). Not part of the API.
#ifndef RECURD_GEMM_INTERNAL_H
#define RECURD_GEMM_INTERNAL_H

/// One ISA's complete implementation. Strides are `long` so that index arithmetic never
/// overflows int for large leading dimensions.
typedef struct recurd_gemm_impl {
    const char *name;
    void (*sgemm)(int transA, int transB, int m, int n, int k, float alpha,
                  const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);
    void (*sgemv)(const float *w, int rows, int cols, long ldw, const float *x, float *y, int accumulate);
    void (*sgemv_t)(const float *w, int rows, int cols, long ldw, const float *d, float *y, int accumulate);
    /// sgemv over recurd_sgemv_pack's layout, equal to `sgemv` bit for bit; NULL if none.
    void (*sgemv_packed)(const float *packed, int rows, int cols, const float *x, float *y, int accumulate);
    /// A·Wᵀ over recurd_sgemm_pack's panels, equal to the blocked path of `sgemm`; NULL if none.
    void (*sgemm_panels)(int m, int n, int k, float alpha, const float *a, long lda,
                         const float *panels, float beta, float *c, long ldc);
} recurd_gemm_impl;

/// recurd_sgemm_pack's layout: k in blocks of RECURD_PANEL_KC, each block a run of
/// RECURD_PANEL_NR-column panels (panel j holds W's rows j·NR … j·NR+NR−1 as columns, one k
/// after another). A variant whose micro-kernel tile and k block match uses it as it is.
#define RECURD_PANEL_NR 16
#define RECURD_PANEL_KC 256

extern const recurd_gemm_impl recurd_gemm_impl_portable;
#if defined(__x86_64__) || defined(__i386__)
#define RECURD_HAVE_X86 1
extern const recurd_gemm_impl recurd_gemm_impl_avx2;
extern const recurd_gemm_impl recurd_gemm_impl_avx512;
#endif

/// C = beta·C on an m×n block (beta == 0 writes zeros without reading C). Shared by every
/// ISA for the degenerate cases k == 0 and alpha == 0.
static inline void recurd_scale_c(int m, int n, float beta, float *c, long ldc) {
    if (beta == 1.0f) return;
    for (int i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f) for (int j = 0; j < n; j++) row[j] = 0.0f;
        else for (int j = 0; j < n; j++) row[j] *= beta;
    }
}

/// `rows` rows over the fewest tiles of at most `mr_max`, spread evenly (32 rows of 6: 6 6 5 5 5 5,
/// not 6 6 6 6 6 2): a short tile streams a whole B panel for little work. Tile t has
/// `base + (t < extra)` rows. Each C entry's arithmetic is the same whatever tile it falls in.
typedef struct recurd_row_split { int tiles, base, extra; } recurd_row_split;
static inline recurd_row_split recurd_split_rows(int rows, int mr_max) {
    const int tiles = (rows + mr_max - 1) / mr_max;
    return (recurd_row_split){ tiles, rows / tiles, rows % tiles };
}

#endif
