"""Dropout (Caffe's): in TRAIN, y = x * m / (1 - r) with m ~ Bernoulli(1 - r); in TEST, y = x.

r is dropout_param.dropout_ratio. Backward uses the same mask and scale. The mask
is drawn from the backend's random stream, so set_random_seed makes it repeatable.
"""
import numpy as np

from cython.parallel import prange
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module, rng
from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK


def dropout_apply(const floating[::1] x, const unsigned char[::1] mask, floating[::1] y,
                  double scale):
    """y = x * scale where mask, else 0 (forward on data, backward on diffs); y may alias x."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating s = <floating>scale
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            y[i] = x[i] * s if mask[i] else 0


class Dropout(NeuronLayer):
    """Zeroes a random fraction r of the inputs at train time and rescales the rest."""

    type = "Dropout"

    def setup(self, bottom, top):
        ratio = self.param.dropout_param.dropout_ratio
        if not 0 <= ratio < 1:
            raise NetError(f"layer '{self.name}' (Dropout): dropout_ratio must be in "
                           f"[0, 1), got {ratio}")
        self.ratio = float(ratio)
        # Caffe keeps the scale in the blob type; so do we, for bit-equal outputs.
        self.scale = float(self.dtype.type(1.0 / (1.0 - ratio)))
        self.mask = None

    def _draw_mask(self, count):
        """A fresh keep-mask (uint8 0/1) of count elements, Bernoulli(1 - ratio)."""
        return (rng().random(count) >= self.ratio).view(np.uint8)

    def forward_cpu(self, bottom, top):
        if self.phase != pb.TRAIN:
            if top[0].data is not bottom[0].data:
                top[0].data[...] = bottom[0].data
            return
        x, y = bottom[0].data.reshape(-1), top[0].data.reshape(-1)
        self.mask = self._draw_mask(x.size)
        dropout_apply(x, self.mask, y, self.scale)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.phase != pb.TRAIN:
            if bottom[0].diff is not top[0].diff:
                bottom[0].diff[...] = top[0].diff
            return
        dy, dx = top[0].diff.reshape(-1), bottom[0].diff.reshape(-1)
        dropout_apply(dy, self.mask, dx, self.scale)

    def forward_gpu(self, bottom, top):
        x = bottom[0].data
        if self.phase != pb.TRAIN:
            top[0].data[...] = x
            return
        xp = array_module(x)
        self.mask = xp.asarray(self._draw_mask(x.size)).reshape(x.shape)
        top[0].data[...] = x * self.mask * x.dtype.type(self.scale)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if self.phase != pb.TRAIN:
            bottom[0].diff[...] = dy
            return
        bottom[0].diff[...] = dy * self.mask.reshape(dy.shape) * dy.dtype.type(self.scale)
