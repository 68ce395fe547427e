# The SIMD transpose of _transpose.h as one fused-type shim, shared by the kernel modules.
from cython cimport floating

cdef extern from "_transpose.h" nogil:
    void fr_transpose_d(const double *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                        double *dst, Py_ssize_t ldd)
    void fr_transpose_f(const float *src, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lds,
                        float *dst, Py_ssize_t ldd)


cdef inline void transpose(const floating *src, Py_ssize_t rows, Py_ssize_t cols,
                           Py_ssize_t lds, floating *dst, Py_ssize_t ldd) noexcept nogil:
    # dst[c, r] = src[r, c]: src (rows, cols) row stride lds, dst (cols, rows) row stride ldd.
    if floating is float:
        fr_transpose_f(src, rows, cols, lds, dst, ldd)
    else:
        fr_transpose_d(src, rows, cols, lds, dst, ldd)


cdef extern from "_transpose.h" nogil:
    void fr_stream_copy_d(double *dst, const double *src, Py_ssize_t n)
    void fr_stream_copy_f(float *dst, const float *src, Py_ssize_t n)


cdef inline void stream_copy(floating *dst, const floating *src, Py_ssize_t n) noexcept nogil:
    # dst[0:n] = src[0:n], stored past the caches (see _transpose.h).
    if floating is float:
        fr_stream_copy_f(dst, src, n)
    else:
        fr_stream_copy_d(dst, src, n)


cdef extern from "_transpose.h" nogil:
    enum: FR_LINE_BYTES
    void fr_ring_out_d(const double *ring, Py_ssize_t R, Py_ssize_t lds, Py_ssize_t slot0,
                       int dir, Py_ssize_t n, Py_ssize_t cols, double *dst, Py_ssize_t ldd)
    void fr_ring_out_f(const float *ring, Py_ssize_t R, Py_ssize_t lds, Py_ssize_t slot0,
                       int dir, Py_ssize_t n, Py_ssize_t cols, float *dst, Py_ssize_t ldd)


cdef inline void lines_out(const floating *ring, Py_ssize_t R, Py_ssize_t lds, Py_ssize_t q,
                           Py_ssize_t t, Py_ssize_t T, bint reverse, Py_ssize_t cols,
                           floating *dst, Py_ssize_t ldd, bint by_step=False) noexcept nogil:
    # One example's states out of a ring of R slots (row stride lds; the q-th step run in
    # slot q % R, or with ``by_step`` step t in slot t % R) into its rows dst[c * ldd + t]
    # (its sequence of a or c, time last), line by line: after step t has run, the steps
    # whose destination lines step t completes (forwards: from the line's first step to t;
    # in reverse: from t to the line's last step), or those left at the sequence's end.
    # Called after every step, it writes every line whole, once (see fr_ring_out_f).
    cdef Py_ssize_t L = FR_LINE_BYTES // sizeof(floating)
    cdef Py_ssize_t phase = (<size_t> dst // sizeof(floating)) % L
    cdef Py_ssize_t start, end, slot0
    cdef int dir
    if not reverse:
        end = t + 1
        if (phase + end) % L != 0 and end != T:
            return
        start = max(end - 1 - (phase + end - 1) % L, 0)
    else:
        if (phase + t) % L != 0 and t != 0:
            return
        start = t
        end = min(T, t + L - (phase + t) % L)
    if reverse and not by_step:  # the steps from start up ran in slots from q down
        slot0, dir = q % R, -1
    else:  # (forwards the q-th step run is step q)
        slot0, dir = start % R, 1
    if floating is float:
        fr_ring_out_f(ring, R, lds, slot0, dir, end - start, cols, dst + start, ldd)
    else:
        fr_ring_out_d(ring, R, lds, slot0, dir, end - start, cols, dst + start, ldd)
