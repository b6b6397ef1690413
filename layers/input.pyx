"""Input: tops of the shapes input_param gives, whose values the user writes  (Caffe's Input).

Forward computes nothing and never overwrites the tops. As in Caffe, the shape
is applied once at setup; reshape leaves the tops alone, so a user may reshape
an input blob (pycaffe's ``net.blobs['data'].reshape(...)``) and have it stick.
"""
from ..proto.errors import NetError
from .base import Layer
from .kernels.step import Step


class Input(Layer):
    """The net's entry point: one shape per top, or one shape shared by all tops."""

    type = "Input"
    bottoms = 0
    tops = (1, None)

    def setup(self, bottom, top):
        shapes = [tuple(int(d) for d in s.dim) for s in self.param.input_param.shape]
        if len(shapes) not in (0, 1, len(top)):
            raise NetError(f"layer '{self.name}' (Input): {len(shapes)} shapes given for "
                           f"{len(top)} tops; give one per top, or one for all")
        for shape in shapes:
            if any(d < 0 for d in shape):
                raise NetError(f"layer '{self.name}' (Input): negative dimension in "
                               f"shape {shape}")
        for i, t in enumerate(top):
            if shapes:
                t.reshape(shapes[i if len(shapes) > 1 else 0])

    def reshape(self, bottom, top):
        """Nothing: the tops keep whatever shape they were last given."""

    def forward_cpu(self, bottom, top):
        """Nothing: the user's values are the output."""

    def step(self, bottom, top):
        return Step()               # nothing to run

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing: an Input has no bottoms."""

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
