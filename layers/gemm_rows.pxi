# Row-major GEMM, callable without the GIL; textually included (`include "gemm_rows.pxi"`)
# by the modules that multiply matrices in their own kernels, after avx512.pxi. float32
# products go to cyffe's AVX-512 kernel where it suits them, the rest to scipy's BLAS.
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm_rows(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                           const floating* a, int lda, const floating* b, int ldb,
                           floating beta, floating* c, int ldc) noexcept nogil:
    """c (m, n) = alpha op(a) op(b) + beta c, all row-major with leading dimensions ld*.

    BLAS is column-major: a row-major matrix is the column-major transpose, so this asks
    for c^T = op(b)^T op(a)^T, which swaps the operands, not the transposes.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        # (the kernel declines, writing nothing, only if its panels could not be allocated)
        if not sgemm_suits(trans_b, m) or avx512_sgemm(trans_a, trans_b, m, n, k, alpha, a,
                                                       lda, b, ldb, beta, c, ldc) != 0:
            sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c,
                  &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c,
              &ldc)
