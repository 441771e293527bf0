#include "recurd_kernels.h"
#include <string.h>
#include <stdint.h>

#include "recurd_gemm.h"

// Three variants of the cell kernels, from one width-generic source, chosen per call with the
// products' ISA (recurd_kernels_isa): portable (4-lane vector extensions), AVX2+FMA and AVX-512
// (x86-64, by target attributes, so that the file needs no ISA flags and builds anywhere).

// ---- portable: 4 lanes, the width every target has (SSE2, NEON) ---------------------------------
typedef float VF4 __attribute__((vector_size(16)));
typedef int32_t VI4 __attribute__((vector_size(16)));
typedef uint32_t VU4 __attribute__((vector_size(16)));
static inline VF4 rcp4_portable(VF4 x) { VF4 one = {1, 1, 1, 1}; return one / x; }   // a division: exact
#define VF VF4
#define VI VI4
#define VU VU4
#define LANES 4
#define KERNEL_ATTR
#define RCP_ESTIMATE(x) rcp4_portable(x)
#define RCP_STEPS 0
#define SUFFIX portable
#include "cell_kernels_template.h"
#undef VF
#undef VI
#undef VU
#undef LANES
#undef KERNEL_ATTR
#undef RCP_ESTIMATE
#undef RCP_STEPS
#undef SUFFIX

#if defined(__x86_64__)
// ---- AVX2 + FMA (x86-64-v3: Haswell, Zen 1 and later) ----------------------------------------
typedef float VF8 __attribute__((vector_size(32)));
typedef int32_t VI8 __attribute__((vector_size(32)));
typedef uint32_t VU8 __attribute__((vector_size(32)));
#define VF VF8
#define VI VI8
#define VU VU8
#define LANES 8
#define KERNEL_ATTR __attribute__((target("avx2,fma")))
// A division, not the 12-bit estimate and two Newton steps: the cells are bound by the FMA
// pipes' work (exponential polynomials), and the divider runs beside them. 12 % faster cells
// on Zen 3, and the quotient is correctly rounded, as the portable variant's.
static inline __attribute__((target("avx2,fma"))) VF8 rcp8_div(VF8 x) { VF8 one = {1, 1, 1, 1, 1, 1, 1, 1}; return one / x; }
#define RCP_ESTIMATE(x) rcp8_div(x)
#define RCP_STEPS 0
#define SUFFIX avx2
#include "cell_kernels_template.h"
#undef VF
#undef VI
#undef VU
#undef LANES
#undef KERNEL_ATTR
#undef RCP_ESTIMATE
#undef RCP_STEPS
#undef SUFFIX

// ---- AVX-512 (Zen 4, Ice Lake and later) ----------------------------------------------------
// Twice the lanes per instruction: the elementwise work is bound by instruction throughput.
typedef float VF16 __attribute__((vector_size(64)));
typedef int32_t VI16 __attribute__((vector_size(64)));
typedef uint32_t VU16 __attribute__((vector_size(64)));

#define VF VF16
#define VI VI16
#define VU VU16
#define LANES 16
#define KERNEL_ATTR __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
#define RCP_ESTIMATE(x) __builtin_ia32_rcp14ps512_mask(x, (VF16){0}, (unsigned short)0xFFFF)
#define RCP_STEPS 1
#define SUFFIX avx512
#include "cell_kernels_template.h"
#undef VF
#undef VI
#undef VU
#undef LANES
#undef KERNEL_ATTR
#undef RCP_ESTIMATE
#undef RCP_STEPS
#undef SUFFIX
#define DISPATCH(name, ...) \
    switch (recurd_kernels_isa()) { \
        case RECURD_ISA_AVX512: name##_avx512(__VA_ARGS__); return; \
        case RECURD_ISA_AVX2: name##_avx2(__VA_ARGS__); return; \
        default: name##_portable(__VA_ARGS__); return; \
    }
#else
#define DISPATCH(name, ...) name##_portable(__VA_ARGS__); return;
#endif

void recurd_lstm_forward(int n, float *gates, const float *bias_ih, const float *bias_hh,
                         const float *c_prev, float *c_out, float *h_out, float *tanh_c) {
    DISPATCH(lstm_forward, n, gates, bias_ih, bias_hh, c_prev, c_out, h_out, tanh_c)
}

void recurd_lstm_step_rows(int rows, int n, const float *gates, long ldg, const float *bias_ih, const float *bias_hh,
                           float *c, long ldc, float *h, long ldh) {
    DISPATCH(lstm_step_rows, rows, n, gates, ldg, bias_ih, bias_hh, c, ldc, h, ldh)
}

void recurd_gru_forward(int n, float *gi, float *gh, const float *bias_ih, const float *bias_hh,
                        const float *h_prev, float *h_out) {
    DISPATCH(gru_forward, n, gi, gh, bias_ih, bias_hh, h_prev, h_out)
}

void recurd_lstm_backward(int n, const float *dh, float *dc, const float *gates,
                          const float *c_prev, const float *tanh_c, float *d_gates) {
    DISPATCH(lstm_backward, n, dh, dc, gates, c_prev, tanh_c, d_gates)
}

void recurd_gru_backward(int n, const float *dh, const float *gi, const float *gh,
                         const float *h_prev, float *d_gi, float *d_gh, float *dh_prev) {
    DISPATCH(gru_backward, n, dh, gi, gh, h_prev, d_gi, d_gh, dh_prev)
}

void recurd_exp(float *p, int count) { DISPATCH(exp_buffer, p, count) }
void recurd_sigmoid(float *p, int count) { DISPATCH(sigmoid_buffer, p, count) }
void recurd_tanh(float *p, int count) { DISPATCH(tanh_buffer, p, count) }
