/* Products with few rows, as dot products: c[i, j] = alpha * <a_i, b_j> + beta * c[i, j]
 * for i < m (m <= 8) and j < n, with a's rows a_i and b's rows b_j (k long, row-major with
 * leading dimensions), c[i, j] at c + i * ldc + j * ldc_j (beta 0: c is not read).
 *
 * This is the shape of an InnerProduct on a few images (y = x W^T: every weight row dotted
 * with every image) and of a matrix-vector product. A GEMM kernel packs b into panels for
 * reuse across rows of c that are not there; this reads each row of b once, from where it
 * lies, while the m rows of a stay in cache: memory-bound, as it should be.
 *
 * The m x J sums of a block of J rows of b live in registers as 64-byte vectors (GCC's
 * vector extension: one AVX-512 register, two AVX2 ones, four SSE ones), with m and J
 * constants in each specialization so the compiler keeps them there: J rows of b are
 * loaded once per step and each is multiplied by all m rows of a. */
#ifndef CYFFE_DOT_ROWS_H
#define CYFFE_DOT_ROWS_H

#include <stddef.h>
#include <string.h>

#include "clones.h"

#define CYFFE_DOT_BYTES 64

/* m = M rows of a, J rows of b at a time (a case of cyffe_dot_rows' switch). */
#define CYFFE_DOT_CASE(S, M, J)                                                               \
    case M: cyffe_dot_columns_##S(M, J, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ldc_j);    \
        break;

#define CYFFE_DOT_ROWS(T, S)                                                                  \
typedef T cyffe_dot_vec_##S __attribute__((vector_size(CYFFE_DOT_BYTES)));                    \
enum { CYFFE_DOT_LANES_##S = CYFFE_DOT_BYTES / sizeof(T) };                                   \
                                                                                              \
static inline __attribute__((always_inline)) cyffe_dot_vec_##S                                \
cyffe_dot_load_##S(const T* p)                                                                \
{                                                                                             \
    cyffe_dot_vec_##S v;                                                                      \
    memcpy(&v, p, sizeof v);            /* an unaligned load */                               \
    return v;                                                                                 \
}                                                                                             \
                                                                                              \
typedef T cyffe_dot_half_##S __attribute__((vector_size(CYFFE_DOT_BYTES / 2)));               \
typedef T cyffe_dot_quarter_##S __attribute__((vector_size(CYFFE_DOT_BYTES / 4)));            \
                                                                                              \
/* The sum of v's lanes, halves added to halves (a few shuffles, not a chain of 16 adds). */  \
static inline __attribute__((always_inline)) T cyffe_dot_sum_##S(cyffe_dot_vec_##S v)         \
{                                                                                             \
    cyffe_dot_half_##S h[2];                                                                  \
    cyffe_dot_quarter_##S q[2];                                                               \
    memcpy(h, &v, sizeof h);                                                                  \
    h[0] += h[1];                                                                             \
    memcpy(q, &h[0], sizeof q);                                                               \
    q[0] += q[1];                                                                             \
    T sum = 0;                                                                                \
    for (int l = 0; l < (int)(sizeof q[0] / sizeof(T)); l++)                                  \
        sum += q[0][l];                                                                       \
    return sum;                                                                               \
}                                                                                             \
                                                                                              \
/* Columns j0 .. j0 + J - 1 of c's m = M rows. */                                             \
static inline __attribute__((always_inline)) void                                             \
cyffe_dot_block_##S(const int M, const int J, int k, T alpha, const T* restrict a,            \
                    ptrdiff_t lda, const T* restrict b, ptrdiff_t ldb, T beta,                \
                    T* restrict c, ptrdiff_t ldc, ptrdiff_t ldc_j)                            \
{                                                                                             \
    const int lanes = CYFFE_DOT_LANES_##S, whole = k - k % lanes;                             \
    cyffe_dot_vec_##S acc[8][4], bv[4];                                                       \
    for (int i = 0; i < M; i++)                                                               \
        for (int jj = 0; jj < J; jj++)                                                        \
            acc[i][jj] = (cyffe_dot_vec_##S){0};                                              \
    for (int p = 0; p < whole; p += lanes) {                                                  \
        for (int jj = 0; jj < J; jj++)                                                        \
            bv[jj] = cyffe_dot_load_##S(b + jj * ldb + p);                                    \
        for (int i = 0; i < M; i++) {                                                         \
            const cyffe_dot_vec_##S av = cyffe_dot_load_##S(a + i * lda + p);                 \
            for (int jj = 0; jj < J; jj++)                                                    \
                acc[i][jj] += av * bv[jj];                                                    \
        }                                                                                     \
    }                                                                                         \
    for (int i = 0; i < M; i++)                                                               \
        for (int jj = 0; jj < J; jj++) {                                                      \
            const T* restrict ai = a + i * lda;                                               \
            const T* restrict bj = b + jj * ldb;                                              \
            T sum = cyffe_dot_sum_##S(acc[i][jj]);                                            \
            for (int p = whole; p < k; p++)                                                   \
                sum += ai[p] * bj[p];                                                         \
            T* out = c + i * ldc + jj * ldc_j;                                                \
            *out = beta == 0 ? alpha * sum : alpha * sum + beta * *out;                       \
        }                                                                                     \
}                                                                                             \
                                                                                              \
/* All n columns, J at a time, the last few one at a time. */                                 \
static inline __attribute__((always_inline)) void                                             \
cyffe_dot_columns_##S(const int M, const int J, int n, int k, T alpha, const T* restrict a,   \
                      ptrdiff_t lda, const T* restrict b, ptrdiff_t ldb, T beta,              \
                      T* restrict c, ptrdiff_t ldc, ptrdiff_t ldc_j)                          \
{                                                                                             \
    int j = 0;                                                                                \
    for (; j + J <= n; j += J)                                                                \
        cyffe_dot_block_##S(M, J, k, alpha, a, lda, b + j * ldb, ldb, beta, c + j * ldc_j,   \
                            ldc, ldc_j);                                                      \
    for (; j < n; j++)                                                                        \
        cyffe_dot_block_##S(M, 1, k, alpha, a, lda, b + j * ldb, ldb, beta, c + j * ldc_j,   \
                            ldc, ldc_j);                                                      \
}                                                                                             \
                                                                                              \
CYFFE_CLONES static void cyffe_dot_rows_##S(int m, int n, int k, T alpha,                     \
                                            const T* restrict a, ptrdiff_t lda,               \
                                            const T* restrict b, ptrdiff_t ldb, T beta,       \
                                            T* restrict c, ptrdiff_t ldc, ptrdiff_t ldc_j)    \
{                                                                                             \
    /* Fewer rows of a, more rows of b at a time: about eight sums in registers. */           \
    switch (m) {                                                                              \
    CYFFE_DOT_CASE(S, 1, 4) CYFFE_DOT_CASE(S, 2, 4) CYFFE_DOT_CASE(S, 3, 2)                   \
    CYFFE_DOT_CASE(S, 4, 2) CYFFE_DOT_CASE(S, 5, 1) CYFFE_DOT_CASE(S, 6, 1)                   \
    CYFFE_DOT_CASE(S, 7, 1)                                                                   \
    default: cyffe_dot_columns_##S(8, 1, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ldc_j);   \
    }                                                                                         \
}

CYFFE_DOT_ROWS(float, f32)
CYFFE_DOT_ROWS(double, f64)

#endif
