# cython: language_level=3, cdivision=True, nonecheck=False
# (boundscheck, wraparound, initializedcheck are set by setup.py: off, or on for a debug build)
"""Typed backward kernels for the basic RNN and the LSTM (private; see fastrnn._backward).

Layout (all arrays C-contiguous, one dtype), as in the forward kernels (_core.pyx):

- x (n_x, m, T) and dx are row-major (n_x, m*T) matrices whose columns are the (example,
  step) pairs j*T + t.
- the forward's state/gate buffers are (m, T, width): column (j, t) at (j*T + t)*width.
  RNN: h = a_t (width n_a).  LSTM: z = the activated gates [f, i, o, c] (width 4n_a) and
  s = [a_t, c_t] (width 2n_a).  ``prev`` (m, T, P) holds each column's previous hidden
  state a_{t-1} (a0 at t = 0).  RNN (P = n_a): built here by shifting the state buffer
  (fastrnn's own caches) or given (caches made by user code).  LSTM (P = n_a + n_x): always
  built here as the stacked [a_{t-1}; x_t] of every column, so that dW = d @ prev^T is one
  GEMM (the gate gradients, 4n_a rows, are packed by BLAS once instead of twice); a_{t-1}
  shifted from s, or copied from the [a_{t-1}; c_{t-1}] buffer (m, T, 2n_a) of user caches.
  The LSTM's c_{t-1} is read from s itself (c0 at t = 0), or from that buffer.
- the gradients of the gate pre-activations go to d (m, T, G), G = n_a or 4n_a, a
  column-major (G, m*T) matrix.  The upstream gradient dL/da_t is first written (transposed
  from da, or by the output layer's backward) into the first n_a rows of each column of d,
  where the fused element-wise pass reads it and writes the gate gradients over it.  Per step
  the only work is that pass per example and the recurrent product dL/da_{t-1} = W_a^T d_t
  (the packed panel GEMM on W_a^T packed straight from W_a's rows, or the small-batch
  kernel, or BLAS); the weight gradients dW_a = d @ prev_a^T, dW_x = d @ X^T, db = row sums
  of d and dx = W_x^T @ d are single GEMMs over all m*T columns after the loop.
- W_a and W_x come as blocks of n_a rows (the LSTM's four gate matrices, one array or not):
  nothing is copied to merge them.

Entry points check their arrays and return None when one is not exactly what the kernel
takes (the caller then validates and converts); the cores are nogil, noexcept and allocate
nothing.
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport log
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

from fastrnn._kernels._products cimport (PANEL_MAX_BYTES, fr_panel_size_d, fr_panel_size_f,
                                         panel_acc, panel_pack, small_acc, step_descending)
from fastrnn._kernels._transpose cimport transpose

import numpy as np

from fastrnn import _pool
from fastrnn._kernels import _core

cnp.import_array()

cdef extern from "_backward.h" nogil:
    void fr_rnn_bwd_pointwise_d(double *d, const double *dap, const double *h, Py_ssize_t n)
    void fr_rnn_bwd_pointwise_f(float *d, const float *dap, const float *h, Py_ssize_t n)
    void fr_lstm_bwd_pointwise_d(double *d, const double *dap, double *dc, const double *g,
                                 const double *cn, const double *cp, Py_ssize_t n)
    void fr_lstm_bwd_pointwise_f(float *d, const float *dap, float *dc, const float *g,
                                 const float *cn, const float *cp, Py_ssize_t n)
    void fr_panel_pack_t_d(Py_ssize_t rows, Py_ssize_t K, const double **W,
                           Py_ssize_t block_k, Py_ssize_t ldw, double *P)
    void fr_panel_pack_t_f(Py_ssize_t rows, Py_ssize_t K, const float **W,
                           Py_ssize_t block_k, Py_ssize_t ldw, float *P)
    void fr_sum_columns_d(const double *d, Py_ssize_t rows, Py_ssize_t n_cols, Py_ssize_t ld,
                          double *s)
    void fr_sum_columns_f(const float *d, Py_ssize_t rows, Py_ssize_t n_cols, Py_ssize_t ld,
                          float *s)

# ------------------------------------------------------------------ BLAS and small helpers

cdef inline void gemm(char transa, char transb, int M, int N, int K, const floating *A,
                      int lda, const floating *B, int ldb, floating beta, floating *C,
                      int ldc) noexcept nogil:
    # C (M x N) = op(A) (M x K) @ op(B) (K x N) + beta * C, all column-major.  K = 0 gives
    # beta * C; M or N = 0 does nothing (BLAS would reject the leading dimensions).
    cdef floating one = 1
    cdef Py_ssize_t i, j
    if M <= 0 or N <= 0:
        return
    if K <= 0:
        if beta == 0:
            for j in range(N):
                for i in range(M):
                    C[j * ldc + i] = 0
        return
    if floating is float:
        sgemm(&transa, &transb, &M, &N, &K, &one, <float *> A, &lda, <float *> B, &ldb,
              &beta, C, &ldc)
    else:
        dgemm(&transa, &transb, &M, &N, &K, &one, <double *> A, &lda, <double *> B, &ldb,
              &beta, C, &ldc)


cdef void shift_states(const floating *s, Py_ssize_t lds, const floating *a0,
                       Py_ssize_t n_a, Py_ssize_t m, Py_ssize_t T, floating *prev,
                       Py_ssize_t P) noexcept nogil:
    # prev (m, T, P): the first n_a values of column (j, t) := those of column (j, t - 1) of
    # the state buffer s (m, T, lds) (a_{t-1}); at t = 0 a0[:, j], a0 row-major (n_a, m).
    cdef Py_ssize_t j, i, t
    cdef floating *p
    for j in range(m):
        p = prev + j * T * P
        for i in range(n_a):
            p[i] = a0[i * m + j]
        if lds == n_a and P == n_a:
            if T > 1:
                memcpy(p + n_a, s + j * T * n_a, (T - 1) * n_a * sizeof(floating))
        else:
            for t in range(1, T):
                memcpy(p + t * P, s + (j * T + t - 1) * lds, n_a * sizeof(floating))


cdef void copy_states(const floating *s, Py_ssize_t lds, Py_ssize_t n_a, Py_ssize_t n_cols,
                      floating *prev, Py_ssize_t P) noexcept nogil:
    # The first n_a values of every column: s (n_cols, lds) -> prev (n_cols, P).
    cdef Py_ssize_t c
    for c in range(n_cols):
        memcpy(prev + c * P, s + c * lds, n_a * sizeof(floating))


cdef inline void rnn_pointwise(floating *d, const floating *dap, const floating *h,
                               Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_rnn_bwd_pointwise_f(d, dap, h, n)
    else:
        fr_rnn_bwd_pointwise_d(d, dap, h, n)


cdef inline void lstm_pointwise(floating *d, const floating *dap, floating *dc,
                                const floating *g, const floating *cn, const floating *cp,
                                Py_ssize_t n) noexcept nogil:
    if floating is float:
        fr_lstm_bwd_pointwise_f(d, dap, dc, g, cn, cp, n)
    else:
        fr_lstm_bwd_pointwise_d(d, dap, dc, g, cn, cp, n)


cdef inline void pack_t(Py_ssize_t rows, Py_ssize_t K, const floating *w, Py_ssize_t ldw,
                        floating *panel) noexcept nogil:
    # panel := the rows x K matrix W^T packed for the panel GEMM, W given as K rows of at
    # least ``rows`` values, ldw apart.
    if floating is float:
        fr_panel_pack_t_f(rows, K, &w, K, ldw, panel)
    else:
        fr_panel_pack_t_d(rows, K, &w, K, ldw, panel)


cdef inline void sum_columns(const floating *d, Py_ssize_t rows, Py_ssize_t n_cols,
                             Py_ssize_t ld, floating *s) noexcept nogil:
    if floating is float:
        fr_sum_columns_f(d, rows, n_cols, ld, s)
    else:
        fr_sum_columns_d(d, rows, n_cols, ld, s)


# How the per-step recurrent product runs (the forward kernels' three paths, picked the same
# way: the packed panel GEMM for sequences of two steps or more where the SIMD level has it;
# else the small-batch kernel up to fastrnn._api.SMALL_BATCH_MAX_M examples, BLAS gemm above).
# The panel is W_a^T packed straight from W_a's rows; the small kernel (and BLAS, when W_a is
# in blocks) read W_a^T transposed once per call.
cdef enum:
    MODE_GEMM = 0
    MODE_SMALL = 1
    MODE_PANEL = 2


# ------------------------------------------------------------------ nogil cores

cdef void bwd_core(
        bint lstm, int n_x, int n_a, int m, int T,
        const floating *x,                   # IN   x (n_x, m*T) row-major
        const floating *g,                   # IN   (m, T, G): RNN a_t; LSTM gates [f,i,o,c]
        const floating *cn, int ldcn,        # IN   LSTM: c_t of column c at cn + c*ldcn
        const floating *prev, int P,         # IN   (m, T, P): a_{t-1} (RNN), [a_{t-1}; x_t]
                                             #      (LSTM, P = n_a + n_x)
        const floating *c0t,                 # IN   LSTM: c0 (m, n_a); not NULL: c_{t-1} is
                                             #      read from cn (shifted), else from cpv
        const floating *cpv, int ldcp,       # IN   LSTM: c_{t-1} of column c at cpv + c*ldcp
        const floating **wa, int ldwa,       # IN   W_a (G, n_a): blocks of n_a rows, row
                                             #      stride ldwa (1 block RNN, 4 LSTM)
        const floating **wx, int ldwx,       # IN   W_x (G, n_x): the same blocks
        bint merged,                         # IN   the blocks are one (G, .) matrix
        const floating *wat,                 # IN   W_a^T (n_a, G) row-major, or NULL
        const floating *panel,               # IN   W_a^T packed (MODE_PANEL)
        int mode,                            # IN   the recurrent product's path
        floating *dt,                        # WORK (G, m*T) for d transposed, or NULL:
                                             #      the weight gradients through BLAS
        floating *wpan,                      # WORK with dt: the weight gradients' packed
                                             #      operand (see panel_grad_elems)
        floating *zeros,                     # WORK with dt: max(P, n_x) zeros
        floating *dx,                        # OUT  dx (n_x, m*T) row-major, or NULL: not
                                             #      wanted (a model's loss_and_grads)
        floating *dwa, int lddwa,            # OUT  dW_a (G, n_a), row stride lddwa
        floating *dwx, int lddwx,            # OUT  dW_x (G, n_x), row stride lddwx
        floating *db,                        # OUT  db (G,)
        floating *da0,                       # OUT  (n_a, m) row-major
        floating *dc0,                       # OUT  (n_a, m) row-major (LSTM) or NULL
        floating *d,                         # IN/WORK (m, T, G): dL/da_t in the first n_a
                                             #      rows of each column in; gate gradients
        floating *dap,                       # WORK (m, n_a): dL/da_{t-1} carried back
        floating *dc,                        # WORK (m, n_a): dL/dc carried back (LSTM);
                                             #      IN when dc_given (else it starts at 0)
        bint dc_given) noexcept nogil:
    cdef int G = 4 * n_a if lstm else n_a
    cdef int mT = m * T
    cdef int ldd = T * G
    cdef Py_ssize_t t, j, col, k
    cdef const floating *cp
    memset(dap, 0, m * n_a * sizeof(floating))
    if lstm and not dc_given:
        memset(dc, 0, m * n_a * sizeof(floating))  # the cell gradient starts at zero

    for t in range(T - 1, -1, -1):
        for j in range(m):
            col = j * T + t
            if lstm:
                if c0t == NULL:
                    cp = cpv + col * ldcp
                elif t == 0:
                    cp = c0t + j * n_a
                else:
                    cp = cn + (col - 1) * ldcn
                lstm_pointwise(d + col * G, dap + j * n_a, dc + j * n_a, g + col * G,
                               cn + col * ldcn, cp, n_a)
            else:
                rnn_pointwise(d + col * n_a, dap + j * n_a, g + col * n_a, n_a)
        # dap (n_a, m) = W_a^T (n_a, G) @ d_t (G, m), d_t column-major, leading dim T*G.
        # The panel GEMM streams W_a^T once per step whatever m; the small-batch kernel reads
        # W_a^T row-major once for four examples; BLAS: W_a row-major (G, n_a) is the
        # column-major (n_a, G) W_a^T -> 'N' (one block), else W_a^T row-major -> 'T'.
        if mode == MODE_PANEL:
            memset(dap, 0, m * n_a * sizeof(floating))
            panel_acc(n_a, m, G, panel, d + t * G, ldd, dap, n_a, NULL, 0, -1,
                      step_descending(t))
        elif mode == MODE_SMALL:
            memset(dap, 0, m * n_a * sizeof(floating))
            small_acc(n_a, m, G, wat, G, d + t * G, ldd, dap, 1, n_a)
        elif merged:
            gemm(c'N', c'N', n_a, m, G, wa[0], ldwa, d + t * G, ldd, 0, dap, n_a)
        else:
            gemm(c'T', c'N', n_a, m, G, wat, G, d + t * G, ldd, 0, dap, n_a)

    # da0, dc0 (n_a, m) = the carried gradients, transposed.
    transpose(dap, m, n_a, n_a, da0, m)
    if lstm:
        transpose(dc, m, n_a, n_a, dc0, m)
    # dW_a (G, n_a) row-major = column-major (n_a, G) = prev_a (n_a, m*T) @ d^T (m*T, G);
    # prev_a column-major with leading dim P -> 'N', d column-major (G, m*T) -> 'T'.  The
    # LSTM's prev is [a_{t-1}; x_t] and dW_x follows dW_a in each row: dW = [dW_a, dW_x] in one.
    # With the panel kernels and a d that stays in cache (dt set: see panel_grad_elems): the
    # features of prev (and the RNN's rows of X) packed as panels over the m*T columns,
    # against the rows of d^T (one transpose of d): Z = 0 + panels @ H writes dW in place.
    if dt != NULL:
        transpose(d, mT, G, G, dt, mT)
        pack_t(n_a + n_x if lstm else n_a, mT, prev, P, wpan)
        panel_acc(n_a + n_x if lstm else n_a, G, mT, wpan, dt, mT, dwa, lddwa, zeros)
        if not lstm and n_x > 0:
            panel_pack(n_x, mT, &x, n_x, mT, wpan)
            panel_acc(n_x, G, mT, wpan, dt, mT, dwx, lddwx, zeros)
    elif lstm:
        gemm(c'N', c'T', n_a + n_x, G, mT, prev, P, d, G, 0, dwa, lddwa)
    else:
        gemm(c'N', c'T', n_a, G, mT, prev, P, d, G, 0, dwa, lddwa)
        # dW_x (G, n_x) row-major = column-major (n_x, G) = X (n_x, m*T) @ d^T; X row-major
        # (n_x, m*T) = column-major (m*T, n_x) -> 'T'.
        gemm(c'T', c'T', n_x, G, mT, x, mT, d, G, 0, dwx, lddwx)
    # dx (n_x, m*T) row-major = column-major (m*T, n_x) = d^T (m*T, G) @ W_x (G, n_x);
    # W_x row-major (G, n_x) = column-major (n_x, G) -> 'T'; one product per block of W_x
    # (accumulated) when the blocks are not one matrix.
    if dx != NULL:
        if merged:
            gemm(c'T', c'T', mT, n_x, G, d, G, wx[0], ldwx, 0, dx, mT)
        else:
            for k in range(G // n_a):
                gemm(c'T', c'T', mT, n_x, n_a, d + k * n_a, G, wx[k], ldwx,
                     0 if k == 0 else 1, dx, mT)
    memset(db, 0, G * sizeof(floating))
    sum_columns(d, G, mT, G, db)


cdef double output_core(
        int n_y, int n_a, int mT,
        floating *y,                         # IN/OUT (n_y, m*T) row-major: the softmax
                                             #        outputs in, dL/d(logits) out
        const Py_ssize_t *targets,           # IN   (m*T,) class of column j*T + t
        const floating *hs, int ldh,         # IN   a_t column-major (n_a, m*T), lead. dim ldh
        const floating *wy,                  # IN   Wy (n_y, n_a)
        floating *dwy,                       # OUT  dWy (n_y, n_a)
        floating *dby,                       # OUT  dby (n_y,)
        floating *dat, int lddat) noexcept nogil:
                                             # OUT  dL/da_t of column c at dat + c*lddat
    # The summed cross-entropy -sum log y[target] and the output layer's backward pass
    # (softmax and cross-entropy together: dL/d(logits) = y - onehot(target)).  Returns the
    # loss, accumulated in double.
    cdef double loss = 0
    cdef Py_ssize_t col, r
    cdef floating acc
    for col in range(mT):
        loss -= log(<double> y[targets[col] * mT + col])
        y[targets[col] * mT + col] -= 1
    # dWy (n_y, n_a) row-major = column-major (n_a, n_y) = A (n_a, m*T) @ dY^T (m*T, n_y);
    # dY row-major (n_y, m*T) = column-major (m*T, n_y) -> 'N'.
    gemm(c'N', c'N', n_a, n_y, mT, hs, ldh, y, mT, 0, dwy, n_a)
    for r in range(n_y):
        acc = 0
        for col in range(mT):
            acc = acc + y[r * mT + col]
        dby[r] = acc
    # dat (n_a, m*T) column-major (leading dim lddat) = Wy^T (n_a, n_y) @ dY (n_y, m*T): Wy row-major = column-
    # major (n_a, n_y) -> 'N'; dY column-major (m*T, n_y) -> 'T'.
    gemm(c'N', c'T', n_a, mT, n_y, wy, n_a, y, mT, 0, dat, lddat)
    return loss


# ------------------------------------------------------------------ running the cores

cdef struct Args:
    # Pointers for one call of bwd_core (char * so that one struct serves both dtypes).
    int lstm, n_x, n_a, m, T, ldcn, P, ldwa, ldwx, lddwa, lddwx, mode, dc_given, merged
    Py_ssize_t npanel, ngrad
    char *x
    char *g
    char *cn
    char *prev
    char *c0t
    char *cpv
    char *wa[4]
    char *wx[4]
    char *wat
    char *panel
    char *dx
    char *dwa
    char *dwx
    char *db
    char *da0
    char *dc0
    char *d
    char *dap
    char *dc
    char *dt
    char *wpan
    char *zeros


cdef void run_core(int typenum, Args *a) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        bwd_core[float](a.lstm, a.n_x, a.n_a, a.m, a.T, <float *> a.x,
                        <float *> a.g, <float *> a.cn, a.ldcn, <float *> a.prev, a.P,
                        <float *> a.c0t, <float *> a.cpv, 2 * a.n_a,
                        <const float **> a.wa, a.ldwa,
                        <const float **> a.wx, a.ldwx, a.merged, <float *> a.wat,
                        <float *> a.panel, a.mode, <float *> a.dt, <float *> a.wpan,
                        <float *> a.zeros,
                        <float *> a.dx, <float *> a.dwa, a.lddwa, <float *> a.dwx, a.lddwx,
                        <float *> a.db, <float *> a.da0, <float *> a.dc0, <float *> a.d,
                        <float *> a.dap, <float *> a.dc, a.dc_given)
    else:
        bwd_core[double](a.lstm, a.n_x, a.n_a, a.m, a.T, <double *> a.x,
                         <double *> a.g, <double *> a.cn, a.ldcn, <double *> a.prev, a.P,
                         <double *> a.c0t, <double *> a.cpv, 2 * a.n_a,
                         <const double **> a.wa, a.ldwa,
                         <const double **> a.wx, a.ldwx, a.merged, <double *> a.wat,
                         <double *> a.panel, a.mode, <double *> a.dt, <double *> a.wpan,
                         <double *> a.zeros,
                         <double *> a.dx, <double *> a.dwa, a.lddwa, <double *> a.dwx,
                         a.lddwx, <double *> a.db, <double *> a.da0, <double *> a.dc0,
                         <double *> a.d, <double *> a.dap, <double *> a.dc, a.dc_given)


cdef void prepare_t(Args *a, floating *da, floating *s, int lds, floating *a0,
                    floating *c0, bint make_prev, floating *dcn) noexcept nogil:
    # Before the core: da (n_a, m*T) row-major -> the first n_a rows of each column of d;
    # a_{t-1} of prev from the state buffer s (m, T, lds) and a0 when make_prev (else, for
    # the LSTM, from the user's [a_{t-1}; c_{t-1}] at cpv - n_a); the LSTM's x_t below it;
    # c0 (n_a, m) -> c0t (m, n_a) when c0t is set; W_a^T packed into the panel, or
    # transposed into wat; the initial cell gradient dcn (n_a, m) -> dc (m, n_a) if given.
    cdef Py_ssize_t G = 4 * a.n_a if a.lstm else a.n_a, mT = a.m * a.T, k
    a.dc_given = dcn != NULL
    if dcn != NULL:
        transpose(dcn, a.n_a, a.m, a.m, <floating *> a.dc, a.n_a)
    if da != NULL:
        transpose(da, a.n_a, mT, mT, <floating *> a.d, G)
    if make_prev:
        shift_states(s, lds, a0, a.n_a, a.m, a.T, <floating *> a.prev, a.P)
    elif a.lstm:
        copy_states(<floating *> a.cpv - a.n_a, 2 * a.n_a, a.n_a, mT, <floating *> a.prev,
                    a.P)
    if a.lstm:
        transpose(<floating *> a.x, a.n_x, mT, mT, <floating *> a.prev + a.n_a, a.P)
    if a.c0t != NULL:
        transpose(c0, a.n_a, a.m, a.m, <floating *> a.c0t, a.n_a)
    if a.mode == MODE_PANEL:
        if floating is float:
            fr_panel_pack_t_f(a.n_a, G, <const float **> a.wa, a.n_a, a.ldwa,
                              <float *> a.panel)
        else:
            fr_panel_pack_t_d(a.n_a, G, <const double **> a.wa, a.n_a, a.ldwa,
                              <double *> a.panel)
    elif a.wat != NULL:
        for k in range(G // a.n_a):
            transpose(<floating *> a.wa[k], a.n_a, a.n_a, a.ldwa,
                      <floating *> a.wat + k * a.n_a, G)


cdef void prepare(int typenum, Args *a, char *da, char *s, int lds, char *a0, char *c0,
                  bint make_prev, char *dcn) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        prepare_t[float](a, <float *> da, <float *> s, lds, <float *> a0, <float *> c0,
                         make_prev, <float *> dcn)
    else:
        prepare_t[double](a, <double *> da, <double *> s, lds, <double *> a0, <double *> c0,
                          make_prev, <double *> dcn)


# ------------------------------------------------------------------ argument checks

cdef cnp.ndarray exact(object o, int typenum, int ndim, Py_ssize_t d0, Py_ssize_t d1=-1,
                       Py_ssize_t d2=-1):
    # o when it is exactly an ndarray of typenum, native, aligned and C-contiguous, of shape
    # (d0[, d1[, d2]]) (-1 matches any size); else None.
    if not cnp.PyArray_CheckExact(o):
        return None
    cdef cnp.ndarray arr = <cnp.ndarray> o
    if (cnp.PyArray_TYPE(arr) != typenum or cnp.PyArray_NDIM(arr) != ndim
            or not cnp.PyArray_ISCARRAY_RO(arr) or not cnp.PyArray_ISNOTSWAPPED(arr)):
        return None
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    if ((d0 >= 0 and dims[0] != d0) or (ndim > 1 and d1 >= 0 and dims[1] != d1)
            or (ndim > 2 and d2 >= 0 and dims[2] != d2)):
        return None
    return arr


cdef int float_typenum(object o):
    # The typenum of a float32/float64 ndarray, else -1.
    if not cnp.PyArray_CheckExact(o):
        return -1
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray> o)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        return -1
    return typenum


cdef bint sizes_ok(Py_ssize_t n_x, Py_ssize_t G, Py_ssize_t n_a, Py_ssize_t m,
                   Py_ssize_t T):
    # Every size positive (n_x may be 0) and every BLAS size and leading dimension an int.
    cdef Py_ssize_t big = 2**31 - 1
    return (n_a > 0 and m > 0 and T > 0 and n_x >= 0 and G + n_x <= big
            and m <= big // T and m * T <= big // G and m * T <= big // (n_x + 1))


cdef cnp.ndarray empty(int nd, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2, int typenum):
    cdef cnp.npy_intp dims[3]
    dims[0], dims[1], dims[2] = d0, d1, d2
    return cnp.PyArray_EMPTY(nd, dims, typenum, 0)


cdef cnp.ndarray scratch_array(list scratch, int slot, Py_ssize_t n, int typenum):
    # A 1-d work array of n elements: new, or with ``scratch`` (a model's per-thread list)
    # the one kept in scratch[slot] by the previous call when it is large enough (fresh
    # memory costs a page fault per 4 KiB on first touch).
    # From fastrnn._pool.huge_empty: the packed block at its start is on huge pages.
    cdef cnp.ndarray arr
    if scratch is not None:
        arr = scratch[slot]
        if arr is not None and cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_SIZE(arr) >= n:
            return arr
    arr = _pool.huge_empty(max(n, 1), np.float32 if typenum == cnp.NPY_FLOAT32 else np.float64)
    if scratch is not None:
        scratch[slot] = arr
    return arr


cdef char *work_split(char *base, Py_ssize_t *offset, Py_ssize_t n, Py_ssize_t item):
    # The next n elements of a work array.
    cdef char *p = base + offset[0] * item
    offset[0] += n
    return p


cdef void set_mode(Args *a, int typenum, int small_max):
    # The recurrent product's path for this call (see MODE_*) and the panel's size; a.merged
    # must be set.  As in the forward kernels: the panel GEMM takes a sequence (two steps or
    # more: packing costs about one product) at any batch size when the SIMD level has it
    # and the packed block stays within PANEL_MAX_BYTES.
    cdef Py_ssize_t G = 4 * a.n_a if a.lstm else a.n_a, n = 0
    a.npanel = 0
    a.wat = a.panel = NULL
    if a.T >= 2 and _core.panel_gemm_enabled():
        if typenum == cnp.NPY_FLOAT32:
            n = fr_panel_size_f(a.n_a, G)
            n = n if n * 4 <= PANEL_MAX_BYTES else 0
        else:
            n = fr_panel_size_d(a.n_a, G)
            n = n if n * 8 <= PANEL_MAX_BYTES else 0
    a.ngrad = 0
    if n > 0:
        a.mode, a.npanel = MODE_PANEL, n
        a.ngrad = panel_grad_elems(a, 4 if typenum == cnp.NPY_FLOAT32 else 8)
    elif a.m <= small_max:
        a.mode = MODE_SMALL
    else:
        a.mode = MODE_GEMM


cdef enum:
    # The weight gradients go through the panel GEMM while d^T stays in cache (its transpose
    # is then cheap): measured on AMD Zen 5, float32, LSTM backward, against OpenBLAS's
    # SkylakeX kernel: d of 0.8 MiB (`deepbench`) x0.92, of 13 MiB (`mid`) x1.03.
    GRAD_PANEL_MAX_BYTES = 2 * 1024 * 1024


cdef Py_ssize_t panel_grad_elems(Args *a, Py_ssize_t item):
    # With MODE_PANEL, the work of the weight gradients through the panel GEMM: d^T (G, m*T),
    # the packed operand (prev's features, or the RNN's rows of X, as panels over the m*T
    # columns; float32's panel height, the larger count) and max(P, n_x) zeros; 0 (BLAS)
    # when d exceeds GRAD_PANEL_MAX_BYTES.
    cdef Py_ssize_t G = 4 * a.n_a if a.lstm else a.n_a, mT = a.m * a.T
    if G * mT * item > GRAD_PANEL_MAX_BYTES:
        return 0
    return G * mT + grad_pack_elems(a) + max(a.P, a.n_x)


cdef inline Py_ssize_t grad_pack_elems(Args *a):
    # The packed operand of the weight gradients (see panel_grad_elems).
    cdef Py_ssize_t rows = max(a.n_a + a.n_x if a.lstm else a.n_a, a.n_x)
    return fr_panel_size_f(rows, a.m * a.T)


cdef bint needs_wat(Args *a):
    # W_a^T row-major: for the small-batch kernel, and for BLAS when W_a is in blocks.
    return a.mode == MODE_SMALL or (a.mode == MODE_GEMM and not a.merged)


cdef Py_ssize_t work_elems(Args *a, bint make_prev):
    # make_prev: the call builds a_{t-1} from the state buffer (and the LSTM reads c_{t-1}
    # there, c0 from c0t (m, n_a)).  The LSTM's prev (m, T, a.P) is always built.
    cdef Py_ssize_t G = 4 * a.n_a if a.lstm else a.n_a, mT = a.m * a.T
    return (mT * G + 2 * a.m * a.n_a
            + (mT * a.P if make_prev or a.lstm else 0)
            + (a.m * a.n_a if make_prev and a.lstm else 0)
            + (a.n_a * G if needs_wat(a) else 0) + a.npanel + a.ngrad)


cdef void split_work(Args *a, char *base, Py_ssize_t item, bint make_prev):
    # the packed block first: the start of the work array (fastrnn._pool.huge_empty)
    cdef Py_ssize_t off = 0, G = 4 * a.n_a if a.lstm else a.n_a, mT = a.m * a.T
    if a.mode == MODE_PANEL:
        a.panel = work_split(base, &off, a.npanel, item)
    a.d = work_split(base, &off, mT * G, item)
    a.dap = work_split(base, &off, a.m * a.n_a, item)
    a.dc = work_split(base, &off, a.m * a.n_a, item)
    a.c0t = NULL
    if make_prev or a.lstm:
        a.prev = work_split(base, &off, mT * a.P, item)
    if make_prev and a.lstm:
        a.c0t = work_split(base, &off, a.m * a.n_a, item)
    if needs_wat(a):
        a.wat = work_split(base, &off, a.n_a * G, item)
    a.dt = a.wpan = a.zeros = NULL
    if a.ngrad:
        a.dt = work_split(base, &off, G * mT, item)
        a.wpan = work_split(base, &off, grad_pack_elems(a), item)
        a.zeros = work_split(base, &off, max(a.P, a.n_x), item)
        memset(a.zeros, 0, max(a.P, a.n_x) * item)


cdef void set_blocks(Args *a, char **wp, Py_ssize_t item):
    # The LSTM's four gate blocks (n_a, n_a + n_x) at wp[0..3]: W_a and W_x row blocks.
    cdef Py_ssize_t k
    for k in range(4):
        a.wa[k] = wp[k]
        a.wx[k] = wp[k] + a.n_a * item
    a.ldwa = a.ldwx = a.n_a + a.n_x


# ------------------------------------------------------------------ entry points

def rnn_backward(object da, object x, object h, object prev, object a0, object waa,
                 object wax, int small_max, list scratch=None):
    """Basic-RNN backward pass over a sequence, the GIL released throughout.

    Parameters (all exactly C-contiguous, aligned, native arrays of one float dtype)
    ----------
    da : (n_a, m, T) IN, the upstream gradient of every hidden state.
    x : (n_x, m, T) IN.  h : (m, T, n_a) IN, the hidden states a_t (the forward's buffer).
    prev : (m, T, n_a) IN, a_{t-1} of every column, or None: built from h and a0.
    a0 : (n_a, m) IN.  waa : (n_a, n_a), wax : (n_a, n_x) IN.
    small_max : where the panel GEMM does not run (a single step, SIMD level SSE2, a packed
        block above 256 MiB), batches of at most this many examples use the small-batch
        kernel for the recurrent product, larger ones BLAS.
    scratch : a list of one slot in which the work buffer is kept between calls (one list
        per thread), or None.

    Returns
    -------
    (dx (n_x, m, T), da0 (n_a, m), dWaa (n_a, n_a), dWax (n_a, n_x), dba (n_a,)), or None
    when an argument is not exactly that (or a size is 0).
    """
    cdef int typenum = float_typenum(da)
    if typenum < 0:
        return None
    cdef cnp.ndarray daa = exact(da, typenum, 3, -1, -1, -1)
    if daa is None:
        return None
    cdef Py_ssize_t n_a = daa.shape[0], m = daa.shape[1], T = daa.shape[2]
    cdef cnp.ndarray xa = exact(x, typenum, 3, -1, m, T)
    if xa is None:
        return None
    cdef Py_ssize_t n_x = xa.shape[0]
    if not sizes_ok(n_x, n_a, n_a, m, T):
        return None
    cdef cnp.ndarray ha = exact(h, typenum, 3, m, T, n_a)
    cdef cnp.ndarray a0a = exact(a0, typenum, 2, n_a, m)
    cdef cnp.ndarray wa = exact(waa, typenum, 2, n_a, n_a)
    cdef cnp.ndarray wx = exact(wax, typenum, 2, n_a, n_x)
    cdef cnp.ndarray pa = None
    if prev is not None:
        pa = exact(prev, typenum, 3, m, T, n_a)
        if pa is None:
            return None
    if ha is None or a0a is None or wa is None or wx is None:
        return None
    cdef Args a
    a.lstm, a.n_x, a.n_a, a.m, a.T = 0, n_x, n_a, m, T
    a.ldcn, a.P, a.ldwa, a.ldwx, a.lddwa, a.lddwx = 0, n_a, n_a, n_x, n_a, n_x
    a.x, a.g, a.cn = cnp.PyArray_BYTES(xa), cnp.PyArray_BYTES(ha), NULL
    a.wa[0], a.wx[0], a.merged = cnp.PyArray_BYTES(wa), cnp.PyArray_BYTES(wx), 1
    a.cpv = NULL
    set_mode(&a, typenum, small_max)
    cdef bint make_prev = pa is None
    if not make_prev:
        a.prev = cnp.PyArray_BYTES(pa)
    cdef cnp.ndarray dx = empty(3, n_x, m, T, typenum)
    cdef cnp.ndarray da0 = empty(2, n_a, m, 0, typenum)
    cdef cnp.ndarray dwa = empty(2, n_a, n_a, 0, typenum)
    cdef cnp.ndarray dwx = empty(2, n_a, n_x, 0, typenum)
    cdef cnp.ndarray db = empty(1, n_a, 0, 0, typenum)
    a.dx, a.da0, a.dc0 = cnp.PyArray_BYTES(dx), cnp.PyArray_BYTES(da0), NULL
    a.dwa, a.dwx, a.db = cnp.PyArray_BYTES(dwa), cnp.PyArray_BYTES(dwx), cnp.PyArray_BYTES(db)
    cdef cnp.ndarray work = scratch_array(scratch, 0, work_elems(&a, make_prev), typenum)
    split_work(&a, cnp.PyArray_BYTES(work), cnp.PyArray_ITEMSIZE(work), make_prev)
    cdef char *dap = cnp.PyArray_BYTES(daa)
    cdef char *hp = cnp.PyArray_BYTES(ha)
    cdef char *a0p = cnp.PyArray_BYTES(a0a)
    with nogil:
        prepare(typenum, &a, dap, hp, n_a, a0p, NULL, make_prev, NULL)
        run_core(typenum, &a)
    return dx, da0, dwa, dwx, db


cdef int lstm_weights(object w, int typenum, Py_ssize_t n_a, Py_ssize_t K, char **wp):
    # w: the merged block (4n_a, K) or a sequence of the four gate matrices (n_a, K) in the
    # kernel's gate order.  Sets wp[0..3]; returns 1 when they are consecutive blocks of one
    # array, 0 when they must be copied into one, -1 when w is not exactly that.
    cdef cnp.ndarray arr
    cdef Py_ssize_t k, item = 4 if typenum == cnp.NPY_FLOAT32 else 8
    arr = exact(w, typenum, 2, 4 * n_a, K)
    if arr is not None:
        for k in range(4):
            wp[k] = cnp.PyArray_BYTES(arr) + k * n_a * K * item
        return 1
    if not isinstance(w, (tuple, list)) or len(w) != 4:
        return -1
    cdef bint merged = True
    for k in range(4):
        arr = exact(w[k], typenum, 2, n_a, K)
        if arr is None:
            return -1
        wp[k] = cnp.PyArray_BYTES(arr)
        merged = merged and wp[k] == wp[0] + k * n_a * K * item
    return 1 if merged else 0


def lstm_backward(object da, object x, object z, object s, object prev, object a0,
                  object c0, object w, int small_max, object dc_next=None,
                  list scratch=None):
    """LSTM backward pass over a sequence, the GIL released throughout.

    Parameters (all exactly C-contiguous, aligned, native arrays of one float dtype)
    ----------
    da : (n_a, m, T) IN.  x : (n_x, m, T) IN.
    z : (m, T, 4n_a) IN, the activated gates [f, i, o, c] (the forward's gate buffer).
    s : (m, T, 2n_a) IN, [a_t, c_t] (the forward's state buffer; the c half is read).
    prev : (m, T, 2n_a) IN, [a_{t-1}; c_{t-1}] of every column, or None: a_{t-1} built
        from s and a0, c_{t-1} read from s and c0.
    a0 : (n_a, m) IN.  c0 : (n_a, m) IN, or None for zeros.
    w : the four gate matrices (n_a, n_a + n_x) in the order f, i, o, c, or their merged
        block (4n_a, n_a + n_x) IN.
    small_max : as for :func:`rnn_backward`.
    dc_next : (n_a, m) IN, the gradient reaching the last cell state, or None for zeros.
    scratch : as for :func:`rnn_backward`.

    Returns
    -------
    (dx (n_x, m, T), da0 (n_a, m), dc0 (n_a, m), dW (4n_a, n_a + n_x), db (4n_a,)), the
    gate rows in the order f, i, o, c; or None.
    """
    cdef int typenum = float_typenum(da)
    if typenum < 0:
        return None
    cdef cnp.ndarray daa = exact(da, typenum, 3, -1, -1, -1)
    if daa is None:
        return None
    cdef Py_ssize_t n_a = daa.shape[0], m = daa.shape[1], T = daa.shape[2]
    cdef cnp.ndarray xa = exact(x, typenum, 3, -1, m, T)
    if xa is None:
        return None
    cdef Py_ssize_t n_x = xa.shape[0], K = n_a + n_x, G = 4 * n_a
    if not sizes_ok(n_x, G, n_a, m, T):
        return None
    cdef cnp.ndarray za = exact(z, typenum, 3, m, T, G)
    cdef cnp.ndarray sa = exact(s, typenum, 3, m, T, 2 * n_a)
    cdef cnp.ndarray a0a = exact(a0, typenum, 2, n_a, m)
    cdef cnp.ndarray c0a = None
    cdef cnp.ndarray pa = None
    if za is None or sa is None or a0a is None:
        return None
    if prev is not None:
        pa = exact(prev, typenum, 3, m, T, 2 * n_a)
        if pa is None:
            return None
    if c0 is None:
        c0a = empty(2, n_a, m, 0, typenum)
        memset(cnp.PyArray_BYTES(c0a), 0, n_a * m * cnp.PyArray_ITEMSIZE(c0a))
    else:
        c0a = exact(c0, typenum, 2, n_a, m)
        if c0a is None:
            return None
    cdef cnp.ndarray dcn = None
    if dc_next is not None:
        dcn = exact(dc_next, typenum, 2, n_a, m)
        if dcn is None:
            return None
    cdef char *wp[4]
    cdef int merged = lstm_weights(w, typenum, n_a, K, wp)
    if merged < 0:
        return None
    cdef Args a
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(daa)
    cdef bint make_prev = pa is None
    a.lstm, a.n_x, a.n_a, a.m, a.T = 1, n_x, n_a, m, T
    a.ldcn, a.P, a.lddwa, a.lddwx = 2 * n_a, K, K, K
    a.x, a.g = cnp.PyArray_BYTES(xa), cnp.PyArray_BYTES(za)
    a.cn = cnp.PyArray_BYTES(sa) + n_a * item
    a.cpv = NULL if make_prev else cnp.PyArray_BYTES(pa) + n_a * item
    set_blocks(&a, wp, item)
    a.merged = merged
    set_mode(&a, typenum, small_max)
    cdef cnp.ndarray dx = empty(3, n_x, m, T, typenum)
    cdef cnp.ndarray da0 = empty(2, n_a, m, 0, typenum)
    cdef cnp.ndarray dc0 = empty(2, n_a, m, 0, typenum)
    cdef cnp.ndarray dw = empty(2, G, K, 0, typenum)
    cdef cnp.ndarray db = empty(1, G, 0, 0, typenum)
    a.dx, a.da0, a.dc0 = cnp.PyArray_BYTES(dx), cnp.PyArray_BYTES(da0), cnp.PyArray_BYTES(dc0)
    a.dwa, a.dwx = cnp.PyArray_BYTES(dw), cnp.PyArray_BYTES(dw) + n_a * item
    a.db = cnp.PyArray_BYTES(db)
    cdef cnp.ndarray work = scratch_array(scratch, 0, work_elems(&a, make_prev), typenum)
    split_work(&a, cnp.PyArray_BYTES(work), item, make_prev)
    cdef char *dap = cnp.PyArray_BYTES(daa)
    cdef char *sp = cnp.PyArray_BYTES(sa)
    cdef char *a0p = cnp.PyArray_BYTES(a0a)
    cdef char *c0p = cnp.PyArray_BYTES(c0a)
    cdef char *dcp = cnp.PyArray_BYTES(dcn) if dcn is not None else NULL
    with nogil:
        prepare(typenum, &a, dap, sp, 2 * n_a, a0p, c0p, make_prev, dcp)
        run_core(typenum, &a)
    return dx, da0, dc0, dw, db


# ------------------------------------------------------------------ whole-model gradients

cdef int check_model_arrays(cnp.ndarray y, cnp.ndarray targets, Py_ssize_t n_y,
                            Py_ssize_t m, Py_ssize_t T, int typenum) except -1:
    if (exact(y, typenum, 3, n_y, m, T) is None
            or exact(targets, cnp.NPY_INTP, 2, m, T) is None
            or not cnp.PyArray_ISWRITEABLE(y)):
        raise ValueError("kernel: y must be a writable (n_y, m, T) array of the model's "
                         "dtype and targets an intp (m, T) array, both C-contiguous")
    return 0


cdef double run_output(int typenum, int n_y, int n_a, int mT, char *y, Py_ssize_t *tg,
                       char *hs, int ldh, char *wy, char *dwy, char *dby, char *dat,
                       int lddat) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        return output_core[float](n_y, n_a, mT, <float *> y, tg, <float *> hs, ldh,
                                  <float *> wy, <float *> dwy, <float *> dby, <float *> dat,
                                  lddat)
    return output_core[double](n_y, n_a, mT, <double *> y, tg, <double *> hs, ldh,
                               <double *> wy, <double *> dwy, <double *> dby, <double *> dat,
                               lddat)


def rnn_loss_backward(cnp.ndarray y not None, cnp.ndarray targets not None,
                      cnp.ndarray x not None, cnp.ndarray h not None,
                      cnp.ndarray a0 not None, cnp.ndarray wax not None,
                      cnp.ndarray waa not None, cnp.ndarray wya not None, int small_max,
                      list scratch=None):
    """Loss and gradients of a basic-RNN model after its forward pass.

    y (n_y, m, T) IN/OUT: the softmax outputs, overwritten with dL/d(logits).  targets
    (m, T) intp, in range (validated by the caller).  x (n_x, m, T), h (m, T, n_a) the
    forward's state buffer, a0 (n_a, m), wax (n_a, n_x), waa (n_a, n_a), wya (n_y, n_a) IN.
    ``scratch``: a list of one slot for the work buffer, kept between calls.

    Returns (loss, dWax, dWaa, dWya, dba (n_a,), dby (n_y,), da0).
    """
    cdef int typenum = float_typenum(wya)
    if typenum < 0 or cnp.PyArray_NDIM(wya) != 2 or cnp.PyArray_NDIM(x) != 3:
        raise ValueError("kernel: wya must be 2-d float32/float64, x 3-d")
    cdef Py_ssize_t n_y = wya.shape[0], n_a = wya.shape[1]
    cdef Py_ssize_t n_x = x.shape[0], m = x.shape[1], T = x.shape[2]
    if (exact(x, typenum, 3, n_x, m, T) is None or exact(h, typenum, 3, m, T, n_a) is None
            or exact(a0, typenum, 2, n_a, m) is None
            or exact(wax, typenum, 2, n_a, n_x) is None
            or exact(waa, typenum, 2, n_a, n_a) is None or not sizes_ok(n_x, n_a, n_a, m, T)
            or n_y > 2**31 - 1):
        raise ValueError("kernel: arrays of the wrong shape, dtype or layout")
    check_model_arrays(y, targets, n_y, m, T, typenum)
    cdef Args a
    a.lstm, a.n_x, a.n_a, a.m, a.T = 0, n_x, n_a, m, T
    a.ldcn, a.P, a.ldwa, a.ldwx, a.lddwa, a.lddwx = 0, n_a, n_a, n_x, n_a, n_x
    a.x, a.g, a.cn = cnp.PyArray_BYTES(x), cnp.PyArray_BYTES(h), NULL
    a.wa[0], a.wx[0], a.merged = cnp.PyArray_BYTES(waa), cnp.PyArray_BYTES(wax), 1
    a.cpv = NULL
    set_mode(&a, typenum, small_max)
    cdef cnp.ndarray da0 = empty(2, n_a, m, 0, typenum)
    cdef cnp.ndarray dwa = empty(2, n_a, n_a, 0, typenum)
    cdef cnp.ndarray dwx = empty(2, n_a, n_x, 0, typenum)
    cdef cnp.ndarray db = empty(1, n_a, 0, 0, typenum)
    cdef cnp.ndarray dwy = empty(2, n_y, n_a, 0, typenum)
    cdef cnp.ndarray dby = empty(1, n_y, 0, 0, typenum)
    a.dx, a.da0, a.dc0 = NULL, cnp.PyArray_BYTES(da0), NULL
    a.dwa, a.dwx, a.db = cnp.PyArray_BYTES(dwa), cnp.PyArray_BYTES(dwx), cnp.PyArray_BYTES(db)
    cdef cnp.ndarray work = scratch_array(scratch, 0, work_elems(&a, True), typenum)
    split_work(&a, cnp.PyArray_BYTES(work), cnp.PyArray_ITEMSIZE(work), True)
    cdef double loss
    cdef char *yp = cnp.PyArray_BYTES(y)
    cdef Py_ssize_t *tg = <Py_ssize_t *> cnp.PyArray_DATA(targets)
    cdef char *hp = cnp.PyArray_BYTES(h)
    cdef char *a0p = cnp.PyArray_BYTES(a0)
    cdef char *wyp = cnp.PyArray_BYTES(wya)
    cdef char *dwyp = cnp.PyArray_BYTES(dwy)
    cdef char *dbyp = cnp.PyArray_BYTES(dby)
    with nogil:
        loss = run_output(typenum, n_y, n_a, m * T, yp, tg, hp, n_a, wyp, dwyp, dbyp, a.d,
                          n_a)
        prepare(typenum, &a, NULL, hp, n_a, a0p, NULL, True, NULL)
        run_core(typenum, &a)
    return loss, dwx, dwa, dwy, db, dby, da0


def lstm_loss_backward(cnp.ndarray y not None, cnp.ndarray targets not None,
                       cnp.ndarray x not None, cnp.ndarray z not None,
                       cnp.ndarray s not None, cnp.ndarray a0 not None,
                       cnp.ndarray c0 not None, cnp.ndarray w not None,
                       cnp.ndarray wy not None, int small_max, list scratch=None):
    """Loss and gradients of an LSTM model after its forward pass.

    y, targets, x as for :func:`rnn_loss_backward`; z (m, T, 4n_a), s (m, T, 2n_a) the
    forward's gate and state buffers; a0, c0 (n_a, m); w the merged gate block
    (4n_a, n_a + n_x) in the order f, i, o, c; wy (n_y, n_a).

    Returns (loss, dW (4n_a, n_a + n_x), db (4n_a,), dWy, dby (n_y,), da0, dc0).
    """
    cdef int typenum = float_typenum(wy)
    if typenum < 0 or cnp.PyArray_NDIM(wy) != 2 or cnp.PyArray_NDIM(x) != 3:
        raise ValueError("kernel: wy must be 2-d float32/float64, x 3-d")
    cdef Py_ssize_t n_y = wy.shape[0], n_a = wy.shape[1]
    cdef Py_ssize_t n_x = x.shape[0], m = x.shape[1], T = x.shape[2]
    cdef Py_ssize_t K = n_a + n_x, G = 4 * n_a
    if (exact(x, typenum, 3, n_x, m, T) is None or exact(z, typenum, 3, m, T, G) is None
            or exact(s, typenum, 3, m, T, 2 * n_a) is None
            or exact(a0, typenum, 2, n_a, m) is None or exact(c0, typenum, 2, n_a, m) is None
            or exact(w, typenum, 2, G, K) is None or not sizes_ok(n_x, G, n_a, m, T)
            or n_y > 2**31 - 1):
        raise ValueError("kernel: arrays of the wrong shape, dtype or layout")
    check_model_arrays(y, targets, n_y, m, T, typenum)
    cdef Args a
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(wy)
    a.lstm, a.n_x, a.n_a, a.m, a.T = 1, n_x, n_a, m, T
    a.ldcn, a.P, a.lddwa, a.lddwx = 2 * n_a, K, K, K
    a.x, a.g = cnp.PyArray_BYTES(x), cnp.PyArray_BYTES(z)
    a.cn, a.cpv = cnp.PyArray_BYTES(s) + n_a * item, NULL
    cdef char *wp[4]
    cdef Py_ssize_t k
    for k in range(4):
        wp[k] = cnp.PyArray_BYTES(w) + k * n_a * K * item
    set_blocks(&a, wp, item)
    a.merged = 1
    set_mode(&a, typenum, small_max)
    cdef cnp.ndarray da0 = empty(2, n_a, m, 0, typenum)
    cdef cnp.ndarray dc0 = empty(2, n_a, m, 0, typenum)
    cdef cnp.ndarray dw = empty(2, G, K, 0, typenum)
    cdef cnp.ndarray db = empty(1, G, 0, 0, typenum)
    cdef cnp.ndarray dwy = empty(2, n_y, n_a, 0, typenum)
    cdef cnp.ndarray dby = empty(1, n_y, 0, 0, typenum)
    a.dx, a.da0, a.dc0 = NULL, cnp.PyArray_BYTES(da0), cnp.PyArray_BYTES(dc0)
    a.dwa, a.dwx = cnp.PyArray_BYTES(dw), cnp.PyArray_BYTES(dw) + n_a * item
    a.db = cnp.PyArray_BYTES(db)
    cdef cnp.ndarray work = scratch_array(scratch, 0, work_elems(&a, True), typenum)
    split_work(&a, cnp.PyArray_BYTES(work), item, True)
    cdef double loss
    cdef char *yp = cnp.PyArray_BYTES(y)
    cdef Py_ssize_t *tg = <Py_ssize_t *> cnp.PyArray_DATA(targets)
    cdef char *sp = cnp.PyArray_BYTES(s)
    cdef char *a0p = cnp.PyArray_BYTES(a0)
    cdef char *c0p = cnp.PyArray_BYTES(c0)
    cdef char *wyp = cnp.PyArray_BYTES(wy)
    cdef char *dwyp = cnp.PyArray_BYTES(dwy)
    cdef char *dbyp = cnp.PyArray_BYTES(dby)
    with nogil:
        loss = run_output(typenum, n_y, n_a, m * T, yp, tg, sp, 2 * n_a, wyp, dwyp, dbyp, a.d,
                          G)
        prepare(typenum, &a, NULL, sp, 2 * n_a, a0p, c0p, True, NULL)
        run_core(typenum, &a)
    return loss, dw, db, dwy, dby, da0, dc0


# ------------------------------------------------------------------ helpers for Python

def first_bad_target(cnp.ndarray targets not None, Py_ssize_t n_y):
    """Index (flat) of the first value of an intp C-contiguous array outside [0, n_y), or
    -1 (one pass, for the validation of targets)."""
    if exact(targets, cnp.NPY_INTP, cnp.PyArray_NDIM(targets), -1, -1, -1) is None:
        raise ValueError("targets must be a C-contiguous intp array")
    cdef Py_ssize_t *t = <Py_ssize_t *> cnp.PyArray_DATA(targets)
    cdef Py_ssize_t k, n = cnp.PyArray_SIZE(targets)
    for k in range(n):
        if t[k] < 0 or t[k] >= n_y:
            return k
    return -1


def sgd_update(cnp.ndarray w not None, object grad, double lr, double clip):
    """w -= lr * clip(grad, -clip, clip) in one pass (clip <= 0 or inf: no clipping), in
    place; w C-contiguous float32/float64, grad converted to its dtype and shape by the
    caller.  Returns the number of non-finite values in w afterwards."""
    cdef int typenum = float_typenum(w)
    if typenum < 0 or not cnp.PyArray_ISCARRAY(w):
        raise ValueError("w must be a writable C-contiguous float32/float64 array")
    cdef cnp.ndarray g = exact(grad, typenum, cnp.PyArray_NDIM(w), -1, -1, -1)
    if g is None or cnp.PyArray_SIZE(g) != cnp.PyArray_SIZE(w):
        raise ValueError("grad must be a C-contiguous array of w's dtype and size")
    cdef Py_ssize_t k, n = cnp.PyArray_SIZE(w), bad = 0
    cdef double *wd
    cdef double *gd
    cdef float *wf
    cdef float *gf
    cdef double v
    cdef bint do_clip = clip > 0 and clip != float("inf")
    with nogil:
        if typenum == cnp.NPY_FLOAT64:
            wd, gd = <double *> cnp.PyArray_DATA(w), <double *> cnp.PyArray_DATA(g)
            for k in range(n):
                v = gd[k]
                if do_clip:
                    v = clip if v > clip else (-clip if v < -clip else v)
                wd[k] = wd[k] - lr * v
                bad += not (wd[k] - wd[k] == 0)
        else:
            wf, gf = <float *> cnp.PyArray_DATA(w), <float *> cnp.PyArray_DATA(g)
            for k in range(n):
                v = gf[k]
                if do_clip:
                    v = clip if v > clip else (-clip if v < -clip else v)
                wf[k] = <float> (wf[k] - lr * v)
                bad += not (wf[k] - wf[k] == 0)
    return bad
