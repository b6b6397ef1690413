"""AbsVal: y = |x|  (Caffe's AbsVal). Backward: dx = sign(x) * dy, with sign(0) = 0.

Like Caffe, it does not run in place: the output has lost the input's sign.
"""
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK


def absval_forward(const floating[::1] x, floating[::1] y):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            v = x[i]
            y[i] = v if v >= 0 else -v


def absval_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx):
    """dx = sign(x) * dy; 0 where x is 0."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            v = x[i]
            dx[i] = dy[i] if v > 0 else (-dy[i] if v < 0 else 0)


class AbsVal(NeuronLayer):
    """Elementwise absolute value; needs a top of its own."""

    type = "AbsVal"

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (AbsVal) cannot run in place (Caffe's "
                           f"neither): give it a top blob of its own")

    def forward_kernel(self, x, y):
        absval_forward(x, y)

    def backward_kernel(self, x, y, dy, dx):
        absval_backward(x, dy, dx)

    def forward_array(self, xp, x):
        return xp.abs(x)

    def backward_array(self, xp, x, y, dy):
        return xp.sign(x) * dy
