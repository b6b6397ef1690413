"""Bias: y = x + b, b broadcast over the axes of x it does not cover  (Caffe's Bias).

x is viewed as (outer, dim, inner): b covers the axes [axis, axis + b.ndim) of x,
outer = prod(x.shape[:axis]), dim = b.size, inner = the rest. b is a learnable blob
(one bottom; its shape is x.shape[axis:axis + num_axes], num_axes -1 = to the end) or
bottom 1. Backward: dx = dy, db = sum of dy over outer and inner.
The broadcasting helpers here serve Scale too.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from . import fillers
from .base import Layer, canonical_axis
from .kernels.row_sums cimport row_sum


def broadcast_add(const floating[:, :, ::1] x, const floating[::1] b, floating[:, :, ::1] y):
    """y[o, d, i] = x[o, d, i] + b[d]; y may be x."""
    cdef Py_ssize_t r, i, o, d
    cdef Py_ssize_t dim = x.shape[1], inner = x.shape[2], rows = x.shape[0] * x.shape[1]
    with nogil:
        for r in prange(rows, schedule="static"):
            o = r // dim
            d = r % dim
            for i in range(inner):
                y[o, d, i] = x[o, d, i] + b[d]


def sum_outer_inner(const floating[:, :, ::1] dy, floating[::1] out, bint accumulate):
    """out[d] (+)= sum over o, i of dy[o, d, i]."""
    cdef Py_ssize_t o, d, i
    cdef Py_ssize_t outer = dy.shape[0], dim = dy.shape[1], inner = dy.shape[2]
    cdef double acc
    with nogil:
        for d in prange(dim, schedule="static"):
            acc = 0
            for o in range(outer):
                acc = acc + row_sum(&dy[o, d, 0], inner)
            if accumulate:
                out[d] += <floating>acc
            else:
                out[d] = <floating>acc


def param_blob_shape(layer, shape, axis, num_axes):
    """The learnable blob's shape: shape[axis:axis + num_axes] (num_axes -1: to the end)."""
    if num_axes < -1:
        raise NetError(f"layer '{layer.name}' ({layer.type}): num_axes must be -1 or "
                       f"non-negative, got {num_axes}")
    axis = canonical_axis(axis, len(shape), layer)
    if num_axes == -1:
        return tuple(shape[axis:])
    if axis + num_axes > len(shape):
        raise layer.shape_error(f"axis {axis} + num_axes {num_axes} exceeds the "
                                f"{len(shape)} axes of the bottom {shape}")
    return tuple(shape[axis:axis + num_axes])


def broadcast_dims(layer, shape, operand_shape, axis):
    """(outer, dim, inner) of `shape` for an operand of `operand_shape` placed at `axis`."""
    axis = 0 if len(operand_shape) == 0 else canonical_axis(axis, len(shape), layer)
    end = axis + len(operand_shape)
    if end > len(shape) or tuple(shape[axis:end]) != tuple(operand_shape):
        raise layer.shape_error(f"operand of shape {tuple(operand_shape)} does not match "
                                f"the bottom {tuple(shape)} from axis {axis} on")
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    dim = int(np.prod(operand_shape, dtype=np.int64))
    inner = int(np.prod(shape[end:], dtype=np.int64))
    return outer, dim, inner


class Bias(Layer):
    """Adds a (learnable or second-bottom) bias broadcast along axis; blobs [bias] or []."""

    type = "Bias"
    min_bottom = 1
    max_bottom = 2
    num_top = 1

    def setup(self, bottom, top):
        p = self.param.bias_param
        self.axis = p.axis
        if len(bottom) == 2:
            if self.blobs:
                raise NetError(f"layer '{self.name}' (Bias): takes its bias from bottom 1, "
                               f"so it has no param blobs, got {len(self.blobs)}")
            return
        shape = param_blob_shape(self, bottom[0].shape, p.axis, p.num_axes)
        if not self.blobs:
            self.blobs = [self.new_blob(shape)]
            fillers.fill(self.blobs[0].data, p.filler)
        elif len(self.blobs) != 1 or self.blobs[0].shape != shape:
            raise self.shape_error(f"expected one bias blob of shape {shape}, got "
                                   f"{[b.shape for b in self.blobs]}")

    def _bias(self, bottom):
        return bottom[1] if len(bottom) == 2 else self.blobs[0]

    def reshape(self, bottom, top):
        self.dims = broadcast_dims(self, bottom[0].shape, self._bias(bottom).shape, self.axis)
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        broadcast_add(bottom[0].data.reshape(self.dims),
                      self._bias(bottom).data.reshape(-1), top[0].data.reshape(self.dims))

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        if propagate_down[0] and bottom[0].diff is not top[0].diff:
            bottom[0].diff[...] = top[0].diff
        if len(bottom) == 2:
            if propagate_down[1]:
                sum_outer_inner(dy, bottom[1].diff.reshape(-1), False)
        else:
            sum_outer_inner(dy, self.blobs[0].diff.reshape(-1), True)

    def forward_gpu(self, bottom, top):
        b = self._bias(bottom).data.reshape(1, self.dims[1], 1)
        top[0].data[...] = (bottom[0].data.reshape(self.dims) + b).reshape(top[0].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        if propagate_down[0] and bottom[0].diff is not top[0].diff:
            bottom[0].diff[...] = top[0].diff
        db = dy.sum(axis=(0, 2)).reshape(self._bias(bottom).shape)
        if len(bottom) == 2:
            if propagate_down[1]:
                bottom[1].diff[...] = db
        else:
            self.blobs[0].diff += db
