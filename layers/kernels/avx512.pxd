# cyffe's AVX-512 kernels for float32 (avx512.h), compiled once, in avx512.pyx. enabled()
# says whether to take them: the CPU has AVX-512 and $CYFFE_AVX512 is not "0".

cdef bint enabled() noexcept nogil
cdef bint sgemm_suits(bint trans_b, int m) noexcept nogil
# c = alpha op(a) op(b) + beta c, then each row i: c = c * scales[i] + bias[i] and a ReLU of
# negative slope slopes[i] (a NULL array: none of that step). 0, or -1 with nothing written.
cdef int sgemm(bint trans_a, bint trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc,
               const double* scales, const float* bias, const double* slopes) noexcept nogil
cdef void plane_to_columns(const float* plane, float* col, Py_ssize_t ld, Py_ssize_t height,
                           Py_ssize_t width, int kh, int kw, int ph, int pw, int sh, int dh,
                           int dw, int ho, int wo) noexcept nogil
cdef void columns_to_plane(const float* col, Py_ssize_t ld, float* plane, Py_ssize_t height,
                           Py_ssize_t width, int kh, int kw, int ph, int pw, int sh, int dh,
                           int dw, int ho, int wo) noexcept nogil
cdef void max_pool_plane(const float* x, Py_ssize_t height, Py_ssize_t width, float* y,
                         int* mask, int ho, int wo, int kh, int kw, int sh, int sw, int ph,
                         int pw) noexcept nogil
cdef void ave_pool_plane(const float* x, Py_ssize_t height, Py_ssize_t width, float* y, int ho,
                         int wo, int kh, int kw, int sh, int sw, int ph, int pw, int eh,
                         int ew) noexcept nogil
