"""Crop: y = x[..., o_a : o_a + s_a, ...] for every axis a from `axis` on, where s is
the shape of the second bottom and o the offsets; dx = dy in that window, 0
elsewhere  (Caffe's Crop).

offset: none (all 0), one for every cropped axis, or one per cropped axis. The
reference (bottom 1) gives only its shape: its gradient is zero, and the
net need not ask for it (allow_backward says no). The copies are
strided block copies, memory speed in NumPy/CuPy slicing.
"""
from ..proto.errors import NetError
from .base import Layer, canonical_axis


class Crop(Layer):
    """Cut the first bottom to the second's shape on the axes from `axis` on."""

    type = "Crop"
    bottoms = 2
    tops = 1

    def setup(self, bottom, top):
        p = self.param.crop_param
        if any(t is b for t in top for b in bottom):
            raise NetError(f"layer '{self.name}' (Crop) cannot run in place")
        self.axis_param = p.axis
        self.offsets = [int(o) for o in p.offset]

    def allow_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        shape, ref = bottom[0].shape, bottom[1].shape
        if len(shape) != len(ref):
            raise self.shape_error(f"bottom 0 {shape} and the reference bottom 1 {ref} must "
                                   "have the same number of axes")
        axis = canonical_axis(self.axis_param, len(shape), self)
        cropped = len(shape) - axis
        if len(self.offsets) > 1 and len(self.offsets) != cropped:
            raise NetError(f"layer '{self.name}' (Crop): {len(self.offsets)} offsets given "
                           f"for the {cropped} axes from axis {axis} of {shape}; give one "
                           "for all, or one per cropped axis")
        where = [slice(None)] * axis
        top_shape = list(shape[:axis])
        for a in range(axis, len(shape)):
            if not self.offsets:
                offset = 0
            elif len(self.offsets) == 1:
                offset = self.offsets[0]
            else:
                offset = self.offsets[a - axis]
            if offset + ref[a] > shape[a]:
                raise self.shape_error(
                    f"offset {offset} on axis {a} leaves fewer than the reference's {ref[a]} "
                    f"values of bottom shape {shape} (reference shape {ref})")
            where.append(slice(offset, offset + ref[a]))
            top_shape.append(ref[a])
        self.where = tuple(where)
        top[0].reshape(tuple(top_shape))

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.where]

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[1]:
            # The top does not depend on the reference's values, only its shape.
            bottom[1].diff[...] = 0
        if propagate_down[0]:
            dx = bottom[0].diff
            dx[...] = 0
            dx[self.where] = top[0].diff

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
