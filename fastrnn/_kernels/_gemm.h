/*
 * Packed-panel GEMM for the recurrent product (and any Z += W @ H whose W is reused):
 *
 *     Z (rows, m) += W (rows, K) @ H (K, m),   Z and H column-major, W packed once,
 *
 * or, given a bias (rows,), Z = bias + W @ H in every column (K >= 1): the first K block
 * stores bias + its sums, so Z is written before it is read and no caller copies the bias in.
 * W may be columns [k0, k0 + K) of a block packed with Kp >= K columns: P then points at
 * column k0 of the first panel (packed + k0 * rows per panel), Kp gives the panel stride.
 *
 * OpenBLAS's gemm re-packs W on every call, i.e. on every time step, and runs this skinny
 * shape at about half its square-GEMM rate; m gemv calls read W m times.  Here W is packed
 * once per call (fr_panel_pack) into panels of FR_MR rows, 128 bytes of rows per k (16
 * doubles, 32 floats), each panel stored k-major, rows past the end zero.  The micro-kernels
 * keep a block of P panels x N columns of Z in registers and stream the panels once per
 * step, broadcasting one value of H per column and k:
 *
 *   - small batches (m up to NR) run as one column tile, several panels at a time so that
 *     each loaded row vector feeds as many accumulators as the registers allow: the whole
 *     recurrent block is read exactly once per step, one contiguous stream per panel;
 *   - larger batches go in column tiles of NR, with K blocked by FR_KC so a panel block is
 *     reused from cache across the tiles.  A packed block larger than FR_TILES_BLOCK_ABOVE
 *     bytes (one tile: FR_BLOCK_ABOVE, more than the caches keep from one step to the
 *     next, next to the LSTM's other block) also goes in blocks of rows of about
 *     FR_MC_BYTES, each reused from L2 across all column tiles while the next block is
 *     prefetched, instead of streaming the whole block once per tile (measured on AMD Zen
 *     4, float32, m = 64: one block of 4096 x 1024 rows x K from 80 to 89 GFLOP/s, 2048 x
 *     1024 from 80 to 98; the LSTM at `fastrnns`, two 4 MiB blocks per step, 350 -> 300 ms;
 *     on AMD Zen 5, 1 MiB of L2, 1024 x 384 (1.5 MiB) against 32-64 columns: the LSTM x0.94-
 *     0.96, and a one-tile batch of 8 columns was x1.05 slower blocked: it keeps 2 MiB).
 *
 * A one-tile batch may read the panels from the last one (``descending``; at AVX-512 its
 * block is then not in row blocks): the recurrences do every other step, so that a block
 * about the size of L2 is mostly still there (see step_descending in _products.pxd).  Each
 * row's sums are the same either way.  A one-tile batch whose block exceeds
 * FR_TILES_BLOCK_ABOVE also prefetches its own panels FR_L1_AHEAD k ahead into L1 when its
 * tile has at least FR_L1_AHEAD_MIN_N columns (the block is read once per step, from L2 or
 * beyond; measured on Intel Sapphire Rapids, float32, the LSTM at m = 8-12: x0.93-0.97;
 * against several tiles the block is reused from L2 and the extra loads did not pay).  A
 * tile of fewer columns makes fewer multiply-adds per loaded vector (N), and there the
 * prefetches compete with the loads the tile waits on.  Measured on AMD Zen 4 (1 MiB L2)
 * without them: the product alone (blocks of 1-16 MiB, every other step descending),
 * float32 m = 1-3 x0.80-0.97, float64 m = 1-6 x0.82-0.93, and m = 7-12 kept them (float64
 * 4096 x 1024, m = 8: 2.0 ms with them, 2.7 without); the LSTM model, 8 steps, time per
 * ONNX Runtime's in the same process, old and new build alternated: n_a = 512, m = 1-2
 * x0.86-0.90, n_a = 192-384, m = 2-3 x0.92-0.95, n_a = 1024, m = 4 x0.93-0.98, m = 6-8
 * unchanged.  The AVX2 whole-panel tiles (up to 3 columns): the product, m = 1-3
 * x0.82-0.87.
 *
 * The layout is the same for every instruction-set level; the micro-kernels exist for
 * AVX-512 (2 vectors of 64 bytes per panel row, 32 registers: up to 24 accumulators) and
 * AVX2+FMA (4 vectors of 32 bytes, 16 registers: up to 12; from 4 columns on, half panels).
 * At the SSE2 level the kernels use the small-batch kernel or BLAS instead
 * (fr_panel_available() is 0).  Accumulation is in k order per row and column, with fused
 * multiply-adds.
 */
#ifndef FASTRNN_GEMM_H
#define FASTRNN_GEMM_H

#include "_vmath.h"
#include "_transpose.h"
#include <unistd.h>
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#endif

#define FR_PANEL_BYTES 128
#define FR_KC 256
#define FR_MC_BYTES (128 * 1024)
#define FR_BLOCK_ABOVE (2 * 1024 * 1024)
#define FR_TILES_BLOCK_ABOVE (256 * 1024)
#define FR_NC_BYTES (256 * 1024)
/* A packed block of more bytes than this (each block on its own: the RNN's and the GRU's
 * W_a and W_x are two) is stored with non-temporal stores: it no longer stays in the
 * caches beside the weights it comes from, and plain stores fetch each line of it first
 * and write it back later: three passes over memory instead of two.  Measured on AMD Zen 4
 * (32 MiB L3), the LSTM's drop-in call of 8 steps, 3 examples, streamed / as before:
 * float32 blocks of 24 MiB (n_a = 1024, n_x = 512) x0.76 (x0.73-0.78 at AVX2), 13.5 MiB
 * (768, 384) x0.80; float64 12 MiB (512, 256) x0.79-0.83; 6-8 MiB (512, 256; 512, 512)
 * x0.99-1.01, but 3.4 MiB (384, 192) x1.10-1.12: there the block packed in cache is read
 * by the first step.  The RNN's backward at `fastrnns` (its inputs packed, 13 MiB) x1.00.
 * Smaller blocks keep fr_transpose's bands of 8 float (4 double) rows: a line of rows at a
 * time with plain stores made the drop-in LSTM at 512/512/64, m = 4, 2-4% slower (16
 * source rows 4 KiB apart, from beyond L2). */
#define FR_PACK_STREAM_ABOVE (8 * 1024 * 1024)
#define FR_L1_AHEAD 8
#define FR_L1_AHEAD_MIN_N 7

/* L2 bytes per core on an Intel CPU (0 elsewhere, or where the C library does not say):
 * asked once, since sysconf runs cpuid, which a virtual machine may trap; threads that race
 * here store the same value. */
static ptrdiff_t fr_intel_l2_bytes(void)
{
    static ptrdiff_t bytes = -1;
    ptrdiff_t b = __atomic_load_n(&bytes, __ATOMIC_RELAXED);
    if (b < 0) {
        b = 0;
#if FR_HAVE_DISPATCH && defined(__GNUC__) && defined(_SC_LEVEL2_CACHE_SIZE)
        if (__builtin_cpu_is("intel")) {
            long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
            b = l2 > 0 ? l2 : 0;
        }
#endif
        __atomic_store_n(&bytes, b, __ATOMIC_RELAXED);
    }
    return b;
}

/* 1 where a block beyond L2 is read from L3 slowly enough that the LSTM projects its inputs
 * ahead of the loop at fewer examples (lstm_step_x in _core.pyx), and where the small-batch
 * kernel reads row-major weights at about half the panel kernel's rate, so that packing pays
 * back sooner (lstm_plan, rnn_plan): measured on an Intel Xeon of the Sapphire Rapids class
 * (2 MiB L2, mesh L3, AVX-512); taken for Intel CPUs with an L2 of 2 MiB or more. */
static int fr_slow_l3(void)
{
    return fr_intel_l2_bytes() >= 2 * 1024 * 1024;
}

/* Columns in a column tile of the AVX-512 panel GEMM, at most: 12 (24 accumulators: a batch
 * of up to 12 is one tile, each Z value written once; measured on AMD Zen 5, float32,
 * against tiles of 8 with 9-12 columns as 8 + 1..4, K blocked: the panel GEMM of 768-2048
 * rows at m = 9-12 from 161-201 to 203-218 GFLOP/s, the LSTM model at m = 9-12 x0.79-0.93;
 * from 13 columns on, the same time), but 8 on AMD Zen 4 (family 19h with AVX-512: each
 * 512-bit FMA takes both of its 256-bit units), where tiles of 11-12 columns ran slower than
 * the same columns in tiles of at most 8 (2048 x 512 - 4096 x 1536 blocks, tiles as even as
 * they come: float32 at m = 11-64 +2-15%, float64 +4-30%; a lone tile of 9-10 within 2%).
 * Asked once; fr_set_tile_cols overrides it (tests and benchmarks, any CPU). */
static int fr_tile_cols_set = 0;

static int fr_cpu_tile_cols(void)
{
#if FR_HAVE_DISPATCH && defined(__GNUC__)
    if (__builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f")) {
        unsigned a, b, c, d;
        if (__get_cpuid(1, &a, &b, &c, &d)) {
            unsigned family = (a >> 8) & 0xf;
            if (family == 0xf) family += (a >> 20) & 0xff;  /* the extended family */
            if (family == 0x19) return 8;
        }
    }
#endif
    return 12;
}

static int fr_tile_cols(void)
{
    int n = __atomic_load_n(&fr_tile_cols_set, __ATOMIC_RELAXED), unset = 0;
    if (n == 0) {  /* first use: this CPU's choice, unless a setter got there first */
        n = fr_cpu_tile_cols();
        if (!__atomic_compare_exchange_n(&fr_tile_cols_set, &unset, n, 0, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED))
            n = unset;
    }
    return n;
}

/* Make n (8 or 12; 0: this CPU's choice) the AVX-512 tile width; returns the previous one.
 * Not meant to run while a kernel runs on another thread (a call could then mix widths
 * between its steps). */
static int fr_set_tile_cols(int n)
{
    (void)fr_tile_cols();  /* resolved first: the exchange gives back a width, not 0 */
    return __atomic_exchange_n(&fr_tile_cols_set, n == 8 || n == 12 ? n : fr_cpu_tile_cols(),
                               __ATOMIC_RELAXED);
}

/* 1 when the active level has panel micro-kernels. */
static int fr_panel_available(void)
{
#if FR_HAVE_DISPATCH && defined(__GNUC__)
    return fr_active_isa() >= FR_ISA_AVX2;
#else
    return 0;
#endif
}

#define FR_DEFINE_PANEL_PACK(T, SFX)                                                          \
static ptrdiff_t fr_panel_size_##SFX(ptrdiff_t rows, ptrdiff_t K)                             \
{                                                                                             \
    const ptrdiff_t mr = FR_PANEL_BYTES / sizeof(T);                                          \
    return (rows + mr - 1) / mr * mr * K;                                                     \
}                                                                                             \
/* Pack rows x K of W into panels; W's rows come from blocks of block_rows rows each (the  \
 * LSTM's four gate matrices, or one block), all with row stride ldw.  A panel is the      \
 * transpose of its MR rows (several runs where it straddles blocks), zeros past the end.  \
 * A block of more than FR_PACK_STREAM_ABOVE bytes is stored past the caches, a line of    \
 * rows at a time (fr_stream_band; the ragged parts of its runs through fr_transpose).     \
 */                                                                                           \
static void fr_panel_pack_##SFX(ptrdiff_t rows, ptrdiff_t K, const T *const *W,               \
                                ptrdiff_t block_rows, ptrdiff_t ldw, T *P)                    \
{                                                                                             \
    enum { MR = FR_PANEL_BYTES / sizeof(T), LR = FR_LINE_BYTES / sizeof(T) };                 \
    const int nt = fr_panel_size_##SFX(rows, K) * (ptrdiff_t)sizeof(T) > FR_PACK_STREAM_ABOVE \
                   && (uintptr_t)P % FR_LINE_BYTES == 0; /* whole lines: P line aligned */   \
    for (ptrdiff_t p = 0; p * MR < rows; ++p) {                                               \
        T *dst = P + p * K * MR;                                                              \
        for (ptrdiff_t r = 0, run; r < MR; r += run) {                                        \
            ptrdiff_t row = p * MR + r, in_block = row % block_rows;                          \
            if (row >= rows) {                                                                \
                for (ptrdiff_t k = 0; k < K; ++k)                                             \
                    for (ptrdiff_t q = r; q < MR; ++q) dst[k * MR + q] = 0;                   \
                break;                                                                        \
            }                                                                                 \
            run = MR - r;                                                                     \
            run = run < block_rows - in_block ? run : block_rows - in_block;                  \
            run = run < rows - row ? run : rows - row;                                        \
            const T *src = W[row / block_rows] + in_block * ldw;                              \
            ptrdiff_t done = 0;                                                               \
            if (nt) {                                                                         \
                done = (LR - r % LR) % LR; /* the rows up to the next line */                 \
                done = done < run ? done : run;                                               \
                if (done > 0) fr_transpose_##SFX(src, done, K, ldw, dst + r, MR);             \
                for (; done + LR <= run; done += LR)                                          \
                    fr_stream_band_##SFX(src + done * ldw, K, ldw, dst + r + done, MR);       \
            }                                                                                 \
            if (done < run)                                                                   \
                fr_transpose_##SFX(src + done * ldw, run - done, K, ldw, dst + r + done, MR); \
        }                                                                                     \
    }                                                                                         \
}

FR_DEFINE_PANEL_PACK(double, d)
FR_DEFINE_PANEL_PACK(float, f)

#if FR_HAVE_DISPATCH && defined(__GNUC__)

typedef double fr_z8d __attribute__((vector_size(64)));
typedef float fr_z16f __attribute__((vector_size(64)));
typedef double fr_y4d __attribute__((vector_size(32)));
typedef float fr_y8f __attribute__((vector_size(32)));

/* A tile's epilogue for one column and NV vectors of rows: Z = bias + acc (bias not NULL)
 * or Z += acc, for the nr rows of Z that exist (none when nr <= 0).  ACC is the tile's
 * accumulator of vector v (an expression in v). */
#define FR_PG_STORE(T, VT, NV, ACC, zc_, bias_, nr_)                                          \
    do {                                                                                      \
        enum { V_ = sizeof(VT) / sizeof(T) };                                                 \
        T *zc = (zc_);                                                                        \
        const T *start = (bias_) ? (bias_) : zc;                                              \
        const ptrdiff_t nr = (nr_);                                                           \
        if (nr >= NV * V_) {                                                                  \
            for (int v = 0; v < NV; ++v) {                                                    \
                VT z;                                                                         \
                memcpy(&z, start + v * V_, sizeof z);                                         \
                z += ACC;                                                                     \
                memcpy(zc + v * V_, &z, sizeof z);                                            \
            }                                                                                 \
        } else if (nr > 0) {                                                                  \
            for (int v = 0; v < NV && v * V_ < nr; ++v) {                                     \
                VT t = ACC; /* a copy: the accumulator itself stays in registers */           \
                for (int r = 0; r < V_ && v * V_ + r < nr; ++r)                               \
                    zc[v * V_ + r] = start[v * V_ + r] + t[r];                                \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* Do a tile's accumulators (ROWVECS row vectors x N columns), its ROWVECS row vectors of a
 * k and one broadcast fit in the level's vector registers (32 at AVX-512, 16 at AVX2)?
 * There each row vector is loaded once per k into a register of its own (an empty asm
 * statement that "changes" it keeps the compiler from folding the load into every
 * multiply-add instead: GCC 12 did so in the 4-panel x 2-column tile, two loads of each
 * vector per k, and on AMD Zen 4, whose loads of 512 bits go one per cycle, those loads and
 * not the multiply-adds set the pace).
 * Measured on Zen 4, the product alone, float32 (float64), 2 columns, blocks of 768 x 192
 * to 1024 x 384 (in L2): 92-97 -> 100-108 GFLOP/s (46 -> 49), 2048 x 512-1024 (from L3)
 * +3-5%; at AVX2 (one panel x 2 columns) 768 x 192: 84 -> 100 (39 -> 44), 2048 x 512
 * float64 38.5 -> 37.4.  Same operations in the same order: same bits. */
#define FR_PG_FITS(VT, ROWVECS, N)                                                           \
    ((ROWVECS) * ((N) + 1) + 1 <= (sizeof(VT) == 64 ? 32 : 16))

/* Micro-kernel: Z[:, 0:N] of the P panels at Pp (panel stride ps) += panels @ H[:, 0:N], k
 * in [0, kc).  nrows: rows of Z left from the first panel's first row (edge panels store
 * only their real rows).  VT is the level's vector type, RV of them per panel row; with
 * HALF (one panel, at most MR / 2 rows of it real: the last panel of a block whose rows are
 * not a whole number of panels), only the first RV / 2 of them, so that the zero rows of
 * the panel's second half are neither read nor multiplied (same sums for the real rows;
 * old and new build alternated on AMD Zen 4, float32 models: `charlm` RNN, 100 rows, x0.93,
 * GRU x0.99, LSTM x0.99; `lesson` RNN x0.94-0.97; the RNN at n_a = 512 with 5 examples and
 * 8 steps, whose output layer has 40 rows of states, x0.92, the LSTM x0.97).
 * One cache line from pf on is prefetched (into L2) per k: the next row block's panels, or
 * lines already in cache when there is nothing to fetch. */
#define FR_PG_TILE_AS(T, SFX, TAG, VT, P, N, HALF, NAME)                                      \
FR_INLINE void NAME(ptrdiff_t kc, const T *Pp, ptrdiff_t ps, const T *H, ptrdiff_t ldh, T *Z, \
                    ptrdiff_t ldz, ptrdiff_t nrows, const T *pf, const T *bias, int ahead)   \
{                                                                                             \
    enum { V = sizeof(VT) / sizeof(T), RV = FR_PANEL_BYTES / sizeof(VT), MR = V * RV,         \
           RU = HALF ? RV / 2 : RV };                                                         \
    VT acc[P * RU][N];                                                                        \
    for (int q = 0; q < P * RU; ++q)                                                          \
        for (int j = 0; j < N; ++j) acc[q][j] = (VT){0};                                      \
    for (ptrdiff_t k = 0; k < kc; ++k) {                                                      \
        __builtin_prefetch(pf + k * (64 / sizeof(T)), 0, 2);                                  \
        for (int p = 0; p < P && ahead && N >= FR_L1_AHEAD_MIN_N; ++p) { /* see above */      \
            __builtin_prefetch(Pp + p * ps + (k + FR_L1_AHEAD) * MR, 0, 3);                   \
            if (!HALF)                                                                        \
                __builtin_prefetch(Pp + p * ps + (k + FR_L1_AHEAD) * MR + 64 / sizeof(T), 0,  \
                                   3);                                                        \
        }                                                                                     \
        VT w[P * RU];                                                                         \
        for (int p = 0; p < P; ++p)                                                           \
            for (int v = 0; v < RU; ++v) {                                                    \
                VT t;                                                                         \
                memcpy(&t, Pp + p * ps + k * MR + v * V, sizeof t);                           \
                if (FR_PG_FITS(VT, P * RU, N))                                                \
                    __asm__("" : "+v"(t)); /* loaded once, into a register: see above */      \
                w[p * RU + v] = t;                                                            \
            }                                                                                 \
        for (int j = 0; j < N; ++j) {                                                         \
            T b = H[j * ldh + k];                                                             \
            for (int q = 0; q < P * RU; ++q) acc[q][j] += w[q] * b;                           \
        }                                                                                     \
    }                                                                                         \
    for (int p = 0; p < P; ++p)                                                               \
        for (int j = 0; j < N; ++j)                                                           \
            FR_PG_STORE(T, VT, RU, acc[p * RU + v][j], Z + j * ldz + p * MR,                  \
                        bias ? bias + p * MR : NULL, nrows - p * MR);                         \
}
#define FR_PG_TILE(T, SFX, TAG, VT, P, N)                                                     \
    FR_PG_TILE_AS(T, SFX, TAG, VT, P, N, 0, fr_pg_##TAG##_##SFX##_##P##x##N)                  \
    FR_PG_HALF_TILE_##P(T, SFX, TAG, VT, N)
/* each one-panel tile comes with its half-panel twin */
#define FR_PG_HALF_TILE_1(T, SFX, TAG, VT, N)                                                 \
    FR_PG_TILE_AS(T, SFX, TAG, VT, 1, N, 1, fr_pg_##TAG##_##SFX##_h##x##N)
#define FR_PG_HALF_TILE_2(T, SFX, TAG, VT, N)
#define FR_PG_HALF_TILE_3(T, SFX, TAG, VT, N)
#define FR_PG_HALF_TILE_4(T, SFX, TAG, VT, N)

/* The block's panels against one column tile of N columns, P panels at a time (then one by
 * one; the last panel alone where half of it or less is rows, through the half tile, and
 * the others of its group then one by one too).  Each call prefetches kc lines: half a
 * panel of the next block (a panel's k-range is kc * 128 bytes), until the next block is all
 * fetched. */
#define FR_PG_COLS(TAG, SFX, P, N)                                                            \
    case N: {                                                                                 \
        const int half_last = rows - (np - 1) * mr <= mr / 2;                                 \
        const ptrdiff_t pg = (np - half_last) / P * P; /* panels in groups of P */           \
        if (!down) {                                                                          \
            for (ptrdiff_t p = 0; p < pg; p += P, ++pfc)                                      \
                FR_PG_CALL(TAG, SFX, P, N);                                                   \
            for (ptrdiff_t p = pg; p < np; ++p, ++pfc)                                        \
                FR_PG_CALL1(TAG, SFX, N);                                                     \
        } else {                                                                              \
            for (ptrdiff_t p = np - 1; p >= pg; --p, ++pfc)                                   \
                FR_PG_CALL1(TAG, SFX, N);                                                     \
            for (ptrdiff_t p = pg - P; p >= 0; p -= P, ++pfc)                                 \
                FR_PG_CALL(TAG, SFX, P, N);                                                   \
        }                                                                                     \
        break;                                                                                \
    }
#define FR_PG_CALL(TAG, SFX, P, N)                                                            \
    fr_pg_##TAG##_##SFX##_##P##x##N(kc, Pk + p * ps, ps, Hj, ldh, Zj + p * mr, ldz,           \
                                    rows - p * mr, FR_PG_PREFETCH, FR_PG_BIAS, ahead)
#define FR_PG_CALL1(TAG, SFX, N)                                                              \
    do {                                                                                      \
        if (rows - p * mr <= mr / 2)                                                          \
            FR_PG_CALL(TAG, SFX, h, N);                                                       \
        else                                                                                  \
            FR_PG_CALL(TAG, SFX, 1, N);                                                       \
    } while (0)
#define FR_PG_PREFETCH                                                                        \
    (pfc < pf_calls ? Pk + (np + pfc / 2) * ps + (pfc % 2) * kc * (64 / (ptrdiff_t)sizeof(*Pk)) \
                    : Pk)

#define FR_PG_BIAS (bk ? bk + p * mr : NULL)

#define FR_PG_DRIVER_HEAD(T, SFX, TAG, TARGET, NR_MAX, P1, EVEN, DOWN_WHOLE)                  \
__attribute__((target(TARGET)))                                                               \
static void fr_panel_gemm_##TAG##_##SFX(ptrdiff_t all_rows, ptrdiff_t all_m, ptrdiff_t K,     \
                                        ptrdiff_t Kp, const T *P, const T *all_H,             \
                                        ptrdiff_t ldh, T *all_Z, ptrdiff_t ldz,               \
                                        const T *bias, int descending)                        \
{                                                                                             \
    const ptrdiff_t mr = FR_PANEL_BYTES / sizeof(T), all_np = (all_rows + mr - 1) / mr;       \
    const ptrdiff_t ps = Kp * mr;                                                             \
    const ptrdiff_t NR = (NR_MAX); /* columns per tile, at most */                           \
    /* one column tile: no K blocking (each Z value is updated once) */                       \
    const int one_tile = all_m <= NR;                                                         \
    /* its own panels prefetched into L1 (see above): a block beyond what L1 and L2 keep    \
     * across a step's other traffic */                                                       \
    const int ahead = one_tile && all_rows * K * (ptrdiff_t)sizeof(T) > FR_TILES_BLOCK_ABOVE; \
    const ptrdiff_t kb = one_tile ? K : FR_KC;                                                \
    /* many columns (an input projection over every step): blocks of them whose kb rows of H \
     * stay in cache while every panel passes over them */                                    \
    ptrdiff_t jb = FR_NC_BYTES / (kb * (ptrdiff_t)sizeof(T)) / NR * NR;                       \
    jb = jb < NR ? NR : jb;                                                                   \
    for (ptrdiff_t c0 = 0; c0 < all_m; c0 += jb) {                                            \
    const ptrdiff_t m = all_m - c0 < jb ? all_m - c0 : jb;                                    \
    const T *H = all_H + c0 * ldh;                                                            \
    T *Z = all_Z + c0 * ldz;                                                                  \
    /* column tiles of NR; with EVEN, of at most NR, as even as they come (16 columns: 8 +   \
     * 8, not 12 + 4) */                                                                     \
    const ptrdiff_t tiles = (m + NR - 1) / NR, tw = EVEN ? (m + tiles - 1) / tiles : NR;      \
    /* (a one-tile batch goes in row blocks only where its tile is one panel wide (m >= P1): \
     * a block of one panel would split the wider tiles; with DOWN_WHOLE, not when it runs  \
     * descending: turning round every other step keeps the part of a block beyond L2 that   \
     * is still in cache, where blocks streamed in order from the first evict it; measured   \
     * on Intel Sapphire Rapids (2 MiB L2), AVX-512, float32, 6-14 MiB blocks, m = 8-12: the \
     * LSTM x0.91-0.96; at AVX2 the GRU at n_a = 1024, m = 4 lost 6% without its row blocks' \
     * prefetch) */                                                                          \
    const int blocked = (m > NR || (m >= P1 && !(DOWN_WHOLE && descending)))                  \
                        && all_rows * K * (ptrdiff_t)sizeof(T)                                \
                           > (m > NR ? FR_TILES_BLOCK_ABOVE : FR_BLOCK_ABOVE);                \
    for (ptrdiff_t k0 = 0; k0 < K; k0 += kb) {                                                \
        ptrdiff_t kc = K - k0 < kb ? K - k0 : kb;                                             \
        ptrdiff_t bp = blocked ? FR_MC_BYTES / (kc * FR_PANEL_BYTES) : all_np;                \
        bp = bp < 1 ? 1 : bp;                                                                 \
        for (ptrdiff_t p0 = 0; p0 < all_np; p0 += bp) {                                       \
            const ptrdiff_t np = all_np - p0 < bp ? all_np - p0 : bp, rows = all_rows - p0 * mr; \
            const T *Pk = P + p0 * ps + k0 * mr;                                              \
            const T *bk = bias && k0 == 0 ? bias + p0 * mr : NULL;                            \
            const ptrdiff_t next = all_np - p0 - np < bp ? all_np - p0 - np : bp;             \
            const ptrdiff_t pf_calls = blocked ? 2 * next : 0;                                \
            /* the panels in descending order (a block read whole once per call only) */      \
            const int down = descending && one_tile && !blocked;                              \
            ptrdiff_t pfc = 0;                                                                \
            for (ptrdiff_t j0 = 0; j0 < m; j0 += tw) {                                        \
                const T *Hj = H + j0 * ldh + k0;                                              \
                T *Zj = Z + j0 * ldz + p0 * mr;                                               \
                switch (m - j0 < tw ? m - j0 : tw) {
#define FR_PG_DRIVER_TAIL                                                                     \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    }                                                                                         \
}

/* AVX-512: 2 vectors per panel row, up to fr_tile_cols() columns (12: 24 accumulators), in
 * tiles as even as they come; P chosen so that 2*P*N <= 24, and for 3 columns so that the
 * row vectors stay in registers too (FR_PG_FITS: 3 panels, 18 accumulators; with 4,
 * 24 accumulators and 8 row vectors did not fit and each vector was loaded once per column:
 * on AMD Zen 4 the product of 768 x 192 to 4096 x 1024 blocks went from 88-98 to 100-114
 * GFLOP/s, float64 48 -> 55). */
#define FR_DEFINE_PG_AVX512(T, SFX, VT)                                                       \
FR_PG_TILE(T, SFX, v4, VT, 1, 1) FR_PG_TILE(T, SFX, v4, VT, 4, 1)                             \
FR_PG_TILE(T, SFX, v4, VT, 1, 2) FR_PG_TILE(T, SFX, v4, VT, 4, 2)                             \
FR_PG_TILE(T, SFX, v4, VT, 1, 3) FR_PG_TILE(T, SFX, v4, VT, 3, 3)                             \
FR_PG_TILE(T, SFX, v4, VT, 1, 4) FR_PG_TILE(T, SFX, v4, VT, 3, 4)                             \
FR_PG_TILE(T, SFX, v4, VT, 1, 5) FR_PG_TILE(T, SFX, v4, VT, 2, 5)                             \
FR_PG_TILE(T, SFX, v4, VT, 1, 6) FR_PG_TILE(T, SFX, v4, VT, 2, 6)                             \
FR_PG_TILE(T, SFX, v4, VT, 1, 7)                                                              \
FR_PG_TILE(T, SFX, v4, VT, 1, 8)                                                              \
FR_PG_TILE(T, SFX, v4, VT, 1, 9) FR_PG_TILE(T, SFX, v4, VT, 1, 10)                            \
FR_PG_TILE(T, SFX, v4, VT, 1, 11) FR_PG_TILE(T, SFX, v4, VT, 1, 12)                           \
FR_PG_DRIVER_HEAD(T, SFX, v4, "arch=x86-64-v4", fr_tile_cols(), 7, 1, 1)                      \
    FR_PG_COLS(v4, SFX, 4, 1) FR_PG_COLS(v4, SFX, 4, 2) FR_PG_COLS(v4, SFX, 3, 3)             \
    FR_PG_COLS(v4, SFX, 3, 4) FR_PG_COLS(v4, SFX, 2, 5) FR_PG_COLS(v4, SFX, 2, 6)             \
    FR_PG_COLS(v4, SFX, 1, 7) FR_PG_COLS(v4, SFX, 1, 8) FR_PG_COLS(v4, SFX, 1, 9)             \
    FR_PG_COLS(v4, SFX, 1, 10) FR_PG_COLS(v4, SFX, 1, 11) FR_PG_COLS(v4, SFX, 1, 12)          \
FR_PG_DRIVER_TAIL

/* AVX2+FMA: 16 registers of 32 bytes.  A whole panel row (4 vectors) against 4 or more
 * columns would need 16+ accumulators, and against 3 it leaves no register for the row
 * vectors, which the compiler then re-reads from memory for every column.  From 4 columns on
 * the AVX2 tiles therefore take a unit of half a panel row (64 bytes: 2 vectors, one cache
 * line per k; a panel is two units) against N <= 6 columns: 2N accumulators, 2 row vectors
 * loaded once per k and one broadcast of H per column (2 + N loads per 2N multiply-adds; the
 * 16 x 6 float tile of BLIS's Haswell kernel).  Fewer columns keep whole-panel tiles
 * (FR_PG_TILE).  A batch of one tile (STREAM: the block is read once per call, from L3 when it
 * exceeds L2) also prefetches its own unit 8 k ahead into L1.  Measured on AMD Zen 3 (L2 512
 * KiB), float32, 2048 rows, against whole-panel tiles of 3 columns: time x0.81-0.91 at m = 4-6
 * (K = 512-1024), x0.9-1.0 at m = 8-96 (K = 256-1024); the prefetch, m = 4-6: x0.87-0.94. */
#define FR_PGU_TILE(T, SFX, TAG, VT, N, STREAM)                                               \
FR_INLINE void fr_pgu_##TAG##_##SFX##_##N##_##STREAM(ptrdiff_t kc, const T *Pk, ptrdiff_t ps, \
                                                     ptrdiff_t u, const T *H, ptrdiff_t ldh,  \
                                                     T *Z, ptrdiff_t ldz, ptrdiff_t nrows,    \
                                                     const T *pf, const T *bias)              \
{                                                                                             \
    enum { V = sizeof(VT) / sizeof(T), MR = FR_PANEL_BYTES / sizeof(T), UR = 2 * V };        \
    const T *w = Pk + (u / 2) * ps + (u % 2) * UR;                                            \
    VT acc[2][N];                                                                             \
    for (int j = 0; j < N; ++j) acc[0][j] = acc[1][j] = (VT){0};                              \
    for (ptrdiff_t k = 0; k < kc; ++k) {                                                      \
        __builtin_prefetch(pf + k * (64 / sizeof(T)), 0, 2);                                  \
        if (STREAM) __builtin_prefetch(w + (k + 8) * MR, 0, 3);                              \
        VT w0, w1;                                                                            \
        memcpy(&w0, w + k * MR, sizeof w0);                                                   \
        memcpy(&w1, w + k * MR + V, sizeof w1);                                               \
        for (int j = 0; j < N; ++j) {                                                         \
            T b = H[j * ldh + k];                                                             \
            acc[0][j] += w0 * b;                                                              \
            acc[1][j] += w1 * b;                                                              \
        }                                                                                     \
    }                                                                                         \
    for (int j = 0; j < N; ++j)                                                               \
        FR_PG_STORE(T, VT, 2, acc[v][j], Z + j * ldz, bias, nrows);                           \
}

/* The block's units (two per panel, none past the last row) against one column tile of N
 * columns. */
#define FR_PGU_COLS(TAG, SFX, N)                                                              \
    case N: {                                                                                 \
        const ptrdiff_t ur = mr / 2, nu0 = (rows + ur - 1) / ur;                              \
        const ptrdiff_t nu = nu0 < 2 * np ? nu0 : 2 * np;                                     \
        for (ptrdiff_t i = 0; i < nu; ++i, ++pfc) {                                           \
            const ptrdiff_t u = down ? nu - 1 - i : i;                                        \
            if (one_tile)                                                                     \
                fr_pgu_##TAG##_##SFX##_##N##_1(kc, Pk, ps, u, Hj, ldh, Zj + u * ur, ldz,      \
                                               rows - u * ur, FR_PG_PREFETCH,                 \
                                               bk ? bk + u * ur : NULL);                      \
            else                                                                              \
                fr_pgu_##TAG##_##SFX##_##N##_0(kc, Pk, ps, u, Hj, ldh, Zj + u * ur, ldz,      \
                                               rows - u * ur, FR_PG_PREFETCH,                 \
                                               bk ? bk + u * ur : NULL);                      \
        }                                                                                     \
        break;                                                                                \
    }

/* Up to 3 columns: whole-panel tiles, 4 * P * N <= 12 accumulators. */
#define FR_DEFINE_PG_AVX2(T, SFX, VT)                                                         \
FR_PG_TILE(T, SFX, v3, VT, 1, 1) FR_PG_TILE(T, SFX, v3, VT, 3, 1)                             \
FR_PG_TILE(T, SFX, v3, VT, 1, 2)                                                              \
FR_PG_TILE(T, SFX, v3, VT, 1, 3)                                                              \
FR_PGU_TILE(T, SFX, v3, VT, 4, 0) FR_PGU_TILE(T, SFX, v3, VT, 4, 1)                           \
FR_PGU_TILE(T, SFX, v3, VT, 5, 0) FR_PGU_TILE(T, SFX, v3, VT, 5, 1)                           \
FR_PGU_TILE(T, SFX, v3, VT, 6, 0) FR_PGU_TILE(T, SFX, v3, VT, 6, 1)                           \
FR_PG_DRIVER_HEAD(T, SFX, v3, "arch=x86-64-v3", 6, 2, 0, 0)                                   \
    FR_PG_COLS(v3, SFX, 3, 1) FR_PG_COLS(v3, SFX, 1, 2) FR_PG_COLS(v3, SFX, 1, 3)             \
    FR_PGU_COLS(v3, SFX, 4) FR_PGU_COLS(v3, SFX, 5) FR_PGU_COLS(v3, SFX, 6)                   \
FR_PG_DRIVER_TAIL

/* FR_PG_COLS with P = 1: every panel goes through the one-by-one loop (the half tile for a
 * last panel of at most half its rows). */
FR_DEFINE_PG_AVX512(double, d, fr_z8d)
FR_DEFINE_PG_AVX512(float, f, fr_z16f)
FR_DEFINE_PG_AVX2(double, d, fr_y4d)
FR_DEFINE_PG_AVX2(float, f, fr_y8f)

#define FR_DEFINE_PANEL_GEMM(T, SFX)                                                          \
static void fr_panel_gemm_##SFX(ptrdiff_t rows, ptrdiff_t m, ptrdiff_t K, ptrdiff_t Kp,       \
                                const T *P, const T *H, ptrdiff_t ldh, T *Z, ptrdiff_t ldz,   \
                                const T *bias, int descending)                                \
{                                                                                             \
    if (fr_active_isa() >= FR_ISA_AVX512)                                                     \
        fr_panel_gemm_v4_##SFX(rows, m, K, Kp, P, H, ldh, Z, ldz, bias, descending);          \
    else                                                                                      \
        fr_panel_gemm_v3_##SFX(rows, m, K, Kp, P, H, ldh, Z, ldz, bias, descending);          \
}
#else
#define FR_DEFINE_PANEL_GEMM(T, SFX)                                                          \
static void fr_panel_gemm_##SFX(ptrdiff_t rows, ptrdiff_t m, ptrdiff_t K, ptrdiff_t Kp,       \
                                const T *P, const T *H, ptrdiff_t ldh, T *Z, ptrdiff_t ldz,   \
                                const T *bias, int descending)                                \
{                                                                                             \
    (void)rows; (void)m; (void)K; (void)Kp; (void)P; (void)H; (void)ldh; (void)Z; (void)ldz;  \
    (void)bias; (void)descending;                                                             \
}
#endif

FR_DEFINE_PANEL_GEMM(double, d)
FR_DEFINE_PANEL_GEMM(float, f)

#endif /* FASTRNN_GEMM_H */
