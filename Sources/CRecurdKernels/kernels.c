#include "recurd_kernels.h"
#include <string.h>
#include <stdint.h>

// ---- AVX2 (every x86-64-v3 machine; also the portable fallback elsewhere) -------------------
typedef float VF8 __attribute__((vector_size(32)));
typedef int32_t VI8 __attribute__((vector_size(32)));
typedef uint32_t VU8 __attribute__((vector_size(32)));

#if defined(__AVX__)
#define RCP8(x) __builtin_ia32_rcpps256(x)
#else
static inline VF8 rcp8_portable(VF8 x) { VF8 one = {1, 1, 1, 1, 1, 1, 1, 1}; return one / x; }   // exact: Newton keeps it
#define RCP8(x) rcp8_portable(x)
#endif

#define VF VF8
#define VI VI8
#define VU VU8
#define LANES 8
#define KERNEL_ATTR
#define RCP_ESTIMATE(x) RCP8(x)
#define RCP_STEPS 2
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

// ---- AVX-512 (Zen 4, Ice Lake and later), chosen at run time --------------------------------
// Twice the lanes per instruction: the elementwise work is bound by instruction throughput.
#if defined(__x86_64__)
typedef float VF16 __attribute__((vector_size(64)));
typedef int32_t VI16 __attribute__((vector_size(64)));
typedef uint32_t VU16 __attribute__((vector_size(64)));
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))

#define VF VF16
#define VI VI16
#define VU VU16
#define LANES 16
#define KERNEL_ATTR AVX512
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

static int avx512_disabled = 0;

static int has_avx512(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    return cached && !avx512_disabled;
}

int recurd_kernels_use_avx512(int allowed) {
    avx512_disabled = !allowed;
    return has_avx512();
}
#else
static int has_avx512(void) { return 0; }
int recurd_kernels_use_avx512(int allowed) { (void)allowed; return 0; }
#endif

void recurd_lstm_forward(int n, float *gates, const float *bias_ih, const float *bias_hh,
                         const float *c_prev, float *c_out, float *h_out) {
#if defined(__x86_64__)
    if (has_avx512()) { lstm_forward_avx512(n, gates, bias_ih, bias_hh, c_prev, c_out, h_out); return; }
#endif
    lstm_forward_avx2(n, gates, bias_ih, bias_hh, c_prev, c_out, h_out);
}

void recurd_gru_forward(int n, float *gi, float *gh, const float *bias_ih, const float *bias_hh,
                        const float *h_prev, float *h_out) {
#if defined(__x86_64__)
    if (has_avx512()) { gru_forward_avx512(n, gi, gh, bias_ih, bias_hh, h_prev, h_out); return; }
#endif
    gru_forward_avx2(n, gi, gh, bias_ih, bias_hh, h_prev, h_out);
}

// ---- Backward and buffer kernels (8 lanes: not on the serving path) --------------------------

void recurd_lstm_backward(int n, const float *dh, float *dc, const float *gates,
                          const float *c_prev, const float *c, float *d_gates) {
    const VF8 one = splat_avx2(1.0f);
    for (int j = 0; j < n; j += 8) {
        int w = n - j < 8 ? n - j : 8;
        VF8 i = load_avx2(gates + j, w), f = load_avx2(gates + n + j, w);
        VF8 g = load_avx2(gates + 2 * n + j, w), o = load_avx2(gates + 3 * n + j, w);
        VF8 tc = vtanh_avx2(load_avx2(c + j, w));
        VF8 dhv = load_avx2(dh + j, w);
        VF8 dct = load_avx2(dc + j, w) + dhv * o * (one - tc * tc);
        store_avx2(d_gates + j, dct * g * i * (one - i), w);
        store_avx2(d_gates + n + j, dct * load_avx2(c_prev + j, w) * f * (one - f), w);
        store_avx2(d_gates + 2 * n + j, dct * i * (one - g * g), w);
        store_avx2(d_gates + 3 * n + j, dhv * tc * o * (one - o), w);
        store_avx2(dc + j, dct * f, w);
    }
}

void recurd_gru_backward(int n, const float *dh, const float *gi, const float *gh,
                         const float *h_prev, float *d_gi, float *d_gh, float *dh_prev) {
    const VF8 one = splat_avx2(1.0f);
    for (int j = 0; j < n; j += 8) {
        int w = n - j < 8 ? n - j : 8;
        VF8 r = load_avx2(gi + j, w), z = load_avx2(gi + n + j, w), cand = load_avx2(gi + 2 * n + j, w);
        VF8 hn = load_avx2(gh + 2 * n + j, w);
        VF8 dhv = load_avx2(dh + j, w);
        VF8 dan = dhv * (one - z) * (one - cand * cand);
        VF8 dar = dan * hn * r * (one - r);
        VF8 daz = dhv * (load_avx2(h_prev + j, w) - cand) * z * (one - z);
        store_avx2(d_gi + j, dar, w); store_avx2(d_gi + n + j, daz, w); store_avx2(d_gi + 2 * n + j, dan, w);
        store_avx2(d_gh + j, dar, w); store_avx2(d_gh + n + j, daz, w); store_avx2(d_gh + 2 * n + j, dan * r, w);
        store_avx2(dh_prev + j, dhv * z, w);
    }
}

void recurd_exp(float *p, int count) {
    for (int i = 0; i < count; i += 8) { int w = count - i < 8 ? count - i : 8; store_avx2(p + i, vexp_avx2(load_avx2(p + i, w)), w); }
}

void recurd_sigmoid(float *p, int count) {
    for (int i = 0; i < count; i += 8) { int w = count - i < 8 ? count - i : 8; store_avx2(p + i, vsigmoid_avx2(load_avx2(p + i, w)), w); }
}

void recurd_tanh(float *p, int count) {
    for (int i = 0; i < count; i += 8) { int w = count - i < 8 ? count - i : 8; store_avx2(p + i, vtanh_avx2(load_avx2(p + i, w)), w); }
}
