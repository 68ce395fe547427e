/*
 * Fused element-wise passes of the backward kernels (fastrnn/_kernels/_backward.pyx).
 *
 * Same rules as _vmath.h, whose activations and dispatch macros they use: plain loops over
 * branch-free inline code that GCC vectorises, compiled once per instruction set and picked
 * at load time; never -ffast-math (NaN and inf must propagate as in the reference).  Each
 * expression is written in the reference's order of operations (fastrnn/reference.py), so
 * the two differ only in the rounding of tanh.
 */
#ifndef FASTRNN_BACKWARD_H
#define FASTRNN_BACKWARD_H

#if defined(__GNUC__)
/* this module uses a few of the header's static functions; the rest is not an error */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "_vmath.h"

#define FR_DEFINE_BACKWARD(T, SFX)                                                            \
/* One basic-RNN step for one example: d = (da + dap) * (1 - h^2), h = a_next. */             \
FR_INLINE void fr_rnn_bwd_pointwise_##SFX##_impl(const T *restrict da, const T *restrict dap, const T *restrict h, T *restrict d, ptrdiff_t n)                               \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) {                                                       \
        T da_next = da[k] + dap[k];                                                           \
        d[k] = da_next * (1 - h[k] * h[k]);                                                   \
    }                                                                                         \
} \
FR_MULTI(void, fr_rnn_bwd_pointwise_##SFX, (const T *restrict da, const T *restrict dap, const T *restrict h, T *restrict d, ptrdiff_t n), (da, dap, h, d, n))                                                                                             \
/* One LSTM step for one example.  g: the activated gates [f, i, o, c] (4n); cn, cp: c_next, \
 * c_prev; da + dap: dL/da_next; dc: dL/dc_next in, dL/dc_prev out.  Writes the gate        \
 * gradients d [df, di, do, dc~] (4n). */                                                     \
FR_INLINE void fr_lstm_bwd_pointwise_##SFX##_impl(const T *restrict da, const T *restrict dap, T *restrict dc, const T *restrict g, const T *restrict cn, const T *restrict cp, T *restrict d, ptrdiff_t n)                              \
{                                                                                             \
    const T *f = g, *i = g + n, *o = g + 2 * n, *cc = g + 3 * n;                              \
    T *df = d, *di = d + n, *dout = d + 2 * n, *dcc = d + 3 * n;                              \
    for (ptrdiff_t k = 0; k < n; ++k) {                                                       \
        T da_next = da[k] + dap[k];                                                           \
        T tanh_c = fr_tanh_##SFX(cn[k]);                                                      \
        T gk = dc[k] + da_next * o[k] * (1 - tanh_c * tanh_c);                                \
        dout[k] = da_next * tanh_c * o[k] * (1 - o[k]);                                       \
        dcc[k] = gk * i[k] * (1 - cc[k] * cc[k]);                                             \
        di[k] = gk * cc[k] * i[k] * (1 - i[k]);                                               \
        df[k] = gk * cp[k] * f[k] * (1 - f[k]);                                               \
        dc[k] = gk * f[k];                                                                    \
    }                                                                                         \
} \
FR_MULTI(void, fr_lstm_bwd_pointwise_##SFX, (const T *restrict da, const T *restrict dap, T *restrict dc, const T *restrict g, const T *restrict cn, const T *restrict cp, T *restrict d, ptrdiff_t n), (da, dap, dc, g, cn, cp, d, n))                                                                                             \
/* s[r] += d[c * ld + r] for every column c < n_cols: the bias gradients, summed over all   \
 * (example, step) columns, vectorised along the rows. */                                    \
FR_INLINE void fr_sum_columns_##SFX##_impl(const T *restrict d, ptrdiff_t rows, ptrdiff_t n_cols, ptrdiff_t ld, T *restrict s)   \
{                                                                                             \
    for (ptrdiff_t c = 0; c < n_cols; ++c)                                                    \
        for (ptrdiff_t r = 0; r < rows; ++r) s[r] += d[c * ld + r];                           \
} \
FR_MULTI(void, fr_sum_columns_##SFX, (const T *restrict d, ptrdiff_t rows, ptrdiff_t n_cols, ptrdiff_t ld, T *restrict s), (d, rows, n_cols, ld, s))

FR_DEFINE_BACKWARD(double, d)
FR_DEFINE_BACKWARD(float, f)

#endif /* FASTRNN_BACKWARD_H */
