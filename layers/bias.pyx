"""Bias: y = x + b, b broadcast over the axes of x it does not cover  (Caffe's Bias).

x is viewed as (outer, dim, inner): b covers the axes [axis, axis + b.ndim) of x,
outer = prod(x.shape[:axis]), dim = b.size, inner = the rest. b is a learnable blob
(one bottom; its shape is x.shape[axis:axis + num_axes], num_axes -1 = to the end) or
bottom 1. Backward: dx = dy, db = sum of dy over outer and inner.
"""
from ..proto.errors import NetError
from . import fillers
from .base import Layer, broadcast_dims, param_blob_shape
from .kernels.elementwise import broadcast, sum_outer_inner


class Bias(Layer):
    """Adds a (learnable or second-bottom) bias broadcast along axis; blobs [bias] or []."""

    type = "Bias"
    bottoms = (1, 2)
    tops = 1

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
        broadcast(bottom[0].data.reshape(self.dims), self._bias(bottom).data.reshape(-1),
                  top[0].data.reshape(self.dims))

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
