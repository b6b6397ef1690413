"""Convolution: y[n, o] = sum_{c in group(o)} w[o, c] (*) x[n, c] + b[o]  (Caffe's Convolution).

(*) is N-D cross-correlation with padding, stride and dilation over the
num_spatial_axes = bottom.ndim - axis - 1 axes after the channel axis
(convolution_param.axis, default 1; the axes before it are all "images"). Output size
per spatial axis: (in + pad_before + pad_after - (dilation*(k-1) + 1)) // stride + 1.
kernel_size / stride / pad / dilation are given once (every spatial axis) or once per
spatial axis; kernel_h/_w, stride_h/_w, pad_h/_w only in 2-D. Channels and outputs
split into `group` independent groups. Weights (num_output, C/group, k1, ..., kn),
bias (num_output,). Several bottoms share the weights (one top each).

The CPU path is one pipeline per chunk of images, run by every OpenMP thread on its own
chunks: per group and block of its channels, im2col into the thread's columns (the fast
2-D kernels in 2-D, the N-D ones otherwise or with force_nd_im2col), then per image one
one-thread GEMM straight into the top; then the bias. Backward does the same walk: the
weight and bias gradients go to per-thread partial sums, the column gradient through
col2im to the bottom's diff. A block's columns stay in the core's cache from the im2col
to the GEMMs (and in backward on to the col2im), where a whole minibatch's columns would
stream through memory.

Depthwise (2-D, group == C > 1, num_output = C * multiplier): direct kernels, no
columns and no GEMM: output plane o reads input plane o // multiplier.

cyffe-only fields:
* pad_scheme: EXPLICIT (pad / pad_h / pad_w) or SAME: output = ceil(in / stride) per
  axis, total pad = max((out-1)*stride + dilation*(k-1)+1 - in, 0), the odd pixel after
  (TensorFlow's / PyTorch's 'same'). SAME with explicit pads is an error.
* pad_fill: what the padding holds: ZERO (Caffe), CONSTANT (pad_value), REFLECT (mirror
  without the edge; needs every pad < the input size) or REPLICATE (the edge pixel).
  Gradients that reach reflected / replicated pixels go back to the pixels they copy.
"""
import math

import numpy as np
from cython.parallel import parallel, prange, threadid
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from . import fillers
from .backend import array_module
from .base import Layer, canonical_axis
from .blas import thread_count
from .im2col import Patches

# About how many column elements one thread's block of columns holds (at least one
# channel of one image): 2^17 (512 KiB of float32) keeps them in the core's L2 cache
# between the im2col that writes them and the GEMMs that read them.
CHUNK_ELEMENTS = 1 << 17


include "window_bounds.pxi"
include "avx512.pxi"
include "patch_kernels.pxi"
include "gemm_rows.pxi"


cdef Window patches_window(patches) except *:
    """The Window of a Patches geometry (im2col.Patches; its arrays outlive the call)."""
    if not patches.fast_2d:
        return window_nd(patches.kernel_offsets, patches.out_starts, patches.in_shape)
    (h, w), (kh, kw), (ph, pw) = patches.source_shape, patches.kernel, patches.source_pads
    (sh, sw), (dh, dw), (ho, wo) = patches.stride, patches.dilation, patches.out_shape
    return window_2d(h, w, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo)


def is_identity(patches):
    """Whether the columns of an image are its pixels: a 1x1 kernel that visits every pixel
    once in order (stride 1, or a size-1 axis; no padding left in the source)."""
    return (patches.kernel_volume == 1 and patches.out_shape == patches.source_shape and
            not any(patches.source_pads))


cdef int check_chunks(str name, floating[:, ::1] scratch, Py_ssize_t size, bint identity,
                      Py_ssize_t chunk) except -1:
    if scratch.shape[0] < thread_count() or scratch.shape[1] < size:
        raise ValueError(f"{name}: scratch too small")
    if identity and chunk != 1:
        raise ValueError(f"{name}: identity patches go one image per chunk, not {chunk}")
    return 0


cdef inline void chunk_to_columns(const floating* x, Py_ssize_t channels, Py_ssize_t count,
                                  Py_ssize_t images, floating* col,
                                  const Window* w) noexcept nogil:
    """col (count*K, images*L) from `count` planes of `images` consecutive images, the
    first at x (images are `channels` planes apart)."""
    cdef Py_ssize_t n, c, ld = images * w.length
    for n in range(images):
        for c in range(count):
            plane_to_columns(x + (n * channels + c) * w.volume,
                             col + c * w.kernel_volume * ld + n * w.length, ld, w)


cdef inline const floating* chunk_columns(const floating* x, Py_ssize_t channels,
                                         Py_ssize_t count, Py_ssize_t images, floating* col,
                                         const Window* w, bint identity) noexcept nogil:
    """The columns of a block of channels of a chunk: the planes themselves (identity
    patches), or col filled."""
    if identity:
        return x
    chunk_to_columns(x, channels, count, images, col, w)
    return col


def forward_chunks(const floating[:, :, ::1] x, const floating[:, ::1] weights,
                   const floating[::1] bias, floating[:, :, ::1] y, floating[:, ::1] scratch,
                   patches, int group, Py_ssize_t chunk, Py_ssize_t block):
    """y (N, M, L) = the convolution of x (N, C, V) by weights (M, C/group*K) + bias.

    Each thread takes `chunk` images at a time and, per group, `block` of its channels at
    a time: im2col of those into its own columns, then per image one GEMM straight into
    y (adding to what the group's earlier blocks wrote); then the bias. scratch holds a
    row of block*K * chunk * L elements per thread. When the patches are the pixels
    themselves (identity: a 1x1 kernel, stride 1, no padding; chunk must be 1) the GEMMs
    read the image in place of columns.
    """
    cdef Window win = patches_window(patches)
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1], outputs = y.shape[1]
    cdef Py_ssize_t length = win.length, volume = win.kernel_volume
    cdef Py_ssize_t per_channels = channels // group
    cdef Py_ssize_t blocks = (per_channels + block - 1) // block
    cdef int per_group = outputs // group, k = weights.shape[1], width
    cdef Py_ssize_t chunks = (num + chunk - 1) // chunk, step, n0, images, n, o, l, g, c0, cb
    cdef Py_ssize_t part
    cdef bint has_bias = bias.shape[0] > 0
    cdef floating one = 1, zero = 0, b
    cdef bint identity = is_identity(patches)
    cdef floating* col
    cdef const floating* source
    cdef floating* dst
    check_chunks("forward_chunks", scratch, block * volume * chunk * length, identity, chunk)
    with nogil, parallel():
        col = &scratch[threadid(), 0]
        for step in prange(chunks, schedule="dynamic"):
            n0 = step * chunk
            images = min(chunk, num - n0)
            width = images * length
            for g in range(group):
                for part in range(blocks):
                    c0 = part * block
                    cb = min(block, per_channels - c0)
                    source = chunk_columns(&x[n0, g * per_channels + c0, 0], channels, cb,
                                           images, col, &win, identity)
                    for n in range(images):
                        gemm_rows(False, False, per_group, length, cb * volume, one,
                                  &weights[g * per_group, c0 * volume], k,
                                  source + n * length, width, zero if part == 0 else one,
                                  &y[n0 + n, g * per_group, 0], length)
            for n in range(images if has_bias else 0):
                for o in range(outputs):
                    b = bias[o]
                    dst = &y[n0 + n, o, 0]
                    for l in range(length):
                        dst[l] = dst[l] + b


def backward_chunks(const floating[:, :, ::1] x, const floating[:, ::1] weights,
                    const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
                    floating[:, ::1] weight_diff, floating[::1] bias_diff,
                    floating[:, ::1] scratch, patches, int group, Py_ssize_t chunk,
                    Py_ssize_t block):
    """Accumulate the weight and bias gradients of dy (N, M, L) into weight_diff (M,
    C/group*K) and bias_diff (M, or empty); write the bottom gradient into dx (N, C, V)
    unless dx is empty.

    Per chunk of images and block of channels (as forward_chunks): im2col of x; per
    image, dW^T += x dy^T into the thread's own partial sums (the transposed form keeps
    the long side, C*K, as the rows of the product), then dcol = W^T dy; then col2im into
    the block's planes of dx, which no other block touches. The threads take contiguous
    runs of chunks (a static schedule), so the partial sums, added up in thread order at
    the end, are the same on every run. scratch: a row of block*K * chunk * L +
    M * (C/group*K + 1) elements per thread. Identity patches (see forward_chunks) read
    x and write dx in place of columns.
    """
    cdef Window win = patches_window(patches)
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1], outputs = dy.shape[1]
    cdef Py_ssize_t length = win.length, volume = win.kernel_volume
    cdef Py_ssize_t per_channels = channels // group
    cdef Py_ssize_t blocks = (per_channels + block - 1) // block
    cdef int per_group = outputs // group, k = weights.shape[1], width
    cdef Py_ssize_t chunks = (num + chunk - 1) // chunk, step, n0, images, n, o, l, g, t, i
    cdef Py_ssize_t part, c0, cb
    cdef Py_ssize_t threads = thread_count(), columns = block * volume * chunk * length
    cdef bint has_bias = bias_diff.shape[0] > 0, propagate = dx.shape[0] > 0
    cdef floating one = 1, zero = 0, total
    cdef bint identity = is_identity(patches)
    cdef floating* col
    cdef const floating* source
    cdef floating* sink
    cdef floating* partial
    cdef const floating* src
    check_chunks("backward_chunks", scratch, columns + outputs * (k + 1), identity, chunk)
    with nogil:
        for t in range(threads):
            for i in range(outputs * (k + 1)):
                scratch[t, columns + i] = 0
        with parallel():
            col = &scratch[threadid(), 0]
            # group g's dW^T (k, per_group) at g * k * per_group, then the bias's sums
            partial = col + columns
            for step in prange(chunks, schedule="static"):
                n0 = step * chunk
                images = min(chunk, num - n0)
                width = images * length
                for n in range(images if has_bias else 0):
                    for o in range(outputs):
                        src = &dy[n0 + n, o, 0]
                        total = 0
                        for l in range(length):
                            total = total + src[l]
                        partial[outputs * k + o] += total
                for g in range(group):
                    for part in range(blocks):
                        c0 = part * block
                        cb = min(block, per_channels - c0)
                        source = chunk_columns(&x[n0, g * per_channels + c0, 0], channels,
                                               cb, images, col, &win, identity)
                        for n in range(images):
                            gemm_rows(False, True, cb * volume, per_group, length, one,
                                      source + n * length, width,
                                      &dy[n0 + n, g * per_group, 0], length, one,
                                      partial + (g * k + c0 * volume) * per_group, per_group)
                        if not propagate:
                            continue
                        sink = &dx[n0, g * per_channels + c0, 0] if identity else col
                        for n in range(images):
                            gemm_rows(True, False, cb * volume, length, per_group, one,
                                      &weights[g * per_group, c0 * volume], k,
                                      &dy[n0 + n, g * per_group, 0], length, zero,
                                      sink + n * length, width)
                        for n in range(0 if identity else images):
                            for i in range(cb):
                                columns_to_plane(col + i * volume * width + n * length, width,
                                                 &dx[n0 + n, g * per_channels + c0 + i, 0],
                                                 &win)
        for t in range(threads):
            for g in range(group):
                for i in range(k):
                    for o in range(per_group):
                        weight_diff[g * per_group + o, i] += \
                            scratch[t, columns + (g * k + i) * per_group + o]
            for o in range(outputs if has_bias else 0):
                bias_diff[o] += scratch[t, columns + outputs * k + o]


def depthwise_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] w,
                      const floating[::1] bias, floating[:, :, :, ::1] y,
                      int ph, int pw, int sh, int sw, int dh, int dw):
    """y[n, o] = sum_ij w[o, i, j] x[n, o // M, y*sh - ph + i*dh, x*sw - pw + j*dw] + b[o]."""
    cdef Py_ssize_t num = y.shape[0], outputs = y.shape[1], ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t kh = w.shape[1], kw = w.shape[2], multiplier = outputs // x.shape[1]
    cdef Py_ssize_t plane, n, o, c, i, j, yo, xo, y0, y1, x0, x1, hin, shift
    cdef bint has_bias = bias.shape[0] > 0
    cdef floating weight, b
    with nogil:
        for plane in prange(num * outputs, schedule="static"):
            n = plane // outputs
            o = plane % outputs
            c = o // multiplier
            b = bias[o] if has_bias else 0
            for yo in range(ho):
                for xo in range(wo):
                    y[n, o, yo, xo] = b
            for i in range(kh):
                y0 = first_inside(ph - i * dh, sh)
                y1 = end_inside(ph - i * dh, sh, height, ho)
                for j in range(kw):
                    shift = pw - j * dw
                    x0 = first_inside(shift, sw)
                    x1 = end_inside(shift, sw, width, wo)
                    weight = w[o, i, j]
                    for yo in range(y0, y1):
                        hin = yo * sh - ph + i * dh
                        for xo in range(x0, x1):
                            y[n, o, yo, xo] += weight * x[n, c, hin, xo * sw - shift]


def depthwise_backward_data(const floating[:, :, :, ::1] dy, const floating[:, :, ::1] w,
                            floating[:, :, :, ::1] dx,
                            int ph, int pw, int sh, int sw, int dh, int dw):
    """dx[n, c] = the sum over c's outputs of w (*)^T dy (written, not accumulated)."""
    cdef Py_ssize_t num = dx.shape[0], channels = dx.shape[1]
    cdef Py_ssize_t height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t ho = dy.shape[2], wo = dy.shape[3]
    cdef Py_ssize_t kh = w.shape[1], kw = w.shape[2], multiplier = dy.shape[1] // channels
    cdef Py_ssize_t plane, n, o, c, m, i, j, yo, xo, y0, y1, x0, x1, hin, shift
    cdef floating weight
    with nogil:
        # Each input plane gathers from its own outputs: no races.
        for plane in prange(num * channels, schedule="static"):
            n = plane // channels
            c = plane % channels
            for yo in range(height):
                for xo in range(width):
                    dx[n, c, yo, xo] = 0
            for m in range(multiplier):
                o = c * multiplier + m
                for i in range(kh):
                    y0 = first_inside(ph - i * dh, sh)
                    y1 = end_inside(ph - i * dh, sh, height, ho)
                    for j in range(kw):
                        shift = pw - j * dw
                        x0 = first_inside(shift, sw)
                        x1 = end_inside(shift, sw, width, wo)
                        weight = w[o, i, j]
                        for yo in range(y0, y1):
                            hin = yo * sh - ph + i * dh
                            for xo in range(x0, x1):
                                dx[n, c, hin, xo * sw - shift] += weight * dy[n, o, yo, xo]


def depthwise_backward_params(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                              floating[:, :, ::1] dw_out, floating[::1] db,
                              int ph, int pw, int sh, int sw, int dh, int dw):
    """dw_out[o, i, j] += sum_n <dy[n, o], the window of x[n, o // M]>; db[o] += sum dy[:, o]."""
    cdef Py_ssize_t num = dy.shape[0], outputs = dy.shape[1], ho = dy.shape[2], wo = dy.shape[3]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t kh = dw_out.shape[1], kw = dw_out.shape[2]
    cdef Py_ssize_t multiplier = outputs // x.shape[1]
    cdef Py_ssize_t n, o, c, i, j, yo, xo, x0, x1, hin, shift, row
    cdef bint has_bias = db.shape[0] > 0
    cdef floating total
    # Per-output rows of partial sums, one per kernel offset and one for the bias: the inner
    # loops stay elementwise (they vectorize), each row is summed once at the end, and every
    # row of dy and x is read once per image while it sits in cache.
    cdef floating[:, :, ::1] rows = np.zeros((outputs, kh * kw + 1, wo),
                                             dtype=np.asarray(dy).dtype)
    with nogil:
        # Each output owns its weights, bias and rows: no races.
        for o in prange(outputs, schedule="static"):
            c = o // multiplier
            for n in range(num):
                for yo in range(ho):
                    if has_bias:
                        for xo in range(wo):
                            rows[o, kh * kw, xo] += dy[n, o, yo, xo]
                    for i in range(kh):
                        hin = yo * sh - ph + i * dh
                        if hin < 0 or hin >= height:
                            continue
                        for j in range(kw):
                            shift = pw - j * dw
                            x0 = first_inside(shift, sw)
                            x1 = end_inside(shift, sw, width, wo)
                            row = i * kw + j
                            for xo in range(x0, x1):
                                rows[o, row, xo] += (dy[n, o, yo, xo] *
                                                     x[n, c, hin, xo * sw - shift])
            for row in range(kh * kw + has_bias):
                total = 0
                for xo in range(wo):
                    total = total + rows[o, row, xo]
                if row < kh * kw:
                    dw_out[o, row // kw, row % kw] += total
                else:
                    db[o] += total


def spatial_values(layer, param, repeated, twins, default, num_spatial):
    """One value per spatial axis from a repeated field (once, or once per axis) or, in 2-D
    only, from its (_h, _w) twins, by Caffe's rules."""
    values = list(getattr(param, repeated))
    if twins and (param.HasField(twins[0]) or param.HasField(twins[1])):
        if num_spatial != 2:
            raise NetError(f"layer '{layer.name}': {twins[0]}/{twins[1]} are for 2-D only; "
                           f"this layer has {num_spatial} spatial axes (use {repeated})")
        if values:
            raise NetError(f"layer '{layer.name}': give either {repeated} or "
                           f"{twins[0]}/{twins[1]}, not both")
        if default is None and not (param.HasField(twins[0]) and param.HasField(twins[1])):
            raise NetError(f"layer '{layer.name}': {twins[0]} and {twins[1]} go together")
        return getattr(param, twins[0]), getattr(param, twins[1])
    if not values:
        if default is None:
            also = f" (or {twins[0]} and {twins[1]})" if twins and num_spatial == 2 else ""
            raise NetError(f"layer '{layer.name}': {repeated}{also} is required")
        return (default,) * num_spatial
    if len(values) == 1:
        return tuple(values) * num_spatial
    if len(values) != num_spatial:
        raise NetError(f"layer '{layer.name}': {repeated} is given {len(values)} times; give "
                       f"it once, or once per spatial axis ({num_spatial})")
    return tuple(values)


class ConvolutionGeometry:
    """Mixin: reads convolution_param's geometry (kernel, stride, pad, dilation, axis,
    padding scheme and fill) and makes the Patches of an input shape."""

    def read_geometry(self, bottom_shape):
        """Set axis, num_spatial, kernel, stride, dilation, pad and the padding options."""
        p = self.param.convolution_param
        self.axis = canonical_axis(p.axis, len(bottom_shape), self)
        self.num_spatial = len(bottom_shape) - self.axis - 1
        n = self.num_spatial
        self.kernel = spatial_values(self, p, "kernel_size", ("kernel_h", "kernel_w"), None, n)
        self.stride = spatial_values(self, p, "stride", ("stride_h", "stride_w"), 1, n)
        self.pad = spatial_values(self, p, "pad", ("pad_h", "pad_w"), 0, n)
        self.dilation = spatial_values(self, p, "dilation", (), 1, n)
        for what, values in (("kernel size", self.kernel), ("stride", self.stride),
                             ("dilation", self.dilation)):
            if any(v <= 0 for v in values):
                raise NetError(f"layer '{self.name}': {what} must be positive, got {values}")
        self.same_padding = p.pad_scheme == pb.SAME
        if self.same_padding and (len(p.pad) or p.HasField("pad_h") or p.HasField("pad_w")):
            raise NetError(f"layer '{self.name}': pad_scheme SAME computes the padding; do "
                           "not give pad / pad_h / pad_w as well")
        self.pad_fill = pb.PadFill.Name(p.pad_fill).lower()
        self.pad_value = p.pad_value
        self.force_nd = p.force_nd_im2col
        self._geometry = None

    def spatial_pads(self, in_shape):
        """(pad_before, pad_after) per spatial axis for an input of spatial shape in_shape."""
        if not self.same_padding:
            return self.pad, self.pad
        before, after = [], []
        for size, k, s, d in zip(in_shape, self.kernel, self.stride, self.dilation):
            out = -(-size // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
            before.append(total // 2)
            after.append(total - total // 2)
        return tuple(before), tuple(after)

    def make_patches(self, in_shape):
        """The Patches of an input of spatial shape in_shape (checks REFLECT's limit)."""
        before, after = self.spatial_pads(in_shape)
        if self.pad_fill == "reflect" and any(
                b >= size or a >= size for b, a, size in zip(before, after, in_shape)):
            raise self.shape_error(f"pad_fill REFLECT needs every pad smaller than the input: "
                                   f"pads {before} / {after} for spatial shape {in_shape}")
        return Patches(in_shape, self.kernel, self.stride, self.dilation, before, after,
                       self.pad_fill, self.pad_value, self.force_nd)

    def expected_shape(self, channels):
        """How a fitting bottom shape reads, for error messages."""
        spatial = ["H", "W"] if self.num_spatial == 2 else [
            f"D{d + 1}" for d in range(self.num_spatial)]
        outer = ["N"] if self.axis == 1 else [f"N{a + 1}" for a in range(self.axis)]
        return "(" + ", ".join(outer + [str(channels)] + spatial) + ")"


class Convolution(ConvolutionGeometry, Layer):
    """N-D convolution by im2col + GEMM (direct kernels when depthwise); one top per bottom,
    weights shared."""

    type = "Convolution"
    min_bottom = 1
    min_top = 1

    def setup(self, bottom, top):
        p = self.param.convolution_param
        if len(bottom) != len(top):
            raise NetError(f"layer '{self.name}' ({self.type}) needs one top per bottom, got "
                           f"{len(bottom)} bottoms and {len(top)} tops")
        self.read_geometry(bottom[0].shape)
        self.num_output = p.num_output
        self.group = p.group
        self.bias_term = p.bias_term
        self.channels = bottom[0].shape[self.axis]
        if self.num_output <= 0:
            raise NetError(f"layer '{self.name}': num_output must be positive, got "
                           f"{self.num_output}")
        if self.group <= 0 or self.channels % self.group or self.num_output % self.group:
            raise NetError(f"layer '{self.name}': group {self.group} must divide both the "
                           f"input channels ({self.channels}) and num_output "
                           f"({self.num_output})")
        # One input channel (LeNet's conv1) is an ordinary convolution: GEMM beats the
        # direct kernels there.
        self.depthwise = (self.num_spatial == 2 and not self.force_nd
                          and self.group == self.channels > 1)

        shapes = [self.weight_shape()] + [(self.num_output,)] * self.bias_term
        if self.blobs:
            if len(self.blobs) != len(shapes):
                raise self.shape_error(f"expected {len(shapes)} param blobs (bias_term is "
                                       f"{self.bias_term}), got {len(self.blobs)}")
            for i, (blob, shape) in enumerate(zip(self.blobs, shapes)):
                if blob.shape != shape:
                    raise self.shape_error(f"param {i} has shape {blob.shape}, expected "
                                           f"{shape} for input shape {bottom[0].shape}")
        else:
            self.blobs = [self.new_blob(shape) for shape in shapes]
            fillers.fill(self.blobs[0].data, p.weight_filler)
            if self.bias_term:
                fillers.fill(self.blobs[1].data, p.bias_filler)

    def weight_shape(self):
        """(num_output, C / group, k1, ..., kn), Caffe's order."""
        return (self.num_output, self.channels // self.group) + tuple(self.kernel)

    def check_bottoms(self, bottom):
        """All bottoms share one shape that fits the channels: returns it."""
        shape = bottom[0].shape
        for b in bottom[1:]:
            if b.shape != shape:
                raise self.shape_error(f"all bottoms must have one shape, got {shape} and "
                                       f"{b.shape}")
        if len(shape) != self.axis + 1 + self.num_spatial or shape[self.axis] != self.channels:
            raise self.shape_error(f"bottom shape {shape} does not fit: expected "
                                   f"{self.expected_shape(self.channels)}")
        return shape

    def reshape(self, bottom, top):
        shape = self.check_bottoms(bottom)
        geometry = (shape, bottom[0].data.dtype)
        if geometry != self._geometry:
            in_shape = shape[self.axis + 1:]
            patches = self.make_patches(in_shape)
            if any(o <= 0 for o in patches.out_shape):
                raise self.shape_error(f"kernel {self.kernel} (dilation {self.dilation}, pad "
                                       f"{patches.pad_before} / {patches.pad_after}) is larger "
                                       f"than the input {shape}")
            self.patches = patches
            self._geometry = geometry
            num = math.prod(shape[:self.axis])
            self.image_shape = (num, self.channels) + tuple(in_shape)
            self.top_shape = shape[:self.axis] + (self.num_output,) + patches.out_shape
            # Whole images per chunk while their columns fit in CHUNK_ELEMENTS; past one
            # image, blocks of a group's channels (as even as they come) instead.
            per_image = patches.kernel_volume * patches.length
            per_channels = self.channels // self.group
            identity = is_identity(patches)
            self.chunk = 1 if identity else max(1, min(
                CHUNK_ELEMENTS // max(1, self.channels * per_image), -(-num // thread_count())))
            fitting = max(1, CHUNK_ELEMENTS // max(1, self.chunk * per_image))
            blocks = 1 if identity else -(-per_channels // fitting)
            self.block = -(-per_channels // blocks)
            self._no_bias = np.empty(0, bottom[0].data.dtype)
            self._no_images = np.empty((0, 0, 0), bottom[0].data.dtype)
            self._scratch_rows = None
        for t in top:
            t.reshape(*self.top_shape)

    # -- CPU ------------------------------------------------------------------

    def _scratch(self, backward):
        """One row of chunk buffers per thread (and, for backward, partial sums)."""
        length = self.patches.length
        size = self.block * self.patches.kernel_volume * self.chunk * length
        if backward:
            size += self.num_output * (math.prod(self.blobs[0].shape[1:]) + 1)
        rows = self._scratch_rows
        if rows is None or rows.shape[0] < thread_count() or rows.shape[1] < size:
            rows = self._scratch_rows = np.empty((thread_count(), size), self._no_bias.dtype)
        return rows

    def _images(self, array):
        """array (a bottom's data or diff) as contiguous (N, C, *spatial)."""
        return np.ascontiguousarray(array).reshape(self.image_shape)

    @staticmethod
    def _planes(images):
        """(N, C, *spatial) images as (N, C, volume) planes."""
        return images.reshape(images.shape[0], images.shape[1], -1)

    def _depthwise_args(self):
        (ph, pw), (sh, sw), (dh, dw) = self.patches.source_pads, self.stride, self.dilation
        return ph, pw, sh, sw, dh, dw

    def forward_cpu(self, bottom, top):
        bias = self.blobs[1].data if self.bias_term else self._no_bias
        for b, t in zip(bottom, top):
            x = self._images(b.data)
            if self.depthwise:
                depthwise_forward(self.patches.source(x),
                                  self.blobs[0].data.reshape(self.num_output, *self.kernel),
                                  bias, t.data.reshape((x.shape[0], self.num_output) +
                                                       self.patches.out_shape),
                                  *self._depthwise_args())
                continue
            forward_chunks(self._planes(self.patches.source(x)),
                           self.blobs[0].data.reshape(self.num_output, -1), bias,
                           t.data.reshape(x.shape[0], self.num_output, -1),
                           self._scratch(False), self.patches, self.group, self.chunk,
                           self.block)

    def _backward_depthwise(self, top, propagate_down, bottom):
        weights = self.blobs[0].data.reshape(self.num_output, *self.kernel)
        bias_diff = self.blobs[1].diff if self.bias_term else self._no_bias
        args = self._depthwise_args()
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = np.ascontiguousarray(t.diff).reshape(
                (self.image_shape[0], self.num_output) + self.patches.out_shape)
            depthwise_backward_params(self.patches.source(self._images(b.data)), dy,
                                      self.blobs[0].diff.reshape(weights.shape), bias_diff,
                                      *args)
            if propagate_down[i]:
                dx = b.diff.reshape(self.image_shape)
                g = self.patches.source_gradient(dx)
                depthwise_backward_data(dy, weights, g, *args)
                self.patches.fold(g, dx)

    def backward_cpu(self, top, propagate_down, bottom):
        if self.depthwise:
            self._backward_depthwise(top, propagate_down, bottom)
            return
        weights = self.blobs[0].data.reshape(self.num_output, -1)
        bias_diff = self.blobs[1].diff if self.bias_term else self._no_bias
        for i, (b, t) in enumerate(zip(bottom, top)):
            x = self._planes(self.patches.source(self._images(b.data)))
            dy = np.ascontiguousarray(t.diff).reshape(x.shape[0], self.num_output, -1)
            dx = self._no_images
            if propagate_down[i]:
                # With a copying pad fill, g is the scratch that x was padded into: each
                # chunk reads its images' x before it writes their g, so sharing is safe.
                dx_images = b.diff.reshape(self.image_shape)
                g = self.patches.source_gradient(dx_images)
                dx = self._planes(g)
            backward_chunks(x, weights, dy, dx, self.blobs[0].diff.reshape(weights.shape),
                            bias_diff, self._scratch(True), self.patches, self.group,
                            self.chunk, self.block)
            if propagate_down[i]:
                self.patches.fold(g, dx_images)

    # -- GPU (array-API; runs on numpy too) -------------------------------------

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        num = self.image_shape[0]
        for b, t in zip(bottom, top):
            col = self.patches.columns_xp(xp, b.data.reshape(self.image_shape))
            out = xp.matmul(weights, col.reshape(self.group, weights.shape[2], -1))
            out = out.reshape(self.num_output, num, -1).transpose(1, 0, 2)
            if self.bias_term:
                out = out + self.blobs[1].data[:, None]
            t.data[...] = out.reshape(t.shape)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(bottom[0].data)
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        num = self.image_shape[0]
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = t.diff.reshape(num, self.num_output, -1)
            if self.bias_term:
                self.blobs[1].diff += dy.sum(axis=(0, 2))
            out = dy.transpose(1, 0, 2).reshape(self.group, weights.shape[1], -1)
            col = self.patches.columns_xp(xp, b.data.reshape(self.image_shape))
            col = col.reshape(self.group, weights.shape[2], -1)
            self.blobs[0].diff += xp.matmul(out, col.transpose(0, 2, 1)).reshape(
                self.blobs[0].shape)
            if propagate_down[i]:
                dcol = xp.matmul(weights.transpose(0, 2, 1), out)
                b.diff[...] = self.patches.image_xp(xp, dcol, self.image_shape).reshape(
                    b.shape)
