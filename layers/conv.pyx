"""Convolution: y[n, o] = sum_{c in group(o)} w[o, c] (*) x[n, c] + b[o]  (Caffe's Convolution).

(*) is 2-D cross-correlation with padding, stride and dilation; the output is
(H + 2*pad - (dilation*(k-1) + 1)) // stride + 1 per spatial axis. Channels and
outputs split into `group` independent groups. Weights (num_output, C/group, kh, kw),
bias (num_output,). Forward: im2col of a chunk of images into one column matrix,
then one GEMM per group; backward: GEMMs for the weight gradient, the bias gradient
and the column gradient, then col2im. Several bottoms share the weights (one top each).
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from . import fillers
from .backend import array_module
from .base import Layer, canonical_axis
from .im2col import col2im, col2im_xp, im2col, im2col_xp

# Most elements the column buffer holds; a larger minibatch is im2col'ed in chunks.
COLUMN_LIMIT = 1 << 24


def columns_to_images(const floating[:, ::1] y, floating[:, :, ::1] top,
                      const floating[::1] bias):
    """top[n, m, l] = y[m, n*L + l] + bias[m] (no bias when bias is empty)."""
    cdef Py_ssize_t num = top.shape[0], outputs = top.shape[1], length = top.shape[2]
    cdef Py_ssize_t row, n, m, l
    cdef bint has_bias = bias.shape[0] > 0
    cdef floating b
    with nogil:
        for row in prange(num * outputs, schedule="static"):
            n = row // outputs
            m = row % outputs
            b = bias[m] if has_bias else 0
            for l in range(length):
                top[n, m, l] = y[m, n * length + l] + b


def images_to_columns(const floating[:, :, ::1] top, floating[:, ::1] y):
    """y[m, n*L + l] = top[n, m, l] (the inverse rearrangement, for top diffs)."""
    cdef Py_ssize_t num = top.shape[0], outputs = top.shape[1], length = top.shape[2]
    cdef Py_ssize_t row, n, m, l
    with nogil:
        for row in prange(num * outputs, schedule="static"):
            n = row // outputs
            m = row % outputs
            for l in range(length):
                y[m, n * length + l] = top[n, m, l]


def spatial_values(layer, param, repeated, twins, default):
    """(h, w) from a repeated field (1 or 2 values) or its (_h, _w) twins, by Caffe's rules."""
    values = list(getattr(param, repeated))
    if twins and (param.HasField(twins[0]) or param.HasField(twins[1])):
        if values:
            raise NetError(f"layer '{layer.name}': give either {repeated} or "
                           f"{twins[0]}/{twins[1]}, not both")
        if default is None and not (param.HasField(twins[0]) and param.HasField(twins[1])):
            raise NetError(f"layer '{layer.name}': {twins[0]} and {twins[1]} go together")
        return getattr(param, twins[0]), getattr(param, twins[1])
    if not values:
        if default is None:
            raise NetError(f"layer '{layer.name}': {repeated} (or {twins[0]} and {twins[1]}) "
                           "is required")
        return default, default
    if len(values) > 2:
        raise NetError(f"layer '{layer.name}': {repeated} is given {len(values)} times; give "
                       "it once, or once per spatial axis (2)")
    return values[0], values[len(values) - 1]


class Convolution(Layer):
    """2-D convolution by im2col + GEMM; one top per bottom, weights shared."""

    type = "Convolution"
    min_bottom = 1
    min_top = 1

    def setup(self, bottom, top):
        p = self.param.convolution_param
        if len(bottom) != len(top):
            raise NetError(f"layer '{self.name}' ({self.type}) needs one top per bottom, got "
                           f"{len(bottom)} bottoms and {len(top)} tops")
        axis = canonical_axis(p.axis, len(bottom[0].shape), self)
        if axis != 1:
            raise NetError(f"layer '{self.name}': convolution_param.axis {p.axis} is not "
                           "supported yet (only the channel axis 1)")
        if len(bottom[0].shape) != 4:
            raise NetError(f"layer '{self.name}': {len(bottom[0].shape) - 2}-D convolution "
                           f"(bottom shape {bottom[0].shape}) is not supported yet; only 2-D")
        self.kernel = spatial_values(self, p, "kernel_size", ("kernel_h", "kernel_w"), None)
        self.stride = spatial_values(self, p, "stride", ("stride_h", "stride_w"), 1)
        self.pad = spatial_values(self, p, "pad", ("pad_h", "pad_w"), 0)
        self.dilation = spatial_values(self, p, "dilation", (), 1)
        for what, values in (("kernel size", self.kernel), ("stride", self.stride),
                             ("dilation", self.dilation)):
            if min(values) <= 0:
                raise NetError(f"layer '{self.name}': {what} must be positive, got {values}")
        self.num_output = p.num_output
        self.group = p.group
        self.bias_term = p.bias_term
        self.channels = bottom[0].shape[1]
        if self.num_output <= 0:
            raise NetError(f"layer '{self.name}': num_output must be positive, got "
                           f"{self.num_output}")
        if self.group <= 0 or self.channels % self.group or self.num_output % self.group:
            raise NetError(f"layer '{self.name}': group {self.group} must divide both the "
                           f"input channels ({self.channels}) and num_output "
                           f"({self.num_output})")

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
        self._geometry = None

    def weight_shape(self):
        """(num_output, C / group, kh, kw), Caffe's order."""
        return (self.num_output, self.channels // self.group) + tuple(self.kernel)

    def output_shape(self, height, width):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        return ((height + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1,
                (width + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        for b in bottom[1:]:
            if b.shape != shape:
                raise self.shape_error(f"all bottoms must have one shape, got {shape} and "
                                       f"{b.shape}")
        if len(shape) != 4 or shape[1] != self.channels:
            raise self.shape_error(f"bottom shape {shape} does not fit: expected "
                                   f"(N, {self.channels}, H, W)")
        num, _, height, width = shape
        ho, wo = self.output_shape(height, width)
        if ho <= 0 or wo <= 0:
            raise self.shape_error(f"kernel {self.kernel} (dilation {self.dilation}, pad "
                                   f"{self.pad}) is larger than the input {shape}")
        for t in top:
            t.reshape(num, self.num_output, ho, wo)
        geometry = (num, height, width, bottom[0].data.dtype)
        if geometry != self._geometry:
            self._geometry = geometry
            self.out_hw = (ho, wo)
            rows = self.channels * self.kernel[0] * self.kernel[1]
            length = ho * wo
            self.chunk = max(1, min(num, COLUMN_LIMIT // max(1, rows * length)))
            dtype = bottom[0].data.dtype
            self._col = np.empty(rows * self.chunk * length, dtype)
            self._out = np.empty(self.num_output * self.chunk * length, dtype)
            self._ones = np.ones(self.chunk * length, dtype)
            self._bias_grad = np.empty(self.num_output, dtype)
            self._weight_grad = np.empty(self.blobs[0].shape, dtype).reshape(
                self.group, self.num_output // self.group, -1)[0]
            self._no_bias = np.empty(0, dtype)
            self._col_holds = None

    # -- CPU ------------------------------------------------------------------

    def _chunks(self, num):
        """(start, stop, col (K, m*L), out (M, m*L)) for each chunk of images."""
        length = self.out_hw[0] * self.out_hw[1]
        rows = self._col.size // (self.chunk * length)
        for start in range(0, num, self.chunk):
            m = min(self.chunk, num - start)
            yield (start, start + m, self._col[:rows * m * length].reshape(rows, m * length),
                   self._out[:self.num_output * m * length].reshape(self.num_output, -1))

    def _im2col(self, x, col):
        (kh, kw), (ph, pw), (sh, sw), (dh, dw) = self.kernel, self.pad, self.stride, self.dilation
        im2col(x, col, kh, kw, ph, pw, sh, sw, dh, dw, *self.out_hw)

    def _grouped(self, array, rows):
        return [array[g * rows:(g + 1) * rows] for g in range(self.group)]

    def forward_cpu(self, bottom, top):
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        bias = self.blobs[1].data if self.bias_term else self._no_bias
        single_chunk = self.chunk >= bottom[0].shape[0]
        for i, (b, t) in enumerate(zip(bottom, top)):
            x = np.ascontiguousarray(b.data)
            top_rows = t.data.reshape(t.shape[0], self.num_output, -1)
            for start, stop, col, out in self._chunks(x.shape[0]):
                self._im2col(x[start:stop], col)
                for w, c, o in zip(weights, self._grouped(col, col.shape[0] // self.group),
                                   self._grouped(out, weights.shape[1])):
                    np.dot(w, c, out=o)
                columns_to_images(out, top_rows[start:stop], bias)
            # The columns of a single-chunk bottom stay valid for its backward.
            self._col_holds = i if single_chunk else None

    def backward_cpu(self, top, propagate_down, bottom):
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        weight_diff = self.blobs[0].diff.reshape(weights.shape)
        (kh, kw), (ph, pw), (sh, sw), (dh, dw) = self.kernel, self.pad, self.stride, self.dilation
        for i, (b, t) in enumerate(zip(bottom, top)):
            top_rows = t.diff.reshape(t.shape[0], self.num_output, -1)
            x = None
            for start, stop, col, out in self._chunks(top_rows.shape[0]):
                images_to_columns(top_rows[start:stop], out)
                if self.bias_term:
                    np.dot(out, self._ones[:out.shape[1]], out=self._bias_grad)
                    self.blobs[1].diff += self._bias_grad
                if self._col_holds != i:
                    if x is None:
                        x = np.ascontiguousarray(b.data)
                    self._im2col(x[start:stop], col)
                    self._col_holds = None
                cols = self._grouped(col, col.shape[0] // self.group)
                outs = self._grouped(out, weights.shape[1])
                for w_diff, c, o in zip(weight_diff, cols, outs):
                    np.dot(o, c.T, out=self._weight_grad)
                    w_diff += self._weight_grad
                if propagate_down[i]:
                    for w, c, o in zip(weights, cols, outs):
                        np.dot(w.T, o, out=c)
                    self._col_holds = None
                    col2im(col, b.diff[start:stop], kh, kw, ph, pw, sh, sw, dh, dw,
                           *self.out_hw)

    # -- GPU (array-API; runs on numpy too) -------------------------------------

    def _geometry_args(self):
        (kh, kw), (ph, pw), (sh, sw), (dh, dw) = self.kernel, self.pad, self.stride, self.dilation
        return (kh, kw, ph, pw, sh, sw, dh, dw) + tuple(self.out_hw)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        for b, t in zip(bottom, top):
            num = b.shape[0]
            col = im2col_xp(xp, b.data, *self._geometry_args())
            out = xp.matmul(weights, col.reshape(self.group, weights.shape[2], -1))
            out = out.reshape(self.num_output, num, -1).transpose(1, 0, 2)
            if self.bias_term:
                out = out + self.blobs[1].data[:, None]
            t.data[...] = out.reshape(t.shape)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(bottom[0].data)
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = t.diff.reshape(t.shape[0], self.num_output, -1)
            if self.bias_term:
                self.blobs[1].diff += dy.sum(axis=(0, 2))
            out = dy.transpose(1, 0, 2).reshape(self.group, weights.shape[1], -1)
            col = im2col_xp(xp, b.data, *self._geometry_args())
            col = col.reshape(self.group, weights.shape[2], -1)
            self.blobs[0].diff += xp.matmul(out, col.transpose(0, 2, 1)).reshape(
                self.blobs[0].shape)
            if propagate_down[i]:
                dcol = xp.matmul(weights.transpose(0, 2, 1), out)
                b.diff[...] = col2im_xp(xp, dcol, b.shape, *self._geometry_args())
