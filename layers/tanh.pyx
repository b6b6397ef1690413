"""TanH: y = tanh(x) (Caffe's TanH).

Backward: dx = dy * (1 - y^2), from the output alone, so it runs in place.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport tanh

from .backend import array_module
from .base import NeuronLayer


def tanh_forward(const floating[::1] x, floating[::1] y):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static"):
            y[i] = <floating>tanh(x[i])


def tanh_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx):
    """dx = dy * (1 - y^2); dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static"):
            v = y[i]
            dx[i] = dy[i] * (1 - v * v)


class TanH(NeuronLayer):
    """The hyperbolic tangent, elementwise; runs in place."""

    type = "TanH"

    def forward_cpu(self, bottom, top):
        tanh_forward(bottom[0].data.reshape(-1), top[0].data.reshape(-1))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            tanh_backward(top[0].data.reshape(-1), top[0].diff.reshape(-1),
                          bottom[0].diff.reshape(-1))

    def forward_gpu(self, bottom, top):
        top[0].data[...] = array_module(bottom[0].data).tanh(bottom[0].data)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            y = top[0].data
            bottom[0].diff[...] = top[0].diff * (1 - y * y)
