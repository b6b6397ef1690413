"""Softmax along one axis: y_c = exp(x_c - max x) / sum_c' exp(x_c' - max x) (Caffe's Softmax).

The bottom is viewed as (outer, C, inner) around softmax_param.axis. Backward:
dx = y * (dy - sum_c(dy * y)). Subtracting the max keeps exp from overflowing.
"""
import numpy as np

from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp

from .backend import array_module
from .base import Layer, canonical_axis


def softmax_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                    floating[:, ::1] scratch):
    """y = softmax of x over axis 1; scratch is (outer, inner); y may alias x."""
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t outer = x.shape[0], channels = x.shape[1], inner = x.shape[2]
    with nogil:
        for i in prange(outer, schedule="static"):
            for j in range(inner):
                scratch[i, j] = x[i, 0, j]
            for c in range(1, channels):
                for j in range(inner):
                    if x[i, c, j] > scratch[i, j]:
                        scratch[i, j] = x[i, c, j]
            for c in range(channels):
                for j in range(inner):
                    y[i, c, j] = <floating>exp(x[i, c, j] - scratch[i, j])
            for j in range(inner):
                scratch[i, j] = 0
            for c in range(channels):
                for j in range(inner):
                    scratch[i, j] += y[i, c, j]
            for c in range(channels):
                for j in range(inner):
                    y[i, c, j] /= scratch[i, j]


def softmax_backward(const floating[:, :, ::1] y, const floating[:, :, ::1] dy,
                     floating[:, :, ::1] dx, floating[:, ::1] scratch):
    """dx = y * (dy - sum over axis 1 of dy * y); scratch is (outer, inner); dx may alias dy."""
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t outer = y.shape[0], channels = y.shape[1], inner = y.shape[2]
    with nogil:
        for i in prange(outer, schedule="static"):
            for j in range(inner):
                scratch[i, j] = 0
            for c in range(channels):
                for j in range(inner):
                    scratch[i, j] += dy[i, c, j] * y[i, c, j]
            for c in range(channels):
                for j in range(inner):
                    dx[i, c, j] = y[i, c, j] * (dy[i, c, j] - scratch[i, j])


def split_shape(shape, axis):
    """(outer, channels, inner) of a blob shape around axis."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, shape[axis], inner


def softmax_array(x, axis):
    """Softmax of an array over axis with the array's own module (the GPU path's kernel)."""
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Softmax(Layer):
    """Normalized exponentials along softmax_param.axis; top has the bottom's shape."""

    type = "Softmax"
    num_bottom = 1
    num_top = 1

    def setup(self, bottom, top):
        self.axis_param = self.param.softmax_param.axis
        self.scratch = None

    def reshape(self, bottom, top):
        self.axis = canonical_axis(self.axis_param, len(bottom[0].shape), self)
        self.dims = split_shape(bottom[0].shape, self.axis)
        top[0].reshape(bottom[0].shape)
        scratch_shape = (self.dims[0], self.dims[2])
        if self.scratch is None or self.scratch.shape != scratch_shape:
            self.scratch = np.empty(scratch_shape, self.dtype)

    def forward_cpu(self, bottom, top):
        softmax_forward(bottom[0].data.reshape(self.dims), top[0].data.reshape(self.dims),
                        self.scratch)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            softmax_backward(top[0].data.reshape(self.dims), top[0].diff.reshape(self.dims),
                             bottom[0].diff.reshape(self.dims), self.scratch)

    def forward_gpu(self, bottom, top):
        top[0].data[...] = softmax_array(bottom[0].data, self.axis)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, dy = top[0].data, top[0].diff
            bottom[0].diff[...] = y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))
