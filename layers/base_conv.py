"""The base of the windowed convolution layers (Caffe's BaseConvolutionLayer).

ConvolutionGeometry reads convolution_param's geometry (Convolution, Deconvolution and
Im2col share it); BaseConvolution adds the weights, the bottom checks and the im2col +
GEMM machinery of layers/kernels/convolution.py that Convolution and Deconvolution both
run, each in its own direction.

Geometry fields, as Caffe: kernel_size / stride / pad / dilation given once (every spatial
axis) or once per spatial axis; kernel_h/_w, stride_h/_w, pad_h/_w in 2-D only; the
spatial axes are those after convolution_param.axis's channel axis (the axes before it
are all "images"). cyffe's own: pad_scheme SAME (output ceil(in / stride), the odd pixel of
padding after) and pad_fill (ZERO as Caffe, CONSTANT pad_value, REFLECT, REPLICATE).
"""
import math

import numpy as np

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from . import fillers
from .backend import array_module
from .base import Layer, canonical_axis
from .kernels.convolution import Pipeline
from .kernels.im2col import col2im_xp, im2col_xp
from .kernels.padding import same_padding
from .kernels.window import Geometry


def spatial_values(layer, param, repeated, twins, default, num_spatial):
    """One value per spatial axis from a repeated field (once, or once per axis) or, in 2-D
    only, from its (_h, _w) twins, by Caffe's rules."""
    values = list(getattr(param, repeated))
    if twins and (param.HasField(twins[0]) or param.HasField(twins[1])):
        if num_spatial != 2:
            raise NetError(f"layer '{layer.name}': {twins[0]}/{twins[1]} are for 2-D only; "
                           f"this layer has {num_spatial} spatial axes (use {repeated})")
        if values:
            raise NetError(f"layer '{layer.name}': give either {repeated} or "
                           f"{twins[0]}/{twins[1]}, not both")
        if default is None and not (param.HasField(twins[0]) and param.HasField(twins[1])):
            raise NetError(f"layer '{layer.name}': {twins[0]} and {twins[1]} go together")
        return getattr(param, twins[0]), getattr(param, twins[1])
    if not values:
        if default is None:
            also = f" (or {twins[0]} and {twins[1]})" if twins and num_spatial == 2 else ""
            raise NetError(f"layer '{layer.name}': {repeated}{also} is required")
        return (default,) * num_spatial
    if len(values) == 1:
        return tuple(values) * num_spatial
    if len(values) != num_spatial:
        raise NetError(f"layer '{layer.name}': {repeated} is given {len(values)} times; give "
                       f"it once, or once per spatial axis ({num_spatial})")
    return tuple(values)


class ConvolutionGeometry:
    """Mixin: convolution_param's geometry, and the window.Geometry of an input shape."""

    def read_geometry(self, bottom_shape):
        """Set axis, num_spatial, kernel, stride, dilation, pad and the padding options."""
        p = self.param.convolution_param
        self.axis = canonical_axis(p.axis, len(bottom_shape), self)
        self.num_spatial = len(bottom_shape) - self.axis - 1
        n = self.num_spatial
        self.kernel = spatial_values(self, p, "kernel_size", ("kernel_h", "kernel_w"), None, n)
        self.stride = spatial_values(self, p, "stride", ("stride_h", "stride_w"), 1, n)
        self.pad = spatial_values(self, p, "pad", ("pad_h", "pad_w"), 0, n)
        self.dilation = spatial_values(self, p, "dilation", (), 1, n)
        for what, values in (("kernel size", self.kernel), ("stride", self.stride),
                             ("dilation", self.dilation)):
            if any(v <= 0 for v in values):
                raise NetError(f"layer '{self.name}': {what} must be positive, got {values}")
        self.same = p.pad_scheme == pb.SAME
        if self.same and (len(p.pad) or p.HasField("pad_h") or p.HasField("pad_w")):
            raise NetError(f"layer '{self.name}': pad_scheme SAME computes the padding; do "
                           "not give pad / pad_h / pad_w as well")
        self.pad_fill = pb.PadFill.Name(p.pad_fill).lower()
        self.pad_value = p.pad_value
        self.force_nd = p.force_nd_im2col
        self.channels = bottom_shape[self.axis]
        self._shape_key = None

    def make_geometry(self, in_shape, out_shape=None):
        """The window.Geometry over spatial shape in_shape (checks REFLECT's limit and that
        the kernel fits)."""
        if self.same:
            pads = [same_padding(*axis) for axis in
                    zip(in_shape, self.kernel, self.stride, self.dilation)]
            before, after = tuple(p[0] for p in pads), tuple(p[1] for p in pads)
        else:
            before = after = self.pad
        if self.pad_fill == "reflect" and any(
                b >= size or a >= size for b, a, size in zip(before, after, in_shape)):
            raise self.shape_error(f"pad_fill REFLECT needs every pad smaller than the input: "
                                   f"pads {before} / {after} for spatial shape {in_shape}")
        # A constant 0 is Caffe's zero padding: no padded copy.
        fill = "zero" if self.pad_fill == "constant" and self.pad_value == 0 else self.pad_fill
        geometry = Geometry(in_shape, self.kernel, self.stride, self.dilation, before, after,
                            out_shape, fill, self.pad_value, self.force_nd)
        if any(o <= 0 for o in geometry.out_shape):
            raise self.shape_error(f"kernel {self.kernel} (dilation {self.dilation}, pad "
                                   f"{before} / {after}) is larger than the input "
                                   f"{in_shape}")
        return geometry

    def check_bottoms(self, bottom):
        """All bottoms share one shape that fits the channels: returns it."""
        shape = bottom[0].shape
        for b in bottom[1:]:
            if b.shape != shape:
                raise self.shape_error(f"all bottoms must have one shape, got {shape} and "
                                       f"{b.shape}")
        if len(shape) != self.axis + 1 + self.num_spatial or shape[self.axis] != self.channels:
            spatial = ["H", "W"] if self.num_spatial == 2 else [
                f"D{d + 1}" for d in range(self.num_spatial)]
            outer = ["N"] if self.axis == 1 else [f"N{a + 1}" for a in range(self.axis)]
            expected = "(" + ", ".join(outer + [str(self.channels)] + spatial) + ")"
            raise self.shape_error(f"bottom shape {shape} does not fit: expected {expected}")
        return shape

    def shape_changed(self, bottom):
        """Whether the bottoms' shape or dtype differ from the last reshape's (then noted)."""
        key = (self.check_bottoms(bottom), bottom[0].data.dtype)
        if key == self._shape_key:
            return False
        self._shape_key = key
        return True


class BaseConvolution(ConvolutionGeometry, Layer):
    """Weights (and bias) shared by every bottom, one top per bottom, and the pipeline.

    Subclasses give weight_shape() and plan(spatial shape of the bottoms): the geometry
    whose images im2col reads. Those are the bottoms' for Convolution; for Deconvolution
    (transposed) the tops' images are the im2col side and the bottoms the output grid.
    image_shape and out_shape are the two sides as (N, C, *spatial).
    """

    bottoms = tops = (1, None)
    transposed = False

    def setup(self, bottom, top):
        p = self.param.convolution_param
        if len(bottom) != len(top):
            raise NetError(f"layer '{self.name}' ({self.type}) needs one top per bottom, got "
                           f"{len(bottom)} bottoms and {len(top)} tops")
        self.read_geometry(bottom[0].shape)
        self.num_output = p.num_output
        self.group = p.group
        self.bias_term = p.bias_term
        if self.num_output <= 0:
            raise NetError(f"layer '{self.name}': num_output must be positive, got "
                           f"{self.num_output}")
        if self.group <= 0 or self.channels % self.group or self.num_output % self.group:
            raise NetError(f"layer '{self.name}': group {self.group} must divide both the "
                           f"input channels ({self.channels}) and num_output "
                           f"({self.num_output})")
        shapes = [self.weight_shape()] + [(self.num_output,)] * self.bias_term
        if self.blobs:
            if len(self.blobs) != len(shapes):
                raise self.shape_error(f"expected {len(shapes)} param blobs (bias_term is "
                                       f"{self.bias_term}), got {len(self.blobs)}")
            for i, (blob, shape) in enumerate(zip(self.blobs, shapes)):
                if blob.shape != shape:
                    raise self.shape_error(f"param {i} has shape {blob.shape}, expected "
                                           f"{shape} for input shape {bottom[0].shape}")
        else:
            self.blobs = [self.new_blob(shape) for shape in shapes]
            fillers.fill(self.blobs[0].data, p.weight_filler)
            if self.bias_term:
                fillers.fill(self.blobs[1].data, p.bias_filler)

    def reshape(self, bottom, top):
        if self.shape_changed(bottom):
            shape = bottom[0].shape
            num = math.prod(shape[:self.axis])
            self.geometry = self.plan(tuple(shape[self.axis + 1:]))
            sides = (self.channels, self.num_output)
            image_channels, out_channels = sides[::-1] if self.transposed else sides
            self.image_shape = (num, image_channels) + self.geometry.in_shape
            self.out_shape = (num, out_channels) + self.geometry.out_shape
            top_spatial = self.geometry.in_shape if self.transposed else self.geometry.out_shape
            self.top_shape = shape[:self.axis] + (self.num_output,) + top_spatial
            self.make_engines(num, image_channels, out_channels, bottom[0].data.dtype)
        for t in top:
            t.reshape(*self.top_shape)

    def make_engines(self, num, image_channels, out_channels, dtype):
        """What runs the convolution for this shape: the im2col + GEMM pipeline."""
        self.pipeline = Pipeline(self.geometry, num, image_channels, out_channels, self.group,
                                 dtype)

    def images(self, array):
        """A bottom's or top's array as contiguous image-side images (N, C, *in)."""
        return np.ascontiguousarray(array).reshape(self.image_shape)

    @property
    def bias(self):
        """The bias blob's data, or None."""
        return self.blobs[1].data if self.bias_term else None

    @property
    def bias_diff(self):
        return self.blobs[1].diff if self.bias_term else None

    # -- array-API (the GPU path; runs on numpy too) -----------------------------

    def _grouped_weights(self, array):
        """Weights as (group, outputs / group, image channels / group * K)."""
        return array.reshape(self.group, array.shape[0] // self.group, -1)

    def conv_xp(self, xp, images, weights=None):
        """The convolution of image-side images (N, C, *in) by weights (the blob's by
        default): (N, M, L)."""
        weights = self._grouped_weights(self.blobs[0].data if weights is None else weights)
        col = im2col_xp(xp, self.geometry, images)
        out = xp.matmul(weights, col.reshape(self.group, weights.shape[2], -1))
        return out.reshape(-1, images.shape[0], self.geometry.length).transpose(1, 0, 2)

    def conv_transpose_xp(self, xp, out):
        """The adjoint of conv_xp: image-side images (N, C, *in) from out (N, M, L)."""
        weights = self._grouped_weights(self.blobs[0].data)
        num = out.shape[0]
        out = out.reshape(num, -1, self.geometry.length).transpose(1, 0, 2)
        col = xp.matmul(weights.transpose(0, 2, 1), out.reshape(self.group, weights.shape[1], -1))
        return col2im_xp(xp, self.geometry, col, num, self.image_shape[1])

    def conv_weight_diff_xp(self, xp, images, out_diff):
        """Accumulate into the weight diff the gradient of conv_xp(images) given out_diff."""
        weights = self._grouped_weights(self.blobs[0].data)
        num = images.shape[0]
        dy = out_diff.reshape(num, -1, self.geometry.length).transpose(1, 0, 2)
        col = im2col_xp(xp, self.geometry, images).reshape(self.group, weights.shape[2], -1)
        self.blobs[0].diff += xp.matmul(dy.reshape(self.group, weights.shape[1], -1),
                                        col.transpose(0, 2, 1)).reshape(self.blobs[0].shape)
