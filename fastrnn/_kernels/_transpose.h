/*
 * Out-of-place transpose, dst (cols x rows, row stride ldd) := src^T, src (rows x cols, row
 * stride lds): the kernels keep states one example-and-step per column and return them in the
 * lessons' (n_a, m, T_x) layout, so every sequence call transposes its states once.
 *
 * Blocks of 8 x 8 floats / 4 x 4 doubles (one 32-byte vector per block row) are transposed
 * in registers with three / two rounds of two-input shuffles; the ragged right and bottom
 * edges go element by element.  Where the destination's rows are far apart (a state block
 * into the lessons' (n_a, m, T) layout, row stride m * T), the source goes in bands of 32
 * (16) rows, and within a band two column blocks at a time (each source line read whole):
 * their destination rows receive 128 bytes (two whole cache lines) before the next blocks
 * start, so no destination line is left half written, to be evicted (the rows being filled
 * fall in a few cache sets) and fetched again.  Where they are close (a packed panel, rows
 * 128 bytes apart) blocks run along bands of 8 (4) source rows, every column: a band of 32
 * rows of a weight matrix whose row stride is a multiple of 4 KiB would put 32 lines in one
 * cache set.  Compiled per SIMD level like _vmath.h (the shuffles become AVX instructions
 * at the AVX2 and AVX-512 levels).  Measured on AMD Zen 4 at the `mid` shape (3200 x 256
 * floats from a row stride of 512): 1.1 ms -> 0.3 ms per transpose; on AMD Zen 5, the LSTM's
 * state blocks at `mid` (32 examples x 32 steps x 256 units, a and c, from a ring evicted
 * by 1.5 MiB) 340-460 -> 180-230 us per call with the wide bands, at `fastrnns` 3.8-4.5 ->
 * 2.1 ms (in place float64 LSTM and GRU x0.95-0.97, float32 within noise).
 */
#ifndef FASTRNN_TRANSPOSE_H
#define FASTRNN_TRANSPOSE_H

#include "_vmath.h"

/* Bytes of a destination row filled per band of source rows (two cache lines), and the
 * row stride up to which a destination counts as close. */
#define FR_TRANSPOSE_BAND_BYTES 128

typedef int32_t fr_v8i __attribute__((vector_size(32)));
typedef int64_t fr_v4i __attribute__((vector_size(32)));

/* rows r[0..7] (8 floats each) -> their columns, in place */
FR_INLINE void fr_transpose_block_f(fr_v8f r[8])
{
    const fr_v8i lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const fr_v8i lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const fr_v8i lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    fr_v8f t[8], u[8];
    for (int q = 0; q < 4; ++q) {
        t[2 * q] = __builtin_shuffle(r[2 * q], r[2 * q + 1], lo);
        t[2 * q + 1] = __builtin_shuffle(r[2 * q], r[2 * q + 1], hi);
    }
    for (int q = 0; q < 2; ++q) { /* rows 4q..4q+3 */
        u[4 * q] = __builtin_shuffle(t[4 * q], t[4 * q + 2], lo2);
        u[4 * q + 1] = __builtin_shuffle(t[4 * q], t[4 * q + 2], hi2);
        u[4 * q + 2] = __builtin_shuffle(t[4 * q + 1], t[4 * q + 3], lo2);
        u[4 * q + 3] = __builtin_shuffle(t[4 * q + 1], t[4 * q + 3], hi2);
    }
    for (int q = 0; q < 4; ++q) { /* u[q]: columns q and q + 4 of rows 0-3; u[q + 4]: 4-7 */
        r[q] = __builtin_shuffle(u[q], u[q + 4], lo4);
        r[q + 4] = __builtin_shuffle(u[q], u[q + 4], hi4);
    }
}

FR_INLINE void fr_transpose_block_d(fr_v4d r[4])
{
    const fr_v4i lo = {0, 4, 2, 6}, hi = {1, 5, 3, 7}, lo2 = {0, 1, 4, 5}, hi2 = {2, 3, 6, 7};
    fr_v4d t0 = __builtin_shuffle(r[0], r[1], lo), t1 = __builtin_shuffle(r[0], r[1], hi);
    fr_v4d t2 = __builtin_shuffle(r[2], r[3], lo), t3 = __builtin_shuffle(r[2], r[3], hi);
    r[0] = __builtin_shuffle(t0, t2, lo2);
    r[2] = __builtin_shuffle(t0, t2, hi2);
    r[1] = __builtin_shuffle(t1, t3, lo2);
    r[3] = __builtin_shuffle(t1, t3, hi2);
}

#define FR_DEFINE_TRANSPOSE(T, SFX, VT, B)                                                    \
FR_INLINE void fr_transpose_##SFX##_impl(const T *src, ptrdiff_t rows, ptrdiff_t cols,       \
                                         ptrdiff_t lds, T *dst, ptrdiff_t ldd)               \
{                                                                                             \
    enum { WIDE = FR_TRANSPOSE_BAND_BYTES / sizeof(T) };                                      \
    const ptrdiff_t full = rows / B * B;                                                      \
    ptrdiff_t r0 = 0;                                                                         \
    if (ldd > WIDE) {                                                                         \
        for (ptrdiff_t rc = 0; rc < full; rc += WIDE) {                                       \
            const ptrdiff_t re = full - rc < WIDE ? full : rc + WIDE;                         \
            ptrdiff_t c0 = 0;                                                                 \
            for (; c0 + 2 * B <= cols; c0 += 2 * B)                                           \
                for (r0 = rc; r0 < re; r0 += B) {                                             \
                    VT v[B], w[B];                                                            \
                    FR_UNROLL for (int q = 0; q < B; ++q) {                                   \
                        memcpy(&v[q], src + (r0 + q) * lds + c0, sizeof v[q]);                \
                        memcpy(&w[q], src + (r0 + q) * lds + c0 + B, sizeof w[q]);            \
                    }                                                                         \
                    fr_transpose_block_##SFX(v);                                              \
                    fr_transpose_block_##SFX(w);                                              \
                    FR_UNROLL for (int q = 0; q < B; ++q) {                                   \
                        memcpy(dst + (c0 + q) * ldd + r0, &v[q], sizeof v[q]);                \
                        memcpy(dst + (c0 + B + q) * ldd + r0, &w[q], sizeof w[q]);            \
                    }                                                                         \
                }                                                                             \
            for (; c0 < cols; ++c0)                                                           \
                for (ptrdiff_t r = rc; r < re; ++r) dst[c0 * ldd + r] = src[r * lds + c0];    \
        }                                                                                     \
        r0 = full;                                                                            \
    }                                                                                         \
    for (; r0 + B <= rows; r0 += B) {                                                         \
        ptrdiff_t c0 = 0;                                                                     \
        for (; c0 + B <= cols; c0 += B) {                                                     \
            VT v[B];                                                                          \
            FR_UNROLL for (int q = 0; q < B; ++q)                                             \
                memcpy(&v[q], src + (r0 + q) * lds + c0, sizeof v[q]);                       \
            fr_transpose_block_##SFX(v);                                                      \
            FR_UNROLL for (int q = 0; q < B; ++q)                                             \
                memcpy(dst + (c0 + q) * ldd + r0, &v[q], sizeof v[q]);                       \
        }                                                                                     \
        for (; c0 < cols; ++c0)                                                               \
            for (ptrdiff_t r = r0; r < r0 + B; ++r) dst[c0 * ldd + r] = src[r * lds + c0];    \
    }                                                                                         \
    for (; r0 < rows; ++r0)                                                                   \
        for (ptrdiff_t c = 0; c < cols; ++c) dst[c * ldd + r0] = src[r0 * lds + c];           \
}                                                                                             \
FR_MULTI(void, fr_transpose_##SFX,                                                            \
         (const T *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds, T *dst, ptrdiff_t ldd), \
         (src, rows, cols, lds, dst, ldd))

FR_DEFINE_TRANSPOSE(float, f, fr_v8f, 8)
FR_DEFINE_TRANSPOSE(double, d, fr_v4d, 4)

/* dst[0:n] := src[0:n] with non-temporal stores (dst's vectors aligned to the level's
 * width; the ragged ends plain), then a store fence: for buffers written once and not read
 * again soon (the per-step gates a drop-in call returns as its caches), which then neither
 * fetch the lines they overwrite nor evict what the steps re-read. */
#if FR_HAVE_DISPATCH
#include <immintrin.h>
/* One version per level: the store instruction is the level's own (its vector width and
 * alignment). */
#define FR_DEFINE_STREAM_COPY(T, SFX, TARGET, TAG, VB, STORE, LOAD)                           \
__attribute__((target(TARGET)))                                                               \
static void fr_stream_copy_##SFX##_##TAG(T *dst, const T *src, ptrdiff_t n)                   \
{                                                                                             \
    enum { V = VB / sizeof(T) };                                                              \
    ptrdiff_t i = 0;                                                                          \
    for (; i < n && ((uintptr_t)(dst + i) & (VB - 1)); ++i) dst[i] = src[i];                  \
    for (; i + V <= n; i += V) STORE(dst + i, LOAD(src + i));                                 \
    for (; i < n; ++i) dst[i] = src[i];                                                       \
    _mm_sfence();                                                                             \
}
FR_DEFINE_STREAM_COPY(float, f, "arch=x86-64-v4", v4, 64, _mm512_stream_ps, _mm512_loadu_ps)
FR_DEFINE_STREAM_COPY(double, d, "arch=x86-64-v4", v4, 64, _mm512_stream_pd, _mm512_loadu_pd)
FR_DEFINE_STREAM_COPY(float, f, "arch=x86-64-v3", v3, 32, _mm256_stream_ps, _mm256_loadu_ps)
FR_DEFINE_STREAM_COPY(double, d, "arch=x86-64-v3", v3, 32, _mm256_stream_pd, _mm256_loadu_pd)
FR_DEFINE_STREAM_COPY(float, f, "arch=x86-64", v1, 16, _mm_stream_ps, _mm_loadu_ps)
FR_DEFINE_STREAM_COPY(double, d, "arch=x86-64", v1, 16, _mm_stream_pd, _mm_loadu_pd)
#define FR_STREAM_COPY_SWITCH(SFX)                                                            \
    int level = fr_active_isa();                                                              \
    if (level == FR_ISA_AVX512) fr_stream_copy_##SFX##_v4(dst, src, n);                       \
    else if (level == FR_ISA_AVX2) fr_stream_copy_##SFX##_v3(dst, src, n);                    \
    else fr_stream_copy_##SFX##_v1(dst, src, n);
#else
#define FR_STREAM_COPY_SWITCH(SFX) memcpy(dst, src, n * sizeof *dst);
#endif
static void fr_stream_copy_f(float *dst, const float *src, ptrdiff_t n)
{
    FR_STREAM_COPY_SWITCH(f)
}
static void fr_stream_copy_d(double *dst, const double *src, ptrdiff_t n)
{
    FR_STREAM_COPY_SWITCH(d)
}

#endif /* FASTRNN_TRANSPOSE_H */
