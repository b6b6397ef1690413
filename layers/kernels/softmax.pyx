"""Softmax over the middle axis of an (outer, C, inner) view, CPU and array-API:
y_c = exp(x_c - max x) / sum_c' exp(x_c' - max x) (the max keeps exp from overflowing);
backward dx = y * (dy - sum_c(dy * y)). Softmax and the softmax losses use them.
"""
cimport cython
from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp

from ..backend import array_module
from .parallel cimport PARALLEL_WORK, TRANSCENDENTAL
from .step cimport Step

cdef inline void softmax_row(const floating* x, floating* y, floating* m, Py_ssize_t channels,
                             Py_ssize_t inner) noexcept nogil:
    """One (channels, inner) block of softmax_rows; m holds inner values."""
    cdef Py_ssize_t c, j
    for j in range(inner):
        m[j] = x[j]
    for c in range(1, channels):
        for j in range(inner):
            if x[c * inner + j] > m[j]:
                m[j] = x[c * inner + j]
    for c in range(channels):
        for j in range(inner):
            y[c * inner + j] = <floating>exp(x[c * inner + j] - m[j])
    for j in range(inner):
        m[j] = 0
    for c in range(channels):
        for j in range(inner):
            m[j] += y[c * inner + j]
    for c in range(channels):
        for j in range(inner):
            y[c * inner + j] /= m[j]


cdef void softmax_rows(const floating* x, floating* y, floating* scratch, Py_ssize_t outer,
                       Py_ssize_t channels, Py_ssize_t inner) noexcept nogil:
    """y = softmax of x (outer, channels, inner) over channels; scratch holds outer * inner;
    y may be x."""
    cdef Py_ssize_t i, row = channels * inner
    if outer * row * TRANSCENDENTAL < PARALLEL_WORK:    # not even a team of one
        for i in range(outer):
            softmax_row(x + i * row, y + i * row, scratch + i * inner, channels, inner)
        return
    for i in prange(outer, schedule="static"):
        softmax_row(x + i * row, y + i * row, scratch + i * inner, channels, inner)


@cython.boundscheck(False)
@cython.wraparound(False)
def softmax_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                    floating[:, ::1] scratch):
    """y = softmax of x over axis 1; scratch is (outer, inner); y may alias x."""
    if (y.shape[0] != x.shape[0] or y.shape[1] != x.shape[1] or y.shape[2] != x.shape[2] or
            scratch.shape[0] < x.shape[0] or scratch.shape[1] != x.shape[2]):
        raise ValueError("softmax_forward: the arrays do not fit")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        return
    with nogil:
        softmax_rows(&x[0, 0, 0], &y[0, 0, 0], &scratch[0, 0], x.shape[0], x.shape[1],
                     x.shape[2])


cdef class ForwardStep(Step):
    """A float32 softmax over axis 1 of (outer, channels, inner) as a net's step."""

    cdef const float* x
    cdef float* y
    cdef Py_ssize_t outer, channels, inner

    def __init__(self, const float[:, :, ::1] x, float[:, :, ::1] y):
        if (y.shape[0] != x.shape[0] or y.shape[1] != x.shape[1] or y.shape[2] != x.shape[2]
                or x.shape[0] * x.shape[1] * x.shape[2] == 0):
            raise ValueError("softmax.ForwardStep: the arrays do not fit")
        self.keep += [x, y]
        self.x, self.y = &x[0, 0, 0], &y[0, 0, 0]
        self.outer, self.channels, self.inner = x.shape[0], x.shape[1], x.shape[2]
        self.scratch_bytes = self.outer * self.inner * sizeof(float)

    cdef int run(self) except -1:
        with nogil:
            softmax_rows(self.x, self.y, <float*>self.scratch, self.outer, self.channels,
                         self.inner)
        return 0


@cython.boundscheck(False)
@cython.wraparound(False)
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
