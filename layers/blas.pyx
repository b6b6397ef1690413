"""Matrix products on every core, each block on one thread.

gemm(a, b, c) computes c = alpha op(a) op(b) + beta c like np.dot(..., out=c), but cuts
c into blocks of columns (or of rows, when c is tall) that OpenMP threads take one at a
time, each with a one-thread call: cyffe's AVX-512 kernel for float32 where the CPU has
it (gemm_rows.pxi), one-thread BLAS otherwise. Threaded OpenBLAS spin-waits: beside
another process on a 2-core machine its small products became 100-1000x slower. Blocks
taken on demand also let a thread on a busy core do less of the work.
"""
from cython.parallel import prange
from cython cimport floating

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int cyffe_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int cyffe_max_threads(void) { return 1; }
    #endif
    """
    int max_threads "cyffe_max_threads" () noexcept nogil

include "avx512.pxi"
include "gemm_rows.pxi"

# Below this many multiply-adds a product runs on the calling thread.
PARALLEL_WORK = 1 << 20
# Blocks per thread: more balance a busy core; fewer repack op(a) less often.
BLOCKS_PER_THREAD = 2
# Block edges fall on multiples of this many elements (the AVX-512 kernel's panel width).
ALIGN = 32


def avx512():
    """Whether float32 products, im2col and col2im take cyffe's AVX-512 kernels
    (avx512.h): the CPU has AVX-512 and $CYFFE_AVX512 is not 0."""
    return bool(avx512_enabled())


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
    cdef int threads = max_threads()
    cdef bint by_columns = n >= m
    cdef int span = n if by_columns else m
    cdef int width = span
    if threads > 1 and <double>m * n * k >= PARALLEL_WORK:
        width = (span + threads * BLOCKS_PER_THREAD - 1) // (threads * BLOCKS_PER_THREAD)
        width = min(span, (width + ALIGN - 1) // ALIGN * ALIGN)
    cdef int blocks = (span + width - 1) // width
    cdef int block, lo, size
    if blocks == 1:
        with nogil:
            gemm_rows(trans_a, trans_b, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc)
        return
    with nogil:
        for block in prange(blocks, schedule="dynamic", chunksize=1):
            lo = block * width
            size = min(width, span - lo)
            if by_columns:
                # op(b)'s columns lo.. are b's columns, or b's rows when b is transposed.
                gemm_rows(trans_a, trans_b, m, size, k, alpha, pa, lda,
                          pb + (lo * ldb if trans_b else lo), ldb, beta, pc + lo, ldc)
            else:
                gemm_rows(trans_a, trans_b, size, n, k, alpha,
                          pa + (lo if trans_a else lo * lda), lda, pb, ldb, beta,
                          pc + lo * ldc, ldc)
