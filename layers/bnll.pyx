"""BNLL: y = log(1 + exp(x))  (Caffe's BNLL, "binomial normal log likelihood").

Computed stably as x + log(1 + exp(-x)) for x > 0 and log(1 + exp(x)) otherwise.
Backward: dx = dy * sigmoid(x), read off the output as sigmoid(x) = 1 - exp(-y), so the
layer runs in place (Caffe's own backward reads the input and so breaks in place).
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp, expm1, log1p

from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def bnll_forward(const floating[::1] x, floating[::1] y):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            v = x[i]
            y[i] = <floating>(v + log1p(exp(-v)) if v > 0 else log1p(exp(v)))


def bnll_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx):
    """dx = dy * (1 - exp(-y)) = dy * sigmoid(x); dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            dx[i] = <floating>(-dy[i] * expm1(-y[i]))


class BNLL(NeuronLayer):
    """The softplus function log(1 + exp(x)), elementwise; runs in place."""

    type = "BNLL"

    def forward_kernel(self, x, y):
        bnll_forward(x, y)

    def backward_kernel(self, x, y, dy, dx):
        bnll_backward(y, dy, dx)

    def forward_array(self, xp, x):
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward_array(self, xp, x, y, dy):
        return -dy * xp.expm1(-y)
