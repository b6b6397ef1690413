"""Im2col: the patches of every image as channels (Caffe's Im2col layer).

top[n, (c*K + k), o] = x[n, c, o*stride - pad + k*dilation] with the kernel offset k and
the output position o flattened row-major over the spatial axes after
convolution_param.axis (default 1): top has shape (N, C * prod(kernel), *out) where out
is convolution's output size. It reads convolution_param's geometry as Convolution does
(base_conv.py), force_nd_im2col and cyffe's pad_scheme / pad_fill / pad_value included.
Backward is col2im: each pixel's gradient is the sum of the top diffs taken from it.
"""
import math

import numpy as np

from .backend import array_module
from .base import Layer
from .base_conv import ConvolutionGeometry
from .kernels.im2col import col2im, col2im_xp, im2col, im2col_xp


class Im2col(ConvolutionGeometry, Layer):
    """im2col as a layer: one bottom, one top of patches."""

    type = "Im2col"
    bottoms = tops = 1

    def setup(self, bottom, top):
        self.read_geometry(bottom[0].shape)

    def reshape(self, bottom, top):
        if self.shape_changed(bottom):
            shape = bottom[0].shape
            in_shape = tuple(shape[self.axis + 1:])
            self.geometry = self.make_geometry(in_shape)
            self.image_shape = (math.prod(shape[:self.axis]), self.channels) + in_shape
            self.rows = self.channels * self.geometry.kernel_volume
            self.top_shape = shape[:self.axis] + (self.rows,) + self.geometry.out_shape
        top[0].reshape(*self.top_shape)

    def forward_cpu(self, bottom, top):
        x = np.ascontiguousarray(bottom[0].data).reshape(self.image_shape)
        cols = top[0].data.reshape(x.shape[0], self.rows, -1)
        for n in range(x.shape[0]):
            im2col(self.geometry, x[n:n + 1], cols[n])

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff.reshape(self.image_shape)
        cols = np.ascontiguousarray(top[0].diff).reshape(dx.shape[0], self.rows, -1)
        for n in range(dx.shape[0]):
            col2im(self.geometry, cols[n], dx[n:n + 1])

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        num = self.image_shape[0]
        col = im2col_xp(xp, self.geometry, bottom[0].data.reshape(self.image_shape))
        top[0].data[...] = col.reshape(self.rows, num, -1).transpose(1, 0, 2).reshape(
            self.top_shape)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = array_module(bottom[0].data)
        num = self.image_shape[0]
        col = top[0].diff.reshape(num, self.rows, -1).transpose(1, 0, 2).reshape(self.rows, -1)
        bottom[0].diff[...] = col2im_xp(xp, self.geometry, col, num, self.channels).reshape(
            bottom[0].shape)
