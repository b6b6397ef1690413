"""Softmax along one axis: y_c = exp(x_c - max x) / sum_c' exp(x_c' - max x) (Caffe's Softmax).

The bottom is viewed as (outer, C, inner) around softmax_param.axis. Backward:
dx = y * (dy - sum_c(dy * y)). Subtracting the max keeps exp from overflowing.
"""
from .base import Layer, canonical_axis, split_shape, steppable
from .kernels import arena
from .kernels.softmax import ForwardStep, softmax_array, softmax_backward, softmax_forward


class Softmax(Layer):
    """Normalized exponentials along softmax_param.axis; top has the bottom's shape."""

    type = "Softmax"
    bottoms = tops = 1

    def setup(self, bottom, top):
        self.axis_param = self.param.softmax_param.axis

    def reshape(self, bottom, top):
        self.axis = canonical_axis(self.axis_param, len(bottom[0].shape), self)
        self.dims = split_shape(bottom[0].shape, self.axis)
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        with arena.scratch() as take:
            softmax_forward(x.reshape(self.dims), top[0].data.reshape(self.dims),
                            take((self.dims[0], self.dims[2]), x.dtype))

    def step(self, bottom, top):
        """The float32 forward as a net's step (kernels/step.pyx); None otherwise."""
        x, y = bottom[0].data, top[0].data
        if not steppable(x, y):
            return None
        return ForwardStep(x.reshape(self.dims), y.reshape(self.dims))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            with arena.scratch() as take:
                softmax_backward(y.reshape(self.dims), top[0].diff.reshape(self.dims),
                                 bottom[0].diff.reshape(self.dims),
                                 take((self.dims[0], self.dims[2]), y.dtype))

    def forward_gpu(self, bottom, top):
        top[0].data[...] = softmax_array(bottom[0].data, self.axis)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y, dy = top[0].data, top[0].diff
            bottom[0].diff[...] = y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))
