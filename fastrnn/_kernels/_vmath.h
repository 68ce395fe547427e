/*
 * Vectorisable activations and fused element-wise passes for the fastrnn kernels.
 *
 * Every exported function works on contiguous arrays and is a plain loop over inline,
 * branch-free scalar code, so that GCC vectorises it.  On x86-64 with GCC each function is
 * compiled three times (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, baseline SSE2) and the
 * loader picks the best clone for the running CPU (function multi-versioning); elsewhere the
 * portable loop is compiled once.  Nothing here may be built with -ffast-math: the rounding
 * trick in fr_expm1_parts and NaN propagation through the clamps both rely on IEEE semantics.
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
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && (__GNUC__ >= 12) && !defined(FASTRNN_NO_DISPATCH)
#define FR_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FR_HAVE_DISPATCH 1
#else
#define FR_DISPATCH
#define FR_HAVE_DISPATCH 0
#endif

/* Helpers are force-inlined so that each dispatched clone compiles them for its own
 * instruction set (a separate copy would be built for the baseline target only). */
#if defined(__GNUC__)
#define FR_INLINE static inline __attribute__((always_inline))
#else
#define FR_INLINE static inline
#endif

#if defined(__SSE2__) || defined(__x86_64__)
#include <xmmintrin.h>
#define FR_HAVE_MXCSR 1
#else
#define FR_HAVE_MXCSR 0
#endif

/* Name of the instruction set the dispatched functions run with on this CPU. */
static const char *fr_simd_level(void)
{
#if FR_HAVE_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2+FMA)";
    return "x86-64 baseline (SSE2)";
#else
    return "portable (no run-time dispatch)";
#endif
}

/* Flush-to-zero for the calling thread while a kernel runs: a decaying state must not fall
 * into the 100-cycle subnormal paths.  Not denormals-are-zero: reading a subnormal input as 0
 * would turn tiny * inf into NaN where the reference gives inf (subnormal inputs are flushed
 * beforehand instead, only where that cannot change a result's NaN/inf pattern; see
 * fastrnn/_packing.py).  Returns the old state. */
static unsigned int fr_denormals_off(void)
{
#if FR_HAVE_MXCSR
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8000u);
    return old;
#else
    return 0u;
#endif
}

static void fr_denormals_restore(unsigned int old)
{
#if FR_HAVE_MXCSR
    _mm_setcsr(old);
#else
    (void)old;
#endif
}

/* ---------------------------------------------------------------- scalar cores (inline) */

/* x = n*ln2 + r, |r| <= ln2/2; returns expm1(r) and sets *scale = 2^n (2^(n-1) with the
 * exponent bias one less: 1022 / 126 instead of 1023 / 127, for results near overflow).
 * The caller has clamped x so that 2^n is a normal number.  n is rounded with the 1.5*2^52
 * trick, whose low mantissa bits then hold n itself, so the exponent is built with integer
 * adds and shifts (which vectorise) instead of a double->int64 conversion (which does not
 * before AVX-512). */
FR_INLINE double fr_expm1_parts_d(double x, uint64_t bias, double *scale)
{
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01; /* 32 significant bits: n*ln2_hi exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    double t = x * log2e + shifter;
    double n = t - shifter;
    double r = (x - n * ln2_hi) - n * ln2_lo;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + bias) << 52;
    memcpy(scale, &bits, sizeof bits);
    double p = 1.0 / 6227020800.0;             /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r;
}

FR_INLINE float fr_expm1_parts_f(float x, uint32_t bias, float *scale)
{
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f; /* 9 significant bits: n*ln2_hi exact */
    const float ln2_lo = -2.12194440e-4f;
    float t = x * log2e + shifter;
    float n = t - shifter;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + bias) << 23;
    memcpy(scale, &bits, sizeof bits);
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
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
    double p = fr_expm1_parts_d(FR_CLAMP(x, -708.3964185322641, 709.8),
                                top ? 1022u : 1023u, &s);
    double r = (s * p + s) * (top ? 2.0 : 1.0);
    r = x > 709.782712893384 ? __builtin_inf() : r;
    return x < -708.3964185322641 ? 0.0 : r;
}

FR_INLINE float fr_exp_f(float x)
{
    int top = x > 88.0f;
    float s;
    float p = fr_expm1_parts_f(FR_CLAMP(x, -87.33654f, 88.8f), top ? 126u : 127u, &s);
    float r = (s * p + s) * (top ? 2.0f : 1.0f);
    r = x > 88.72283935546875f ? __builtin_inff() : r;
    return x < -87.33654022216797f ? 0.0f : r;
}

FR_INLINE double fr_sigmoid_d(double x) { return 1.0 / (1.0 + fr_exp_d(-x)); }
FR_INLINE float fr_sigmoid_f(float x) { return 1.0f / (1.0f + fr_exp_f(-x)); }

/* tanh(x) = -u / (2 + u) with u = expm1(-2|x|), sign restored; |x| beyond 20 (double) / 10
 * (float) is already +-1 to the last bit. */
FR_INLINE double fr_tanh_d(double x)
{
    double ax = __builtin_fabs(x);
    double y = -2.0 * (ax > 20.0 ? 20.0 : ax);
    double s;
    double p = fr_expm1_parts_d(y, 1023u, &s);
    double u = s * p + (s - 1.0);
    return __builtin_copysign(-u / (2.0 + u), x);
}

FR_INLINE float fr_tanh_f(float x)
{
    float ax = __builtin_fabsf(x);
    float y = -2.0f * (ax > 10.0f ? 10.0f : ax);
    float s;
    float p = fr_expm1_parts_f(y, 127u, &s);
    float u = s * p + (s - 1.0f);
    return __builtin_copysignf(-u / (2.0f + u), x);
}

/* ---------------------------------------------------------------- array passes (dispatched) */

#define FR_DEFINE_PASSES(T, SFX)                                                              \
FR_DISPATCH static void fr_exp_inplace_##SFX(T *x, ptrdiff_t n)                               \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = fr_exp_##SFX(x[k]);                              \
}                                                                                             \
FR_DISPATCH static void fr_sigmoid_inplace_##SFX(T *x, ptrdiff_t n)                           \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = fr_sigmoid_##SFX(x[k]);                          \
}                                                                                             \
FR_DISPATCH static void fr_tanh_inplace_##SFX(T *x, ptrdiff_t n)                              \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = fr_tanh_##SFX(x[k]);                             \
}                                                                                             \
/* One LSTM step for one example.  g holds the 4n pre-activations in the packed gate order   \
 * [f, i, o, c] (c: the candidate, the lessons' cct); they are replaced by their activations \
 * (kept for the caches).  Writes c = f * c_prev + i * cct and h = o * tanh(c). */           \
FR_DISPATCH static void fr_lstm_pointwise_##SFX(T *g, const T *c_prev, T *c, T *h,            \
                                                ptrdiff_t n)                                  \
{                                                                                             \
    for (ptrdiff_t k = 0; k < 3 * n; ++k) g[k] = fr_sigmoid_##SFX(g[k]);                      \
    for (ptrdiff_t k = 3 * n; k < 4 * n; ++k) g[k] = fr_tanh_##SFX(g[k]);                     \
    const T *f = g, *i = g + n, *o = g + 2 * n, *cc = g + 3 * n;                              \
    for (ptrdiff_t k = 0; k < n; ++k) {                                                       \
        T cn = f[k] * c_prev[k] + i[k] * cc[k];                                               \
        c[k] = cn;                                                                            \
        h[k] = o[k] * fr_tanh_##SFX(cn);                                                      \
    }                                                                                         \
}                                                                                             \
/* Softmax of every column of the row-major (n_rows, n_cols) matrix y (row stride ld),       \
 * each column shifted by its own maximum.  NaN in a column makes the whole column NaN and   \
 * +inf makes it NaN, as numpy's max/exp/sum do.  Columns go in blocks so the per-column     \
 * maxima and sums live on the stack and the inner loops run along contiguous rows; a lone   \
 * column (a streaming step) is gathered into a contiguous buffer instead, so exp still runs \
 * vectorised. */                                                                             \
FR_DISPATCH static void fr_softmax_cols_##SFX(T *y, ptrdiff_t n_rows, ptrdiff_t n_cols,       \
                                              ptrdiff_t ld)                                   \
{                                                                                             \
    enum { B = 256 };                                                                         \
    T mx[B], sm[B];                                                                           \
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
}

FR_DEFINE_PASSES(double, d)
FR_DEFINE_PASSES(float, f)

/* Number of subnormal values in x (a cheap, vectorised scan). */
FR_DISPATCH static ptrdiff_t fr_count_subnormal_d(const double *x, ptrdiff_t n)
{
    ptrdiff_t count = 0;
    for (ptrdiff_t k = 0; k < n; ++k) {
        double a = __builtin_fabs(x[k]);
        count += (a < 2.2250738585072014e-308) & (a != 0.0);
    }
    return count;
}

FR_DISPATCH static ptrdiff_t fr_count_subnormal_f(const float *x, ptrdiff_t n)
{
    ptrdiff_t count = 0;
    for (ptrdiff_t k = 0; k < n; ++k) {
        float a = __builtin_fabsf(x[k]);
        count += (a < 1.17549435e-38f) & (a != 0.0f);
    }
    return count;
}

/* ---------------------------------------------------------------- small-batch products */

/* Z[r*zrs + j*zcs] += dot(W[r, :K], H[j, :K]) for r < rows, j < m, with W row-major (row
 * stride ldw) and the m vectors of H contiguous (stride ldh).  Each row of W is read once
 * for up to four vectors at a time, which is what a few-example batch needs: m separate gemv
 * calls stream W m times, and OpenBLAS's gemm repacks W on every call.
 *
 * Tiles of RB rows x MB vectors keep RB*MB (= 8) independent vector accumulators of 64 bytes
 * in registers (GCC/Clang vector extensions; split into two or four registers by the AVX2 and
 * SSE2 clones); their lanes are added in a fixed tree at the end, then the scalar tail.  No
 * re-association is left to the compiler, so no -ffast-math is needed. */
#if defined(__GNUC__)
typedef double fr_vec_d __attribute__((vector_size(64)));
typedef float fr_vec_f __attribute__((vector_size(64)));
#define FR_V_d 8
#define FR_V_f 16

FR_INLINE fr_vec_d fr_load_d(const double *p) { fr_vec_d v; memcpy(&v, p, sizeof v); return v; }
FR_INLINE fr_vec_f fr_load_f(const float *p) { fr_vec_f v; memcpy(&v, p, sizeof v); return v; }
/* Horizontal sums in a fixed order: lane k + lane k + width/2, halving. */
#if defined(__clang__) || __GNUC__ >= 12
typedef double fr_v4d __attribute__((vector_size(32)));
typedef double fr_v2d __attribute__((vector_size(16)));
typedef float fr_v8f __attribute__((vector_size(32)));
typedef float fr_v4f __attribute__((vector_size(16)));
typedef float fr_v2f __attribute__((vector_size(8)));
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

#define FR_DEFINE_TILE(T, SFX, RB, MB)                                                        \
FR_INLINE void fr_tile_##SFX##_##RB##x##MB(ptrdiff_t K, const T *W, ptrdiff_t ldw,        \
                                               const T *H, ptrdiff_t ldh, T *Z,               \
                                               ptrdiff_t zrs, ptrdiff_t zcs)                  \
{                                                                                             \
    fr_vec_##SFX acc[RB][MB];                                                                 \
    for (int r = 0; r < RB; ++r)                                                              \
        for (int j = 0; j < MB; ++j) acc[r][j] = (fr_vec_##SFX){0};                           \
    ptrdiff_t k = 0;                                                                          \
    for (; k + FR_V_##SFX <= K; k += FR_V_##SFX) {                                            \
        fr_vec_##SFX h[MB];                                                                   \
        for (int j = 0; j < MB; ++j) h[j] = fr_load_##SFX(H + j * ldh + k);                   \
        for (int r = 0; r < RB; ++r) {                                                        \
            fr_vec_##SFX w = fr_load_##SFX(W + r * ldw + k);                                  \
            for (int j = 0; j < MB; ++j) acc[r][j] += w * h[j];                               \
        }                                                                                     \
    }                                                                                         \
    for (int r = 0; r < RB; ++r)                                                              \
        for (int j = 0; j < MB; ++j) {                                                        \
            T s = fr_hsum_##SFX(acc[r][j]);                                                   \
            for (ptrdiff_t kk = k; kk < K; ++kk) s += W[r * ldw + kk] * H[j * ldh + kk];      \
            Z[r * zrs + j * zcs] += s;                                                        \
        }                                                                                     \
}

#define FR_DEFINE_PANEL(T, SFX, RB, MB)                                                       \
FR_DEFINE_TILE(T, SFX, RB, MB)                                                                \
FR_DEFINE_TILE(T, SFX, 1, MB)                                                                 \
FR_INLINE void fr_panel_##SFX##_##MB(ptrdiff_t rows, ptrdiff_t K, const T *W,             \
                                         ptrdiff_t ldw, const T *H, ptrdiff_t ldh, T *Z,      \
                                         ptrdiff_t zrs, ptrdiff_t zcs)                        \
{                                                                                             \
    ptrdiff_t r = 0;                                                                          \
    for (; r + RB <= rows; r += RB)                                                           \
        fr_tile_##SFX##_##RB##x##MB(K, W + r * ldw, ldw, H, ldh, Z + r * zrs, zrs, zcs);      \
    for (; r < rows; ++r)                                                                     \
        fr_tile_##SFX##_1x##MB(K, W + r * ldw, ldw, H, ldh, Z + r * zrs, zrs, zcs);           \
}
#else  /* portable: one row and one vector at a time */
#define FR_DEFINE_PANEL(T, SFX, RB, MB)                                                       \
FR_INLINE void fr_panel_##SFX##_##MB(ptrdiff_t rows, ptrdiff_t K, const T *W,             \
                                         ptrdiff_t ldw, const T *H, ptrdiff_t ldh, T *Z,      \
                                         ptrdiff_t zrs, ptrdiff_t zcs)                        \
{                                                                                             \
    for (ptrdiff_t r = 0; r < rows; ++r)                                                      \
        for (int j = 0; j < MB; ++j) {                                                        \
            T s = 0;                                                                          \
            for (ptrdiff_t k = 0; k < K; ++k) s += W[r * ldw + k] * H[j * ldh + k];           \
            Z[r * zrs + j * zcs] += s;                                                        \
        }                                                                                     \
}
#endif

#define FR_DEFINE_SMALL(T, SFX)                                                               \
FR_DEFINE_PANEL(T, SFX, 2, 4)                                                                 \
FR_DEFINE_PANEL(T, SFX, 4, 2)                                                                 \
FR_DEFINE_PANEL(T, SFX, 8, 1)                                                                 \
FR_DISPATCH static void fr_small_matmul_##SFX(ptrdiff_t rows, ptrdiff_t m, ptrdiff_t K,       \
                                              const T *W, ptrdiff_t ldw, const T *H,          \
                                              ptrdiff_t ldh, T *Z, ptrdiff_t zrs,             \
                                              ptrdiff_t zcs)                                  \
{                                                                                             \
    ptrdiff_t j = 0;                                                                          \
    for (; j + 4 <= m; j += 4)                                                                \
        fr_panel_##SFX##_4(rows, K, W, ldw, H + j * ldh, ldh, Z + j * zcs, zrs, zcs);         \
    if (j + 2 <= m) {                                                                         \
        fr_panel_##SFX##_2(rows, K, W, ldw, H + j * ldh, ldh, Z + j * zcs, zrs, zcs);         \
        j += 2;                                                                               \
    }                                                                                         \
    if (j < m)                                                                                \
        fr_panel_##SFX##_1(rows, K, W, ldw, H + j * ldh, ldh, Z + j * zcs, zrs, zcs);         \
}

FR_DEFINE_SMALL(double, d)
FR_DEFINE_SMALL(float, f)

/* ---------------------------------------------------------------- packed recurrent GEMM */

/* The recurrent product of a batch, Z (rows, m) += W (rows, K) @ H (K, m) with Z and H
 * column-major, against W packed once per call: OpenBLAS's gemm re-packs W on every call,
 * i.e. on every time step, and reaches about half its square-GEMM rate on this skinny shape.
 * W is packed into panels of FR_MR rows, each stored k-major (FR_MR consecutive values per
 * k, rows past the end zero); the micro-kernel keeps an FR_MR x FR_NR block of Z in
 * registers (2 x 8 AVX-512 vectors), streaming one panel row-pair and FR_NR broadcasts of H
 * per k, in blocks of FR_KC values of k so that a panel block stays in L1.
 * Only compiled for x86-64-v4 (AVX-512) and used when the CPU has it
 * (fr_panel_available); elsewhere the kernels call BLAS gemm. */
#define FR_NR 8
#define FR_KC 256

#if FR_HAVE_DISPATCH
static int fr_panel_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4");
}

#define FR_DEFINE_PANEL_GEMM(T, SFX, V)                                                        \
static ptrdiff_t fr_panel_size_##SFX(ptrdiff_t rows, ptrdiff_t K)                             \
{                                                                                             \
    return (rows + 2 * V - 1) / (2 * V) * (2 * V) * K;                                        \
}                                                                                             \
/* Pack rows x K of W into panels; W's rows come from blocks of block_rows rows each (the  \
 * LSTM's four gate matrices, or one block), all with row stride ldw. */                      \
static void fr_panel_pack_##SFX(ptrdiff_t rows, ptrdiff_t K, const T *const *W,               \
                                ptrdiff_t block_rows, ptrdiff_t ldw, T *P)                    \
{                                                                                             \
    const ptrdiff_t mr = 2 * V;                                                               \
    for (ptrdiff_t p = 0; p * mr < rows; ++p)                                                 \
        for (ptrdiff_t r = 0; r < mr; ++r) {                                                  \
            ptrdiff_t row = p * mr + r;                                                       \
            const T *src = row < rows ? W[row / block_rows] + (row % block_rows) * ldw     \
                                      : NULL;                                                 \
            for (ptrdiff_t k = 0; k < K; ++k)                                                 \
                P[(p * K + k) * mr + r] = src ? src[k] : (T)0;                                \
        }                                                                                     \
}                                                                                             \
typedef T fr_pv_##SFX __attribute__((vector_size(64)));                                       \
__attribute__((target("arch=x86-64-v4")))                                                     \
static void fr_panel_gemm_##SFX(ptrdiff_t rows, ptrdiff_t m, ptrdiff_t K, const T *P,         \
                                const T *H, ptrdiff_t ldh, T *Z, ptrdiff_t ldz)               \
{                                                                                             \
    const ptrdiff_t mr = 2 * V;                                                               \
    for (ptrdiff_t k0 = 0; k0 < K; k0 += FR_KC) {                                             \
        ptrdiff_t kc = K - k0 < FR_KC ? K - k0 : FR_KC;                                       \
        for (ptrdiff_t p = 0; p * mr < rows; ++p) {                                           \
            const T *Pp = P + (p * K + k0) * mr;                                              \
            ptrdiff_t nrows = rows - p * mr < mr ? rows - p * mr : mr;                        \
            for (ptrdiff_t j0 = 0; j0 < m; j0 += FR_NR) {                                     \
                ptrdiff_t nr = m - j0 < FR_NR ? m - j0 : FR_NR;                               \
                const T *Hj = H + j0 * ldh + k0;                                              \
                fr_pv_##SFX lo[FR_NR], hi[FR_NR];                                             \
                for (int j = 0; j < FR_NR; ++j) {                                             \
                    lo[j] = (fr_pv_##SFX){0};                                                 \
                    hi[j] = (fr_pv_##SFX){0};                                                 \
                }                                                                             \
                /* a full tile gets its own copy of the loop: with a constant FR_NR the  \
                 * compiler keeps all 16 accumulators in registers; the edge tile cannot */ \
                if (nr == FR_NR) {                                                            \
                    for (ptrdiff_t k = 0; k < kc; ++k) {                                      \
                        fr_pv_##SFX a0, a1;                                                   \
                        memcpy(&a0, Pp + k * mr, sizeof a0);                                  \
                        memcpy(&a1, Pp + k * mr + V, sizeof a1);                              \
                        for (int j = 0; j < FR_NR; ++j) {                                     \
                            T b = Hj[j * ldh + k];                                            \
                            lo[j] += a0 * b;                                                  \
                            hi[j] += a1 * b;                                                  \
                        }                                                                     \
                    }                                                                         \
                } else {                                                                      \
                    for (ptrdiff_t k = 0; k < kc; ++k) {                                      \
                        fr_pv_##SFX a0, a1;                                                   \
                        memcpy(&a0, Pp + k * mr, sizeof a0);                                  \
                        memcpy(&a1, Pp + k * mr + V, sizeof a1);                              \
                        for (ptrdiff_t j = 0; j < nr; ++j) {                                  \
                            T b = Hj[j * ldh + k];                                            \
                            lo[j] += a0 * b;                                                  \
                            hi[j] += a1 * b;                                                  \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
                for (ptrdiff_t j = 0; j < nr; ++j) {                                          \
                    T *zc = Z + (j0 + j) * ldz + p * mr;                                      \
                    T acc[2 * V];                                                             \
                    memcpy(acc, &lo[j], sizeof lo[j]);                                        \
                    memcpy(acc + V, &hi[j], sizeof hi[j]);                                    \
                    for (ptrdiff_t r = 0; r < nrows; ++r) zc[r] += acc[r];                    \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

FR_DEFINE_PANEL_GEMM(double, d, 8)
FR_DEFINE_PANEL_GEMM(float, f, 16)
#else
static int fr_panel_available(void) { return 0; }
#define FR_DEFINE_PANEL_STUBS(T, SFX)                                                         \
static ptrdiff_t fr_panel_size_##SFX(ptrdiff_t rows, ptrdiff_t K)                            \
{ (void)rows; (void)K; return 0; }                                                            \
static void fr_panel_pack_##SFX(ptrdiff_t rows, ptrdiff_t K, const T *const *W,               \
                                ptrdiff_t block_rows, ptrdiff_t ldw, T *P)                    \
{ (void)rows; (void)K; (void)W; (void)block_rows; (void)ldw; (void)P; }                       \
static void fr_panel_gemm_##SFX(ptrdiff_t rows, ptrdiff_t m, ptrdiff_t K, const T *P,         \
                                const T *H, ptrdiff_t ldh, T *Z, ptrdiff_t ldz)               \
{ (void)rows; (void)m; (void)K; (void)P; (void)H; (void)ldh; (void)Z; (void)ldz; }
FR_DEFINE_PANEL_STUBS(double, d)
FR_DEFINE_PANEL_STUBS(float, f)
#endif

/* ---------------------------------------------------------------- GRU (PyTorch/Keras default) */

/* One GRU step for one example.  g holds the 3n input pre-activations (input projection
 * plus the input biases) in the packed gate order [r, z, n], hg the 3n recurrent ones
 * (W_h h_prev plus the recurrent biases); g is replaced by the activated gates (kept for the
 * caches).  The reset gate scales the recurrent term of the candidate after its bias:
 * n = tanh(g_n + r * hg_n); h = (1 - z) * n + z * h_prev. */
#define FR_DEFINE_GRU(T, SFX)                                                                 \
FR_DISPATCH static void fr_gru_pointwise_##SFX(T *g, const T *hg, const T *h_prev, T *h,      \
                                               ptrdiff_t n)                                   \
{                                                                                             \
    for (ptrdiff_t k = 0; k < 2 * n; ++k) g[k] = fr_sigmoid_##SFX(g[k] + hg[k]);              \
    T *r = g, *z = g + n, *nn = g + 2 * n;                                                    \
    const T *hn = hg + 2 * n;                                                                 \
    for (ptrdiff_t k = 0; k < n; ++k) nn[k] = fr_tanh_##SFX(nn[k] + r[k] * hn[k]);            \
    for (ptrdiff_t k = 0; k < n; ++k) h[k] = ((T)1 - z[k]) * nn[k] + z[k] * h_prev[k];        \
}
FR_DEFINE_GRU(double, d)
FR_DEFINE_GRU(float, f)

/* The GRU with the reset gate applied before the recurrent product of the candidate (Keras's
 * reset_after=False, ONNX's linear_before_reset=0): n = tanh(g_n + W_n (r * h_prev) + b_n).
 * Two passes around that second product: the first activates r and z (g[0:2n] += hg[0:2n])
 * and writes rh = r * h_prev; the second, with hg[2n:3n] = W_n rh + b_n, activates n and
 * writes h. */
#define FR_DEFINE_GRU_BEFORE(T, SFX)                                                          \
FR_DISPATCH static void fr_gru_gates_rh_##SFX(T *g, const T *hg, const T *h_prev, T *rh,      \
                                              ptrdiff_t n)                                    \
{                                                                                             \
    for (ptrdiff_t k = 0; k < 2 * n; ++k) g[k] = fr_sigmoid_##SFX(g[k] + hg[k]);              \
    for (ptrdiff_t k = 0; k < n; ++k) rh[k] = g[k] * h_prev[k];                               \
}                                                                                             \
FR_DISPATCH static void fr_gru_candidate_##SFX(T *g, const T *hg, const T *h_prev, T *h,      \
                                               ptrdiff_t n)                                   \
{                                                                                             \
    T *z = g + n, *nn = g + 2 * n;                                                            \
    const T *hn = hg + 2 * n;                                                                 \
    for (ptrdiff_t k = 0; k < n; ++k) nn[k] = fr_tanh_##SFX(nn[k] + hn[k]);                   \
    for (ptrdiff_t k = 0; k < n; ++k) h[k] = ((T)1 - z[k]) * nn[k] + z[k] * h_prev[k];        \
}
FR_DEFINE_GRU_BEFORE(double, d)
FR_DEFINE_GRU_BEFORE(float, f)

/* ReLU in place (the basic RNN with nonlinearity "relu", as PyTorch's nn.RNN offers):
 * max(x, 0), NaN kept. */
#define FR_DEFINE_RELU(T, SFX)                                                                \
FR_DISPATCH static void fr_relu_inplace_##SFX(T *x, ptrdiff_t n)                              \
{                                                                                             \
    for (ptrdiff_t k = 0; k < n; ++k) x[k] = x[k] < (T)0 ? (T)0 : x[k];                       \
}
FR_DEFINE_RELU(double, d)
FR_DEFINE_RELU(float, f)

#endif /* FASTRNN_VMATH_H */
