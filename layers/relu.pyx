"""ReLU: y = max(x, 0) + negative_slope * min(x, 0)  (Caffe's ReLU, leaky when slope != 0)."""
from cython.parallel import prange
from cython cimport floating

from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK


def relu_forward(const floating[::1] x, floating[::1] y, double slope):
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            v = x[i]
            y[i] = v if v > 0 else <floating>(v * slope)


def relu_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx, double slope):
    """dx = dy where x > 0, slope * dy elsewhere; x may be the output (same sign)."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            dx[i] = dy[i] if x[i] > 0 else <floating>(dy[i] * slope)


class ReLU(NeuronLayer):
    """Rectified linear unit; runs in place (the sign of the output is the input's)."""

    type = "ReLU"

    def setup(self, bottom, top):
        self.slope = self.param.relu_param.negative_slope

    def forward_kernel(self, x, y):
        relu_forward(x, y, self.slope)

    def backward_kernel(self, x, y, dy, dx):
        # In place, x is already the output; its sign is the input's whenever slope >= 0,
        # so the mask is the same.
        relu_backward(x, dy, dx, self.slope)

    def forward_array(self, xp, x):
        return x * ((x > 0) + (x <= 0) * self.slope)

    def backward_array(self, xp, x, y, dy):
        return dy * ((x > 0) + (x <= 0) * self.slope)
