// The machine's single-core fp32 multiply-add peak, for `recurd bench kernels`: independent FMA
// chains and nothing else in the loop, per instruction set. Maths only (and a clock).
#include "recurd_gemm.h"
#include <time.h>

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
#include <immintrin.h>
// More chains than FMA latency × ports (4 × 2 on recent cores), so the loop is throughput-bound,
// and few enough that they and the two operands stay in registers: 32 zmm, but only 16 ymm (16
// AVX2 chains spill to memory and read about 40 % low).
#define CHAINS 16
#define CHAINS_AVX2 12
__attribute__((target("avx512f"), noinline)) static double peak_avx512(long iters) {
    __m512 acc[CHAINS], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    double t0 = seconds_now();
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    double dt = seconds_now() - t0;
    volatile float sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += _mm512_reduce_add_ps(acc[i]);
    return 2.0 * 16 * CHAINS * (double)iters / dt * 1e-9;
}
__attribute__((target("avx2,fma"), noinline)) static double peak_avx2(long iters) {
    __m256 acc[CHAINS_AVX2], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS_AVX2; i++) acc[i] = _mm256_set1_ps((float)i);
    double t0 = seconds_now();
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < CHAINS_AVX2; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    double dt = seconds_now() - t0;
    float tmp[8];
    volatile float sink = 0;
    for (int i = 0; i < CHAINS_AVX2; i++) { _mm256_storeu_ps(tmp, acc[i]); for (int l = 0; l < 8; l++) sink += tmp[l]; }
    return 2.0 * 8 * CHAINS_AVX2 * (double)iters / dt * 1e-9;
}
#endif

double recurd_fma_peak_gflops(int isa, long iterations) {
#if defined(__x86_64__)
    if (isa == RECURD_ISA_AVX512 && recurd_kernels_isa_available(RECURD_ISA_AVX512)) return peak_avx512(iterations);
    if (isa == RECURD_ISA_AVX2 && recurd_kernels_isa_available(RECURD_ISA_AVX2)) return peak_avx2(iterations);
#endif
    (void)isa;
    (void)iterations;
    return 0;
}
