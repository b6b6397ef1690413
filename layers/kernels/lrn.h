/* LRN across channels in one pass: y = x * (shift + a * sum of x^2 over the window of
 * channels)^-beta, for a block of pixels of one image at a time. The window sum builds in
 * a block-long row that stays in L1 (and the rows it reads in L2), where the portable path
 * wrote and re-read it in memory once per channel of the window and then made a second
 * pass for the power. The sum is the portable path's, term for term (in FMAs where the CPU
 * has them). One body per element type (CYFFE_LRN(float, f32) and (double, f64)).
 */
#ifndef CYFFE_LRN_H
#define CYFFE_LRN_H

#include <math.h>
#include <stddef.h>

#include "clones.h"

/* Pixels per block: a row of sums in L1, the channels' rows of a block in L2. */
#define CYFFE_LRN_BLOCK 512

#define CYFFE_LRN(T, S, SQRT, POW)                                                            \
/* Pixels [p0, p1) (at most CYFFE_LRN_BLOCK) of one image x (channels x pixels, rows         \
 * `pixels` apart), into y; into scale (same layout) too unless it is NULL. beta 0.75       \
 * (AlexNet's, GoogLeNet's) takes two square roots instead of a pow. */                      \
CYFFE_CLONES static void cyffe_lrn_across_##S(const T* restrict x, T* restrict y,             \
                                             T* restrict scale, ptrdiff_t channels,           \
                                             ptrdiff_t pixels, ptrdiff_t p0, ptrdiff_t p1,    \
                                             int half, T shift, T a, double beta)             \
{                                                                                             \
    T sum[CYFFE_LRN_BLOCK];                                                                   \
    const ptrdiff_t n = p1 - p0;                                                              \
    const int three_quarters = beta == 0.75;                                                  \
    const T minus_beta = (T)-beta;                                                            \
    for (ptrdiff_t c = 0; c < channels; c++) {                                                \
        const ptrdiff_t lo = c >= half ? c - half : 0;                                        \
        const ptrdiff_t hi = c + half < channels ? c + half : channels - 1;                   \
        for (ptrdiff_t p = 0; p < n; p++)                                                     \
            sum[p] = 0;                                                                       \
        for (ptrdiff_t j = lo; j <= hi; j++) {                                                \
            const T* restrict row = x + j * pixels + p0;                                      \
            for (ptrdiff_t p = 0; p < n; p++)                                                 \
                sum[p] += row[p] * row[p];                                                    \
        }                                                                                     \
        const T* restrict in = x + c * pixels + p0;                                           \
        T* restrict out = y + c * pixels + p0;                                                \
        for (ptrdiff_t p = 0; p < n; p++)                                                     \
            sum[p] = shift + a * sum[p];                                                      \
        if (three_quarters)                                                                   \
            for (ptrdiff_t p = 0; p < n; p++)                                                 \
                out[p] = in[p] * (1 / SQRT(sum[p] * SQRT(sum[p])));                           \
        else                                                                                  \
            for (ptrdiff_t p = 0; p < n; p++)                                                 \
                out[p] = in[p] * POW(sum[p], minus_beta);                                     \
        if (scale)                                                                            \
            for (ptrdiff_t p = 0; p < n; p++)                                                 \
                scale[c * pixels + p0 + p] = sum[p];                                          \
    }                                                                                         \
}

CYFFE_LRN(float, f32, sqrtf, powf)
CYFFE_LRN(double, f64, sqrt, pow)

#endif
