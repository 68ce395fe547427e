# Fused-type BLAS shims over scipy.linalg.cython_blas (the style of scikit-learn's
# sklearn/utils/_cython_blas.pyx): one math line per shim, column-major as BLAS sees it.
# The kernels keep every matrix row-major (C order); a row-major (r, c) matrix with row stride
# ld is the column-major (c, r) matrix with leading dimension ld, i.e. its transpose, and the
# kernels pick operand order and 'T'/'N' flags accordingly (written above each call).
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm_acc(char transa, char transb, int M, int N, int K,
                          const floating *A, int lda, const floating *B, int ldb,
                          floating *C, int ldc) noexcept nogil:
    # C (M x N) += op(A) (M x K) @ op(B) (K x N), all column-major.  Sizes of zero do nothing,
    # so the callers never hand BLAS a leading dimension it would reject.
    cdef floating one = 1
    if M <= 0 or N <= 0 or K <= 0:
        return
    if floating is float:
        sgemm(&transa, &transb, &M, &N, &K, &one, <float *> A, &lda, <float *> B, &ldb,
              &one, C, &ldc)
    else:
        dgemm(&transa, &transb, &M, &N, &K, &one, <double *> A, &lda, <double *> B, &ldb,
              &one, C, &ldc)
