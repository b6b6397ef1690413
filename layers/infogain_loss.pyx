"""InfogainLoss: loss = -sum_{labelled positions} sum_k H[l, k] log(max(p_k, 1e-20)) / normalizer.

BVLC master's form: p is the softmax of the scores bottom[0] along
infogain_loss_param.axis, viewed as (outer, K, inner); bottom[1] holds outer * inner
labels l (truncated to int, in [0, K)); H is a K x K "information gain" matrix, from
bottom[2] when given, else from the binary BlobProto file infogain_loss_param.source.
With H = I this is SoftmaxWithLoss (up to the log threshold, Caffe's kLOG_THRESHOLD).
Positions labelled loss_param.ignore_label contribute nothing; the normalizer follows
loss_param.normalization (default VALID, clamped to >= 1); Caffe rejects the
deprecated `normalize` for this layer, and so do we.
Backward: dx_k = (p_k sum_j H[l, j] - H[l, k]) * top.diff / normalizer, zero at ignored
positions; neither the labels nor H take gradients. An optional second top receives p.
"""
import numpy as np
from google.protobuf import message

from cython.parallel import prange
from cython cimport floating
from libc.math cimport log

from ..proto import cyffe_pb2 as pb
from ..proto.errors import DataError, NetError
from ..proto.io import blobproto_to_array
from .backend import array_module
from .base_loss import LOG_THRESHOLD, SoftmaxClassLoss, bad_label_error, label_indices
from .kernels.softmax import softmax_array
from .kernels.parallel cimport PARALLEL_WORK


def read_infogain_matrix(layer, path):
    """The array in the binary BlobProto file at path; a DataError naming it if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"layer '{layer.name}' (InfogainLoss): cannot read the infogain "
                        f"matrix {path}: {e.strerror or e}") from None
    blob = pb.BlobProto()
    try:
        blob.ParseFromString(data)
        return blobproto_to_array(blob)
    except (message.DecodeError, DataError) as e:
        raise DataError(f"layer '{layer.name}' (InfogainLoss): {path} is not a binary "
                        f"BlobProto infogain matrix: {e}") from None


def infogain_forward(const floating[:, :, ::1] prob, const Py_ssize_t[:, ::1] label,
                     const floating[:, ::1] infogain):
    """Sum over positions with label >= 0 of -sum_k H[label, k] log(max(p_k, LOG_THRESHOLD))."""
    cdef Py_ssize_t i, j, k, outer = prob.shape[0], classes = prob.shape[1]
    cdef Py_ssize_t inner = prob.shape[2], l
    cdef floating threshold = <floating>LOG_THRESHOLD, p
    cdef double loss = 0, row
    with nogil:
        for i in prange(outer, schedule="static",
                        use_threads_if=outer * inner * classes >= PARALLEL_WORK):
            for j in range(inner):
                l = label[i, j]
                if l < 0:
                    continue
                row = 0
                for k in range(classes):
                    p = prob[i, k, j]
                    row = row - infogain[l, k] * log(threshold if p < threshold else p)
                loss += row
    return loss


def infogain_backward(const floating[:, :, ::1] prob, const Py_ssize_t[:, ::1] label,
                      const floating[:, ::1] infogain, const floating[::1] row_sums,
                      floating[:, :, ::1] dx, double scale):
    """dx = (p * row_sums[label] - H[label]) * scale; zero where label < 0 (ignored)."""
    cdef Py_ssize_t i, j, k, outer = prob.shape[0], classes = prob.shape[1]
    cdef Py_ssize_t inner = prob.shape[2], l
    with nogil:
        for i in prange(outer, schedule="static",
                        use_threads_if=outer * inner * classes >= PARALLEL_WORK):
            for j in range(inner):
                l = label[i, j]
                for k in range(classes):
                    if l < 0:
                        dx[i, k, j] = 0
                    else:
                        dx[i, k, j] = <floating>(
                            (prob[i, k, j] * row_sums[l] - infogain[l, k]) * scale)


class InfogainLoss(SoftmaxClassLoss):
    """Softmax, then the infogain-weighted multinomial logistic loss."""

    type = "InfogainLoss"
    bottoms = (2, 3)

    def setup(self, bottom, top):
        p = self.param.infogain_loss_param
        if self.param.loss_param.HasField("normalize"):
            raise NetError(f"layer '{self.name}' (InfogainLoss): loss_param.normalize is "
                           "deprecated for this layer; use loss_param.normalization")
        self.read_labels_param(p.axis)
        self.infogain = None
        if len(bottom) < 3:
            if not p.HasField("source"):
                raise NetError(f"layer '{self.name}' (InfogainLoss): give the infogain "
                               "matrix as a third bottom or as infogain_loss_param.source")
            self.infogain = read_infogain_matrix(self, p.source).astype(self.dtype)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        classes = self.dims[1]
        matrix = bottom[2] if len(bottom) > 2 else self.infogain
        if int(np.prod(matrix.shape)) != classes * classes:
            raise self.shape_error(f"the infogain matrix (shape {matrix.shape}) must hold "
                                   f"{classes} x {classes} values for {classes} classes")

    def _matrix(self, bottom):
        classes = self.dims[1]
        values = bottom[2].data if len(bottom) > 2 else self.infogain
        return values.reshape(classes, classes)

    def _labels(self, bottom):
        """Class index per position, -1 where ignored."""
        outer, classes, inner = self.dims
        labels = bottom[1].data.reshape(outer, inner)
        index, labelled, bad = label_indices(labels, classes, self.has_ignore,
                                             self.ignore_label)
        if bad is not None:
            raise bad_label_error(self, bottom[1], bad, classes)
        xp = array_module(labels)
        self.valid_count = int(labelled.sum())
        return xp.where(labelled, index, -1)

    def forward_cpu(self, bottom, top):
        self.softmax_cpu(bottom)
        loss = infogain_forward(self.prob, self._labels(bottom),
                                np.ascontiguousarray(self._matrix(bottom)))
        self.put_loss(top, self.dtype.type(loss))

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels", "infogain matrix")
        if propagate_down[0]:
            matrix = np.ascontiguousarray(self._matrix(bottom))
            infogain_backward(self.prob, self._labels(bottom), matrix, matrix.sum(axis=1),
                              bottom[0].diff.reshape(self.dims), self._scale(top))

    # -- array-API path -------------------------------------------------------

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        self.prob = softmax_array(bottom[0].data.reshape(self.dims), 1)
        label = self._labels(bottom)
        matrix = self._matrix(bottom)
        threshold = self.dtype.type(LOG_THRESHOLD)
        log_p = xp.log(xp.where(self.prob < threshold, threshold, self.prob))
        weights = matrix[xp.maximum(label, 0)].transpose(0, 2, 1)   # (outer, K, inner)
        loss = -((weights * log_p).sum(axis=1) * (label >= 0)).sum()
        self.put_loss(top, loss)

    def backward_gpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "labels", "infogain matrix")
        if propagate_down[0]:
            label = self._labels(bottom)
            matrix = self._matrix(bottom)
            safe = label * (label >= 0)
            rows = matrix[safe].transpose(0, 2, 1)
            dx = (self.prob * matrix.sum(axis=1)[safe][:, None, :] - rows)
            dx = dx * (label >= 0)[:, None, :] * self.dtype.type(self._scale(top))
            bottom[0].diff[...] = dx.reshape(bottom[0].shape)
