"""Convolution: y[n, o] = sum_{c in group(o)} w[o, c] (*) x[n, c] + b[o]  (Caffe's Convolution).

(*) is N-D cross-correlation with padding, stride and dilation over the spatial axes
after convolution_param.axis (geometry fields and cyffe's pad_scheme / pad_fill: see
base_conv.py). Output size per spatial axis:
(in + pad_before + pad_after - (dilation*(k-1) + 1)) // stride + 1. Channels and outputs
split into `group` independent groups. Weights (num_output, C/group, k1, ..., kn), bias
(num_output,). Several bottoms share the weights (one top each). Gradients that reach
reflected or replicated padding go back to the pixels it copies.

CPU: the im2col + GEMM pipeline of kernels/convolution.pyx; depthwise convolutions (2-D,
group == C > 1) take the direct kernels of kernels/depthwise.pyx instead. GPU: im2col and
batched matmuls in array-API code (base_conv.py).
"""
import numpy as np

from .backend import array_module, gpu_mode
from .base import steppable
from .base_conv import BaseConvolution
from ..proto import cyffe_pb2 as pb
from .kernels import depthwise, winograd


class Convolution(BaseConvolution):
    """N-D convolution by im2col + GEMM (direct kernels when depthwise); one top per bottom,
    weights shared."""

    type = "Convolution"
    # Set by the net for a folded TEST forward (net/fold.py): an object whose params() gives
    # folded weights, bias and per-output ReLU slopes (or None), and epilogue() the bias,
    # per-output scales and slopes to apply after the convolution's own weights.
    fold = None

    def setup(self, bottom, top):
        super().setup(bottom, top)
        # One input channel (LeNet's conv1) is an ordinary convolution: GEMM beats the
        # direct kernels there.
        self.depthwise = (self.num_spatial == 2 and not self.force_nd
                          and self.group == self.channels > 1)

    def weight_shape(self):
        """(num_output, C / group, k1, ..., kn), Caffe's order."""
        return (self.num_output, self.channels // self.group) + tuple(self.kernel)

    def plan(self, in_shape):
        return self.make_geometry(in_shape)

    def make_engines(self, num, image_channels, out_channels, dtype):
        super().make_engines(num, image_channels, out_channels, dtype)
        # Winograd in TEST forwards only: training keeps im2col's exact gradients' pairing.
        self.winograd = None
        if (self.phase == pb.TEST and not self.depthwise and
                winograd.suits(self.geometry, num, image_channels, out_channels, self.group)):
            self.winograd = winograd.Winograd(self.geometry, num, image_channels, out_channels,
                                              self.group, dtype)

    def _forward_params(self):
        """(weights, bias, ReLU slopes or None, scales or None) of a forward: the blobs', or
        with the fold, the blobs' weights and the fold's epilogue (the depthwise kernels
        and the GPU: folded weights)."""
        if self.fold is None:
            return self.blobs[0].data, self.bias, None, None
        if self.depthwise or gpu_mode():
            return self.fold.params() + (None,)
        bias, scales, slopes = self.fold.epilogue()
        return self.blobs[0].data, bias, slopes, scales

    def forward_cpu(self, bottom, top):
        weights, bias, slopes, scales = self._forward_params()
        for b, t in zip(bottom, top):
            x, y = self.images(b.data), t.data.reshape(self.out_shape)
            if self.depthwise:
                depthwise.forward(self.geometry, x, weights, bias, y, slopes)
            elif self.winograd is not None:
                self.winograd.run(weights, x, y, bias, slopes, scales)
            else:
                self.pipeline.run(weights, x=x, y=y, bias=bias, slopes=slopes, scales=scales)

    def step(self, bottom, top):
        """The forward as a net's step (kernels/step.pyx): the im2col + GEMM pipeline on one
        float32 bottom, watching what folded weights come from; None otherwise."""
        x, y = bottom[0].data, top[0].data
        if (len(bottom) != 1 or self.depthwise or self.winograd is not None or
                not steppable(x, y)):
            return None
        weights, bias, slopes, scales = self._forward_params()
        step = self.pipeline.step(weights, x.reshape(self.image_shape),
                                  y.reshape(self.out_shape), bias, slopes, scales)
        if step is not None and self.fold is not None:
            step.watch(self.fold.sources(weights=False))
        return step

    def backward_cpu(self, top, propagate_down, bottom):
        weights, weight_diff = self.blobs[0].data, self.blobs[0].diff
        for i, (b, t) in enumerate(zip(bottom, top)):
            x = self.images(b.data)
            dy = np.ascontiguousarray(t.diff).reshape(self.out_shape)
            dx = b.diff.reshape(self.image_shape) if propagate_down[i] else None
            if self.depthwise:
                depthwise.backward(self.geometry, x, weights, dy, dx, weight_diff,
                                   self.bias_diff)
            else:
                self.pipeline.run(weights, x=x, dy=dy, dx=dx, weight_diff=weight_diff,
                                  bias_diff=self.bias_diff)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        weights, bias, slopes, _ = self._forward_params()
        for b, t in zip(bottom, top):
            out = self.conv_xp(xp, b.data.reshape(self.image_shape), xp.asarray(weights))
            if bias is not None:
                out = out + xp.asarray(bias)[:, None]
            if slopes is not None:
                slope = xp.asarray(slopes)[:, None]
                out = out * ((out > 0) + (out <= 0) * slope)
            t.data[...] = out.reshape(t.shape)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(bottom[0].data)
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = t.diff.reshape(self.out_shape[:2] + (-1,))
            if self.bias_term:
                self.blobs[1].diff += dy.sum(axis=(0, 2))
            self.conv_weight_diff_xp(xp, b.data.reshape(self.image_shape), dy)
            if propagate_down[i]:
                b.diff[...] = self.conv_transpose_xp(xp, dy).reshape(b.shape)
