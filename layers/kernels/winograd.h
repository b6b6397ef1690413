/* The transforms of Winograd's F(4x4, 3x3) (winograd.pyx has the method), in C on vectors
 * of tiles: every step runs over a contiguous run of tiles. One body per element type
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
#include <string.h>

#include "clones.h"

/* The transforms run on vectors along runs of tiles (GCC's vector extension): of 64 bytes
 * where a run is that long (one AVX-512 register, two AVX2 ones, four SSE ones), else of
 * 32 or 16 bytes. A run's last vector overlaps the one before it (writing the same values
 * twice) rather than leaving a scalar tail. The compiler would not vectorize these loops
 * by itself: it could not tell the scratch rows apart. */

/* o0..o5 = B^T (d0 .. d5): scalars or vectors alike. */
#define CYFFE_WINOGRAD_BT6(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)                    \
    o0 = 4 * (d0) - 5 * (d2) + (d4);                                                          \
    o1 = -4 * (d1) - 4 * (d2) + (d3) + (d4);                                                  \
    o2 = 4 * (d1) - 4 * (d2) - (d3) + (d4);                                                   \
    o3 = -2 * (d1) - (d2) + 2 * (d3) + (d4);                                                  \
    o4 = 2 * (d1) - (d2) - 2 * (d3) + (d4);                                                   \
    o5 = 4 * (d1) - 5 * (d3) + (d5);

/* y0..y3 = A^T (d0 .. d5): scalars or vectors alike. */
#define CYFFE_WINOGRAD_AT4(d0, d1, d2, d3, d4, d5, y0, y1, y2, y3)                            \
    y0 = (d0) + (d1) + (d2) + (d3) + (d4);                                                    \
    y1 = (d1) - (d2) + 2 * (d3) - 2 * (d4);                                                   \
    y2 = (d1) + (d2) + 4 * (d3) + 4 * (d4);                                                   \
    y3 = (d1) - (d2) + 8 * (d3) - 8 * (d4) + (d5);

/* BODY(V, t) for t = 0, L, 2L, ... over [0, n) with the widest vector type V of T whose L
 * lanes fit in n (the last step at n - L); SCALAR(t) for every t when not even 16 bytes
 * fit. */
#define CYFFE_WINOGRAD_RUN(T, n, BODY, SCALAR)                                                \
    do {                                                                                      \
        typedef T v64 __attribute__((vector_size(64)));                                       \
        typedef T v32 __attribute__((vector_size(32)));                                       \
        typedef T v16 __attribute__((vector_size(16)));                                       \
        if ((n) >= (ptrdiff_t)(64 / sizeof(T)))                                               \
            CYFFE_WINOGRAD_STEPS(v64, T, n, BODY)                                             \
        else if ((n) >= (ptrdiff_t)(32 / sizeof(T)))                                          \
            CYFFE_WINOGRAD_STEPS(v32, T, n, BODY)                                             \
        else if ((n) >= (ptrdiff_t)(16 / sizeof(T)))                                          \
            CYFFE_WINOGRAD_STEPS(v16, T, n, BODY)                                             \
        else                                                                                  \
            for (ptrdiff_t t = 0; t < (n); t++)                                               \
                SCALAR(t)                                                                     \
    } while (0)

#define CYFFE_WINOGRAD_STEPS(V, T, n, BODY)                                                   \
    for (ptrdiff_t t = 0, lanes = sizeof(V) / sizeof(T);; t += lanes) {                       \
        if (t > (n) - lanes)                                                                  \
            t = (n) - lanes;                                                                  \
        BODY(V, t)                                                                            \
        if (t == (n) - lanes)                                                                 \
            break;                                                                            \
    }

/* out[k * ostride + t] = (B^T d)[k] where d[m] = in[at[m] + t]: on vectors V at t. */
#define CYFFE_WINOGRAD_BT_STEP(V, t)                                                          \
    {                                                                                         \
        V d[6], o[6];                                                                         \
        for (int k = 0; k < 6; k++)                                                           \
            memcpy(&d[k], in + at[k] + (t), sizeof d[k]);       /* unaligned loads */         \
        CYFFE_WINOGRAD_BT6(d[0], d[1], d[2], d[3], d[4], d[5], o[0], o[1], o[2], o[3], o[4],  \
                           o[5])                                                              \
        for (int k = 0; k < 6; k++)                                                           \
            memcpy(out + k * ostride + (t), &o[k], sizeof o[k]);                              \
    }
#define CYFFE_WINOGRAD_BT_SCALAR(t)                                                           \
    {                                                                                         \
        CYFFE_WINOGRAD_BT6(in[at[0] + (t)], in[at[1] + (t)], in[at[2] + (t)],                 \
                           in[at[3] + (t)], in[at[4] + (t)], in[at[5] + (t)], out[t],         \
                           out[ostride + (t)], out[2 * ostride + (t)],                        \
                           out[3 * ostride + (t)], out[4 * ostride + (t)],                    \
                           out[5 * ostride + (t)])                                            \
    }

/* The output pass's step along the rows: the four columns x of (M A) at o + x * tiles from
 * the six elements of M at c (step apart). */
#define CYFFE_WINOGRAD_MA_STEP(V, t)                                                          \
    {                                                                                         \
        V d[6], y[4];                                                                         \
        for (int k = 0; k < 6; k++)                                                           \
            memcpy(&d[k], c + k * step + (t), sizeof d[k]);                                   \
        CYFFE_WINOGRAD_AT4(d[0], d[1], d[2], d[3], d[4], d[5], y[0], y[1], y[2], y[3])        \
        for (int x = 0; x < 4; x++)                                                           \
            memcpy(o + x * tiles + (t), &y[x], sizeof y[x]);                                  \
    }
#define CYFFE_WINOGRAD_MA_SCALAR(t)                                                           \
    {                                                                                         \
        __typeof__(c) d = c + (t);                                                            \
        CYFFE_WINOGRAD_AT4(d[0], d[step], d[2 * step], d[3 * step], d[4 * step], d[5 * step], \
                           o[t], o[tiles + (t)], o[2 * tiles + (t)], o[3 * tiles + (t)])      \
    }

/* The output pass's step down the columns: the four outputs y of column x from the six
 * rows of M A at c (4 * tiles apart), times scale plus bias, then the ReLU, into
 * o[4 * y * tiles + t]. */
#define CYFFE_WINOGRAD_AT_STEP(V, t)                                                          \
    {                                                                                         \
        V d[6], y[4];                                                                         \
        for (int k = 0; k < 6; k++)                                                           \
            memcpy(&d[k], c + 4 * k * tiles + (t), sizeof d[k]);                              \
        CYFFE_WINOGRAD_AT4(d[0], d[1], d[2], d[3], d[4], d[5], y[0], y[1], y[2], y[3])        \
        for (int k = 0; k < 4; k++) {                                                         \
            V v = y[k] * scale + bias;                       /* x 1 is exact */               \
            if (relu) {               /* v > 0 ? v : v * s, lane by lane, by the bits */      \
                const __typeof__(v > 0) positive = v > 0;                                     \
                const V sloped = v * s;                                                       \
                v = (V)(((__typeof__(positive))v & positive) |                                \
                        ((__typeof__(positive))sloped & ~positive));                          \
            }                                                                                 \
            memcpy(o + 4 * k * tiles + (t), &v, sizeof v);                                    \
        }                                                                                     \
    }
#define CYFFE_WINOGRAD_AT_SCALAR(t)                                                           \
    {                                                                                         \
        __typeof__(c) d = c + (t);                                                            \
        const ptrdiff_t r = 4 * tiles;                        /* rows of M A apart */         \
        __typeof__(scale) y[4];                                                               \
        CYFFE_WINOGRAD_AT4(d[0], d[r], d[2 * r], d[3 * r], d[4 * r], d[5 * r], y[0], y[1],    \
                           y[2], y[3])                                                        \
        for (int k = 0; k < 4; k++) {                                                         \
            const __typeof__(scale) v = y[k] * scale + bias;                                  \
            o[4 * k * tiles + (t)] = relu && !(v > 0) ? v * s : v;                            \
        }                                                                                     \
    }

#define CYFFE_WINOGRAD(T, S)                                                                  \
/* out[k * ostride + t] = (B^T d)[k] for t < n, where d[m] = in[at[m] + t]. */                \
static inline __attribute__((always_inline)) void cyffe_winograd_bt_##S(                      \
    const T* restrict in, const ptrdiff_t at[6], T* restrict out, ptrdiff_t ostride,          \
    ptrdiff_t n)                                                                              \
{                                                                                             \
    CYFFE_WINOGRAD_RUN(T, n, CYFFE_WINOGRAD_BT_STEP, CYFFE_WINOGRAD_BT_SCALAR);               \
}                                                                                             \
                                                                                              \
/* V[xi * step + t] for the tiles t < tiles of tile row `tile_row` of one plane (height x    \
 * width, padded by ph rows above and pw columns left; zero outside). rows: scratch of        \
 * 48 * (tiles + 1). The six input rows go in by column phase (column 4t + q at               \
 * rows[(4i + q) * span + t]), so a tile's six columns are phases 0-3 of tile t and 0-1 of     \
 * tile t + 1: contiguous runs, all of them. */                                                \
CYFFE_CLONES static void cyffe_winograd_input_##S(const T* restrict plane, ptrdiff_t height, \
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
    /* down the columns: the six rows into six, every phase at once */                       \
    const ptrdiff_t ld = 4 * span;                                                            \
    const ptrdiff_t vertical[6] = {0, ld, 2 * ld, 3 * ld, 4 * ld, 5 * ld};                    \
    cyffe_winograd_bt_##S(rows, vertical, down, ld, ld);                                      \
    /* along each row: tile t's columns are phases 0-3 at t and phases 0-1 at t + 1 */        \
    const ptrdiff_t across[6] = {0, span, 2 * span, 3 * span, 1, span + 1};                   \
    for (int i = 0; i < 6; i++)                                                               \
        cyffe_winograd_bt_##S(down + 4 * i * span, across, v + 6 * i * step, step, tiles);    \
}                                                                                             \
                                                                                              \
/* The 4x4 outputs of tile row `tile_row` of one output plane (ho x wo) from M (element      \
 * (xi, t) at m[xi * step + t]), times scale plus bias, then a ReLU of negative slope `slope` \
 * if relu, clipped at the plane's edges.                                                     \
 * scratch: 40 * tiles. Along each tile first (M A, 24 rows of tiles), then down the columns  \
 * into the 16 rows (y, x) of the tiles' outputs, then laid into the plane row by row. */     \
CYFFE_CLONES static void cyffe_winograd_output_##S(const T* restrict m, ptrdiff_t step,       \
                                      ptrdiff_t tiles, T scale, T bias, int relu,             \
                                      double slope,                                           \
                                      T* restrict plane, ptrdiff_t ho, ptrdiff_t wo,          \
                                      ptrdiff_t tile_row, T* restrict scratch)                \
{                                                                                             \
    const T s = (T)slope;             /* exact: a float32 value */                            \
    T* restrict across = scratch;                                                             \
    T* restrict out = scratch + 24 * tiles;                                                   \
    for (int i = 0; i < 6; i++) {                                                             \
        const T* restrict c = m + 6 * i * step;                                               \
        T* restrict o = across + 4 * i * tiles;                                               \
        CYFFE_WINOGRAD_RUN(T, tiles, CYFFE_WINOGRAD_MA_STEP, CYFFE_WINOGRAD_MA_SCALAR);       \
    }                                                                                         \
    /* out[(4y + x) * tiles + t]: output (y, x) of tile t, scaled, biased and rectified */   \
    for (int x = 0; x < 4; x++) {                                                             \
        const T* restrict c = across + x * tiles;                                             \
        T* restrict o = out + x * tiles;                                                      \
        CYFFE_WINOGRAD_RUN(T, tiles, CYFFE_WINOGRAD_AT_STEP, CYFFE_WINOGRAD_AT_SCALAR);       \
    }                                                                                         \
    const ptrdiff_t rows = ho - 4 * tile_row < 4 ? ho - 4 * tile_row : 4;                     \
    const ptrdiff_t whole = wo / 4;                                                           \
    for (ptrdiff_t y = 0; y < rows; y++) {                                                    \
        const T* restrict o = out + 4 * y * tiles;                                            \
        T* restrict dst = plane + (4 * tile_row + y) * wo;                                    \
        for (ptrdiff_t t = 0; t < whole; t++) {                                               \
            dst[4 * t] = o[t];                                                                \
            dst[4 * t + 1] = o[tiles + t];                                                    \
            dst[4 * t + 2] = o[2 * tiles + t];                                                \
            dst[4 * t + 3] = o[3 * tiles + t];                                                \
        }                                                                                     \
        for (ptrdiff_t x = 4 * whole; x < wo; x++)                                            \
            dst[x] = o[(x % 4) * tiles + x / 4];                                              \
    }                                                                                         \
}

CYFFE_WINOGRAD(float, f32)
CYFFE_WINOGRAD(double, f64)

#endif
