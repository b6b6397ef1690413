"""Sigmoid: y = 1 / (1 + exp(-x)), computed as 0.5 * tanh(0.5 x) + 0.5 (Caffe's Sigmoid).

Backward: dx = dy * y * (1 - y), from the output alone, so it runs in place.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport tanh

from .backend import array_module
from .base import NeuronLayer


def sigmoid_forward(const floating[::1] x, floating[::1] y):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static"):
            y[i] = <floating>(0.5 * tanh(0.5 * x[i]) + 0.5)


def sigmoid_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx):
    """dx = dy * y * (1 - y); dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static"):
            v = y[i]
            dx[i] = dy[i] * v * (1 - v)


class Sigmoid(NeuronLayer):
    """The logistic function, elementwise; runs in place."""

    type = "Sigmoid"

    def forward_cpu(self, bottom, top):
        sigmoid_forward(bottom[0].data.reshape(-1), top[0].data.reshape(-1))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            sigmoid_backward(top[0].data.reshape(-1), top[0].diff.reshape(-1),
                             bottom[0].diff.reshape(-1))

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        x = bottom[0].data
        # exp of -|x| only: no overflow, and full relative precision where y is near 0
        # (0.5 tanh(x / 2) + 0.5 loses it there in float32).
        e = xp.exp(-xp.abs(x))
        top[0].data[...] = xp.where(x >= 0, 1, e) / (1 + e)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * y * (1 - y)
