"""Tiny layers for graph and solver tests, registered under Toy* names.

They are plain NumPy so graph behaviour is tested apart from the real kernels.
"""
import numpy as np

from cyffe.layers.base import Layer
from cyffe.layers.base_loss import LossLayer
from cyffe.layers import fillers


class ToySource(Layer):
    """No bottoms; one top of dummy_data_param.shape[0], left as the user writes it."""
    type = "ToySource"
    bottoms = 0
    tops = 1

    def setup(self, bottom, top):
        top[0].reshape(tuple(self.param.dummy_data_param.shape[0].dim))

    def reshape(self, bottom, top):
        pass

    def forward_cpu(self, bottom, top):
        pass

    def backward_cpu(self, top, propagate_down, bottom):
        pass


class ToyScale(Layer):
    """y = w * x with one learnable scalar w (filled from the layer's filler or 1)."""
    type = "ToyScale"
    bottoms = tops = 1

    def setup(self, bottom, top):
        if not self.blobs:
            self.blobs = [self.new_blob((1,))]
            fillers.fill(self.blobs[0].data, self.param.scale_param.filler
                         if self.param.scale_param.HasField("filler") else _one())
        self.forward_calls = 0

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        self.forward_calls += 1
        self.x = bottom[0].data.copy()          # kept for backward, so in place works
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward_cpu(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += np.sum(top[0].diff * self.x)
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class ToyAdd(Layer):
    """y = sum of the bottoms."""
    type = "ToyAdd"
    bottoms = (1, None)
    tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        top[0].data[...] = sum(b.data for b in bottom)

    def backward_cpu(self, top, propagate_down, bottom):
        for b, p in zip(bottom, propagate_down):
            if p:
                b.diff[...] = top[0].diff


class ToySquareLoss(LossLayer):
    """loss = 0.5 * sum(x^2), weighted by top[0].diff."""
    type = "ToySquareLoss"
    bottoms = 1

    def reshape(self, bottom, top):
        top[0].reshape(())

    def forward_cpu(self, bottom, top):
        top[0].data[...] = 0.5 * np.sum(bottom[0].data ** 2)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * bottom[0].data


def _one():
    from cyffe.proto import cyffe_pb2 as pb
    return pb.FillerParameter(type="constant", value=1.0)
