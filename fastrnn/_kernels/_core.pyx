# cython: language_level=3, cdivision=True, nonecheck=False
# (boundscheck, wraparound, initializedcheck are set by setup.py: off, or on for a debug build)
"""Typed sequence kernels for the basic RNN and the LSTM (private; see fastrnn._api).

Layout (all arrays C-contiguous, one dtype):

- inputs and outputs keep the lessons' layout, time on the last axis: x (n_x, m, T),
  a, c (n_a, m, T), y (n_y, m, T).  Viewed as (rows, m*T) they are ordinary row-major
  matrices whose columns are the (example, step) pairs, so the input projection and the
  output layer are single GEMMs over all m*T columns.
- the work buffer z is (m, T, G*n_a): column (j, t) of the gate pre-activations.  A step's
  slice z[:, t, :] is a column-major (G*n_a, m) matrix with leading dimension T*G*n_a, which
  BLAS accumulates the recurrent product into directly.  For the LSTM it ends up holding the
  activated gates (what the caches need); for the RNN the hidden states.

Each entry point checks the arrays it is given (cheap C-level checks: defence in depth, the
Python API has validated everything already), then runs one nogil, noexcept core that
allocates nothing.  ``j0:j1`` selects a slice of the batch, so several threads can run
disjoint slices of one call for the whole sequence.
"""
cimport numpy as cnp
from cython cimport floating
from libc.limits cimport INT_MAX
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free, malloc

from fastrnn._kernels._blas cimport gemm_acc
from fastrnn._kernels._products cimport (FR_PACK_STREAM_ABOVE, FR_PANEL_BYTES,
                                         PANEL_MAX_BYTES, fr_panel_available, fr_panel_size_d,
                                         fr_intel_l2_bytes, fr_slow_l3, fr_set_tile_cols,
                                         fr_tile_cols,
                                         fr_panel_size_f, panel_acc, panel_pack, panel_size,
                                         small_acc, step_descending)
from fastrnn._kernels._transpose cimport FR_LINE_BYTES, lines_out, stream_copy, transpose

import threading

import numpy as np

from fastrnn import _pool

cnp.import_array()

cdef extern from *:
    """
    #ifndef FASTRNN_DEBUG_BUILD
    #define FASTRNN_DEBUG_BUILD 0
    #endif
    """
    int FASTRNN_DEBUG_BUILD

#: True in a debug build (FASTRNN_DEBUG=1 at build time: bounds checks and wraparound on).
DEBUG_BUILD = bool(FASTRNN_DEBUG_BUILD)

cdef extern from "_vmath.h" nogil:
    enum: FR_ISA_AVX512
    const char *fr_simd_level()
    int fr_cpu_isa()
    int fr_active_isa()
    int fr_set_isa(int level)
    void fr_exp_inplace_d(double *x, Py_ssize_t n)
    void fr_exp_inplace_f(float *x, Py_ssize_t n)
    void fr_sigmoid_inplace_d(double *x, Py_ssize_t n)
    void fr_sigmoid_inplace_f(float *x, Py_ssize_t n)
    void fr_tanh_inplace_d(double *x, Py_ssize_t n)
    void fr_tanh_inplace_f(float *x, Py_ssize_t n)
    Py_ssize_t fr_tanh_state_d(double *x, Py_ssize_t n)
    Py_ssize_t fr_tanh_state_f(float *x, Py_ssize_t n)
    void fr_relu_inplace_d(double *x, Py_ssize_t n)
    void fr_relu_inplace_f(float *x, Py_ssize_t n)
    void fr_flush_d(double *x, Py_ssize_t n)
    void fr_flush_f(float *x, Py_ssize_t n)
    int fr_all_finite_d(const double *x, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
    int fr_all_finite_f(const float *x, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t ld)
    Py_ssize_t fr_lstm_pointwise_d(double *g, const double *c_prev, double *c, double *h,
                                   Py_ssize_t n)
    Py_ssize_t fr_lstm_pointwise_f(float *g, const float *c_prev, float *c, float *h,
                                   Py_ssize_t n)
    void fr_softmax_cols_d(double *y, Py_ssize_t n_rows, Py_ssize_t n_cols, Py_ssize_t ld)
    void fr_softmax_cols_f(float *y, Py_ssize_t n_rows, Py_ssize_t n_cols, Py_ssize_t ld)
    Py_ssize_t fr_count_subnormal_d(const double *x, Py_ssize_t n)
    Py_ssize_t fr_count_subnormal_f(const float *x, Py_ssize_t n)
    double fr_madd_rounds_d(Py_ssize_t n)
    float fr_madd_rounds_f(Py_ssize_t n)
    Py_ssize_t fr_madd_per_round_d()
    Py_ssize_t fr_madd_per_round_f()


# ------------------------------------------------------------------ fused dispatch helpers

cdef inline void v_tanh(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_tanh_inplace_f(x, n)
    else:
        fr_tanh_inplace_d(x, n)


cdef inline void v_relu(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_relu_inplace_f(x, n)
    else:
        fr_relu_inplace_d(x, n)


cdef inline Py_ssize_t v_lstm_pointwise(floating *g, const floating *c_prev, floating *c,
                                        floating *h, Py_ssize_t n) noexcept nogil:
    # returns how many of the new h are subnormal (see flush_state)
    if floating is float:
        return fr_lstm_pointwise_f(g, c_prev, c, h, n)
    else:
        return fr_lstm_pointwise_d(g, c_prev, c, h, n)


cdef enum:
    # Elements (of the dtype) of the stack buffer in which lstm_pointwise_cols
    # (tanh_state_cols) runs the gate pass of all the step's columns at once (see there).
    COLS_BUFFER_ELEMS = 2048
    # Columns of fewer bytes than this go through that buffer.  A/B in one process, AMD Zen
    # 4, LSTM models and drop-in calls: float32 n_a = 5 (`lesson`) x0.73-0.76, 10-24
    # x0.65-0.92, 40-64 x0.98-1.07; float64 n_a = 5-9 x0.72-0.82, 12 x0.86-0.88, 20-64
    # x0.97-1.07 (the AVX2 and SSE2 levels, with narrower vectors, were not measured).
    COLS_MAX_BYTES = 128


cdef Py_ssize_t COLS_MAX = COLS_MAX_BYTES  # set_cols_max_bytes


def set_cols_max_bytes(Py_ssize_t n):
    """Columns of fewer bytes than this go through the gathered gate pass (see
    COLS_MAX_BYTES; 0: never).  Returns the previous value.  For benchmarks and tests."""
    global COLS_MAX
    previous = COLS_MAX
    COLS_MAX = max(n, 0)
    return previous


cdef inline Py_ssize_t cols_per_load(Py_ssize_t row, Py_ssize_t mt,
                                     Py_ssize_t values) noexcept nogil:
    # Columns of row bytes each, taking ``values`` elements of the buffer per column, that a
    # load of the gate pass's buffer holds; 0 where the pass goes column by column (columns
    # of COLS_MAX bytes or more, a single column, or fewer than two per load).
    cdef Py_ssize_t per = 0
    if 0 < row < COLS_MAX and mt >= 2:
        per = COLS_BUFFER_ELEMS // values
    return per if per >= 2 else 0


cdef Py_ssize_t lstm_pointwise_cols(floating *zg, Py_ssize_t ldg, const floating *c0,
                                    const floating *h_prev, Py_ssize_t ldh, bint first,
                                    floating *st, Py_ssize_t lds, Py_ssize_t n_a,
                                    Py_ssize_t mt) noexcept nogil:
    # The LSTM gate pass of one step's mt columns: column j's pre-activations at zg + j*ldg
    # (replaced by the activations), its previous cell state at c0 + j*n_a (first) or
    # h_prev + j*ldh + n_a, its new [h; c] written at st + j*lds.  Returns how many of the
    # new states are subnormal.  Where a column's n_a values take less than two 64-byte
    # vectors, a pass per column would run most of them in the loops' scalar remainders:
    # the columns are gathered into a buffer, gate by gate (as many as it holds at a time),
    # and the pass runs once over them (the same operations on each value: the same bits).
    cdef floating pw[COLS_BUFFER_ELEMS]
    cdef Py_ssize_t N, j, j0, k, nc, nsub = 0
    cdef Py_ssize_t per = cols_per_load(n_a * sizeof(floating), mt, 7 * n_a)
    cdef size_t row = n_a * sizeof(floating)
    # the previous cell states: column j's at cp + j*ldc
    cdef const floating *cp = c0 if first else h_prev + n_a
    cdef Py_ssize_t ldc = n_a if first else ldh
    if per == 0:
        for j in range(mt):
            nsub += v_lstm_pointwise(zg + j * ldg, cp + j * ldc, st + j * lds + n_a,
                                     st + j * lds, n_a)
        return nsub
    j0 = 0
    while j0 < mt:
        nc = min(per, mt - j0)
        N = nc * n_a
        for j in range(j0, j0 + nc):
            for k in range(4):
                memcpy(pw + k * N + (j - j0) * n_a, zg + j * ldg + k * n_a, row)
            memcpy(pw + 4 * N + (j - j0) * n_a, cp + j * ldc, row)
        nsub += v_lstm_pointwise(pw, pw + 4 * N, pw + 5 * N, pw + 6 * N, N)
        for j in range(j0, j0 + nc):
            for k in range(4):
                memcpy(zg + j * ldg + k * n_a, pw + k * N + (j - j0) * n_a, row)
            memcpy(st + j * lds + n_a, pw + 5 * N + (j - j0) * n_a, row)
            memcpy(st + j * lds, pw + 6 * N + (j - j0) * n_a, row)
        j0 += nc
    return nsub


cdef inline Py_ssize_t v_tanh_state(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fr_tanh_state_f(x, n)
    else:
        return fr_tanh_state_d(x, n)


cdef Py_ssize_t tanh_state_cols(floating *z, Py_ssize_t ldz, Py_ssize_t n_a,
                                Py_ssize_t mt) noexcept nogil:
    # z[j*ldz : j*ldz + n_a] := tanh of itself for j < mt (the RNN's states); returns how
    # many are subnormal.  Narrow columns are gathered as in lstm_pointwise_cols.
    cdef floating pw[COLS_BUFFER_ELEMS]
    cdef Py_ssize_t j, j0, nc, nsub = 0
    cdef Py_ssize_t per = cols_per_load(n_a * sizeof(floating), mt, n_a)
    cdef size_t row = n_a * sizeof(floating)
    if per == 0:
        for j in range(mt):
            nsub += v_tanh_state(z + j * ldz, n_a)
        return nsub
    j0 = 0
    while j0 < mt:
        nc = min(per, mt - j0)
        for j in range(j0, j0 + nc):
            memcpy(pw + (j - j0) * n_a, z + j * ldz, row)
        nsub += v_tanh_state(pw, nc * n_a)
        for j in range(j0, j0 + nc):
            memcpy(z + j * ldz, pw + (j - j0) * n_a, row)
        j0 += nc
    return nsub


cdef inline bint v_all_finite(const floating *x, Py_ssize_t rows, Py_ssize_t cols,
                              Py_ssize_t ld) noexcept nogil:
    if floating is float:
        return fr_all_finite_f(x, rows, cols, ld)
    else:
        return fr_all_finite_d(x, rows, cols, ld)


cdef inline void v_flush(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_flush_f(x, n)
    else:
        fr_flush_d(x, n)


cdef inline void flush_if_subnormal(floating *h, Py_ssize_t n, int *flush,
                                    const floating **w1, int nb1, Py_ssize_t rows1,
                                    Py_ssize_t cols1, const floating *w2, Py_ssize_t rows2,
                                    Py_ssize_t cols2) noexcept nogil:
    # A state with subnormal values is stored with them as 0 (no slow paths for a decaying
    # state, no flush-to-zero mode, which would also flush intermediate results) unless a
    # weight it multiplies (the nb1 row blocks w1[k], w2) is inf or NaN: there tiny * inf is
    # the reference's inf, 0 * inf would be NaN.  *flush: -1 undecided (weights checked at
    # the first subnormal).
    cdef Py_ssize_t count
    cdef int k
    if floating is float:
        count = fr_count_subnormal_f(h, n)
    else:
        count = fr_count_subnormal_d(h, n)
    if count == 0:
        return
    if flush[0] < 0:
        flush[0] = v_all_finite(w2, rows2, cols2, cols2)
        for k in range(nb1):
            flush[0] = flush[0] and v_all_finite(w1[k], rows1, cols1, cols1)
    if flush[0]:
        v_flush(h, n)


cdef inline void v_softmax_cols(floating *y, Py_ssize_t n_rows, Py_ssize_t n_cols,
                                Py_ssize_t ld) noexcept nogil:
    if floating is float:
        fr_softmax_cols_f(y, n_rows, n_cols, ld)
    else:
        fr_softmax_cols_d(y, n_rows, n_cols, ld)


cdef void fill_columns(floating *z, const floating *b, Py_ssize_t rows,
                       Py_ssize_t n_cols) noexcept nogil:
    # z: column-major (rows, n_cols); every column := b (the bias folded into the GEMM's C).
    cdef Py_ssize_t k, i
    for k in range(n_cols):
        for i in range(rows):
            z[k * rows + i] = b[i]


cdef void fill_rows(floating *y, const floating *b, Py_ssize_t n_rows, Py_ssize_t n_cols,
                    Py_ssize_t ld) noexcept nogil:
    # y: row-major (n_rows, n_cols), row stride ld; row r := b[r].
    cdef Py_ssize_t r, k
    for r in range(n_rows):
        for k in range(n_cols):
            y[r * ld + k] = b[r]


cdef void output_block(int n_y, int n_a, int m, int nb, const floating *sb, int ldj, int ldt,
                       const floating *wy, floating *y, Py_ssize_t ldyj, int ld_y,
                       floating *pan) noexcept nogil:
    # The output layer of a block of nb <= state_block steps, for the panel GEMM's levels:
    # y[:, j*ldyj + r] += Wy (n_y, n_a) @ s_jr for j < m, r < nb, where the state s_jr (n_a
    # values) is at sb + j*ldj + r*ldt.  The block's states are packed as the rows of panels
    # (pan: OUTPUT_ROWS_MAX * n_a elements), one example's after another, and Wy's rows are
    # broadcast against them, so that the GEMM's columns are y's rows: y (row-major) is
    # written in place, and the states are read while still in cache.  One example per call
    # unless the block is the whole sequence (nb == ldyj: a short one): then consecutive
    # examples' rows of y follow each other, and the states of up to OUTPUT_ROWS_MAX / nb
    # examples share the panels (a panel holding nb rows of its 32 (float32) would spend the
    # rest of its multiply-adds on zeros).
    cdef const floating *rows[OUTPUT_ROWS_MAX]
    cdef Py_ssize_t j, k, g = 1, n
    if n_y == 0:
        return
    if nb == ldyj:
        g = max(1, OUTPUT_ROWS_MAX // nb)
    if 4 * min(g, m) * nb <= FR_PANEL_BYTES // <int>sizeof(floating):
        # Rows for at most a quarter of a panel (a short sequence with m*T <= 8 (float32;
        # float64: 4), or a long sequence's last block of up to 8 (4) steps, one example
        # per panel): the panels' multiply-adds would be mostly on zeros, so the small-batch
        # product reads Wy once for every four states instead (one call for the whole
        # sequence in order, else one per example).  A/B in one process, AMD Zen 4, float32
        # models, n_x = n_y = n_a/2, against full panels: 8-16 steps of one or two examples,
        # LSTM x0.92-0.98 (n_a = 64-1024), GRU x0.89-0.98, RNN x0.75-0.95; 36-44 steps of
        # 8-64 examples, LSTM and GRU x0.96-0.98 (models and drop-in); 24 rows of a float32
        # panel stayed on the panels (x1.00-1.015 through small products).  Up to half a
        # panel, the panel GEMM's half tile reads and multiplies only the rows' half: there
        # 9-16 float32 rows on the panels rather than small products (one example of 16
        # steps, two of 6-8), RNN x0.89-0.94, GRU x0.93-0.94 (float64, 5-8 rows: the same
        # time).
        if nb == ldyj and ldj == nb * ldt:
            small_acc(n_y, m * nb, n_a, wy, n_a, sb, ldt, y, ld_y, 1)
            return
        for j in range(m):
            small_acc(n_y, nb, n_a, wy, n_a, sb + j * ldj, ldt, y + j * ldyj, ld_y, 1)
        return
    j = 0
    while j < m:
        n = min(g, m - j)
        for k in range(n):
            rows[k] = sb + (j + k) * ldj
        panel_pack(n * nb, n_a, rows, nb, ldt, pan)
        panel_acc(n * nb, n_y, n_a, pan, wy, n_a, y + j * ldyj, ld_y, NULL)
        j += n


cdef void product_acc(int rows, int m, int K, const floating *w, int ldw,
                      const floating *panel, const floating *h, int ldh, floating *z,
                      int ldz, int small_max, bint descending=False) noexcept nogil:
    # z (rows, m) += W (rows, K) @ H (K, m); z and H column-major (one example per column),
    # W row-major with row stride ldw, i.e. column-major (K, rows) -> 'T' for BLAS.
    # W packed for the panel GEMM (panel not NULL: see panel_elems) takes it, at any m; else
    # up to small_max columns take the small-batch kernel, which reads W once for every four
    # columns (OpenBLAS's gemm repacks W on every call, and m gemv calls read it m times);
    # else BLAS gemm.
    if panel != NULL:
        panel_acc(rows, m, K, panel, h, ldh, z, ldz, NULL, 0, -1, descending)
    elif m <= small_max:
        small_acc(rows, m, K, w, ldw, h, ldh, z, 1, ldz)
    else:
        gemm_acc(c'T', c'N', rows, m, K, w, ldw, h, ldh, z, ldz)


# The input projection and the output layer run over all m*T columns at once; only a handful
# of columns (a single streaming step) is better served by the small-batch kernel than by
# gemm, which packs the whole weight matrix for one column (measured at the stream shape,
# LSTM 64/64/64: 9.4 us with gemm, 6.7 us with the small kernel, float64).
cdef enum:
    SMALL_COLS = 4


cdef void input_projection(int rows, int mT, int n_x, const floating *w, int ldw,
                           const floating *x, int ldx, floating *z, int ldz,
                           floating *xt, bint small=False) noexcept nogil:
    # Z (rows, m*T) += W (rows, n_x) @ X (n_x, m*T): X row-major = col-major (m*T, n_x) ->
    # 'T' for BLAS.  Few columns (or ``small``): X^T copied to xt (m*T, n_x) for the
    # small-batch kernel, which reads W as it is (BLAS packs it first).
    if mT <= SMALL_COLS or small:
        transpose(x, n_x, mT, ldx, xt, n_x)
        small_acc(rows, mT, n_x, w, ldw, xt, n_x, z, 1, ldz)
    else:
        gemm_acc(c'T', c'T', rows, mT, n_x, w, ldw, x, ldx, z, ldz)


cdef enum:
    # See packed_projection.
    PROJECTION_SPLIT_MIN = 1 << 22


cdef floating *packed_projection(int rows, int n_a, int n_x, int m, int T,
                                 const floating **wa, const floating **wx, floating *panel,
                                 bint pack, const floating *x, int ldx, floating *xt,
                                 floating *z, const floating *b, bint ahead,
                                 const int *active, Py_ssize_t act0) noexcept nogil:
    # The panel GEMM's prologue of the RNN and the GRU: the recurrent block (rows, n_a) then
    # the input block (rows, n_x), each from row blocks of n_a rows (wa, wx), packed into
    # panel when ``pack`` (else a model's, packed before); without ``ahead``, X^T (m*T, n_x)
    # into xt (for a projection per step); with ``ahead``, Z (rows, m*T) = b + W_x @ X for
    # every column (projection_chunks, xt its buffer; not OpenBLAS, whose
    # kernel an environment may hold to an older instruction set), or with ``active`` (a
    # batch sorted by length, as the cores take it) and PROJECTION_SPLIT_MIN multiply-adds
    # or more, for each example's own steps only (its columns are consecutive): the
    # padding's columns are left as they are, which the recurrences neither read nor return
    # (A/B on AMD Zen 5, the RNN model with lengths in [T/2, T]: `fastrnns` x0.89-0.91,
    # `mid` x0.89; a GRU of 8 examples x0.89; at `lesson`, one call per example was x1.04).
    # Returns the input block's panels (for a projection per step instead).
    cdef floating *panel_x = panel + panel_size(rows, n_a, panel)
    cdef Py_ssize_t mT = <Py_ssize_t> m * T, j, steps = T
    if pack:
        panel_pack(rows, n_a, wa, n_a, n_a, panel)
        panel_pack(rows, n_x, wx, n_a, n_x, panel_x)
    if not ahead:
        if n_x > 0:
            transpose(x, n_x, mT, ldx, xt, n_x)
        return panel_x
    if active == NULL or <double> rows * n_x * mT < PROJECTION_SPLIT_MIN:
        projection_chunks(rows, n_x, 0, mT, panel_x, x, ldx, xt, z, b)
        return panel_x
    for j in range(m):
        while steps > 0 and running(active, steps - 1, act0, m) <= j:
            steps -= 1  # example j's length: the steps at which it still runs
        if steps == 0:
            break
        projection_chunks(rows, n_x, j * T, steps, panel_x, x, ldx, xt, z, b)
    return panel_x


cdef enum:
    # See projection_chunks.
    PROJECTION_CHUNK_BYTES = 256 * 1024


cdef void projection_chunks(int rows, int n_x, Py_ssize_t c0, Py_ssize_t nc,
                            const floating *panel_x, const floating *x, int ldx,
                            floating *xt, floating *z, const floating *b) noexcept nogil:
    # Z[:, c0:c0 + nc] (rows, col-major) = b + W_x @ X[:, c0:c0 + nc], W_x packed in panel_x:
    # X^T in chunks of about PROJECTION_CHUNK_BYTES (a multiple of 24 columns) into xt,
    # each multiplied while still in cache, instead of all of X^T written out and read back
    # (the RNN model at `fastrnns`, float32: 13 MB each way).
    cdef Py_ssize_t c, w, chunk = PROJECTION_CHUNK_BYTES // (max(n_x, 1) * sizeof(floating))
    # whole column tiles (12 or 8 columns at AVX-512, 6 at AVX2)
    chunk = max(24, chunk // 24 * 24)
    if n_x == 0:
        fill_columns(z + c0 * rows, b, rows, nc)
        return
    c = c0
    while c < c0 + nc:
        w = min(chunk, c0 + nc - c)
        transpose(x + c, n_x, w, ldx, xt, n_x)
        panel_acc(rows, w, n_x, panel_x, xt, n_x, z + c * rows, rows, b)
        c += w


# ------------------------------------------------------------------ nogil cores

cdef inline Py_ssize_t running(const int *active, Py_ssize_t t, Py_ssize_t act0,
                               Py_ssize_t m) noexcept nogil:
    # Variable lengths (the cores' ``active``): how many of this slice's m columns, starting
    # at example act0 of a batch sorted longest first, still run at step t.
    return min(max(active[t] - act0, 0), m)


cdef inline Py_ssize_t running_states(const int *active, Py_ssize_t t, Py_ssize_t act0,
                                      Py_ssize_t m, floating *st, Py_ssize_t ld,
                                      Py_ssize_t n) noexcept nogil:
    # running(...), with the step's states of the columns that no longer run set to 0 (n
    # values per column, column stride ld).
    cdef Py_ssize_t mt = running(active, t, act0, m), j
    for j in range(mt, m):
        memset(st + j * ld, 0, n * sizeof(floating))
    return mt


cdef inline Py_ssize_t joining_states(const int *active, Py_ssize_t t, Py_ssize_t act0,
                                      Py_ssize_t m, Py_ssize_t mt, floating *prev,
                                      Py_ssize_t ld, const floating *h0,
                                      Py_ssize_t n) noexcept nogil:
    # Backwards over a batch in order of length, the columns running at step t but not at
    # t + 1 (their last step is t) start from their initial state h0 (n values per column,
    # contiguous): it goes into their slot of step t + 1 (prev, column stride ld; the
    # padding's 0) for this step, and padding_again puts the 0 back.  Returns the first of
    # them.
    cdef Py_ssize_t mp = running(active, t + 1, act0, m), j
    for j in range(mp, mt):
        memcpy(prev + j * ld, h0 + j * n, n * sizeof(floating))
    return mp


cdef inline void padding_again(floating *prev, Py_ssize_t ld, Py_ssize_t n, Py_ssize_t mp,
                               Py_ssize_t mt) noexcept nogil:
    # The slots joining_states lent out back to the padding's 0.
    cdef Py_ssize_t j
    for j in range(mp, mt):
        memset(prev + j * ld, 0, n * sizeof(floating))


cdef inline void states_out(const floating *z, Py_ssize_t ldz, Py_ssize_t R, Py_ssize_t lds,
                            bint by_step, Py_ssize_t s, Py_ssize_t t, Py_ssize_t T,
                            bint reverse, Py_ssize_t n_a, Py_ssize_t m, floating *a,
                            Py_ssize_t ld_a) noexcept nogil:
    # The cores' states into a (or the LSTM's c) line by line after the s-th step run
    # (lines_out): example j's R slots from z + j*ldz, lds apart (rnn_core and gru_core: step
    # t in slot t, R = T, by_step).
    cdef Py_ssize_t j
    for j in range(m):
        lines_out(z + j * ldz, R, lds, s, t, T, reverse, n_a, a + j * T, ld_a, by_step)


cdef void rnn_core(
        int n_x, int n_a, int n_y, int m, int T,
        const floating *x, int ldx,          # IN   x   (n_x, m*T), row stride ldx
        const floating *a0, int lda0,        # IN   a0  (n_a, m),   row stride lda0
        const floating *wx,                  # IN   Wax (n_a, n_x)
        const floating *wa,                  # IN   Waa (n_a, n_a)
        const floating *b,                   # IN   ba  (n_a,)
        const floating *wy,                  # IN   Wya (n_y, n_a)
        const floating *by,                  # IN   by  (n_y,)
        floating *a, int ld_a,               # OUT  a   (n_a, m*T), row stride ld_a
        floating *y, int ld_y,               # OUT  y   (n_y, m*T), row stride ld_y
        floating *z,                         # WORK     (m, T, n_a)
        floating *h0,                        # WORK     (m, n_a): a0 transposed
        floating *xt,                        # WORK     (m*T, n_x) when m*T <= SMALL_COLS,
                                             #          ``small_x`` or with the panel GEMM
        floating *pan,                       # WORK     (OUTPUT_ROWS_MAX, n_a): the output
                                             #          layer's panel (with the panel GEMM)
        floating *panel,                     # WORK     Waa then Wax packed for the panel
                                             #          GEMM (projection_elems), or NULL
        bint pack,                           # IN       pack them into panel (else packed)
        int small_max,
        bint relu,                           # IN       max(z, 0) instead of tanh (PyTorch's
                                             #          nonlinearity="relu")
        const int *active,                   # IN   (T,) or NULL: at step t only the first
        Py_ssize_t act0,                     #      active[t] - act0 columns run (see below)
        bint reverse,                        # IN   run the steps from T - 1 down to 0
        bint small_x=False) noexcept nogil:  # IN   the input projection and the output
                                             #      layer by the small-batch kernel on the
                                             #      weights as they are (an unpacked call:
                                             #      see unpacked_steps)
    # Variable lengths, as in gru_core: with the batch sorted by length, longest first,
    # ``active[t]`` (non-increasing) examples of the whole batch are still running at step t;
    # this slice starts at example act0.  The others' recurrent products and activations are
    # skipped and their states set to 0 (the input projection and the output layer still
    # run over every column: one GEMM each; the caller zeroes the padding's predictions).
    # ``reverse`` (a backward direction) runs the steps backwards in place: no reversed copy
    # of x or of the outputs.  With ``active`` each example then starts at its own last step
    # t = length - 1, from h0: the columns joining at step t read their previous state from
    # slot t + 1 (padding, zero), which holds their h0 for the product only.
    cdef int mT = m * T
    cdef int ldz = T * n_a
    cdef Py_ssize_t s, t, j, i, mt, mp = 0
    cdef floating *zt
    cdef floating *hp
    cdef int flush_a = -1  # flush subnormal states? decided when the first one appears
    cdef int SB = state_block(sizeof(floating))
    # a out line by line as the steps run, else in one transpose after the loop
    cdef bint line_out = by_lines(T, SB, ld_a, ld_a, n_a * <Py_ssize_t> mT * sizeof(floating),
                                  sizeof(floating))

    if panel != NULL:
        # Waa and Wax packed (a model keeps them between calls); Z (n_a, m*T) = ba + Wax @
        # X^T from the second block.
        packed_projection(n_a, n_a, n_x, m, T, &wa, &wx, panel, pack, x, ldx, xt, z, b, True,
                          active, act0)
    else:
        # Z (n_a, m*T) = Wax @ X + ba: Z col-major, Wax row-major = col-major (n_x, n_a) ->
        # 'T', X row-major (n_x, m*T) = col-major (m*T, n_x) -> 'T'.
        fill_columns(z, b, n_a, mT)
        input_projection(n_a, mT, n_x, wx, n_x, x, ldx, z, n_a, xt, small_x)

    for j in range(m):
        for i in range(n_a):
            h0[j * n_a + i] = a0[i * lda0 + j]

    for s in range(T):
        t = T - 1 - s if reverse else s
        zt = z + t * n_a
        hp = zt + n_a if reverse else zt - n_a  # the previous step's states (s > 0)
        mt = m
        if active != NULL:
            mt = running_states(active, t, act0, m, zt, ldz, n_a)
            if mt == 0:
                if line_out:
                    states_out(z, ldz, T, n_a, True, s, t, T, reverse, n_a, m, a, ld_a)
                continue
            if reverse and s > 0:
                mp = joining_states(active, t, act0, m, mt, hp, ldz, h0, n_a)
        # Z_t (n_a, mt) += Waa (n_a, n_a) @ A_prev (n_a, mt); A_prev is h0 or the states of
        # the previous step.
        if s == 0:
            product_acc(n_a, mt, n_a, wa, n_a, panel, h0, n_a, zt, ldz, small_max)
        else:
            product_acc(n_a, mt, n_a, wa, n_a, panel, hp, ldz, zt, ldz, small_max,
                        step_descending(s))
            if active != NULL and reverse:
                padding_again(hp, ldz, n_a, mp, mt)
        if relu:
            for j in range(mt):
                v_relu(zt + j * ldz, n_a)
                flush_if_subnormal(zt + j * ldz, n_a, &flush_a, &wa, 1, n_a, n_a, wy, n_y, n_a)
        elif tanh_state_cols(zt, ldz, n_a, mt):
            # A subnormal state is stored as 0 (no slow paths for a decaying state, no
            # flush-to-zero mode, which would also flush intermediate results) unless a
            # weight it multiplies is inf or NaN: there tiny * inf is the reference's inf,
            # 0 * inf would be NaN.  (Every column's: the others have none.)
            if flush_a < 0:
                flush_a = v_all_finite(wa, n_a, n_a, n_a) and v_all_finite(wy, n_y, n_a, n_a)
            if flush_a:
                for j in range(mt):
                    v_flush(zt + j * ldz, n_a)
        if line_out:
            states_out(z, ldz, T, n_a, True, s, t, T, reverse, n_a, m, a, ld_a)

    if not line_out:
        # a (n_a, m*T) = Z^T, Z seen as row-major (m*T, n_a).
        transpose(z, mT, n_a, n_a, a, ld_a)

    # Y^T (m*T, n_y) = Z^T (m*T, n_a) @ Wya^T (n_a, n_y), + by; y row-major = Y^T col-major.
    # With the panel GEMM, in blocks of steps (output_block).
    fill_rows(y, by, n_y, mT, ld_y)
    if mT <= SMALL_COLS or small_x:
        small_acc(n_y, mT, n_a, wy, n_a, z, n_a, y, ld_y, 1)
    elif panel != NULL:
        for s in range((T + SB - 1) // SB):
            t = s * SB
            output_block(n_y, n_a, m, min(SB, T - t), z + t * n_a, ldz, n_a, wy, y + t, T,
                         ld_y, pan)
    else:
        gemm_acc(c'T', c'N', mT, n_y, n_a, z, n_a, wy, n_a, y, ld_y)
    v_softmax_cols(y, n_y, mT, ld_y)


# States go out in blocks of state_block steps: each block of a column's [a_t, c_t] rows is
# transposed into a and c while it is still in cache (whole 64-byte lines of a and c), and
# with the panel GEMM it is one panel of the output layer's product (output_block), instead
# of one transpose and one GEMM of every state from memory after the loop.
cdef enum:
    STATE_BLOCK_MAX = FR_PANEL_BYTES // 4
    # Rows of the output layer's panels (output_block): four panels of float32 states, so
    # that a short sequence's examples fill them to within a few rows.
    OUTPUT_ROWS_MAX = 4 * STATE_BLOCK_MAX
    # See lstm_step_x.
    STEP_X_MIN_M = 4
    STEP_X_STREAM_BYTES = 8 * 1024 * 1024
    STEP_X_STREAM_MIN_M = 16
    STEP_X_SLOW_L3_MIN_M = 12
    # A call's activated gates (the drop-in's caches) beyond this many bytes go to memory
    # past the caches (lstm_core's copy_gates).  A/B on AMD Zen 5 (32 MiB L3), float32
    # drop-in: `fastrnns` (52 MB of gates) and `big` (26 MB) x0.94; `mid` (13 MB) x1.02 and
    # 3 MB x1.07 slower streamed (their gates still in L3 when read back).
    STREAM_GATES_BYTES = 16 * 1024 * 1024
    # States (the LSTM's a and c, the RNN's and the GRU's a; one slice's) from this many
    # bytes on go out line by line, past the caches (see by_lines).  A/B on Intel Xeon
    # (Sapphire Rapids class, 2 MiB of L2), the LSTM model, float32: `mid` (6.5 MB) x0.89,
    # float64 (13 MB) x0.91, `fastrnns` (26 MB) x0.95; 1 MB (n_a = 128, 16 examples x 64
    # steps) x1.11 slower: its a and c stay in L2.
    LINE_OUT_MIN_BYTES = 4 * 1024 * 1024


cdef Py_ssize_t LINE_OUT_MIN = LINE_OUT_MIN_BYTES  # set_line_out_min_bytes


cdef inline bint by_lines(Py_ssize_t T, int SB, Py_ssize_t ld_a, Py_ssize_t ld_c,
                          Py_ssize_t nbytes, Py_ssize_t itemsize) noexcept nogil:
    # Do a core's states go out into a (and c) line by line as the steps run (lines_out),
    # instead of in blocks of state_block steps or one transpose after the loop?  At the
    # AVX-512 level (whose lines go out whole with non-temporal stores: at AVX2 the RNN at
    # `fastrnns` was x1.03-1.07 slower line by line, the LSTM at `mid` the same time), where
    # the sequence is longer than a state block, the states take LINE_OUT_MIN bytes or more
    # (nbytes) and every row of a and c starts at the same offset within a cache line.
    cdef Py_ssize_t L = FR_LINE_BYTES // itemsize
    return (fr_active_isa() >= FR_ISA_AVX512 and T > SB and ld_a % L == 0 and ld_c % L == 0
            and nbytes >= LINE_OUT_MIN)


cdef inline int state_block(Py_ssize_t itemsize) noexcept nogil:
    # Steps per state block: one panel's rows (32 float32, 16 float64).
    return FR_PANEL_BYTES // itemsize


cdef inline bint lstm_step_x(int typenum, Py_ssize_t m, Py_ssize_t n_a,
                             Py_ssize_t n_x, bint threaded=False) noexcept nogil:
    # Does lstm_core's input projection go per step (panel path), or ahead of the loop?  Per
    # step from STEP_X_MIN_M examples on: each weight then feeds that many multiply-adds per
    # step, and the step's gates are written while in cache.  With fewer, a step is about a
    # read of its weights, and reading W_x every step too costs more than one projection of
    # every column ahead (from the same packed block).  A block beyond STEP_X_STREAM_BYTES
    # streams from memory every step: ahead below STEP_X_STREAM_MIN_M examples; where L3 is
    # slow (fr_slow_l3), a block beyond L2 already, below STEP_X_SLOW_L3_MIN_M.  Measured on
    # AMD Zen 4, time per step / time ahead: m = 1 or 2, 1.05-1.38 (n_a = 64..1024, float32
    # and float64); m = 3, 0.98-1.35; m = 4, 0.94-1.03; m = 8, 0.86-0.99; streamed blocks
    # (n_a = 768..1536) at m = 8, 1.01-1.36, at m = 16, 0.97-1.01.  On Intel Sapphire Rapids
    # (2 MiB L2, a core's L3 reads slower), float32, n_a = 512, a 6 MiB block: m = 4, 1.27;
    # m = 8, 1.13 (both descending); m = 12, 0.95; n_a = 768: m = 12, 0.95.  A call in
    # batch slices on several threads (``threaded``: the slices' ring runs per step) keeps
    # the first rule everywhere.
    cdef Py_ssize_t item = 4 if typenum == cnp.NPY_FLOAT32 else 8
    cdef Py_ssize_t whole = 4 * n_a * (n_a + n_x) * item
    if m < STEP_X_MIN_M:
        return False
    if not threaded and fr_slow_l3():
        return whole <= fr_intel_l2_bytes() or m >= STEP_X_SLOW_L3_MIN_M
    return whole <= STEP_X_STREAM_BYTES or m >= STEP_X_STREAM_MIN_M


cdef enum:
    # See unpacked_steps.
    UNPACKED_MAX_M = 2
    UNPACKED_MAX_T = 8
    # See lstm_plan.
    LSTM_SLOW_L3_MAX_T = 5
    LSTM_SLOW_L3_BIG_MAX_T = 7
    LSTM_SLOW_L3_BIG_BYTES = 8 * 1024 * 1024
    LSTM_BIG_BYTES = 16 * 1024 * 1024
    LSTM_BIG_MAX_COLS = 4
    UNPACKED_MIN_BYTES = 2 * 1024 * 1024


cdef inline bint unpacked_steps(Py_ssize_t m, Py_ssize_t T, Py_ssize_t block_bytes,
                                Py_ssize_t max_m, Py_ssize_t max_t,
                                Py_ssize_t max_cols) noexcept nogil:
    # Does a drop-in call (nothing packed before it) skip packing its weights (block_bytes of
    # them), and run the small-batch kernel on them as they are: the LSTM one fused product
    # per step (lstm_core's ``fused``), the GRU its input projection and recurrent products
    # (gru_core's ``unpacked``), the RNN those and its output layer (rnn_core's ``small_x``;
    # its block is W_a alone; a model's call too: see rnn_plan)?
    # For one example, where the block is beyond L2: each step then reads it once from L3
    # either way (on AMD Zen the small-batch kernel reads row-major W at about the panel
    # kernel's rate; on Intel with 2 MiB of L2 at about half of it: see lstm_plan, rnn_plan),
    # and packing costs about three steps.  Measured on AMD Zen 5, float32, one example, per
    # step small / panel kernel (pack): 1.2 MB block 14.6 / 12.6 us (37 us), 6.3 MB 65 / 62
    # us (187 us), 25 MB 782 / 673 us (2.3 ms): packing pays back after 19-49 steps; a block
    # of 0.2 MB: 5.3 / 2.0 us (5.8 us), after 2.  (Two examples, 6.3 MB: 106 / 89 us, 250 us.)
    # In place the small kernel lost more: 16 steps were 1.17-1.27x slower unpacked.
    # Up to max_m examples, max_t steps and max_cols columns (m * T) in all, the kind's: the
    # LSTM and the GRU two examples (the GRU's unpacked steps read less than the LSTM's fused
    # product), the RNN one (its model call too, except on Intel with 2 MiB of L2: rnn_plan),
    # at most UNPACKED_MAX_T steps (the LSTM on Intel with 2 MiB of L2: lstm_plan); every
    # kind 2 MiB of weights or more (the LSTM where L3 is not slow above 16 MiB only up to 4
    # columns: lstm_plan).  Measured on Intel Sapphire Rapids, float32, two
    # examples, unpacked / packed, the drop-in call: 3-4 steps, n_a = 384-1024: LSTM
    # x0.61-0.83, GRU x0.55-0.70, RNN x0.58 but its model x1.08; 8 steps: the GRU x0.83
    # (n_a = 1024), x0.97-0.98 (384, 512), the LSTM x0.98 (1024) but x1.11-1.21 (384, 512).
    return (m <= max_m and T <= max_t and m * T <= max_cols
            and block_bytes >= UNPACKED_MIN_BYTES)


cdef void lstm_core(
        int n_x, int n_a, int n_y, int m, int T,
        const floating *x, int ldx,          # IN   x   (n_x, m*T), row stride ldx
        const floating *a0, int lda0,        # IN   a0  (n_a, m),   row stride lda0
        const floating *c0, int ldc0,        # IN   c0  (n_a, m),   row stride ldc0
        const floating **w,                  # IN   W_k (n_a, n_a + n_x), k in [f, i, o, c]
        const floating **b,                  # IN   b_k (n_a,)
        bint merged,                         # IN   W_k, b_k are consecutive blocks of one
                                             #      (4n_a, n_a + n_x) / (4n_a,) array
        const floating *wy,                  # IN   Wy  (n_y, n_a)
        const floating *by,                  # IN   by  (n_y,)
        floating *a, int ld_a,               # OUT  a   (n_a, m*T), row stride ld_a
        floating *c, int ld_c,               # OUT  c   (n_a, m*T), row stride ld_c
        floating *y, int ld_y,               # OUT  y   (n_y, m*T), row stride ld_y
        floating *z,                         # OUT  z   (m, T, 4n_a): activated gates
                                             #      (ring: WORK (m, 4n_a), one step)
        floating *s,                         # OUT  s   (m, T, 2n_a): [a_t, c_t] per column
                                             #      (ring: WORK (m, state_block, 2n_a))
        floating *h,                         # WORK     (m, n_a): a0 transposed
        floating *cw,                        # WORK     (m, n_a): c0 transposed
        floating *xt,                        # WORK     see lstm_work_size
        floating *panel,                     # WORK     the gates' [W_a | W_x] packed for the
                                             #          panel GEMM (lstm_panel_elems), or NULL
        bint pack,                           # IN       pack them into panel (else packed)
        bint step_x,                         # IN       the input projection per step, else
                                             #          ahead (see below); without the panel,
                                             #          the fused product per step
        bint ring,                           # IN       z and s are the ring buffers above
                                             #          (inference: no caches); step_x only
        const int *active,                   # IN   (T,) or NULL: at step t only the first
        Py_ssize_t act0,                     #      active[t] - act0 columns run (as gru_core)
        int small_max,
        bint reverse) noexcept nogil:        # IN   run the steps from T - 1 down to 0
    # Variable lengths as in gru_core: the batch sorted by length, longest first; the
    # columns past active[t] skip the step's products and pass and get zero states.
    # ``reverse`` (a backward direction) runs the steps backwards in place, every output at
    # its own step: the ring holds the steps in the order they run, and a block goes out
    # with a negative step stride; with ``active``, each example from its own last step (as
    # rnn_core and gru_core).
    cdef int G = 4 * n_a
    cdef Py_ssize_t mt = m
    cdef int S = 2 * n_a
    cdef int K = n_a + n_x
    cdef int ldw = n_a + n_x
    cdef int mT = m * T
    # steps per state block (the ring's slots): no more than the sequence has
    cdef int SB = min(state_block(sizeof(floating)), T)
    cdef int ldz = G if ring else T * G
    cdef int lds = SB * S if ring else T * S
    cdef int ldh
    cdef const floating *h_prev
    cdef floating *st
    cdef floating *zt
    cdef floating *sb
    cdef floating *prev = NULL
    cdef Py_ssize_t mp
    # panel path work: X^T (m*T, n_x), one column per (j, t); the gates' biases (4n_a); the
    # step's concat = [a_prev; xt] (m, n_a + n_x); the output layer's panels
    # (OUTPUT_ROWS_MAX, n_a); one step's gates (m, 4n_a)
    cdef floating *bias = xt + <Py_ssize_t> mT * n_x
    cdef floating *cat = bias + G
    cdef floating *pan = cat + <Py_ssize_t> m * K
    cdef floating *zstep = pan + <Py_ssize_t> OUTPUT_ROWS_MAX * n_a
    # Where a step's gates are computed and activated: in z (ring: z is that one step), or,
    # per step without the ring where z is beyond STREAM_GATES_BYTES, in zstep, then stored
    # into z past the caches (stream_copy): z's lines are neither fetched to be overwritten
    # nor do they evict the packed block and the states the next step reads.
    cdef bint copy_gates = (panel != NULL and step_x and not ring
                            and <Py_ssize_t> mT * G * sizeof(floating) > STREAM_GATES_BYTES)
    cdef floating *zg
    cdef int ldg
    cdef bint out_panel = panel != NULL and mT > SMALL_COLS
    # a and c out line by line, each example's as its lines complete (from the ring, or
    # from the caches' states, every step in its own slot); else in blocks of the ring's
    # steps, every example at once, or in one transpose of the caches' states
    cdef bint line_out = by_lines(T, SB, ld_a, ld_c,
                                  2 * n_a * <Py_ssize_t> mT * sizeof(floating),
                                  sizeof(floating))
    cdef Py_ssize_t R = SB if ring else T
    cdef floating *catj
    cdef Py_ssize_t q, t, j, i, k, col, t_lo, nb
    cdef int ldt
    cdef int flush_h = -1  # as flush_a in rnn_core
    # A single step of a few examples (a streaming cell call), or without the panel and with
    # ``step_x`` every step (a drop-in call that does not pack: see unpacked_steps), makes one
    # product over the whole rows [W_a | W_x] with concat = [a_prev; xt], as the lessons
    # write it, instead of an input projection and a recurrent product: one pass over W,
    # half the reductions.
    cdef bint fused = panel == NULL and (T == 1 and m <= SMALL_COLS or step_x)

    if panel != NULL:
        # The gates' whole rows [W_a | W_x] as one packed block (a model keeps it between
        # calls), X^T and the biases.  With ``step_x``, per step Z_t = b + [W_a | W_x] @
        # [A_{t-1}; X_t] as the lessons write it: one panel GEMM on the step's concat, copied
        # from the states and X^T; nothing is computed ahead of the loop, so Z_t is written
        # while in cache (with ``ring``, Z is that one step).  Else (fewer than four
        # examples, or a block streamed from memory: lstm_step_x) Z = b + W_x @ X ahead of
        # the loop, every column at once, from the block's input columns, and per step
        # Z_t += W_a @ A_{t-1} from its recurrent ones.
        if pack:
            panel_pack(G, K, w, n_a, ldw, panel)
        transpose(x, n_x, mT, ldx, xt, n_x)
        for k in range(4):
            memcpy(bias + k * n_a, b[0] + k * n_a if merged else b[k], n_a * sizeof(floating))
        if not step_x:
            if n_x > 0:
                panel_acc(G, mT, n_x, panel, xt, n_x, z, G, bias, n_a, K)
            else:
                fill_columns(z, bias, G, mT)
    else:
        # Z (4n_a, m*T) = W_x @ X + b ahead of the loop, W_x = the input columns W_k[:, n_a:]
        # of the gates (row stride ldw, col-major (n_x, rows) -> 'T'); X as in rnn_core.
        # Merged: one GEMM.  (Fused: the biases only; the products come per step.)
        if merged:
            fill_columns(z, b[0], G, mT)
        else:
            for col in range(mT):
                for k in range(4):
                    for i in range(n_a):
                        z[col * G + k * n_a + i] = b[k][i]
        if fused:
            pass
        elif merged:
            input_projection(G, mT, n_x, w[0] + n_a, ldw, x, ldx, z, G, xt)
        else:
            for k in range(4):
                input_projection(n_a, mT, n_x, w[k] + n_a, ldw, x, ldx, z + k * n_a, G, xt)

    for j in range(m):
        for i in range(n_a):
            h[j * n_a + i] = a0[i * lda0 + j]
            cw[j * n_a + i] = c0[i * ldc0 + j]
    fill_rows(y, by, n_y, mT, ld_y)

    for q in range(T):  # the q-th step run: t = q, or T - 1 - q in reverse
        t = T - 1 - q if reverse else q
        zt = z if ring else z + t * G
        zg, ldg = (zstep, G) if copy_gates else (zt, ldz)
        st = s + (q % SB if ring else t) * S
        if active != NULL:
            mt = running_states(active, t, act0, m, st, lds, S)
        # A_{t-1}, C_{t-1} (t+1 in reverse): a0, c0 (the first step run) or the halves of
        # the previous step's states (column-major, leading dimension lds; with ``ring`` the
        # previous slot).  Backwards over a batch in order of length, the examples whose
        # last step is t start here from their own a0, c0, lent to the previous slot.
        mp = mt
        if q == 0:
            h_prev, ldh = h, n_a
        else:
            prev = s + ((q - 1) % SB if ring else (t + 1 if reverse else t - 1)) * S
            h_prev, ldh = prev, lds
            if active != NULL and reverse:
                mp = joining_states(active, t, act0, m, mt, prev, lds, h, n_a)
                joining_states(active, t, act0, m, mt, prev + n_a, lds, cw, n_a)
        if mt == 0:
            pass
        elif panel != NULL and step_x:
            for j in range(mt):
                catj = cat + j * K
                memcpy(catj, h_prev + j * ldh, n_a * sizeof(floating))
                memcpy(catj + n_a, xt + (j * T + t) * n_x, n_x * sizeof(floating))
            panel_acc(G, mt, K, panel, cat, K, zg, ldg, bias, 0, -1, step_descending(q))
        elif panel != NULL:
            panel_acc(G, mt, n_a, panel, h_prev, ldh, zt, ldz, NULL, 0, K, step_descending(q))
        elif fused:
            for j in range(mt):
                catj = xt + j * K
                memcpy(catj, h_prev + j * ldh, n_a * sizeof(floating))
                for i in range(n_x):
                    catj[n_a + i] = x[i * ldx + j * T + t]
            if merged:
                small_acc(G, mt, K, w[0], ldw, xt, K, zt, 1, ldz)
            else:
                for k in range(4):
                    small_acc(n_a, mt, K, w[k], ldw, xt, K, zt + k * n_a, 1, ldz)
        elif merged:
            product_acc(G, mt, n_a, w[0], ldw, NULL, h_prev, ldh, zt, ldz, small_max)
        else:
            for k in range(4):
                product_acc(n_a, mt, n_a, w[k], ldw, NULL, h_prev, ldh, zt + k * n_a, ldz,
                            small_max)
        if lstm_pointwise_cols(zg, ldg, cw, h_prev, ldh, q == 0, st, lds, n_a, mt):
            # subnormal c or h: stored as 0 (every column's; the others have none), under
            # the same condition as in rnn_core (c meets only gates and tanh, but tanh(c)
            # makes h)
            if flush_h < 0:
                flush_h = 1 if v_all_finite(wy, n_y, n_a, n_a) else 0
                for k in range(4):
                    if not v_all_finite(w[k], n_a, n_a, ldw):
                        flush_h = 0
            if flush_h:
                for j in range(mt):
                    v_flush(st + j * lds, 2 * n_a)
        if copy_gates:
            for j in range(mt):
                stream_copy(zt + j * ldz, zg + j * ldg, G)
        if mp < mt:
            padding_again(prev, lds, S, mp, mt)
        if line_out:
            states_out(s, lds, R, S, not ring, q, t, T, reverse, n_a, m, a, ld_a)
            states_out(s + n_a, lds, R, S, not ring, q, t, T, reverse, n_a, m, c, ld_c)
        if mT <= SMALL_COLS:
            # y[:, j, t] += Wy (n_y, n_a) @ a_t[:, j]: with a handful of columns the output
            # layer goes per step, straight from the state buffer.
            small_acc(n_y, m, n_a, wy, n_a, st, lds, y + t, ld_y, T)
        if q % SB == SB - 1 or q == T - 1:
            # a, c[:, j, t_lo:t_lo+nb] = the halves of the block's nb states, transposed;
            # with the panel GEMM, y[:, j, t_lo:t_lo+nb] += Wy @ a[:, j, t_lo:t_lo+nb].  The
            # block's states in increasing t start at sb, ldt apart.
            nb = q % SB + 1
            t_lo = t if reverse else q + 1 - nb
            sb, ldt = s + t_lo * S, S
            if ring:
                sb = s + (nb - 1) * S if reverse else s
                ldt = -S if reverse else S
            if line_out:
                pass
            elif nb == T and ldt == S:
                # the whole sequence in one block in order (then SB == T, lds == T * S):
                # every column's steps are consecutive in the states and in a and c (one
                # transpose each)
                transpose(sb, m * T, n_a, S, a, ld_a)
                transpose(sb + n_a, m * T, n_a, S, c, ld_c)
            else:
                for j in range(m):
                    transpose(sb + j * lds, nb, n_a, ldt, a + j * T + t_lo, ld_a)
                    transpose(sb + j * lds + n_a, nb, n_a, ldt, c + j * T + t_lo, ld_c)
            if out_panel:
                output_block(n_y, n_a, m, nb, sb, lds, ldt, wy, y + t_lo, T, ld_y, pan)

    if mT > SMALL_COLS and not out_panel:
        # Y^T (m*T, n_y) += A^T (m*T, n_a) @ Wy^T (n_a, n_y); a row-major (n_a, m*T) is
        # A^T column-major, Wy row-major is Wy^T column-major.
        gemm_acc(c'N', c'N', mT, n_y, n_a, a, ld_a, wy, n_a, y, ld_y)
    v_softmax_cols(y, n_y, mT, ld_y)


# ------------------------------------------------------------------ running the cores

cdef inline Py_ssize_t work_size(Py_ssize_t states, Py_ssize_t ms, Py_ssize_t T,
                                 Py_ssize_t n_a, Py_ssize_t n_x,
                                 bint small_x=False) noexcept nogil:
    # states * (ms, n_a) transposed initial states, plus, when the small path takes them
    # (or ``small_x``: rnn_core's, unpacked or with the panel GEMM), X^T (ms*T, n_x) or,
    # for a fused LSTM step (states == 2, T == 1), concat (ms, n_a + n_x); the RNN's output
    # layer's panels (OUTPUT_ROWS_MAX, n_a) last.
    cdef Py_ssize_t out = OUTPUT_ROWS_MAX * n_a if states == 1 else 0
    if ms * T > SMALL_COLS and not small_x:
        return states * ms * n_a + out
    if states == 2 and T == 1:
        return states * ms * n_a + ms * (n_a + n_x) + out
    return states * ms * n_a + ms * T * n_x + out


cdef inline Py_ssize_t lstm_work_size(Py_ssize_t ms, Py_ssize_t T, Py_ssize_t n_a,
                                      Py_ssize_t n_x, bint panel) noexcept nogil:
    # lstm_core's work before the panel: a0, c0 transposed (2 (ms, n_a)); with the panel
    # GEMM, X^T (ms*T, n_x), the gates' biases (4n_a), a concat (ms, n_a + n_x), the output
    # layer's panels (OUTPUT_ROWS_MAX, n_a) and one step's gates (ms, 4n_a); else as
    # work_size(2, ...) with room for a concat (a fused product per step).
    if panel:
        return (2 * ms * n_a + ms * T * n_x + 4 * n_a + ms * (n_a + n_x)
                + OUTPUT_ROWS_MAX * n_a + ms * 4 * n_a)
    return work_size(2, ms, T, n_a, n_x) + ms * (n_a + n_x)


cdef bint USE_PANEL = True


def set_panel_gemm(bint enabled):
    """Use the packed-panel GEMM for the recurrent product of a sequence (where the active
    SIMD level has its micro-kernels: AVX2 or AVX-512), or not (then the small-batch kernel
    up to ``small_max`` examples, BLAS gemm above).  Returns the previous setting.  For
    benchmarks and tests."""
    global USE_PANEL
    previous = USE_PANEL
    USE_PANEL = enabled
    return previous


def set_line_out_min_bytes(Py_ssize_t n):
    """From how many bytes of states (an LSTM's a and c, an RNN's or a GRU's a) the kernels
    write them out line by line as the steps run (see LINE_OUT_MIN_BYTES; 0: whenever the
    layout allows).  Returns the previous value.  For benchmarks and tests."""
    global LINE_OUT_MIN
    previous = LINE_OUT_MIN
    LINE_OUT_MIN = max(n, 0)
    return previous


def tile_cols():
    """The most columns of a column tile of the AVX-512 panel GEMM (8 on AMD CPUs of family
    19h with AVX-512, i.e. Zen 4, else 12, unless set_tile_cols chose)."""
    return fr_tile_cols()


def set_tile_cols(int n):
    """Make ``n`` (8 or 12; 0: this CPU's choice) the most columns of a column tile of the
    AVX-512 panel GEMM (see fr_tile_cols in _gemm.h).  Returns the previous value.  For tests
    and benchmarks."""
    if n not in (0, 8, 12):
        raise ValueError(f"set_tile_cols: n must be 0, 8 or 12, got {n}")
    return fr_set_tile_cols(n)


#: Packed blocks of more bytes than this are stored with non-temporal stores (for tests).
PACK_STREAM_ABOVE = FR_PACK_STREAM_ABOVE
#: A panel's bytes per column: its rows are PANEL_BYTES // itemsize (for tests).
PANEL_BYTES = FR_PANEL_BYTES


def pack_panel(list blocks, Py_ssize_t K):
    """The packed panels of the rows of ``blocks`` (1-4 C-contiguous 2-d arrays of one shape
    (block_rows, ldw) and dtype, float32 or float64), their first K columns, as the kernels
    pack them at the active SIMD level: a 1-d array, panel after panel, each the transpose
    of its rows, zeros past the last row (for tests)."""
    cdef const float *wf[4]
    cdef const double *wd[4]
    cdef cnp.ndarray b, first = blocks[0] if blocks else None
    if (not 1 <= len(blocks) <= 4 or first.ndim != 2
            or first.dtype not in (np.float32, np.float64) or not 1 <= K <= first.shape[1]):
        raise ValueError("pack_panel: 1-4 blocks of float32 or float64, 1 <= K <= columns")
    cdef int typenum = cnp.PyArray_TYPE(first), k
    cdef Py_ssize_t block_rows = first.shape[0], ldw = first.shape[1]
    cdef Py_ssize_t rows = block_rows * len(blocks)
    for k in range(len(blocks)):
        b = blocks[k]
        if (b.dtype != first.dtype or b.shape[0] != block_rows or b.shape[1] != ldw
                or not b.flags.c_contiguous):
            raise ValueError("pack_panel: blocks of one shape and dtype, C-contiguous")
        wf[k] = <const float *> cnp.PyArray_DATA(b)
        wd[k] = <const double *> cnp.PyArray_DATA(b)
    cdef Py_ssize_t n = (fr_panel_size_f(rows, K) if typenum == cnp.NPY_FLOAT32
                         else fr_panel_size_d(rows, K))
    cdef cnp.ndarray out = panel_array(n, typenum)[:n]
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            panel_pack(rows, K, wf, block_rows, ldw, <float *> cnp.PyArray_DATA(out))
        else:
            panel_pack(rows, K, wd, block_rows, ldw, <double *> cnp.PyArray_DATA(out))
    return out


def panel_gemm_enabled():
    """True when sequences use the packed-panel GEMM for their recurrent product (enabled,
    and the active SIMD level has it)."""
    return bool(USE_PANEL and fr_panel_available())


cdef Py_ssize_t panel_elems(int typenum, Py_ssize_t rows, Py_ssize_t K, Py_ssize_t ms,
                            Py_ssize_t T, int small_max) noexcept nogil:
    # Work for the packed recurrent block, when the panel GEMM will run: at least two steps
    # (packing costs about one product), a block that stays in cache.  Any batch size: the
    # panel kernel reads the packed block once per step for up to 12 (AVX-512; 8 on AMD Zen
    # 4) / 6 (AVX2) examples, in one contiguous stream per panel.
    if not USE_PANEL or not fr_panel_available() or T < 2:
        return 0
    cdef Py_ssize_t n
    if typenum == cnp.NPY_FLOAT32:
        n = fr_panel_size_f(rows, K)
        return n if n * 4 <= PANEL_MAX_BYTES else 0
    n = fr_panel_size_d(rows, K)
    return n if n * 8 <= PANEL_MAX_BYTES else 0


cdef Py_ssize_t lstm_panel_elems(int typenum, Py_ssize_t n_a, Py_ssize_t n_x, Py_ssize_t ms,
                                 Py_ssize_t T, int small_max) noexcept nogil:
    # The LSTM's packed block when the panel GEMM takes its recurrent product: the gates'
    # whole rows [W_a | W_x] (4n_a, n_a + n_x); else 0.
    if panel_elems(typenum, 4 * n_a, n_a, ms, T, small_max) == 0:
        return 0
    if typenum == cnp.NPY_FLOAT32:
        return fr_panel_size_f(4 * n_a, n_a + n_x)
    return fr_panel_size_d(4 * n_a, n_a + n_x)


cdef inline Py_ssize_t packing_plan(Py_ssize_t npanel, Py_ssize_t block_bytes, Py_ssize_t ms,
                                    Py_ssize_t T, bint per_call, bint *unpacked,
                                    Py_ssize_t max_m, Py_ssize_t max_t,
                                    Py_ssize_t max_cols) noexcept nogil:
    # The panel elements a call packs (npanel, as its kind's *_panel_elems gives them), or 0
    # with *unpacked set when the call packs for itself alone (``per_call``: a drop-in call,
    # not a model's) and skipping the packing pays (unpacked_steps, block_bytes of weights,
    # up to max_m examples, max_t steps and max_cols columns).
    unpacked[0] = (per_call and npanel > 0
                   and unpacked_steps(ms, T, block_bytes, max_m, max_t, max_cols))
    return 0 if unpacked[0] else npanel


cdef Py_ssize_t lstm_plan(int typenum, Py_ssize_t n_a, Py_ssize_t n_x, Py_ssize_t ms,
                          Py_ssize_t T, int small_max, bint per_call,
                          bint *unpacked) noexcept nogil:
    # packing_plan of the LSTM's gate block.
    # Where L3 is slow (fr_slow_l3), the small-batch kernel reads the weights as they are at
    # about half the panel kernel's rate, so packing pays back sooner, and one or two examples
    # cost the same per step: up to LSTM_SLOW_L3_MAX_T steps for either, LSTM_SLOW_L3_BIG_MAX_T
    # for a block of LSTM_SLOW_L3_BIG_BYTES or more (read from memory either way, the panel
    # kernel's lead is smaller).  Measured on Intel Sapphire Rapids (2 MiB L2), the drop-in
    # call, float32, per step unpacked / packed (packing): one example, 3.5 MB block 120 / 55
    # us (370 us), 25 MB 900 / 600 us (2.7 ms); packed / unpacked, one example, 3.5-8 MB: 6
    # steps x0.96-1.02, 8 steps x0.72-0.89; 25 MB: 6 steps x1.12, 8 steps x1.00; two
    # examples, 5 steps unpacked / packed x0.83-0.98 (3.5-25 MB).
    # Elsewhere a block of more than LSTM_BIG_BYTES is packed unless the call has at most
    # LSTM_BIG_MAX_COLS columns (m * T): the fused step reads the whole block, its input
    # columns too, every step in the same order, and beyond that size (half of the measured
    # CPU's 32 MiB of L3; a fixed limit, not scaled by the L3 of the CPU at hand) most of it
    # comes from memory, where the packed call reads the input columns once (fewer than four
    # examples: lstm_step_x) and the recurrent ones in alternate orders (step_descending).
    # Measured on AMD Zen 4 (32 MiB of L3), the drop-in call, packed / unpacked, 8 steps of
    # one example or 4 of two: float32 17.6 MiB x0.89-0.94,
    # 24 MiB x0.67-0.80 (one example, 5-6 steps x0.79-1.00), 37.5 MiB x0.67-0.71; float64
    # 24 MiB x0.72-0.77, 48 MiB x0.75-0.77; below it the unpacked call stays ahead: float32
    # 13.5 MiB x1.10, float64 12 MiB x1.17-1.19.  Four columns or fewer mostly pay back no
    # packing: float32 24 MiB, one example of 2-4 steps x1.70-1.72, x1.31-1.41, x1.04-1.13,
    # two of 2 x1.14-1.29; 37.5 MiB one example of 2-3 steps x1.46-1.49, x1.07-1.11 (but 4
    # steps x0.88).
    cdef Py_ssize_t block = 4 * n_a * (n_a + n_x) * (4 if typenum == cnp.NPY_FLOAT32 else 8)
    cdef Py_ssize_t max_t = UNPACKED_MAX_T, max_cols = UNPACKED_MAX_T
    if fr_slow_l3():
        max_t = LSTM_SLOW_L3_BIG_MAX_T if block >= LSTM_SLOW_L3_BIG_BYTES else LSTM_SLOW_L3_MAX_T
        max_cols = UNPACKED_MAX_M * max_t
    elif block > LSTM_BIG_BYTES:
        max_cols = LSTM_BIG_MAX_COLS
    return packing_plan(lstm_panel_elems(typenum, n_a, n_x, ms, T, small_max), block,
                        ms, T, per_call, unpacked, UNPACKED_MAX_M, max_t, max_cols)


cdef Py_ssize_t projection_elems(int typenum, Py_ssize_t rows, Py_ssize_t n_a, Py_ssize_t n_x,
                                 Py_ssize_t ms, Py_ssize_t T, int small_max) noexcept nogil:
    # packed_projection's blocks (rows, n_a) then (rows, n_x) when the panel GEMM takes the
    # recurrent product; else 0.
    if panel_elems(typenum, rows, n_a, ms, T, small_max) == 0:
        return 0
    if typenum == cnp.NPY_FLOAT32:
        return fr_panel_size_f(rows, n_a) + fr_panel_size_f(rows, n_x)
    return fr_panel_size_d(rows, n_a) + fr_panel_size_d(rows, n_x)


cdef Py_ssize_t rnn_plan(int typenum, Py_ssize_t n_a, Py_ssize_t n_x, Py_ssize_t ms,
                         Py_ssize_t T, int small_max, bint per_call,
                         bint *unpacked) noexcept nogil:
    # packing_plan of the RNN's recurrent block.  A model's call (not ``per_call``) too skips
    # its packed block where unpacked_steps says so, since its input projection and output
    # layer then also run on the weights as they are (OpenBLAS would pack W_x and Wy on every
    # call).  A/B, AMD Zen 5, float32, one example, the model: 512/1024/512 8 steps x0.88, 5
    # steps x0.70; 384/768/384 8 steps x0.89.  Not where L3 is slow (fr_slow_l3), where the
    # small-batch kernel reads the weights as they are at about half the panel kernel's rate:
    # Intel Sapphire Rapids, float32, one example, the model packed / unpacked: 512/1024/512
    # 4 steps x0.78, 8 steps x0.75; 768/1536/768 x0.90-0.91, x0.87-0.89 (the drop-in call,
    # which would pack them first: x1.13-1.64 slower packed).
    return packing_plan(projection_elems(typenum, n_a, n_a, n_x, ms, T, small_max),
                        n_a * n_a * (4 if typenum == cnp.NPY_FLOAT32 else 8), ms, T,
                        per_call or not fr_slow_l3(), unpacked, 1, UNPACKED_MAX_T,
                        UNPACKED_MAX_T)


cdef void run_rnn_core(int typenum, Py_ssize_t n_x, Py_ssize_t n_a, Py_ssize_t n_y,
                       Py_ssize_t m, Py_ssize_t T, Py_ssize_t j0, Py_ssize_t j1,
                       char *x, char *a0, char *wx, char *wa, char *b, char *wy, char *by,
                       char *a, char *y, char *z, char *work, int small_max,
                       char *packed=NULL, bint fill=False,
                       bint relu=False, const int *active=NULL,
                       bint reverse=False, bint unpacked=False) noexcept nogil:
    # Pointers to whole (unsliced) arrays; columns j0:j1 of the batch are run.  work holds
    # work_size(1, ...) elements.  The panel GEMM runs where ``packed`` is not NULL (decided
    # once, by the caller that sized work: USE_PANEL may change meanwhile): a buffer of
    # projection_elems(...) (a model's cached panel, or the thread's: packed_block) holding
    # the packed blocks already unless ``fill``.  ``active``, ``reverse``: see rnn_forward.
    # ``unpacked`` (no panel; rnn_plan): rnn_core's ``small_x``.  Work holds
    # work_size(1, ..., True) elements with either (X^T), else work_size(1, ...).
    cdef Py_ssize_t ms = j1 - j0, off = j0 * T
    cdef Py_ssize_t base = work_size(1, ms, T, n_a, n_x, unpacked or packed != NULL)
    if typenum == cnp.NPY_FLOAT32:
        rnn_core[float](
            n_x, n_a, n_y, ms, T, <float *> x + off, m * T, <float *> a0 + j0, m,
            <float *> wx, <float *> wa, <float *> b, <float *> wy, <float *> by,
            <float *> a + off, m * T, <float *> y + off, m * T, <float *> z + off * n_a,
            <float *> work, <float *> work + ms * n_a,
            <float *> work + base - OUTPUT_ROWS_MAX * n_a,
            <float *> packed,
            fill, small_max, relu, active, j0, reverse, unpacked)
    else:
        rnn_core[double](
            n_x, n_a, n_y, ms, T, <double *> x + off, m * T, <double *> a0 + j0, m,
            <double *> wx, <double *> wa, <double *> b, <double *> wy, <double *> by,
            <double *> a + off, m * T, <double *> y + off, m * T, <double *> z + off * n_a,
            <double *> work, <double *> work + ms * n_a,
            <double *> work + base - OUTPUT_ROWS_MAX * n_a,
            <double *> packed,
            fill, small_max, relu, active, j0, reverse, unpacked)


cdef void run_lstm_core(int typenum, Py_ssize_t n_x, Py_ssize_t n_a, Py_ssize_t n_y,
                        Py_ssize_t m, Py_ssize_t T, Py_ssize_t j0, Py_ssize_t j1,
                        char *x, char *a0, char *c0, char **w, char **b, char *wy, char *by,
                        char *a, char *c, char *y, char *z, char *s, char *work,
                        int small_max, char *packed=NULL, bint fill=False,
                        bint ring=False, const int *active=NULL,
                        int step_x=-1, bint reverse=False) noexcept nogil:
    # As run_rnn_core; w and b hold the four gates' pointers, merged when they are
    # consecutive row blocks of one array.  work: lstm_work_size(..., packed != NULL).
    # ``ring`` (panel only): z and s are lstm_core's ring buffers for these ms = j1 - j0
    # columns (the slice's own), not caches.
    cdef Py_ssize_t ms = j1 - j0, off = j0 * T, hc = ms * n_a, k
    cdef Py_ssize_t zoff = 0 if ring else off * 4 * n_a, soff = 0 if ring else off * 2 * n_a
    if step_x < 0:  # decided by the slice's own size (the panel's choice only)
        step_x = packed != NULL and lstm_step_x(typenum, ms, n_a, n_x)
    cdef Py_ssize_t item = 4 if typenum == cnp.NPY_FLOAT32 else 8
    cdef Py_ssize_t base = lstm_work_size(ms, T, n_a, n_x, packed != NULL)
    cdef bint merged = True
    cdef const float *wf[4]
    cdef const float *bf[4]
    cdef const double *wd[4]
    cdef const double *bd[4]
    for k in range(1, 4):
        merged = merged and (w[k] == w[0] + k * n_a * (n_a + n_x) * item
                             and b[k] == b[0] + k * n_a * item)
    if typenum == cnp.NPY_FLOAT32:
        for k in range(4):
            wf[k] = <float *> w[k]
            bf[k] = <float *> b[k]
        lstm_core[float](
            n_x, n_a, n_y, ms, T, <float *> x + off, m * T, <float *> a0 + j0, m,
            <float *> c0 + j0, m, wf, bf, merged, <float *> wy, <float *> by,
            <float *> a + off, m * T, <float *> c + off, m * T, <float *> y + off, m * T,
            <float *> z + zoff, <float *> s + soff,
            <float *> work, <float *> work + hc, <float *> work + 2 * hc,
            <float *> packed,
            fill, step_x, ring, active, j0, small_max, reverse)
    else:
        for k in range(4):
            wd[k] = <double *> w[k]
            bd[k] = <double *> b[k]
        lstm_core[double](
            n_x, n_a, n_y, ms, T, <double *> x + off, m * T, <double *> a0 + j0, m,
            <double *> c0 + j0, m, wd, bd, merged, <double *> wy, <double *> by,
            <double *> a + off, m * T, <double *> c + off, m * T, <double *> y + off, m * T,
            <double *> z + zoff, <double *> s + soff,
            <double *> work, <double *> work + hc, <double *> work + 2 * hc,
            <double *> packed,
            fill, step_x, ring, active, j0, small_max, reverse)


# ------------------------------------------------------------------ checked entry points

cdef inline object float_dtype(int typenum):
    # The numpy type of a kernel typenum (NPY_FLOAT32 or NPY_FLOAT64).
    return np.float32 if typenum == cnp.NPY_FLOAT32 else np.float64


cdef int check(cnp.ndarray arr, str name, int typenum, bint writable, int ndim,
               Py_ssize_t d0, Py_ssize_t d1=-1, Py_ssize_t d2=-1) except -1:
    if arr is None:
        raise ValueError(f"kernel argument {name} is None")
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    cdef bint ok = (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_IS_C_CONTIGUOUS(arr)
                    and cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_ISNOTSWAPPED(arr)
                    and cnp.PyArray_NDIM(arr) == ndim and dims[0] == d0
                    and (ndim < 2 or dims[1] == d1) and (ndim < 3 or dims[2] == d2)
                    and (not writable or cnp.PyArray_ISWRITEABLE(arr)))
    if not ok:
        raise ValueError(
            f"kernel argument {name}: expected a C-contiguous{' writable' if writable else ''} "
            f"{np.dtype(float_dtype(typenum))} array of "
            f"shape {(d0, d1, d2)[:ndim]}, got {arr.dtype} {(<object> arr).shape} "
            f"(C-contiguous={arr.flags.c_contiguous}, writeable={arr.flags.writeable})")
    return 0


cdef int check_sizes(Py_ssize_t n_x, Py_ssize_t G, Py_ssize_t n_a, Py_ssize_t n_y,
                     Py_ssize_t m, Py_ssize_t T, Py_ssize_t j0, Py_ssize_t j1) except -1:
    if not 0 <= j0 <= j1 <= m:
        raise ValueError(f"batch slice {j0}:{j1} is not inside 0:{m}")
    if (n_x > INT_MAX or G > INT_MAX or n_a + n_x > INT_MAX or n_y > INT_MAX
            or (T and m > INT_MAX // T) or (T and G > INT_MAX // T)):
        raise OverflowError(f"sizes n_x={n_x}, {G}, n_y={n_y}, m={m}, T_x={T} do not fit a "
                            f"BLAS int (at most {INT_MAX})")
    return 0


cdef int check_typenum(cnp.ndarray x) except -1:
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"kernel dtype must be float32 or float64, got {x.dtype}")
    if cnp.PyArray_NDIM(x) != 3:
        raise ValueError("kernel: x must be 3-d (n_x, m, T)")
    return typenum


cdef int check_ndims(cnp.ndarray a0, cnp.ndarray wy) except -1:
    # before any shape is read from them
    if cnp.PyArray_NDIM(a0) != 2 or cnp.PyArray_NDIM(wy) != 2:
        raise ValueError("kernel: a0 and wy must be 2-d")
    return 0


def rnn_forward(cnp.ndarray x not None, cnp.ndarray a0 not None, cnp.ndarray wx not None,
                cnp.ndarray wa not None, cnp.ndarray b not None, cnp.ndarray wy not None,
                cnp.ndarray by not None, cnp.ndarray a not None, cnp.ndarray y not None,
                cnp.ndarray z not None, Py_ssize_t j0, Py_ssize_t j1, int small_max,
                bint relu=False, cnp.ndarray active=None, bint reverse=False,
                bint per_call=False):
    """Basic RNN over the examples j0:j1 of a batch, the GIL released throughout.

    Parameters
    ----------
    x : (n_x, m, T) IN.  a0 : (n_a, m) IN.
    wx : (n_a, n_x), wa : (n_a, n_a), b : (n_a,), wy : (n_y, n_a), by : (n_y,) IN.
    a : (n_a, m, T), y : (n_y, m, T) OUT, filled for columns j0:j1.
    z : (m, T, n_a) OUT: the hidden states again, time-major (for the caches).
    small_max : batch slices of at most this many examples use the small-batch kernel for
        the recurrent product instead of BLAS gemm.
    relu : max(z, 0) instead of tanh (PyTorch's ``nonlinearity="relu"``).
    active : None, or (T,) C int IN: for a batch sorted by length, longest first, the number
        of examples still running at each step (non-increasing, in [0, m]); the others'
        steps are skipped and their states (a and z) set to 0.  Their predictions are then
        not meaningful (the caller zeroes them).
    reverse : run the steps backwards, from T - 1 to 0 (a backward direction; with
        ``active``, each example from its own last step, starting from its a0), writing
        every output at its own step: no reversed copies.
    per_call : the weights are packed for this call alone (a drop-in call, not a model's),
        as in :func:`lstm_forward`.
    """
    cdef int typenum = check_typenum(x)
    check_ndims(a0, wy)
    cdef Py_ssize_t n_x = x.shape[0], m = x.shape[1], T = x.shape[2]
    cdef Py_ssize_t n_a = a0.shape[0], n_y = wy.shape[0]
    check(x, "x", typenum, False, 3, n_x, m, T)
    check(a0, "a0", typenum, False, 2, n_a, m)
    check(wx, "wx", typenum, False, 2, n_a, n_x)
    check(wa, "wa", typenum, False, 2, n_a, n_a)
    check(b, "b", typenum, False, 1, n_a)
    check(wy, "wy", typenum, False, 2, n_y, n_a)
    check(by, "by", typenum, False, 1, n_y)
    check(a, "a", typenum, True, 3, n_a, m, T)
    check(y, "y", typenum, True, 3, n_y, m, T)
    check(z, "z", typenum, True, 3, m, T, n_a)
    check_sizes(n_x, n_a, n_a, n_y, m, T, j0, j1)
    check_active(active, T, m)
    cdef const int *act = NULL if active is None else <const int *> cnp.PyArray_DATA(active)
    if j1 == j0 or T == 0:
        return
    # as the drop-in fast path decides (rnn_call): the same call, the same kernels and bits
    cdef bint unpacked
    cdef Py_ssize_t npanel = rnn_plan(typenum, n_a, n_x, j1 - j0, T, small_max, per_call,
                                      &unpacked)
    cdef cnp.ndarray work = _pool.aligned_empty(
        work_size(1, j1 - j0, T, n_a, n_x, unpacked or npanel > 0), x.dtype)
    cdef bint fill
    cdef char *packed = packed_block(None, None, npanel, typenum, &fill)
    with nogil:
        run_rnn_core(typenum, n_x, n_a, n_y, m, T, j0, j1, cnp.PyArray_BYTES(x),
                     cnp.PyArray_BYTES(a0), cnp.PyArray_BYTES(wx), cnp.PyArray_BYTES(wa),
                     cnp.PyArray_BYTES(b), cnp.PyArray_BYTES(wy), cnp.PyArray_BYTES(by),
                     cnp.PyArray_BYTES(a), cnp.PyArray_BYTES(y), cnp.PyArray_BYTES(z),
                     cnp.PyArray_BYTES(work), small_max, packed, fill, relu, act,
                     reverse, unpacked)


def lstm_forward(cnp.ndarray x not None, cnp.ndarray a0 not None, cnp.ndarray c0 not None,
                 tuple w not None, tuple b not None, cnp.ndarray wy not None,
                 cnp.ndarray by not None, cnp.ndarray a not None, cnp.ndarray c not None,
                 cnp.ndarray y not None, cnp.ndarray z not None, cnp.ndarray s not None,
                 Py_ssize_t j0, Py_ssize_t j1, int small_max, cnp.ndarray active=None,
                 bint reverse=False, bint per_call=False):
    """LSTM over the examples j0:j1 of a batch, the GIL released throughout.

    Parameters
    ----------
    x : (n_x, m, T) IN.  a0, c0 : (n_a, m) IN.
    w : 4-tuple of (n_a, n_a + n_x) IN, the gate weights in the order f, i, o, c; when they
        are consecutive row blocks of one array (a packed model), each step makes one
        recurrent product for all gates, else one per gate.
    b : 4-tuple of (n_a,) IN, the gate biases in the same order.
    wy : (n_y, n_a), by : (n_y,) IN.
    a, c : (n_a, m, T), y : (n_y, m, T) OUT, filled for columns j0:j1.
    z : (m, T, 4n_a) OUT: the activated gates [f, i, o, c] of every step (for the caches).
    s : (m, T, 2n_a) OUT: [a_t, c_t] of every step, time-major (for the caches).
    small_max : batch slices of at most this many examples use the small-batch kernel for
        the recurrent product instead of BLAS gemm.
    active : None, or (T,) C int IN, as for :func:`gru_forward`: the batch sorted by length,
        longest first; at step t only the first active[t] examples run, the others' states
        are set to 0.
    reverse : run the steps backwards, from T - 1 to 0 (a backward direction over whole
        sequences: not with ``active``), writing every output at its own step.
    per_call : the weights are packed for this call alone (a drop-in call, not a model's):
        it may skip packing them as the drop-in fast path does (unpacked_steps).
    """
    cdef int typenum = check_typenum(x)
    if len(w) != 4 or len(b) != 4:
        raise ValueError("kernel: w and b must hold the four gates")
    check_ndims(a0, wy)
    cdef Py_ssize_t n_x = x.shape[0], m = x.shape[1], T = x.shape[2]
    cdef Py_ssize_t n_a = a0.shape[0], n_y = wy.shape[0]
    cdef Py_ssize_t k
    cdef char *wp[4]
    cdef char *bp[4]
    check(x, "x", typenum, False, 3, n_x, m, T)
    check(a0, "a0", typenum, False, 2, n_a, m)
    check(c0, "c0", typenum, False, 2, n_a, m)
    for k in range(4):
        check(w[k], "w", typenum, False, 2, n_a, n_a + n_x)
        check(b[k], "b", typenum, False, 1, n_a)
        wp[k] = cnp.PyArray_BYTES(<cnp.ndarray> w[k])
        bp[k] = cnp.PyArray_BYTES(<cnp.ndarray> b[k])
    check(wy, "wy", typenum, False, 2, n_y, n_a)
    check(by, "by", typenum, False, 1, n_y)
    check(a, "a", typenum, True, 3, n_a, m, T)
    check(c, "c", typenum, True, 3, n_a, m, T)
    check(y, "y", typenum, True, 3, n_y, m, T)
    check(z, "z", typenum, True, 3, m, T, 4 * n_a)
    check(s, "s", typenum, True, 3, m, T, 2 * n_a)
    check_sizes(n_x, 4 * n_a, n_a, n_y, m, T, j0, j1)
    check_active(active, T, m)
    cdef const int *act = NULL if active is None else <const int *> cnp.PyArray_DATA(active)
    if j1 == j0 or T == 0:
        return
    # as the drop-in fast path decides (try_lstm): the same call, the same kernels and bits
    cdef bint unpacked
    cdef Py_ssize_t npanel = lstm_plan(typenum, n_a, n_x, j1 - j0, T, small_max, per_call,
                                       &unpacked)
    cdef cnp.ndarray work = _pool.aligned_empty(
        lstm_work_size(j1 - j0, T, n_a, n_x, npanel > 0), x.dtype)
    cdef bint fill
    cdef char *packed = packed_block(None, None, npanel, typenum, &fill)
    with nogil:
        run_lstm_core(typenum, n_x, n_a, n_y, m, T, j0, j1, cnp.PyArray_BYTES(x),
                      cnp.PyArray_BYTES(a0), cnp.PyArray_BYTES(c0), wp, bp,
                      cnp.PyArray_BYTES(wy), cnp.PyArray_BYTES(by), cnp.PyArray_BYTES(a),
                      cnp.PyArray_BYTES(c), cnp.PyArray_BYTES(y), cnp.PyArray_BYTES(z),
                      cnp.PyArray_BYTES(s), cnp.PyArray_BYTES(work), small_max,
                      packed, fill, False, act, 1 if unpacked else -1, reverse)


# ------------------------------------------------------------------ the drop-in fast path

cdef cnp.ndarray exact(object o, int typenum, int ndim, Py_ssize_t d0, Py_ssize_t d1):
    # o when it is exactly an ndarray of typenum, native, aligned and C-contiguous, of shape
    # (d0[, d1]) (-1 matches any size); else None.
    if not cnp.PyArray_CheckExact(o):
        return None
    cdef cnp.ndarray arr = <cnp.ndarray> o
    if (cnp.PyArray_TYPE(arr) != typenum or cnp.PyArray_NDIM(arr) != ndim
            or not cnp.PyArray_ISCARRAY_RO(arr) or not cnp.PyArray_ISNOTSWAPPED(arr)):
        return None
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    if (d0 >= 0 and dims[0] != d0) or (ndim > 1 and d1 >= 0 and dims[1] != d1):
        return None
    return arr


cdef cnp.ndarray exact_input(object x, bint sequence):
    # x when it can be the input of the fast path: float32/float64, every size positive.
    if not cnp.PyArray_CheckExact(x):
        return None
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray> x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        return None
    cdef cnp.ndarray arr = exact(x, typenum, 3 if sequence else 2, -1, -1)
    if arr is None or cnp.PyArray_SIZE(arr) == 0:
        return None
    return arr


cdef bint sizes_fit(Py_ssize_t n_x, Py_ssize_t G, Py_ssize_t n_a, Py_ssize_t n_y,
                    Py_ssize_t m, Py_ssize_t T):
    # n_a positive, n_y positive or 0 (no output layer: the cores skip it), all within a BLAS
    # int (x has m*T*n_x > 0 elements, so m*T cannot wrap).
    return (n_a > 0 and n_y >= 0 and G <= INT_MAX and n_a + n_x <= INT_MAX and n_y <= INT_MAX
            and m * T <= INT_MAX and T <= INT_MAX // G)


cdef cnp.ndarray given_head(dict p, str key, int typenum):
    # A drop-in call's output weights p[key] when the compiled path takes them: an exact 2-d
    # array with rows (none is an error, which the validated route names), else None.
    cdef cnp.ndarray wy = exact(p.get(key), typenum, 2, -1, -1)
    if wy is None or wy.shape[0] == 0:
        return None
    return wy


cdef bint has_subnormal(cnp.ndarray arr):
    if cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32:
        return fr_count_subnormal_f(<float *> cnp.PyArray_DATA(arr), cnp.PyArray_SIZE(arr)) > 0
    return fr_count_subnormal_d(<double *> cnp.PyArray_DATA(arr), cnp.PyArray_SIZE(arr)) > 0


cdef cnp.ndarray state_or_zeros(object v, int typenum, Py_ssize_t n_a, Py_ssize_t m):
    # An initial state for the fast path: zeros for None, else v when exact (or None).
    cdef cnp.npy_intp dims[2]
    if v is None:
        dims[0], dims[1] = n_a, m
        return cnp.PyArray_ZEROS(2, dims, typenum, 0)
    return exact(v, typenum, 2, n_a, m)


cdef Py_ssize_t POOL_MIN_BYTES = _pool.MIN_BYTES


cdef cnp.ndarray new_array(int nd, cnp.npy_intp *dims, int typenum):
    # An uninitialised float array that a call returns (an output, a cache's buffer): from
    # fastrnn._pool when it is large (memory that stays mapped between calls, no fresh pages).
    cdef Py_ssize_t nbytes = 4 if typenum == cnp.NPY_FLOAT32 else 8
    cdef int k
    for k in range(nd):
        nbytes *= dims[k]
    if nbytes < POOL_MIN_BYTES:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    return _pool.empty(shape_of(nd, dims), float_dtype(typenum))


cdef cnp.ndarray scratch_array(list scratch, int slot, int nd, cnp.npy_intp *dims,
                               int typenum):
    # A new array, or with ``scratch`` (a model's per-thread buffers) the one kept in
    # scratch[slot] from the previous call when it has the same shape: a large fresh array
    # costs a page fault per 4 KiB on first touch, about a tenth of a large forward pass.
    # (Only an array the kernels can write whole is reused: the slots are a Python list.)
    cdef cnp.ndarray arr
    cdef int k
    if scratch is not None:
        if not 0 <= slot < len(scratch):
            raise ValueError(f"scratch: a list of at least {slot + 1} work-array slots "
                             f"expected, got {len(scratch)}")
        arr = scratch[slot]
        if (arr is not None and cnp.PyArray_TYPE(arr) == typenum
                and cnp.PyArray_NDIM(arr) == nd and cnp.PyArray_IS_C_CONTIGUOUS(arr)
                and cnp.PyArray_ISWRITEABLE(arr) and cnp.PyArray_ISALIGNED(arr)
                and cnp.PyArray_ISNOTSWAPPED(arr)):
            for k in range(nd):
                if cnp.PyArray_DIMS(arr)[k] != dims[k]:
                    break
            else:
                return arr
    arr = (_pool.aligned_empty(shape_of(nd, dims), float_dtype(typenum)) if scratch is not None
           else new_array(nd, dims, typenum))
    if scratch is not None:
        scratch[slot] = arr
    return arr


# Per-thread work buffers of the drop-in calls (models keep their own): the transposed initial
# states and the packed recurrent block are scratch that no output refers to, and a large
# fresh array costs a page fault per 4 KiB on first touch.  One buffer per thread, the size
# of the largest work the thread needed so far.
_ARENA = threading.local()


cdef cnp.ndarray arena_work(Py_ssize_t n, int typenum):
    # At least n elements of typenum from this thread's arena (the first n are used).
    cdef cnp.ndarray buf = getattr(_ARENA, "work", None)
    cdef Py_ssize_t nbytes = n * (4 if typenum == cnp.NPY_FLOAT32 else 8)
    if buf is None or cnp.PyArray_NBYTES(buf) < nbytes:
        buf = _pool.aligned_empty(max(nbytes, 1), np.uint8)
        _ARENA.work = buf
    return buf


cdef cnp.ndarray call_work(list scratch, Py_ssize_t n, int typenum):
    # A call's work array of n elements of typenum: a model's (``scratch``: its slot 2, kept
    # between calls), else this thread's arena (a drop-in call).
    cdef cnp.npy_intp dims[1]
    if scratch is None:
        return arena_work(n, typenum)
    dims[0] = n
    return scratch_array(scratch, 2, 1, dims, typenum)


cdef tuple shape_of(int nd, cnp.npy_intp *dims):
    return tuple([dims[k] for k in range(nd)])


cdef cnp.ndarray panel_array(Py_ssize_t npanel, int typenum):
    # npanel elements of typenum for a packed block (fastrnn._pool.huge_empty: huge pages).
    return _pool.huge_empty(max(npanel, 1), float_dtype(typenum))


cdef char *packed_block(list scratch, object key, Py_ssize_t npanel, int typenum,
                        bint *fill):
    # The buffer of a call's packed block (npanel elements of typenum; NULL when npanel is
    # 0), with fill set when the call must pack it.  A model's (``scratch`` given: its
    # per-thread list) is kept in scratch[3] = (key, array) between calls and packed on the
    # first call of a thread only; a model whose weights change in place (apply_gradients)
    # drops its scratch lists, and with them this cache.  Without scratch (a drop-in call, a
    # slice of the validated route): this thread's arena, packed by every call.
    cdef cnp.ndarray arr
    fill[0] = npanel > 0
    if npanel == 0:
        return NULL
    if scratch is None:
        arr = getattr(_ARENA, "panel", None)
        if arr is None or cnp.PyArray_SIZE(arr) < npanel or cnp.PyArray_TYPE(arr) != typenum:
            arr = _ARENA.panel = panel_array(npanel, typenum)
        return cnp.PyArray_BYTES(arr)
    while len(scratch) < 4:
        scratch.append(None)
    key = (key, npanel, typenum)
    entry = scratch[3]
    if entry is not None and entry[0] == key:
        fill[0] = False
        return cnp.PyArray_BYTES(entry[1])
    arr = panel_array(npanel, typenum)
    scratch[3] = (key, arr)
    return cnp.PyArray_BYTES(arr)


cdef tuple rnn_call(cnp.ndarray xa, cnp.ndarray a0a, cnp.ndarray wx, cnp.ndarray wa,
                    char *b, cnp.ndarray wy, char *by, bint sequence, int small_max,
                    bint per_call, list scratch=None, bint relu=False,
                    const int *active=NULL, bint reverse=False, cnp.ndarray out=None):
    cdef Py_ssize_t npanel
    cdef bint unpacked
    # Allocate the outputs and run the RNN core on accepted arrays; returns (a, y, z).
    # With ``scratch`` (3 slots), z and the work buffer are reused from the previous call.
    # ``per_call``: a drop-in call's (rnn_plan).  ``out``: a, checked by the caller, instead
    # of a new array.
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t n_x = xa.shape[0], m = xa.shape[1], T = xa.shape[2] if sequence else 1
    cdef Py_ssize_t n_y = wy.shape[0], n_a = wy.shape[1]
    cdef cnp.npy_intp dims[3]
    cdef int nd = 3 if sequence else 2
    dims[0], dims[1], dims[2] = n_a, m, T
    cdef cnp.ndarray a = out if out is not None else new_array(nd, dims, typenum)
    dims[0] = n_y
    cdef cnp.ndarray y = new_array(nd, dims, typenum)
    dims[0], dims[1], dims[2] = m, T, n_a
    cdef cnp.ndarray z = scratch_array(scratch, 0, 3, dims, typenum)
    npanel = rnn_plan(typenum, n_a, n_x, m, T, small_max, per_call, &unpacked)
    cdef bint fill
    cdef char *packed = packed_block(scratch, <Py_ssize_t> cnp.PyArray_DATA(wa), npanel,
                                     typenum, &fill)
    cdef cnp.ndarray work = call_work(
        scratch, work_size(1, m, T, n_a, n_x, unpacked or npanel > 0), typenum)
    with nogil:
        run_rnn_core(typenum, n_x, n_a, n_y, m, T, 0, m, cnp.PyArray_BYTES(xa),
                     cnp.PyArray_BYTES(a0a), cnp.PyArray_BYTES(wx), cnp.PyArray_BYTES(wa),
                     b, cnp.PyArray_BYTES(wy), by, cnp.PyArray_BYTES(a),
                     cnp.PyArray_BYTES(y), cnp.PyArray_BYTES(z), cnp.PyArray_BYTES(work),
                     small_max, packed, fill, relu, active, reverse, unpacked)
    return a, y, z


cdef void pack_lstm(int typenum, Py_ssize_t n_a, Py_ssize_t n_x, char **wp,
                    char *panel) noexcept nogil:
    # The gates' rows [W_a | W_x] into the panel of lstm_panel_elems(...) elements.
    cdef const float *wf[4]
    cdef const double *wd[4]
    cdef int k
    for k in range(4):
        wf[k] = <const float *> wp[k]
        wd[k] = <const double *> wp[k]
    if typenum == cnp.NPY_FLOAT32:
        panel_pack(4 * n_a, n_a + n_x, wf, n_a, n_a + n_x, <float *> panel)
    else:
        panel_pack(4 * n_a, n_a + n_x, wd, n_a, n_a + n_x, <double *> panel)


cdef list slice_buffers(list scratch, int typenum, Py_ssize_t n_a, Py_ssize_t n_x,
                        Py_ssize_t m, Py_ssize_t T, Py_ssize_t n):
    # The batch in n near-equal slices, each with its own ring buffers and work:
    # [(j0, j1, z, s, work)], kept in scratch[4] for the next call of the same sizes.
    while len(scratch) < 5:
        scratch.append(None)
    key = (typenum, n_a, n_x, m, T, n)
    if scratch[4] is not None and scratch[4][0] == key:
        return scratch[4][1]
    cdef list out = []
    cdef Py_ssize_t k, j0, j1
    dtype = float_dtype(typenum)
    for k in range(n):
        j0, j1 = m * k // n, m * (k + 1) // n
        out.append((j0, j1, _pool.aligned_empty((j1 - j0, 1, 4 * n_a), dtype),
                    _pool.aligned_empty(
                        (j1 - j0, state_block(np.dtype(dtype).itemsize), 2 * n_a), dtype),
                    _pool.aligned_empty(lstm_work_size(j1 - j0, T, n_a, n_x, True), dtype)))
    scratch[4] = (key, out)
    return out


cdef class LstmSlices:
    # One LSTM call split over the batch for several threads: run(k) runs slice k with the
    # GIL released, on the slice's own ring buffers and the shared, already packed block.
    cdef int typenum
    cdef Py_ssize_t small_max
    cdef bint reverse
    cdef const int *active
    cdef char *wp[4]
    cdef char *bp[4]
    cdef char *by
    cdef char *packed
    cdef cnp.ndarray x, a0, c0, wy, a, c, y
    cdef list slices

    def __cinit__(self):
        self.active = NULL

    cdef void stay_with(self, cnp.ndarray x, cnp.ndarray a0, cnp.ndarray c0, cnp.ndarray wy,
                        cnp.ndarray a, cnp.ndarray c, cnp.ndarray y):
        self.x, self.a0, self.c0, self.wy, self.a, self.c, self.y = x, a0, c0, wy, a, c, y

    def run(self, Py_ssize_t k):
        j0, j1, z, s, work = self.slices[k]
        cdef Py_ssize_t n_x = self.x.shape[0], m = self.x.shape[1], T = self.x.shape[2]
        cdef Py_ssize_t n_y = self.wy.shape[0], n_a = self.wy.shape[1]
        cdef Py_ssize_t i0 = j0, i1 = j1
        cdef char *zp = cnp.PyArray_BYTES(<cnp.ndarray> z)
        cdef char *sp = cnp.PyArray_BYTES(<cnp.ndarray> s)
        cdef char *wkp = cnp.PyArray_BYTES(<cnp.ndarray> work)
        with nogil:
            run_lstm_core(self.typenum, n_x, n_a, n_y, m, T, i0, i1,
                          cnp.PyArray_BYTES(self.x), cnp.PyArray_BYTES(self.a0),
                          cnp.PyArray_BYTES(self.c0), self.wp, self.bp,
                          cnp.PyArray_BYTES(self.wy), self.by, cnp.PyArray_BYTES(self.a),
                          cnp.PyArray_BYTES(self.c), cnp.PyArray_BYTES(self.y), zp, sp, wkp,
                          self.small_max, self.packed, False, True, self.active, True,
                          self.reverse)


cdef LstmSlices LstmSlices_new(cnp.ndarray x, cnp.ndarray a0, cnp.ndarray c0, char **wp,
                               char **bp, cnp.ndarray wy, char *by, cnp.ndarray a,
                               cnp.ndarray c, cnp.ndarray y, char *packed, int small_max,
                               const int *active, bint reverse, list slices):
    cdef LstmSlices job = LstmSlices.__new__(LstmSlices)
    cdef int k
    job.typenum = cnp.PyArray_TYPE(x)
    job.stay_with(x, a0, c0, wy, a, c, y)
    for k in range(4):
        job.wp[k], job.bp[k] = wp[k], bp[k]
    job.by, job.packed, job.small_max, job.active = by, packed, small_max, active
    job.reverse = reverse
    job.slices = slices
    return job


cdef tuple lstm_call(cnp.ndarray xa, cnp.ndarray a0a, cnp.ndarray c0a, char **wp, char **bp,
                     cnp.ndarray wy, char *by, bint sequence, int small_max,
                     Py_ssize_t npanel, list scratch=None, bint caches=True,
                     const int *active=NULL, Py_ssize_t n_slices=1, object runner=None,
                     bint reverse=False, cnp.ndarray out=None, bint unpacked=False):
    # Allocate the outputs and run the LSTM core on accepted arrays; (a, y, c, z, s).
    # With ``scratch`` (3 slots), z, s and the work buffer are reused from the previous call.
    # Without ``caches``, where the panel GEMM runs, z and s are the core's ring buffers
    # (one step of gates, state_block steps of states) and come back as None; then
    # ``n_slices`` > 1 splits the batch into that many slices, run by
    # ``runner(run, n_slices)`` (which calls run(k) once for every k, on its threads).
    # ``reverse`` (``active`` NULL): the steps backwards; ``out``: a, checked by the caller.
    # ``unpacked`` (npanel 0): the fused product per step from the weights as they are.
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t n_x = xa.shape[0], m = xa.shape[1], T = xa.shape[2] if sequence else 1
    cdef Py_ssize_t n_y = wy.shape[0], n_a = wy.shape[1]
    cdef cnp.npy_intp dims[3]
    cdef int nd = 3 if sequence else 2
    dims[0], dims[1], dims[2] = n_a, m, T
    cdef cnp.ndarray a = out if out is not None else new_array(nd, dims, typenum)
    cdef cnp.ndarray c = new_array(nd, dims, typenum)
    dims[0] = n_y
    cdef cnp.ndarray y = new_array(nd, dims, typenum)
    # one decision for the whole call (its slices share the packed block)
    cdef bint step_x = lstm_step_x(typenum, m, n_a, n_x, n_slices > 1) if npanel > 0 else unpacked
    cdef bint ring = npanel > 0 and not caches and step_x
    dims[0], dims[1], dims[2] = m, 1 if ring else T, 4 * n_a
    cdef cnp.ndarray z = scratch_array(scratch, 0, 3, dims, typenum)
    dims[1], dims[2] = state_block(cnp.PyArray_ITEMSIZE(xa)) if ring else T, 2 * n_a
    cdef cnp.ndarray s = scratch_array(scratch, 1, 3, dims, typenum)
    cdef bint fill
    cdef char *packed = packed_block(scratch, <Py_ssize_t> wp[0], npanel, typenum, &fill)
    if n_slices > 1 and not (ring and scratch is not None and npanel):
        raise ValueError("lstm_call: only ring calls with a cached panel run in slices")
    if n_slices > 1:
        if fill:  # packed here, once: the slices only read it
            pack_lstm(typenum, n_a, n_x, wp, packed)
        runner(LstmSlices_new(xa, a0a, c0a, wp, bp, wy, by, a, c, y, packed, small_max, active,
                              reverse,
                              slice_buffers(scratch, typenum, n_a, n_x, m, T, n_slices)).run,
               n_slices)
        return a, y, c, None, None
    cdef cnp.ndarray work = call_work(
        scratch, lstm_work_size(m, T, n_a, n_x, npanel > 0), typenum)
    with nogil:
        run_lstm_core(typenum, n_x, n_a, n_y, m, T, 0, m, cnp.PyArray_BYTES(xa),
                      cnp.PyArray_BYTES(a0a), cnp.PyArray_BYTES(c0a), wp, bp,
                      cnp.PyArray_BYTES(wy), by, cnp.PyArray_BYTES(a), cnp.PyArray_BYTES(c),
                      cnp.PyArray_BYTES(y), cnp.PyArray_BYTES(z), cnp.PyArray_BYTES(s),
                      cnp.PyArray_BYTES(work), small_max, packed, fill, ring,
                      active, step_x, reverse)
    if ring:
        return a, y, c, None, None
    return a, y, c, z, s


def try_rnn(object x, object a0, object parameters, bint sequence, int small_max):
    """The whole drop-in RNN call when every argument is already what the kernel takes.

    That is: ``parameters`` a dict and every array an exact ndarray of one dtype (float32 or
    float64), native, aligned, C-contiguous, of exactly the right shape, every size positive,
    no subnormal input.  Returns ``(a, y, z)`` (2-d a and y for a single step), or None for
    anything else, which then goes through fastrnn._validation and fastrnn._packing.  This
    accepts a subset of what those accept and decides nothing else.
    """
    if type(parameters) is not dict:
        return None
    cdef dict p = <dict> parameters
    cdef cnp.ndarray xa = exact_input(x, sequence)
    if xa is None:
        return None
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t n_x = xa.shape[0], m = xa.shape[1], T = xa.shape[2] if sequence else 1
    cdef cnp.ndarray wy = given_head(p, "Wya", typenum)
    if wy is None:
        return None
    cdef Py_ssize_t n_y = wy.shape[0], n_a = wy.shape[1]
    if not sizes_fit(n_x, n_a, n_a, n_y, m, T):
        return None
    cdef cnp.ndarray wx = exact(p.get("Wax"), typenum, 2, n_a, n_x)
    cdef cnp.ndarray wa = exact(p.get("Waa"), typenum, 2, n_a, n_a)
    cdef cnp.ndarray b = exact(p.get("ba"), typenum, 2, n_a, 1)
    cdef cnp.ndarray by = exact(p.get("by"), typenum, 2, n_y, 1)
    cdef cnp.ndarray a0a = exact(a0, typenum, 2, n_a, m)
    if wx is None or wa is None or b is None or by is None or a0a is None:
        return None
    if has_subnormal(xa) or has_subnormal(a0a):
        return None
    return rnn_call(xa, a0a, wx, wa, cnp.PyArray_BYTES(b), wy, cnp.PyArray_BYTES(by),
                    sequence, small_max, True)


cdef int check_packed(cnp.ndarray wy, cnp.ndarray by, object scratch) except -1:
    # A model's output layer and scratch list, checked before any size is read from them:
    # private entry points or not, no argument may make a kernel read out of bounds.
    # Returns the dtype's typenum.
    cdef int typenum = cnp.PyArray_TYPE(wy)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"packed weights must be float32 or float64, got {wy.dtype}")
    if cnp.PyArray_NDIM(wy) != 2:
        raise ValueError(f"packed wy must be 2-d (n_y, n_a), got shape {(<object> wy).shape}")
    check(wy, "wy", typenum, False, 2, wy.shape[0], wy.shape[1])
    check(by, "by", typenum, False, 1, wy.shape[0])
    if scratch is not None and len(<list> scratch) < 3:
        raise ValueError("scratch must be a list of 3 slots")
    return typenum


cdef bint has_subnormal_released(cnp.ndarray arr):
    # has_subnormal with the GIL released during the scan of a large array (the input of a
    # bidirectional layer is scanned by both directions' threads at once).
    if cnp.PyArray_SIZE(arr) < 65536:
        return has_subnormal(arr)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(arr), count
    cdef void *data = cnp.PyArray_DATA(arr)
    cdef bint f32 = cnp.PyArray_TYPE(arr) == cnp.NPY_FLOAT32
    with nogil:
        if f32:
            count = fr_count_subnormal_f(<float *> data, n)
        else:
            count = fr_count_subnormal_d(<double *> data, n)
    return count > 0


def try_packed_rnn(object x, object a0, cnp.ndarray wx not None, cnp.ndarray wa not None,
                   cnp.ndarray b not None, cnp.ndarray wy not None, cnp.ndarray by not None,
                   bint sequence, int small_max, list scratch=None, bint relu=False,
                   cnp.ndarray active=None, bint reverse=False, cnp.ndarray out=None):
    """:func:`try_rnn` for a packed model (fastrnn.RNN): its weights, already checked and
    contiguous; ``a0`` None means zeros; ``scratch`` a list of 3 slots in which the model
    keeps its work buffers between calls (one list per thread); ``relu``, ``active`` and
    ``reverse`` as for :func:`rnn_forward`; ``out`` None, or the (n_a, m, T) array to write
    a into (a sequence only).  Returns ``(a, y, z)``, z being scratch memory, or None."""
    cdef int typenum = check_packed(wy, by, scratch)
    cdef Py_ssize_t n_a = wy.shape[1]
    if cnp.PyArray_NDIM(wx) != 2:
        raise ValueError(f"packed wx must be 2-d (n_a, n_x), got shape {(<object> wx).shape}")
    check(wx, "wx", typenum, False, 2, n_a, wx.shape[1])
    check(wa, "wa", typenum, False, 2, n_a, n_a)
    check(b, "b", typenum, False, 1, n_a)
    cdef cnp.ndarray xa = exact_input(x, sequence)
    if xa is None or cnp.PyArray_TYPE(xa) != typenum or xa.shape[0] != wx.shape[1]:
        return None
    cdef Py_ssize_t n_x = xa.shape[0], m = xa.shape[1], T = xa.shape[2] if sequence else 1
    if not sizes_fit(n_x, n_a, n_a, wy.shape[0], m, T):
        return None
    cdef cnp.ndarray a0a = state_or_zeros(a0, typenum, n_a, m)
    if a0a is None or has_subnormal_released(xa) or has_subnormal(a0a):
        return None
    check_active(active, T, m)
    check_out(out, sequence, typenum, n_a, m, T)
    return rnn_call(xa, a0a, wx, wa, cnp.PyArray_BYTES(b), wy, cnp.PyArray_BYTES(by),
                    sequence, small_max, False, scratch, relu,
                    NULL if active is None else <const int *> cnp.PyArray_DATA(active),
                    reverse, out)


# ------------------------------------------------------------------ final states

cdef void last_step_core(const floating *seq, Py_ssize_t n_a, Py_ssize_t m, Py_ssize_t T,
                         bint at_start, const Py_ssize_t *order, const Py_ssize_t *lengths,
                         floating *out) noexcept nogil:
    # out (n_a, m) = each example's state at its step 0 (at_start) or its last step, of a
    # C-contiguous (n_a, m, T) seq: step T - 1 (lengths NULL), or, for a batch in order of
    # length, example q's step lengths[q] - 1 written to column order[q].
    cdef Py_ssize_t i, q
    if lengths == NULL:
        for i in range(n_a * m):
            out[i] = seq[i * T + (0 if at_start else T - 1)]
        return
    for i in range(n_a):
        for q in range(m):
            out[i * m + order[q]] = seq[(i * m + q) * T + (0 if at_start else lengths[q] - 1)]


def last_states(list seqs not None, list at_start not None, cnp.ndarray order=None,
                cnp.ndarray lengths=None):
    """The final states of sequences: for sequence k of ``seqs`` (C-contiguous (n_a, m, T)
    arrays of one float dtype), its step 0 when ``at_start[k]`` (a backward direction), else
    its last step: T - 1, or, given ``order`` and ``lengths`` ((m,) intp: a batch in order of
    length, as fastrnn._models._Lengths keeps it), example q's step lengths[q] - 1, returned
    in column order[q].  One (len(seqs), n_a, m) array when every n_a is the same, else a
    list of (n_a_k, m) arrays (as fastrnn._compose stacks them)."""
    cdef Py_ssize_t n = len(seqs), k, T, q
    if n == 0 or len(at_start) != n:
        raise ValueError("last_states: seqs and at_start must be as long, and not empty")
    for k in range(n):
        if not isinstance(seqs[k], np.ndarray):
            raise TypeError(f"last_states: seqs must hold arrays, got {type(seqs[k]).__name__}")
    cdef cnp.ndarray first = seqs[0]
    cdef int typenum = cnp.PyArray_TYPE(first)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"last_states: float32 or float64 sequences, got {first.dtype}")
    cdef cnp.ndarray seq
    cdef bint same = True
    for k in range(n):
        seq = seqs[k]
        if cnp.PyArray_NDIM(seq) != 3 or seq.shape[2] < 1:
            raise ValueError("last_states: seqs must be (n_a, m, T) arrays with T >= 1")
        check(seq, "seqs", typenum, False, 3, seq.shape[0], first.shape[1], first.shape[2])
        same = same and seq.shape[0] == first.shape[0]
    cdef Py_ssize_t m = first.shape[1]
    T = first.shape[2]
    cdef const Py_ssize_t *ordp = NULL
    cdef const Py_ssize_t *lenp = NULL
    if (order is None) != (lengths is None):
        raise ValueError("last_states: order and lengths go together")
    if order is not None:
        if (cnp.PyArray_TYPE(order) != cnp.NPY_INTP or cnp.PyArray_TYPE(lengths) != cnp.NPY_INTP
                or not cnp.PyArray_IS_C_CONTIGUOUS(order)
                or not cnp.PyArray_IS_C_CONTIGUOUS(lengths)
                or cnp.PyArray_NDIM(order) != 1 or cnp.PyArray_NDIM(lengths) != 1
                or order.shape[0] != m or lengths.shape[0] != m):
            raise ValueError(f"last_states: order and lengths must be C-contiguous ({m},) intp")
        ordp = <const Py_ssize_t *> cnp.PyArray_DATA(order)
        lenp = <const Py_ssize_t *> cnp.PyArray_DATA(lengths)
        for q in range(m):
            if not (0 <= ordp[q] < m and 1 <= lenp[q] <= T):
                raise ValueError(f"last_states: order in [0, {m}) and lengths in [1, {T}]")
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = n, first.shape[0], m
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(3, dims, typenum, 0) if same else None
    cdef list parts = []
    cdef cnp.ndarray dst
    cdef Py_ssize_t size
    cdef bint start
    for k in range(n):
        seq = seqs[k]
        size = seq.shape[0] * m
        start = at_start[k]
        if same:
            dst = out
        else:
            dst = cnp.PyArray_EMPTY(2, seq.shape, typenum, 0)
            parts.append(dst)
        if typenum == cnp.NPY_FLOAT32:
            last_step_core(<float *> cnp.PyArray_DATA(seq), seq.shape[0], m, T, start,
                           ordp, lenp, <float *> cnp.PyArray_DATA(dst) + (k * size if same else 0))
        else:
            last_step_core(<double *> cnp.PyArray_DATA(seq), seq.shape[0], m, T, start,
                           ordp, lenp, <double *> cnp.PyArray_DATA(dst) + (k * size if same else 0))
    return out if same else parts


# ------------------------------------------------------------------ batches sorted by length

cdef extern from *:
    void __builtin_prefetch(const void *addr, int rw) nogil

cdef enum:
    # Sequences of this many bytes or more are permuted (and their padding zeroed) with the
    # GIL released and their rows prefetched (permute_steps_core); smaller ones are in cache
    # and done in well under a microsecond.
    PERMUTE_LARGE_BYTES = 64 * 1024

#: permute_steps releases the GIL for sequences of this many bytes or more (for tests).
PERMUTE_LARGE = PERMUTE_LARGE_BYTES

cdef tuple counting_sort(cnp.ndarray lengths, Py_ssize_t T):
    # sort_lengths' work on a C-contiguous (m,) intp array, each length checked in [1, T]
    # (None when one is not).
    cdef Py_ssize_t m = lengths.shape[0], j, t, L, run = 0
    cdef const Py_ssize_t *v = <const Py_ssize_t *> cnp.PyArray_DATA(lengths)
    cdef bint in_order = True
    for j in range(m):
        if not 1 <= v[j] <= T:
            return None
        if j and v[j] > v[j - 1]:
            in_order = False
    cdef cnp.npy_intp dims[1]
    dims[0] = m
    cdef cnp.ndarray order = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
    cdef cnp.ndarray srt = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
    dims[0] = T
    cdef cnp.ndarray active = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT, 0)
    cdef Py_ssize_t *o = <Py_ssize_t *> cnp.PyArray_DATA(order)
    cdef Py_ssize_t *so = <Py_ssize_t *> cnp.PyArray_DATA(srt)
    cdef int *act = <int *> cnp.PyArray_DATA(active)
    cdef Py_ssize_t *pos = <Py_ssize_t *> calloc(T + 2, sizeof(Py_ssize_t))
    if pos == NULL:
        raise MemoryError()
    for j in range(m):
        pos[v[j]] += 1  # count of each length
    for L in range(T, 0, -1):  # first sorted position of each length, longest first
        run, pos[L] = run + pos[L], run
    for t in range(T):  # examples longer than t: all of them, then those before length t
        act[t] = <int> (m if t == 0 else pos[t])
    for j in range(m):
        L = v[j]
        o[pos[L]] = j
        so[pos[L]] = L
        pos[L] += 1
    free(pos)
    return order, srt, active, in_order


def sort_lengths(cnp.ndarray lengths not None, Py_ssize_t T):
    """A batch's order by length, longest first, for the kernels' ``active``: one counting
    sort (stable: ties keep their order), O(m + T).

    Parameters
    ----------
    lengths : (m,) integer array IN (any integer dtype that casts safely to intp, any
        strides), each in [1, T].

    Returns
    -------
    values : (m,) intp: the lengths (``lengths`` itself when it is C-contiguous, aligned,
        native intp).
    order : (m,) intp: sorted example k is example order[k].
    sorted : (m,) intp: the length of sorted example k (non-increasing).
    active : (T,) C int: how many examples are longer than t, at each step t.
    in_order : bool: the batch already is in that order (order is 0, 1, ..., m - 1).
    """
    if cnp.PyArray_NDIM(lengths) != 1 or not cnp.PyArray_ISINTEGER(lengths):
        raise TypeError("sort_lengths: lengths must be a 1-d integer array")
    if (cnp.PyArray_TYPE(lengths) != cnp.NPY_INTP or not cnp.PyArray_IS_C_CONTIGUOUS(lengths)
            or not cnp.PyArray_ISNOTSWAPPED(lengths) or not cnp.PyArray_ISALIGNED(lengths)):
        lengths = np.ascontiguousarray(lengths.astype(np.intp, casting="safe"))
    cdef tuple sorting = counting_sort(lengths, T)
    if sorting is None:
        raise ValueError(f"sort_lengths: lengths must be in [1, {T}]")
    return (lengths,) + sorting


def sorted_batch(object lengths, cnp.ndarray x not None, list scratch=None,
                 Py_ssize_t n_a=0):
    """The compiled paths' lengths in one call: ``lengths`` sorted (as :func:`sort_lengths`)
    and ``x`` (n_x, m, T), a C-contiguous float32/float64 array, gathered in that order (as
    :func:`permute_steps`) into a work array kept in ``scratch[0]`` (a new one without
    ``scratch``); with ``n_a``, an (n_a, m, T) work array for the kernel's sorted output
    (``scratch[1]``).  When the batch already is in that order, x itself and no work array.

    Returns None unless ``lengths`` is an (m,) integer array (of a type that casts safely to
    intp, any strides and byte order) with every length in [1, T] and x an aligned array in
    native byte order (the validated route then takes the call, and names what is wrong);
    else ``(xs, order, sorted, active, in_order, full, out, values)``, ``full`` True when no
    example ends before T (then nothing is gathered: xs is x, out None), ``out`` the sorted
    output's work array or None, ``values`` the lengths, a C-contiguous intp copy (the
    caller's array may change meanwhile: what was checked is what is used)."""
    cdef int typenum = cnp.PyArray_TYPE(x)
    if (type(lengths) is not np.ndarray or cnp.PyArray_NDIM(x) != 3
            or cnp.PyArray_NDIM(<cnp.ndarray> lengths) != 1
            or (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64)
            or not (cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_ISALIGNED(x)
                    and cnp.PyArray_ISNOTSWAPPED(x))):
        return None
    cdef cnp.ndarray given = <cnp.ndarray> lengths
    cdef Py_ssize_t n_x = x.shape[0], m = x.shape[1], T = x.shape[2], k
    if given.shape[0] != m or m == 0 or not cnp.PyArray_ISINTEGER(given):
        return None
    cdef cnp.npy_intp dims[3]
    dims[0] = m
    cdef cnp.ndarray values = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
    cdef Py_ssize_t *v = <Py_ssize_t *> cnp.PyArray_DATA(values)
    cdef int ltype = cnp.PyArray_TYPE(given)
    cdef const char *src = cnp.PyArray_BYTES(given)
    cdef Py_ssize_t stride = cnp.PyArray_STRIDE(given, 0)
    if (cnp.PyArray_ISNOTSWAPPED(given) and cnp.PyArray_ISALIGNED(given)
            and (ltype == cnp.NPY_INTP or ltype == cnp.NPY_INT)):
        for k in range(m):
            v[k] = ((<const Py_ssize_t *> (src + k * stride))[0] if ltype == cnp.NPY_INTP
                    else (<const int *> (src + k * stride))[0])
    elif np.can_cast(given.dtype, np.intp, "safe"):
        values[...] = given
    else:
        return None
    cdef tuple sorting = counting_sort(values, T)
    if sorting is None:
        return None
    cdef cnp.ndarray order = sorting[0], srt = sorting[1]
    cdef bint in_order = sorting[3]
    cdef bint full = (<const Py_ssize_t *> cnp.PyArray_DATA(srt))[m - 1] == T
    if full or in_order:
        return x, order, srt, sorting[2], in_order, full, None, values
    dims[0], dims[1], dims[2] = n_x, m, T
    cdef cnp.ndarray xs = scratch_array(scratch, 0, 3, dims, typenum)
    cdef cnp.ndarray out = None
    if n_a > 0:
        dims[0] = n_a
        out = scratch_array(scratch, 1, 3, dims, typenum)
    permute_checked(x, xs, <const Py_ssize_t *> cnp.PyArray_DATA(order),
                    <const Py_ssize_t *> cnp.PyArray_DATA(srt), False, False)  # made above
    return xs, order, srt, sorting[2], in_order, full, out, values


def unsort(list seqs not None, list zero_padding not None, cnp.ndarray order not None,
           cnp.ndarray sorted_lengths not None, bint in_order):
    """The kernels' outputs of a batch in order of length (:func:`sorted_batch`) back in the
    caller's: each of ``seqs`` (C-contiguous (rows, m, T) float arrays, or None) into a new
    array (from fastrnn._pool when large), or, when the batch was in order, itself; with
    ``zero_padding[k]``, sequence k's steps past each example's length set to 0 (a head's
    predictions there).  Every argument is checked before anything is written.  Returns the
    list."""
    if cnp.PyArray_NDIM(order) != 1:
        raise ValueError("unsort: order must be 1-d")
    cdef Py_ssize_t n = len(seqs), k, m = order.shape[0], T = -1
    if len(zero_padding) != n:
        raise ValueError("unsort: seqs and zero_padding must be as long")
    # the arguments as checked (the lists may change while Python code runs)
    cdef list checked = list(seqs)
    cdef list zeroed = [bool(z) for z in zero_padding]
    cdef cnp.ndarray seq, dst
    for k in range(n):
        if checked[k] is not None:
            seq = checked[k]
            check(seq, "seqs", check_typenum(seq), True, 3, seq.shape[0], m, seq.shape[2])
            T = seq.shape[2] if T < 0 else min(T, seq.shape[2])
    cdef Py_ssize_t *own = private_sorting("unsort", order, sorted_lengths, m, max(T, 0),
                                           in_order)
    cdef list out = []
    try:
        for k in range(n):
            if checked[k] is None:
                out.append(None)
                continue
            seq = checked[k]
            if in_order:
                if zeroed[k]:
                    permute_checked(seq, seq, own, own + m, True, True)
                out.append(seq)
                continue
            dst = new_array(3, cnp.PyArray_DIMS(seq), cnp.PyArray_TYPE(seq))
            permute_checked(seq, dst, own, own + m, True, zeroed[k])
            out.append(dst)
    finally:
        free(own)
    return out


def zero_past(cnp.ndarray seq not None, cnp.ndarray lengths not None):
    """Set each example's steps past its length to 0, in place: ``seq`` a C-contiguous
    (rows, m, T) float32/float64 array in the caller's order, ``lengths`` (m,) C-contiguous
    intp, each in [0, T] (a head's predictions of a batch with lengths)."""
    cdef int typenum = check_typenum(seq)
    cdef Py_ssize_t rows = seq.shape[0], m = seq.shape[1], T = seq.shape[2], r, k
    check(seq, "seq", typenum, True, 3, rows, m, T)
    cdef Py_ssize_t *own = private_sorting("zero_past", None, lengths, m, T, True)
    cdef const Py_ssize_t *L = own + m
    cdef char *data = cnp.PyArray_BYTES(seq)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(seq)
    with nogil:
        for r in range(rows):
            for k in range(m):
                memset(data + ((r * m + k) * T + L[k]) * item, 0, (T - L[k]) * item)
    free(own)
    return seq


cdef Py_ssize_t *private_sorting(str fn, cnp.ndarray order, cnp.ndarray lengths,
                                 Py_ssize_t m, Py_ssize_t T, bint identity) except NULL:
    # Checked copies of a batch's order (a permutation of [0, m), the identity when
    # ``identity``; None: the identity) and lengths (each in [0, T]), which the loops then
    # read (some without the GIL): what was checked is what is used, whatever happens to the
    # caller's arrays meanwhile.  One malloc'd block, the order then the lengths (m each):
    # the caller frees it.
    check_index_array(lengths, fn, "lengths", m)
    if order is not None:
        check_index_array(order, fn, "order", m)
    cdef const Py_ssize_t *o = NULL
    cdef const Py_ssize_t *L = <const Py_ssize_t *> cnp.PyArray_DATA(lengths)
    if order is not None:
        o = <const Py_ssize_t *> cnp.PyArray_DATA(order)
    # the order, the lengths, then a flag per example: seen in the order yet?
    if m > (PY_SSIZE_T_MAX - 1) // (2 * <Py_ssize_t> sizeof(Py_ssize_t) + 1):
        raise MemoryError()
    cdef Py_ssize_t *own = <Py_ssize_t *> malloc(2 * m * sizeof(Py_ssize_t) + m + 1)
    if own == NULL:
        raise MemoryError()
    cdef char *seen = <char *> (own + 2 * m)
    memset(seen, 0, m + 1)
    cdef Py_ssize_t q, oq
    cdef bint ok = True
    for q in range(m):
        own[m + q] = L[q]
        ok = ok and 0 <= own[m + q] <= T
        oq = q if o == NULL else o[q]
        own[q] = oq
        ok = ok and 0 <= oq < m and not seen[oq] and (oq == q or not identity)
        if ok:
            seen[oq] = 1
    if not ok:
        free(own)
        raise ValueError(f"{fn}: order must be a permutation of [0, {m})"
                         f"{' (the identity: a batch in order)' if identity else ''} and "
                         f"lengths in [0, {T}]")
    return own


cdef void permute_steps_core(const floating *src, floating *dst, Py_ssize_t rows,
                             Py_ssize_t m, Py_ssize_t T, const Py_ssize_t *order,
                             const Py_ssize_t *lengths, bint scatter,
                             bint zero_padding, bint large) noexcept nogil:
    # Row r, sorted example k: the T steps of example order[k].  gather: dst[r, k]
    # <- src[r, order[k]]; scatter: the inverse, dst[r, order[k]] <- src[r, k].
    # ``zero_padding``: the steps past lengths[k] are set to 0 instead of copied; src may then
    # be dst (order the identity: only the zeros are written).
    # A ``large`` array (PERMUTE_LARGE_BYTES or more) goes by memcpy, and within a row its
    # permuted side is visited out of order, which the hardware prefetcher cannot follow:
    # the next row's k-th run is prefetched with the k-th run of this one (measured on a 13
    # MB array: 2-3x faster, as fast as a plain copy).  A smaller one, in cache, is copied in
    # plain loops (a `lesson` batch, 10 examples of 4 steps: unsort took half as long).
    cdef Py_ssize_t r, k, L, line, i
    cdef Py_ssize_t per_line = 64 // sizeof(floating)
    cdef const floating *s
    cdef floating *d
    for r in range(rows):
        for k in range(m):
            line = 0
            while large and r + 1 < rows and line < T:
                if scatter:
                    __builtin_prefetch(dst + ((r + 1) * m + k) * T + line, 1)
                else:
                    __builtin_prefetch(src + ((r + 1) * m + k) * T + line, 0)
                line += per_line
            if scatter:
                s = src + (r * m + k) * T
                d = dst + (r * m + order[k]) * T
            else:
                s = src + (r * m + order[k]) * T
                d = dst + (r * m + k) * T
            L = lengths[k] if zero_padding else T
            if large:
                if d != s:
                    memcpy(d, s, L * sizeof(floating))
                if L < T:
                    memset(d + L, 0, (T - L) * sizeof(floating))
            else:
                if d != s:
                    for i in range(L):
                        d[i] = s[i]
                for i in range(L, T):
                    d[i] = 0


def permute_steps(cnp.ndarray src not None, cnp.ndarray dst not None,
                  cnp.ndarray order not None, cnp.ndarray lengths not None, bint scatter,
                  bint zero_padding=False):
    """Put a (rows, m, T) sequence in the order of a batch sorted by length (``scatter``
    False: ``dst[:, k] = src[:, order[k]]``) or back (True: ``dst[:, order[k]] = src[:, k]``),
    the GIL released from ``PERMUTE_LARGE`` bytes on.  With ``zero_padding`` the steps past
    ``lengths[k]`` of sorted example k become 0 (then ``dst`` may be ``src`` where ``order``
    is the identity: only the zeros are written).

    Parameters
    ----------
    src, dst : (rows, m, T) C-contiguous float32/float64 arrays of one dtype (IN, OUT).
    order : (m,) intp IN, each in [0, m): sorted example k is example order[k].
    lengths : (m,) intp IN, each in [0, T]: the length of sorted example k.
    """
    permute_arrays(src, dst, order, lengths, scatter, zero_padding)


cdef int permute_arrays(cnp.ndarray src, cnp.ndarray dst, cnp.ndarray order,
                        cnp.ndarray lengths, bint scatter, bint zero_padding) except -1:
    # permute_steps, its arguments checked.
    cdef int typenum = cnp.PyArray_TYPE(src)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"permute_steps: src must be float32 or float64, got {src.dtype}")
    if cnp.PyArray_NDIM(src) != 3:
        raise ValueError("permute_steps: src must be 3-d (rows, m, T)")
    cdef Py_ssize_t rows = src.shape[0], m = src.shape[1], T = src.shape[2], k
    check(src, "src", typenum, False, 3, rows, m, T)
    check(dst, "dst", typenum, True, 3, rows, m, T)
    check_index_array(order, "permute_steps", "order", m)
    check_index_array(lengths, "permute_steps", "lengths", m)
    # this call's own copies (read without the GIL), checked
    cdef Py_ssize_t *own = <Py_ssize_t *> malloc(max(2 * m, 1) * sizeof(Py_ssize_t))
    if own == NULL:
        raise MemoryError()
    memcpy(own, cnp.PyArray_DATA(order), m * sizeof(Py_ssize_t))
    memcpy(own + m, cnp.PyArray_DATA(lengths), m * sizeof(Py_ssize_t))
    cdef bint same = cnp.PyArray_DATA(src) == cnp.PyArray_DATA(dst)
    try:
        for k in range(m):
            if not (0 <= own[k] < m and 0 <= own[m + k] <= T):
                raise ValueError(f"permute_steps: order must be in [0, {m}) and lengths in "
                                 f"[0, {T}]")
            if same and (own[k] != k or not zero_padding):
                raise ValueError("permute_steps: dst may be src only to zero the padding of "
                                 "a batch in order")
        permute_checked(src, dst, own, own + m, scatter, zero_padding)
    finally:
        free(own)
    return 0


cdef int check_index_array(cnp.ndarray arr, str fn, str name, Py_ssize_t m) except -1:
    if (cnp.PyArray_TYPE(arr) != cnp.NPY_INTP or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
            or not cnp.PyArray_ISALIGNED(arr) or not cnp.PyArray_ISNOTSWAPPED(arr)
            or cnp.PyArray_NDIM(arr) != 1 or arr.shape[0] != m):
        raise ValueError(f"{fn}: {name} must be a C-contiguous intp array of shape ({m},)")
    return 0


cdef void permute_checked(cnp.ndarray src, cnp.ndarray dst, const Py_ssize_t *o,
                          const Py_ssize_t *L, bint scatter, bint zero_padding) noexcept:
    # permute_steps_core on arrays that permute_arrays would accept; o and L (the order and
    # the lengths, m each) this call's own (private_sorting, counting_sort): the GIL is
    # released for a large array.
    cdef Py_ssize_t rows = src.shape[0], m = src.shape[1], T = src.shape[2]
    cdef bint single = cnp.PyArray_TYPE(src) == cnp.NPY_FLOAT32
    if T == 0:
        return
    cdef bint large = rows * m * T * cnp.PyArray_ITEMSIZE(src) >= PERMUTE_LARGE_BYTES
    cdef const void *s = cnp.PyArray_DATA(src)
    cdef void *d = cnp.PyArray_DATA(dst)
    if large:
        with nogil:
            permute_steps_typed(single, s, d, rows, m, T, o, L, scatter, zero_padding, True)
    else:
        permute_steps_typed(single, s, d, rows, m, T, o, L, scatter, zero_padding, False)


cdef inline void permute_steps_typed(bint single, const void *src, void *dst, Py_ssize_t rows,
                                     Py_ssize_t m, Py_ssize_t T, const Py_ssize_t *o,
                                     const Py_ssize_t *L, bint scatter, bint zero_padding,
                                     bint large) noexcept nogil:
    if single:
        permute_steps_core[float](<const float *> src, <float *> dst, rows, m, T, o, L,
                                  scatter, zero_padding, large)
    else:
        permute_steps_core[double](<const double *> src, <double *> dst, rows, m, T, o, L,
                                   scatter, zero_padding, large)


_LSTM_GATE_KEYS = (("Wf", "bf"), ("Wi", "bi"), ("Wo", "bo"), ("Wc", "bc"))  # GATES order


def try_lstm(object x, object a0, object c0, object parameters, bint sequence,
             int small_max):
    """The whole drop-in LSTM call when every argument is already what the kernel takes
    (see :func:`try_rnn`); ``c0`` None means zeros.  A sequence merges the four gates into
    one block (one recurrent product per step); a single step uses them in place.  Returns
    ``(a, y, c, z, s)`` (2-d a, y and c for a single step), or None."""
    if type(parameters) is not dict:
        return None
    cdef dict p = <dict> parameters
    cdef cnp.ndarray xa = exact_input(x, sequence)
    if xa is None:
        return None
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t n_x = xa.shape[0], m = xa.shape[1], T = xa.shape[2] if sequence else 1
    cdef cnp.ndarray wy = given_head(p, "Wy", typenum)
    if wy is None:
        return None
    cdef Py_ssize_t n_y = wy.shape[0], n_a = wy.shape[1], k
    if not sizes_fit(n_x, 4 * n_a, n_a, n_y, m, T):
        return None
    cdef cnp.ndarray by = exact(p.get("by"), typenum, 2, n_y, 1)
    cdef cnp.ndarray a0a = exact(a0, typenum, 2, n_a, m)
    if by is None or a0a is None:
        return None
    cdef list gate_arrays = []
    cdef cnp.ndarray arr
    for wkey, bkey in _LSTM_GATE_KEYS:
        arr = exact(p.get(wkey), typenum, 2, n_a, n_a + n_x)
        if arr is None:
            return None
        gate_arrays.append(arr)
        arr = exact(p.get(bkey), typenum, 2, n_a, 1)
        if arr is None:
            return None
        gate_arrays.append(arr)
    cdef cnp.ndarray c0a = state_or_zeros(c0, typenum, n_a, m)
    if c0a is None or has_subnormal(xa) or has_subnormal(a0a) or has_subnormal(c0a):
        return None
    cdef char *wp[4]
    cdef char *bp[4]
    cdef cnp.npy_intp dims[2]
    cdef cnp.ndarray wblock, bblock
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(xa), wbytes = n_a * (n_a + n_x) * item
    cdef bint unpacked  # the gates used in place, one fused product per step
    cdef Py_ssize_t npanel = lstm_plan(typenum, n_a, n_x, m, T, small_max, True, &unpacked)
    if sequence and not npanel and not unpacked:
        # Pack once per call: the gates as consecutive row blocks of one array (with the
        # panel GEMM, the gates are packed into the panels instead).
        dims[0], dims[1] = 4 * n_a, n_a + n_x
        wblock = cnp.PyArray_EMPTY(2, dims, typenum, 0)
        dims[0] = 4 * n_a
        bblock = cnp.PyArray_EMPTY(1, dims, typenum, 0)
        for k in range(4):
            wp[k] = cnp.PyArray_BYTES(wblock) + k * wbytes
            bp[k] = cnp.PyArray_BYTES(bblock) + k * n_a * item
            memcpy(wp[k], cnp.PyArray_DATA(<cnp.ndarray> gate_arrays[2 * k]), wbytes)
            memcpy(bp[k], cnp.PyArray_DATA(<cnp.ndarray> gate_arrays[2 * k + 1]), n_a * item)
    else:
        for k in range(4):
            wp[k] = cnp.PyArray_BYTES(<cnp.ndarray> gate_arrays[2 * k])
            bp[k] = cnp.PyArray_BYTES(<cnp.ndarray> gate_arrays[2 * k + 1])
    return lstm_call(xa, a0a, c0a, wp, bp, wy, cnp.PyArray_BYTES(by), sequence, small_max,
                     npanel, None, True, NULL, 1, None, False, None, unpacked)


def try_packed_lstm(object x, object a0, object c0, cnp.ndarray w not None,
                    cnp.ndarray b not None, cnp.ndarray wy not None, cnp.ndarray by not None,
                    bint sequence, int small_max, list scratch=None, bint caches=True,
                    cnp.ndarray active=None, Py_ssize_t n_threads=1, object runner=None,
                    double min_threaded_work=0, bint reverse=False, cnp.ndarray out=None):
    """:func:`try_lstm` for a packed model (fastrnn.LSTM): ``w`` (4n_a, n_a + n_x) and ``b``
    (4n_a,) the merged gate block, already checked and contiguous; ``a0``/``c0`` None mean
    zeros; ``scratch`` as for :func:`try_packed_rnn`.  Returns ``(a, y, c, z, s)``, z and s
    being scratch memory (the backward's inputs), or None.  ``caches=False`` (inference):
    z and s may be None, the kernel then keeps one step of gates and a few of states.
    ``active`` as for :func:`lstm_forward`.  ``n_threads`` > 1 (without caches): the batch is
    split into that many slices (fewer when m is smaller, one when the call has fewer than
    ``min_threaded_work`` multiply-adds) run by ``runner(run, n)``, which calls run(k) for
    every k in range(n) on its threads; returns None when this path cannot split the call
    (then the caller's own threaded route runs it).  ``reverse`` (without ``active``) and
    ``out`` as for :func:`try_packed_rnn`."""
    cdef int typenum = check_packed(wy, by, scratch)
    cdef Py_ssize_t n_a = wy.shape[1], n_x, k
    if cnp.PyArray_NDIM(w) != 2 or w.shape[1] < n_a:
        raise ValueError(f"packed LSTM block w must be (4n_a, n_a + n_x) with n_a = {n_a}, got "
                         f"shape {(<object> w).shape}")
    n_x = w.shape[1] - n_a
    check(w, "w", typenum, False, 2, 4 * n_a, n_a + n_x)
    check(b, "b", typenum, False, 1, 4 * n_a)
    cdef cnp.ndarray xa = exact_input(x, sequence)
    if xa is None or cnp.PyArray_TYPE(xa) != typenum or xa.shape[0] != n_x:
        return None
    cdef Py_ssize_t m = xa.shape[1], T = xa.shape[2] if sequence else 1
    if not sizes_fit(n_x, 4 * n_a, n_a, wy.shape[0], m, T):
        return None
    cdef cnp.ndarray a0a = state_or_zeros(a0, typenum, n_a, m)
    cdef cnp.ndarray c0a = state_or_zeros(c0, typenum, n_a, m)
    if (a0a is None or c0a is None or has_subnormal(xa) or has_subnormal(a0a)
            or has_subnormal(c0a)):
        return None
    cdef char *wp[4]
    cdef char *bp[4]
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(xa)
    for k in range(4):
        wp[k] = cnp.PyArray_BYTES(w) + k * n_a * (n_a + n_x) * item
        bp[k] = cnp.PyArray_BYTES(b) + k * n_a * item
    check_active(active, T, m)
    check_out(out, sequence, typenum, n_a, m, T)
    cdef Py_ssize_t npanel = lstm_panel_elems(typenum, n_a, n_x, m, T, small_max)
    cdef Py_ssize_t n_slices = min(n_threads, m)
    if m * T * n_a * (4.0 * (n_a + n_x) + wy.shape[0]) < min_threaded_work:
        n_slices = 1
    if n_slices > 1 and (caches or npanel == 0 or scratch is None or runner is None
                         or not lstm_step_x(typenum, m, n_a, n_x, True)):
        return None
    return lstm_call(xa, a0a, c0a, wp, bp, wy, cnp.PyArray_BYTES(by), sequence, small_max,
                     npanel, scratch, caches,
                     NULL if active is None else <const int *> cnp.PyArray_DATA(active),
                     n_slices, runner, reverse, out)


# ------------------------------------------------------------------ test and report hooks

def count_subnormal(cnp.ndarray x not None):
    """Number of subnormal values in a C-contiguous float32/float64 array."""
    if not cnp.PyArray_IS_C_CONTIGUOUS(x):
        raise ValueError("count_subnormal needs a C-contiguous array")
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum == cnp.NPY_FLOAT32:
        return fr_count_subnormal_f(<float *> cnp.PyArray_DATA(x), cnp.PyArray_SIZE(x))
    if typenum == cnp.NPY_FLOAT64:
        return fr_count_subnormal_d(<double *> cnp.PyArray_DATA(x), cnp.PyArray_SIZE(x))
    raise TypeError(f"count_subnormal needs float32 or float64, got {x.dtype}")


def madd_rounds(dtype, Py_ssize_t n):
    """Run ``n`` rounds of independent multiply-adds of ``dtype`` (float32 or float64) held
    in registers, at the active SIMD level, with the GIL released: the loop whose time gives
    one core's peak multiply-add rate (``fastrnn bench``).  Returns the number of
    multiply-adds done."""
    kind = None if dtype is None else np.dtype(dtype)   # (np.dtype(None) is float64)
    if kind != np.float32 and kind != np.float64:
        raise TypeError(f"madd_rounds needs float32 or float64, got {kind}")
    if n < 0:
        raise ValueError(f"madd_rounds needs n >= 0 rounds, got {n}")
    cdef bint f32 = kind == np.float32
    cdef Py_ssize_t per_round = fr_madd_per_round_f() if f32 else fr_madd_per_round_d()
    cdef double checksum
    with nogil:
        checksum = fr_madd_rounds_f(n) if f32 else fr_madd_rounds_d(n)
    if not checksum == checksum:   # every chain stays near 1: never NaN
        raise RuntimeError("madd_rounds: the multiply-add chains diverged")
    return <object> n * per_round   # a Python int: no overflow


def simd_level():
    """The instruction set the dispatched kernels run with (the active level), in words."""
    return fr_simd_level().decode()


#: Names of the SIMD levels, lowest first (FASTRNN_SIMD takes one of them).
SIMD_LEVELS = ("sse2", "avx2", "avx512")


def simd():
    """The active SIMD level: one of ``SIMD_LEVELS`` (``"sse2"`` also where there is no
    run-time dispatch at all)."""
    return SIMD_LEVELS[fr_active_isa()]


def simd_available():
    """The SIMD levels this CPU (and this build) can run, lowest first."""
    return SIMD_LEVELS[:fr_cpu_isa() + 1]


def set_simd(str level):
    """Make ``level`` (one of ``simd_available()``) the active SIMD level of every dispatched
    kernel: the activations and element-wise passes, the small-batch kernel and the panel
    GEMM.  Returns the previous level.  For tests and benchmarks: not while kernels run."""
    if level not in SIMD_LEVELS:
        raise ValueError(f"SIMD level must be one of {SIMD_LEVELS}, got {level!r}")
    previous = fr_set_isa(SIMD_LEVELS.index(level))
    if previous < 0:
        raise ValueError(f"SIMD level {level!r} is not supported by this CPU or build "
                         f"(available: {', '.join(simd_available())})")
    return SIMD_LEVELS[previous]


def _simd_from_environment():
    # FASTRNN_SIMD=avx512|avx2|sse2 forces a level (case-insensitive; empty or "auto": the
    # CPU's best); anything else, or a level the CPU lacks, warns and keeps the best.
    import os
    import warnings
    raw = os.environ.get("FASTRNN_SIMD", "")
    value = raw.strip().lower()
    if value in ("", "auto"):
        return
    if value not in SIMD_LEVELS:
        warnings.warn(f"FASTRNN_SIMD={raw!r} is not one of auto, {', '.join(SIMD_LEVELS)}; "
                      f"using {simd()}", RuntimeWarning, stacklevel=2)
        return
    if fr_set_isa(SIMD_LEVELS.index(value)) < 0:
        warnings.warn(f"FASTRNN_SIMD={raw!r}: this CPU or build only has "
                      f"{', '.join(simd_available())}; using {simd()}", RuntimeWarning,
                      stacklevel=2)


_simd_from_environment()


def activation(str name, cnp.ndarray v):
    """Apply the kernels' own ``exp``, ``sigmoid`` or ``tanh`` to a copy of v, or
    ``softmax`` to each column of a copy of the 2-D v (tests)."""
    cdef cnp.ndarray out = np.array(v, order="C", copy=True)
    if out.dtype != np.float32 and out.dtype != np.float64:
        raise TypeError("activation needs float32 or float64")
    cdef Py_ssize_t n = out.size
    if name not in ("exp", "sigmoid", "tanh", "softmax"):
        raise ValueError(f"unknown activation {name!r}")
    cdef cnp.ndarray buf
    if name != "softmax":  # in place between guards
        buf = guarded(out.ravel(), out.dtype, n)
        if out.dtype == np.float32:
            activation_inplace(name, <float *> inside(buf), n)
        else:
            activation_inplace(name, <double *> inside(buf), n)
        return unguard([buf])[0].reshape((<object> out).shape)
    if out.ndim != 2:
        raise ValueError(f"softmax needs a 2-D array, got {out.ndim} dimensions")
    if out.dtype == np.float32:
        v_softmax_cols(<float *> cnp.PyArray_DATA(out), out.shape[0], out.shape[1],
                       out.shape[1])
    else:
        v_softmax_cols(<double *> cnp.PyArray_DATA(out), out.shape[0], out.shape[1],
                       out.shape[1])
    return out


cdef void activation_inplace(str name, floating *x, Py_ssize_t n):
    if floating is float:
        if name == "exp":
            fr_exp_inplace_f(x, n)
        elif name == "sigmoid":
            fr_sigmoid_inplace_f(x, n)
        else:
            fr_tanh_inplace_f(x, n)
    else:
        if name == "exp":
            fr_exp_inplace_d(x, n)
        elif name == "sigmoid":
            fr_sigmoid_inplace_d(x, n)
        else:
            fr_tanh_inplace_d(x, n)


# ------------------------------------------------------------------ GRU

cdef extern from "_vmath.h" nogil:
    void fr_gru_pointwise_d(double *g, const double *hg, const double *h_prev, double *h,
                            Py_ssize_t n)
    void fr_gru_pointwise_f(float *g, const float *hg, const float *h_prev, float *h,
                            Py_ssize_t n)
    void fr_gru_gates_rh_d(double *g, const double *hg, const double *h_prev, double *rh,
                           Py_ssize_t n)
    void fr_gru_gates_rh_f(float *g, const float *hg, const float *h_prev, float *rh,
                           Py_ssize_t n)
    void fr_gru_candidate_d(double *g, const double *hg, const double *h_prev, double *h,
                            Py_ssize_t n)
    void fr_gru_candidate_f(float *g, const float *hg, const float *h_prev, float *h,
                            Py_ssize_t n)


cdef inline void v_gru_pointwise(floating *g, const floating *hg, const floating *h_prev,
                                 floating *h, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_gru_pointwise_f(g, hg, h_prev, h, n)
    else:
        fr_gru_pointwise_d(g, hg, h_prev, h, n)


cdef inline void v_gru_gates_rh(floating *g, const floating *hg, const floating *h_prev,
                                floating *rh, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_gru_gates_rh_f(g, hg, h_prev, rh, n)
    else:
        fr_gru_gates_rh_d(g, hg, h_prev, rh, n)


cdef inline void v_gru_candidate(floating *g, const floating *hg, const floating *h_prev,
                                 floating *h, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_gru_candidate_f(g, hg, h_prev, h, n)
    else:
        fr_gru_candidate_d(g, hg, h_prev, h, n)


# Elements of sentinel on each side of the arrays the test hooks hand to a kernel, and the
# sentinel.
cdef enum:
    HOOK_GUARD = 32
HOOK_SENTINEL = 7.0


cdef cnp.ndarray guarded(object values, object dtype, Py_ssize_t n):
    """n values (or sentinels) between HOOK_GUARD sentinels on each side."""
    cdef cnp.ndarray buf = np.full(n + 2 * HOOK_GUARD, HOOK_SENTINEL, dtype=dtype)
    if values is not None:
        buf[HOOK_GUARD:HOOK_GUARD + n] = values
    return buf


cdef void *inside(cnp.ndarray buf):
    return <char *> cnp.PyArray_DATA(buf) + HOOK_GUARD * cnp.PyArray_ITEMSIZE(buf)


cdef object unguard(list bufs):
    """The middles of bufs; raises if a kernel wrote into a guard."""
    for buf in bufs:
        if not (np.all(buf[:HOOK_GUARD] == HOOK_SENTINEL)
                and np.all(buf[-HOOK_GUARD:] == HOOK_SENTINEL)):
            raise RuntimeError("a kernel wrote outside its array")
    return [buf[HOOK_GUARD:-HOOK_GUARD] for buf in bufs]


cdef Py_ssize_t cell_step(int kind, floating *g, const floating *b, const floating *hp,
                          floating *c, floating *out, Py_ssize_t n) noexcept nogil:
    if kind == 0:
        return v_tanh_state(g, n)
    if kind == 1:
        return v_lstm_pointwise(g, b, c, out, n)
    if kind == 2:
        v_gru_pointwise(g, b, hp, out, n)
    elif kind == 3:
        v_gru_gates_rh(g, b, hp, out, n)
    else:
        v_gru_candidate(g, b, hp, out, n)
    return 0


def cell_pointwise(str kind, object g, object other=None, object h_prev=None):
    """One example's element-wise step of a cell, on copies between guards (tests; raises
    RuntimeError if the kernel wrote outside its arrays).

    ``"rnn"``: g holds n pre-activations; returns (tanh(g), how many are subnormal).
    ``"lstm"``: g holds the 4n pre-activations [f, i, o, cct], other is c_prev (n); returns
    (activated gates, c, h, how many of c and h are subnormal).  ``"gru"``, ``"gru_rh"``,
    ``"gru_candidate"``: g and other (hg) hold 3n values [r, z, n], h_prev n; returns
    (activated gates, h or r * h_prev).
    """
    kinds = {"rnn": (0, 1, 0), "lstm": (1, 4, 1), "gru": (2, 3, 3), "gru_rh": (3, 3, 3),
             "gru_candidate": (4, 3, 3)}
    if kind not in kinds:
        raise ValueError(f"unknown kind {kind!r}")
    cdef int code
    code, parts, other_parts = kinds[kind]
    ga = np.asarray(g)
    if ga.dtype != np.float32 and ga.dtype != np.float64:
        raise TypeError("cell_pointwise needs float32 or float64")
    if ga.ndim != 1 or ga.shape[0] % parts:
        raise ValueError(f"g must hold {parts} * n values, got shape {ga.shape}")
    cdef Py_ssize_t n = ga.shape[0] // parts
    if other_parts and (other is None or np.shape(other) != (other_parts * n,)):
        raise ValueError(f"other must have shape ({other_parts * n},)")
    if code >= 2 and (h_prev is None or np.shape(h_prev) != (n,)):
        raise ValueError(f"h_prev must have shape ({n},)")
    bufs = [guarded(ga, ga.dtype, parts * n), guarded(other, ga.dtype, other_parts * n),
            guarded(h_prev, ga.dtype, n if code >= 2 else 0), guarded(None, ga.dtype, n),
            guarded(None, ga.dtype, n)]
    cdef Py_ssize_t count
    if ga.dtype == np.float32:
        count = cell_step(code, <float *> inside(bufs[0]), <float *> inside(bufs[1]),
                          <float *> inside(bufs[2]), <float *> inside(bufs[3]),
                          <float *> inside(bufs[4]), n)
    else:
        count = cell_step(code, <double *> inside(bufs[0]), <double *> inside(bufs[1]),
                          <double *> inside(bufs[2]), <double *> inside(bufs[3]),
                          <double *> inside(bufs[4]), n)
    gates, _, _, c, out = unguard(bufs)
    if kind == "rnn":
        return gates, count
    if kind == "lstm":
        return gates, c, out, count
    return gates, out


cdef inline void gru_states_out(const floating *s, Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t m,
                                Py_ssize_t n_a, Py_ssize_t T, floating *a, Py_ssize_t ld_a,
                                int n_y, const floating *wy, floating *y, int ld_y,
                                floating *pan, bint line_out) noexcept nogil:
    # a[:, j, t0:t1] = the states of steps t0:t1 of every column j, transposed from s (m, T,
    # n_a) while they are still in cache (a block of at most state_block steps; not with
    # ``line_out``: a went out line by line); with pan (the panel GEMM), y[:, j, t0:t1] +=
    # Wy @ a[:, j, t0:t1] likewise.
    cdef Py_ssize_t j
    if line_out:
        pass
    elif t1 - t0 == T:
        # the whole sequence: every column's steps are consecutive in a and in s (one
        # transpose, whose destination rows are filled whole lines at a time)
        transpose(s, m * T, n_a, n_a, a, ld_a)
    else:
        for j in range(m):
            transpose(s + (j * T + t0) * n_a, t1 - t0, n_a, n_a, a + j * T + t0, ld_a)
    if pan != NULL:
        output_block(n_y, n_a, m, t1 - t0, s + t0 * n_a, T * n_a, n_a, wy, y + t0, T, ld_y,
                     pan)


cdef inline bint consecutive(const floating **w, int nb, Py_ssize_t size) noexcept nogil:
    # Are the nb blocks of size elements at w[k] consecutive parts of one array?
    cdef int k
    for k in range(1, nb):
        if w[k] != w[0] + k * size:
            return False
    return True


cdef void blocks_acc(int nb, int n_a, int m, const floating **w, const floating *h, int ldh,
                     floating *z, int ldz, int small_max) noexcept nogil:
    # z (nb*n_a, m) += [w[0]; ...; w[nb-1]] @ H (n_a, m), each w[k] (n_a, n_a) row-major: one
    # product when the blocks are consecutive (a model's stacked gates), else one per block.
    cdef int k
    if consecutive(w, nb, <Py_ssize_t> n_a * n_a):
        product_acc(nb * n_a, m, n_a, w[0], n_a, NULL, h, ldh, z, ldz, small_max)
    else:
        for k in range(nb):
            product_acc(n_a, m, n_a, w[k], n_a, NULL, h, ldh, z + k * n_a, ldz, small_max)


cdef void gru_core(
        int n_x, int n_a, int n_y, int m, int T,
        const floating *x, int ldx,          # IN   x   (n_x, m*T), row stride ldx
        const floating *a0, int lda0,        # IN   a0  (n_a, m),   row stride lda0
        const floating **wx,                 # IN   W_x: Wrx, Wzx, Wnx (n_a, n_x) each
        const floating **wh,                 # IN   W_a: Wra, Wza, Wna (n_a, n_a) each
        const floating *bx,                  # IN   b_x (3n_a,): [brx; bzx; bnx]
        const floating *bh,                  # IN   b_a (3n_a,): [bra; bza; bna]
        const floating *wy,                  # IN   Wy  (n_y, n_a); n_y = 0: no output layer
        const floating *by,                  # IN   by  (n_y,)
        floating *a, int ld_a,               # OUT  a   (n_a, m*T), row stride ld_a
        floating *y, int ld_y,               # OUT  y   (n_y, m*T), row stride ld_y
        floating *z,                         # OUT  z   (m, T, 3n_a): activated gates r, z, n
        floating *s,                         # OUT  s   (m, T, n_a): the hidden states
        floating *h,                         # WORK     (m, n_a): a0 transposed
        floating *hg,                        # WORK     (m, 3n_a): the recurrent terms
        floating *rh,                        # WORK     (m, n_a): r * h_prev (reset before)
        floating *xt,                        # WORK     (m*T, n_x): when m*T <= SMALL_COLS or
                                             #          with the panel GEMM
        floating *pan,                       # WORK     (OUTPUT_ROWS_MAX, n_a): the output
                                             #          layer's panel (with the panel GEMM)
        floating *panel,                     # WORK     W_a then W_x packed for the panel
                                             #          GEMM (gru_panel_elems), or NULL
        bint pack,                           # IN       pack them into panel (else packed)
        bint reset_after,                    # IN       n = tanh(.. + r * (W_na h + b_na)),
                                             #          else tanh(.. + W_na (r * h) + b_na)
        const int *active,                   # IN   (T,) or NULL: at step t only the first
        Py_ssize_t act0,                     #      active[t] - act0 columns run (see below)
        int small_max,
        bint reverse,                        # IN   run the steps from T - 1 down to 0 (with
                                             #      active: each example from its own last
                                             #      step), outputs in place
        bint unpacked,                       # IN   without the panel: the input projection
                                             #      by the small-batch kernel too (see
                                             #      unpacked_steps; xt then holds X^T)
        bint step_x,                         # IN   with the panel: the input projection
                                             #      made per step, into the step's gates
        bint ring) noexcept nogil:           # IN   with step_x: z is one step's gates
                                             #      (m, 3n_a) (inference: no caches)
    # The input projection of all three gates is hoisted out of the loop (one GEMM, the input
    # biases folded in; with ``step_x``, one product per step instead); each step makes one
    # recurrent product for all three gates into hg (the recurrent biases folded in: the
    # candidate's must stay inside r * (...)) and one fused element-wise pass. With the reset
    # gate before the product (reset_after False), the candidate's product needs this step's
    # r: one product for r and z, a pass, one product W_na (r * h_prev), a pass (panel is then
    # NULL).
    # Variable lengths: with the batch sorted by length, longest first, ``active[t]`` (non-
    # increasing) examples of the whole batch are still running at step t; this slice starts
    # at example act0.  The others' recurrent products and passes are skipped and their
    # states set to 0.
    cdef int G = 3 * n_a
    cdef Py_ssize_t mt
    cdef int mT = m * T
    cdef int ldz = G if ring else T * G
    cdef int lds = T * n_a
    cdef int ldh
    cdef Py_ssize_t q, t, j, i, lo, mp
    cdef const floating *h_prev
    cdef floating *zt
    cdef floating *st
    cdef int flush_h = -1
    cdef int SB = state_block(sizeof(floating))
    cdef floating *out_pan = pan if panel != NULL and mT > SMALL_COLS and n_y > 0 else NULL
    # a out line by line as the steps run, else in blocks of state_block steps
    cdef bint line_out = by_lines(T, SB, ld_a, ld_a, n_a * <Py_ssize_t> mT * sizeof(floating),
                                  sizeof(floating))

    cdef floating *panel_x = NULL
    if panel != NULL:
        # W_a and W_x packed (a model keeps them between calls); Z = b_x + W_x @ X^T for
        # every column at once from the second block (with ``step_x``, one step's columns per
        # step, written while in cache), HG_t = b_a + W_a @ A_{t-1} per step from the first.
        panel_x = packed_projection(G, n_a, n_x, m, T, wh, wx, panel, pack, x, ldx, xt, z,
                                    bx, not step_x, active, act0)
    else:
        fill_columns(z, bx, G, mT)
        if consecutive(wx, 3, n_a * n_x):
            input_projection(G, mT, n_x, wx[0], n_x, x, ldx, z, G, xt, unpacked)
        else:
            for i in range(3):
                input_projection(n_a, mT, n_x, wx[i], n_x, x, ldx, z + i * n_a, G, xt,
                                 unpacked)

    for j in range(m):
        for i in range(n_a):
            h[j * n_a + i] = a0[i * lda0 + j]
    fill_rows(y, by, n_y, mT, ld_y)

    for q in range(T):  # the q-th step run: t = q, or T - 1 - q in reverse
        t = T - 1 - q if reverse else q
        if q and q % SB == 0:  # the block of the SB steps run before this one
            lo = t + 1 if reverse else q - SB
            gru_states_out(s, lo, lo + SB, m, n_a, T, a, ld_a, n_y, wy, y, ld_y, out_pan,
                           line_out)
        zt = z if ring else z + t * G
        st = s + t * n_a
        if q == 0:
            h_prev, ldh = h, n_a
        else:
            h_prev, ldh = (st + n_a if reverse else st - n_a), lds
        mt = mp = m
        if active != NULL:
            mt = running_states(active, t, act0, m, st, lds, n_a)
            if mt == 0:
                if line_out:
                    states_out(s, lds, T, n_a, True, q, t, T, reverse, n_a, m, a, ld_a)
                continue
            if reverse and q > 0:
                mp = joining_states(active, t, act0, m, mt, st + n_a, lds, h, n_a)
        if step_x:  # Z_t (3n_a, mt) = W_x (3n_a, n_x) @ X_t (n_x, mt) + b_x
            if n_x > 0:
                panel_acc(G, mt, n_x, panel_x, xt + t * n_x, T * n_x, zt, ldz, bx)
            else:
                for j in range(mt):
                    memcpy(zt + j * ldz, bx, G * sizeof(floating))
        # HG (3n_a, mt) = W_a (3n_a, n_a) @ A_{t-1} (n_a, mt) + b_a
        if panel != NULL:
            panel_acc(G, mt, n_a, panel, h_prev, ldh, hg, G, bh, 0, -1, step_descending(q))
        else:
            fill_columns(hg, bh, G, mt)
        if reset_after:
            if panel == NULL:
                blocks_acc(3, n_a, mt, wh, h_prev, ldh, hg, G, small_max)
            for j in range(mt):
                v_gru_pointwise(zt + j * ldz, hg + j * G, h_prev + j * ldh, st + j * lds,
                                n_a)
                flush_if_subnormal(st + j * lds, n_a, &flush_h, wh, 3, n_a, n_a, wy, n_y, n_a)
        else:
            blocks_acc(2, n_a, mt, wh, h_prev, ldh, hg, G, small_max)
            for j in range(mt):
                v_gru_gates_rh(zt + j * ldz, hg + j * G, h_prev + j * ldh, rh + j * n_a, n_a)
            product_acc(n_a, mt, n_a, wh[2], n_a, NULL, rh, n_a, hg + 2 * n_a, G, small_max)
            for j in range(mt):
                v_gru_candidate(zt + j * ldz, hg + j * G, h_prev + j * ldh, st + j * lds, n_a)
                flush_if_subnormal(st + j * lds, n_a, &flush_h, wh, 3, n_a, n_a, wy, n_y, n_a)
        padding_again(st + n_a, lds, n_a, mp, mt)
        if line_out:
            states_out(s, lds, T, n_a, True, q, t, T, reverse, n_a, m, a, ld_a)

    if T:  # the last block run: (T - 1) % SB + 1 steps
        lo = 0 if reverse else T - 1 - (T - 1) % SB
        gru_states_out(s, lo, lo + (T - 1) % SB + 1, m, n_a, T, a, ld_a, n_y, wy, y, ld_y,
                       out_pan, line_out)
    if n_y > 0:
        # Y^T (m*T, n_y) = S^T (m*T, n_a) @ Wy^T (n_a, n_y), + by (as in rnn_core), unless
        # the state blocks made it (y filled with by before the loop).
        if mT <= SMALL_COLS:
            small_acc(n_y, mT, n_a, wy, n_a, s, n_a, y, ld_y, 1)
        elif out_pan == NULL:
            gemm_acc(c'T', c'N', mT, n_y, n_a, s, n_a, wy, n_a, y, ld_y)
        v_softmax_cols(y, n_y, mT, ld_y)


cdef enum:
    # From this many examples on, a GRU call makes its input projection per step (gru_core's
    # ``step_x``; without caches into a one-step buffer, ``ring``), each step's gates written
    # while in cache, instead of all ahead of the loop into a (m, T, 3n_a) buffer read back
    # step by step.
    # Unlike the LSTM's (one product over [W_a | W_x]), it is a second product per step, and
    # pays from more examples on.  A/B on AMD Zen 5, float32 model, per step / ahead:
    # m = 4, 1.16 (n_a = 512); m = 8-12, 1.00-1.08; m = 16, 0.97-1.00; m = 32, 0.94-0.96
    # (`mid` 0.93, float64 0.94); `fastrnns` and `big` (m = 64) 0.97-0.98.
    GRU_RING_MIN_M = 16


#: A GRU slice of this many examples or more keeps one step of gates without caches (tests).
GRU_RING_MIN = GRU_RING_MIN_M


cdef inline bint gru_step_x(Py_ssize_t npanel, Py_ssize_t ms) noexcept nogil:
    # Does a GRU call (a slice of ms examples) project its inputs per step (gru_core's
    # ``step_x``)?  With the panel GEMM, from GRU_RING_MIN_M examples on; then a call without
    # caches keeps one step's gates only (``ring``), one with caches writes each step's
    # into them (A/B, AMD Zen 5, drop-in against ahead of the loop: `mid` float32 and float64
    # x0.96, `fastrnns` x0.97, `big` x0.98; same bits).
    return npanel > 0 and ms >= GRU_RING_MIN_M


cdef inline Py_ssize_t gru_work_size(Py_ssize_t ms, Py_ssize_t T, Py_ssize_t n_a,
                                     Py_ssize_t n_x, bint panel) noexcept nogil:
    # h (ms, n_a) + hg (ms, 3n_a) + rh (ms, n_a), the output layer's panels (OUTPUT_ROWS_MAX,
    # n_a), plus X^T (ms*T, n_x) when the small path or (``panel``) the panel GEMM or an
    # unpacked call's input projection takes it.
    return (5 * ms * n_a + OUTPUT_ROWS_MAX * n_a
            + (ms * T * n_x if ms * T <= SMALL_COLS or panel else 0))


cdef Py_ssize_t gru_panel_elems(int typenum, Py_ssize_t n_a, Py_ssize_t n_x, Py_ssize_t ms,
                                Py_ssize_t T, int small_max, bint reset_after) noexcept nogil:
    # The GRU's packed blocks when the panel GEMM takes its recurrent product (the reset
    # gate after it only): W_a (3n_a, n_a), then W_x (3n_a, n_x); else 0.
    if not reset_after:
        return 0
    return projection_elems(typenum, 3 * n_a, n_a, n_x, ms, T, small_max)


cdef Py_ssize_t gru_plan(int typenum, Py_ssize_t n_a, Py_ssize_t n_x, Py_ssize_t ms,
                         Py_ssize_t T, int small_max, bint reset_after, bint per_call,
                         bint *unpacked) noexcept nogil:
    # packing_plan of the GRU's blocks (W_a and W_x packed).
    cdef Py_ssize_t npanel = gru_panel_elems(typenum, n_a, n_x, ms, T, small_max, reset_after)
    return packing_plan(npanel, npanel * (4 if typenum == cnp.NPY_FLOAT32 else 8), ms, T,
                        per_call, unpacked, UNPACKED_MAX_M, UNPACKED_MAX_T,
                        UNPACKED_MAX_M * UNPACKED_MAX_T)


cdef void run_gru_core(int typenum, Py_ssize_t n_x, Py_ssize_t n_a, Py_ssize_t n_y,
                       Py_ssize_t m, Py_ssize_t T, Py_ssize_t j0, Py_ssize_t j1,
                       char *x, char *a0, char **wx, char **wh, char *bx, char *bh, char *wy,
                       char *by, char *a, char *y, char *z, char *s, char *work,
                       bint reset_after, const int *active, int small_max,
                       char *packed=NULL, bint fill=False, bint reverse=False,
                       bint unpacked=False, bint step_x=False,
                       bint ring=False) noexcept nogil:
    # As run_rnn_core: columns j0:j1 of whole arrays; wx and wh hold the three gates'
    # pointers; work holds gru_work_size(..., packed != NULL or unpacked) elements;
    # ``packed``, ``fill`` as there; ``step_x``, ``ring`` (one step of gates) as for
    # gru_core.  z is (m, 1, 3n_a) for a whole batch with ``ring`` (j0 = 0), else (m, T,
    # 3n_a), and a slice's ring is the start of its own part of it: slices of one call on
    # other threads decide ``ring`` by their own widths (gru_step_x), and one's ring must not
    # fall in another's steps (a ring at j0 * 3n_a did, for slices on both sides of
    # GRU_RING_MIN_M examples: wrong results on two threads).
    cdef Py_ssize_t ms = j1 - j0, off = j0 * T, hc = ms * n_a
    cdef Py_ssize_t zoff = j0 * 3 * n_a * T
    cdef Py_ssize_t base = gru_work_size(ms, T, n_a, n_x, packed != NULL or unpacked)
    cdef const float *wxf[3]
    cdef const float *whf[3]
    cdef const double *wxd[3]
    cdef const double *whd[3]
    cdef int k
    for k in range(3):
        wxf[k], whf[k] = <const float *> wx[k], <const float *> wh[k]
        wxd[k], whd[k] = <const double *> wx[k], <const double *> wh[k]
    if typenum == cnp.NPY_FLOAT32:
        gru_core[float](
            n_x, n_a, n_y, ms, T, <float *> x + off, m * T, <float *> a0 + j0, m,
            wxf, whf, <float *> bx, <float *> bh, <float *> wy,
            <float *> by, <float *> a + off, m * T, <float *> y + off, m * T,
            <float *> z + zoff, <float *> s + off * n_a,
            <float *> work, <float *> work + hc, <float *> work + 4 * hc,
            <float *> work + 5 * hc + OUTPUT_ROWS_MAX * n_a, <float *> work + 5 * hc,
            <float *> packed,
            fill, reset_after, active, j0, small_max, reverse, unpacked, step_x, ring)
    else:
        gru_core[double](
            n_x, n_a, n_y, ms, T, <double *> x + off, m * T, <double *> a0 + j0, m,
            wxd, whd, <double *> bx, <double *> bh, <double *> wy,
            <double *> by, <double *> a + off, m * T, <double *> y + off, m * T,
            <double *> z + zoff, <double *> s + off * n_a,
            <double *> work, <double *> work + hc, <double *> work + 4 * hc,
            <double *> work + 5 * hc + OUTPUT_ROWS_MAX * n_a, <double *> work + 5 * hc,
            <double *> packed,
            fill, reset_after, active, j0, small_max, reverse, unpacked, step_x, ring)


cdef int check_out(cnp.ndarray out, bint sequence, int typenum, Py_ssize_t n_a, Py_ssize_t m,
                   Py_ssize_t T) except -1:
    # None, or the (n_a, m, T) array a sequence call writes a into.
    if out is not None:
        if not sequence:
            raise ValueError("kernel argument out: for a sequence only")
        check(out, "out", typenum, True, 3, n_a, m, T)
    return 0


cdef int check_active(cnp.ndarray active, Py_ssize_t T, Py_ssize_t m) except -1:
    # None, or T non-increasing C ints in [0, m] (see gru_forward)
    if active is None:
        return 0
    if (cnp.PyArray_TYPE(active) != cnp.NPY_INT or not cnp.PyArray_IS_C_CONTIGUOUS(active)
            or cnp.PyArray_NDIM(active) != 1 or active.shape[0] != T):
        raise ValueError(f"kernel argument active: expected a C-contiguous int array of "
                         f"shape ({T},)")
    cdef const int *act = <const int *> cnp.PyArray_DATA(active)
    cdef Py_ssize_t t
    for t in range(T):
        if act[t] < 0 or act[t] > m or (t and act[t] > act[t - 1]):
            raise ValueError("kernel argument active: expected non-increasing counts "
                             f"in [0, {m}]")
    return 0


def gru_forward(cnp.ndarray x not None, cnp.ndarray a0 not None, cnp.ndarray wx not None,
                cnp.ndarray wh not None, cnp.ndarray bx not None, cnp.ndarray bh not None,
                cnp.ndarray wy not None, cnp.ndarray by not None, cnp.ndarray a not None,
                cnp.ndarray y not None, cnp.ndarray z not None, cnp.ndarray s not None,
                bint reset_after, cnp.ndarray active, Py_ssize_t j0, Py_ssize_t j1,
                int small_max, bint reverse=False, bint per_call=False, bint caches=True):
    """GRU over the examples j0:j1 of a batch, the GIL released throughout.

    Parameters
    ----------
    x : (n_x, m, T) IN.  a0 : (n_a, m) IN.
    wx : (3n_a, n_x), wh : (3n_a, n_a), bx, bh : (3n_a,) IN, gates in the order r, z, n.
    wy : (n_y, n_a), by : (n_y,) IN; n_y = 0 for no output layer.
    a : (n_a, m, T), y : (n_y, m, T) OUT, filled for columns j0:j1.
    z : (m, T, 3n_a) OUT: the activated gates [r, z, n] of every step (for the caches).
    s : (m, T, n_a) OUT: the hidden states again, time-major.
    reset_after : the reset gate multiplies the candidate's recurrent term (PyTorch; Keras's
        reset_after=True), else its input (ONNX's default linear_before_reset=0).
    active : None, or (T,) C int IN: for a batch sorted by length, longest first, the number
        of examples still running at each step (non-increasing, in [0, m]); the others'
        steps are skipped and their states (a and s) set to 0.  Their gate buffer entries
        and predictions are then not meaningful.
    small_max : as for :func:`rnn_forward`.
    reverse : run the steps backwards, from T - 1 to 0 (a backward direction; with
        ``active``, each example from its own last step, starting from its a0), writing
        every output at its own step: no reversed copies.
    per_call : as for :func:`lstm_forward`.
    caches : False when z is work memory (inference): where the panel GEMM runs on at least
        GRU_RING_MIN_M examples, the slice's input projection then goes per step into one
        step's worth of z (the first (j1 - j0) * 3n_a elements of its own columns' part,
        from flat element j0 * T * 3n_a on), and z holds no gates after the call.
    """
    cdef int typenum = check_typenum(x)
    check_ndims(a0, wy)
    cdef Py_ssize_t n_x = x.shape[0], m = x.shape[1], T = x.shape[2]
    cdef Py_ssize_t n_a = a0.shape[0], n_y = wy.shape[0]
    check(x, "x", typenum, False, 3, n_x, m, T)
    check(a0, "a0", typenum, False, 2, n_a, m)
    check(wx, "wx", typenum, False, 2, 3 * n_a, n_x)
    check(wh, "wh", typenum, False, 2, 3 * n_a, n_a)
    check(bx, "bx", typenum, False, 1, 3 * n_a)
    check(bh, "bh", typenum, False, 1, 3 * n_a)
    check(wy, "wy", typenum, False, 2, n_y, n_a)
    check(by, "by", typenum, False, 1, n_y)
    check(a, "a", typenum, True, 3, n_a, m, T)
    check(y, "y", typenum, True, 3, n_y, m, T)
    check(z, "z", typenum, True, 3, m, T, 3 * n_a)
    check(s, "s", typenum, True, 3, m, T, n_a)
    check_sizes(n_x, 3 * n_a, n_a, n_y, m, T, j0, j1)
    check_active(active, T, m)
    cdef const int *act = NULL if active is None else <const int *> cnp.PyArray_DATA(active)
    if j1 == j0 or T == 0:
        return
    # as the drop-in fast path decides (gru_call): the same call, the same kernels and bits
    cdef bint unpacked
    cdef Py_ssize_t npanel = gru_plan(typenum, n_a, n_x, j1 - j0, T, small_max, reset_after,
                                      per_call, &unpacked)
    cdef cnp.ndarray work = _pool.aligned_empty(
        gru_work_size(j1 - j0, T, n_a, n_x, npanel > 0 or unpacked), x.dtype)
    cdef bint fill
    cdef char *packed = packed_block(None, None, npanel, typenum, &fill)
    cdef char *wxp[3]
    cdef char *whp[3]
    stacked_blocks(wx, 3, wxp)
    stacked_blocks(wh, 3, whp)
    cdef bint step_x = gru_step_x(npanel, j1 - j0)
    cdef bint ring = step_x and not caches
    with nogil:
        run_gru_core(typenum, n_x, n_a, n_y, m, T, j0, j1, cnp.PyArray_BYTES(x),
                     cnp.PyArray_BYTES(a0), wxp, whp, cnp.PyArray_BYTES(bx),
                     cnp.PyArray_BYTES(bh), cnp.PyArray_BYTES(wy), cnp.PyArray_BYTES(by),
                     cnp.PyArray_BYTES(a), cnp.PyArray_BYTES(y), cnp.PyArray_BYTES(z),
                     cnp.PyArray_BYTES(s), cnp.PyArray_BYTES(work), reset_after,
                     act, small_max, packed, fill, reverse, unpacked, step_x,
                     ring)


cdef inline void stacked_blocks(cnp.ndarray w, int nb, char **out):
    # Pointers to the nb equal row blocks of the C-contiguous w (the stacked gates).
    cdef Py_ssize_t size = cnp.PyArray_NBYTES(w) // nb
    cdef int k
    for k in range(nb):
        out[k] = cnp.PyArray_BYTES(w) + k * size


cdef tuple gru_call(cnp.ndarray xa, cnp.ndarray a0a, char **wx, char **wh, char *bx, char *bh,
                    cnp.ndarray wy, char *by, bint sequence, bint reset_after, int small_max,
                    Py_ssize_t npanel, bint unpacked, list scratch=None,
                    const int *active=NULL, bint reverse=False, cnp.ndarray out=None,
                    bint caches=True):
    # Allocate the outputs and run the GRU core on accepted arrays; returns (a, y, z, s).
    # ``npanel``, ``unpacked``: the caller's gru_plan.
    # With ``scratch`` (3 slots), z, s and the work buffer are reused from the previous call.
    # ``reverse`` (``active`` NULL): the steps backwards; ``out``: a, checked by the caller.
    # Without ``caches``, where the panel GEMM runs, from GRU_RING_MIN_M examples on, z is
    # the core's one-step ring (m, 1, 3n_a), the input projection made per step.
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t n_x = xa.shape[0], m = xa.shape[1], T = xa.shape[2] if sequence else 1
    cdef Py_ssize_t n_y = wy.shape[0], n_a = wy.shape[1]
    cdef cnp.npy_intp dims[3]
    cdef int nd = 3 if sequence else 2
    dims[0], dims[1], dims[2] = n_a, m, T
    cdef cnp.ndarray a = out if out is not None else new_array(nd, dims, typenum)
    dims[0] = n_y
    cdef cnp.ndarray y = new_array(nd, dims, typenum)
    cdef bint step_x = gru_step_x(npanel, m)
    cdef bint ring = step_x and not caches
    dims[0], dims[1], dims[2] = m, 1 if ring else T, 3 * n_a
    cdef cnp.ndarray z = scratch_array(scratch, 0, 3, dims, typenum)
    dims[1], dims[2] = T, n_a
    cdef cnp.ndarray s = scratch_array(scratch, 1, 3, dims, typenum)
    cdef bint fill
    cdef char *packed = packed_block(scratch, <Py_ssize_t> wh[0], npanel, typenum, &fill)
    cdef cnp.ndarray work = call_work(
        scratch, gru_work_size(m, T, n_a, n_x, npanel > 0 or unpacked), typenum)
    with nogil:
        run_gru_core(typenum, n_x, n_a, n_y, m, T, 0, m, cnp.PyArray_BYTES(xa),
                     cnp.PyArray_BYTES(a0a), wx, wh, bx, bh, cnp.PyArray_BYTES(wy), by,
                     cnp.PyArray_BYTES(a), cnp.PyArray_BYTES(y), cnp.PyArray_BYTES(z),
                     cnp.PyArray_BYTES(s), cnp.PyArray_BYTES(work), reset_after,
                     active, small_max, packed, fill, reverse, unpacked, step_x,
                     ring)
    return a, y, z, s


_GRU_KEYS = (("Wrx", "Wzx", "Wnx"), ("Wra", "Wza", "Wna"), ("brx", "bzx", "bnx"),
             ("bra", "bza", "bna"))  # fastrnn._packing.GRU_GATES order


def try_gru(object x, object a0, object parameters, bint sequence, bint reset_after,
            int small_max):
    """The whole drop-in GRU call when every argument is already what the kernel takes
    (see :func:`try_rnn`), with an output layer; the gates' weights are used where they are
    (stacked only where BLAS takes a product) and their biases stacked.  Returns ``(a, y, z,
    s)`` (2-d a and y for a single step), or None."""
    if type(parameters) is not dict:
        return None
    cdef dict p = <dict> parameters
    cdef cnp.ndarray xa = exact_input(x, sequence)
    if xa is None:
        return None
    cdef int typenum = cnp.PyArray_TYPE(xa)
    cdef Py_ssize_t n_x = xa.shape[0], m = xa.shape[1], T = xa.shape[2] if sequence else 1
    cdef cnp.ndarray wy = given_head(p, "Wy", typenum)
    if wy is None:
        return None
    cdef Py_ssize_t n_y = wy.shape[0], n_a = wy.shape[1], k, g
    if not sizes_fit(n_x, 3 * n_a, n_a, n_y, m, T):
        return None
    cdef cnp.ndarray by = exact(p.get("by"), typenum, 2, n_y, 1)
    cdef cnp.ndarray a0a = exact(a0, typenum, 2, n_a, m)
    if by is None or a0a is None or has_subnormal(xa) or has_subnormal(a0a):
        return None
    # The gates' weights are read where they are (packed into panels, or the small-batch
    # kernel per gate) and only the biases are stacked, unless BLAS takes a product (see
    # input_projection, product_acc): then the gates are stacked into one block each, as the
    # validated route has them (one gemm for the three: the same bits).
    cdef bint unpacked
    cdef Py_ssize_t npanel = gru_plan(typenum, n_a, n_x, m, T, small_max, reset_after, True,
                                      &unpacked)
    cdef bint stack = (not npanel and not unpacked
                       and (m * T > SMALL_COLS or m > small_max))
    cdef char *wxp[3]
    cdef char *whp[3]
    cdef list arrays = []
    cdef cnp.npy_intp dims[2]
    dims[0] = 6 * n_a
    cdef cnp.ndarray bias = cnp.PyArray_EMPTY(1, dims, typenum, 0)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(xa)
    cdef Py_ssize_t cols[2]
    cols[0], cols[1] = n_x, n_a
    cdef cnp.ndarray arr
    cdef list blocks = []
    cdef char *dst
    if stack:
        for k in range(2):
            dims[0], dims[1] = 3 * n_a, cols[k]
            blocks.append(cnp.PyArray_EMPTY(2, dims, typenum, 0))
    for k in range(4):
        for g in range(3):
            arr = exact(p.get(_GRU_KEYS[k][g]), typenum, 2, n_a, cols[k] if k < 2 else 1)
            if arr is None:
                return None
            if k < 2:
                dst = cnp.PyArray_BYTES(arr)
                if stack:
                    dst = cnp.PyArray_BYTES(<cnp.ndarray> blocks[k]) + g * n_a * cols[k] * item
                    memcpy(dst, cnp.PyArray_DATA(arr), n_a * cols[k] * item)
                if k == 0:
                    wxp[g] = dst
                else:
                    whp[g] = dst
            else:
                memcpy(cnp.PyArray_BYTES(bias) + ((k - 2) * 3 + g) * n_a * item,
                       cnp.PyArray_DATA(arr), n_a * item)
            arrays.append(arr)  # alive until the call returns
    return gru_call(xa, a0a, wxp, whp, cnp.PyArray_BYTES(bias),
                    cnp.PyArray_BYTES(bias) + 3 * n_a * item, wy, cnp.PyArray_BYTES(by),
                    sequence, reset_after, small_max, npanel, unpacked)


def try_packed_gru(object x, object a0, cnp.ndarray wx not None, cnp.ndarray wh not None,
                   cnp.ndarray bx not None, cnp.ndarray bh not None, cnp.ndarray wy not None,
                   cnp.ndarray by not None, bint sequence, bint reset_after, int small_max,
                   list scratch=None, cnp.ndarray active=None, bint reverse=False,
                   cnp.ndarray out=None):
    """:func:`try_gru` for a packed model (fastrnn.GRU): ``wx`` (3n_a, n_x), ``wh``
    (3n_a, n_a), ``bx``, ``bh`` (3n_a,) the stacked gates, ``wy`` (n_y, n_a) with n_y = 0
    for no output layer; ``a0`` None means zeros; ``scratch`` as for
    :func:`try_packed_rnn`; ``active`` and ``reverse`` as for
    :func:`gru_forward`, ``out`` as for :func:`try_packed_rnn`.  Returns ``(a, y, z, s)``,
    z and s being scratch memory, or None."""
    cdef int typenum = check_packed(wy, by, scratch)
    cdef Py_ssize_t n_a = wy.shape[1], n_y = wy.shape[0]
    if cnp.PyArray_NDIM(wx) != 2:
        raise ValueError(f"packed wx must be 2-d (3n_a, n_x), got shape {(<object> wx).shape}")
    check(wx, "wx", typenum, False, 2, 3 * n_a, wx.shape[1])
    check(wh, "wh", typenum, False, 2, 3 * n_a, n_a)
    check(bx, "bx", typenum, False, 1, 3 * n_a)
    check(bh, "bh", typenum, False, 1, 3 * n_a)
    cdef Py_ssize_t n_x = wx.shape[1]
    cdef cnp.ndarray xa = exact_input(x, sequence)
    if xa is None or cnp.PyArray_TYPE(xa) != typenum or xa.shape[0] != n_x:
        return None
    cdef Py_ssize_t m = xa.shape[1], T = xa.shape[2] if sequence else 1
    if not sizes_fit(n_x, 3 * n_a, n_a, n_y, m, T):
        return None
    cdef cnp.ndarray a0a = state_or_zeros(a0, typenum, n_a, m)
    if a0a is None or has_subnormal(xa) or has_subnormal(a0a):
        return None
    check_active(active, T, m)
    check_out(out, sequence, typenum, n_a, m, T)
    cdef char *wxp[3]
    cdef char *whp[3]
    stacked_blocks(wx, 3, wxp)
    stacked_blocks(wh, 3, whp)
    cdef bint unpacked  # a model packs once: never unpacked
    cdef Py_ssize_t npanel = gru_plan(typenum, n_a, n_x, m, T, small_max, reset_after, False,
                                      &unpacked)
    return gru_call(xa, a0a, wxp, whp, cnp.PyArray_BYTES(bx), cnp.PyArray_BYTES(bh), wy,
                    cnp.PyArray_BYTES(by), sequence, reset_after, small_max, npanel,
                    unpacked, scratch,
                    NULL if active is None else <const int *> cnp.PyArray_DATA(active),
                    reverse, out, False)


