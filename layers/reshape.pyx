"""Reshape: y = x with axes [axis, axis + num_axes) replaced by reshape_param.shape
(Caffe's Reshape).

In the new shape a 0 copies the bottom's dim at that position and one -1 is
inferred from the count. A negative `axis` counts from the end, -1 meaning "after
the last axis"; num_axes -1 means "to the end". The top is a view of the bottom:
data and diff share memory, so neither pass copies anything (unless someone
rebound the top's arrays).
"""
import numpy as np

from ..proto.errors import NetError
from .base import ViewLayer


class Reshape(ViewLayer):
    """Give the bottom a new shape; the top is a view of the bottom."""

    type = "Reshape"

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.param.reshape_param
        self.dims = [int(d) for d in p.shape.dim]
        self.axis_param = p.axis
        self.num_axes_param = p.num_axes
        if sum(d == -1 for d in self.dims) > 1:
            raise NetError(f"layer '{self.name}' (Reshape): shape {self.dims} has more than "
                           "one -1; at most one dim can be inferred")
        if any(d < -1 for d in self.dims):
            raise NetError(f"layer '{self.name}' (Reshape): shape {self.dims} has a dim below "
                           "-1 (0 copies a dim, -1 infers one)")
        if self.num_axes_param < -1:
            raise NetError(f"layer '{self.name}' (Reshape): num_axes must be -1 (to the end) "
                           f"or at least 0, got {self.num_axes_param}")

    def top_shape(self, shape):
        """The top shape for a bottom of `shape` (Caffe's rules for 0 and -1)."""
        n = len(shape)
        start = self.axis_param if self.axis_param >= 0 else n + self.axis_param + 1
        if not 0 <= start <= n:
            raise self.shape_error(f"axis {self.axis_param} is out of range for bottom "
                                   f"shape {shape}")
        end = n if self.num_axes_param == -1 else start + self.num_axes_param
        if end > n:
            raise self.shape_error(f"axis {self.axis_param} with num_axes "
                                   f"{self.num_axes_param} runs past bottom shape {shape}")
        new = []
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= end:
                    raise self.shape_error(
                        f"shape {self.dims} has a 0 at position {i} with no bottom axis "
                        f"to copy among the {end - start} replaced axes of {shape}")
                d = shape[start + i]
            new.append(d)
        result = shape[:start] + tuple(new) + shape[end:]
        count = int(np.prod(shape, dtype=np.int64))
        if -1 in new:
            known = int(np.prod([d for d in result if d != -1], dtype=np.int64))
            if known == 0 or count % known:
                raise self.shape_error(
                    f"cannot infer the -1 in shape {self.dims}: the bottom count {count} "
                    f"(bottom shape {shape}) is not a multiple of {known}")
            result = tuple(count // known if d == -1 else d for d in result)
        if int(np.prod(result, dtype=np.int64)) != count:
            raise self.shape_error(f"top shape {result} holds "
                                   f"{int(np.prod(result, dtype=np.int64))} values but "
                                   f"bottom shape {shape} holds {count}")
        return result
