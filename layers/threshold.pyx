"""Threshold: y = 1 if x > threshold else 0  (Caffe's Threshold).

A step function has no useful gradient; like Caffe, the layer has no backward, so it
tells the net that no gradient flows to its bottom.
"""
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK


def threshold_forward(const floating[::1] x, floating[::1] y, double threshold):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            y[i] = 1 if x[i] > threshold else 0


class Threshold(NeuronLayer):
    """A step at `threshold`, elementwise; runs in place; passes no gradient."""

    type = "Threshold"

    def setup(self, bottom, top):
        self.threshold = self.param.threshold_param.threshold

    def allow_backward(self, bottom_index):
        return False

    def forward_kernel(self, x, y):
        threshold_forward(x, y, self.threshold)

    def forward_array(self, xp, x):
        return x > self.threshold

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise NetError(f"layer '{self.name}' (Threshold) has no backward: its gradient "
                           f"is zero or undefined everywhere")

    backward_gpu = backward_cpu
