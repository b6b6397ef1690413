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
import numpy as np

from cython.parallel import prange
from cython cimport floating
from libc.float cimport FLT_MIN
from libc.math cimport log

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base import LossLayer, canonical_axis
from .softmax import softmax_array, softmax_forward, split_shape

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
        for i in prange(outer, schedule="static"):
            for j in range(inner):
                k = label_index(label[i, j], channels, has_ignore, ignore_label)
                if k < 0:
                    for c in range(channels):
                        dx[i, c, j] = 0
                else:
                    for c in range(channels):
                        dx[i, c, j] = prob[i, c, j] * s
                    dx[i, k, j] = (prob[i, k, j] - 1) * s


def label_indices(labels, channels, has_ignore, ignore_label):
    """(class index per label, 0 where unlabelled; labelled mask; flat index of the first bad label or None).

    Array-API: works on numpy and cupy arrays of float labels, truncated to int as Caffe does.
    """
    xp = array_module(labels)
    ignored = xp.trunc(labels) == ignore_label if has_ignore else xp.zeros(labels.shape, bool)
    labelled = ~ignored
    bad = labelled & ~((labels > -1) & (labels < channels))
    if bool(bad.any()):
        return None, None, int(xp.argmax(bad.reshape(-1)))
    index = xp.where(labelled, labels, 0).astype(np.intp)
    return index, labelled, None


def normalization_mode(loss_param, default):
    """Caffe's choice of normalizer: `normalization` if set, else the legacy `normalize`
    (true -> VALID, false -> BATCH_SIZE), else the layer type's default."""
    if loss_param.HasField("normalization"):
        return loss_param.normalization
    if loss_param.HasField("normalize"):
        return pb.LossParameter.VALID if loss_param.normalize else pb.LossParameter.BATCH_SIZE
    return default


def loss_normalizer(mode, outer, inner, valid_count, dtype):
    """Caffe's get_normalizer: FULL outer*inner, VALID valid_count, BATCH_SIZE outer, NONE 1.

    Clamped to >= 1, so a batch with nothing labelled gives a zero loss, not NaN.
    """
    if mode == pb.LossParameter.FULL:
        n = outer * inner
    elif mode == pb.LossParameter.VALID:
        n = valid_count
    elif mode == pb.LossParameter.BATCH_SIZE:
        n = outer
    else:
        n = 1
    return dtype.type(max(1, n))


def class_axis_dims(layer, bottom):
    """(axis, (outer, classes, inner)) of the scores around the layer's class axis,
    checking that there is one label per (outer, inner) position."""
    shape = bottom[0].shape
    axis = canonical_axis(layer.axis_param, len(shape), layer)
    outer, classes, inner = split_shape(shape, axis)
    if outer * inner != bottom[1].count:
        raise layer.shape_error(
            f"the label count {bottom[1].count} (label shape {bottom[1].shape}) must "
            f"equal outer * inner = {outer} * {inner} = {outer * inner} for scores of "
            f"shape {shape} with the class axis {axis}")
    return axis, (outer, classes, inner)


def bad_label_error(layer, labels, flat_index, channels):
    """The ShapeError for a label outside [0, channels) that is not the ignore_label."""
    value = float(labels.data.reshape(-1)[flat_index])
    ignoring = f" and is not ignore_label {layer.ignore_label}" if layer.has_ignore else ""
    return layer.shape_error(f"label {value:g} at position {flat_index} of the labels "
                             f"(shape {labels.shape}) is outside [0, {channels}){ignoring}")


class PerItemLabelLoss(LossLayer):
    """A loss over (N, C...) scores with one integer label per item, no ignore_label.

    Shared by HingeLoss and MultinomialLogisticLoss: `self.dims` is (N, C) and
    labels take no gradient.
    """

    has_ignore = False
    ignore_label = 0

    def allow_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        num = bottom[0].shape[0] if bottom[0].shape else 0
        if bottom[1].count != num:
            raise self.shape_error(f"expected one label per item ({num} for bottom 0 of shape "
                                   f"{bottom[0].shape}), got labels of shape {bottom[1].shape}")
        self.dims = (num, bottom[0].count // max(1, num))

    def _label_index(self, bottom):
        index, _, bad = label_indices(bottom[1].data.reshape(-1), self.dims[1], False, 0)
        if bad is not None:
            raise bad_label_error(self, bottom[1], bad, self.dims[1])
        return index

    def _check_propagate(self, propagate_down):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise NetError(f"layer '{self.name}' ({self.type}) cannot backpropagate to the "
                           "labels (bottom 1)")


class SoftmaxWithLoss(LossLayer):
    """Softmax followed by the multinomial logistic loss, with Caffe's normalization modes."""

    type = "SoftmaxWithLoss"
    max_top = 2

    def setup(self, bottom, top):
        self.axis_param = self.param.softmax_param.axis
        loss = self.param.loss_param
        self.has_ignore = loss.HasField("ignore_label")
        self.ignore_label = loss.ignore_label
        self.normalization = normalization_mode(loss, pb.LossParameter.VALID)
        self.prob = None
        self.scratch = None
        self.valid_count = 0

    def allow_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        shape = bottom[0].shape
        self.axis, self.dims = class_axis_dims(self, bottom)
        if len(top) > 1:
            top[1].reshape(shape)

    def _labels(self, bottom):
        outer, _, inner = self.dims
        return bottom[1].data.reshape(outer, inner)

    def _normalizer(self):
        outer, _, inner = self.dims
        return loss_normalizer(self.normalization, outer, inner, self.valid_count, self.dtype)

    def forward_cpu(self, bottom, top):
        if self.prob is None or self.prob.shape != self.dims:
            self.prob = np.empty(self.dims, self.dtype)
            self.scratch = np.empty((self.dims[0], self.dims[2]), self.dtype)
        softmax_forward(bottom[0].data.reshape(self.dims), self.prob, self.scratch)
        loss, self.valid_count, bad = softmax_loss_forward(
            self.prob, self._labels(bottom), self.has_ignore, self.ignore_label)
        if bad >= 0:
            raise bad_label_error(self, bottom[1], bad, self.dims[1])
        top[0].data[...] = self.dtype.type(loss) / self._normalizer()
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(top[1].shape)

    def _check_propagate(self, propagate_down):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise NetError(f"layer '{self.name}' (SoftmaxWithLoss) cannot backpropagate "
                           "to the labels (bottom 1)")

    def _scale(self, top):
        return float(self.dtype.type(top[0].diff) / self._normalizer())

    def backward_cpu(self, top, propagate_down, bottom):
        self._check_propagate(propagate_down)
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
        top[0].data[...] = loss.astype(self.dtype) / self._normalizer()
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(top[1].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        self._check_propagate(propagate_down)
        if propagate_down[0]:
            xp = array_module(self.prob)
            index, labelled, _ = label_indices(self._labels(bottom), self.dims[1],
                                               self.has_ignore, self.ignore_label)
            onehot = xp.arange(self.dims[1])[None, :, None] == index[:, None, :]
            dx = (self.prob - onehot) * labelled[:, None, :]
            dx *= self.dtype.type(self._scale(top))
            bottom[0].diff[...] = dx.reshape(bottom[0].shape)
