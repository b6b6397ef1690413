"""Softmax over the middle axis of an (outer, C, inner) view, CPU and array-API:
y_c = exp(x_c - max x) / sum_c' exp(x_c' - max x) (the max keeps exp from overflowing);
backward dx = y * (dy - sum_c(dy * y)). Softmax and the softmax losses use them.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp

from ..backend import array_module
from .parallel cimport PARALLEL_WORK, TRANSCENDENTAL

def softmax_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                    floating[:, ::1] scratch):
    """y = softmax of x over axis 1; scratch is (outer, inner); y may alias x."""
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t outer = x.shape[0], channels = x.shape[1], inner = x.shape[2]
    with nogil:
        for i in prange(outer, schedule="static",
                        use_threads_if=outer * channels * inner * TRANSCENDENTAL >= PARALLEL_WORK):
            for j in range(inner):
                scratch[i, j] = x[i, 0, j]
            for c in range(1, channels):
                for j in range(inner):
                    if x[i, c, j] > scratch[i, j]:
                        scratch[i, j] = x[i, c, j]
            for c in range(channels):
                for j in range(inner):
                    y[i, c, j] = <floating>exp(x[i, c, j] - scratch[i, j])
            for j in range(inner):
                scratch[i, j] = 0
            for c in range(channels):
                for j in range(inner):
                    scratch[i, j] += y[i, c, j]
            for c in range(channels):
                for j in range(inner):
                    y[i, c, j] /= scratch[i, j]


def softmax_backward(const floating[:, :, ::1] y, const floating[:, :, ::1] dy,
                     floating[:, :, ::1] dx, floating[:, ::1] scratch):
    """dx = y * (dy - sum over axis 1 of dy * y); scratch is (outer, inner); dx may alias dy."""
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t outer = y.shape[0], channels = y.shape[1], inner = y.shape[2]
    with nogil:
        for i in prange(outer, schedule="static",
                        use_threads_if=outer * channels * inner >= PARALLEL_WORK):
            for j in range(inner):
                scratch[i, j] = 0
            for c in range(channels):
                for j in range(inner):
                    scratch[i, j] += dy[i, c, j] * y[i, c, j]
            for c in range(channels):
                for j in range(inner):
                    dx[i, c, j] = y[i, c, j] * (dy[i, c, j] - scratch[i, j])


def softmax_array(x, axis):
    """Softmax of an array over axis with the array's own module (the GPU path's kernel)."""
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
