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
