"""Scale: y = x * s (+ b), s and b broadcast over the axes of x they do not cover  (Caffe's Scale).

x is viewed as (outer, dim, inner) as in Bias: s covers the axes [axis, axis + s.ndim).
s is a learnable blob (one bottom; shape x.shape[axis:axis + num_axes], num_axes -1 = to
the end; filler default constant 1) or bottom 1, which then takes a gradient.
bias_term adds a learnable b of s's shape (bias_filler, default constant 0); Caffe does
that with an inner Bias layer, here it is the same arithmetic done directly.
Backward: dx = dy * s, ds = sum of dy * x over outer and inner, db = sum of dy.
Runs in place: x is kept for ds when the top is the bottom.
"""
from . import fillers
from .base import Layer, broadcast_dims, param_blob_shape
from .kernels.elementwise import broadcast, sum_outer_inner


class Scale(Layer):
    """Multiplies by a (learnable or second-bottom) scale along axis, optionally adds a bias.

    blobs: [scale] or [scale, bias] with one bottom; [] or [bias] with two.
    """

    type = "Scale"
    keeps_input = True          # in place, the scale's gradient needs the input
    bottoms = (1, 2)
    tops = 1

    def setup(self, bottom, top):
        p = self.param.scale_param
        self.axis = p.axis
        self.bias_term = p.bias_term
        two = len(bottom) == 2
        if two:
            operand_shape = bottom[1].shape
        else:
            operand_shape = param_blob_shape(self, bottom[0].shape, p.axis, p.num_axes)
        wanted = ([] if two else [operand_shape]) + ([operand_shape] if self.bias_term else [])
        if not self.blobs:
            self.blobs = [self.new_blob(shape) for shape in wanted]
            if not two:
                if p.HasField("filler"):
                    fillers.fill(self.blobs[0].data, p.filler)
                else:
                    self.blobs[0].data[...] = 1
            if self.bias_term:
                fillers.fill(self.blobs[len(self.blobs) - 1].data, p.bias_filler)
        elif [b.shape for b in self.blobs] != wanted:
            raise self.shape_error(f"expected param blobs of shapes {wanted} (bottoms: "
                                   f"{len(bottom)}, bias_term: {str(self.bias_term).lower()}), "
                                   f"got {[b.shape for b in self.blobs]}")

    def _scale(self, bottom):
        return bottom[1] if len(bottom) == 2 else self.blobs[0]

    def _bias(self):
        return self.blobs[len(self.blobs) - 1]

    def reshape(self, bottom, top):
        scale = self._scale(bottom)
        self.dims = broadcast_dims(self, bottom[0].shape, scale.shape, self.axis)
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        self.keep_input(bottom, top)
        y = top[0].data.reshape(self.dims)
        broadcast(bottom[0].data.reshape(self.dims), self._scale(bottom).data.reshape(-1), y,
                  multiply=True)
        if self.bias_term:
            broadcast(y, self._bias().data.reshape(-1), y)

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        x = self.input_data(bottom, top).reshape(self.dims)
        scale = self._scale(bottom)
        if self.bias_term:
            sum_outer_inner(dy, self._bias().diff.reshape(-1), True)
        if len(bottom) == 2:
            if propagate_down[1]:
                sum_outer_inner(dy, scale.diff.reshape(-1), False, x)
        else:
            sum_outer_inner(dy, scale.diff.reshape(-1), True, x)
        if propagate_down[0]:
            broadcast(dy, scale.data.reshape(-1), bottom[0].diff.reshape(self.dims), multiply=True)

    def forward_gpu(self, bottom, top):
        self.keep_input(bottom, top)
        dim = self.dims[1]
        y = bottom[0].data.reshape(self.dims) * self._scale(bottom).data.reshape(1, dim, 1)
        if self.bias_term:
            y = y + self._bias().data.reshape(1, dim, 1)
        top[0].data[...] = y.reshape(top[0].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        dim = self.dims[1]
        dy = top[0].diff.reshape(self.dims)
        x = self.input_data(bottom, top).reshape(self.dims)
        scale = self._scale(bottom)
        if self.bias_term:
            self._bias().diff += dy.sum(axis=(0, 2)).reshape(scale.shape)
        ds = (dy * x).sum(axis=(0, 2)).reshape(scale.shape)
        if len(bottom) == 2:
            if propagate_down[1]:
                scale.diff[...] = ds
        else:
            scale.diff += ds
        if propagate_down[0]:
            bottom[0].diff[...] = (dy * scale.data.reshape(1, dim, 1)).reshape(bottom[0].shape)
