"""HingeLoss: loss = sum_{n,k} max(0, 1 - d(l_n = k) x_{nk})^p / N  (Caffe's one-vs-all HingeLoss).

x is viewed as (N, K) with K = count / N; d(l_n = k) is +1 for the labelled class
and -1 for every other class; p = 1 for hinge_loss_param.norm L1 (the default),
p = 2 for L2 (squared margins). Labels are truncated to int and must lie in [0, K).
Backward: dx_{nk} = -d(l_n = k) p m_{nk}^(p-1) [m_{nk} > 0] * top.diff / N with
m the margins (for L1 the sign of the margin); the labels take no gradient.
"""
import numpy as np

from cython.parallel import prange
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base_loss import PerItemLabelLoss
from .kernels.parallel cimport PARALLEL_WORK


def hinge_margins(const floating[:, ::1] x, const Py_ssize_t[::1] label,
                  floating[:, ::1] margin, bint squared):
    """margin = max(0, 1 - d x), negated at the labelled class; returns sum of |margin|^p."""
    cdef Py_ssize_t i, k, num = x.shape[0], classes = x.shape[1]
    cdef double total = 0
    cdef floating m
    with nogil:
        for i in prange(num, schedule="static", use_threads_if=num * classes >= PARALLEL_WORK):
            for k in range(classes):
                m = 1 - x[i, k] if k == label[i] else 1 + x[i, k]
                if m < 0:
                    m = 0
                total += m * m if squared else m
                margin[i, k] = -m if k == label[i] else m
    return total


class HingeLoss(PerItemLabelLoss):
    """One-vs-all hinge loss (L1 or squared L2) over the classes of each item."""

    type = "HingeLoss"

    def setup(self, bottom, top):
        norm = self.param.hinge_loss_param.norm
        if norm not in (pb.HingeLossParameter.L1, pb.HingeLossParameter.L2):
            raise NetError(f"layer '{self.name}' (HingeLoss): unknown norm {norm}")
        self.squared = norm == pb.HingeLossParameter.L2
        self.margin = None

    def _scale(self, top):
        scale = self.dtype.type(top[0].diff) / self.dtype.type(self.dims[0])
        return scale * 2 if self.squared else scale

    def forward_cpu(self, bottom, top):
        if self.margin is None or self.margin.shape != self.dims:
            self.margin = np.empty(self.dims, self.dtype)
        total = hinge_margins(bottom[0].data.reshape(self.dims), self._label_index(bottom),
                              self.margin, self.squared)
        top[0].data[...] = self.dtype.type(total) / self.dtype.type(self.dims[0])

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels")
        if propagate_down[0]:
            dx = bottom[0].diff.reshape(self.dims)
            if self.squared:
                np.multiply(self.margin, self._scale(top), out=dx)
            else:
                np.sign(self.margin, out=dx)
                dx *= self._scale(top)

    # -- array-API path -------------------------------------------------------

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        x = bottom[0].data.reshape(self.dims)
        index = self._label_index(bottom)
        sign = xp.where(xp.arange(self.dims[1])[None, :] == index[:, None], -1, 1)
        self.margin = xp.maximum(1 + sign * x, 0).astype(x.dtype)
        total = (self.margin * self.margin).sum() if self.squared else self.margin.sum()
        self.margin *= sign
        top[0].data[...] = total / self.dtype.type(self.dims[0])

    def backward_gpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels")
        if propagate_down[0]:
            xp = array_module(self.margin)
            grad = self.margin if self.squared else xp.sign(self.margin)
            bottom[0].diff[...] = (grad * self._scale(top)).reshape(bottom[0].shape)
