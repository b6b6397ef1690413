"""SoftmaxWithLoss: loss = -sum over labelled positions of log(max(p_label, FLT_MIN)) / normalizer.

p is the softmax of bottom[0] along softmax_param.axis, viewed as (outer, C, inner);
bottom[1] holds outer * inner integer-valued labels (truncated to int, as Caffe
does). Positions whose label equals loss_param.ignore_label contribute nothing.
The normalizer (clamped to >= 1) follows loss_param.normalization:
FULL = outer * inner, VALID = non-ignored positions (the default),
BATCH_SIZE = outer, NONE = 1; the legacy `normalize` is read only when
`normalization` is unset (true -> VALID, false -> BATCH_SIZE), as in Caffe.
Backward: dx = (p - onehot(label)) * top.diff / normalizer, zero at ignored
positions; the labels take no gradient. An optional second top receives p.
"""

from cython.parallel import prange
from cython cimport floating
from libc.float cimport FLT_MIN
from libc.math cimport log

from .backend import array_module
from .base_loss import SoftmaxClassLoss, bad_label_error, label_indices
from .kernels.softmax import softmax_array
from .kernels.parallel cimport PARALLEL_WORK

cdef enum:
    IGNORED = -1
    INVALID = -2


cdef inline int label_index(double value, Py_ssize_t channels, bint has_ignore,
                            int ignore_label) noexcept nogil:
    """The class index of a label value, IGNORED, or INVALID (outside [0, C), NaN, huge)."""
    cdef int label
    if not (-2147483649.0 < value < 2147483648.0):
        return INVALID
    label = <int>value
    if has_ignore and label == ignore_label:
        return IGNORED
    if label < 0 or label >= channels:
        return INVALID
    return label


def softmax_loss_forward(const floating[:, :, ::1] prob, const floating[:, ::1] label,
                         bint has_ignore, int ignore_label):
    """(sum of -log(max(p_label, FLT_MIN)), labelled count, flat index of the first bad label or -1)."""
    cdef Py_ssize_t i, j, outer = prob.shape[0], channels = prob.shape[1], inner = prob.shape[2]
    cdef Py_ssize_t count = 0, bad = -1
    cdef double loss = 0, p
    cdef int k
    with nogil:
        for i in range(outer):
            for j in range(inner):
                k = label_index(label[i, j], channels, has_ignore, ignore_label)
                if k == IGNORED:
                    continue
                if k == INVALID:
                    bad = i * inner + j
                    break
                p = prob[i, k, j]
                # as std::max(p, FLT_MIN): a NaN probability stays NaN, so divergence shows
                loss -= log(FLT_MIN if p < FLT_MIN else p)
                count += 1
            if bad >= 0:
                break
    return loss, count, bad


def softmax_loss_backward(const floating[:, :, ::1] prob, const floating[:, ::1] label,
                          floating[:, :, ::1] dx, bint has_ignore, int ignore_label,
                          double scale):
    """dx = (prob - onehot(label)) * scale, zero where the label is ignored (or invalid)."""
    cdef Py_ssize_t i, j, c, outer = prob.shape[0], channels = prob.shape[1], inner = prob.shape[2]
    cdef floating s = <floating>scale
    cdef int k
    with nogil:
        for i in prange(outer, schedule="static",
                        use_threads_if=outer * channels * inner >= PARALLEL_WORK):
            for j in range(inner):
                k = label_index(label[i, j], channels, has_ignore, ignore_label)
                if k < 0:
                    for c in range(channels):
                        dx[i, c, j] = 0
                else:
                    for c in range(channels):
                        dx[i, c, j] = prob[i, c, j] * s
                    dx[i, k, j] = (prob[i, k, j] - 1) * s


class SoftmaxWithLoss(SoftmaxClassLoss):
    """Softmax followed by the multinomial logistic loss, with Caffe's normalization modes."""

    type = "SoftmaxWithLoss"

    def setup(self, bottom, top):
        self.read_labels_param(self.param.softmax_param.axis)

    def _labels(self, bottom):
        outer, _, inner = self.dims
        return bottom[1].data.reshape(outer, inner)

    def forward_cpu(self, bottom, top):
        self.softmax_cpu(bottom)
        loss, self.valid_count, bad = softmax_loss_forward(
            self.prob, self._labels(bottom), self.has_ignore, self.ignore_label)
        if bad >= 0:
            raise bad_label_error(self, bottom[1], bad, self.dims[1])
        self.put_loss(top, self.dtype.type(loss))

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels")
        if propagate_down[0]:
            softmax_loss_backward(self.prob, self._labels(bottom),
                                  bottom[0].diff.reshape(self.dims), self.has_ignore,
                                  self.ignore_label, self._scale(top))

    # -- array-API path -------------------------------------------------------

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        self.prob = softmax_array(bottom[0].data.reshape(self.dims), 1)
        index, labelled, bad = label_indices(self._labels(bottom), self.dims[1],
                                             self.has_ignore, self.ignore_label)
        if bad is not None:
            raise bad_label_error(self, bottom[1], bad, self.dims[1])
        p = xp.take_along_axis(self.prob, index[:, None, :], axis=1)[:, 0, :]
        loss = -(xp.log(xp.maximum(p, FLT_MIN)) * labelled).sum()
        self.valid_count = int(labelled.sum())
        self.put_loss(top, loss.astype(self.dtype))

    def backward_gpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels")
        if propagate_down[0]:
            xp = array_module(self.prob)
            index, labelled, _ = label_indices(self._labels(bottom), self.dims[1],
                                               self.has_ignore, self.ignore_label)
            onehot = xp.arange(self.dims[1])[None, :, None] == index[:, None, :]
            dx = (self.prob - onehot) * labelled[:, None, :]
            dx *= self.dtype.type(self._scale(top))
            bottom[0].diff[...] = dx.reshape(bottom[0].shape)
