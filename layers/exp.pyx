"""Exp: y = base ^ (shift + scale * x), base -1 meaning e  (Caffe's Exp).

Computed as outer * exp(inner * x), inner = ln(base) * scale, outer = base ^ shift.
Backward: dx = dy * y * inner, from the output alone, so it runs in place.
"""
import math

from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp

from ..proto.errors import NetError
from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def exp_forward(const floating[::1] x, floating[::1] y, double inner, double outer):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            y[i] = <floating>(outer * exp(inner * x[i]))


def exp_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx,
                 double inner):
    """dx = dy * y * inner; dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            dx[i] = <floating>(dy[i] * y[i] * inner)


class Exp(NeuronLayer):
    """An exponential of an affine map, elementwise; runs in place."""

    type = "Exp"

    def setup(self, bottom, top):
        p = self.param.exp_param
        if not (p.base > 0 or p.base == -1):
            raise NetError(f"layer '{self.name}' (Exp): exp_param.base must be positive, or "
                           f"-1 for e; got {p.base}")
        log_base = 1.0 if p.base == -1 else math.log(p.base)
        self.inner = log_base * p.scale
        self.outer = math.exp(log_base * p.shift)

    def forward_kernel(self, x, y):
        exp_forward(x, y, self.inner, self.outer)

    def backward_kernel(self, x, y, dy, dx):
        exp_backward(y, dy, dx, self.inner)

    def forward_array(self, xp, x):
        return self.outer * xp.exp(self.inner * x)

    def backward_array(self, xp, x, y, dy):
        return dy * y * self.inner
