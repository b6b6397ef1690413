/* Products with few rows, as dot products: c[i, j] = alpha * <a_i, b_j> + beta * c[i, j]
 * for i < m (m <= 8) and j < n, with a's rows a_i and b's rows b_j (k long, row-major with
 * leading dimensions), c[i, j] at c + i * ldc + j * ldc_j (beta 0: c is not read).
 *
 * This is the shape of an InnerProduct on a few images (y = x W^T: every weight row dotted
 * with every image) and of a matrix-vector product. A GEMM kernel packs b into panels for
 * reuse across rows of c that are not there; this reads each row of b once, from where it
 * lies, while the m rows of a stay in cache: memory-bound, as it should be. Sixteen
 * independent partial sums a row let the compiler vectorize the dot products. */
#ifndef CYFFE_DOT_ROWS_H
#define CYFFE_DOT_ROWS_H

#include <stddef.h>

#include "clones.h"

#define CYFFE_DOT_LANES 16

#define CYFFE_DOT_ROWS(T, S)                                                                  \
CYFFE_CLONES static void cyffe_dot_rows_##S(int m, int n, int k, T alpha,                     \
                                            const T* restrict a, ptrdiff_t lda,               \
                                            const T* restrict b, ptrdiff_t ldb, T beta,       \
                                            T* restrict c, ptrdiff_t ldc, ptrdiff_t ldc_j)    \
{                                                                                             \
    const int whole = k - k % CYFFE_DOT_LANES;                                                \
    for (int j = 0; j < n; j++) {                                                             \
        const T* restrict bj = b + j * ldb;                                                   \
        T acc[8][CYFFE_DOT_LANES];                                                            \
        for (int i = 0; i < m; i++)                                                           \
            for (int l = 0; l < CYFFE_DOT_LANES; l++)                                         \
                acc[i][l] = 0;                                                                \
        for (int p = 0; p < whole; p += CYFFE_DOT_LANES)                                      \
            for (int i = 0; i < m; i++) {                                                     \
                const T* restrict ai = a + i * lda + p;                                       \
                for (int l = 0; l < CYFFE_DOT_LANES; l++)                                     \
                    acc[i][l] += ai[l] * bj[p + l];                                           \
            }                                                                                 \
        for (int i = 0; i < m; i++) {                                                         \
            const T* restrict ai = a + i * lda;                                               \
            T sum = 0;                                                                        \
            for (int p = whole; p < k; p++)                                                   \
                sum += ai[p] * bj[p];                                                         \
            for (int l = 0; l < CYFFE_DOT_LANES; l++)                                         \
                sum += acc[i][l];                                                             \
            T* out = c + i * ldc + j * ldc_j;                                                 \
            *out = beta == 0 ? alpha * sum : alpha * sum + beta * *out;                       \
        }                                                                                     \
    }                                                                                         \
}

CYFFE_DOT_ROWS(float, f32)
CYFFE_DOT_ROWS(double, f64)

#endif
