"""Slice: [y_1, ..., y_K] = x cut along `axis` at slice_point (or into K equal parts);
dx = [dy_1, ..., dy_K] joined back  (Caffe's Slice, the inverse of Concat).

The copies are strided block copies, which NumPy (or CuPy) slicing already does
at memory speed, so one array-API code path serves both backends.
"""
from ..proto.errors import NetError
from .base import Layer, canonical_axis


class Slice(Layer):
    """Cut one bottom into several tops along one axis (legacy `slice_dim` honoured)."""

    type = "Slice"
    bottoms = 1
    tops = (1, None)

    def setup(self, bottom, top):
        p = self.param.slice_param
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise NetError(f"layer '{self.name}' (Slice): give either axis or slice_dim, "
                           "not both")
        self.legacy_dim = p.HasField("slice_dim")
        self.axis_param = p.slice_dim if self.legacy_dim else p.axis
        self.slice_points = [int(s) for s in p.slice_point]
        if self.slice_points and len(self.slice_points) != len(top) - 1:
            raise NetError(f"layer '{self.name}' (Slice): {len(self.slice_points)} "
                           f"slice_point(s) given for {len(top)} tops; give one fewer "
                           "than the tops, or none for equal parts")
        if any(t is bottom[0] for t in top):
            raise NetError(f"layer '{self.name}' (Slice) cannot run in place")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if self.legacy_dim and self.axis_param >= len(shape):
            raise self.shape_error(f"slice_dim {self.axis_param} is out of range for "
                                   f"bottom shape {shape}")
        self.axis = axis = canonical_axis(self.axis_param, len(shape), self)
        length = shape[axis]
        if self.slice_points:
            bounds = [0] + self.slice_points + [length]
            if any(b <= a for a, b in zip(bounds, bounds[1:])):
                raise self.shape_error(
                    f"slice_point {self.slice_points} must rise strictly inside (0, "
                    f"{length}), the length of axis {axis} of bottom shape {shape}")
        else:
            if length % len(top):
                raise self.shape_error(
                    f"{len(top)} tops do not evenly divide axis {axis} of length {length} "
                    f"(bottom shape {shape}); give slice_point")
            step = length // len(top)
            bounds = [i * step for i in range(len(top) + 1)]
        lead = (slice(None),) * axis
        self.where = [lead + (slice(a, b),) for a, b in zip(bounds, bounds[1:])]
        for t, (a, b) in zip(top, zip(bounds, bounds[1:])):
            t.reshape(shape[:axis] + (b - a,) + shape[axis + 1:])

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        for t, where in zip(top, self.where):
            t.data[...] = x[where]

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        for t, where in zip(top, self.where):
            dx[where] = t.diff

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
