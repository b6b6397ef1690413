# The AVX-512 kernels of avx512.h (float32 only), for the .pxi kernels that use them:
# included before gemm_rows.pxi and patch_kernels.pxi. avx512_enabled() says whether to
# take them (the CPU has AVX-512 and $CYFFE_AVX512 is not 0).
cdef extern from "avx512.h":
    bint avx512_enabled "cyffe_avx512_enabled" () noexcept nogil
    bint sgemm_suits "cyffe_sgemm_suits" (bint trans_b, int m) noexcept nogil
    int avx512_sgemm "cyffe_sgemm" (bint trans_a, bint trans_b, int m, int n, int k,
                                    float alpha, const float* a, int lda, const float* b,
                                    int ldb, float beta, float* c, int ldc) noexcept nogil
    void avx512_plane_to_columns "cyffe_plane_to_columns" (
        const float* plane, float* col, Py_ssize_t ld, Py_ssize_t height, Py_ssize_t width,
        int kh, int kw, int ph, int pw, int sh, int dh, int dw, int ho, int wo) noexcept nogil
    void avx512_columns_to_plane "cyffe_columns_to_plane" (
        const float* col, Py_ssize_t ld, float* plane, Py_ssize_t height, Py_ssize_t width,
        int kh, int kw, int ph, int pw, int sh, int dh, int dw, int ho, int wo) noexcept nogil
    void avx512_max_pool_plane "cyffe_max_pool_plane" (
        const float* x, Py_ssize_t height, Py_ssize_t width, float* y, int* mask, int ho,
        int wo, int kh, int kw, int sh, int sw, int ph, int pw) noexcept nogil
    void avx512_ave_pool_plane "cyffe_ave_pool_plane" (
        const float* x, Py_ssize_t height, Py_ssize_t width, float* y, int ho, int wo, int kh,
        int kw, int sh, int sw, int ph, int pw, int eh, int ew) noexcept nogil

# Ask once, on import, before any thread does.
avx512_enabled()
