"""Parameter: y = w, one learnable blob of parameter_param.shape; dw += dy
(Caffe's Parameter).

The top's data is the blob's data (no copy); its diff is its own, added to the
blob's diff in backward, so the gradient accumulates like every param's.
The blob starts at zero (Caffe gives it no filler) unless weights are given.
"""
from ..proto.errors import NetError
from .base import Layer
from .kernels.elementwise import add_into


class Parameter(Layer):
    """Expose one learnable blob as the layer's top."""

    type = "Parameter"
    bottoms = 0
    reshape_by_shapes = False       # re-shares the param blob, which a solver may replace
    tops = 1

    def setup(self, bottom, top):
        shape = tuple(int(d) for d in self.param.parameter_param.shape.dim)
        if any(d < 0 for d in shape):
            raise NetError(f"layer '{self.name}' (Parameter): parameter_param.shape "
                           f"{shape} has a negative dim")
        if not self.blobs:
            self.blobs = [self.new_blob(shape)]
        elif self.blobs[0].shape != shape:
            raise self.shape_error(f"the given weights have shape {self.blobs[0].shape}, "
                                   f"parameter_param.shape is {shape}")

    def reshape(self, bottom, top):
        # Re-share every time: the solver may have given the blob a new array.
        top[0].reshape(self.blobs[0].shape)
        top[0].share_data(self.blobs[0])

    def forward_cpu(self, bottom, top):
        """Nothing to compute while the top shares the blob's data; else copy."""
        if not top[0].shares_data_with(self.blobs[0]):
            top[0].data[...] = self.blobs[0].data

    forward_gpu = forward_cpu

    def backward_cpu(self, top, propagate_down, bottom):
        add_into(self.blobs[0].diff.reshape(-1), top[0].diff.reshape(-1))

    def backward_gpu(self, top, propagate_down, bottom):
        self.blobs[0].diff += top[0].diff
