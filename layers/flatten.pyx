"""Flatten: y = x reshaped, axes [axis, end_axis] merged into one  (Caffe's Flatten).

The top is a view of the bottom: data and diff share memory, so neither pass
copies anything (unless someone rebound the top's diff to an array of its own).
"""
import numpy as np

from .base import ViewLayer, canonical_axis


class Flatten(ViewLayer):
    """Merge a range of axes into one; the top is a view of the bottom."""

    type = "Flatten"

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.axis = self.param.flatten_param.axis
        self.end_axis = self.param.flatten_param.end_axis

    def top_shape(self, shape):
        """shape with axes [axis, end_axis] (canonicalised) merged."""
        start = canonical_axis(self.axis, len(shape), self)
        end = canonical_axis(self.end_axis, len(shape), self)
        if end < start:
            raise self.shape_error(f"end_axis {self.end_axis} comes before axis {self.axis} "
                                   f"for bottom shape {shape}")
        merged = int(np.prod(shape[start:end + 1], dtype=np.int64))
        return shape[:start] + (merged,) + shape[end + 1:]
