"""Log: y = log_base(shift + scale * x), base -1 meaning e  (Caffe's Log).

Backward: dx = dy * scale / (ln(base) * (shift + scale * x)). In place, forward keeps a
copy of the input for backward.
"""
import math

from cython.parallel import prange
from cython cimport floating
from libc.math cimport log

from ..proto.errors import NetError
from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def log_forward(const floating[::1] x, floating[::1] y, double scale, double shift,
                double base_scale):
    """y = base_scale * ln(shift + scale * x), base_scale = 1 / ln(base)."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            y[i] = <floating>(base_scale * log(shift + scale * x[i]))


def log_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx,
                 double scale, double shift, double base_scale):
    """dx = dy * scale * base_scale / (shift + scale * x); dx may alias dy."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double numerator = scale * base_scale
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            dx[i] = <floating>(dy[i] * numerator / (shift + scale * x[i]))


class Log(NeuronLayer):
    """A logarithm of an affine map, elementwise; runs in place."""

    type = "Log"
    keeps_input = True

    def setup(self, bottom, top):
        p = self.param.log_param
        if not (p.base > 0 and p.base != 1 or p.base == -1):
            raise NetError(f"layer '{self.name}' (Log): log_param.base must be positive and "
                           f"not 1, or -1 for e; got {p.base}")
        self.scale, self.shift = p.scale, p.shift
        self.base_scale = 1.0 if p.base == -1 else 1.0 / math.log(p.base)

    def forward_kernel(self, x, y):
        log_forward(x, y, self.scale, self.shift, self.base_scale)

    def backward_kernel(self, x, y, dy, dx):
        log_backward(x, dy, dx, self.scale, self.shift, self.base_scale)

    def forward_array(self, xp, x):
        return self.base_scale * xp.log(self.shift + self.scale * x)

    def backward_array(self, xp, x, y, dy):
        return dy * (self.scale * self.base_scale) / (self.shift + self.scale * x)
