"""ELU: y = x if x > 0 else alpha * (exp(x) - 1)  (Caffe's ELU).

Backward: dx = dy if x > 0 else dy * (y + alpha). In place the input is gone, but for
alpha >= 0 the output has the input's sign, so the rule reads the same off the output;
for alpha < 0 forward keeps a copy of the input.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport expm1

from .backend import array_module
from .base import NeuronLayer


def elu_forward(const floating[::1] x, floating[::1] y, double alpha):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static"):
            v = x[i]
            y[i] = v if v > 0 else <floating>(alpha * expm1(v))


def elu_backward(const floating[::1] x, const floating[::1] y, const floating[::1] dy,
                 floating[::1] dx, double alpha):
    """dx = dy where x > 0, dy * (y + alpha) elsewhere; dx may alias dy."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static"):
            dx[i] = dy[i] if x[i] > 0 else <floating>(dy[i] * (y[i] + alpha))


class ELU(NeuronLayer):
    """Exponential linear unit; runs in place."""

    type = "ELU"

    def setup(self, bottom, top):
        self.alpha = self.param.elu_param.alpha

    def _input(self, bottom, top):
        return self.bottom_data(bottom, top) if self.alpha < 0 else bottom[0].data

    def forward_cpu(self, bottom, top):
        if self.alpha < 0:
            self.keep_bottom(bottom, top)
        elu_forward(bottom[0].data.reshape(-1), top[0].data.reshape(-1), self.alpha)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            elu_backward(self._input(bottom, top).reshape(-1), top[0].data.reshape(-1),
                         top[0].diff.reshape(-1), bottom[0].diff.reshape(-1), self.alpha)

    def forward_gpu(self, bottom, top):
        if self.alpha < 0:
            self.keep_bottom(bottom, top)
        xp = array_module(bottom[0].data)
        x = bottom[0].data
        top[0].data[...] = xp.where(x > 0, x, self.alpha * xp.expm1(x))

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            xp = array_module(top[0].diff)
            x, dy = self._input(bottom, top), top[0].diff
            bottom[0].diff[...] = xp.where(x > 0, dy, dy * (top[0].data + self.alpha))
