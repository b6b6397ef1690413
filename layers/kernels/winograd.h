/* The transforms of Winograd's F(4x4, 3x3) (winograd.pyx has the method), in C so that
 * the compiler may vectorize them: every loop runs over a contiguous run of tiles, and
 * `restrict` tells it that the runs do not overlap. One body per element type
 * (CYFFE_WINOGRAD(float, f32) and (double, f64) below).
 *
 *   B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0]   A^T = [1  1  1  1  1  0]
 *         [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6]         [0  1 -1  2 -2  0]
 *         [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6]         [0  1  1  4  4  0]
 *         [0 -2 -1  2  1  0]       [1/24  1/12   1/6]         [0  1 -1  8 -8  1]
 *         [0  2 -1 -2  1  0]       [1/24 -1/12   1/6]
 *         [0  4  0 -5  0  1]       [   0     0     1]
 */
#ifndef CYFFE_WINOGRAD_H
#define CYFFE_WINOGRAD_H

#include <stddef.h>

#include "clones.h"

/* out[j] = (B^T d)[j] for the six rows d[0..5] (each n long, `stride` apart). */
#define CYFFE_WINOGRAD_BT(T, d, stride, out, ostride, n)                                     \
    for (ptrdiff_t t = 0; t < (n); t++) {                                                     \
        const T d0 = (d)[t], d1 = (d)[(stride) + t], d2 = (d)[2 * (stride) + t];              \
        const T d3 = (d)[3 * (stride) + t], d4 = (d)[4 * (stride) + t];                       \
        const T d5 = (d)[5 * (stride) + t];                                                   \
        (out)[t] = 4 * d0 - 5 * d2 + d4;                                                      \
        (out)[(ostride) + t] = -4 * d1 - 4 * d2 + d3 + d4;                                    \
        (out)[2 * (ostride) + t] = 4 * d1 - 4 * d2 - d3 + d4;                                 \
        (out)[3 * (ostride) + t] = -2 * d1 - d2 + 2 * d3 + d4;                                \
        (out)[4 * (ostride) + t] = 2 * d1 - d2 - 2 * d3 + d4;                                 \
        (out)[5 * (ostride) + t] = 4 * d1 - 5 * d3 + d5;                                      \
    }

#define CYFFE_WINOGRAD(T, S)                                                                  \
/* V[xi * step + t] for the tiles t < tiles of tile row `tile_row` of one plane (height x    \
 * width, padded by ph rows above and pw columns left; zero outside). rows: scratch of        \
 * 48 * (tiles + 1). The six input rows go in by column phase (column 4t + q at               \
 * rows[(4i + q) * span + t]), so a tile's six columns are phases 0-3 of tile t and 0-1 of     \
 * tile t + 1: contiguous runs, all of them. */                                                \
CYFFE_CLONES static void cyffe_winograd_input_##S(const T* restrict plane, ptrdiff_t height,              \
                                     ptrdiff_t width, ptrdiff_t ph, ptrdiff_t pw,             \
                                     ptrdiff_t tile_row, ptrdiff_t tiles, T* restrict v,      \
                                     ptrdiff_t step, T* restrict rows)                        \
{                                                                                             \
    const ptrdiff_t span = tiles + 1;                                                         \
    T* restrict down = rows + 24 * span;                                                      \
    for (int i = 0; i < 6; i++) {                                                             \
        const ptrdiff_t h = tile_row * 4 - ph + i;                                            \
        T* restrict r = rows + 4 * i * span;                                                  \
        if (h < 0 || h >= height) {                                                           \
            for (ptrdiff_t k = 0; k < 4 * span; k++)                                          \
                r[k] = 0;                                                                     \
            continue;                                                                         \
        }                                                                                     \
        const T* restrict src = plane + h * width;                                            \
        /* tiles [lo, hi) read all four of their columns inside the row */                    \
        ptrdiff_t lo = (pw + 3) / 4, hi = (width + pw) / 4;                                   \
        if (hi > span)                                                                        \
            hi = span;                                                                        \
        if (lo > hi)                                                                          \
            lo = hi;                                                                          \
        for (ptrdiff_t t = 0; t < span; t++) {                                                \
            if (t >= lo && t < hi)                                                            \
                continue;                                                                     \
            for (int q = 0; q < 4; q++) {                                                     \
                const ptrdiff_t x = 4 * t + q - pw;                                           \
                r[q * span + t] = x >= 0 && x < width ? src[x] : 0;                           \
            }                                                                                 \
        }                                                                                     \
        for (ptrdiff_t t = lo; t < hi; t++) {                                                 \
            const T* restrict s = src + 4 * t - pw;                                           \
            r[t] = s[0];                                                                      \
            r[span + t] = s[1];                                                               \
            r[2 * span + t] = s[2];                                                           \
            r[3 * span + t] = s[3];                                                           \
        }                                                                                     \
    }                                                                                         \
    CYFFE_WINOGRAD_BT(T, rows, 4 * span, down, 4 * span, 4 * span)                            \
    for (int i = 0; i < 6; i++) {                                                             \
        const T* restrict r = down + 4 * i * span;                                            \
        T* restrict out = v + 6 * i * step;                                                   \
        for (ptrdiff_t t = 0; t < tiles; t++) {                                               \
            const T d0 = r[t], d1 = r[span + t], d2 = r[2 * span + t];                        \
            const T d3 = r[3 * span + t], d4 = r[t + 1], d5 = r[span + t + 1];                \
            out[t] = 4 * d0 - 5 * d2 + d4;                                                    \
            out[step + t] = -4 * d1 - 4 * d2 + d3 + d4;                                       \
            out[2 * step + t] = 4 * d1 - 4 * d2 - d3 + d4;                                    \
            out[3 * step + t] = -2 * d1 - d2 + 2 * d3 + d4;                                   \
            out[4 * step + t] = 2 * d1 - d2 - 2 * d3 + d4;                                    \
            out[5 * step + t] = 4 * d1 - 5 * d3 + d5;                                         \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
                                                                                              \
/* The 4x4 outputs of tile row `tile_row` of one output plane (ho x wo) from M (element      \
 * (xi, t) at m[xi * step + t]), times scale plus bias, then a ReLU of negative slope `slope` \
 * if relu,                                                                                   \
 * clipped at the plane's edges.                                                              \
 * scratch: 28 * tiles. Along each tile first (M A), then down the columns, a row of tiles    \
 * at a time, then laid into the plane. */                                                    \
CYFFE_CLONES static void cyffe_winograd_output_##S(const T* restrict m, ptrdiff_t step, \
                                      ptrdiff_t tiles, T scale, T bias, int relu,             \
                                      double slope,                                           \
                                      T* restrict plane, ptrdiff_t ho, ptrdiff_t wo,          \
                                      ptrdiff_t tile_row, T* restrict scratch)                \
{                                                                                             \
    T* restrict out = scratch + 24 * tiles;                                                   \
    for (int i = 0; i < 6; i++) {                                                             \
        const T* restrict r = m + 6 * i * step;                                               \
        T* restrict o = scratch + 4 * i * tiles;                                              \
        for (ptrdiff_t t = 0; t < tiles; t++) {                                               \
            const T m0 = r[t], m1 = r[step + t], m2 = r[2 * step + t];                        \
            const T m3 = r[3 * step + t], m4 = r[4 * step + t], m5 = r[5 * step + t];         \
            o[t] = m0 + m1 + m2 + m3 + m4;                                                    \
            o[tiles + t] = m1 - m2 + 2 * m3 - 2 * m4;                                         \
            o[2 * tiles + t] = m1 + m2 + 4 * m3 + 4 * m4;                                     \
            o[3 * tiles + t] = m1 - m2 + 8 * m3 - 8 * m4 + m5;                                \
        }                                                                                     \
    }                                                                                         \
    const ptrdiff_t rows = ho - 4 * tile_row < 4 ? ho - 4 * tile_row : 4;                     \
    const T* restrict o = scratch;                                                            \
    static const T at[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0},    \
                               {0, 1, -1, 8, -8, 1}};                                         \
    for (ptrdiff_t y = 0; y < rows; y++) {                                                    \
        const T c0 = at[y][0], c1 = at[y][1], c2 = at[y][2], c3 = at[y][3], c4 = at[y][4];    \
        const T c5 = at[y][5];                                                                \
        for (ptrdiff_t a = 0; a < 4; a++) {                                                   \
            T* restrict row = out + a * tiles;                                                \
            const T* restrict c = o + a * tiles;                                              \
            for (ptrdiff_t t = 0; t < tiles; t++)                                             \
                row[t] = c0 * c[t] + c1 * c[4 * tiles + t] + c2 * c[8 * tiles + t] +          \
                         c3 * c[12 * tiles + t] + c4 * c[16 * tiles + t] +                    \
                         c5 * c[20 * tiles + t];                                              \
        }                                                                                     \
        if (relu) {            /* the slope as T is exact: a float32 value */               \
            const T s = (T)slope;                                                             \
            for (ptrdiff_t t = 0; t < 4 * tiles; t++) {                                       \
                const T v = out[t] * scale + bias;    /* x 1 is exact */                      \
                out[t] = v > 0 ? v : v * s;                                                   \
            }                                                                                 \
        }                                                                                     \
        else                                                                                  \
            for (ptrdiff_t t = 0; t < 4 * tiles; t++)                                         \
                out[t] = out[t] * scale + bias;                                               \
        T* restrict dst = plane + (4 * tile_row + y) * wo;                                    \
        const ptrdiff_t whole = wo / 4;                                                       \
        for (ptrdiff_t t = 0; t < whole; t++) {                                               \
            dst[4 * t] = out[t];                                                              \
            dst[4 * t + 1] = out[tiles + t];                                                  \
            dst[4 * t + 2] = out[2 * tiles + t];                                              \
            dst[4 * t + 3] = out[3 * tiles + t];                                              \
        }                                                                                     \
        for (ptrdiff_t x = 4 * whole; x < wo; x++)                                            \
            dst[x] = out[(x % 4) * tiles + x / 4];                                            \
    }                                                                                         \
}

CYFFE_WINOGRAD(float, f32)
CYFFE_WINOGRAD(double, f64)

#endif
