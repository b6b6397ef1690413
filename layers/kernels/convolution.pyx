"""The convolution pipeline: im2col + GEMM on per-thread chunks of images, for Convolution
and Deconvolution alike (Caffe's base_conv_layer: forward_cpu_gemm, weight_cpu_gemm and
backward_cpu_gemm, here in one walk).

A convolution takes images x (N, C, *in) to y (N, M, L) with weights W (M, C/group * K)
over a window.Geometry (K kernel offsets, L output positions), channels and outputs split
into `group` independent groups. One call does any of three jobs, asked for by passing
their arrays:

    forward          y = W col(x) + bias
    weight gradient  dW += dy col(x)^T, db += the sums of dy
    data gradient    dx = col2im(W^T dy)

Convolution's forward is the first; its backward the other two. Deconvolution is the same
machinery run the other way: its forward is the data gradient (dy = its bottom, dx = its
top), its backward the forward (x = its top's diff, y = its bottom's diff) with the weight
gradient.

Every OpenMP thread walks its own chunks of images: per group and block of the group's
channels, im2col into the thread's columns, then per image one-thread GEMMs straight into
y, the thread's partial sums of dW, and the columns of dx, which col2im sums into the
block's planes (no other block touches them). A block's columns stay in the core's cache
from the im2col to the GEMMs and the col2im, where a whole minibatch's columns would stream
through memory. With a weight gradient the threads take contiguous runs of chunks (a
static schedule) and the partial sums are added in thread order: the same on every run.
"""
cimport cython
import math

import numpy as np
from cython.parallel import parallel, prange, threadid
from cython cimport floating
from libc.string cimport memcpy

from . import arena
from .blas cimport gemm_rows, gemm_rows_out, max_threads
from .step cimport Step
from .im2col cimport columns_to_plane, plane_to_columns
from .window cimport Window, window_of

# About how many column elements one thread's block of columns holds (at least one
# channel of one image): 2^17 (512 KiB of float32) keeps them in the core's L2 cache
# between the im2col that writes them and the GEMMs that read them.
CHUNK_ELEMENTS = 1 << 17
# A forward of less work than this (multiply-adds times 2) stays on one thread: waking
# another costs more than it saves.
PARALLEL_FLOPS = 1 << 24
# Below this many output positions an image's product is too thin to run well alone: a
# forward multiplies a chunk's images together (MTCNN det1's last 3x3 convolution at batch
# 16: 62 -> 22 us).
cdef enum:
    JOINT_LENGTH = 256


cdef struct Plan:
    Py_ssize_t num, channels, outputs, group, per_channels, per_group, k
    Py_ssize_t chunk, block, blocks, bands
    bint identity, forward, bias, weight_diff, bias_diff, data_diff
    bint threaded               # worth waking the other threads for
    bint joint                  # a forward's images in one product (see run_chunk)
    bint band_outputs           # bands of a 1x1 kernel's outputs, not of output rows
    const double* slopes        # a ReLU's negative slope per output after the bias, or NULL
    const double* scales        # a factor per output before the bias (a folded BatchNorm)


cdef inline const floating* chunk_columns(const floating* x, const Plan* p, Py_ssize_t count,
                                         Py_ssize_t images, floating* col,
                                         const Window* w) noexcept nogil:
    """The columns (count*K, images*L) of `count` planes of `images` consecutive images,
    the first at x: the planes themselves (identity), or col filled."""
    cdef Py_ssize_t n, c, ld = images * w.length
    if p.identity:
        return x
    for n in range(images):
        for c in range(count):
            plane_to_columns(x + (n * p.channels + c) * w.volume,
                             col + c * w.kernel_volume * ld + n * w.length, ld, w)
    return col


cdef void run_chunk(const Plan* p, const Window* win, Py_ssize_t step, const floating* x,
                    const floating* weights, const floating* bias, floating* y,
                    const floating* dy, floating* dx, floating* col,
                    floating* partial) noexcept nogil:
    """Every asked-for job on work item `step`: a chunk of images, or in a forward of fewer
    chunks than threads one band of one (p.bands > 1, 2-D): a band of output rows, or of
    each group's outputs (p.band_outputs). partial: the thread's dW^T per group (k,
    per_group) at g * k * per_group, then the bias sums."""
    cdef Py_ssize_t n0 = step // p.bands * p.chunk, images = min(p.chunk, p.num - n0)
    cdef Py_ssize_t length = win.length, volume = win.volume, kv = win.kernel_volume
    cdef Window band = win[0]
    cdef Py_ssize_t first = 0, offset = 0, o0 = 0
    cdef int per_group = p.per_group, outs = p.per_group
    if p.bands > 1 and p.band_outputs:
        o0 = step % p.bands * per_group // p.bands
        outs = <int>((step % p.bands + 1) * per_group // p.bands - o0)
    elif p.bands > 1:
        first = step % p.bands * win.ho // p.bands
        band.ho = (step % p.bands + 1) * win.ho // p.bands - first
        band.ph = win.ph - first * win.sh
        band.length = band.ho * win.wo
        offset = first * win.wo
    cdef int k = p.k, width = images * band.length, rows
    cdef int ld = volume if p.identity else width
    cdef Py_ssize_t g, part, c0, n, o, l, i, plane, out
    cdef floating one = 1, zero = 0, total
    cdef bint last
    cdef const double* scales
    cdef const double* slopes
    cdef const floating* shift
    cdef const floating* source
    cdef const floating* w
    cdef const floating* src
    cdef floating* sink
    # Small outputs (joint): one product over the chunk's images into the scratch after the
    # columns, then each image's rows copied out, instead of a thin product per image.
    cdef bint joint = p.joint and images > 1
    cdef floating* together = col + p.block * kv * width
    for n in range(images if p.bias_diff else 0):
        for o in range(p.outputs):
            src = dy + ((n0 + n) * p.outputs + o) * length
            total = 0
            for l in range(length):
                total = total + src[l]
            partial[p.outputs * k + o] += total
    for g in range(p.group):
        for part in range(p.blocks):
            c0 = part * p.block
            rows = min(p.block, p.per_channels - c0) * kv
            plane = n0 * p.channels + g * p.per_channels + c0
            out = (n0 * p.outputs + g * per_group + o0) * length + offset
            w = weights + (g * per_group + o0) * k + c0 * kv
            if p.forward or p.weight_diff:
                source = chunk_columns(x + plane * volume, p, rows // kv, images, col, &band)
                if p.identity:
                    source = source + offset
            # the last block's products apply the scale, bias and ReLU as they store
            last = part == p.blocks - 1
            scales = p.scales + g * per_group + o0 if last and p.scales != NULL else NULL
            shift = bias + g * per_group + o0 if last and p.bias else NULL
            slopes = p.slopes + g * per_group + o0 if last and p.slopes != NULL else NULL
            if joint:
                gemm_rows_out(False, False, per_group, width, rows, one, w, k, source, ld,
                              zero if part == 0 else one, together, width, scales, shift,
                              slopes)
            for n in range(images if p.forward and not joint else 0):
                gemm_rows_out(False, False, outs, band.length, rows, one, w, k,
                              source + n * band.length, ld, zero if part == 0 else one,
                              y + out + n * p.outputs * length, length, scales, shift, slopes)
            for n in range(images if p.weight_diff else 0):
                gemm_rows(False, True, rows, per_group, length, one, source + n * length, width,
                          dy + out + n * p.outputs * length, length, one,
                          partial + (g * k + c0 * kv) * per_group, per_group)
            if not p.data_diff:
                continue
            sink = dx + plane * volume if p.identity else col
            for n in range(images):
                gemm_rows(True, False, rows, length, per_group, one, w, k,
                          dy + out + n * p.outputs * length, length, zero, sink + n * length,
                          width)
            for n in range(0 if p.identity else images):
                for i in range(rows // kv):
                    columns_to_plane(col + i * kv * width + n * length, width,
                                     dx + (plane + n * p.channels + i) * volume, win)
        for n in range(images if joint else 0):
            for o in range(per_group):
                memcpy(y + ((n0 + n) * p.outputs + g * per_group + o) * length + offset,
                       together + o * width + n * band.length, band.length * sizeof(floating))


def outputs_in_bands(geometry, per_group):
    """Whether a forward's bands split each group's outputs rather than the output rows: a
    1x1 kernel's product (W x, no columns) taller than it is wide. Row bands would each
    read all of W for a thin product (SqueezeNet's conv10: 1000 outputs of 13x13, 11%
    faster); output bands each pack all of x, which wide products do not repay."""
    return geometry.identity and per_group >= geometry.length


cdef inline Py_ssize_t chunk_count(const Plan* p) noexcept nogil:
    return (p.num + p.chunk - 1) // p.chunk * p.bands


cdef Py_ssize_t make_plan(Plan* p, Window* win, geometry, Py_ssize_t group, Py_ssize_t chunk,
                          Py_ssize_t block, Py_ssize_t bands, Py_ssize_t num,
                          Py_ssize_t channels, Py_ssize_t outputs, Py_ssize_t k, bint forward,
                          bint bias, bint weight_diff, bint bias_diff, bint data_diff,
                          const double[::1] slopes, const double[::1] scales) except -1:
    """Fill the plan and window of a call; returns the column elements a thread's scratch
    row holds. slopes and scales (None: none) must outlive the plan."""
    if (slopes is not None and slopes.shape[0] != outputs or
            scales is not None and scales.shape[0] != outputs):
        raise ValueError(f"convolve_chunks: slopes and scales take a value per output "
                         f"({outputs})")
    win[0] = window_of(geometry)
    p.num, p.channels, p.outputs, p.k, p.group = num, channels, outputs, k, group
    p.per_channels, p.per_group = channels // group, outputs // group
    p.chunk, p.block, p.bands = chunk, block, bands
    p.blocks = (p.per_channels + block - 1) // block
    p.identity = geometry.identity
    p.forward, p.bias = forward, bias
    p.weight_diff, p.bias_diff, p.data_diff = weight_diff, bias_diff, data_diff
    p.slopes = &slopes[0] if slopes is not None else NULL
    p.scales = &scales[0] if scales is not None else NULL
    p.band_outputs = bands > 1 and outputs_in_bands(geometry, p.per_group)
    if bands > 1 and (weight_diff or data_diff or win.nd or
                      bands > (p.per_group if p.band_outputs else win.ho)):
        raise ValueError(f"convolve_chunks: {bands} bands are for a 2-D forward of at least "
                         f"as many output rows (1x1 kernels: outputs per group)")
    if bias_diff and not weight_diff:
        raise ValueError("convolve_chunks: the bias gradient comes with the weight gradient")
    if p.identity and chunk != 1:
        raise ValueError(f"convolve_chunks: identity patches go one image per chunk, not {chunk}")
    p.threaded = (chunk_count(p) > 1 and
                  2.0 * p.outputs * p.k * win.length * p.num >= PARALLEL_FLOPS)
    cdef Py_ssize_t band_length = ((win.ho + bands - 1) // bands * win.wo
                                   if bands > 1 and not p.band_outputs else win.length)
    p.joint = forward and not p.identity and chunk > 1 and win.length < JOINT_LENGTH
    return (block * win.kernel_volume * chunk * band_length +
            (p.per_group * chunk * band_length if p.joint else 0))


cdef void run_chunks(const Plan* p, const Window* win, const floating* x,
                     const floating* weights, const floating* bias, floating* y,
                     const floating* dy, floating* dx, floating* scratch,
                     Py_ssize_t row) noexcept nogil:
    """Every chunk of a call without a weight gradient, the threads taking them as they
    come; scratch holds a row of `row` elements per thread."""
    cdef floating* col
    cdef Py_ssize_t step
    if not p.threaded:              # not even a team of one: that costs a microsecond
        for step in range(chunk_count(p)):
            run_chunk(p, win, step, x, weights, bias, y, dy, dx, scratch, NULL)
        return
    with parallel():
        col = scratch + threadid() * row
        for step in prange(chunk_count(p), schedule="dynamic"):
            run_chunk(p, win, step, x, weights, bias, y, dy, dx, col, NULL)


@cython.boundscheck(False)
@cython.wraparound(False)
def convolve_chunks(geometry, Py_ssize_t group, Py_ssize_t chunk, Py_ssize_t block,
                    Py_ssize_t bands, floating[:, ::1] scratch, const floating[:, ::1] weights,
                    const floating[:, :, ::1] x, const floating[::1] bias,
                    floating[:, :, ::1] y, const floating[:, :, ::1] dy,
                    floating[:, :, ::1] dx, floating[:, ::1] weight_diff,
                    floating[::1] bias_diff, const double[::1] slopes=None,
                    const double[::1] scales=None):
    """The jobs whose arrays are not empty (see the module docstring), on the source planes:
    x, dx (N, C, V); y, dy (N, M, L); weights, weight_diff (M, C/group*K); bias, bias_diff
    (M,); slopes: None, or per output the negative slope of a ReLU (or PReLU) applied to y
    after the bias; scales: None, or per output a factor applied before the bias (folded
    into the forward: y = scale (W col(x)) + bias). scratch: a row per thread of the Pipeline's
    scratch."""
    cdef Window win
    cdef Plan p
    cdef Py_ssize_t columns = make_plan(
        &p, &win, geometry, group, chunk, block, bands,
        dy.shape[0] if dy.shape[0] else x.shape[0], dx.shape[1] if dx.shape[0] else x.shape[1],
        weights.shape[0], weights.shape[1], y.shape[0] > 0, bias.shape[0] > 0,
        weight_diff.shape[0] > 0, bias_diff.shape[0] > 0, dx.shape[0] > 0, slopes, scales)
    cdef Py_ssize_t sums = p.outputs * (p.k + 1) if p.weight_diff else 0
    cdef Py_ssize_t threads = max_threads()
    if scratch.shape[0] < threads or scratch.shape[1] < columns + sums:
        raise ValueError("convolve_chunks: scratch too small")
    cdef const floating* xs = &x[0, 0, 0] if x.shape[0] else NULL
    cdef const floating* bs = &bias[0] if p.bias else NULL
    cdef floating* ys = &y[0, 0, 0] if p.forward else NULL
    cdef const floating* dys = &dy[0, 0, 0] if dy.shape[0] else NULL
    cdef floating* dxs = &dx[0, 0, 0] if p.data_diff else NULL
    cdef Py_ssize_t step, t, g, i, o
    cdef floating* col
    with nogil:
        if not p.weight_diff:
            run_chunks(&p, &win, xs, &weights[0, 0], bs, ys, dys, dxs, &scratch[0, 0],
                       scratch.shape[1])
        else:
            for t in range(threads):
                for i in range(sums):
                    scratch[t, columns + i] = 0
            with parallel(use_threads_if=p.threaded):
                col = &scratch[threadid(), 0]
                for step in prange(chunk_count(&p), schedule="static"):
                    run_chunk(&p, &win, step, xs, &weights[0, 0], bs, ys, dys, dxs, col,
                              col + columns)
            for t in range(threads):
                for g in range(group):
                    for i in range(p.k):
                        for o in range(p.per_group):
                            weight_diff[g * p.per_group + o, i] += \
                                scratch[t, columns + (g * p.k + i) * p.per_group + o]
                for o in range(p.outputs if p.bias_diff else 0):
                    bias_diff[o] += scratch[t, columns + p.outputs * p.k + o]


cdef class ForwardStep(Step):
    """A float32 forward of the pipeline as a net's step: y = W col(x) + bias (then the
    folded ReLU), everything resolved at construction."""

    cdef Plan p
    cdef Window win
    cdef Py_ssize_t row
    cdef const float* x
    cdef const float* weights
    cdef const float* bias
    cdef float* y

    def __init__(self, pipeline, const float[:, ::1] weights, const float[:, :, ::1] x,
                 float[:, :, ::1] y, const float[::1] bias, const double[::1] slopes,
                 const double[::1] scales):
        self.keep += [pipeline.geometry, weights, x, y, bias, slopes, scales]
        self.row = make_plan(&self.p, &self.win, pipeline.geometry, pipeline.group,
                             pipeline.band_chunk, pipeline.band_block, pipeline.bands,
                             x.shape[0], x.shape[1], weights.shape[0], weights.shape[1], True,
                             bias is not None, False, False, False, slopes, scales)
        if (x.shape[2] != self.win.volume or y.shape[0] != x.shape[0] or
                y.shape[1] != weights.shape[0] or y.shape[2] != self.win.length or
                bias is not None and bias.shape[0] != weights.shape[0]):
            raise ValueError("ForwardStep: the arrays do not fit the geometry")
        self.row = (self.row + 15) // 16 * 16          # rows on 64-byte boundaries
        self.scratch_bytes = max_threads() * self.row * sizeof(float)
        self.x, self.weights, self.y = &x[0, 0, 0], &weights[0, 0], &y[0, 0, 0]
        self.bias = &bias[0] if bias is not None else NULL

    cdef int run(self) except -1:
        with nogil:
            run_chunks(&self.p, &self.win, self.x, self.weights, self.bias, self.y,
                       <const float*>NULL, <float*>NULL, <float*>self.scratch, self.row)
        return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def _even_block(channels, fitting):
    """Channels per block: as few blocks as hold at most `fitting` each, as even as they come."""
    blocks = -(-channels // max(1, fitting))
    return -(-channels // blocks)


class Pipeline:
    """The pipeline of one geometry, image count, channel count (C), output count (M) and
    group: how it cuts the work (chunk of images, block of channels, bands of output rows or
    of a 1x1 kernel's outputs) and its per-thread scratch."""

    def __init__(self, geometry, num, channels, outputs, group, dtype):
        self.geometry, self.group, self.outputs = geometry, group, outputs
        threads = max_threads()
        per_image = geometry.kernel_volume * geometry.length
        per_channels = channels // group
        # Whole images per chunk while their columns fit in CHUNK_ELEMENTS; past one
        # image, blocks of a group's channels (as even as they come) instead.
        self.chunk = 1 if geometry.identity else max(1, min(
            CHUNK_ELEMENTS // max(1, channels * per_image), -(-num // threads)))
        # As many chunks as a multiple of the threads, as even as they come: 16 images in
        # chunks of 6 kept one thread on two chunks while the other ran one.
        chunks = -(-num // self.chunk)
        self.chunk = -(-num // (-(-chunks // threads) * threads)) if chunks > 1 else self.chunk
        self.block = per_channels if geometry.identity else _even_block(
            per_channels, CHUNK_ELEMENTS // max(1, self.chunk * per_image))
        # A forward may cut an image into bands of output rows (2-D) instead: when that
        # moves less data than channel blocks do (each band reads the weights again, each
        # block the top), and when there are fewer chunks than threads (batch 1), to busy
        # every core.
        self.bands, self.band_chunk, self.band_block = 1, self.chunk, self.block
        rows = geometry.out_shape[0] if geometry.fast_2d else 0
        if rows:
            row = geometry.kernel_volume * geometry.out_shape[1]
            weights = outputs // group * per_channels * geometry.kernel_volume
            blocks = -(-per_channels // self.block)
            if (per_channels * row <= CHUNK_ELEMENTS and self.chunk == 1 and blocks > 1 and
                    not geometry.identity):
                bands = -(-rows // (CHUNK_ELEMENTS // (per_channels * row)))
                if bands * weights < blocks * outputs // group * geometry.length * 2:
                    self.bands, self.band_block = bands, per_channels
            chunks = -(-num // self.chunk)
            work = 2 * outputs // group * per_channels * per_image * num
            if (chunks < threads and self.bands < -(-2 * threads // chunks) and
                    work >= PARALLEL_FLOPS):
                self.bands = min(outputs // group if outputs_in_bands(geometry, outputs // group)
                                 else rows, -(-2 * threads // chunks))
                self.band_block = per_channels if geometry.identity else _even_block(
                    per_channels, CHUNK_ELEMENTS // (-(-rows // self.bands) * row))
        band_rows = -(-rows // self.bands) if rows else 0
        self.columns = max(self.block * per_image * self.chunk,
                           self.band_block * band_rows * geometry.kernel_volume *
                           (geometry.out_shape[1] if rows else 0) * self.band_chunk)
        if not geometry.identity and geometry.length < JOINT_LENGTH:
            self.columns += outputs // group * max(self.chunk, self.band_chunk) * geometry.length
        self.sums = outputs * (per_channels * geometry.kernel_volume + 1)
        self._empty = {d: np.empty((0,) * d, dtype) for d in (1, 2, 3)}

    @staticmethod
    def _planes(images):
        return images.reshape(images.shape[0], images.shape[1], -1)

    def step(self, weights, x, y, bias=None, slopes=None, scales=None):
        """The forward of run() as a net's step (kernels/step.pyx), for float32 images
        whose geometry reads them as they are (no padded copy); None otherwise."""
        if x.dtype != np.float32 or self.geometry.copies:
            return None
        return ForwardStep(self, weights.reshape(self.outputs, -1), self._planes(x),
                           y.reshape(y.shape[0], self.outputs, -1), bias, slopes, scales)

    def run(self, weights, x=None, y=None, bias=None, dy=None, dx=None, weight_diff=None,
            bias_diff=None, slopes=None, scales=None):
        """The jobs given arrays: x, dx images (N, C, *in); y, dy (N, M, *out) or (N, M, L);
        weights and weight_diff (M, C/group, *kernel) or flat per output; bias, bias_diff
        (M,). dx is written; weight_diff and bias_diff accumulate. slopes: per output the
        negative slope of a ReLU folded into the forward (float64), or None; scales: per
        output a factor before the bias (a folded BatchNorm or Scale, float64), or None."""
        empty = self._empty
        geometry = self.geometry
        weights = weights.reshape(self.outputs, -1)
        forward_only = dy is None and dx is None
        with arena.scratch() as take:
            source = (self._planes(geometry.source(np.ascontiguousarray(x), take))
                      if x is not None else empty[3])
            g = geometry.source_gradient(dx, take) if dx is not None else None
            # A row per thread: its columns, then (weight_diff) its partial sums.
            rows = take((max_threads(), self.columns + (self.sums if weight_diff is not None
                                                        else 0)), weights.dtype)
            convolve_chunks(
                geometry, self.group, self.band_chunk if forward_only else self.chunk,
                self.band_block if forward_only else self.block,
                self.bands if forward_only else 1, rows, weights, source,
                bias if bias is not None else empty[1],
                y.reshape(y.shape[0], self.outputs, -1) if y is not None else empty[3],
                np.ascontiguousarray(dy).reshape(dy.shape[0], self.outputs, -1)
                if dy is not None else empty[3],
                self._planes(g) if g is not None else empty[3],
                weight_diff.reshape(self.outputs, -1) if weight_diff is not None else empty[2],
                bias_diff if bias_diff is not None else empty[1], slopes, scales)
            if dx is not None:
                geometry.fold(g, dx)
