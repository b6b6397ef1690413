"""Im2col: the patches of every image as channels (Caffe's Im2col layer).

top[n, (c*K + k), o] = x[n, c, o*stride - pad + k*dilation] with the kernel offset k and
the output position o flattened row-major over the spatial axes after
convolution_param.axis (default 1): top has shape (N, C * prod(kernel), *out) where out
is convolution's output size. It reads convolution_param's kernel_size / stride / pad /
dilation (once or once per spatial axis, _h/_w twins in 2-D) and force_nd_im2col, and
cyffe's pad_scheme / pad_fill / pad_value as Convolution does. Backward is col2im: each
pixel's gradient is the sum of the top diffs taken from it.
"""
import math

import numpy as np

from .backend import array_module
from .base import Layer
from .conv import ConvolutionGeometry


class Im2col(ConvolutionGeometry, Layer):
    """im2col as a layer: one bottom, one top of patches."""

    type = "Im2col"
    num_bottom = 1
    num_top = 1

    def setup(self, bottom, top):
        self.read_geometry(bottom[0].shape)
        self.channels = bottom[0].shape[self.axis]

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + self.num_spatial or shape[self.axis] != self.channels:
            raise self.shape_error(f"bottom shape {shape} does not fit: expected "
                                   f"{self.expected_shape(self.channels)}")
        if self._geometry != shape:
            in_shape = tuple(shape[self.axis + 1:])
            patches = self.make_patches(in_shape)
            if any(o <= 0 for o in patches.out_shape):
                raise self.shape_error(f"kernel {self.kernel} (dilation {self.dilation}, pad "
                                       f"{patches.pad_before} / {patches.pad_after}) is larger "
                                       f"than the input {shape}")
            self.patches = patches
            self._geometry = shape
            num = math.prod(shape[:self.axis])
            self.image_shape = (num, self.channels) + in_shape
            self.rows = self.channels * patches.kernel_volume
            self.top_shape = shape[:self.axis] + (self.rows,) + patches.out_shape
        top[0].reshape(*self.top_shape)

    def forward_cpu(self, bottom, top):
        x = np.ascontiguousarray(bottom[0].data).reshape(self.image_shape)
        cols = top[0].data.reshape(x.shape[0], self.rows, -1)
        for n in range(x.shape[0]):
            self.patches.to_columns(x[n:n + 1], cols[n])

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff.reshape(self.image_shape)
        cols = np.ascontiguousarray(top[0].diff).reshape(dx.shape[0], self.rows, -1)
        for n in range(dx.shape[0]):
            self.patches.from_columns(cols[n], dx[n:n + 1])

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        num = self.image_shape[0]
        col = self.patches.columns_xp(xp, bottom[0].data.reshape(self.image_shape))
        top[0].data[...] = col.reshape(self.rows, num, -1).transpose(1, 0, 2).reshape(
            self.top_shape)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = array_module(bottom[0].data)
        num = self.image_shape[0]
        col = top[0].diff.reshape(num, self.rows, -1).transpose(1, 0, 2).reshape(self.rows, -1)
        bottom[0].diff[...] = self.patches.image_xp(xp, col, self.image_shape).reshape(
            bottom[0].shape)
