"""Deconvolution: the transpose of Convolution (Caffe's Deconvolution): y = conv^T(w) x + b.

Every convolution_param option applies (kernel/stride/pad/dilation with their _h/_w
twins, group, bias_term, fillers). Weights are (C_in, num_output/group, kh, kw) as
in Caffe, and the output is stride*(H-1) + dilation*(k-1)+1 - 2*pad per spatial axis.
Forward is convolution's backward-data: one GEMM per group, w_g^T x_g, gives columns
that col2im sums into the (larger) top. Backward is convolution's forward: im2col of
the top diff, then GEMMs for the bottom diff (w_g cols_g) and the weight diff
(x_g cols_g^T); the bias diff sums the top diff. Several bottoms share the weights.
"""
import numpy as np

from .backend import array_module
from .conv import COLUMN_LIMIT, Convolution, columns_to_images, images_to_columns
from .im2col import col2im, col2im_xp, im2col, im2col_xp


class Deconvolution(Convolution):
    """Transposed 2-D convolution by GEMM + col2im; one top per bottom, weights shared."""

    type = "Deconvolution"

    def weight_shape(self):
        """(C_in, num_output / group, kh, kw), Caffe's order for Deconvolution."""
        return (self.channels, self.num_output // self.group) + tuple(self.kernel)

    def output_shape(self, height, width):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        return (sh * (height - 1) + dh * (kh - 1) + 1 - 2 * ph,
                sw * (width - 1) + dw * (kw - 1) + 1 - 2 * pw)

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
            raise self.shape_error(f"pad {self.pad} is too large for kernel {self.kernel} "
                                   f"(stride {self.stride}, dilation {self.dilation}) and "
                                   f"input {shape}: the output would be {ho} x {wo}")
        for t in top:
            t.reshape(num, self.num_output, ho, wo)
        geometry = (num, height, width, bottom[0].data.dtype)
        if geometry != self._geometry:
            self._geometry = geometry
            self.in_hw = (height, width)
            rows = self.num_output * self.kernel[0] * self.kernel[1]
            length = height * width
            self.chunk = max(1, min(num, COLUMN_LIMIT // max(1, rows * length)))
            dtype = bottom[0].data.dtype
            self._col = np.empty(rows * self.chunk * length, dtype)
            self._xcol = np.empty(self.channels * self.chunk * length, dtype)
            self._weight_grad = np.empty(self.blobs[0].shape, dtype).reshape(
                self.group, self.channels // self.group, -1)[0]
            self._no_bias = np.empty(0, dtype)

    def _geometry_args(self):
        (kh, kw), (ph, pw), (sh, sw), (dh, dw) = self.kernel, self.pad, self.stride, self.dilation
        return (kh, kw, ph, pw, sh, sw, dh, dw) + tuple(self.in_hw)

    def _weights(self, array):
        """The weights as (group, C_in / group, num_output / group * kh * kw)."""
        return array.reshape(self.group, self.channels // self.group, -1)

    # -- CPU ------------------------------------------------------------------

    def _chunks(self, num):
        """(start, stop, col (num_output*kh*kw, m*L), xcol (C_in, m*L)) per chunk of images."""
        length = self.in_hw[0] * self.in_hw[1]
        rows = self._col.size // (self.chunk * length)
        for start in range(0, num, self.chunk):
            m = min(self.chunk, num - start)
            yield (start, start + m, self._col[:rows * m * length].reshape(rows, m * length),
                   self._xcol[:self.channels * m * length].reshape(self.channels, -1))

    def forward_cpu(self, bottom, top):
        weights = self._weights(self.blobs[0].data)
        args = self._geometry_args()
        for b, t in zip(bottom, top):
            x = np.ascontiguousarray(b.data).reshape(b.shape[0], self.channels, -1)
            for start, stop, col, xcol in self._chunks(x.shape[0]):
                images_to_columns(x[start:stop], xcol)
                for w, c, xc in zip(weights, self._grouped(col, weights.shape[2]),
                                    self._grouped(xcol, weights.shape[1])):
                    np.dot(w.T, xc, out=c)
                col2im(col, t.data[start:stop], *args)
            if self.bias_term:
                t.data.reshape(t.shape[0], self.num_output, -1)[...] += \
                    self.blobs[1].data[:, None]

    def backward_cpu(self, top, propagate_down, bottom):
        weights = self._weights(self.blobs[0].data)
        weight_diff = self._weights(self.blobs[0].diff)
        args = self._geometry_args()
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = np.ascontiguousarray(t.diff)
            if self.bias_term:
                self.blobs[1].diff += dy.sum(axis=(0, 2, 3))
            x = np.ascontiguousarray(b.data).reshape(b.shape[0], self.channels, -1)
            for start, stop, col, xcol in self._chunks(x.shape[0]):
                im2col(dy[start:stop], col, *args)
                images_to_columns(x[start:stop], xcol)
                cols = self._grouped(col, weights.shape[2])
                xcols = self._grouped(xcol, weights.shape[1])
                for w_diff, c, xc in zip(weight_diff, cols, xcols):
                    np.dot(xc, c.T, out=self._weight_grad)
                    w_diff += self._weight_grad
                if propagate_down[i]:
                    for w, c, xc in zip(weights, cols, xcols):
                        np.dot(w, c, out=xc)
                    columns_to_images(xcol, b.diff[start:stop].reshape(stop - start,
                                                                       self.channels, -1),
                                      self._no_bias)

    # -- GPU (array-API; runs on numpy too) -------------------------------------

    def _image_columns(self, x):
        """x (N, C_in, H, W) as (group, C_in / group, N*H*W)."""
        num = x.shape[0]
        return x.reshape(num, self.channels, -1).transpose(1, 0, 2).reshape(
            self.group, self.channels // self.group, -1)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        weights = self._weights(self.blobs[0].data)
        for b, t in zip(bottom, top):
            col = xp.matmul(weights.transpose(0, 2, 1), self._image_columns(b.data))
            y = col2im_xp(xp, col, t.shape, *self._geometry_args())
            if self.bias_term:
                y = y + self.blobs[1].data[:, None, None]
            t.data[...] = y

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(bottom[0].data)
        weights = self._weights(self.blobs[0].data)
        for i, (b, t) in enumerate(zip(bottom, top)):
            if self.bias_term:
                self.blobs[1].diff += t.diff.sum(axis=(0, 2, 3))
            col = im2col_xp(xp, t.diff, *self._geometry_args()).reshape(
                self.group, weights.shape[2], -1)
            xcol = self._image_columns(b.data)
            self.blobs[0].diff += xp.matmul(xcol, col.transpose(0, 2, 1)).reshape(
                self.blobs[0].shape)
            if propagate_down[i]:
                dx = xp.matmul(weights, col).reshape(self.channels, b.shape[0], -1)
                b.diff[...] = dx.transpose(1, 0, 2).reshape(b.shape)
