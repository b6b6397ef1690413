"""Sigmoid: y = 1 / (1 + exp(-x)), computed as 0.5 * tanh(0.5 x) + 0.5 (Caffe's Sigmoid).

Backward: dx = dy * y * (1 - y), from the output alone, so it runs in place.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport tanh

from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def sigmoid_forward(const floating[::1] x, floating[::1] y):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            y[i] = <floating>(0.5 * tanh(0.5 * x[i]) + 0.5)


def sigmoid_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx):
    """dx = dy * y * (1 - y); dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            v = y[i]
            dx[i] = dy[i] * v * (1 - v)


class Sigmoid(NeuronLayer):
    """The logistic function, elementwise; runs in place."""

    type = "Sigmoid"

    def forward_kernel(self, x, y):
        sigmoid_forward(x, y)

    def backward_kernel(self, x, y, dy, dx):
        sigmoid_backward(y, dy, dx)

    def forward_array(self, xp, x):
        # exp of -|x| only: no overflow, and full relative precision where y is near 0
        # (0.5 tanh(x / 2) + 0.5 loses it there in float32).
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1, e) / (1 + e)

    def backward_array(self, xp, x, y, dy):
        return dy * y * (1 - y)
