"""MultinomialLogisticLoss: loss = -sum_n log(max(p_{n, l_n}, 1e-20)) / N  (Caffe's layer).

bottom[0] holds probabilities viewed as (N, K), K = count / N; bottom[1] one label
per item (truncated to int, in [0, K)). 1e-20 is Caffe's kLOG_THRESHOLD, a float
constant (so float64 nets use its float32 rounding, as Caffe's Dtype(kLOG_THRESHOLD)).
A NaN probability stays NaN. Backward: dx_{n, l_n} = -top.diff / (N max(p, 1e-20)),
zero elsewhere; the labels take no gradient.
"""
import numpy as np

from cython.parallel import prange
from cython cimport floating
from libc.math cimport log

from .backend import array_module
from .base_loss import LOG_THRESHOLD, PerItemLabelLoss
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def multinomial_forward(const floating[:, ::1] prob, const Py_ssize_t[::1] label):
    """sum over items of -log(max(p_label, LOG_THRESHOLD))."""
    cdef Py_ssize_t i, num = prob.shape[0]
    cdef floating threshold = <floating>LOG_THRESHOLD, p
    cdef double loss = 0
    with nogil:
        for i in prange(num, schedule="static",
                        use_threads_if=num * TRANSCENDENTAL >= PARALLEL_WORK):
            p = prob[i, label[i]]
            loss += -log(threshold if p < threshold else p)
    return loss


def multinomial_backward(const floating[:, ::1] prob, const Py_ssize_t[::1] label,
                         floating[:, ::1] dx, double scale):
    """dx = 0, except dx[i, label_i] = -scale / max(p, LOG_THRESHOLD)."""
    cdef Py_ssize_t i, k, num = prob.shape[0], classes = prob.shape[1]
    cdef floating threshold = <floating>LOG_THRESHOLD, p
    with nogil:
        for i in prange(num, schedule="static", use_threads_if=num * classes >= PARALLEL_WORK):
            for k in range(classes):
                dx[i, k] = 0
            p = prob[i, label[i]]
            dx[i, label[i]] = <floating>(-scale / (threshold if p < threshold else p))


class MultinomialLogisticLoss(PerItemLabelLoss):
    """Negative log-likelihood of the labelled class under given probabilities."""

    type = "MultinomialLogisticLoss"

    def _scale(self, top):
        return float(self.dtype.type(top[0].diff) / self.dtype.type(self.dims[0]))

    def forward_cpu(self, bottom, top):
        loss = multinomial_forward(bottom[0].data.reshape(self.dims), self._label_index(bottom))
        top[0].data[...] = self.dtype.type(loss) / self.dtype.type(self.dims[0])

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels")
        if propagate_down[0]:
            multinomial_backward(bottom[0].data.reshape(self.dims), self._label_index(bottom),
                                 bottom[0].diff.reshape(self.dims), self._scale(top))

    # -- array-API path -------------------------------------------------------

    def _labelled_prob(self, bottom):
        xp = array_module(bottom[0].data)
        index = self._label_index(bottom)
        p = xp.take_along_axis(bottom[0].data.reshape(self.dims), index[:, None], axis=1)
        threshold = self.dtype.type(LOG_THRESHOLD)
        return index, xp.where(p < threshold, threshold, p)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        _, p = self._labelled_prob(bottom)
        top[0].data[...] = -xp.log(p).sum() / self.dtype.type(self.dims[0])

    def backward_gpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels")
        if propagate_down[0]:
            xp = array_module(bottom[0].data)
            index, p = self._labelled_prob(bottom)
            dx = xp.zeros(self.dims, self.dtype)
            xp.put_along_axis(dx, index[:, None], -self.dtype.type(self._scale(top)) / p,
                              axis=1)
            bottom[0].diff[...] = dx.reshape(bottom[0].shape)
