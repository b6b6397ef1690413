"""Exp: y = base ^ (shift + scale * x), base -1 meaning e  (Caffe's Exp).

Computed as outer * exp(inner * x), inner = ln(base) * scale, outer = base ^ shift.
Backward: dx = dy * y * inner, from the output alone, so it runs in place.
"""
import math

from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp

from ..proto.errors import NetError
from .backend import array_module
from .base import NeuronLayer


def exp_forward(const floating[::1] x, floating[::1] y, double inner, double outer):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static"):
            y[i] = <floating>(outer * exp(inner * x[i]))


def exp_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx,
                 double inner):
    """dx = dy * y * inner; dx may alias dy."""
    cdef Py_ssize_t i, n = y.shape[0]
    with nogil:
        for i in prange(n, schedule="static"):
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

    def forward_cpu(self, bottom, top):
        exp_forward(bottom[0].data.reshape(-1), top[0].data.reshape(-1), self.inner, self.outer)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            exp_backward(top[0].data.reshape(-1), top[0].diff.reshape(-1),
                         bottom[0].diff.reshape(-1), self.inner)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        top[0].data[...] = self.outer * xp.exp(self.inner * bottom[0].data)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * top[0].data * self.inner
