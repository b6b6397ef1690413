"""EuclideanLoss: loss = sum((a - b)^2) / (2 N), N = a.shape[0] (Caffe's EuclideanLoss).

Both bottoms take gradients: da = (a - b) * top.diff / N, db = -da. The bottoms
must have the same number of items and the same count; their shapes may differ.
"""
import numpy as np

from cython.parallel import prange
from cython cimport floating

from .base_loss import LossLayer
from .kernels.parallel cimport PARALLEL_WORK


def euclidean_forward(const floating[::1] a, const floating[::1] b, floating[::1] diff):
    """diff = a - b; returns sum(diff^2) (accumulated in double)."""
    cdef Py_ssize_t i, n = a.shape[0]
    cdef double total = 0
    cdef floating d
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            d = a[i] - b[i]
            diff[i] = d
            total += <double>d * d
    return total


class EuclideanLoss(LossLayer):
    """Half the mean (over items) squared distance between two blobs."""

    type = "EuclideanLoss"

    def setup(self, bottom, top):
        self.diff = None

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.check_same_count(bottom)

    def _scales(self, top, num):
        alpha = self.dtype.type(top[0].diff) / self.dtype.type(num)
        return (alpha, -alpha)

    def forward_cpu(self, bottom, top):
        count = bottom[0].count
        if self.diff is None or self.diff.shape != (count,):
            self.diff = np.empty(count, self.dtype)
        total = euclidean_forward(bottom[0].data.reshape(-1), bottom[1].data.reshape(-1),
                                  self.diff)
        top[0].data[...] = self.dtype.type(total) / self.dtype.type(bottom[0].num) / 2

    def backward_cpu(self, top, propagate_down, bottom):
        for i, alpha in enumerate(self._scales(top, bottom[0].num)):
            if propagate_down[i]:
                np.multiply(self.diff, alpha, out=bottom[i].diff.reshape(-1))

    def forward_gpu(self, bottom, top):
        self.diff = bottom[0].data.reshape(-1) - bottom[1].data.reshape(-1)
        total = (self.diff * self.diff).sum()
        top[0].data[...] = total / self.dtype.type(bottom[0].num) / 2

    def backward_gpu(self, top, propagate_down, bottom):
        for i, alpha in enumerate(self._scales(top, bottom[0].num)):
            if propagate_down[i]:
                bottom[i].diff[...] = (self.diff * alpha).reshape(bottom[i].shape)
