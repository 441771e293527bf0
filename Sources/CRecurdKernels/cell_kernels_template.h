// The width-generic part of the cell kernels, included by kernels.c once per vector width with
// these macros defined: VF (float vector), VI (int32 vector), VU (uint32 vector), LANES,
// KERNEL_ATTR (the target attribute, or nothing), RCP_ESTIMATE(x) (a division, or the hardware
// reciprocal estimate), RCP_STEPS (Newton steps after it) and SUFFIX (appended to every name).
// One source, so the variants cannot drift apart; KernelVariantTests checks that they agree.

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define NAME(x) CAT(x, SUFFIX)

KERNEL_ATTR static inline VF NAME(splat)(float x) {
    VF v;
    for (int i = 0; i < LANES; i++) v[i] = x;
    return v;
}

KERNEL_ATTR static inline VF NAME(load)(const float *p, int w) {
    if (w == LANES) { VF v; memcpy(&v, p, sizeof v); return v; }
    VF v = NAME(splat)(0.0f);
    for (int i = 0; i < w; i++) v[i] = p[i];
    return v;
}

KERNEL_ATTR static inline void NAME(store)(float *p, VF v, int w) {
    if (w == LANES) { memcpy(p, &v, sizeof v); return; }
    for (int i = 0; i < w; i++) p[i] = v[i];
}

/// Cephes single-precision exp (≈1 ulp on its range). Adding 1.5·2²³ rounds to the nearest
/// integer and leaves it in the low mantissa bits, giving n as float and as integer at once.
/// The input is clamped to [−87.3, 88.37] (Cephes' MAXLOGF), where 2ⁿ stays finite: an infinite
/// exp would turn sigmoid's reciprocal into 0·∞ = NaN.
KERNEL_ATTR static inline VF NAME(vexp)(VF x) {
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, NAME(splat)(-87.3f)), NAME(splat)(88.37f));
    const VF magic = NAME(splat)(12582912.0f);
    VF shifted = x * NAME(splat)(1.44269504f) + magic;
    VF n = shifted - magic;
    VF r = x - n * NAME(splat)(0.693359375f);
    r = r - n * NAME(splat)(-2.12194440e-4f);
    VF z = r * r;
    VF y = NAME(splat)(1.9875691500e-4f);
    y = y * r + NAME(splat)(1.3981999507e-3f);
    y = y * r + NAME(splat)(8.3334519073e-3f);
    y = y * r + NAME(splat)(4.1665795894e-2f);
    y = y * r + NAME(splat)(1.6666665459e-1f);
    y = y * r + NAME(splat)(5.0000001201e-1f);
    y = y * z + r + NAME(splat)(1.0f);
    VI bits = ((VI)shifted - 0x4B400000 + 127) << 23;
    return y * (VF)bits;
}

/// 1/x: RCP_ESTIMATE (a division, or the hardware estimate) refined by RCP_STEPS Newton steps
/// (r += r·(1 − x·r); 1 after AVX-512's 14-bit estimate) until it is as good as a division, so
/// that saturated gates come out exactly 0 or 1.
KERNEL_ATTR static inline VF NAME(vrecip)(VF x) {
    VF r = RCP_ESTIMATE(x);
    for (int i = 0; i < RCP_STEPS; i++) r = r + r * (NAME(splat)(1.0f) - x * r);
    return r;
}

KERNEL_ATTR static inline VF NAME(vsigmoid)(VF x) { return NAME(vrecip)(NAME(splat)(1.0f) + NAME(vexp)(-x)); }

/// tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}); the sign bit is put back afterwards. In two
/// pieces, the exponential t and then the rest, which the staged LSTM row below runs in separate
/// passes; vtanh is the two composed.
KERNEL_ATTR static inline VF NAME(vtanh_exp)(VF x) {
    return NAME(vexp)(NAME(splat)(-2.0f) * (VF)((VU)x & 0x7FFFFFFFu));
}

KERNEL_ATTR static inline VF NAME(vtanh_finish)(VF x, VF t) {
    VF p = (NAME(splat)(1.0f) - t) * NAME(vrecip)(NAME(splat)(1.0f) + t);
    return (VF)((VU)p | ((VU)x & 0x80000000u));
}

KERNEL_ATTR static inline VF NAME(vtanh)(VF x) { return NAME(vtanh_finish)(x, NAME(vtanh_exp)(x)); }

/// Cells per stage of lstm_row: the stage buffers (4 of this many floats) stay in L1.
#define LSTM_STAGE 64

#define LSTM_GATE(k, j) (NAME(load)(pre + (k) * n + (j), w) + NAME(load)(bias_ih + (k) * n + (j), w) + NAME(load)(bias_hh + (k) * n + (j), w))

/// lstm_row's first pass on one vector (`w` wide) of cells at j, buffer position q.
KERNEL_ATTR static inline __attribute__((always_inline)) void NAME(lstm_pass1)(
    int w, int j, int q, int n, const float *pre, const float *bias_ih, const float *bias_hh,
    float *ei, float *ef, float *eg, float *eo) {
    NAME(store)(ei + q, NAME(vexp)(-LSTM_GATE(0, j)), w);
    NAME(store)(ef + q, NAME(vexp)(-LSTM_GATE(1, j)), w);
    NAME(store)(eg + q, NAME(vtanh_exp)(LSTM_GATE(2, j)), w);
    NAME(store)(eo + q, NAME(vexp)(-LSTM_GATE(3, j)), w);
}

/// lstm_row's second pass on one vector of cells: the gates, c, and the exponential of c.
KERNEL_ATTR static inline __attribute__((always_inline)) void NAME(lstm_pass2)(
    int w, int j, int q, int n, const float *pre, float *activated, const float *bias_ih, const float *bias_hh,
    const float *c_prev, float *c_out, float *ei, const float *ef, const float *eg, float *eo) {
    const VF one = NAME(splat)(1.0f);
    const VF i = NAME(vrecip)(one + NAME(load)(ei + q, w));
    const VF f = NAME(vrecip)(one + NAME(load)(ef + q, w));
    const VF g = NAME(vtanh_finish)(LSTM_GATE(2, j), NAME(load)(eg + q, w));
    const VF o = NAME(vrecip)(one + NAME(load)(eo + q, w));
    const VF c = f * NAME(load)(c_prev + j, w) + i * g;
    if (activated) {
        NAME(store)(activated + j, i, w);
        NAME(store)(activated + n + j, f, w);
        NAME(store)(activated + 2 * n + j, g, w);
        NAME(store)(activated + 3 * n + j, o, w);
    }
    NAME(store)(c_out + j, c, w);
    NAME(store)(eo + q, o, w);
    NAME(store)(ei + q, NAME(vtanh_exp)(c), w);
}

/// lstm_row's third pass on one vector of cells: h = o · tanh(c), and tanh(c) kept in tanh_c
/// unless it is NULL.
KERNEL_ATTR static inline __attribute__((always_inline)) void NAME(lstm_pass3)(
    int w, int j, int q, const float *c_out, float *h_out, float *tanh_c, const float *ei, const float *eo) {
    const VF tc = NAME(vtanh_finish)(NAME(load)(c_out + j, w), NAME(load)(ei + q, w));
    if (tanh_c) NAME(store)(tanh_c + j, tc, w);
    NAME(store)(h_out + j, NAME(load)(eo + q, w) * tc, w);
}

/// One row of n LSTM cells: adds the biases to the pre-activations `pre` (gate order i, f, g, o),
/// applies the nonlinearities, writes c and h (c_out may alias c_prev) and, when `activated` is not
/// NULL, the activated gates there for the backward pass (`activated` may be `pre`), and tanh(c)
/// in `tanh_c` (which the backward pass would otherwise compute again) unless it is NULL.
///
/// In three passes over at most LSTM_STAGE cells: the four gates' exponentials, then the gates,
/// c and the exponential of c, then h. A cell's work is one long serial chain (exp polynomial,
/// reciprocal refinement, then tanh of the new c); passes whose iterations are independent let
/// the out-of-order core overlap many chains, and each pass's loop keeps its constants in
/// registers, where one fused loop body spilled them. Full vectors take a loop of their own, so
/// that their loads and stores carry no width test.
KERNEL_ATTR static inline __attribute__((always_inline)) void NAME(lstm_row)(
    int n, const float *pre, float *activated, const float *bias_ih, const float *bias_hh,
    const float *c_prev, float *c_out, float *h_out, float *tanh_c) {
    float ei[LSTM_STAGE] __attribute__((aligned(64))), ef[LSTM_STAGE] __attribute__((aligned(64)));
    float eg[LSTM_STAGE] __attribute__((aligned(64))), eo[LSTM_STAGE] __attribute__((aligned(64)));
    for (int j0 = 0; j0 < n; j0 += LSTM_STAGE) {
        const int m = n - j0 < LSTM_STAGE ? n - j0 : LSTM_STAGE, full = m - m % LANES;
        int q = 0;
        for (; q < full; q += LANES) NAME(lstm_pass1)(LANES, j0 + q, q, n, pre, bias_ih, bias_hh, ei, ef, eg, eo);
        if (q < m) NAME(lstm_pass1)(m - q, j0 + q, q, n, pre, bias_ih, bias_hh, ei, ef, eg, eo);
        for (q = 0; q < full; q += LANES)
            NAME(lstm_pass2)(LANES, j0 + q, q, n, pre, activated, bias_ih, bias_hh, c_prev, c_out, ei, ef, eg, eo);
        if (q < m) NAME(lstm_pass2)(m - q, j0 + q, q, n, pre, activated, bias_ih, bias_hh, c_prev, c_out, ei, ef, eg, eo);
        for (q = 0; q < full; q += LANES) NAME(lstm_pass3)(LANES, j0 + q, q, c_out, h_out, tanh_c, ei, eo);
        if (q < m) NAME(lstm_pass3)(m - q, j0 + q, q, c_out, h_out, tanh_c, ei, eo);
    }
}
#undef LSTM_GATE

KERNEL_ATTR static void NAME(lstm_forward)(int n, float *gates, const float *bias_ih, const float *bias_hh,
                                           const float *c_prev, float *c_out, float *h_out, float *tanh_c) {
    NAME(lstm_row)(n, gates, gates, bias_ih, bias_hh, c_prev, c_out, h_out, tanh_c);
}

/// lstm_forward for `rows` rows at once, for inference: the activated gates are not kept (no
/// backward pass follows; `gates` is only read), and c and h are updated in place.
KERNEL_ATTR static void NAME(lstm_step_rows)(int rows, int n, const float *gates, long ldg, const float *bias_ih,
                                             const float *bias_hh, float *c, long ldc, float *h, long ldh) {
    for (int r = 0; r < rows; r++)
        NAME(lstm_row)(n, gates + r * ldg, NULL, bias_ih, bias_hh, c + r * ldc, c + r * ldc, h + r * ldh, NULL);
}

/// U (1 or 2) vectors of GRU cells from unit j, each `w` wide: two independent chains side by
/// side keep the FMA units busy where one leaves them waiting on latency.
KERNEL_ATTR static inline __attribute__((always_inline)) void NAME(gru_block)(
    const int U, int j, int w, int n, float *gi, float *gh, const float *bias_ih, const float *bias_hh,
    const float *h_prev, float *h_out) {
    const VF one = NAME(splat)(1.0f);
#define PART(p, k, q) NAME(load)((p) + (k) * n + (q), w)
    VF r[2], z[2], hn[2], cand[2];
#pragma GCC unroll 2
    for (int u = 0; u < U; u++) {
        const int q = j + u * LANES;
        r[u] = NAME(vsigmoid)(PART(gi, 0, q) + PART(bias_ih, 0, q) + PART(gh, 0, q) + PART(bias_hh, 0, q));
        z[u] = NAME(vsigmoid)(PART(gi, 1, q) + PART(bias_ih, 1, q) + PART(gh, 1, q) + PART(bias_hh, 1, q));
    }
#pragma GCC unroll 2
    for (int u = 0; u < U; u++) {
        const int q = j + u * LANES;
        hn[u] = PART(gh, 2, q) + PART(bias_hh, 2, q);
        cand[u] = NAME(vtanh)(PART(gi, 2, q) + PART(bias_ih, 2, q) + r[u] * hn[u]);
    }
#undef PART
#pragma GCC unroll 2
    for (int u = 0; u < U; u++) {
        const int q = j + u * LANES;
        VF h = (one - z[u]) * cand[u] + z[u] * NAME(load)(h_prev + q, w);
        NAME(store)(gi + q, r[u], w);
        NAME(store)(gi + n + q, z[u], w);
        NAME(store)(gi + 2 * n + q, cand[u], w);
        NAME(store)(gh + 2 * n + q, hn[u], w);
        NAME(store)(h_out + q, h, w);
    }
}

KERNEL_ATTR static void NAME(gru_forward)(int n, float *gi, float *gh, const float *bias_ih, const float *bias_hh,
                                          const float *h_prev, float *h_out) {
    int j = 0;
    for (; j + 2 * LANES <= n; j += 2 * LANES) NAME(gru_block)(2, j, LANES, n, gi, gh, bias_ih, bias_hh, h_prev, h_out);
    for (; j < n; j += LANES) NAME(gru_block)(1, j, n - j < LANES ? n - j : LANES, n, gi, gh, bias_ih, bias_hh, h_prev, h_out);
}

KERNEL_ATTR static void NAME(lstm_backward)(int n, const float *dh, float *dc, const float *gates,
                                            const float *c_prev, const float *tanh_c, float *d_gates) {
    const VF one = NAME(splat)(1.0f);
    for (int j = 0; j < n; j += LANES) {
        int w = n - j < LANES ? n - j : LANES;
        VF i = NAME(load)(gates + j, w), f = NAME(load)(gates + n + j, w);
        VF g = NAME(load)(gates + 2 * n + j, w), o = NAME(load)(gates + 3 * n + j, w);
        VF tc = NAME(load)(tanh_c + j, w);
        VF dhv = NAME(load)(dh + j, w);
        VF dct = NAME(load)(dc + j, w) + dhv * o * (one - tc * tc);
        NAME(store)(d_gates + j, dct * g * i * (one - i), w);
        NAME(store)(d_gates + n + j, dct * NAME(load)(c_prev + j, w) * f * (one - f), w);
        NAME(store)(d_gates + 2 * n + j, dct * i * (one - g * g), w);
        NAME(store)(d_gates + 3 * n + j, dhv * tc * o * (one - o), w);
        NAME(store)(dc + j, dct * f, w);
    }
}

KERNEL_ATTR static void NAME(gru_backward)(int n, const float *dh, const float *gi, const float *gh,
                                           const float *h_prev, float *d_gi, float *d_gh, float *dh_prev) {
    const VF one = NAME(splat)(1.0f);
    for (int j = 0; j < n; j += LANES) {
        int w = n - j < LANES ? n - j : LANES;
        VF r = NAME(load)(gi + j, w), z = NAME(load)(gi + n + j, w), cand = NAME(load)(gi + 2 * n + j, w);
        VF hn = NAME(load)(gh + 2 * n + j, w);
        VF dhv = NAME(load)(dh + j, w);
        VF dan = dhv * (one - z) * (one - cand * cand);
        VF dar = dan * hn * r * (one - r);
        VF daz = dhv * (NAME(load)(h_prev + j, w) - cand) * z * (one - z);
        NAME(store)(d_gi + j, dar, w); NAME(store)(d_gi + n + j, daz, w); NAME(store)(d_gi + 2 * n + j, dan, w);
        NAME(store)(d_gh + j, dar, w); NAME(store)(d_gh + n + j, daz, w); NAME(store)(d_gh + 2 * n + j, dan * r, w);
        NAME(store)(dh_prev + j, dhv * z, w);
    }
}

KERNEL_ATTR static void NAME(exp_buffer)(float *p, int count) {
    for (int i = 0; i < count; i += LANES) { int w = count - i < LANES ? count - i : LANES; NAME(store)(p + i, NAME(vexp)(NAME(load)(p + i, w)), w); }
}

KERNEL_ATTR static void NAME(sigmoid_buffer)(float *p, int count) {
    for (int i = 0; i < count; i += LANES) { int w = count - i < LANES ? count - i : LANES; NAME(store)(p + i, NAME(vsigmoid)(NAME(load)(p + i, w)), w); }
}

KERNEL_ATTR static void NAME(tanh_buffer)(float *p, int count) {
    for (int i = 0; i < count; i += LANES) { int w = count - i < LANES ? count - i : LANES; NAME(store)(p + i, NAME(vtanh)(NAME(load)(p + i, w)), w); }
}

#undef NAME
#undef CAT
#undef CAT_
