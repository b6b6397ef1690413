"""Accuracy: the fraction of labelled positions whose true class is among the top k scores.

Scores are viewed as (outer, C, inner) around accuracy_param.axis; bottom[1] holds
outer * inner labels. Caffe's rule: a position is correct when fewer than k other
classes score at least as high as the true class (ties count against it).
Positions labelled accuracy_param.ignore_label are skipped; with none left the
accuracy is 0. An optional second top (C,) gives each class's accuracy over the
positions of that class (0 for a class that does not occur). No backward.
"""
cimport cython
import numpy as np

from cython cimport floating

from ..proto.errors import NetError
from .backend import array_module
from .base import Layer, canonical_axis, split_shape
from .base_loss import bad_label_error, label_indices


@cython.boundscheck(False)
@cython.wraparound(False)
def accuracy_counts(const floating[:, :, ::1] scores, const Py_ssize_t[:, ::1] index,
                    const unsigned char[:, ::1] labelled, Py_ssize_t top_k,
                    double[::1] hits, double[::1] totals):
    """Add each labelled position to totals[label], and to hits[label] when it is correct."""
    cdef Py_ssize_t i, j, c, k, better
    cdef Py_ssize_t outer = scores.shape[0], channels = scores.shape[1], inner = scores.shape[2]
    cdef floating true_score
    with nogil:
        for i in range(outer):
            for j in range(inner):
                if not labelled[i, j]:
                    continue
                k = index[i, j]
                true_score = scores[i, k, j]
                better = -1             # the true class counts itself once
                c = 0
                while c < channels and better < top_k:
                    if scores[i, c, j] >= true_score:
                        better += 1
                    c += 1
                totals[k] += 1
                if better < top_k:
                    hits[k] += 1


class Accuracy(Layer):
    """Top-k classification accuracy (and optionally per class); not a loss, no gradients."""

    type = "Accuracy"
    bottoms = 2
    tops = (1, 2)

    def setup(self, bottom, top):
        p = self.param.accuracy_param
        if p.top_k < 1:
            raise NetError(f"layer '{self.name}' (Accuracy): accuracy_param.top_k must be "
                           f"at least 1, got {p.top_k}")
        self.top_k = p.top_k
        self.axis_param = p.axis
        self.has_ignore = p.HasField("ignore_label")
        self.ignore_label = p.ignore_label

    def allow_backward(self, bottom_index):
        return False

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        self.axis = canonical_axis(self.axis_param, len(shape), self)
        self.dims = split_shape(shape, self.axis)
        outer, channels, inner = self.dims
        if self.top_k > channels:
            raise self.shape_error(f"top_k {self.top_k} exceeds the {channels} classes of "
                                   f"scores of shape {shape} (axis {self.axis})")
        if outer * inner != bottom[1].count:
            raise self.shape_error(
                f"the label count {bottom[1].count} (label shape {bottom[1].shape}) must "
                f"equal outer * inner = {outer} * {inner} = {outer * inner} for scores of "
                f"shape {shape} with the class axis {self.axis}")
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((channels,))

    def _labels(self, bottom):
        outer, channels, inner = self.dims
        index, labelled, bad = label_indices(bottom[1].data.reshape(outer, inner), channels,
                                             self.has_ignore, self.ignore_label)
        if bad is not None:
            raise bad_label_error(self, bottom[1], bad, channels)
        return index, labelled

    def _write_tops(self, top, hits, totals):
        t = self.dtype.type
        count = totals.sum()
        top[0].data[...] = t(hits.sum()) / t(count) if count else 0
        if len(top) > 1:
            xp = array_module(top[1].data)
            safe = xp.maximum(totals, 1).astype(self.dtype)
            top[1].data[...] = xp.where(totals > 0, hits.astype(self.dtype) / safe, 0)

    def forward_cpu(self, bottom, top):
        index, labelled = self._labels(bottom)
        channels = self.dims[1]
        hits, totals = np.zeros(channels), np.zeros(channels)
        accuracy_counts(bottom[0].data.reshape(self.dims), index, labelled.view(np.uint8),
                        self.top_k, hits, totals)
        self._write_tops(top, hits, totals)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        index, labelled = self._labels(bottom)
        scores = bottom[0].data.reshape(self.dims)
        true_score = xp.take_along_axis(scores, index[:, None, :], axis=1)
        better = (scores >= true_score).sum(axis=1) - 1
        correct = labelled & (better < self.top_k)
        channels = self.dims[1]
        totals = xp.bincount(index[labelled], minlength=channels)
        hits = xp.bincount(index[correct], minlength=channels)
        self._write_tops(top, hits, totals)

    def backward_cpu(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise NotImplementedError(f"layer '{self.name}' (Accuracy) has no backward")

    backward_gpu = backward_cpu
