"""Matrix products: gemm_rows on the calling thread, gemm on every core.

gemm_rows (cimported by the kernels that multiply inside their own loops) computes a
row-major product on one thread: cyffe's AVX-512 kernel for float32 where it suits the
product, scipy's BLAS otherwise (found on first use: importing scipy.linalg costs about
27 MB of memory, which float32 on AVX-512 never needs). gemm(a, b, c) computes
c = alpha op(a) op(b) + beta c like np.dot(..., out=c), but cuts c into blocks of columns
(or of rows, when c is tall) that OpenMP threads take one at a time, each with gemm_rows. Threaded OpenBLAS spin-waits:
beside another process on a 2-core machine its small products became 100-1000x slower.
Blocks taken on demand also let a thread on a busy core do less of the work.
"""
cimport cython
from cython.parallel import prange
from cython cimport floating
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer

from . cimport avx512

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int cyffe_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int cyffe_max_threads(void) { return 1; }
    #endif
    """
    int omp_max_threads "cyffe_max_threads" () noexcept nogil


ctypedef void (*sgemm_f)(char* ta, char* tb, int* m, int* n, int* k, float* alpha, float* a,
                        int* lda, float* b, int* ldb, float* beta, float* c,
                        int* ldc) noexcept nogil
ctypedef void (*dgemm_f)(char* ta, char* tb, int* m, int* n, int* k, double* alpha, double* a,
                        int* lda, double* b, int* ldb, double* beta, double* c,
                        int* ldc) noexcept nogil
cdef sgemm_f sgemm = NULL
cdef dgemm_f dgemm = NULL


cdef bint load_blas() noexcept nogil:
    """Point sgemm and dgemm at scipy's (scipy.linalg.cython_blas's exported functions);
    False if they can't be had (then gemm_rows computes plainly)."""
    global sgemm, dgemm
    with gil:
        if dgemm == NULL:
            try:
                exported = __import__("scipy.linalg.cython_blas", fromlist=["_"]).__pyx_capi__
                s, d = exported["sgemm"], exported["dgemm"]
                sgemm = <sgemm_f>PyCapsule_GetPointer(s, PyCapsule_GetName(s))
                dgemm = <dgemm_f>PyCapsule_GetPointer(d, PyCapsule_GetName(d))
            except Exception as err:
                import warnings
                warnings.warn(f"cyffe: scipy's BLAS is unavailable ({err}); products it would "
                              "take run in plain loops", RuntimeWarning)
        return dgemm != NULL


cdef void plain_gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                     const floating* a, int lda, const floating* b, int ldb, floating beta,
                     floating* c, int ldc) noexcept nogil:
    """c = alpha op(a) op(b) + beta c, row-major, in loops: only without scipy's BLAS."""
    cdef int i, j, p
    cdef floating total
    for i in range(m):
        for j in range(n):
            total = 0
            for p in range(k):
                total = total + ((a[p * lda + i] if trans_a else a[i * lda + p]) *
                                 (b[j * ldb + p] if trans_b else b[p * ldb + j]))
            c[i * ldc + j] = alpha * total + (beta * c[i * ldc + j] if beta != 0 else 0)


cdef extern from "dot_rows.h":
    void dot_rows_f32 "cyffe_dot_rows_f32" (int m, int n, int k, float alpha, const float* a,
                                            Py_ssize_t lda, const float* b, Py_ssize_t ldb,
                                            float beta, float* c, Py_ssize_t ldc,
                                            Py_ssize_t ldc_j) noexcept nogil
    void dot_rows_f64 "cyffe_dot_rows_f64" (int m, int n, int k, double alpha,
                                            const double* a, Py_ssize_t lda, const double* b,
                                            Py_ssize_t ldb, double beta, double* c,
                                            Py_ssize_t ldc, Py_ssize_t ldc_j) noexcept nogil

cdef enum:
    # Fewer rows of c than this, with a transposed b, go to dot_rows (the AVX-512 kernel's
    # tile height).
    DOT_ROWS = 8


cdef int max_threads() noexcept nogil:
    return omp_max_threads()


cdef inline void dot_rows(int m, int n, int k, floating alpha, const floating* a,
                          Py_ssize_t lda, const floating* b, Py_ssize_t ldb, floating beta,
                          floating* c, Py_ssize_t ldc, Py_ssize_t ldc_j) noexcept nogil:
    if floating is float:
        dot_rows_f32(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ldc_j)
    else:
        dot_rows_f64(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ldc_j)


cdef void gemm_rows(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                    const floating* a, int lda, const floating* b, int ldb, floating beta,
                    floating* c, int ldc) noexcept nogil:
    """c (m, n) = alpha op(a) op(b) + beta c, all row-major with leading dimensions ld*."""
    gemm_rows_out(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, NULL,
                  NULL)


cdef void gemm_rows_out(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                        const floating* a, int lda, const floating* b, int ldb, floating beta,
                        floating* c, int ldc, const double* scales, const floating* bias,
                        const double* slopes) noexcept nogil:
    """gemm_rows, then each row i of c: c = c * scales[i] + bias[i], then a ReLU of negative
    slope slopes[i] (a NULL array: none of that step). The AVX-512 kernel does it as it
    stores c (a convolution's folded BatchNorm, bias and ReLU); otherwise a pass follows.

    A few rows against a transposed b (an InnerProduct on a few images), and a matrix
    times one column, are dot products of rows: dot_rows reads each row once where a GEMM
    kernel would pack it. BLAS is column-major: a row-major matrix is the column-major
    transpose, so this asks for c^T = op(b)^T op(a)^T, which swaps the operands, not the
    transposes.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if not trans_a and trans_b and m < DOT_ROWS:
        dot_rows(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 1)
    elif not trans_a and not trans_b and n == 1 and ldb == 1:
        dot_rows(1, m, k, alpha, b, 0, a, lda, beta, c, 0, ldc)
    # (the AVX-512 kernel declines, writing nothing, only if its panels could not be allocated)
    elif floating is float and avx512.sgemm_suits(trans_b, m) and avx512.sgemm(
            trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, scales,
            <const float*>bias, slopes) == 0:
        return
    elif dgemm == NULL and not load_blas():
        plain_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    elif floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)
    if scales != NULL or bias != NULL or slopes != NULL:
        rows_out(m, n, c, ldc, scales, bias, slopes)


cdef void rows_out(int m, int n, floating* c, int ldc, const double* scales,
                   const floating* bias, const double* slopes) noexcept nogil:
    """Each row i of c (m, n): c = c * scales[i] + bias[i], then a ReLU of slope slopes[i]."""
    cdef int i, j
    cdef floating factor, shift, slope, value
    cdef floating* row
    for i in range(m):
        row = c + <Py_ssize_t>i * ldc
        factor = <floating>scales[i] if scales != NULL else 1        # x 1 is exact
        shift = bias[i] if bias != NULL else 0
        if slopes != NULL:
            # The slope in a local of c's type (exact: slopes are float32 values or Caffe's
            # float negative_slope), so the loop compiles to blends.
            slope = <floating>slopes[i]
            for j in range(n):
                value = row[j] * factor + shift
                row[j] = value if value > 0 else value * slope
        else:
            for j in range(n):
                row[j] = row[j] * factor + shift


cdef enum:
    # Below this many multiply-adds a product runs on the calling thread.
    PARALLEL_WORK = 1 << 22
    # Dot products (few rows against a transposed b) read b once: past this many elements
    # of b (1 MiB of float32, about a core's L2 cache), its rows are split between the
    # threads.
    DOT_WORK = 1 << 22
    # Blocks per thread: more balance a busy core; fewer repack op(a) less often.
    BLOCKS_PER_THREAD = 2
    # Block edges fall on multiples of this many elements (the AVX-512 kernel's panel width).
    ALIGN = 32


def thread_count():
    """How many OpenMP threads a parallel loop gets (OMP_NUM_THREADS, or the cores; 1 in a
    build without OpenMP)."""
    return max_threads()


cdef int leading(const floating[:, :] array, str name) except -1:
    """The leading dimension of a matrix whose rows are contiguous."""
    if array.shape[1] > 1 and array.strides[1] != sizeof(floating):
        raise ValueError(f"gemm: the rows of {name} must be contiguous")
    if array.shape[0] > 1:
        return max(1, array.strides[0] // sizeof(floating))
    return max(1, array.shape[1])


@cython.boundscheck(False)
@cython.wraparound(False)
def gemm(const floating[:, :] a, const floating[:, :] b, floating[:, :] c,
         bint trans_a=False, bint trans_b=False, floating alpha=1, floating beta=0):
    """c = alpha op(a) op(b) + beta c (op transposes when asked); c may be a strided view."""
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    if ((a.shape[1] if trans_a else a.shape[0]) != m or
            (b.shape[0] if trans_b else b.shape[1]) != n or
            (b.shape[1] if trans_b else b.shape[0]) != k):
        raise ValueError(f"gemm: shapes {(a.shape[0], a.shape[1])}{'^T' if trans_a else ''} "
                         f"x {(b.shape[0], b.shape[1])}{'^T' if trans_b else ''} -> "
                         f"{(c.shape[0], c.shape[1])} do not fit")
    if m == 0 or n == 0:
        return
    cdef int lda = leading(a, "a"), ldb = leading(b, "b"), ldc = leading(c, "c")
    cdef const floating* pa = &a[0, 0] if k else NULL
    cdef const floating* pb = &b[0, 0] if k else NULL
    cdef floating* pc = &c[0, 0]
    cdef Py_ssize_t i, j
    if k == 0:
        # BLAS leaves c alone when k is 0 only if beta is 1; scale it by beta as promised.
        for i in range(m):
            for j in range(n):
                c[i, j] = beta * c[i, j] if beta else 0
        return
    with nogil:
        gemm_threads(trans_a, trans_b, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc)


cdef void gemm_threads(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb, floating beta,
                       floating* c, int ldc) noexcept nogil:
    """gemm_rows cut into blocks for every thread when the product is big enough."""
    cdef int threads = max_threads()
    cdef int block, lo, size
    if not trans_a and trans_b and m < DOT_ROWS and threads > 1 and <double>n * k >= DOT_WORK:
        # Memory-bound dot products: the same share of b's rows to each thread on every
        # call (static), so a share that fits the core's cache stays there between calls.
        size = (n + threads - 1) // threads
        for block in prange(threads, schedule="static"):
            lo = block * size
            if lo < n:
                dot_rows(m, min(size, n - lo), k, alpha, a, lda, b + lo * ldb, ldb, beta,
                         c + lo, ldc, 1)
        return
    cdef bint by_columns = n >= m
    cdef int span = n if by_columns else m
    cdef int width = span
    if threads > 1 and <double>m * n * k >= PARALLEL_WORK:
        width = (span + threads * BLOCKS_PER_THREAD - 1) // (threads * BLOCKS_PER_THREAD)
        width = min(span, (width + ALIGN - 1) // ALIGN * ALIGN)
    cdef int blocks = (span + width - 1) // width
    if blocks == 1:
        gemm_rows(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    for block in prange(blocks, schedule="dynamic", chunksize=1):
        lo = block * width
        size = min(width, span - lo)
        if by_columns:
            # op(b)'s columns lo.. are b's columns, or b's rows when b is transposed.
            gemm_rows(trans_a, trans_b, m, size, k, alpha, a, lda,
                      b + (lo * ldb if trans_b else lo), ldb, beta, c + lo, ldc)
        else:
            gemm_rows(trans_a, trans_b, size, n, k, alpha,
                      a + (lo if trans_a else lo * lda), lda, b, ldb, beta,
                      c + lo * ldc, ldc)
