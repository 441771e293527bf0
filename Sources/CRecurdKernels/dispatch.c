// Public entry points: choose an implementation once from cpuid, let tests force another.
#include "recurd_gemm.h"
#include "gemm_internal.h"
#include <stddef.h>
#include <string.h>

static const recurd_gemm_impl *impl_for(int isa) {
    switch (isa) {
#if defined(RECURD_HAVE_X86)
        case RECURD_ISA_AVX512: return &recurd_gemm_impl_avx512;
        case RECURD_ISA_AVX2: return &recurd_gemm_impl_avx2;
#endif
        case RECURD_ISA_PORTABLE: return &recurd_gemm_impl_portable;
        default: return NULL;
    }
}

int recurd_kernels_isa_available(int isa) {
#if defined(RECURD_HAVE_X86)
    __builtin_cpu_init();   // idempotent; needed if we are called from a constructor
#endif
    switch (isa) {
        case RECURD_ISA_PORTABLE: return 1;
#if defined(RECURD_HAVE_X86)
        // OS support for the wider registers (XSAVE state) is part of what
        // __builtin_cpu_supports reports in GCC ≥ 12 and Clang.
        case RECURD_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case RECURD_ISA_AVX512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("fma");
#endif
        default: return 0;
    }
}

static int best_isa(void) {
    if (recurd_kernels_isa_available(RECURD_ISA_AVX512)) return RECURD_ISA_AVX512;
    if (recurd_kernels_isa_available(RECURD_ISA_AVX2)) return RECURD_ISA_AVX2;
    return RECURD_ISA_PORTABLE;
}

// The current choice: written with release, read once per call with acquire, so a call uses
// one implementation from start to end even if another thread switches in between. NULL
// until first use (resolved lazily: no constructor, the library may be loaded anywhere).
static const recurd_gemm_impl *current;
static int current_isa = -1;

// A per-thread choice, set by tests that run every variant while other threads go on with the
// process-wide one. RECURD_ISA_AUTO: follow the process-wide choice.
static _Thread_local int thread_isa = RECURD_ISA_AUTO;

int recurd_kernels_set_thread_isa(int isa) {
    if (isa != RECURD_ISA_AUTO && !recurd_kernels_isa_available(isa)) return 0;
    thread_isa = isa;
    return 1;
}

static const recurd_gemm_impl *get_impl(int isa) {
    if (isa == RECURD_ISA_AUTO) isa = thread_isa;
    if (isa != RECURD_ISA_AUTO && recurd_kernels_isa_available(isa)) return impl_for(isa);
    const recurd_gemm_impl *p = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (p) return p;
    const int best = best_isa();
    p = impl_for(best);
    __atomic_store_n(&current_isa, best, __ATOMIC_RELAXED);
    __atomic_store_n(&current, p, __ATOMIC_RELEASE);   // idempotent: racing first calls agree
    return p;
}

int recurd_kernels_set_isa(int isa) {
    if (isa == RECURD_ISA_AUTO) isa = best_isa();
    if (!recurd_kernels_isa_available(isa)) return 0;
    __atomic_store_n(&current_isa, isa, __ATOMIC_RELAXED);
    __atomic_store_n(&current, impl_for(isa), __ATOMIC_RELEASE);
    return 1;
}

int recurd_kernels_isa(void) {
    if (thread_isa != RECURD_ISA_AUTO) return thread_isa;
    get_impl(RECURD_ISA_AUTO);
    return __atomic_load_n(&current_isa, __ATOMIC_RELAXED);
}

const char *recurd_kernels_isa_name(int isa) {
    switch (isa) {
        case RECURD_ISA_PORTABLE: return "portable";
        case RECURD_ISA_AVX2: return "avx2";
        case RECURD_ISA_AVX512: return "avx512";
        default: return "?";
    }
}

void recurd_sgemm_isa(int isa, int transA, int transB, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    get_impl(isa)->sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void recurd_sgemv_isa(int isa, const float *w, int rows, int cols, int ldw, const float *x, float *y, int accumulate) {
    get_impl(isa)->sgemv(w, rows, cols, ldw, x, y, accumulate);
}

void recurd_sgemv_t_isa(int isa, const float *w, int rows, int cols, int ldw, const float *d, float *y, int accumulate) {
    get_impl(isa)->sgemv_t(w, rows, cols, ldw, d, y, accumulate);
}

void recurd_sgemm(int transA, int transB, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    get_impl(RECURD_ISA_AUTO)->sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void recurd_sgemv(const float *w, int rows, int cols, int ldw, const float *x, float *y, int accumulate) {
    get_impl(RECURD_ISA_AUTO)->sgemv(w, rows, cols, ldw, x, y, accumulate);
}

void recurd_sgemv_t(const float *w, int rows, int cols, int ldw, const float *d, float *y, int accumulate) {
    get_impl(RECURD_ISA_AUTO)->sgemv_t(w, rows, cols, ldw, d, y, accumulate);
}

long recurd_sgemv_packed_size(int rows, int cols) {
    if (rows <= 0 || cols <= 0) return 0;
    return (long)((rows + 7) / 8) * ((cols + 7) / 8) * 64;
}

void recurd_sgemv_pack(const float *w, int rows, int cols, int ldw, float *packed) {
    const int kb = (cols + 7) / 8, full = cols / 8;
    // Row by row: each row is read once, sequentially, and lands as 8-float runs 64 floats apart.
    for (int r = 0; r < (rows + 7) / 8 * 8; r++) {
        float *dst = packed + (long)(r / 8) * kb * 64 + 8 * (r % 8);
        if (r >= rows) {
            for (int p = 0; p < kb; p++) memset(dst + 64 * p, 0, 8 * sizeof(float));
            continue;
        }
        const float *src = w + (long)r * ldw;
        for (int p = 0; p < full; p++) memcpy(dst + 64 * p, src + 8 * p, 8 * sizeof(float));
        if (full < kb) {
            float *tail = dst + 64 * full;
            for (int l = 0; l < 8; l++) tail[l] = 8 * full + l < cols ? src[8 * full + l] : 0.0f;
        }
    }
}

int recurd_sgemv_packed_available(int isa) { return get_impl(isa)->sgemv_packed != NULL; }

/// The variant for a packed product (`panels`: the panel sgemm, else the tile sgemv): `isa`'s,
/// or the portable one (same layouts, other bits) where it has none, so that a caller that
/// skipped the *_available check gets a right answer, not a crash.
static const recurd_gemm_impl *packed_impl(int isa, int panels) {
    const recurd_gemm_impl *p = get_impl(isa);
    return (panels ? p->sgemm_panels != NULL : p->sgemv_packed != NULL) ? p : &recurd_gemm_impl_portable;
}

void recurd_sgemv_packed_isa(int isa, const float *packed, int rows, int cols, const float *x, float *y, int accumulate) {
    packed_impl(isa, 0)->sgemv_packed(packed, rows, cols, x, y, accumulate);
}

void recurd_sgemv_packed(const float *packed, int rows, int cols, const float *x, float *y, int accumulate) {
    packed_impl(RECURD_ISA_AUTO, 0)->sgemv_packed(packed, rows, cols, x, y, accumulate);
}

long recurd_sgemm_packed_size(int n, int k) {
    if (n <= 0 || k <= 0) return 0;
    return (long)((n + RECURD_PANEL_NR - 1) / RECURD_PANEL_NR * RECURD_PANEL_NR) * k;
}

void recurd_sgemm_pack(const float *w, int n, int k, int ldw, float *packed) {
    const long npad = recurd_sgemm_packed_size(n, 1);
    float *panel = packed;
    // A panel at a time, in blocks of 16 k: each of its rows is read 16 floats at a time into a
    // 1 KB block of the copy that stays in L1 (10–45 % faster in interleaved runs than a whole
    // row at a time, whose writes land 64 bytes apart across the whole panel). 868 KB of
    // weights: 85–120 µs on Zen 3, against 32–37 µs for the one-stream copy.
    for (int pc = 0; pc < k; pc += RECURD_PANEL_KC) {
        const int kc = k - pc < RECURD_PANEL_KC ? k - pc : RECURD_PANEL_KC;
        for (long j0 = 0; j0 < npad; j0 += RECURD_PANEL_NR, panel += (long)kc * RECURD_PANEL_NR) {
            const int rows = n - j0 < RECURD_PANEL_NR ? (int)(n - j0) : RECURD_PANEL_NR;
            for (int p0 = 0; p0 < kc; p0 += 16) {
                const int width = kc - p0 < 16 ? kc - p0 : 16;
                float *dst = panel + (long)p0 * RECURD_PANEL_NR;
                for (int j = 0; j < RECURD_PANEL_NR; j++) {
                    if (j < rows) {
                        const float *src = w + (j0 + j) * ldw + pc + p0;
                        for (int q = 0; q < width; q++) dst[q * RECURD_PANEL_NR + j] = src[q];
                    } else {
                        for (int q = 0; q < width; q++) dst[q * RECURD_PANEL_NR + j] = 0.0f;
                    }
                }
            }
        }
    }
}

int recurd_sgemm_packed_available(int isa) { return get_impl(isa)->sgemm_panels != NULL; }

void recurd_sgemm_packed_isa(int isa, int m, int n, int k, float alpha, const float *a, int lda,
                             const float *packed, float beta, float *c, int ldc) {
    packed_impl(isa, 1)->sgemm_panels(m, n, k, alpha, a, lda, packed, beta, c, ldc);
}

void recurd_sgemm_packed(int m, int n, int k, float alpha, const float *a, int lda,
                         const float *packed, float beta, float *c, int ldc) {
    packed_impl(RECURD_ISA_AUTO, 1)->sgemm_panels(m, n, k, alpha, a, lda, packed, beta, c, ldc);
}
