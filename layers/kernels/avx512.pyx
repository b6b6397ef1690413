"""The one home of avx512.h's kernels: every other module cimports them from here, so the
header's state (the run-time choice, each thread's GEMM panels) exists once per process.

The signatures and what each kernel computes are in avx512.pxd and avx512.h.
"""

cdef extern from "avx512.h":
    bint c_enabled "cyffe_avx512_enabled" () noexcept nogil
    bint c_sgemm_suits "cyffe_sgemm_suits" (bint trans_b, int m) noexcept nogil
    ctypedef struct rows_out "cyffe_rows_out":
        const double* scales
        const float* bias
        const double* slopes
    int c_sgemm "cyffe_sgemm" (bint trans_a, bint trans_b, int m, int n, int k, float alpha,
                               const float* a, int lda, const float* b, int ldb, float beta,
                               float* c, int ldc, const rows_out* out) noexcept nogil
    void c_plane_to_columns "cyffe_plane_to_columns" (
        const float* plane, float* col, Py_ssize_t ld, Py_ssize_t height, Py_ssize_t width,
        int kh, int kw, int ph, int pw, int sh, int dh, int dw, int ho, int wo) noexcept nogil
    void c_columns_to_plane "cyffe_columns_to_plane" (
        const float* col, Py_ssize_t ld, float* plane, Py_ssize_t height, Py_ssize_t width,
        int kh, int kw, int ph, int pw, int sh, int dh, int dw, int ho, int wo) noexcept nogil
    void c_max_pool_plane "cyffe_max_pool_plane" (
        const float* x, Py_ssize_t height, Py_ssize_t width, float* y, int* mask, int ho,
        int wo, int kh, int kw, int sh, int sw, int ph, int pw) noexcept nogil
    void c_ave_pool_plane "cyffe_ave_pool_plane" (
        const float* x, Py_ssize_t height, Py_ssize_t width, float* y, int ho, int wo, int kh,
        int kw, int sh, int sw, int ph, int pw, int eh, int ew) noexcept nogil


cdef bint enabled() noexcept nogil:
    return c_enabled()


cdef bint sgemm_suits(bint trans_b, int m) noexcept nogil:
    return c_sgemm_suits(trans_b, m)


cdef int sgemm(bint trans_a, bint trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc,
               const double* scales, const float* bias, const double* slopes) noexcept nogil:
    cdef rows_out out
    out.scales, out.bias, out.slopes = scales, bias, slopes
    return c_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                   &out if scales != NULL or bias != NULL or slopes != NULL else NULL)


cdef void plane_to_columns(const float* plane, float* col, Py_ssize_t ld, Py_ssize_t height,
                           Py_ssize_t width, int kh, int kw, int ph, int pw, int sh, int dh,
                           int dw, int ho, int wo) noexcept nogil:
    c_plane_to_columns(plane, col, ld, height, width, kh, kw, ph, pw, sh, dh, dw, ho, wo)


cdef void columns_to_plane(const float* col, Py_ssize_t ld, float* plane, Py_ssize_t height,
                           Py_ssize_t width, int kh, int kw, int ph, int pw, int sh, int dh,
                           int dw, int ho, int wo) noexcept nogil:
    c_columns_to_plane(col, ld, plane, height, width, kh, kw, ph, pw, sh, dh, dw, ho, wo)


cdef void max_pool_plane(const float* x, Py_ssize_t height, Py_ssize_t width, float* y,
                         int* mask, int ho, int wo, int kh, int kw, int sh, int sw, int ph,
                         int pw) noexcept nogil:
    c_max_pool_plane(x, height, width, y, mask, ho, wo, kh, kw, sh, sw, ph, pw)


cdef void ave_pool_plane(const float* x, Py_ssize_t height, Py_ssize_t width, float* y, int ho,
                         int wo, int kh, int kw, int sh, int sw, int ph, int pw, int eh,
                         int ew) noexcept nogil:
    c_ave_pool_plane(x, height, width, y, ho, wo, kh, kw, sh, sw, ph, pw, eh, ew)


def available():
    """Whether float32 products, im2col/col2im and pooling take these kernels."""
    return bool(enabled())


# Ask once, on import, before any thread does.
enabled()
