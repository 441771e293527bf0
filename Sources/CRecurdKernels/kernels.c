#include "recurd_kernels.h"
#include <string.h>
#include <stdint.h>

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));
typedef uint32_t u8 __attribute__((vector_size(32)));

static inline v8 splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }

static inline v8 load(const float *p, int w) {
    if (w == 8) { v8 v; memcpy(&v, p, 32); return v; }
    v8 v = splat(0.0f);
    for (int i = 0; i < w; i++) v[i] = p[i];
    return v;
}

static inline void store(float *p, v8 v, int w) {
    if (w == 8) { memcpy(p, &v, 32); return; }
    for (int i = 0; i < w; i++) p[i] = v[i];
}

static inline v8 vmin(v8 a, v8 b) { return __builtin_elementwise_min(a, b); }
static inline v8 vmax(v8 a, v8 b) { return __builtin_elementwise_max(a, b); }

/// Cephes single-precision exp (≈1 ulp on its range). Adding 1.5·2²³ rounds to the nearest
/// integer and leaves it in the low mantissa bits, giving n as float and as integer at once.
static inline v8 vexp(v8 x) {
    x = vmin(vmax(x, splat(-87.3f)), splat(88.7f));
    const v8 magic = splat(12582912.0f);
    v8 shifted = x * splat(1.44269504f) + magic;
    v8 n = shifted - magic;
    v8 r = x - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    v8 z = r * r;
    v8 y = splat(1.9875691500e-4f);
    y = y * r + splat(1.3981999507e-3f);
    y = y * r + splat(8.3334519073e-3f);
    y = y * r + splat(4.1665795894e-2f);
    y = y * r + splat(1.6666665459e-1f);
    y = y * r + splat(5.0000001201e-1f);
    y = y * z + r + splat(1.0f);
    i8 bits = ((i8)shifted - 0x4B400000 + 127) << 23;
    return y * (v8)bits;
}

/// 1/x from the hardware estimate refined by one Newton step (relative error ≈ 1e-7, as a
/// division's), at a fraction of a division's cost.
static inline v8 vrecip(v8 x) {
#if defined(__AVX__)
    v8 r = __builtin_ia32_rcpps256(x);
    return r * (splat(2.0f) - x * r);
#else
    return splat(1.0f) / x;
#endif
}

static inline v8 vsigmoid(v8 x) { return vrecip(splat(1.0f) + vexp(-x)); }

/// tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}); the sign bit is put back afterwards.
static inline v8 vtanh(v8 x) {
    u8 bits = (u8)x;
    v8 m = (v8)(bits & 0x7FFFFFFFu);
    v8 t = vexp(splat(-2.0f) * m);
    v8 p = (splat(1.0f) - t) * vrecip(splat(1.0f) + t);
    return (v8)((u8)p | (bits & 0x80000000u));
}

static void lstm_forward_avx2(int n, float *gates, const float *bias_ih, const float *bias_hh,
                              const float *c_prev, float *c_out, float *h_out) {
    for (int j = 0; j < n; j += 8) {
        int w = n - j < 8 ? n - j : 8;
        v8 i = vsigmoid(load(gates + j, w) + load(bias_ih + j, w) + load(bias_hh + j, w));
        v8 f = vsigmoid(load(gates + n + j, w) + load(bias_ih + n + j, w) + load(bias_hh + n + j, w));
        v8 g = vtanh(load(gates + 2 * n + j, w) + load(bias_ih + 2 * n + j, w) + load(bias_hh + 2 * n + j, w));
        v8 o = vsigmoid(load(gates + 3 * n + j, w) + load(bias_ih + 3 * n + j, w) + load(bias_hh + 3 * n + j, w));
        v8 c = f * load(c_prev + j, w) + i * g;
        store(gates + j, i, w);
        store(gates + n + j, f, w);
        store(gates + 2 * n + j, g, w);
        store(gates + 3 * n + j, o, w);
        store(c_out + j, c, w);
        store(h_out + j, o * vtanh(c), w);
    }
}

void recurd_lstm_backward(int n, const float *dh, float *dc, const float *gates,
                          const float *c_prev, const float *c, float *d_gates) {
    const v8 one = splat(1.0f);
    for (int j = 0; j < n; j += 8) {
        int w = n - j < 8 ? n - j : 8;
        v8 i = load(gates + j, w), f = load(gates + n + j, w);
        v8 g = load(gates + 2 * n + j, w), o = load(gates + 3 * n + j, w);
        v8 tc = vtanh(load(c + j, w));
        v8 dhv = load(dh + j, w);
        v8 dct = load(dc + j, w) + dhv * o * (one - tc * tc);
        store(d_gates + j, dct * g * i * (one - i), w);
        store(d_gates + n + j, dct * load(c_prev + j, w) * f * (one - f), w);
        store(d_gates + 2 * n + j, dct * i * (one - g * g), w);
        store(d_gates + 3 * n + j, dhv * tc * o * (one - o), w);
        store(dc + j, dct * f, w);
    }
}

static void gru_forward_avx2(int n, float *gi, float *gh, const float *bias_ih, const float *bias_hh,
                             const float *h_prev, float *h_out) {
    const v8 one = splat(1.0f);
    for (int j = 0; j < n; j += 8) {
        int w = n - j < 8 ? n - j : 8;
        v8 r = vsigmoid(load(gi + j, w) + load(bias_ih + j, w) + load(gh + j, w) + load(bias_hh + j, w));
        v8 z = vsigmoid(load(gi + n + j, w) + load(bias_ih + n + j, w) + load(gh + n + j, w) + load(bias_hh + n + j, w));
        v8 hn = load(gh + 2 * n + j, w) + load(bias_hh + 2 * n + j, w);
        v8 cand = vtanh(load(gi + 2 * n + j, w) + load(bias_ih + 2 * n + j, w) + r * hn);
        v8 h = (one - z) * cand + z * load(h_prev + j, w);
        store(gi + j, r, w);
        store(gi + n + j, z, w);
        store(gi + 2 * n + j, cand, w);
        store(gh + 2 * n + j, hn, w);
        store(h_out + j, h, w);
    }
}

void recurd_gru_backward(int n, const float *dh, const float *gi, const float *gh,
                         const float *h_prev, float *d_gi, float *d_gh, float *dh_prev) {
    const v8 one = splat(1.0f);
    for (int j = 0; j < n; j += 8) {
        int w = n - j < 8 ? n - j : 8;
        v8 r = load(gi + j, w), z = load(gi + n + j, w), cand = load(gi + 2 * n + j, w);
        v8 hn = load(gh + 2 * n + j, w);
        v8 dhv = load(dh + j, w);
        v8 dan = dhv * (one - z) * (one - cand * cand);
        v8 dar = dan * hn * r * (one - r);
        v8 daz = dhv * (load(h_prev + j, w) - cand) * z * (one - z);
        store(d_gi + j, dar, w); store(d_gi + n + j, daz, w); store(d_gi + 2 * n + j, dan, w);
        store(d_gh + j, dar, w); store(d_gh + n + j, daz, w); store(d_gh + 2 * n + j, dan * r, w);
        store(dh_prev + j, dhv * z, w);
    }
}

void recurd_exp(float *p, int count) {
    for (int i = 0; i < count; i += 8) { int w = count - i < 8 ? count - i : 8; store(p + i, vexp(load(p + i, w)), w); }
}

void recurd_sigmoid(float *p, int count) {
    for (int i = 0; i < count; i += 8) { int w = count - i < 8 ? count - i : 8; store(p + i, vsigmoid(load(p + i, w)), w); }
}

void recurd_tanh(float *p, int count) {
    for (int i = 0; i < count; i += 8) { int w = count - i < 8 ? count - i : 8; store(p + i, vtanh(load(p + i, w)), w); }
}

// ---- AVX-512 variants (Zen 4, Ice Lake and later), chosen at run time ----------------------
// Twice the lanes per instruction: the elementwise work is bound by instruction throughput.
#if defined(__x86_64__)
typedef float w16 __attribute__((vector_size(64)));
typedef int32_t wi16 __attribute__((vector_size(64)));
typedef uint32_t wu16 __attribute__((vector_size(64)));
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))

AVX512 static inline w16 s16(float x) { return (w16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
AVX512 static inline w16 ld16(const float *p, int w) {
    if (w == 16) { w16 v; memcpy(&v, p, 64); return v; }
    w16 v = s16(0.0f);
    for (int i = 0; i < w; i++) v[i] = p[i];
    return v;
}
AVX512 static inline void st16(float *p, w16 v, int w) {
    if (w == 16) { memcpy(p, &v, 64); return; }
    for (int i = 0; i < w; i++) p[i] = v[i];
}
AVX512 static inline w16 exp16(w16 x) {
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, s16(-87.3f)), s16(88.7f));
    const w16 magic = s16(12582912.0f);
    w16 shifted = x * s16(1.44269504f) + magic;
    w16 n = shifted - magic;
    w16 r = x - n * s16(0.693359375f);
    r = r - n * s16(-2.12194440e-4f);
    w16 z = r * r;
    w16 y = s16(1.9875691500e-4f);
    y = y * r + s16(1.3981999507e-3f);
    y = y * r + s16(8.3334519073e-3f);
    y = y * r + s16(4.1665795894e-2f);
    y = y * r + s16(1.6666665459e-1f);
    y = y * r + s16(5.0000001201e-1f);
    y = y * z + r + s16(1.0f);
    wi16 bits = ((wi16)shifted - 0x4B400000 + 127) << 23;
    return y * (w16)bits;
}
AVX512 static inline w16 recip16(w16 x) {
    w16 r = __builtin_ia32_rcp14ps512_mask(x, s16(0.0f), (unsigned short)0xFFFF);
    return r * (s16(2.0f) - x * r);
}
AVX512 static inline w16 sigmoid16(w16 x) { return recip16(s16(1.0f) + exp16(-x)); }
AVX512 static inline w16 tanh16(w16 x) {
    wu16 bits = (wu16)x;
    w16 m = (w16)(bits & 0x7FFFFFFFu);
    w16 t = exp16(s16(-2.0f) * m);
    w16 p = (s16(1.0f) - t) * recip16(s16(1.0f) + t);
    return (w16)((wu16)p | (bits & 0x80000000u));
}

AVX512 static void lstm_forward_avx512(int n, float *gates, const float *bias_ih, const float *bias_hh,
                                       const float *c_prev, float *c_out, float *h_out) {
    for (int j = 0; j < n; j += 16) {
        int w = n - j < 16 ? n - j : 16;
        w16 i = sigmoid16(ld16(gates + j, w) + ld16(bias_ih + j, w) + ld16(bias_hh + j, w));
        w16 f = sigmoid16(ld16(gates + n + j, w) + ld16(bias_ih + n + j, w) + ld16(bias_hh + n + j, w));
        w16 g = tanh16(ld16(gates + 2 * n + j, w) + ld16(bias_ih + 2 * n + j, w) + ld16(bias_hh + 2 * n + j, w));
        w16 o = sigmoid16(ld16(gates + 3 * n + j, w) + ld16(bias_ih + 3 * n + j, w) + ld16(bias_hh + 3 * n + j, w));
        w16 c = f * ld16(c_prev + j, w) + i * g;
        st16(gates + j, i, w);
        st16(gates + n + j, f, w);
        st16(gates + 2 * n + j, g, w);
        st16(gates + 3 * n + j, o, w);
        st16(c_out + j, c, w);
        st16(h_out + j, o * tanh16(c), w);
    }
}

AVX512 static void gru_forward_avx512(int n, float *gi, float *gh, const float *bias_ih, const float *bias_hh,
                                      const float *h_prev, float *h_out) {
    const w16 one = s16(1.0f);
    for (int j = 0; j < n; j += 16) {
        int w = n - j < 16 ? n - j : 16;
        w16 r = sigmoid16(ld16(gi + j, w) + ld16(bias_ih + j, w) + ld16(gh + j, w) + ld16(bias_hh + j, w));
        w16 z = sigmoid16(ld16(gi + n + j, w) + ld16(bias_ih + n + j, w) + ld16(gh + n + j, w) + ld16(bias_hh + n + j, w));
        w16 hn = ld16(gh + 2 * n + j, w) + ld16(bias_hh + 2 * n + j, w);
        w16 cand = tanh16(ld16(gi + 2 * n + j, w) + ld16(bias_ih + 2 * n + j, w) + r * hn);
        w16 h = (one - z) * cand + z * ld16(h_prev + j, w);
        st16(gi + j, r, w);
        st16(gi + n + j, z, w);
        st16(gi + 2 * n + j, cand, w);
        st16(gh + 2 * n + j, hn, w);
        st16(h_out + j, h, w);
    }
}

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

