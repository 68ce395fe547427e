/*
 * Vectorisable activations and fused element-wise passes for the fastrnn kernels.
 *
 * Every exported function works on contiguous arrays and is a plain loop over inline,
 * branch-free scalar code, so that GCC vectorises it.  On x86-64 with GCC each function is
 * compiled three times (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, baseline SSE2) and calls
 * the version of the active level (FR_MULTI: the best the CPU has, or a lower one forced
 * with FASTRNN_SIMD); elsewhere the portable loop is compiled once.  The passes defined with
 * FR_MULTI512 (exp, sigmoid and tanh in place, the RNN's tanh state, the LSTM's step) take
 * hand-written AVX-512 loops at that level instead (_vmath512.h, the same bits).  Nothing
 * here may be built with -ffast-math: the rounding trick in fr_expm1_parts and NaN
 * propagation through the clamps both rely on IEEE semantics.
 *
 * Accuracy (checked by tests/test_vmath.py against numpy in float64):
 *   exp, expm1 via Cody-Waite reduction to |r| <= ln2/2 and a Taylor polynomial
 *   (degree 13 for double, 7 for float): a few ulp.  tanh is computed from expm1 so it keeps
 *   its relative accuracy near 0.  Inputs are clamped before the reduction; exp overflows
 *   to +inf like numpy's and underflows to 0 below the smallest normal number (never a
 *   subnormal result); NaN propagates, +-inf saturate.
 */
#ifndef FASTRNN_VMATH_H
#define FASTRNN_VMATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
/* 64-byte vector types only live inside force-inlined helpers and single functions; GCC's
 * note that their calling convention differs between instruction sets does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
/* The activations are branch-free selects (clamps, overflow and underflow ends).  AVX-512
 * vectorises them with masked instructions; for AVX2 and SSE2 GCC must compute both sides of
 * each select, which it refuses while it assumes the program may read the floating-point
 * exception flags (-ftrapping-math, the default): the loops then stay scalar, several times
 * slower.  Nothing reads those flags here, and results are unchanged (this is not
 * -ffast-math: IEEE rounding, NaN and inf semantics all hold). */
#pragma GCC optimize("no-trapping-math")
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && (__GNUC__ >= 12) && !defined(FASTRNN_NO_DISPATCH)
#define FR_HAVE_DISPATCH 1
#else
#define FR_HAVE_DISPATCH 0
#endif

/* Helpers are force-inlined so that each dispatched version compiles them for its own
 * instruction set (a separate copy would be built for the baseline target only). */
#if defined(__GNUC__)
#define FR_INLINE static inline __attribute__((always_inline))
#else
#define FR_INLINE static inline
#endif

/* Unroll the next loop fully (its count a small constant), for loops over the vectors of a
 * block that must stay in registers: GCC's own heuristics unroll them at the AVX-512 level
 * but not at AVX2, where the block then goes through the stack (the packing transposes ran
 * 2.1-2.4x slower at AVX2 than at AVX-512 on AMD Zen 5; with this, the same). */
#if defined(__GNUC__)
#define FR_UNROLL _Pragma("GCC unroll 16")
#else
#define FR_UNROLL
#endif

/* ---------------------------------------------------------------- instruction-set levels
 *
 * Every dispatched function is compiled once per level (x86-64-v4 = AVX-512, x86-64-v3 =
 * AVX2+FMA, the SSE2 baseline) and calls the version of the active level, fr_isa.  That is
 * the best level the CPU supports unless fr_set_isa lowered it (FASTRNN_SIMD, read when the
 * module is imported; tests and benchmarks use it to run every level on one machine). */
#define FR_ISA_SSE2 0
#define FR_ISA_AVX2 1
#define FR_ISA_AVX512 2

static int fr_cpu_isa(void)
{
#if FR_HAVE_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return FR_ISA_AVX512;
    if (__builtin_cpu_supports("x86-64-v3")) return FR_ISA_AVX2;
#endif
    return FR_ISA_SSE2;
}

static int fr_isa = -1;  /* the active level; -1 until first asked */

static int fr_active_isa(void)
{
    if (fr_isa < 0) fr_isa = fr_cpu_isa();
    return fr_isa;
}

/* Make `level` the active one; returns the previous level, or -1 (nothing changed) when the
 * CPU does not support it.  Not meant to run while a kernel runs on another thread. */
static int fr_set_isa(int level)
{
    int old = fr_active_isa();
    if (level < FR_ISA_SSE2 || level > fr_cpu_isa()) return -1;
    fr_isa = level;
    return old;
}

/* FR_MULTI(R, name, (params), (args)) defines R name(params) from an FR_INLINE
 * name##_impl(params): one version per level and a switch on the active level.
 * FR_MULTI512 does the same but takes the AVX-512 version from name##_impl512 (written with
 * AVX-512 instructions GCC does not choose by itself: _vmath512.h). */
#if FR_HAVE_DISPATCH
#define FR_MULTI_V4(R, name, params, args, impl_v4)                                           \
__attribute__((target("arch=x86-64-v4"))) static R name##_v4 params { return impl_v4 args; }  \
__attribute__((target("arch=x86-64-v3"))) static R name##_v3 params { return name##_impl args; } \
static R name##_v1 params { return name##_impl args; }                                        \
static R name params                                                                          \
{                                                                                             \
    int level = fr_active_isa();                                                              \
    return level == FR_ISA_AVX512 ? name##_v4 args                                            \
         : level == FR_ISA_AVX2 ? name##_v3 args : name##_v1 args;                            \
}
#else
#define FR_MULTI_V4(R, name, params, args, impl_v4)                                           \
static R name params { return name##_impl args; }
#endif
#define FR_MULTI(R, name, params, args) FR_MULTI_V4(R, name, params, args, name##_impl)
#define FR_MULTI512(R, name, params, args) FR_MULTI_V4(R, name, params, args, name##_impl512)

/* Name of the active instruction-set level. */
static const char *fr_simd_level(void)
{
#if FR_HAVE_DISPATCH
    switch (fr_active_isa()) {
    case FR_ISA_AVX512: return "x86-64-v4 (AVX-512)";
    case FR_ISA_AVX2: return "x86-64-v3 (AVX2+FMA)";
    default: return "x86-64 baseline (SSE2)";
    }
#else
    return "portable (no run-time dispatch)";
#endif
}

/* ---------------------------------------------------------------- scalar cores (inline) */

/* The constants of exp and tanh, shared with the AVX-512 versions (_vmath512.h). */
#define FR_SHIFTER_d 6755399441055744.0 /* 1.5 * 2^52 */
#define FR_SHIFTER_f 12582912.0f        /* 1.5 * 2^23 */
#define FR_LOG2E_d 1.4426950408889634074
#define FR_LOG2E_f 1.44269504088896341f
#define FR_LN2_HI_d 6.93147180369123816490e-01 /* 32 significant bits: n*ln2_hi exact */
#define FR_LN2_HI_f 0.693359375f               /* 9 significant bits: n*ln2_hi exact */
#define FR_LN2_LO_d 1.90821492927058770002e-10
#define FR_LN2_LO_f -2.12194440e-4f
/* exp's clamp of its argument (2^n stays normal), and the arguments below which it is 0 and
 * above which it is +inf; tanh's saturation (|x| beyond it gives +-1 to the last bit) */
#define FR_EXP_LO_d -708.3964185322641
#define FR_EXP_LO_f -87.33654f
#define FR_EXP_HI_d 709.8
#define FR_EXP_HI_f 88.8f
#define FR_EXP_ZERO_d -708.3964185322641
#define FR_EXP_ZERO_f -87.33654022216797f
#define FR_EXP_INF_d 709.782712893384
#define FR_EXP_INF_f 88.72283935546875f
#define FR_TANH_SAT_d 20.0
#define FR_TANH_SAT_f 10.0f
/* The Taylor polynomial of expm1(r) / r (degree 12 for double, 6 for float), from the top
 * coefficient down, evaluated by Horner's rule: p = top, then p = p * r + c for each c. */
#define FR_TAYLOR_TOP_d (1.0 / 6227020800.0) /* 1/13! */
#define FR_TAYLOR_d(STEP)                                                                     \
    STEP(1.0 / 479001600.0) STEP(1.0 / 39916800.0) STEP(1.0 / 3628800.0) STEP(1.0 / 362880.0) \
    STEP(1.0 / 40320.0) STEP(1.0 / 5040.0) STEP(1.0 / 720.0) STEP(1.0 / 120.0)               \
    STEP(1.0 / 24.0) STEP(1.0 / 6.0) STEP(0.5) STEP(1.0)
#define FR_TAYLOR_TOP_f (1.0f / 5040.0f) /* 1/7! */
#define FR_TAYLOR_f(STEP)                                                                     \
    STEP(1.0f / 720.0f) STEP(1.0f / 120.0f) STEP(1.0f / 24.0f) STEP(1.0f / 6.0f) STEP(0.5f)   \
    STEP(1.0f)
#define FR_HORNER(c) p = p * r + (c);

/* x = n*ln2 + r, |r| <= ln2/2; returns expm1(r) and sets *scale = 2^n (2^(n-1) with the
 * exponent bias one less: 1022 / 126 instead of 1023 / 127, for results near overflow).
 * The caller has clamped x so that 2^n is a normal number.  n is rounded with the 1.5*2^52
 * trick, whose low mantissa bits then hold n itself, so the exponent is built with integer
 * adds and shifts (which vectorise) instead of a double->int64 conversion (which does not
 * before AVX-512). */
FR_INLINE double fr_expm1_parts_d(double x, uint64_t bias, double *scale)
{
    const double shifter = FR_SHIFTER_d, log2e = FR_LOG2E_d;
    const double ln2_hi = FR_LN2_HI_d, ln2_lo = FR_LN2_LO_d;
    double t = x * log2e + shifter;
    double n = t - shifter;
    double r = (x - n * ln2_hi) - n * ln2_lo;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + bias) << 52;
    memcpy(scale, &bits, sizeof bits);
    double p = FR_TAYLOR_TOP_d;
    FR_TAYLOR_d(FR_HORNER)
    return p * r;
}

FR_INLINE float fr_expm1_parts_f(float x, uint32_t bias, float *scale)
{
    const float shifter = FR_SHIFTER_f, log2e = FR_LOG2E_f;
    const float ln2_hi = FR_LN2_HI_f, ln2_lo = FR_LN2_LO_f;
    float t = x * log2e + shifter;
    float n = t - shifter;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + bias) << 23;
    memcpy(scale, &bits, sizeof bits);
    float p = FR_TAYLOR_TOP_f;
    FR_TAYLOR_f(FR_HORNER)
    return p * r;
}

/* Clamp that keeps NaN (both comparisons are false for NaN). */
#define FR_CLAMP(x, lo, hi) ((x) < (lo) ? (lo) : ((x) > (hi) ? (hi) : (x)))

/* exp over the whole normal range: below the smallest normal result the answer is 0 (never
 * subnormal: the flush-to-zero result), above the largest finite one +inf, as numpy's, so
 * sigmoid(-huge) = 1 / (1 + inf) is exactly 0, as in the reference.  2^n must be normal:
 * near the top (x > 709 / 88) the result is built as 2^(n-1) * (1 + p) * 2. */
FR_INLINE double fr_exp_d(double x)
{
    int top = x > 709.0;
    double s;
    double p = fr_expm1_parts_d(FR_CLAMP(x, FR_EXP_LO_d, FR_EXP_HI_d), top ? 1022u : 1023u, &s);
    double r = (s * p + s) * (top ? 2.0 : 1.0);
    r = x > FR_EXP_INF_d ? __builtin_inf() : r;
    return x < FR_EXP_ZERO_d ? 0.0 : r;
}

FR_INLINE float fr_exp_f(float x)
{
    int top = x > 88.0f;
    float s;
    float p = fr_expm1_parts_f(FR_CLAMP(x, FR_EXP_LO_f, FR_EXP_HI_f), top ? 126u : 127u, &s);
    float r = (s * p + s) * (top ? 2.0f : 1.0f);
    r = x > FR_EXP_INF_f ? __builtin_inff() : r;
    return x < FR_EXP_ZERO_f ? 0.0f : r;
}

FR_INLINE double fr_sigmoid_d(double x) { return 1.0 / (1.0 + fr_exp_d(-x)); }
FR_INLINE float fr_sigmoid_f(float x) { return 1.0f / (1.0f + fr_exp_f(-x)); }

/* tanh(x) = -u / (2 + u) with u = expm1(-2|x|), sign restored; |x| beyond 20 (double) / 10
 * (float) is already +-1 to the last bit. */
FR_INLINE double fr_tanh_d(double x)
{
    double ax = __builtin_fabs(x);
    double y = -2.0 * (ax > FR_TANH_SAT_d ? FR_TANH_SAT_d : ax);
    double s;
    double p = fr_expm1_parts_d(y, 1023u, &s);
    double u = s * p + (s - 1.0);
    return __builtin_copysign(-u / (2.0 + u), x);
}

FR_INLINE float fr_tanh_f(float x)
{
    float ax = __builtin_fabsf(x);
    float y = -2.0f * (ax > FR_TANH_SAT_f ? FR_TANH_SAT_f : ax);
    float s;
    float p = fr_expm1_parts_f(y, 127u, &s);
    float u = s * p + (s - 1.0f);
    return __builtin_copysignf(-u / (2.0f + u), x);
}

/* ---------------------------------------------------------------- array passes (dispatched) */

/* Smallest normal number of each type: below it (and not 0) a value is subnormal. */
#define FR_TINY_d 2.2250738585072014e-308
#define FR_TINY_f 1.17549435e-38f
#define FR_FABS_d __builtin_fabs
#define FR_FABS_f __builtin_fabsf

/* Number of subnormal values in x, in its own loop (folded into a loop that also computes,
 * the count keeps GCC from vectorising it). */
#define FR_DEFINE_NSUB(T, SFX)                                                                \
FR_INLINE ptrdiff_t fr_nsub_##SFX(const T *x, ptrdiff_t n)                                    \
{                                                                                             \
    ptrdiff_t count = 0;                                                                      \
    for (ptrdiff_t k = 0; k < n; ++k) {                                                       \
        T a = FR_FABS_##SFX(x[k]);                                                            \
        count += (a < FR_TINY_##SFX) & (a != 0);                                              \
    }                                                                                         \
    return count;                                                                             \
}
FR_DEFINE_NSUB(double, d)
FR_DEFINE_NSUB(float, f)

/* The activations over arrays in place, one element at a time: each level's compiler
 * vectorises the loops.  The AVX-512 level has its own (_vmath512.h, the same bits). */
#define FR_DEFINE_ARRAYS(T, SFX)                                                              \
FR_INLINE void fr_exp_inplace_##SFX##_impl(T *x, ptrdiff_t n)                                 \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = fr_exp_##SFX(x[k]);                              \
}                                                                                             \
FR_INLINE void fr_sigmoid_inplace_##SFX##_impl(T *x, ptrdiff_t n)                             \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = fr_sigmoid_##SFX(x[k]);                          \
}                                                                                             \
FR_INLINE void fr_tanh_inplace_##SFX##_impl(T *x, ptrdiff_t n)                                \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = fr_tanh_##SFX(x[k]);                             \
}                                                                                             \
/* The LSTM cell from its activated gates g = [f, i, o, cct] (n each): c = f * c_prev +       \
 * i * cct, h = o * tanh(c); returns how many of the new c and h are subnormal. */            \
FR_INLINE ptrdiff_t fr_lstm_cell_##SFX##_impl(const T *restrict g, const T *restrict c_prev,  \
                                              T *restrict c, T *restrict h, ptrdiff_t n)      \
{                                                                                             \
    /* restrict: c, h, c_prev and g never overlap, and GCC gives up vectorising this loop     \
     * when it has to check every pair of its seven arrays at run time */                     \
    const T *restrict f = g, *restrict i = g + n, *restrict o = g + 2 * n;                    \
    const T *restrict cc = g + 3 * n;                                                         \
    /* three simple loops: GCC vectorises each (the fused one stays scalar for AVX2) */       \
    for (ptrdiff_t k = 0; k < n; ++k) c[k] = f[k] * c_prev[k] + i[k] * cc[k];                 \
    for (ptrdiff_t k = 0; k < n; ++k) h[k] = fr_tanh_##SFX(c[k]);                             \
    for (ptrdiff_t k = 0; k < n; ++k) h[k] *= o[k];                                           \
    return fr_nsub_##SFX(c, n) + fr_nsub_##SFX(h, n);                                         \
}
FR_DEFINE_ARRAYS(double, d)
FR_DEFINE_ARRAYS(float, f)

#include "_vmath512.h"

/* The passes that apply activations, written once over one kind of array activations:
 * SUF empty for the loops above, 512 for the AVX-512 ones; ATTR is that kind's target. */
#define FR_DEFINE_ACT_PASSES(T, SFX, SUF, ATTR)                                               \
/* The RNN's state pass: x := tanh(x); returns how many results are subnormal (the caller     \
 * flushes them when that cannot change a later result's NaN/inf pattern). */                 \
ATTR FR_INLINE ptrdiff_t fr_tanh_state_##SFX##_impl##SUF(T *x, ptrdiff_t n)                   \
{                                                                                             \
    fr_tanh_inplace_##SFX##_impl##SUF(x, n);                                                  \
    return fr_nsub_##SFX(x, n);                                                               \
}                                                                                             \
/* One LSTM step for one example.  g holds the 4n pre-activations in the packed gate order    \
 * [f, i, o, c] (c: the candidate, the lessons' cct); they are replaced by their activations  \
 * (kept for the caches).  Writes c = f * c_prev + i * cct and h = o * tanh(c).  No           \
 * flush-to-zero mode: every product is IEEE (a subnormal forget gate times a huge c_prev is  \
 * the reference's finite value, not 0).  Returns how many of the new c and h are subnormal   \
 * (the caller flushes them where that cannot change a result: see the cores). */             \
ATTR FR_INLINE ptrdiff_t fr_lstm_pointwise_##SFX##_impl##SUF(T *g, const T *c_prev, T *c, T *h, \
                                                         ptrdiff_t n)                         \
{                                                                                             \
    fr_sigmoid_inplace_##SFX##_impl##SUF(g, 3 * n);                                           \
    fr_tanh_inplace_##SFX##_impl##SUF(g + 3 * n, n);                                          \
    return fr_lstm_cell_##SFX##_impl##SUF(g, c_prev, c, h, n);                                \
}

#define FR_DEFINE_PASSES(T, SFX)                                                              \
FR_DEFINE_ACT_PASSES(T, SFX, , )                                                              \
FR_DEFINE_ACT_PASSES_512(T, SFX)                                                              \
FR_MULTI512(void, fr_exp_inplace_##SFX, (T *x, ptrdiff_t n), (x, n))                          \
FR_MULTI512(void, fr_sigmoid_inplace_##SFX, (T *x, ptrdiff_t n), (x, n))                      \
FR_MULTI512(void, fr_tanh_inplace_##SFX, (T *x, ptrdiff_t n), (x, n))                         \
FR_MULTI512(ptrdiff_t, fr_tanh_state_##SFX, (T *x, ptrdiff_t n), (x, n))                      \
FR_MULTI512(ptrdiff_t, fr_lstm_pointwise_##SFX, (T *g, const T *c_prev, T *c, T *h, ptrdiff_t n), \
            (g, c_prev, c, h, n))                                                             \
/* Subnormal values of x := 0 (sign kept). */                                                 \
FR_INLINE void fr_flush_##SFX##_impl(T *x, ptrdiff_t n)                                       \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k)                                                         \
        x[k] = FR_FABS_##SFX(x[k]) < FR_TINY_##SFX ? x[k] * 0 : x[k];                        \
}                                                                                             \
FR_MULTI(void, fr_flush_##SFX, (T *x, ptrdiff_t n), (x, n))                                   \
/* 1 when the rows x cols block of x (row stride ld) holds no inf or NaN. */                 \
FR_INLINE int fr_all_finite_##SFX##_impl(const T *x, ptrdiff_t rows, ptrdiff_t cols,         \
                                         ptrdiff_t ld)                                        \
{                                                                                             \
    int bad = 0;                                                                              \
    for (ptrdiff_t r = 0; r < rows; ++r)                                                      \
        for (ptrdiff_t k = 0; k < cols; ++k) bad |= (x[r * ld + k] - x[r * ld + k]) != 0;    \
    return !bad;                                                                              \
}                                                                                             \
FR_MULTI(int, fr_all_finite_##SFX, (const T *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld),\
         (x, rows, cols, ld))                                                                 \
/* Softmax of every column of the row-major (n_rows, n_cols) matrix y (row stride ld),       \
 * each column shifted by its own maximum.  NaN in a column makes the whole column NaN and   \
 * +inf makes it NaN, as numpy's max/exp/sum do.  Columns go in blocks so the per-column     \
 * maxima and sums live on the stack and the inner loops run along contiguous rows; a lone   \
 * column (a streaming step) is gathered into a contiguous buffer instead, so exp still runs \
 * vectorised. */                                                                             \
FR_INLINE void fr_softmax_cols_##SFX##_impl(T *y, ptrdiff_t n_rows, ptrdiff_t n_cols,        \
                                             ptrdiff_t ld)                                    \
{                                                                                             \
    enum { B = 256 };                                                                         \
    T mx[B], sm[B];                                                                           \
    if (n_rows <= 0) /* no output layer */                                                    \
        return;                                                                               \
    if (n_cols == 1) {                                                                        \
        T big = y[0], total = 0;                                                              \
        for (ptrdiff_t r = 1; r < n_rows; ++r) {                                              \
            T v = y[r * ld];                                                                  \
            big = (v > big || v != v) ? v : big;                                              \
        }                                                                                     \
        for (ptrdiff_t r0 = 0; r0 < n_rows; r0 += B) {                                        \
            ptrdiff_t nb = n_rows - r0 < B ? n_rows - r0 : B;                                 \
            for (ptrdiff_t k = 0; k < nb; ++k) mx[k] = y[(r0 + k) * ld] - big;                \
            for (ptrdiff_t k = 0; k < nb; ++k) mx[k] = fr_exp_##SFX(mx[k]);                   \
            for (ptrdiff_t k = 0; k < nb; ++k) {                                              \
                total += mx[k];                                                               \
                y[(r0 + k) * ld] = mx[k];                                                     \
            }                                                                                 \
        }                                                                                     \
        T inv = (T)1 / total;                                                                 \
        for (ptrdiff_t r = 0; r < n_rows; ++r) y[r * ld] *= inv;                              \
        return;                                                                               \
    }                                                                                         \
    for (ptrdiff_t c0 = 0; c0 < n_cols; c0 += B) {                                            \
        ptrdiff_t nb = n_cols - c0 < B ? n_cols - c0 : B;                                     \
        T *y0 = y + c0;                                                                       \
        for (ptrdiff_t k = 0; k < nb; ++k) { mx[k] = y0[k]; sm[k] = 0; }                      \
        for (ptrdiff_t r = 1; r < n_rows; ++r) {                                              \
            const T *row = y0 + r * ld;                                                       \
            for (ptrdiff_t k = 0; k < nb; ++k) {                                              \
                T v = row[k];                                                                 \
                mx[k] = (v > mx[k] || v != v) ? v : mx[k];                                    \
            }                                                                                 \
        }                                                                                     \
        for (ptrdiff_t r = 0; r < n_rows; ++r) {                                              \
            T *row = y0 + r * ld;                                                             \
            for (ptrdiff_t k = 0; k < nb; ++k) {                                              \
                T e = fr_exp_##SFX(row[k] - mx[k]);                                           \
                row[k] = e;                                                                   \
                sm[k] += e;                                                                   \
            }                                                                                 \
        }                                                                                     \
        for (ptrdiff_t k = 0; k < nb; ++k) sm[k] = (T)1 / sm[k];                              \
        for (ptrdiff_t r = 0; r < n_rows; ++r) {                                              \
            T *row = y0 + r * ld;                                                             \
            for (ptrdiff_t k = 0; k < nb; ++k) row[k] *= sm[k];                               \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
FR_MULTI(void, fr_softmax_cols_##SFX, (T *y, ptrdiff_t n_rows, ptrdiff_t n_cols, ptrdiff_t ld), \
         (y, n_rows, n_cols, ld))

FR_DEFINE_PASSES(double, d)
FR_DEFINE_PASSES(float, f)

/* Number of subnormal values in x (a cheap, vectorised scan). */
FR_INLINE ptrdiff_t fr_count_subnormal_d_impl(const double *x, ptrdiff_t n)
{
    ptrdiff_t count = 0;
    for (ptrdiff_t k = 0; k < n; ++k) {
        double a = __builtin_fabs(x[k]);
        count += (a < 2.2250738585072014e-308) & (a != 0.0);
    }
    return count;
}

FR_INLINE ptrdiff_t fr_count_subnormal_f_impl(const float *x, ptrdiff_t n)
{
    ptrdiff_t count = 0;
    for (ptrdiff_t k = 0; k < n; ++k) {
        float a = __builtin_fabsf(x[k]);
        count += (a < 1.17549435e-38f) & (a != 0.0f);
    }
    return count;
}

FR_MULTI(ptrdiff_t, fr_count_subnormal_d, (const double *x, ptrdiff_t n), (x, n))
FR_MULTI(ptrdiff_t, fr_count_subnormal_f, (const float *x, ptrdiff_t n), (x, n))

/* ---------------------------------------------------------------- small-batch products */

/* Z[r*zrs + j*zcs] += dot(W[r, :K], H[j, :K]) for r < rows, j < m, with W row-major (row
 * stride ldw) and the m vectors of H contiguous (stride ldh).  Each row of W is read once
 * for up to four vectors at a time, which is what a few-example batch needs: m separate gemv
 * calls stream W m times, and OpenBLAS's gemm repacks W on every call.
 *
 * Tiles of RB rows x MB vectors keep RB*MB (= 8) independent vector accumulators in
 * registers (GCC/Clang vector extensions; one register each: 64 bytes at AVX-512, 32 at AVX2,
 * 16 at SSE2); their lanes are added in a fixed tree at the end, then the scalar tail.  No
 * re-association is left to the compiler, so no -ffast-math is needed. */
#if defined(__GNUC__)
typedef double fr_vec_d __attribute__((vector_size(64)));
typedef float fr_vec_f __attribute__((vector_size(64)));
#define FR_V_d 8
#define FR_V_f 16

/* The narrower vectors: the AVX2 (32 bytes) and SSE2 (16 bytes) accumulators, the halves
 * of a horizontal sum, the transposes' blocks (_transpose.h). */
typedef double fr_v4d __attribute__((vector_size(32)));
typedef double fr_v2d __attribute__((vector_size(16)));
typedef float fr_v8f __attribute__((vector_size(32)));
typedef float fr_v4f __attribute__((vector_size(16)));
typedef float fr_v2f __attribute__((vector_size(8)));
/* Horizontal sums in a fixed order: lane k + lane k + width/2, halving. */
#if defined(__clang__) || __GNUC__ >= 12
FR_INLINE double fr_hsum_d(fr_vec_d v)
{
    fr_v4d a = __builtin_shufflevector(v, v, 0, 1, 2, 3)
             + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    fr_v2d b = __builtin_shufflevector(a, a, 0, 1) + __builtin_shufflevector(a, a, 2, 3);
    return b[0] + b[1];
}
FR_INLINE float fr_hsum_f(fr_vec_f v)
{
    fr_v8f a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)
             + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    fr_v4f b = __builtin_shufflevector(a, a, 0, 1, 2, 3)
             + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    fr_v2f c = __builtin_shufflevector(b, b, 0, 1) + __builtin_shufflevector(b, b, 2, 3);
    return c[0] + c[1];
}
#else  /* GCC before 12 has no __builtin_shufflevector: the same sums, lane by lane */
FR_INLINE double fr_hsum_d(fr_vec_d v)
{
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}
FR_INLINE float fr_hsum_f(fr_vec_f v)
{
    return (((v[0] + v[8]) + (v[4] + v[12])) + ((v[2] + v[10]) + (v[6] + v[14])))
         + (((v[1] + v[9]) + (v[5] + v[13])) + ((v[3] + v[11]) + (v[7] + v[15])));
}
#endif

/* Horizontal sums of the AVX2 (32 bytes) and SSE2 (16 bytes) accumulators, in the same
 * halving order. */
FR_INLINE double fr_hsum_w32_d(fr_v4d v) { return (v[0] + v[2]) + (v[1] + v[3]); }
FR_INLINE double fr_hsum_w16_d(fr_v2d v) { return v[0] + v[1]; }
FR_INLINE float fr_hsum_w32_f(fr_v8f v)
{
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}
FR_INLINE float fr_hsum_w16_f(fr_v4f v) { return (v[0] + v[2]) + (v[1] + v[3]); }

/* A tile of RB rows x MB vectors with accumulators of vector type VT (VN lanes, horizontal
 * sum HS), named by TAG. */
#define FR_DEFINE_TILE(T, SFX, VT, VN, HS, TAG, RB, MB)                                       \
FR_INLINE void fr_tile_##SFX##TAG##_##RB##x##MB(ptrdiff_t K, const T *W, ptrdiff_t ldw,      \
                                                const T *H, ptrdiff_t ldh, T *Z,              \
                                                ptrdiff_t zrs, ptrdiff_t zcs)                 \
{                                                                                             \
    VT acc[RB][MB];                                                                           \
    FR_UNROLL for (int r = 0; r < RB; ++r)                                                    \
        FR_UNROLL for (int j = 0; j < MB; ++j) acc[r][j] = (VT){0};                           \
    ptrdiff_t k = 0;                                                                          \
    for (; k + VN <= K; k += VN) {                                                            \
        VT h[MB];                                                                             \
        FR_UNROLL for (int j = 0; j < MB; ++j) memcpy(&h[j], H + j * ldh + k, sizeof h[j]);  \
        FR_UNROLL for (int r = 0; r < RB; ++r) {                                              \
            VT w;                                                                             \
            memcpy(&w, W + r * ldw + k, sizeof w);                                            \
            FR_UNROLL for (int j = 0; j < MB; ++j) acc[r][j] += w * h[j];                     \
        }                                                                                     \
    }                                                                                         \
    FR_UNROLL for (int r = 0; r < RB; ++r)                                                    \
        FR_UNROLL for (int j = 0; j < MB; ++j) {                                              \
            T s = HS(acc[r][j]);                                                              \
            for (ptrdiff_t kk = k; kk < K; ++kk) s += W[r * ldw + kk] * H[j * ldh + kk];      \
            Z[r * zrs + j * zcs] += s;                                                        \
        }                                                                                     \
}

#define FR_DEFINE_PANEL(T, SFX, VT, VN, HS, TAG, RB, MB)                                      \
FR_DEFINE_TILE(T, SFX, VT, VN, HS, TAG, RB, MB)                                               \
FR_DEFINE_TILE(T, SFX, VT, VN, HS, TAG, 1, MB)                                                \
FR_INLINE void fr_panel_##SFX##TAG##_##MB(ptrdiff_t rows, ptrdiff_t K, const T *W,           \
                                          ptrdiff_t ldw, const T *H, ptrdiff_t ldh, T *Z,     \
                                          ptrdiff_t zrs, ptrdiff_t zcs)                       \
{                                                                                             \
    ptrdiff_t r = 0;                                                                          \
    for (; r + RB <= rows; r += RB)                                                           \
        fr_tile_##SFX##TAG##_##RB##x##MB(K, W + r * ldw, ldw, H, ldh, Z + r * zrs, zrs, zcs); \
    for (; r < rows; ++r)                                                                     \
        fr_tile_##SFX##TAG##_1x##MB(K, W + r * ldw, ldw, H, ldh, Z + r * zrs, zrs, zcs);      \
}
#else  /* portable: one row and one vector at a time */
#define FR_DEFINE_PANEL(T, SFX, VT, VN, HS, TAG, RB, MB)                                      \
FR_INLINE void fr_panel_##SFX##TAG##_##MB(ptrdiff_t rows, ptrdiff_t K, const T *W,           \
                                          ptrdiff_t ldw, const T *H, ptrdiff_t ldh, T *Z,     \
                                          ptrdiff_t zrs, ptrdiff_t zcs)                       \
{                                                                                             \
    for (ptrdiff_t r = 0; r < rows; ++r)                                                      \
        for (int j = 0; j < MB; ++j) {                                                        \
            T s = 0;                                                                          \
            for (ptrdiff_t k = 0; k < K; ++k) s += W[r * ldw + k] * H[j * ldh + k];           \
            Z[r * zrs + j * zcs] += s;                                                        \
        }                                                                                     \
}
#endif

/* The small-batch product with accumulators of one vector type (see FR_DEFINE_TILE). */
#define FR_DEFINE_SMALL(T, SFX, VT, VN, HS, TAG)                                              \
FR_DEFINE_PANEL(T, SFX, VT, VN, HS, TAG, 2, 4)                                                \
FR_DEFINE_PANEL(T, SFX, VT, VN, HS, TAG, 4, 2)                                                \
FR_DEFINE_PANEL(T, SFX, VT, VN, HS, TAG, 8, 1)                                                \
FR_INLINE void fr_small_matmul_##SFX##TAG##_impl(ptrdiff_t rows, ptrdiff_t m, ptrdiff_t K,   \
                                                 const T *W, ptrdiff_t ldw, const T *H,       \
                                                 ptrdiff_t ldh, T *Z, ptrdiff_t zrs,          \
                                                 ptrdiff_t zcs)                               \
{                                                                                             \
    ptrdiff_t j = 0;                                                                          \
    for (; j + 4 <= m; j += 4)                                                                \
        fr_panel_##SFX##TAG##_4(rows, K, W, ldw, H + j * ldh, ldh, Z + j * zcs, zrs, zcs);    \
    if (j + 2 <= m) {                                                                         \
        fr_panel_##SFX##TAG##_2(rows, K, W, ldw, H + j * ldh, ldh, Z + j * zcs, zrs, zcs);    \
        j += 2;                                                                               \
    }                                                                                         \
    if (j < m)                                                                                \
        fr_panel_##SFX##TAG##_1(rows, K, W, ldw, H + j * ldh, ldh, Z + j * zcs, zrs, zcs);    \
}

/* Each level's accumulators are its own registers: 64 bytes at AVX-512, 32 at AVX2, 16 at
 * SSE2 (a tile of eight 64-byte accumulators needs 16 of AVX2's 16 registers before the
 * loaded vectors, and went through the stack: 4-8x slower than at AVX-512 on AMD Zen 5). */
#define FR_SMALL_PARAMS(T)                                                                    \
    (ptrdiff_t rows, ptrdiff_t m, ptrdiff_t K, const T *W, ptrdiff_t ldw, const T *H,         \
     ptrdiff_t ldh, T *Z, ptrdiff_t zrs, ptrdiff_t zcs)
#define FR_SMALL_ARGS (rows, m, K, W, ldw, H, ldh, Z, zrs, zcs)
#if FR_HAVE_DISPATCH
#define FR_VT32_d fr_v4d
#define FR_VT16_d fr_v2d
#define FR_VT32_f fr_v8f
#define FR_VT16_f fr_v4f
#define FR_DEFINE_SMALL_LEVELS(T, SFX)                                                        \
FR_DEFINE_SMALL(T, SFX, fr_vec_##SFX, FR_V_##SFX, fr_hsum_##SFX, _w64)                        \
FR_DEFINE_SMALL(T, SFX, FR_VT32_##SFX, FR_V_##SFX / 2, fr_hsum_w32_##SFX, _w32)               \
FR_DEFINE_SMALL(T, SFX, FR_VT16_##SFX, FR_V_##SFX / 4, fr_hsum_w16_##SFX, _w16)               \
__attribute__((target("arch=x86-64-v4"))) static void fr_small_matmul_##SFX##_v4              \
FR_SMALL_PARAMS(T) { fr_small_matmul_##SFX##_w64_impl FR_SMALL_ARGS; }                        \
__attribute__((target("arch=x86-64-v3"))) static void fr_small_matmul_##SFX##_v3              \
FR_SMALL_PARAMS(T) { fr_small_matmul_##SFX##_w32_impl FR_SMALL_ARGS; }                        \
static void fr_small_matmul_##SFX##_v1 FR_SMALL_PARAMS(T)                                     \
{ fr_small_matmul_##SFX##_w16_impl FR_SMALL_ARGS; }                                           \
static void fr_small_matmul_##SFX FR_SMALL_PARAMS(T)                                          \
{                                                                                             \
    int level = fr_active_isa();                                                              \
    if (level == FR_ISA_AVX512) fr_small_matmul_##SFX##_v4 FR_SMALL_ARGS;                     \
    else if (level == FR_ISA_AVX2) fr_small_matmul_##SFX##_v3 FR_SMALL_ARGS;                  \
    else fr_small_matmul_##SFX##_v1 FR_SMALL_ARGS;                                            \
}
#else
#define FR_DEFINE_SMALL_LEVELS(T, SFX)                                                        \
FR_DEFINE_SMALL(T, SFX, fr_vec_##SFX, FR_V_##SFX, fr_hsum_##SFX, _w64)                        \
static void fr_small_matmul_##SFX FR_SMALL_PARAMS(T)                                          \
{ fr_small_matmul_##SFX##_w64_impl FR_SMALL_ARGS; }
#endif

FR_DEFINE_SMALL_LEVELS(double, d)
FR_DEFINE_SMALL_LEVELS(float, f)

/* ---------------------------------------------------------------- the multiply-add peak */

/* n rounds of FR_MADD_CHAINS independent multiply-adds on vectors of type VT, all in
 * registers (no load, no store): the benchmark times it for one core's peak rate at the
 * active level, the limit of any product at that level.  Twelve chains cover a
 * multiply-add's latency times the units that overlap them (4 cycles x 2 units on current
 * x86).  Each chain tends to 1 (x * (1 - 2^-10) + 2^-10): no subnormal, no overflow.
 * Returns their sum, so that nothing is left out as unused. */
#define FR_MADD_CHAINS 12
#define FR_DEFINE_MADD(T, SFX, VT, TAG)                                                       \
FR_INLINE T fr_madd_rounds_##SFX##TAG##_impl(ptrdiff_t n)                                     \
{                                                                                             \
    enum { V = sizeof(VT) / sizeof(T) };                                                      \
    VT acc[FR_MADD_CHAINS], b, c;                                                             \
    for (int v = 0; v < V; ++v) {                                                             \
        b[v] = 1 - (T)1 / 1024;                                                               \
        c[v] = (T)1 / 1024;                                                                   \
        FR_UNROLL for (int i = 0; i < FR_MADD_CHAINS; ++i) acc[i][v] = (T)i / FR_MADD_CHAINS; \
    }                                                                                         \
    for (ptrdiff_t k = 0; k < n; ++k)                                                         \
        FR_UNROLL for (int i = 0; i < FR_MADD_CHAINS; ++i) acc[i] = acc[i] * b + c;           \
    T sum = 0;                                                                                \
    for (int i = 0; i < FR_MADD_CHAINS; ++i)                                                  \
        for (int v = 0; v < V; ++v) sum += acc[i][v];                                         \
    return sum;                                                                               \
}
#if FR_HAVE_DISPATCH
#define FR_DEFINE_MADD_LEVELS(T, SFX)                                                         \
FR_DEFINE_MADD(T, SFX, fr_vec_##SFX, _w64)                                                    \
FR_DEFINE_MADD(T, SFX, FR_VT32_##SFX, _w32)                                                   \
FR_DEFINE_MADD(T, SFX, FR_VT16_##SFX, _w16)                                                   \
__attribute__((target("arch=x86-64-v4"))) static T fr_madd_rounds_##SFX##_v4(ptrdiff_t n)     \
{ return fr_madd_rounds_##SFX##_w64_impl(n); }                                                \
__attribute__((target("arch=x86-64-v3"))) static T fr_madd_rounds_##SFX##_v3(ptrdiff_t n)     \
{ return fr_madd_rounds_##SFX##_w32_impl(n); }                                                \
static T fr_madd_rounds_##SFX##_v1(ptrdiff_t n)                                               \
{ return fr_madd_rounds_##SFX##_w16_impl(n); }                                                \
/* Multiply-adds per round at the active level. */                                          \
static ptrdiff_t fr_madd_per_round_##SFX(void)                                                \
{                                                                                             \
    int level = fr_active_isa();                                                              \
    ptrdiff_t bytes = level == FR_ISA_AVX512 ? 64 : level == FR_ISA_AVX2 ? 32 : 16;           \
    return FR_MADD_CHAINS * bytes / (ptrdiff_t)sizeof(T);                                     \
}                                                                                             \
static T fr_madd_rounds_##SFX(ptrdiff_t n)                                                    \
{                                                                                             \
    int level = fr_active_isa();                                                              \
    if (level == FR_ISA_AVX512) return fr_madd_rounds_##SFX##_v4(n);                          \
    if (level == FR_ISA_AVX2) return fr_madd_rounds_##SFX##_v3(n);                            \
    return fr_madd_rounds_##SFX##_v1(n);                                                      \
}
#else  /* one level, the build target's: its widest vectors */
#if defined(__AVX512F__)
#define FR_MADD_BYTES 64
#elif defined(__AVX__)
#define FR_MADD_BYTES 32
#else
#define FR_MADD_BYTES 16
#endif
typedef double fr_madd_vd __attribute__((vector_size(FR_MADD_BYTES)));
typedef float fr_madd_vf __attribute__((vector_size(FR_MADD_BYTES)));
#define FR_DEFINE_MADD_LEVELS(T, SFX)                                                         \
FR_DEFINE_MADD(T, SFX, fr_madd_v##SFX, _native)                                               \
static ptrdiff_t fr_madd_per_round_##SFX(void)                                                \
{ return FR_MADD_CHAINS * FR_MADD_BYTES / (ptrdiff_t)sizeof(T); }                             \
static T fr_madd_rounds_##SFX(ptrdiff_t n) { return fr_madd_rounds_##SFX##_native_impl(n); }
#endif

FR_DEFINE_MADD_LEVELS(double, d)
FR_DEFINE_MADD_LEVELS(float, f)

/* ---------------------------------------------------------------- GRU (PyTorch/Keras default) */

/* One GRU step for one example.  g holds the 3n input pre-activations (input projection
 * plus the input biases) in the packed gate order [r, z, n], hg the 3n recurrent ones
 * (W_h h_prev plus the recurrent biases); g is replaced by the activated gates (kept for the
 * caches).  The reset gate scales the recurrent term of the candidate after its bias:
 * n = tanh(g_n + r * hg_n); h = (1 - z) * n + z * h_prev. */
#define FR_DEFINE_GRU(T, SFX)                                                                 \
FR_INLINE void fr_gru_pointwise_##SFX##_impl(T *g, const T *hg, const T *h_prev, T *h, ptrdiff_t n)                                   \
{                                                                                             \
    for (ptrdiff_t k = 0; k < 2 * n; ++k) g[k] = fr_sigmoid_##SFX(g[k] + hg[k]);              \
    T *r = g, *z = g + n, *nn = g + 2 * n;                                                    \
    const T *hn = hg + 2 * n;                                                                 \
    for (ptrdiff_t k = 0; k < n; ++k) nn[k] = fr_tanh_##SFX(nn[k] + r[k] * hn[k]);            \
    for (ptrdiff_t k = 0; k < n; ++k) h[k] = ((T)1 - z[k]) * nn[k] + z[k] * h_prev[k];        \
} \
FR_MULTI(void, fr_gru_pointwise_##SFX, (T *g, const T *hg, const T *h_prev, T *h, ptrdiff_t n), (g, hg, h_prev, h, n))
FR_DEFINE_GRU(double, d)
FR_DEFINE_GRU(float, f)

/* The GRU with the reset gate applied before the recurrent product of the candidate (Keras's
 * reset_after=False, ONNX's linear_before_reset=0): n = tanh(g_n + W_n (r * h_prev) + b_n).
 * Two passes around that second product: the first activates r and z (g[0:2n] += hg[0:2n])
 * and writes rh = r * h_prev; the second, with hg[2n:3n] = W_n rh + b_n, activates n and
 * writes h. */
#define FR_DEFINE_GRU_BEFORE(T, SFX)                                                          \
FR_INLINE void fr_gru_gates_rh_##SFX##_impl(T *g, const T *hg, const T *h_prev, T *rh, ptrdiff_t n)                                    \
{                                                                                             \
    for (ptrdiff_t k = 0; k < 2 * n; ++k) g[k] = fr_sigmoid_##SFX(g[k] + hg[k]);              \
    for (ptrdiff_t k = 0; k < n; ++k) rh[k] = g[k] * h_prev[k];                               \
} \
FR_MULTI(void, fr_gru_gates_rh_##SFX, (T *g, const T *hg, const T *h_prev, T *rh, ptrdiff_t n), (g, hg, h_prev, rh, n))                                                                                             \
FR_INLINE void fr_gru_candidate_##SFX##_impl(T *g, const T *hg, const T *h_prev, T *h, ptrdiff_t n)                                   \
{                                                                                             \
    T *z = g + n, *nn = g + 2 * n;                                                            \
    const T *hn = hg + 2 * n;                                                                 \
    for (ptrdiff_t k = 0; k < n; ++k) nn[k] = fr_tanh_##SFX(nn[k] + hn[k]);                   \
    for (ptrdiff_t k = 0; k < n; ++k) h[k] = ((T)1 - z[k]) * nn[k] + z[k] * h_prev[k];        \
} \
FR_MULTI(void, fr_gru_candidate_##SFX, (T *g, const T *hg, const T *h_prev, T *h, ptrdiff_t n), (g, hg, h_prev, h, n))
FR_DEFINE_GRU_BEFORE(double, d)
FR_DEFINE_GRU_BEFORE(float, f)

/* ReLU in place (the basic RNN with nonlinearity "relu", as PyTorch's nn.RNN offers):
 * max(x, 0), NaN kept. */
#define FR_DEFINE_RELU(T, SFX)                                                                \
FR_INLINE void fr_relu_inplace_##SFX##_impl(T *x, ptrdiff_t n)                              \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = x[k] < (T)0 ? (T)0 : x[k];                       \
} \
FR_MULTI(void, fr_relu_inplace_##SFX, (T *x, ptrdiff_t n), (x, n))
FR_DEFINE_RELU(double, d)
FR_DEFINE_RELU(float, f)

#endif /* FASTRNN_VMATH_H */
