"""Flatten: y = x reshaped, axes [axis, end_axis] merged into one  (Caffe's Flatten).

The top is a view of the bottom: data and diff share memory, so neither pass
copies anything (unless someone rebound the top's diff to an array of its own).
"""
import numpy as np

from ..proto.errors import NetError
from .base import Layer, canonical_axis


class Flatten(Layer):
    """Merge a range of axes into one; the top is a view of the bottom."""

    type = "Flatten"
    num_bottom = 1
    num_top = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (Flatten) cannot run in place "
                           "(its top is its bottom)")
        self.axis = self.param.flatten_param.axis
        self.end_axis = self.param.flatten_param.end_axis
        self._views = (None,) * 4

    def top_shape(self, shape):
        """shape with axes [axis, end_axis] (canonicalised) merged."""
        start = canonical_axis(self.axis, len(shape), self)
        end = canonical_axis(self.end_axis, len(shape), self)
        if end < start:
            raise self.shape_error(f"end_axis {self.end_axis} comes before axis {self.axis} "
                                   f"for bottom shape {shape}")
        merged = int(np.prod(shape[start:end + 1], dtype=np.int64))
        return shape[:start] + (merged,) + shape[end + 1:]

    def reshape(self, bottom, top):
        b, t = bottom[0], top[0]
        shape = self.top_shape(b.shape)
        # Views re-established every time: the bottom may have new arrays.
        t.data = b.data.reshape(shape)
        t.diff = b.diff.reshape(shape)
        self._views = (b.data, t.data, b.diff, t.diff)

    def _sharing(self, b, t, k):
        """Whether b and t are still the arrays reshape made views of each other."""
        return self._views[k] is b and self._views[k + 1] is t

    def forward_cpu(self, bottom, top):
        """Nothing to compute while the top's data is a view of the bottom's; else copy."""
        if not self._sharing(bottom[0].data, top[0].data, 0):
            top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    forward_gpu = forward_cpu

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if not self._sharing(bottom[0].diff, top[0].diff, 2):
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].shape)

    backward_gpu = backward_cpu
