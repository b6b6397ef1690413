"""Swish: y = x * sigmoid(beta * x)  (Caffe's Swish).

The sigmoid is kept from forward (as Caffe keeps its inner Sigmoid layer's output), and
backward reads only it and the output: dx = dy * (beta * y + s * (1 - beta * y)), with
s = sigmoid(beta * x); so the layer runs in place.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport tanh

from .base import NeuronLayer, scratch_like
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def swish_forward(const floating[::1] x, floating[::1] y, floating[::1] s, double beta):
    """s = sigmoid(beta * x), y = x * s; y may alias x."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v, sig
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            v = x[i]
            sig = <floating>(0.5 * tanh(0.5 * beta * v) + 0.5)
            s[i] = sig
            y[i] = v * sig


def swish_backward(const floating[::1] y, const floating[::1] s, const floating[::1] dy,
                   floating[::1] dx, double beta):
    """dx = dy * (beta * y + s * (1 - beta * y)); dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef double by
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            by = beta * y[i]
            dx[i] = <floating>(dy[i] * (by + s[i] * (1 - by)))


class Swish(NeuronLayer):
    """The self-gated unit x * sigmoid(beta x); runs in place."""

    type = "Swish"

    def setup(self, bottom, top):
        self.beta = self.param.swish_param.beta
        self.sigmoid = None

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.sigmoid = scratch_like(self.sigmoid, bottom[0].data)

    def forward_kernel(self, x, y):
        swish_forward(x, y, self.view(self.sigmoid), self.beta)

    def backward_kernel(self, x, y, dy, dx):
        swish_backward(y, self.view(self.sigmoid), dy, dx, self.beta)

    def forward_array(self, xp, x):
        self.sigmoid[...] = 0.5 * xp.tanh(0.5 * self.beta * x) + 0.5
        return x * self.sigmoid

    def backward_array(self, xp, x, y, dy):
        by = self.beta * y
        return dy * (by + self.sigmoid * (1 - by))
