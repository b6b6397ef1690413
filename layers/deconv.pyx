"""Deconvolution: the transpose of Convolution (Caffe's Deconvolution): y = conv^T(w) x + b.

Every convolution_param option of Caffe applies (kernel/stride/pad/dilation given once
or once per spatial axis, their _h/_w twins in 2-D, axis, group, bias_term, fillers,
force_nd_im2col), over num_spatial_axes = bottom.ndim - axis - 1 spatial axes. Weights
are (C_in, num_output/group, k1, ..., kn) as in Caffe, and the output is
stride*(in-1) + dilation*(k-1)+1 - 2*pad per spatial axis. cyffe's pad_scheme and
pad_fill take only their defaults here (EXPLICIT, ZERO): anything else is an error.
Forward is convolution's backward-data: one GEMM per group, w_g^T x_g, gives columns
that col2im sums into the (larger) top. Backward is convolution's forward: im2col of
the top diff, then GEMMs for the bottom diff (w_g cols_g) and the weight diff
(x_g cols_g^T); the bias diff sums the top diff. Several bottoms share the weights.
"""
import math

import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .blas import gemm
from .conv import Convolution

# Most elements the column buffer holds; a larger minibatch is col2im'ed in chunks.
COLUMN_LIMIT = 1 << 25


def columns_to_images(const floating[:, ::1] y, floating[:, :, ::1] top):
    """top[n, m, l] = y[m, n*L + l] (the column blocks of a chunk back to image rows)."""
    cdef Py_ssize_t num = top.shape[0], outputs = top.shape[1], length = top.shape[2]
    cdef Py_ssize_t row, n, m, l
    with nogil:
        for row in prange(num * outputs, schedule="static"):
            n = row // outputs
            m = row % outputs
            for l in range(length):
                top[n, m, l] = y[m, n * length + l]


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


class Deconvolution(Convolution):
    """Transposed N-D convolution by GEMM + col2im; one top per bottom, weights shared."""

    type = "Deconvolution"

    def setup(self, bottom, top):
        p = self.param.convolution_param
        if p.pad_scheme != pb.EXPLICIT or p.pad_fill != pb.ZERO:
            raise NetError(f"layer '{self.name}' (Deconvolution): only pad_scheme EXPLICIT "
                           f"with pad_fill ZERO is supported, got "
                           f"{pb.PadScheme.Name(p.pad_scheme)} / {pb.PadFill.Name(p.pad_fill)}")
        super().setup(bottom, top)
        self.depthwise = False

    def weight_shape(self):
        """(C_in, num_output / group, k1, ..., kn), Caffe's order for Deconvolution."""
        return (self.channels, self.num_output // self.group) + tuple(self.kernel)

    def output_shape(self, in_shape):
        """The top's spatial shape for a bottom of spatial shape in_shape."""
        return tuple(s * (i - 1) + d * (k - 1) + 1 - 2 * p for i, k, s, d, p in
                     zip(in_shape, self.kernel, self.stride, self.dilation, self.pad))

    def reshape(self, bottom, top):
        shape = self.check_bottoms(bottom)
        geometry = (shape, bottom[0].data.dtype)
        if geometry != self._geometry:
            in_shape = tuple(shape[self.axis + 1:])
            out_shape = self.output_shape(in_shape)
            if any(o <= 0 for o in out_shape):
                raise self.shape_error(f"pad {self.pad} is too large for kernel {self.kernel} "
                                       f"(stride {self.stride}, dilation {self.dilation}) and "
                                       f"input {shape}: the output would be {out_shape}")
            # The columns are the top's patches: the bottom is their output grid.
            self.patches = self.make_patches(out_shape)
            self._geometry = geometry
            num = math.prod(shape[:self.axis])
            self.image_shape = (num, self.channels) + in_shape
            self.top_image_shape = (num, self.num_output) + out_shape
            self.top_shape = shape[:self.axis] + (self.num_output,) + out_shape
            rows = self.num_output * self.patches.kernel_volume
            length = math.prod(in_shape)
            self.chunk = max(1, min(num, COLUMN_LIMIT // max(1, rows * length)))
            dtype = bottom[0].data.dtype
            self._col = np.empty(rows * self.chunk * length, dtype)
            self._xcol = np.empty(self.channels * self.chunk * length, dtype)
        for t in top:
            t.reshape(*self.top_shape)

    def _weights(self, array):
        """The weights as (group, C_in / group, num_output / group * prod(kernel))."""
        return array.reshape(self.group, self.channels // self.group, -1)

    # -- CPU ------------------------------------------------------------------

    def _chunks(self, num):
        """(start, stop, col (num_output*K, m*L), xcol (C_in, m*L)) per chunk of images."""
        length = self.patches.length
        rows = self._col.size // (self.chunk * length)
        for start in range(0, num, self.chunk):
            m = min(self.chunk, num - start)
            yield (start, start + m, self._col[:rows * m * length].reshape(rows, m * length),
                   self._xcol[:self.channels * m * length].reshape(self.channels, -1))

    def _grouped(self, array, rows):
        return [array[g * rows:(g + 1) * rows] for g in range(self.group)]

    def forward_cpu(self, bottom, top):
        weights = self._weights(self.blobs[0].data)
        num = self.image_shape[0]
        for b, t in zip(bottom, top):
            x = np.ascontiguousarray(b.data).reshape(num, self.channels, -1)
            y = t.data.reshape(self.top_image_shape)
            for start, stop, col, xcol in self._chunks(num):
                images_to_columns(x[start:stop], xcol)
                for w, c, xc in zip(weights, self._grouped(col, weights.shape[2]),
                                    self._grouped(xcol, weights.shape[1])):
                    gemm(w, xc, c, trans_a=True)
                self.patches.from_columns(col, y[start:stop])
            if self.bias_term:
                t.data.reshape(num, self.num_output, -1)[...] += self.blobs[1].data[:, None]

    def backward_cpu(self, top, propagate_down, bottom):
        weights = self._weights(self.blobs[0].data)
        weight_diff = self._weights(self.blobs[0].diff)
        num = self.image_shape[0]
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = np.ascontiguousarray(t.diff).reshape(self.top_image_shape)
            if self.bias_term:
                self.blobs[1].diff += dy.reshape(num, self.num_output, -1).sum(axis=(0, 2))
            x = np.ascontiguousarray(b.data).reshape(num, self.channels, -1)
            for start, stop, col, xcol in self._chunks(num):
                self.patches.to_columns(dy[start:stop], col)
                images_to_columns(x[start:stop], xcol)
                cols = self._grouped(col, weights.shape[2])
                xcols = self._grouped(xcol, weights.shape[1])
                for w_diff, c, xc in zip(weight_diff, cols, xcols):
                    gemm(xc, c, w_diff, trans_b=True, beta=1)
                if propagate_down[i]:
                    for w, c, xc in zip(weights, cols, xcols):
                        gemm(w, c, xc)
                    columns_to_images(xcol, b.diff.reshape(num, self.channels, -1)[start:stop])

    # -- GPU (array-API; runs on numpy too) -------------------------------------

    def _image_columns(self, x):
        """x (N, C_in, *spatial) as (group, C_in / group, N*prod(spatial))."""
        num = x.shape[0]
        return x.reshape(num, self.channels, -1).transpose(1, 0, 2).reshape(
            self.group, self.channels // self.group, -1)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        weights = self._weights(self.blobs[0].data)
        for b, t in zip(bottom, top):
            col = xp.matmul(weights.transpose(0, 2, 1),
                            self._image_columns(b.data.reshape(self.image_shape)))
            y = self.patches.image_xp(xp, col, self.top_image_shape)
            if self.bias_term:
                y = y + self.blobs[1].data.reshape((-1,) + (1,) * self.num_spatial)
            t.data[...] = y.reshape(t.shape)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(bottom[0].data)
        weights = self._weights(self.blobs[0].data)
        num = self.image_shape[0]
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = t.diff.reshape(self.top_image_shape)
            if self.bias_term:
                self.blobs[1].diff += dy.reshape(num, self.num_output, -1).sum(axis=(0, 2))
            col = self.patches.columns_xp(xp, dy).reshape(self.group, weights.shape[2], -1)
            xcol = self._image_columns(b.data.reshape(self.image_shape))
            self.blobs[0].diff += xp.matmul(xcol, col.transpose(0, 2, 1)).reshape(
                self.blobs[0].shape)
            if propagate_down[i]:
                dx = xp.matmul(weights, col).reshape(self.channels, num, -1)
                b.diff[...] = dx.transpose(1, 0, 2).reshape(b.shape)
