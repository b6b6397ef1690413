from cython cimport floating

cdef void gemm_rows(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                    const floating* a, int lda, const floating* b, int ldb, floating beta,
                    floating* c, int ldc) noexcept nogil
cdef void gemm_rows_out(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                        const floating* a, int lda, const floating* b, int ldb, floating beta,
                        floating* c, int ldc, const double* scales, const floating* bias,
                        const double* slopes) noexcept nogil
cdef int max_threads() noexcept nogil
cdef void gemm_threads(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb, floating beta,
                       floating* c, int ldc) noexcept nogil
