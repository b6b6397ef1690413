/* cyffe's AVX-512 kernels for float32, chosen at run time: a GEMM, im2col and col2im of a
 * plane (2-D, stride 1 along the rows), and max and average pooling of a plane (stride 1
 * or 2 along the rows). Where the CPU (or the compiler) lacks AVX-512, or $CYFFE_AVX512
 * is 0, callers take BLAS and their portable loops instead.
 *
 * The GEMM: c (m x n) = alpha op(a) op(b) + beta c, every matrix row-major with a leading
 * dimension, as blas.gemm_rows asks of BLAS. One thread; callers split the work.
 *
 * Why our own: a BLAS may be built or told (OPENBLAS_CORETYPE) to use narrower kernels
 * than the CPU has, and the products of a convolution are short and wide (a few dozen
 * rows of weights times thousands of columns), a shape general kernels pack poorly.
 *
 * The layout follows the usual packed-panel scheme, reduced to one packed operand:
 * op(b) is copied KC rows by NC columns at a time into the thread's panels (32 columns
 * each, zeros past n), and every block of MR rows of c is computed against them by a
 * micro-kernel that keeps an MR x 32 tile in 2*MR vector registers (MR x 16 in MR for a
 * strip of at most 16 columns: Winograd's products at 13x13 and 14x14 are 16 wide).
 * op(a) is never packed: the micro-kernel broadcasts its elements from wherever they are
 * (a row of a, or a column when a is transposed), MR streams that the prefetchers follow
 * and that stay in L1 across the panels of a block.
 * Packing a transposed b costs a transpose of each panel, so callers with a transposed
 * b should have many rows of c to spread it over (cyffe_sgemm_suits says when).
 */
#ifndef CYFFE_AVX512_H
#define CYFFE_AVX512_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(_WIN32)
#define CYFFE_HAVE_AVX512_KERNEL 1
#include <immintrin.h>
#include <pthread.h>
#else
#define CYFFE_HAVE_AVX512_KERNEL 0
#endif

/* Rows of c per micro-kernel call, columns per panel, rows of op(b) per panel, and
 * columns of op(b) packed at a time (NC / NR panels: 256 KiB, in L2). */
#define CYFFE_MR 8
#define CYFFE_NR 32
#define CYFFE_KC 256
#define CYFFE_NC 256

/* The kernels run where the CPU and the OS have AVX-512, unless $CYFFE_AVX512 is "0"
 * (for a comparison, or to rule them out). Every module that includes this header asks
 * once, and they all get the same answer. */
static int cyffe_avx512_choice = -1;

static int cyffe_avx512_supported(void)
{
#if CYFFE_HAVE_AVX512_KERNEL
    /* libgcc's check covers the OS too: it reads XCR0 for the AVX-512 register state. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

static int cyffe_avx512_enabled(void)
{
    if (cyffe_avx512_choice < 0) {
        const char* choice = getenv("CYFFE_AVX512");
        cyffe_avx512_choice = cyffe_avx512_supported() && !(choice && !strcmp(choice, "0"));
    }
    return cyffe_avx512_choice;
}

/* Whether cyffe_sgemm should take a product: supported and switched on, and with a
 * transposed b only when c has at least a tile's rows to spread the transposing pack
 * over (from there on it beats one-thread OpenBLAS here: 1.2-1.8x on 8-31 rows). */
static int cyffe_sgemm_suits(int trans_b, int m)
{
    return cyffe_avx512_enabled() && (!trans_b || m >= CYFFE_MR);
}

#if CYFFE_HAVE_AVX512_KERNEL

#define CYFFE_AVX512 __attribute__((target("avx512f,fma")))
#define CYFFE_INLINE_AVX512 static inline __attribute__((always_inline, target("avx512f,fma")))

/* What a product's last pass does to each row r of c before storing it: c = c * scales[r]
 * + bias[r], then a ReLU of negative slope slopes[r] (a convolution's folded BatchNorm,
 * bias and ReLU); a NULL array: none of that step. */
typedef struct {
    const double* scales;
    const float* bias;
    const double* slopes;
} cyffe_rows_out;

/* The rows x 32 tile of c at c (masks m0, m1 cover the valid columns), or rows x 16 when
 * the strip is narrow (m1 empty; half the FMAs):
 * tile = alpha * sum_k a(r, k) panel[k][:] + beta * tile, with a(r, k) at
 * a[r * a_row + k * a_k], then `out` (NULL: nothing; its rows start at the tile's).
 * beta == 0 never reads c. `rows`, `narrow` and the strides'
 * pattern (trans) are compile-time constants at every call, so the tile lives in
 * registers. */
CYFFE_INLINE_AVX512 void cyffe_tile(const int rows, const int trans, const int narrow, int kc,
                                    const float* a, ptrdiff_t lda, const float* panel,
                                    float* c, ptrdiff_t ldc, __mmask16 m0, __mmask16 m1,
                                    float alpha, float beta, const cyffe_rows_out* out)
{
    const ptrdiff_t a_row = trans ? 1 : lda, a_k = trans ? lda : 1;
    __m512 lo[CYFFE_MR], hi[CYFFE_MR];
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        lo[r] = _mm512_setzero_ps();
        hi[r] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(panel + k * CYFFE_NR);
        const __m512 b1 = narrow ? b0 : _mm512_load_ps(panel + k * CYFFE_NR + 16);
        const float* ak = a + k * a_k;
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            const __m512 v = _mm512_set1_ps(ak[r * a_row]);
            lo[r] = _mm512_fmadd_ps(v, b0, lo[r]);
            if (!narrow)
                hi[r] = _mm512_fmadd_ps(v, b1, hi[r]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        float* cr = c + r * ldc;
        __m512 x0 = _mm512_mul_ps(va, lo[r]), x1 = _mm512_mul_ps(va, hi[r]);
        if (beta != 0.0f) {
            x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), x0);
            if (!narrow)
                x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), x1);
        }
        if (out) {
            const __m512 f = _mm512_set1_ps(out->scales ? (float)out->scales[r] : 1.0f);
            const __m512 t = _mm512_set1_ps(out->bias ? out->bias[r] : 0.0f);
            x0 = _mm512_fmadd_ps(x0, f, t);
            x1 = _mm512_fmadd_ps(x1, f, t);
            if (out->slopes) {             /* x > 0 ? x : x * slope, NaN staying NaN */
                const __m512 s = _mm512_set1_ps((float)out->slopes[r]);
                const __m512 zero = _mm512_setzero_ps();
                x0 = _mm512_mask_mul_ps(x0, _mm512_cmp_ps_mask(x0, zero, _CMP_NGT_UQ), x0, s);
                x1 = _mm512_mask_mul_ps(x1, _mm512_cmp_ps_mask(x1, zero, _CMP_NGT_UQ), x1, s);
            }
        }
        _mm512_mask_storeu_ps(cr, m0, x0);
        if (!narrow)
            _mm512_mask_storeu_ps(cr + 16, m1, x1);
    }
}

#define CYFFE_TILE_CASE(R)                                                              \
    case R:                                                                             \
        if (trans && narrow)                                                            \
            cyffe_tile(R, 1, 1, kc, a, lda, panel, c, ldc, m0, m1, alpha, beta, out);       \
        else if (trans)                                                                 \
            cyffe_tile(R, 1, 0, kc, a, lda, panel, c, ldc, m0, m1, alpha, beta, out);       \
        else if (narrow)                                                                \
            cyffe_tile(R, 0, 1, kc, a, lda, panel, c, ldc, m0, m1, alpha, beta, out);       \
        else                                                                            \
            cyffe_tile(R, 0, 0, kc, a, lda, panel, c, ldc, m0, m1, alpha, beta, out);       \
        break;

static CYFFE_AVX512 void cyffe_rows(int rows, int trans, int kc, const float* a,
                                    ptrdiff_t lda, const float* panel, float* c,
                                    ptrdiff_t ldc, __mmask16 m0, __mmask16 m1, float alpha,
                                    float beta, const cyffe_rows_out* out)
{
    const int narrow = m1 == 0;
    switch (rows) {
        CYFFE_TILE_CASE(8)
        CYFFE_TILE_CASE(7)
        CYFFE_TILE_CASE(6)
        CYFFE_TILE_CASE(5)
        CYFFE_TILE_CASE(4)
        CYFFE_TILE_CASE(3)
        CYFFE_TILE_CASE(2)
        CYFFE_TILE_CASE(1)
    }
}

/* r[k][j] = r[j][k]: a 16 x 16 transpose. Rows pair up by 32-bit elements, then by 64-bit
 * pairs (after which lane L of s[4i + c] holds column 4L + c of rows 4i .. 4i + 3), then the
 * four 128-bit lanes of a column come together from the four groups of rows. */
CYFFE_INLINE_AVX512 void cyffe_transpose16(__m512 r[16])
{
    __m512 t[16], s[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        s[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        s[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        s[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        s[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m512 u = _mm512_shuffle_f32x4(s[c], s[4 + c], 0x44);       /* lanes 0, 1 */
        const __m512 v = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0x44);
        const __m512 w = _mm512_shuffle_f32x4(s[c], s[4 + c], 0xEE);       /* lanes 2, 3 */
        const __m512 x = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(u, v, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(u, v, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(w, x, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(w, x, 0xDD);
    }
}

/* panel[k][0..31] = op(b)[k0 + k][j0 .. j0 + cols - 1], zeros past cols. */
static CYFFE_AVX512 void cyffe_pack(float* panel, const float* b, ptrdiff_t ldb,
                                    int trans_b, int k0, int kc, int j0, int cols,
                                    __mmask16 m0, __mmask16 m1)
{
    if (!trans_b) {
        for (int k = 0; k < kc; k++) {
            const float* src = b + (ptrdiff_t)(k0 + k) * ldb + j0;
            _mm512_store_ps(panel + k * CYFFE_NR, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(panel + k * CYFFE_NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
        return;
    }
    /* op(b)[k][j] = b[j][k]: each half of the panel (16 columns) is 16 rows of b (zeros
     * past cols), transposed 16 x 16 at a time in registers. */
    for (int half = 0; half < CYFFE_NR; half += 16)
        for (int k = 0; k < kc; k += 16) {
            const int run = kc - k < 16 ? kc - k : 16;
            const __mmask16 in = (__mmask16)((1u << run) - 1);
            __m512 r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = half + j < cols ? _mm512_maskz_loadu_ps(
                    in, b + (ptrdiff_t)(j0 + half + j) * ldb + k0 + k) : _mm512_setzero_ps();
            cyffe_transpose16(r);
            for (int q = 0; q < run; q++)
                _mm512_store_ps(panel + (k + q) * CYFFE_NR + half, r[q]);
        }
}

/* The lanes of a strip's two vectors that hold one of its `cols` columns. */
static inline void cyffe_strip_masks(int cols, __mmask16* m0, __mmask16* m1)
{
    *m0 = (__mmask16)(cols >= 16 ? 0xFFFF : (1u << cols) - 1);
    *m1 = (__mmask16)(cols >= 32 ? 0xFFFF : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
}

/* Each thread's block of packed panels (KC x NC floats, 256 KiB: too much for the stack
 * of every thread), allocated on first use and freed when the thread ends; NULL if the
 * allocation failed. */
static pthread_key_t cyffe_panels_key;
static pthread_once_t cyffe_panels_once = PTHREAD_ONCE_INIT;

static void cyffe_make_panels_key(void)
{
    pthread_key_create(&cyffe_panels_key, free);
}

static float* cyffe_panels(void)
{
    char* block;
    pthread_once(&cyffe_panels_once, cyffe_make_panels_key);
    block = (char*)pthread_getspecific(cyffe_panels_key);
    if (!block) {
        block = (char*)malloc(sizeof(float) * CYFFE_KC * CYFFE_NC + 64);
        if (!block || pthread_setspecific(cyffe_panels_key, block) != 0) {
            free(block);
            return NULL;
        }
    }
    /* the first cache line boundary in the block */
    return (float*)(block + (64 - (uintptr_t)block % 64));
}

/* Returns 0, or -1 (nothing written) when there is no memory for the panels. The last
 * pass over each block of rows applies `out` (row i of c at scales[i], ...), unless NULL. */
static CYFFE_AVX512 int cyffe_sgemm(int trans_a, int trans_b, int m, int n, int k,
                                    float alpha, const float* a, int lda, const float* b,
                                    int ldb, float beta, float* c, int ldc,
                                    const cyffe_rows_out* out)
{
    float* panels = cyffe_panels();
    __mmask16 m0, m1;
    if (!panels)
        return -1;
    /* A block of NC columns of op(b) at a time, KC rows of it at a time, packed as
     * NC / 32 panels; then each 8-row block of op(a) runs across all of them while its
     * elements sit in L1. */
    for (int jb = 0; jb < n; jb += CYFFE_NC) {
        const int block = n - jb < CYFFE_NC ? n - jb : CYFFE_NC;
        int k0 = 0;
        do {  /* once even when k == 0: c = beta c (a zero panel) */
            const int kc = k - k0 < CYFFE_KC ? k - k0 : CYFFE_KC;
            /* Later panels add to what the first one wrote. */
            const float panel_beta = k0 == 0 ? beta : 1.0f;
            for (int j0 = 0; j0 < block && kc > 0; j0 += CYFFE_NR) {
                const int cols = block - j0 < CYFFE_NR ? block - j0 : CYFFE_NR;
                cyffe_strip_masks(cols, &m0, &m1);
                cyffe_pack(panels + (ptrdiff_t)j0 * CYFFE_KC, b, ldb, trans_b, k0, kc,
                           jb + j0, cols, m0, m1);
            }
            for (int i0 = 0; i0 < m; i0 += CYFFE_MR) {
                const int rows = m - i0 < CYFFE_MR ? m - i0 : CYFFE_MR;
                const float* ap = trans_a ? a + (ptrdiff_t)k0 * lda + i0
                                          : a + (ptrdiff_t)i0 * lda + k0;
                cyffe_rows_out here;          /* out, from row i0 on, on the last pass */
                if (out && k0 + kc == k) {
                    here.scales = out->scales ? out->scales + i0 : NULL;
                    here.bias = out->bias ? out->bias + i0 : NULL;
                    here.slopes = out->slopes ? out->slopes + i0 : NULL;
                }
                for (int j0 = 0; j0 < block; j0 += CYFFE_NR) {
                    const int cols = block - j0 < CYFFE_NR ? block - j0 : CYFFE_NR;
                    cyffe_strip_masks(cols, &m0, &m1);
                    cyffe_rows(rows, trans_a, kc, ap, lda, panels + (ptrdiff_t)j0 * CYFFE_KC,
                               c + (ptrdiff_t)i0 * ldc + jb + j0, ldc, m0, m1, alpha,
                               panel_beta, out && k0 + kc == k ? &here : NULL);
                }
            }
            k0 += kc;
        } while (k0 < k);
    }
    return 0;
}

/* The valid lanes of a 16-float vector at x: x0 <= x + lane < x1 and x + lane < n. */
static inline __mmask16 cyffe_lanes(ptrdiff_t x, ptrdiff_t x0, ptrdiff_t x1, ptrdiff_t n)
{
    const ptrdiff_t lo = x0 > x ? x0 - x : 0;
    ptrdiff_t hi = (x1 < n ? x1 : n) - x;
    if (hi > 16)
        hi = 16;
    if (hi <= lo)
        return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* Masks for the vectors of an output row are worked out once per kernel offset, for rows
 * of up to this many vectors (1024 outputs), and on the fly past that. */
#define CYFFE_ROW_VECTORS 64

CYFFE_INLINE_AVX512 __mmask16 cyffe_row_mask(const __mmask16* masks, int v, ptrdiff_t start,
                                             ptrdiff_t x0, ptrdiff_t x1, ptrdiff_t n)
{
    return v < CYFFE_ROW_VECTORS ? masks[v] : cyffe_lanes(start + 16 * (ptrdiff_t)v, x0, x1, n);
}

/* im2col of one plane in 2-D with stride 1 along the rows (any stride across them,
 * dilation and padding): col[i*kw + j][y*wo + x] (rows ld apart) = the pixel under
 * kernel offset (i, j) at output (y, x), 0 in the padding. Each output row is one shifted
 * run of an input row: masked loads skip the padding (and never touch it). */
static CYFFE_AVX512 void cyffe_plane_to_columns(const float* plane, float* col,
                                                ptrdiff_t ld, ptrdiff_t height,
                                                ptrdiff_t width, int kh, int kw, int ph,
                                                int pw, int sh, int dh, int dw, int ho,
                                                int wo)
{
    const int vectors = (wo + 15) / 16;
    const ptrdiff_t end = 16 * (ptrdiff_t)(vectors - 1);   /* the last vector's column */
    const __mmask16 last = cyffe_lanes(end, 0, wo, wo);
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 in[CYFFE_ROW_VECTORS];
    for (int i = 0; i < kh; i++) {
        for (int j = 0; j < kw; j++) {
            float* row = col + (ptrdiff_t)(i * kw + j) * ld;
            /* output x reads input x - shift; inside for x0 <= x < x1 */
            const ptrdiff_t shift = pw - j * dw;
            const ptrdiff_t x0 = shift > 0 ? shift : 0;
            const ptrdiff_t x1 = width + shift < wo ? width + shift : wo;
            for (int v = 0; v < vectors && v < CYFFE_ROW_VECTORS; v++)
                in[v] = cyffe_lanes(16 * (ptrdiff_t)v, x0, x1, wo);
            if (vectors == 1) {
                /* rows of up to 16 outputs (most of a small net's): one vector a row */
                for (int y = 0; y < ho; y++, row += wo) {
                    const ptrdiff_t hin = (ptrdiff_t)y * sh - ph + i * dh;
                    const __m512 v = hin >= 0 && hin < height ? _mm512_maskz_loadu_ps(
                        in[0], plane + hin * width - shift) : zero;
                    if (last == 0xFFFF)
                        _mm512_storeu_ps(row, v);
                    else
                        _mm512_mask_storeu_ps(row, last, v);
                }
                continue;
            }
            for (int y = 0; y < ho; y++, row += wo) {
                const ptrdiff_t hin = (ptrdiff_t)y * sh - ph + i * dh;
                const float* src = plane + hin * width - shift;
                __m512 tail = zero;
                if (hin < 0 || hin >= height) {
                    for (ptrdiff_t x = 0; x < end; x += 16)
                        _mm512_storeu_ps(row + x, zero);
                } else {
                    for (int v = 0; v < vectors - 1; v++)
                        _mm512_storeu_ps(row + 16 * v, _mm512_maskz_loadu_ps(
                            cyffe_row_mask(in, v, 0, x0, x1, wo), src + 16 * v));
                    tail = _mm512_maskz_loadu_ps(cyffe_row_mask(in, vectors - 1, 0, x0, x1, wo),
                                                 src + end);
                }
                if (last == 0xFFFF)
                    _mm512_storeu_ps(row + end, tail);
                else
                    _mm512_mask_storeu_ps(row + end, last, tail);
            }
        }
    }
}

/* col2im of one plane, the same geometry: plane = the sum of col's entries onto the
 * pixels they came from (written over). Each row of the plane gathers its own entries
 * into registers and is stored once, in the scalar loop's order of addition (kernel row,
 * then kernel column), so the results are the same to the bit; adding into the plane
 * entry by entry stalled on every reload of a row just written with a masked store.
 * Four rows go together: four independent chains of additions, one set of masks. */
static CYFFE_AVX512 void cyffe_columns_to_plane(const float* col, ptrdiff_t ld, float* plane,
                                                ptrdiff_t height, ptrdiff_t width, int kh,
                                                int kw, int ph, int pw, int sh, int dh,
                                                int dw, int ho, int wo)
{
    for (ptrdiff_t h = 0; h < height; h += 4) {
        for (ptrdiff_t p = 0; p < width; p += 16) {
            __m512 sum[4];
            const float* row[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                sum[r] = _mm512_setzero_ps();
            for (int i = 0; i < kh; i++) {
                int some = 0;
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    /* the output row whose kernel row i lies on input row h + r, if any */
                    const ptrdiff_t t = h + r + ph - (ptrdiff_t)i * dh;
                    const ptrdiff_t y = sh == 1 ? t : t / sh;   /* no division when sh is 1 */
                    const int on = h + r < height && t >= 0 && y < ho && (sh == 1 || t % sh == 0);
                    row[r] = on ? col + (ptrdiff_t)i * kw * ld + y * wo + p : NULL;
                    some |= on;
                }
                if (!some)
                    continue;
                for (int j = 0; j < kw; j++) {
                    /* input column q takes output column q + shift, where that is in
                     * [0, wo): q in [q0, q1) */
                    const ptrdiff_t shift = pw - (ptrdiff_t)j * dw;
                    const ptrdiff_t q0 = shift < 0 ? -shift : 0;
                    const ptrdiff_t q1 = wo - shift < width ? wo - shift : width;
                    const __mmask16 in = cyffe_lanes(p, q0, q1, width);
#pragma GCC unroll 4
                    for (int r = 0; r < 4; r++)
                        if (row[r])
                            sum[r] = _mm512_add_ps(sum[r], _mm512_maskz_loadu_ps(
                                in, row[r] + (ptrdiff_t)j * ld + shift));
                }
            }
            const __mmask16 own = cyffe_lanes(p, 0, width, width);
            for (int r = 0; r < 4 && h + r < height; r++)
                _mm512_mask_storeu_ps(plane + (h + r) * width + p, own, sum[r]);
        }
    }
}

/* Pooling takes 16 outputs of a row at a time, with stride 1 or 2 along the rows. The
 * pixels of outputs j .. j+15 under window column offset d: lane l holds
 * row[(j + l)*sw - pw + d] where that column is inside [0, width) and output j + l exists
 * (the lanes *inside says), `fill` elsewhere; *column gets each lane's column. They are
 * 16 consecutive columns (stride 1), or the even ones of 32, deinterleaved by one permute
 * (gathers were slower than a scalar loop here). */
CYFFE_INLINE_AVX512 __m512 cyffe_window_pixels(const float* row, ptrdiff_t width, int j,
                                               int wo, int sw, int pw, int d, __m512 fill,
                                               __mmask16* inside, __m512i* column)
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i even = _mm512_add_epi32(lane, lane);
    const ptrdiff_t first = (ptrdiff_t)j * sw - pw + d;
    *column = _mm512_add_epi32(_mm512_set1_epi32((int)first), sw == 2 ? even : lane);
    *inside = cyffe_lanes(j, 0, wo, wo) &
              _mm512_cmpge_epi32_mask(*column, _mm512_setzero_si512()) &
              _mm512_cmplt_epi32_mask(*column, _mm512_set1_epi32((int)width));
    if (sw == 1)
        return _mm512_mask_loadu_ps(fill, *inside, row + first);
    const __m512 lo = _mm512_maskz_loadu_ps(cyffe_lanes(first, 0, width, width), row + first);
    const __m512 hi = _mm512_maskz_loadu_ps(cyffe_lanes(first + 16, 0, width, width),
                                            row + first + 16);
    return _mm512_mask_mov_ps(fill, *inside, _mm512_permutex2var_ps(lo, even, hi));
}

/* Caffe's AVE divisor of outputs j .. j+15 of row i: the window clipped to the padded
 * image [-pad, size + pad after). */
CYFFE_INLINE_AVX512 __m512i cyffe_window_sizes(int i, int j, ptrdiff_t height,
                                               ptrdiff_t width, int kh, int kw, int sh,
                                               int sw, int ph, int pw, int eh, int ew)
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const int top = i * sh - ph;
    const int rows = (top + kh < height + eh ? top + kh : (int)height + eh) - top;
    const __m512i left = _mm512_sub_epi32(
        _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(j)), _mm512_set1_epi32(sw)),
        _mm512_set1_epi32(pw));
    const __m512i right = _mm512_min_epi32(_mm512_add_epi32(left, _mm512_set1_epi32(kw)),
                                           _mm512_set1_epi32((int)width + ew));
    return _mm512_mullo_epi32(_mm512_set1_epi32(rows), _mm512_sub_epi32(right, left));
}

/* The in-image rows [*h0, *h1) of output row i's windows; and the rows four outputs down
 * (or the next plane's first ones: planes lie one after another, and a prefetch never
 * faults) set on their way from memory while row i works. */
CYFFE_INLINE_AVX512 void cyffe_window_rows(const float* x, ptrdiff_t height, ptrdiff_t width,
                                           int i, int kh, int sh, int ph, int* h0, int* h1)
{
    *h0 = i * sh - ph > 0 ? i * sh - ph : 0;
    *h1 = i * sh - ph + kh < height ? i * sh - ph + kh : (int)height;
    for (ptrdiff_t c = 0; c < (ptrdiff_t)sh * width; c += 16)
        _mm_prefetch((const char*)(x + (ptrdiff_t)(*h1 + 3 * sh) * width + c), _MM_HINT_T0);
}

/* Columns of the padded row (and vector-load slack past it) a values-only max pool keeps on
 * the stack; wider rows take the masked kernel. */
#define CYFFE_POOL_ROW 4096

/* Max pooling without the mask (a forward nobody backpropagates through): the window rows
 * of an output row are first reduced to one row of column maxima, whole vectors at a time
 * (-FLT_MAX in the padding), then each output takes the largest of its kw columns. Fewer
 * operations than the masked kernel's kh*kw shuffled loads and index updates per output
 * vector, and the same values: a NaN operand of _mm512_max_ps leaves the running maximum,
 * so NaNs never win, as in the strict scan (only a zero maximum may carry the other sign).
 * Returns -1, writing nothing, for a row too wide for its stack buffer or a window wider
 * than 16. */
static CYFFE_AVX512 int cyffe_max_pool_values(const float* x, ptrdiff_t height,
                                              ptrdiff_t width, float* y, int ho, int wo,
                                              int kh, int kw, int sh, int sw, int ph, int pw)
{
    /* the windows' columns, and the slack the last vectors' loads read (-FLT_MAX) */
    const ptrdiff_t used = ((ptrdiff_t)(wo - 1) * sw + kw + 15) / 16 * 16;
    const ptrdiff_t columns = ((ptrdiff_t)(wo + 15) / 16 * 16 * sw + kw + 31) / 16 * 16;
    if (columns > CYFFE_POOL_ROW || kw > 16)
        return -1;
    float maxima[CYFFE_POOL_ROW] __attribute__((aligned(64)));
    for (ptrdiff_t c = used; c < columns; c += 16)
        _mm512_store_ps(maxima + c, _mm512_set1_ps(-FLT_MAX));
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i even = _mm512_add_epi32(lane, lane);
    const __m512 lowest = _mm512_set1_ps(-FLT_MAX);
    int h0, h1;
    for (int i = 0; i < ho; i++) {
        cyffe_window_rows(x, height, width, i, kh, sh, ph, &h0, &h1);
        /* maxima[c] = the largest of column c - pw over rows h0 .. h1 - 1 */
        for (ptrdiff_t c = 0; c < used; c += 16) {
            const __mmask16 in = cyffe_lanes(c - pw, 0, width, width);
            __m512 m = lowest;
            for (int h = h0; h < h1; h++)
                m = _mm512_max_ps(_mm512_mask_loadu_ps(lowest, in, x + h * width + c - pw), m);
            _mm512_store_ps(maxima + c, m);
        }
        for (int j = 0; j < wo; j += 16) {
            /* The columns of these 16 outputs' windows, from aligned reloads of the maxima
             * just stored and shuffles: an unaligned reload waited for the stores to land
             * (2.5x slower on small planes). Column 2l + d (l + d at stride 1) of m0, m1
             * and m2 (columns 32 and on). */
            const float* base = maxima + (ptrdiff_t)j * sw;
            const __m512 m0 = _mm512_load_ps(base), m1 = _mm512_load_ps(base + 16);
            const __m512 m2 = sw == 2 ? _mm512_load_ps(base + 32) : m1;
            __m512 best = lowest;
            for (int d = 0; d < kw; d++) {
                const __m512i at = _mm512_add_epi32(sw == 1 ? lane : even, _mm512_set1_epi32(d));
                __m512 v = _mm512_permutex2var_ps(m0, at, m1);
                if (sw == 2 && d >= 2)
                    v = _mm512_mask_blend_ps(
                        _mm512_cmpge_epi32_mask(at, _mm512_set1_epi32(32)), v,
                        _mm512_permutex2var_ps(m1, _mm512_sub_epi32(at, _mm512_set1_epi32(16)),
                                               m2));
                best = _mm512_max_ps(v, best);
            }
            _mm512_mask_storeu_ps(y + (ptrdiff_t)i * wo + j, cyffe_lanes(j, 0, wo, wo), best);
        }
    }
    return 0;
}

/* Max pooling of one plane (H x W) into y and mask (ho x wo): each output is the largest
 * in-image value of its window (rows i*sh - ph + [0, kh), columns j*sw - pw + [0, kw)),
 * the first in row-major order among equals; mask is its flat index h*W + w, -1 (and
 * y = -FLT_MAX) when the window holds no pixel. The window is scanned in the scalar
 * loop's order with the same strict comparison, so NaNs never win there either. Without
 * a mask (NULL), cyffe_max_pool_values does it where it can. */
static CYFFE_AVX512 void cyffe_max_pool_plane(const float* x, ptrdiff_t height,
                                              ptrdiff_t width, float* y, int* mask, int ho,
                                              int wo, int kh, int kw, int sh, int sw, int ph,
                                              int pw)
{
    if (mask == NULL && cyffe_max_pool_values(x, height, width, y, ho, wo, kh, kw, sh, sw,
                                              ph, pw) == 0)
        return;
    const __m512 lowest = _mm512_set1_ps(-FLT_MAX);
    __mmask16 inside;
    __m512i column;
    int h0, h1;
    for (int i = 0; i < ho; i++) {
        cyffe_window_rows(x, height, width, i, kh, sh, ph, &h0, &h1);
        for (int j = 0; j < wo; j += 16) {
            const __mmask16 outputs = cyffe_lanes(j, 0, wo, wo);
            __m512 best = lowest;
            __m512i where = _mm512_set1_epi32(-1);
            for (int h = h0; h < h1; h++) {
                const float* row = x + (ptrdiff_t)h * width;
                for (int d = 0; d < kw; d++) {
                    const __m512 v = cyffe_window_pixels(row, width, j, wo, sw, pw, d, lowest,
                                                         &inside, &column);
                    const __mmask16 take = _mm512_mask_cmp_ps_mask(inside, v, best, _CMP_GT_OQ);
                    best = _mm512_mask_blend_ps(take, best, v);
                    where = _mm512_mask_blend_epi32(
                        take, where, _mm512_add_epi32(_mm512_set1_epi32((int)(h * width)),
                                                      column));
                }
            }
            _mm512_mask_storeu_ps(y + (ptrdiff_t)i * wo + j, outputs, best);
            if (mask != NULL)
                _mm512_mask_storeu_epi32(mask + (ptrdiff_t)i * wo + j, outputs, where);
        }
    }
}

/* Average pooling of one plane: y = the in-image window sum over Caffe's divisor (eh, ew:
 * the padding after), 0 for a window wholly past an unpadded edge. The sum runs in the
 * scalar loop's order, so the results are the same to the bit. */
static CYFFE_AVX512 void cyffe_ave_pool_plane(const float* x, ptrdiff_t height,
                                              ptrdiff_t width, float* y, int ho, int wo,
                                              int kh, int kw, int sh, int sw, int ph, int pw,
                                              int eh, int ew)
{
    if (wo < 4) {
        /* Rows of few outputs (global pooling's one) would leave most lanes idle: each
         * output's window rows are summed 16 columns at a time instead, then across the
         * lanes (in another order than the scalar loop's). */
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                const int top = i * sh - ph, left = j * sw - pw;
                const int h0 = top > 0 ? top : 0, h1 = top + kh < height ? top + kh : (int)height;
                const int w0 = left > 0 ? left : 0, w1 = left + kw < width ? left + kw : (int)width;
                const int size = ((top + kh < height + eh ? top + kh : (int)height + eh) - top) *
                                 ((left + kw < width + ew ? left + kw : (int)width + ew) - left);
                __m512 total = _mm512_setzero_ps();
                for (int h = h0; h < h1; h++)
                    for (int c = w0; c < w1; c += 16)
                        total = _mm512_add_ps(total, _mm512_maskz_loadu_ps(
                            cyffe_lanes(c, w0, w1, width), x + (ptrdiff_t)h * width + c));
                y[(ptrdiff_t)i * wo + j] = size > 0 ? _mm512_reduce_add_ps(total) / size : 0;
            }
        return;
    }
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 inside;
    __m512i column;
    int h0, h1;
    for (int i = 0; i < ho; i++) {
        cyffe_window_rows(x, height, width, i, kh, sh, ph, &h0, &h1);
        for (int j = 0; j < wo; j += 16) {
            const __mmask16 outputs = cyffe_lanes(j, 0, wo, wo);
            __m512 total = zero;
            for (int h = h0; h < h1; h++)
                for (int d = 0; d < kw; d++)
                    total = _mm512_add_ps(total, cyffe_window_pixels(
                        x + (ptrdiff_t)h * width, width, j, wo, sw, pw, d, zero, &inside,
                        &column));
            const __m512i size = cyffe_window_sizes(i, j, height, width, kh, kw, sh, sw, ph,
                                                    pw, eh, ew);
            const __mmask16 some = _mm512_cmpgt_epi32_mask(size, _mm512_setzero_si512());
            _mm512_mask_storeu_ps(y + (ptrdiff_t)i * wo + j, outputs,
                                  _mm512_maskz_div_ps(some, total, _mm512_cvtepi32_ps(size)));
        }
    }
}

#else  /* no AVX-512 kernels in this build: cyffe_avx512_enabled is always 0, and these
        * stand-ins, there for the wrappers in avx512.pyx, are never called */

static int cyffe_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                       const float* a, int lda, const float* b, int ldb, float beta,
                       float* c, int ldc) { return -1; }
static void cyffe_plane_to_columns(const float* plane, float* col, ptrdiff_t ld,
                                   ptrdiff_t height, ptrdiff_t width, int kh, int kw,
                                   int ph, int pw, int sh, int dh, int dw, int ho, int wo) {}
static void cyffe_columns_to_plane(const float* col, ptrdiff_t ld, float* plane,
                                   ptrdiff_t height, ptrdiff_t width, int kh, int kw,
                                   int ph, int pw, int sh, int dh, int dw, int ho, int wo) {}
static void cyffe_max_pool_plane(const float* x, ptrdiff_t height, ptrdiff_t width,
                                 float* y, int* mask, int ho, int wo, int kh, int kw, int sh,
                                 int sw, int ph, int pw) {}
static void cyffe_ave_pool_plane(const float* x, ptrdiff_t height, ptrdiff_t width,
                                 float* y, int ho, int wo, int kh, int kw, int sh, int sw,
                                 int ph, int pw, int eh, int ew) {}
#endif
#endif
