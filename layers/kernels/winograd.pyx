"""Winograd convolution F(4x4, 3x3): 3x3 kernels, stride 1, no dilation (Lavin and Gray).

Every 4x4 block of outputs ("tile") of one (image, output channel) is

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A

where d_c is the 6x6 input patch of channel c under the tile, g_c the 3x3 kernel, and *
is elementwise: 36 products per channel and tile where the direct sum takes 144. With
U = G g G^T (36, K, C/group) transformed once per set of weights and V = B^T d B the
transformed patches (36, C, tiles), the 36 positions are 36 independent GEMMs,
M[xi] = U[xi] V[xi] (K, tiles), one per group, then A^T M A gives the tiles.

The points are 0, +-1, +-2 and infinity; in float32 the outputs differ from the direct
sum by a few units in the 6th digit at most for inputs and weights of one scale (the
tests hold it to im2col's float64 result).

Tiles are processed in chunks of whole tile rows so that a chunk's V and M stay in the
cache (a few MB); every phase of a chunk (input transform, GEMMs, output transform) is
split over the OpenMP threads, so one image keeps every core busy.
"""
cimport cython
import numpy as np
from cython.parallel import parallel, prange, threadid
from cython cimport floating

from . import arena
from .blas cimport gemm_rows, max_threads
from .convolution import PARALLEL_FLOPS
from .fingerprint import fingerprint
from .window cimport Window, window_of

# Elements of V and M a chunk of tiles may hold (each): 2^20 floats, 4 MiB.
CHUNK_ELEMENTS = 1 << 20
# Transformed weights of at most this many elements (4 MiB of float32) are read by every
# thread for blocks of tiles of its own, each thread running the three steps on its blocks
# alone; the steps of a chunk the threads share wait for each other, and every wait wakes
# a sleeping thread (50-60 us here: VGG-16's conv1_2 crossed 21 of them). Larger weights
# are read once, the threads sharing each chunk's 36 products.
OWN_WEIGHTS = 1 << 20


def layout(geometry, channels, outputs, num, group):
    """(own, rows): whether each thread takes blocks of tiles of its own, and the tile rows
    of a block (own) or chunk, which keep V and M within CHUNK_ELEMENTS each (a thread's
    share of it, own)."""
    tiles = -(-geometry.out_shape[1] // 4)
    rows = num * -(-geometry.out_shape[0] // 4)
    fit = max(1, CHUNK_ELEMENTS // (36 * max(channels, outputs) * tiles))
    threads = max_threads()
    if threads > 1 and 36 * outputs * (channels // group) <= OWN_WEIGHTS:
        return True, max(1, min(fit // threads, -(-rows // threads)))
    return False, min(rows, fit)


def scratch_size(geometry, channels, outputs, num, group):
    """Elements of scratch forward() needs: V and M of a chunk (of a block a thread, own),
    and a row buffer a thread."""
    tiles = -(-geometry.out_shape[1] // 4)
    own, rows = layout(geometry, channels, outputs, num, group)
    return ((max_threads() if own else 1) * 36 * (channels + outputs) * rows * tiles +
            max_threads() * 48 * (tiles + 1))


# Below these sizes the transforms cost more than the 36 GEMMs save (and thin GEMMs run
# slowly): C K / (C + K) per group (the GEMMs' work per transformed element), and tiles.
MIN_CHANNELS = 32
MIN_TILES = 16
# Below this C K / (C + K) the 36 products are thin enough that Winograd also needs
# MIN_TILES tiles an image and twice that in all: MTCNN det3's 64 -> 64 at 8x8 (batch 16)
# and SqueezeNet 1.1's 64 -> 256 at 14x14 (batch 1) ran 20-50% faster by im2col; ResNet-50's
# 512 -> 512 at 7x7 (batch 8) 35% faster by Winograd.
WIDE_CHANNELS = 64
# Tiles cover whole 4x4 blocks: below this share of their outputs inside the image, the work
# on the rest costs more than Winograd saves. AlexNet's 13x13 layers (169 of 256) ran 5-10%
# faster by im2col; VGG-16's 14x14 ones (196 of 256) 25% slower.
MIN_COVERED = 0.7


def suits(geometry, num, channels, outputs, group):
    """Whether a convolution of this geometry and size is faster as F(4x4, 3x3)."""
    if not (geometry.fast_2d and geometry.kernel == (3, 3) and geometry.stride == (1, 1) and
            geometry.dilation == (1, 1)):
        return False
    c, k = channels // group, outputs // group
    per_image = -(-geometry.out_shape[0] // 4) * -(-geometry.out_shape[1] // 4)
    tiles = num * per_image
    if c * k < WIDE_CHANNELS * (c + k) and (per_image < MIN_TILES or tiles < 2 * MIN_TILES):
        return False                    # narrow products over few tiles: im2col wins
    if geometry.length < MIN_COVERED * 16 * per_image:
        return False
    return c * k >= MIN_CHANNELS * (c + k) and tiles >= MIN_TILES


cdef inline void kernel_transform(const floating* g, floating* u, Py_ssize_t step) noexcept nogil:
    """u[xi * step] = (G g G^T) for the 3x3 kernel g (row-major), xi = 6*i + j."""
    cdef floating t[6][3]
    cdef Py_ssize_t i, j
    cdef floating a, b, c
    for j in range(3):
        a, b, c = g[j], g[3 + j], g[6 + j]
        t[0][j] = a / 4
        t[1][j] = -(a + b + c) / 6
        t[2][j] = -(a - b + c) / 6
        t[3][j] = a / 24 + b / 12 + c / 6
        t[4][j] = a / 24 - b / 12 + c / 6
        t[5][j] = c
    for i in range(6):
        a, b, c = t[i][0], t[i][1], t[i][2]
        u[(6 * i + 0) * step] = a / 4
        u[(6 * i + 1) * step] = -(a + b + c) / 6
        u[(6 * i + 2) * step] = -(a - b + c) / 6
        u[(6 * i + 3) * step] = a / 24 + b / 12 + c / 6
        u[(6 * i + 4) * step] = a / 24 - b / 12 + c / 6
        u[(6 * i + 5) * step] = c


@cython.boundscheck(False)
@cython.wraparound(False)
def transform_weights(const floating[:, :, :, ::1] weights, floating[:, :, ::1] u):
    """u (36, K, C/group) = G g G^T for every 3x3 kernel g of weights (K, C/group, 3, 3)."""
    cdef Py_ssize_t outputs = weights.shape[0], channels = weights.shape[1], r, k, c
    cdef Py_ssize_t step = outputs * channels
    if weights.shape[2] != 3 or weights.shape[3] != 3 or u.shape[0] != 36 or \
            u.shape[1] != outputs or u.shape[2] != channels:
        raise ValueError("transform_weights: expected weights (K, C, 3, 3) and u (36, K, C)")
    with nogil:
        for r in prange(outputs * channels, schedule="static"):
            k = r // channels
            c = r % channels
            kernel_transform(&weights[k, c, 0, 0], &u[0, k, c], step)


cdef extern from "winograd.h":
    void input_f32 "cyffe_winograd_input_f32" (
        const float* plane, Py_ssize_t height, Py_ssize_t width, Py_ssize_t ph, Py_ssize_t pw,
        Py_ssize_t tile_row, Py_ssize_t tiles, float* v, Py_ssize_t step,
        float* rows) noexcept nogil
    void input_f64 "cyffe_winograd_input_f64" (
        const double* plane, Py_ssize_t height, Py_ssize_t width, Py_ssize_t ph,
        Py_ssize_t pw, Py_ssize_t tile_row, Py_ssize_t tiles, double* v, Py_ssize_t step,
        double* rows) noexcept nogil
    void output_f32 "cyffe_winograd_output_f32" (
        const float* m, Py_ssize_t step, Py_ssize_t tiles, float scale, float bias, bint relu,
        double slope, float* plane, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t tile_row,
        float* scratch) noexcept nogil
    void output_f64 "cyffe_winograd_output_f64" (
        const double* m, Py_ssize_t step, Py_ssize_t tiles, double scale, double bias,
        bint relu,
        double slope, double* plane, Py_ssize_t ho, Py_ssize_t wo, Py_ssize_t tile_row,
        double* scratch) noexcept nogil


cdef inline void input_transform(const floating* plane, const Window* w, Py_ssize_t tile_row,
                                 Py_ssize_t tiles, floating* v, Py_ssize_t step,
                                 floating* rows) noexcept nogil:
    """V (36 rows `step` apart, tiles along each) of one tile row of one plane."""
    if floating is float:
        input_f32(plane, w.height, w.width, w.ph, w.pw, tile_row, tiles, v, step, rows)
    else:
        input_f64(plane, w.height, w.width, w.ph, w.pw, tile_row, tiles, v, step, rows)


cdef inline void output_transform(const floating* m, Py_ssize_t step, Py_ssize_t tiles,
                                  floating scale, floating bias, bint relu, double slope,
                                  floating* plane, const Window* w, Py_ssize_t tile_row,
                                  floating* scratch) noexcept nogil:
    """One tile row of one output plane from M (36 rows `step` apart), times scale plus bias
    (and ReLU)."""
    if floating is float:
        output_f32(m, step, tiles, scale, bias, relu, slope, plane, w.ho, w.wo, tile_row,
                   scratch)
    else:
        output_f64(m, step, tiles, scale, bias, relu, slope, plane, w.ho, w.wo, tile_row,
                   scratch)


cdef inline void input_item(const floating* x, Py_ssize_t plane, const Window* w,
                            Py_ssize_t channels, Py_ssize_t tiles, Py_ssize_t tile_rows,
                            Py_ssize_t start, Py_ssize_t count, Py_ssize_t item, floating* v,
                            floating* work) noexcept nogil:
    """V of item `item` (a channel's tile row) of the chunk of `count` tile rows from
    `start` (all images' rows in a row)."""
    cdef Py_ssize_t c = item // count, r = start + item % count, size = count * tiles
    input_transform(x + (r // tile_rows * channels + c) * plane, w, r % tile_rows, tiles,
                    v + c * size + (item % count) * tiles, channels * size, work)


cdef inline void output_item(const floating* m, floating* y, Py_ssize_t plane,
                             const Window* w, Py_ssize_t outputs, Py_ssize_t tiles,
                             Py_ssize_t tile_rows, Py_ssize_t start, Py_ssize_t count,
                             Py_ssize_t item, const double* scales, const floating* bias,
                             const double* slopes, floating* work) noexcept nogil:
    """The outputs of item `item` (an output's tile row) of the chunk from M."""
    cdef Py_ssize_t k = item // count, r = start + item % count, size = count * tiles
    output_transform(m + k * size + (item % count) * tiles, outputs * size, tiles,
                     <floating>scales[k] if scales != NULL else 1,
                     bias[k] if bias != NULL else 0, slopes != NULL,
                     slopes[k] if slopes != NULL else 0,
                     y + (r // tile_rows * outputs + k) * plane, w, r % tile_rows, work)


cdef inline void product(const floating* u, const floating* v, floating* m, Py_ssize_t item,
                         Py_ssize_t group, Py_ssize_t channels, Py_ssize_t outputs,
                         Py_ssize_t size) noexcept nogil:
    """M[xi] = U[xi] V[xi] of one group: item = xi * group + g."""
    cdef Py_ssize_t xi = item // group, g = item % group
    cdef Py_ssize_t per_group = outputs // group, per_channels = channels // group
    gemm_rows(False, False, <int>per_group, <int>size, <int>per_channels, <floating>1,
              u + (xi * outputs + g * per_group) * per_channels, <int>per_channels,
              v + (xi * channels + g * per_channels) * size, <int>size, <floating>0,
              m + (xi * outputs + g * per_group) * size, <int>size)


@cython.boundscheck(False)
@cython.wraparound(False)
def forward(geometry, Py_ssize_t group, const floating[:, :, ::1] u,
            const floating[:, :, ::1] x, const floating[::1] bias, floating[:, :, ::1] y,
            floating[::1] scratch, const double[::1] slopes=None,
            const double[::1] scales=None):
    """y (N, K, Ho*Wo) = the convolution of the source planes x (N, C, H*W) by the
    transformed weights u (36, K, C/group), times scales[k] unless None, plus bias (K,;
    empty: none), then a ReLU of negative slope slopes[k] per output unless slopes is None.

    scratch: at least scratch_size(...) elements.
    """
    cdef Window w = window_of(geometry)
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1], outputs = y.shape[1]
    cdef Py_ssize_t tiles = (w.wo + 3) // 4, tile_rows = (w.ho + 3) // 4
    cdef Py_ssize_t per_channels = channels // group
    cdef Py_ssize_t rows_total = num * tile_rows, start, count, size, item, part, t
    cdef Py_ssize_t work_size = 48 * (tiles + 1), threads = max_threads()
    # waking the other threads costs more than a small convolution's whole work
    cdef bint threaded = 2.0 * outputs * per_channels * 9 * w.length * num >= PARALLEL_FLOPS
    if (slopes is not None and slopes.shape[0] != outputs or
            scales is not None and scales.shape[0] != outputs):
        raise ValueError(f"winograd.forward: slopes and scales take a value per output "
                         f"({outputs})")
    if scratch.shape[0] < scratch_size(geometry, channels, outputs, num, group):
        raise ValueError("winograd.forward: scratch too small")
    if u.shape[0] != 36 or u.shape[1] != outputs or u.shape[2] != per_channels:
        raise ValueError(f"winograd.forward: u has shape {tuple(u.shape)[:3]}, expected "
                         f"(36, {outputs}, {per_channels})")
    cdef bint own
    cdef Py_ssize_t chunk_rows
    own, chunk_rows = layout(geometry, channels, outputs, num, group)
    cdef Py_ssize_t parts = (rows_total + chunk_rows - 1) // chunk_rows
    cdef Py_ssize_t vm = 36 * (channels + outputs) * chunk_rows * tiles   # V and M
    cdef floating* base = &scratch[0]
    cdef floating* rows = base + (threads if own else 1) * vm     # a row buffer a thread
    cdef floating* v
    cdef floating* m
    cdef const floating* us = &u[0, 0, 0]
    cdef const floating* xs = &x[0, 0, 0]
    cdef floating* ys = &y[0, 0, 0]
    cdef const floating* bs = &bias[0] if bias.shape[0] else NULL
    cdef const double* scale = &scales[0] if scales is not None else NULL
    cdef const double* slope = &slopes[0] if slopes is not None else NULL
    if own:
        with nogil, parallel(use_threads_if=threaded):
            t = threadid()
            v = base + t * vm
            m = v + 36 * channels * chunk_rows * tiles
            for part in prange(parts, schedule="dynamic"):
                start = part * chunk_rows
                count = min(chunk_rows, rows_total - start)
                size = count * tiles
                for item in range(channels * count):
                    input_item(xs, x.shape[2], &w, channels, tiles, tile_rows, start, count,
                               item, v, rows + t * work_size)
                for item in range(36 * group):
                    product(us, v, m, item, group, channels, outputs, size)
                for item in range(outputs * count):
                    output_item(m, ys, y.shape[2], &w, outputs, tiles, tile_rows, start, count,
                                item, scale, bs, slope, rows + t * work_size)
        return
    v = base
    m = v + 36 * channels * chunk_rows * tiles
    with nogil:
        for part in range(parts):
            start = part * chunk_rows
            count = min(chunk_rows, rows_total - start)
            size = count * tiles
            for item in prange(channels * count, schedule="static", use_threads_if=threaded):
                input_item(xs, x.shape[2], &w, channels, tiles, tile_rows, start, count, item,
                           v, rows + threadid() * work_size)
            for item in prange(36 * group, schedule="dynamic", use_threads_if=threaded):
                product(us, v, m, item, group, channels, outputs, size)
            for item in prange(outputs * count, schedule="static", use_threads_if=threaded):
                output_item(m, ys, y.shape[2], &w, outputs, tiles, tile_rows, start, count,
                            item, scale, bs, slope, rows + threadid() * work_size)


class Winograd:
    """F(4x4, 3x3) for one geometry, image count and group: the transformed weights (kept
    while the weights' fingerprint holds); its scratch is taken from the arena per call."""

    def __init__(self, geometry, num, channels, outputs, group, dtype):
        self.geometry, self.group = geometry, group
        self.outputs, self.per_channels = outputs, channels // group
        self._no_bias = np.empty(0, dtype)
        self._u = np.empty((36, outputs, self.per_channels), dtype)
        self._key = None

    def weights(self, weights):
        """u for weights (K, C/group, 3, 3), transformed again only when they changed."""
        key = fingerprint(weights)
        if key != self._key:
            transform_weights(weights, self._u)
            self._key = key
        return self._u

    def run(self, weights, x, y, bias=None, slopes=None, scales=None):
        """y (N, K, *out) = the convolution of the images x (N, C, *in), times scales[k]
        unless None, plus bias (then a ReLU of negative slope slopes[k] per output, unless
        None)."""
        with arena.scratch() as take:
            source = self.geometry.source(np.ascontiguousarray(x), take)
            scratch = take(scratch_size(self.geometry, x.shape[1], self.outputs, x.shape[0],
                                        self.group), x.dtype)
            forward(self.geometry, self.group, self.weights(weights),
                    source.reshape(source.shape[0], source.shape[1], -1),
                    bias if bias is not None else self._no_bias,
                    y.reshape(y.shape[0], self.outputs, -1), scratch, slopes, scales)
