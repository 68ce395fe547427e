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
#if FR_HAVE_DISPATCH
#include <immintrin.h>
#endif

/* Bytes of a destination row filled per band of source rows (two cache lines), and the
 * row stride up to which a destination counts as close. */
#define FR_TRANSPOSE_BAND_BYTES 128
/* Bytes of a cache line. */
#define FR_LINE_BYTES 64

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

/* A line of destination rows with non-temporal stores: the 2B source rows src[0..2B) (row
 * stride lds, B the block size, 2B rows = FR_LINE_BYTES of T), all cols columns, into
 * dst[c * ldd + 0..2B) for every column c, each such run one whole line (dst line aligned,
 * ldd a whole number of lines).  Two vertically adjacent blocks are transposed together so
 * that every destination line is stored whole at once (two 32-byte stores, which the CPU
 * combines), neither fetched first nor kept in the caches; a store fence ends the call.
 * At the SSE2 level (no panel GEMM there) the stores are plain. */
#define FR_DEFINE_STREAM_BAND(T, SFX, VT, B, TARGET, TAG, STORE)                              \
TARGET static void fr_stream_band_##SFX##_##TAG(const T *src, ptrdiff_t cols, ptrdiff_t lds, \
                                                T *dst, ptrdiff_t ldd)                        \
{                                                                                             \
    ptrdiff_t c0 = 0;                                                                         \
    for (; c0 + B <= cols; c0 += B) {                                                         \
        VT v[B], u[B];                                                                        \
        FR_UNROLL for (int q = 0; q < B; ++q) {                                               \
            memcpy(&v[q], src + q * lds + c0, sizeof v[q]);                                   \
            memcpy(&u[q], src + (B + q) * lds + c0, sizeof u[q]);                             \
        }                                                                                     \
        fr_transpose_block_##SFX(v);                                                          \
        fr_transpose_block_##SFX(u);                                                          \
        FR_UNROLL for (int q = 0; q < B; ++q) {                                               \
            STORE(dst + (c0 + q) * ldd, v[q]);                                                \
            STORE(dst + (c0 + q) * ldd + B, u[q]);                                            \
        }                                                                                     \
    }                                                                                         \
    for (; c0 < cols; ++c0)                                                                   \
        for (int r = 0; r < 2 * B; ++r) dst[c0 * ldd + r] = src[r * lds + c0];                \
}
#define FR_PLAIN_STORE(p, v) memcpy((p), &(v), sizeof(v))
#if FR_HAVE_DISPATCH
#define FR_NT_STORE_f(p, v) _mm256_stream_ps((p), (__m256)(v))
#define FR_NT_STORE_d(p, v) _mm256_stream_pd((p), (__m256d)(v))
#define FR_DEFINE_STREAM_BANDS(T, SFX, VT, B)                                                 \
FR_DEFINE_STREAM_BAND(T, SFX, VT, B, __attribute__((target("arch=x86-64-v4"))), v4,          \
                      FR_NT_STORE_##SFX)                                                      \
FR_DEFINE_STREAM_BAND(T, SFX, VT, B, __attribute__((target("arch=x86-64-v3"))), v3,          \
                      FR_NT_STORE_##SFX)                                                      \
FR_DEFINE_STREAM_BAND(T, SFX, VT, B, , v1, FR_PLAIN_STORE)                                    \
static void fr_stream_band_##SFX(const T *src, ptrdiff_t cols, ptrdiff_t lds, T *dst,         \
                                 ptrdiff_t ldd)                                               \
{                                                                                             \
    int level = fr_active_isa();                                                              \
    if (level == FR_ISA_AVX512) fr_stream_band_##SFX##_v4(src, cols, lds, dst, ldd);          \
    else if (level == FR_ISA_AVX2) fr_stream_band_##SFX##_v3(src, cols, lds, dst, ldd);       \
    else fr_stream_band_##SFX##_v1(src, cols, lds, dst, ldd);                                 \
    if (level >= FR_ISA_AVX2) _mm_sfence();                                                   \
}
#else
#define FR_DEFINE_STREAM_BANDS(T, SFX, VT, B)                                                 \
FR_DEFINE_STREAM_BAND(T, SFX, VT, B, , any, FR_PLAIN_STORE)                                   \
static void fr_stream_band_##SFX(const T *src, ptrdiff_t cols, ptrdiff_t lds, T *dst,         \
                                 ptrdiff_t ldd)                                               \
{                                                                                             \
    fr_stream_band_##SFX##_any(src, cols, lds, dst, ldd);                                     \
}
#endif
FR_DEFINE_STREAM_BANDS(float, f, fr_v8f, 8)
FR_DEFINE_STREAM_BANDS(double, d, fr_v4d, 4)

/* Steps of a ring of states out into a time-last array (the lessons' (n_a, m, T_x) layout):
 *
 *     dst[c * ldd + r] = ring[slot(r) * lds + c],   r < n, c < cols,
 *     slot(r) = (slot0 + dir * r) mod R   (dir +1 or -1),
 *
 * i.e. the transpose of n states (rows of the ring, in the order of their steps) into one
 * example's rows of a (or c).  The recurrences call it for each example as soon as one
 * cache line of its destination rows is complete (n = FR_LINE_BYTES / sizeof(T) steps, dst
 * line aligned): the AVX-512 level then transposes 16 x 16 floats (8 x 8 doubles) in
 * registers and writes each destination line whole with one non-temporal store (measured on
 * an Intel Xeon of the Sapphire Rapids class, the LSTM model at `mid`: 3.4-4.1 ms of block
 * transposes per call before), so a destination line is neither
 * fetched to be overwritten nor written in two pieces at two times (a block of states of
 * every example, transposed every 32 steps, wrote 128 bytes per row at any alignment: a
 * line at each end of every piece fetched twice).  The part of a line at either end of an
 * example's rows (they start at any lane: T_x steps apart) goes through the same kernel
 * with masked stores of its lanes (through fr_transpose it took 2.6% of the RNN model's time
 * at `fastrnns`, float32, where 4-20 of an example's 100 steps are in such parts).  Otherwise
 * (another level, a row stride not a whole number of lines, steps across lines) the ring's
 * contiguous runs go through fr_transpose (plain stores).  A store fence ends each call of
 * the AVX-512 kernel that stored whole lines. */
#define FR_DEFINE_RING_OUT(T, SFX)                                                            \
static void fr_ring_out_##SFX##_any(const T *ring, ptrdiff_t R, ptrdiff_t lds,                \
                                    ptrdiff_t slot0, int dir, ptrdiff_t n, ptrdiff_t cols,    \
                                    T *dst, ptrdiff_t ldd)                                    \
{                                                                                             \
    ptrdiff_t r = 0, slot = slot0;                                                            \
    while (r < n) { /* contiguous runs of the ring: to its end (dir 1) or start (dir -1) */   \
        ptrdiff_t run = dir > 0 ? R - slot : slot + 1;                                        \
        run = run < n - r ? run : n - r;                                                      \
        fr_transpose_##SFX(ring + slot * lds, run, cols, dir * lds, dst + r, ldd);            \
        r += run;                                                                             \
        slot = dir > 0 ? 0 : R - 1;                                                           \
    }                                                                                         \
}
FR_DEFINE_RING_OUT(float, f)
FR_DEFINE_RING_OUT(double, d)

#if FR_HAVE_DISPATCH
/* 16 x 16 floats / 8 x 8 doubles in registers: v[q] (row q) -> v[q] (column q). */
__attribute__((target("arch=x86-64-v4")))
static inline void fr_transpose16_f_v4(__m512 v[16])
{
    __m512 t[16];
    for (int q = 0; q < 8; ++q) {
        t[2 * q] = _mm512_unpacklo_ps(v[2 * q], v[2 * q + 1]);
        t[2 * q + 1] = _mm512_unpackhi_ps(v[2 * q], v[2 * q + 1]);
    }
    for (int q = 0; q < 4; ++q) {
        v[4 * q] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
        v[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xEE);
        v[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0x44);
        v[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3], 0xEE);
    }
    for (int q = 0; q < 4; ++q) {
        t[q] = _mm512_shuffle_f32x4(v[q], v[q + 4], 0x88);
        t[q + 4] = _mm512_shuffle_f32x4(v[q], v[q + 4], 0xDD);
        t[q + 8] = _mm512_shuffle_f32x4(v[q + 8], v[q + 12], 0x88);
        t[q + 12] = _mm512_shuffle_f32x4(v[q + 8], v[q + 12], 0xDD);
    }
    for (int q = 0; q < 8; ++q) {
        v[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
        v[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xDD);
    }
}

__attribute__((target("arch=x86-64-v4")))
static inline void fr_transpose8_d_v4(__m512d v[8])
{
    __m512d t[8];
    for (int q = 0; q < 4; ++q) {
        t[2 * q] = _mm512_unpacklo_pd(v[2 * q], v[2 * q + 1]);
        t[2 * q + 1] = _mm512_unpackhi_pd(v[2 * q], v[2 * q + 1]);
    }
    for (int q = 0; q < 2; ++q) {
        v[4 * q] = _mm512_shuffle_f64x2(t[4 * q], t[4 * q + 2], 0x88);
        v[4 * q + 1] = _mm512_shuffle_f64x2(t[4 * q + 1], t[4 * q + 3], 0x88);
        v[4 * q + 2] = _mm512_shuffle_f64x2(t[4 * q], t[4 * q + 2], 0xDD);
        v[4 * q + 3] = _mm512_shuffle_f64x2(t[4 * q + 1], t[4 * q + 3], 0xDD);
    }
    for (int q = 0; q < 4; ++q) {
        t[q] = _mm512_shuffle_f64x2(v[q], v[q + 4], 0x88);
        t[q + 4] = _mm512_shuffle_f64x2(v[q], v[q + 4], 0xDD);
    }
    for (int q = 0; q < 8; ++q) v[q] = t[q];
}

/* The n <= L steps of one destination line per row, from lane off of each line (off + n <=
 * L; dst the line's start): the rows go into lanes off..off + n - 1 of a register transpose
 * (columns in groups of L, the last group's loads masked, its missing rows not stored).  A
 * whole line (n = L) is stored with one non-temporal store, a part of one with a masked
 * store of its lanes only. */
#define FR_DEFINE_RING_OUT_V4(T, SFX, VT, L, LOADM, STREAM, MSTORE, ZERO, TRANSPOSE, MASKT)   \
__attribute__((target("arch=x86-64-v4")))                                                     \
static void fr_ring_out_##SFX##_v4(const T *ring, ptrdiff_t R, ptrdiff_t lds, ptrdiff_t slot0, \
                                   int dir, ptrdiff_t n, ptrdiff_t off, ptrdiff_t cols,       \
                                   T *dst, ptrdiff_t ldd)                                     \
{                                                                                             \
    const T *src[L];                                                                          \
    for (int q = 0; q < L; ++q) {                                                             \
        ptrdiff_t slot = (slot0 + dir * (q - off)) % R;                                       \
        src[q] = q >= off && q < off + n ? ring + (slot < 0 ? slot + R : slot) * lds : NULL;  \
    }                                                                                         \
    const MASKT lanes = (MASKT)((((uint32_t)1 << n) - 1) << off);                             \
    for (ptrdiff_t c0 = 0; c0 < cols; c0 += L) {                                              \
        const ptrdiff_t w = cols - c0 < L ? cols - c0 : L;                                    \
        const MASKT mask = (MASKT)(((uint32_t)1 << w) - 1);                                   \
        VT v[L];                                                                              \
        for (int q = 0; q < L; ++q) v[q] = src[q] ? LOADM(mask, src[q] + c0) : ZERO();        \
        TRANSPOSE(v);                                                                         \
        if (n == L)                                                                           \
            for (int q = 0; q < w; ++q) STREAM(dst + (c0 + q) * ldd, v[q]);                   \
        else                                                                                  \
            for (int q = 0; q < w; ++q) MSTORE(dst + (c0 + q) * ldd, lanes, v[q]);            \
    }                                                                                         \
    if (n == L)                                                                               \
        _mm_sfence();                                                                         \
}
FR_DEFINE_RING_OUT_V4(float, f, __m512, 16, _mm512_maskz_loadu_ps, _mm512_stream_ps,
                      _mm512_mask_storeu_ps, _mm512_setzero_ps, fr_transpose16_f_v4, __mmask16)
FR_DEFINE_RING_OUT_V4(double, d, __m512d, 8, _mm512_maskz_loadu_pd, _mm512_stream_pd,
                      _mm512_mask_storeu_pd, _mm512_setzero_pd, fr_transpose8_d_v4, __mmask8)
/* Every column's destination line at the same lane (ldd a whole number of lines) and the n
 * steps within one line. */
#define FR_RING_OUT_LINES(SFX)                                                                \
    {                                                                                         \
        enum { L = FR_LINE_BYTES / sizeof(*dst) };                                            \
        const ptrdiff_t off = (ptrdiff_t)((uintptr_t)dst / sizeof(*dst) % L);                 \
        if (fr_active_isa() >= FR_ISA_AVX512 && n >= 1 && off + n <= L                        \
            && (uintptr_t)dst % sizeof(*dst) == 0                                             \
            && (ldd * (ptrdiff_t)sizeof(*dst)) % FR_LINE_BYTES == 0) {                        \
            fr_ring_out_##SFX##_v4(ring, R, lds, slot0, dir, n, off, cols,                    \
                                   (void *)((uintptr_t)dst - off * sizeof(*dst)), ldd);       \
            return;                                                                           \
        }                                                                                     \
    }
#else
#define FR_RING_OUT_LINES(SFX)
#endif

static void fr_ring_out_f(const float *ring, ptrdiff_t R, ptrdiff_t lds, ptrdiff_t slot0,
                          int dir, ptrdiff_t n, ptrdiff_t cols, float *dst, ptrdiff_t ldd)
{
    FR_RING_OUT_LINES(f)
    fr_ring_out_f_any(ring, R, lds, slot0, dir, n, cols, dst, ldd);
}
static void fr_ring_out_d(const double *ring, ptrdiff_t R, ptrdiff_t lds, ptrdiff_t slot0,
                          int dir, ptrdiff_t n, ptrdiff_t cols, double *dst, ptrdiff_t ldd)
{
    FR_RING_OUT_LINES(d)
    fr_ring_out_d_any(ring, R, lds, slot0, dir, n, cols, dst, ldd);
}

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
