"""Deconvolution: the transpose of Convolution (Caffe's Deconvolution): y = conv^T(w) x + b.

Every convolution_param option of Caffe applies (kernel/stride/pad/dilation given once
or once per spatial axis, their _h/_w twins in 2-D, axis, group, bias_term, fillers,
force_nd_im2col), over the spatial axes after axis. Weights are (C_in, num_output/group,
k1, ..., kn) as in Caffe, and the output is stride*(in-1) + dilation*(k-1)+1 - 2*pad per
spatial axis. cyffe's pad_scheme and pad_fill take only their defaults here (EXPLICIT,
ZERO): anything else is an error. Several bottoms share the weights.

It is Convolution's machinery run the other way (kernels/convolution.pyx): the top's
images are the im2col side and the bottom the output grid, so forward is a convolution's
data gradient (GEMMs, then col2im into the top) and backward a convolution's forward of
the top diff (the bottom diff) with its weight gradient.
"""
import numpy as np

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base_conv import BaseConvolution


class Deconvolution(BaseConvolution):
    """Transposed N-D convolution by GEMM + col2im; one top per bottom, weights shared."""

    type = "Deconvolution"
    transposed = True

    def setup(self, bottom, top):
        p = self.param.convolution_param
        if p.pad_scheme != pb.EXPLICIT or p.pad_fill != pb.ZERO:
            raise NetError(f"layer '{self.name}' (Deconvolution): only pad_scheme EXPLICIT "
                           f"with pad_fill ZERO is supported, got "
                           f"{pb.PadScheme.Name(p.pad_scheme)} / {pb.PadFill.Name(p.pad_fill)}")
        super().setup(bottom, top)

    def weight_shape(self):
        """(C_in, num_output / group, k1, ..., kn), Caffe's order for Deconvolution."""
        return (self.channels, self.num_output // self.group) + tuple(self.kernel)

    def plan(self, in_shape):
        top_shape = tuple(s * (i - 1) + d * (k - 1) + 1 - 2 * p for i, k, s, d, p in
                          zip(in_shape, self.kernel, self.stride, self.dilation, self.pad))
        if any(o <= 0 for o in top_shape):
            raise self.shape_error(f"pad {self.pad} is too large for kernel {self.kernel} "
                                   f"(stride {self.stride}, dilation {self.dilation}) and "
                                   f"input {in_shape}: the output would be {top_shape}")
        return self.make_geometry(top_shape, out_shape=in_shape)

    def _channels(self, array):
        return array.reshape(self.image_shape[0], self.num_output, -1)

    def forward_cpu(self, bottom, top):
        for b, t in zip(bottom, top):
            self.pipeline.run(self.blobs[0].data, dy=b.data, dx=t.data.reshape(self.image_shape))
            if self.bias_term:
                self._channels(t.data)[...] += self.blobs[1].data[:, None]

    def backward_cpu(self, top, propagate_down, bottom):
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = self.images(t.diff)
            if self.bias_term:
                self.blobs[1].diff += self._channels(dy).sum(axis=(0, 2))
            self.pipeline.run(self.blobs[0].data, x=dy, dy=b.data,
                              y=b.diff if propagate_down[i] else None,
                              weight_diff=self.blobs[0].diff)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        for b, t in zip(bottom, top):
            y = self.conv_transpose_xp(xp, b.data)
            if self.bias_term:
                y = y + self.blobs[1].data.reshape((-1,) + (1,) * self.num_spatial)
            t.data[...] = y.reshape(t.shape)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(bottom[0].data)
        for i, (b, t) in enumerate(zip(bottom, top)):
            dy = t.diff.reshape(self.image_shape)
            if self.bias_term:
                self.blobs[1].diff += self._channels(dy).sum(axis=(0, 2))
            self.conv_weight_diff_xp(xp, dy, b.data)
            if propagate_down[i]:
                b.diff[...] = self.conv_xp(xp, dy).reshape(b.shape)
