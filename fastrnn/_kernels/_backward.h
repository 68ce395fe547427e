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
#include <string.h>
#include "_vmath.h"
#include "_gemm.h"

#define FR_DEFINE_BACKWARD(T, SFX)                                                            \
/* One basic-RNN step for one example, in place: d holds dL/da_t (the upstream gradient)  \
 * and becomes d = (d + dap) * (1 - h^2), h = a_next. */                                    \
FR_INLINE void fr_rnn_bwd_pointwise_##SFX##_impl(T *restrict d, const T *restrict dap, const T *restrict h, ptrdiff_t n)                                                  \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) {                                                       \
        T da_next = d[k] + dap[k];                                                            \
        d[k] = da_next * (1 - h[k] * h[k]);                                                   \
    }                                                                                         \
} \
FR_MULTI(void, fr_rnn_bwd_pointwise_##SFX, (T *restrict d, const T *restrict dap, const T *restrict h, ptrdiff_t n), (d, dap, h, n))                                        \
/* One LSTM step for one example, in place.  d (4n): the upstream dL/da_t in its first n   \
 * values on entry, the gate gradients [df, di, do, dc~] on return.  g: the activated gates \
 * [f, i, o, c] (4n); cn, cp: c_next, c_prev; d + dap: dL/da_next; dc: dL/dc_next in,       \
 * dL/dc_prev out. */                                                                         \
FR_INLINE void fr_lstm_bwd_pointwise_##SFX##_impl(T *restrict d, const T *restrict dap, T *restrict dc, const T *restrict g, const T *restrict cn, const T *restrict cp, ptrdiff_t n)                              \
{                                                                                             \
    const T *f = g, *i = g + n, *o = g + 2 * n, *cc = g + 3 * n;                              \
    for (ptrdiff_t k = 0; k < n; ++k) {                                                       \
        T da_next = d[k] + dap[k];                                                            \
        T tanh_c = fr_tanh_##SFX(cn[k]);                                                      \
        T gk = dc[k] + da_next * o[k] * (1 - tanh_c * tanh_c);                                \
        d[2 * n + k] = da_next * tanh_c * o[k] * (1 - o[k]);                                  \
        d[3 * n + k] = gk * i[k] * (1 - cc[k] * cc[k]);                                       \
        d[n + k] = gk * cc[k] * i[k] * (1 - i[k]);                                            \
        d[k] = gk * cp[k] * f[k] * (1 - f[k]);                                                \
        dc[k] = gk * f[k];                                                                    \
    }                                                                                         \
} \
FR_MULTI(void, fr_lstm_bwd_pointwise_##SFX, (T *restrict d, const T *restrict dap, T *restrict dc, const T *restrict g, const T *restrict cn, const T *restrict cp, ptrdiff_t n), (d, dap, dc, g, cn, cp, n))                                                                                             \
/* s[r] += d[c * ld + r] for every column c < n_cols: the bias gradients, summed over all   \
 * (example, step) columns, vectorised along the rows. */                                    \
FR_INLINE void fr_sum_columns_##SFX##_impl(const T *restrict d, ptrdiff_t rows, ptrdiff_t n_cols, ptrdiff_t ld, T *restrict s)   \
{                                                                                             \
    for (ptrdiff_t c = 0; c < n_cols; ++c)                                                    \
        for (ptrdiff_t r = 0; r < rows; ++r) s[r] += d[c * ld + r];                           \
} \
FR_MULTI(void, fr_sum_columns_##SFX, (const T *restrict d, ptrdiff_t rows, ptrdiff_t n_cols, ptrdiff_t ld, T *restrict s), (d, rows, n_cols, ld, s)) \
/* P := the panels of fr_panel_gemm (_gemm.h) of the transpose of W, i.e. of the rows x K   \
 * matrix W^T, where W (K x rows) comes as blocks of block_k rows each (W[0], W[1], ...,    \
 * row stride ldw: the LSTM's four gate blocks, merged or not).  A panel holds MR rows of   \
 * W^T for every k, k-major: for each k, MR consecutive values of row k of W.  So packing   \
 * needs no transpose: each row of W is read once, front to back, and its MR-value pieces   \
 * go to the panels (one sequential write stream per panel). */                            \
static void fr_panel_pack_t_##SFX(ptrdiff_t rows, ptrdiff_t K, const T *const *W,             \
                                  ptrdiff_t block_k, ptrdiff_t ldw, T *P)                     \
{                                                                                             \
    enum { MR = FR_PANEL_BYTES / sizeof(T) };                                                 \
    const ptrdiff_t full = rows / MR, tail = rows - full * MR;                                \
    for (ptrdiff_t k = 0; k < K; ++k) {                                                       \
        const T *src = W[k / block_k] + (k % block_k) * ldw;                                  \
        T *dst = P + k * MR;                                                                  \
        for (ptrdiff_t p = 0; p < full; ++p) /* fixed-size copies: vector moves */            \
            memcpy(dst + p * K * MR, src + p * MR, MR * sizeof(T));                           \
        if (tail) {                                                                           \
            T *out = dst + full * K * MR;                                                     \
            for (ptrdiff_t r = 0; r < tail; ++r) out[r] = src[full * MR + r];                 \
            for (ptrdiff_t r = tail; r < MR; ++r) out[r] = 0;                                 \
        }                                                                                     \
    }                                                                                         \
}

FR_DEFINE_BACKWARD(double, d)
FR_DEFINE_BACKWARD(float, f)

#endif /* FASTRNN_BACKWARD_H */
