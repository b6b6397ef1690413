"""Concat: y = [x_1, x_2, ..., x_K] joined along `axis`; dx_k = the matching slice of dy
(Caffe's Concat).

All bottoms agree on every axis but the concatenation axis. The copies are
strided block copies, which NumPy (or CuPy) slicing already does at memory
speed; a bottom that share_blobs laid out in its place in the top is not copied.
"""
from ..proto.errors import NetError
from .base import Layer, canonical_axis
from .kernels.step import Step


class Concat(Layer):
    """Join bottoms along one axis (legacy `concat_dim` honoured when `axis` is unset)."""

    type = "Concat"
    bottoms = (1, None)
    tops = 1

    def setup(self, bottom, top):
        p = self.param.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise NetError(f"layer '{self.name}' (Concat): give either axis or concat_dim, "
                           "not both")
        self.axis_param = p.concat_dim if p.HasField("concat_dim") else p.axis

    def reshape(self, bottom, top):
        first = bottom[0].shape
        self.axis = axis = canonical_axis(self.axis_param, len(first), self)
        total = 0
        for b in bottom:
            shape = b.shape
            if (len(shape) != len(first) or shape[:axis] != first[:axis]
                    or shape[axis + 1:] != first[axis + 1:]):
                raise self.shape_error(
                    f"bottoms must agree on every axis but {axis}, got "
                    f"{' and '.join(str(x.shape) for x in bottom)}")
            total += shape[axis]
        top[0].reshape(first[:axis] + (total,) + first[axis + 1:])

    def _slices(self, bottom):
        """(bottom index, index tuple into the top) for each bottom."""
        lead = (slice(None),) * self.axis
        start = 0
        for i, b in enumerate(bottom):
            n = b.shape[self.axis]
            yield i, lead + (slice(start, start + n),)
            start += n

    def forward_cpu(self, bottom, top):
        y = top[0].data
        for i, where in self._slices(bottom):
            if not self._in_place(bottom[i].data, y[where]):
                y[where] = bottom[i].data

    @staticmethod
    def _in_place(x, part):
        """Whether x already is this part of the top (share_blobs lays out the bottoms of a
        Concat of channels at batch 1 so, net/memory.py)."""
        return (x.ctypes.data == part.ctypes.data and x.shape == part.shape and
                part.flags.c_contiguous)

    def step(self, bottom, top):
        y = top[0].data
        if all(self._in_place(bottom[i].data, y[where]) for i, where in self._slices(bottom)):
            return Step()           # nothing to copy
        return None

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, where in self._slices(bottom):
            if propagate_down[i]:
                bottom[i].diff[...] = dy[where]

    def forward_gpu(self, bottom, top):
        y = top[0].data
        for i, where in self._slices(bottom):
            y[where] = bottom[i].data

    backward_gpu = backward_cpu
