# The products of the recurrences as fused-type shims, shared by the kernel modules: the
# small-batch kernel of _vmath.h and the packed-panel GEMM of _gemm.h.
from cython cimport floating

cdef extern from "_vmath.h" nogil:
    void fr_small_matmul_d(Py_ssize_t rows, Py_ssize_t m, Py_ssize_t K, const double *W,
                           Py_ssize_t ldw, const double *H, Py_ssize_t ldh, double *Z,
                           Py_ssize_t zrs, Py_ssize_t zcs)
    void fr_small_matmul_f(Py_ssize_t rows, Py_ssize_t m, Py_ssize_t K, const float *W,
                           Py_ssize_t ldw, const float *H, Py_ssize_t ldh, float *Z,
                           Py_ssize_t zrs, Py_ssize_t zcs)

cdef enum:
    # The packed block is a copy of the recurrent weights (per thread for a model, in the
    # thread's work buffer for a drop-in call): none above this many bytes.  Below, the panel
    # GEMM beats OpenBLAS's gemm also where the block streams from memory every step (its
    # row blocks prefetch the next one; measured on AMD Zen 4 against a 16 MiB limit: the
    # LSTM at n_a = 1024, float64, m = 4: 94 -> 41 ms, m = 64: 521 -> 409 ms; the RNN at
    # n_a = 4096, float32, m = 8: 170 -> 48 ms; the GRU at n_a = 2048, float32, m = 16: 85 ->
    # 42 ms; no case slower).
    PANEL_MAX_BYTES = 256 * 1024 * 1024

cdef extern from "_gemm.h" nogil:
    enum: FR_PANEL_BYTES  # a panel's bytes per column: FR_PANEL_BYTES / itemsize rows
    enum: FR_PACK_STREAM_ABOVE  # larger packed blocks are stored past the caches
    int fr_panel_available()
    Py_ssize_t fr_intel_l2_bytes()
    int fr_slow_l3()
    int fr_tile_cols()
    int fr_set_tile_cols(int n)
    Py_ssize_t fr_panel_size_d(Py_ssize_t rows, Py_ssize_t K)
    Py_ssize_t fr_panel_size_f(Py_ssize_t rows, Py_ssize_t K)
    void fr_panel_pack_d(Py_ssize_t rows, Py_ssize_t K, const double **W,
                         Py_ssize_t block_rows, Py_ssize_t ldw, double *P)
    void fr_panel_pack_f(Py_ssize_t rows, Py_ssize_t K, const float **W,
                         Py_ssize_t block_rows, Py_ssize_t ldw, float *P)
    void fr_panel_gemm_d(Py_ssize_t rows, Py_ssize_t m, Py_ssize_t K, Py_ssize_t Kp,
                         const double *P, const double *H, Py_ssize_t ldh, double *Z,
                         Py_ssize_t ldz, const double *bias, int descending)
    void fr_panel_gemm_f(Py_ssize_t rows, Py_ssize_t m, Py_ssize_t K, Py_ssize_t Kp,
                         const float *P, const float *H, Py_ssize_t ldh, float *Z,
                         Py_ssize_t ldz, const float *bias, int descending)


cdef inline void small_acc(int rows, int m, int K, const floating *w, int ldw,
                           const floating *h, int ldh, floating *z, Py_ssize_t zrs,
                           Py_ssize_t zcs) noexcept nogil:
    # z[r*zrs + j*zcs] += W[r, :] . H[:, j]; W row-major (rows, K), H column-major (K, m).
    if floating is float:
        fr_small_matmul_f(rows, m, K, w, ldw, h, ldh, z, zrs, zcs)
    else:
        fr_small_matmul_d(rows, m, K, w, ldw, h, ldh, z, zrs, zcs)


cdef inline bint step_descending(Py_ssize_t q) noexcept nogil:
    # Does the q-th step run read its recurrent block's panels from the last one (a batch of
    # one column tile whose block is read whole once per step: _gemm.h)?  Every other step
    # does.  A block near the size of L2 then finds most of its panels still there: in the
    # same order every step, each line the step's other traffic (gates, states) evicts is the
    # least recently used, the one needed next, and one eviction per cache set becomes a miss
    # for every panel line of that set; turning round, the step starts on the lines the
    # previous one read last.  Same products, same bits.
    return q & 1


cdef inline void panel_acc(Py_ssize_t rows, Py_ssize_t m, Py_ssize_t K, const floating *panel,
                           const floating *h, Py_ssize_t ldh, floating *z, Py_ssize_t ldz,
                           const floating *bias, Py_ssize_t k0=0,
                           Py_ssize_t Kp=-1, bint descending=False) noexcept nogil:
    # z (rows, m) += W (rows, K) @ H (K, m), W packed in panel (panel_pack); with a bias
    # (rows,) instead z = bias + W @ H in every column (K >= 1; z is not read).  W may be
    # columns [k0, k0 + K) of a block packed with Kp columns (default K).  ``descending``:
    # a batch of one column tile reads the panels from the last one (see step_descending).
    if Kp < 0:
        Kp = K
    if floating is float:
        fr_panel_gemm_f(rows, m, K, Kp, panel + k0 * (FR_PANEL_BYTES // sizeof(float)), h,
                        ldh, z, ldz, bias, descending)
    else:
        fr_panel_gemm_d(rows, m, K, Kp, panel + k0 * (FR_PANEL_BYTES // sizeof(double)), h,
                        ldh, z, ldz, bias, descending)


cdef inline Py_ssize_t panel_size(Py_ssize_t rows, Py_ssize_t K,
                                  const floating *like) noexcept nogil:
    # Elements of rows x K packed (like: any pointer of the dtype, which picks it).
    if floating is float:
        return fr_panel_size_f(rows, K)
    else:
        return fr_panel_size_d(rows, K)


cdef inline void panel_pack(int rows, int K, const floating **w, int block_rows, int ldw,
                            floating *panel) noexcept nogil:
    # panel := rows x K of the weights, whose rows come in blocks of block_rows rows each
    # (w[0], w[1], ...; the LSTM's gates, merged or not), for fr_panel_gemm.
    if floating is float:
        fr_panel_pack_f(rows, K, w, block_rows, ldw, panel)
    else:
        fr_panel_pack_d(rows, K, w, block_rows, ldw, panel)
