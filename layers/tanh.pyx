"""TanH: y = tanh(x) (Caffe's TanH).

Backward: dx = dy * (1 - y^2), from the output alone, so it runs in place.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport tanh

from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def tanh_forward(const floating[::1] x, floating[::1] y):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            y[i] = <floating>tanh(x[i])


def tanh_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx):
    """dx = dy * (1 - y^2); dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            v = y[i]
            dx[i] = dy[i] * (1 - v * v)


class TanH(NeuronLayer):
    """The hyperbolic tangent, elementwise; runs in place."""

    type = "TanH"

    def forward_kernel(self, x, y):
        tanh_forward(x, y)

    def backward_kernel(self, x, y, dy, dx):
        tanh_backward(y, dy, dx)

    def forward_array(self, xp, x):
        return xp.tanh(x)

    def backward_array(self, xp, x, y, dy):
        return dy * (1 - y * y)
