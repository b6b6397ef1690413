"""ELU: y = x if x > 0 else alpha * (exp(x) - 1)  (Caffe's ELU).

Backward: dx = dy if x > 0 else dy * (y + alpha). In place the input is gone, but for
alpha >= 0 the output has the input's sign, so the rule reads the same off the output;
for alpha < 0 forward keeps a copy of the input.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport expm1

from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def elu_forward(const floating[::1] x, floating[::1] y, double alpha):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            v = x[i]
            y[i] = v if v > 0 else <floating>(alpha * expm1(v))


def elu_backward(const floating[::1] x, const floating[::1] y, const floating[::1] dy,
                 floating[::1] dx, double alpha):
    """dx = dy where x > 0, dy * (y + alpha) elsewhere; dx may alias dy."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            dx[i] = dy[i] if x[i] > 0 else <floating>(dy[i] * (y[i] + alpha))


class ELU(NeuronLayer):
    """Exponential linear unit; runs in place."""

    type = "ELU"

    def setup(self, bottom, top):
        self.alpha = self.param.elu_param.alpha
        self.keeps_input = self.alpha < 0

    def forward_kernel(self, x, y):
        elu_forward(x, y, self.alpha)

    def backward_kernel(self, x, y, dy, dx):
        elu_backward(x, y, dy, dx, self.alpha)

    def forward_array(self, xp, x):
        return xp.where(x > 0, x, self.alpha * xp.expm1(x))

    def backward_array(self, xp, x, y, dy):
        return xp.where(x > 0, dy, dy * (y + self.alpha))
