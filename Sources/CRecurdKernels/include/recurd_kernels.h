// Elementwise kernels of the recurrent cells, in C with explicit vectors so that the compiler's
// code generation is predictable (Swift's SIMD types split and spill here; see `recurd bench
// step`): portable, AVX2 and AVX-512 variants chosen at run time. Maths only, no I/O; documented
// beside their Swift callers. The dense products are in recurd_gemm.h.
#ifndef RECURD_KERNELS_H
#define RECURD_KERNELS_H

/// LSTM step for one row of n units (gate order i, f, g, o). `gates` (4n) holds the
/// pre-activations without biases and receives the activated gates; c_out/h_out may alias c_prev.
/// tanh_c (n), unless NULL, receives tanh(c_out), for recurd_lstm_backward.
void recurd_lstm_forward(int n, float *gates, const float *bias_ih, const float *bias_hh,
                         const float *c_prev, float *c_out, float *h_out, float *tanh_c);

/// The LSTM step for `rows` rows (row r's pre-activations at gates + r·ldg, its c and h at
/// c + r·ldc and h + r·ldh, both updated in place), for inference: identical results to
/// recurd_lstm_forward row by row, without keeping the activated gates.
void recurd_lstm_step_rows(int rows, int n, const float *gates, long ldg, const float *bias_ih, const float *bias_hh,
                           float *c, long ldc, float *h, long ldh);

/// LSTM backward for one row: dc is ∂L/∂c_t on entry and ∂L/∂c_{t-1} on exit; d_gates (4n)
/// receives ∂L/∂pre-activations. tanh_c is tanh(c_t), as recurd_lstm_forward kept it.
void recurd_lstm_backward(int n, const float *dh, float *dc, const float *gates,
                          const float *c_prev, const float *tanh_c, float *d_gates);

/// GRU step for one row (gate order r, z, n; reset applied after the recurrent bias).
/// gi (3n) = x·W_ihᵀ receives activated r, z, n; gh (3n) = h·W_hhᵀ keeps h_n + b_hn in its
/// n-slot. h_out may alias h_prev.
void recurd_gru_forward(int n, float *gi, float *gh, const float *bias_ih, const float *bias_hh,
                        const float *h_prev, float *h_out);

/// GRU backward for one row: d_gi/d_gh (3n) receive the gradients of the input and recurrent
/// pre-activations; dh_prev (n) receives the direct part z⊙dh.
void recurd_gru_backward(int n, const float *dh, const float *gi, const float *gh,
                         const float *h_prev, float *d_gi, float *d_gh, float *dh_prev);

/// In place: p[i] = exp(p[i]), sigmoid(p[i]), tanh(p[i]).
void recurd_exp(float *p, int count);
void recurd_sigmoid(float *p, int count);
void recurd_tanh(float *p, int count);



// The variant (portable, AVX2, AVX-512) follows the products' choice: recurd_kernels_isa() and
// recurd_kernels_set_thread_isa() in recurd_gemm.h.
#include "recurd_gemm.h"
#endif
