"""Split: y_1 = ... = y_N = x; dx = sum_i dy_i  (Caffe's Split).

The net inserts a Split wherever one blob feeds several layers, so that each
consumer writes its own diff and the Split sums them. The tops share the
bottom's data array (no copy); their diffs are their own.
"""
from ..proto.errors import NetError
from .base import Layer
from .kernels.step import Step
from .kernels.elementwise import add_into


class Split(Layer):
    """One bottom shared by several tops; backward sums the tops' diffs."""

    type = "Split"
    bottoms = 1
    tops = (1, None)

    def setup(self, bottom, top):
        if any(t is bottom[0] for t in top):
            raise NetError(f"layer '{self.name}' (Split) cannot run in place (a top is its bottom)")

    def reshape(self, bottom, top):
        # Re-share every time: the bottom may have been given a new array.
        for t in top:
            t.reshape(bottom[0].shape)
            t.share_data(bottom[0])

    def forward_cpu(self, bottom, top):
        """Nothing to compute: the tops are the bottom's data."""

    def step(self, bottom, top):
        return Step()               # nothing to run

    forward_gpu = forward_cpu

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx[...] = top[0].diff
        flat = dx.reshape(-1)
        for t in top[1:]:
            add_into(flat, t.diff.reshape(-1))

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        dx[...] = top[0].diff
        for t in top[1:]:
            dx += t.diff
