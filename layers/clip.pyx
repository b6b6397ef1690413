"""Clip: y = max(min, min(x, max))  (Caffe's Clip).

Backward, Caffe's rule: dx = dy where min <= x <= max (bounds included), 0 elsewhere.
In place, forward keeps a copy of the input for backward.
"""
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK


def clip_forward(const floating[::1] x, floating[::1] y, floating low, floating high):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            v = x[i]
            y[i] = low if v < low else (high if v > high else v)


def clip_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx,
                  floating low, floating high):
    """dx = dy where low <= x <= high, 0 elsewhere; dx may alias dy."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            v = x[i]
            dx[i] = dy[i] if low <= v <= high else 0


class Clip(NeuronLayer):
    """Clamp into [min, max], elementwise; runs in place."""

    type = "Clip"
    keeps_input = True

    def setup(self, bottom, top):
        p = self.param.clip_param
        missing = [f for f in ("min", "max") if not p.HasField(f)]
        if missing:
            raise NetError(f"layer '{self.name}' (Clip): clip_param.{' and '.join(missing)} "
                           f"must be given")
        if p.min > p.max:
            raise NetError(f"layer '{self.name}' (Clip): clip_param.min ({p.min}) is greater "
                           f"than clip_param.max ({p.max})")
        # The bounds in the layer's dtype, so float32 data compares as Caffe's does.
        self.low, self.high = self.dtype.type(p.min), self.dtype.type(p.max)

    def forward_kernel(self, x, y):
        clip_forward(x, y, self.low, self.high)

    def backward_kernel(self, x, y, dy, dx):
        clip_backward(x, dy, dx, self.low, self.high)

    def forward_array(self, xp, x):
        return x.clip(self.low, self.high)

    def backward_array(self, xp, x, y, dy):
        return dy * ((x >= self.low) & (x <= self.high))
