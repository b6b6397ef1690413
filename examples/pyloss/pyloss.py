"""A Euclidean loss written as a Python layer, the way pycaffe's examples/pyloss.py does it.

    loss = sum((a - b)^2) / (2 N),   N = the number of items (a's first axis)

backward: da = (a - b) * w / N and db = -(a - b) * w / N, where w = top[0].diff
is the loss weight the net puts there (`loss_weight: 1` in the prototxt).
The two bottoms need the same item count and element count, not the same shape.
"""
import numpy as np

import cyffe


class EuclideanLossLayer(cyffe.Layer):
    """Half the mean (over items) squared distance between two blobs."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError(f"layer '{self.name}' needs two bottoms to compare, got {len(bottom)}")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count or bottom[0].num != bottom[1].num:
            raise ValueError(f"layer '{self.name}': bottoms of shapes {bottom[0].shape} and "
                             f"{bottom[1].shape} do not match")
        self.diff = np.zeros((bottom[0].num, bottom[0].count // bottom[0].num),
                             bottom[0].data.dtype)
        top[0].reshape(1)               # a loss is one number

    def forward(self, bottom, top):
        num = bottom[0].num
        self.diff[...] = bottom[0].data.reshape(num, -1) - bottom[1].data.reshape(num, -1)
        top[0].data[...] = np.sum(self.diff ** 2) / num / 2

    def backward(self, top, propagate_down, bottom):
        for i, sign in enumerate((1, -1)):
            if propagate_down[i]:
                scale = sign * top[0].diff / bottom[i].num
                bottom[i].diff[...] = (scale * self.diff).reshape(bottom[i].shape)
