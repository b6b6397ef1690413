"""LayerNorm: per item, y = (x - mean) / sqrt(var + eps) * scale + bias over the axes from `axis`.

cyffe's own layer (Caffe has none; the numerics are PyTorch's LayerNorm). The axes before
`axis` (default 1, negative counts from the end) index items; each item's values on the
axes from `axis` on are normalized by their mean and biased variance. With `affine`
(default), blobs are [scale, bias] of the normalized shape (shape[axis:]), filled with
constant 1 and 0 unless scale_filler / bias_filler say otherwise; they act elementwise.

Backward, with h the normalized input, g = dy * scale and means over the item:
  dx = (g - mean(g) - h * mean(g * h)) / sqrt(var + eps)
  d scale += sum over items of dy * h;  d bias += sum over items of dy.
This is GroupNorm's computation on an (items, normalized values, 1) view with one group,
so the Cython kernels are group_norm.pyx's. Backward never reads the input: runs in place.
"""
import numpy as np

from .base import canonical_axis
from .group_norm import GroupedNorm


class LayerNorm(GroupedNorm):
    """Layer normalization (Ba, Kiros and Hinton, 2016) over the axes from `axis` on."""

    type = "LayerNorm"

    def read_param(self):
        p = self.param.layer_norm_param
        self.axis = p.axis
        return p

    def layout(self, shape):
        axis = canonical_axis(self.axis, len(shape), self)
        items = int(np.prod(shape[:axis], dtype=np.int64))
        values = int(np.prod(shape[axis:], dtype=np.int64))
        return items, values, 1, 1

    def affine_shape(self, shape):
        return shape[canonical_axis(self.axis, len(shape), self):]
