"""DummyData: tops filled by fillers, with no bottoms  (Caffe's DummyData).

Shapes come from `shape` (one per top, or one for all) or the legacy
num/channels/height/width lists (each of length 1 or one per top). Fillers:
none (constant 0), one for all tops, or one per top. As in Caffe, a top whose
filler is "constant" is filled once; every other top is refilled each forward.
"""

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from . import fillers
from .base import Layer


def _fill(blob, filler):
    """Fill blob.data on the host (a data source's forward runs there, in every mode)."""
    fillers.fill(blob.data, filler)


class DummyData(Layer):
    """Tops of fixed shapes filled by fillers (constant ones once, random ones each forward)."""

    type = "DummyData"
    bottoms = 0
    reshape_by_shapes = False       # the batch's shape is the layer's to say, every time
    tops = (1, None)

    def setup(self, bottom, top):
        p = self.param.dummy_data_param
        n = len(top)
        self.shapes = self._shapes(p, n)
        if len(p.data_filler) not in (0, 1, n):
            raise NetError(f"layer '{self.name}' (DummyData): {len(p.data_filler)} data_filler "
                           f"given for {n} tops; give none, one, or one per top")
        if p.data_filler:
            self.fillers = [p.data_filler[i if len(p.data_filler) > 1 else 0] for i in range(n)]
        else:
            self.fillers = [pb.FillerParameter(type="constant", value=0.0)] * n
        self.refill = [f.type != "constant" for f in self.fillers]
        for t, shape, f in zip(top, self.shapes, self.fillers):
            t.reshape(shape)
            _fill(t, f)

    def _shapes(self, p, n):
        legacy = (p.num, p.channels, p.height, p.width)
        if p.shape and any(legacy):
            raise NetError(f"layer '{self.name}' (DummyData): give either shape or the legacy "
                           "num/channels/height/width, not both")
        if p.shape:
            if len(p.shape) not in (1, n):
                raise NetError(f"layer '{self.name}' (DummyData): {len(p.shape)} shapes given "
                               f"for {n} tops; give one per top, or one for all")
            shapes = [tuple(int(d) for d in p.shape[i if len(p.shape) > 1 else 0].dim)
                      for i in range(n)]
        else:
            for name, values in zip(("num", "channels", "height", "width"), legacy):
                if len(values) not in (1, n):
                    raise NetError(f"layer '{self.name}' (DummyData): {len(values)} {name} "
                                   f"given for {n} tops; give one per top, or one for all")
            shapes = [tuple(int(v[i if len(v) > 1 else 0]) for v in legacy) for i in range(n)]
        for shape in shapes:
            if any(d < 0 for d in shape):
                raise NetError(f"layer '{self.name}' (DummyData): negative dimension in "
                               f"shape {shape}")
        return shapes

    def reshape(self, bottom, top):
        for t, shape, f in zip(top, self.shapes, self.fillers):
            if t.shape != shape:
                t.reshape(shape)
                _fill(t, f)

    def forward_cpu(self, bottom, top):
        for t, f, refill in zip(top, self.fillers, self.refill):
            if refill:
                _fill(t, f)

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing: DummyData has no bottoms."""

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
