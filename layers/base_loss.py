"""The base of the loss layers (Caffe's LossLayer) and what the losses share: reading
labels, Caffe's normalization modes, its log threshold.
"""
import numpy as np

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base import Layer, canonical_axis, split_shape
from .kernels import arena
from .kernels.softmax import softmax_forward

# Caffe's kLOG_THRESHOLD, a float constant (so float64 nets use its float32 rounding, as
# Caffe's Dtype(kLOG_THRESHOLD)).
LOG_THRESHOLD = float(np.float32(1e-20))


class LossLayer(Layer):
    """Bottoms (prediction, target, ...) -> a scalar loss, weighted by top[0].diff."""

    bottoms = 2
    tops = 1
    is_loss = True

    def reshape(self, bottom, top):
        if bottom[0].shape[0] != bottom[1].shape[0]:
            raise self.shape_error(f"bottoms must have the same number of items, got "
                                   f"{bottom[0].shape} and {bottom[1].shape}")
        top[0].reshape(())

    def check_same_count(self, bottom, what="bottoms"):
        """A ShapeError unless bottoms 0 and 1 hold as many values (their shapes may differ)."""
        if bottom[0].count != bottom[1].count:
            raise self.shape_error(f"{what} must have the same count, got shapes "
                                   f"{bottom[0].shape} ({bottom[0].count}) and "
                                   f"{bottom[1].shape} ({bottom[1].count})")

    def refuse_gradient(self, propagate_down, *names):
        """A NetError if the net asks for a gradient to bottom 1, 2, ..., named by names."""
        for i, what in enumerate(names, 1):
            if len(propagate_down) > i and propagate_down[i]:
                raise NetError(f"layer '{self.name}' ({self.type}) cannot backpropagate to "
                               f"the {what} (bottom {i})")


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


class SoftmaxClassLoss(LossLayer):
    """A loss on the softmax of scores along a class axis, one label per other position.

    Shared by SoftmaxWithLoss and InfogainLoss: setup calls read_labels_param; the
    forward passes leave the probabilities in self.prob, viewed as (outer, classes,
    inner), and the labelled positions' count in self.valid_count. Labels take no
    gradient; an optional second top receives the probabilities.
    """

    tops = (1, 2)

    def read_labels_param(self, axis):
        """Read the class axis, loss_param's ignore_label and normalization (default VALID)."""
        loss = self.param.loss_param
        self.axis_param = axis
        self.has_ignore = loss.HasField("ignore_label")
        self.ignore_label = loss.ignore_label
        self.normalization = normalization_mode(loss, pb.LossParameter.VALID)
        self.prob = None
        self.valid_count = 0

    def allow_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.axis, self.dims = class_axis_dims(self, bottom)
        if len(top) > 1:
            top[1].reshape(bottom[0].shape)

    def _normalizer(self):
        outer, _, inner = self.dims
        return loss_normalizer(self.normalization, outer, inner, self.valid_count, self.dtype)

    def _scale(self, top):
        return float(self.dtype.type(top[0].diff) / self._normalizer())

    def softmax_cpu(self, bottom):
        """self.prob = the softmax of bottom 0, in buffers kept from call to call."""
        if self.prob is None or self.prob.shape != self.dims:
            self.prob = np.empty(self.dims, self.dtype)
        with arena.scratch() as take:
            softmax_forward(bottom[0].data.reshape(self.dims), self.prob,
                            take((self.dims[0], self.dims[2]), self.dtype))

    def put_loss(self, top, loss):
        """Top 0 = the summed loss over the normalizer; top 1, if any, = the probabilities."""
        top[0].data[...] = loss / self._normalizer()
        if len(top) > 1:
            top[1].data[...] = self.prob.reshape(top[1].shape)
