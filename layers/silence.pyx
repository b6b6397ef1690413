"""Silence: consumes its bottoms and produces nothing; dx = 0  (Caffe's Silence).

Used to quiet blobs nobody else reads (a net reports unconsumed tops as outputs).
"""
from .base import Layer


class Silence(Layer):
    """No tops; backward writes zero diffs to the bottoms that ask for one."""

    type = "Silence"
    bottoms = (1, None)
    tops = 0

    def reshape(self, bottom, top):
        """Nothing to shape: there are no tops."""

    def forward_cpu(self, bottom, top):
        """Nothing to compute."""

    def backward_cpu(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
