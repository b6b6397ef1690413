"""MemoryData: batches cut from arrays given from Python  (Caffe's MemoryData layer).

`reset(data, labels)` (or pycaffe's ``net.set_input_arrays``) hands the layer
(N, C, H, W) data and N labels, N a multiple of batch_size; each forward emits the
next batch_size rows, wrapping around. Like Caffe's Reset, arrays are not
transformed: a transform_param is an error. Tops: data (batch_size, C, H, W)
and labels (batch_size,).
"""
import numpy as np

from ..proto.errors import NetError, ShapeError
from .backend import array_module
from .base import Layer


class MemoryData(Layer):
    """Rows of user arrays, batch_size at a time."""

    type = "MemoryData"
    bottoms = 0
    reshape_by_shapes = False       # batch_size and the arrays are the user's to change
    tops = 2

    def setup(self, bottom, top):
        p = self.param.memory_data_param
        self.batch_size = p.batch_size
        self.item_shape = (p.channels, p.height, p.width)
        if min((self.batch_size,) + self.item_shape) <= 0:
            raise NetError(f"layer '{self.name}' (MemoryData): batch_size, channels, height "
                           "and width must be given and positive in memory_data_param")
        if self.param.HasField("transform_param"):
            raise NetError(f"layer '{self.name}' (MemoryData): arrays given to reset are not "
                           "transformed; drop transform_param")
        self.data = self.labels = None
        self.pos = 0

    def reset(self, data, labels):
        """Serve batches from data (N, C, H, W) and labels (N,), from the first row."""
        data = np.ascontiguousarray(data, dtype=self.dtype)
        labels = np.ascontiguousarray(labels, dtype=self.dtype).reshape(-1)
        where = f"layer '{self.name}' (MemoryData)"
        if data.ndim != 4 or data.shape[1:] != self.item_shape:
            raise ShapeError(f"{where}: data must be (N, {', '.join(map(str, self.item_shape))}),"
                             f" got {data.shape}")
        if len(labels) != len(data):
            raise ShapeError(f"{where}: {len(data)} data rows but {len(labels)} labels")
        if len(data) == 0 or len(data) % self.batch_size:
            raise ShapeError(f"{where}: the number of rows ({len(data)}) must be a positive "
                             f"multiple of batch_size {self.batch_size}")
        self.data, self.labels, self.pos = data, labels, 0

    def skip(self, batches):
        """Move on as if `batches` forwards had run."""
        if self.data is not None:
            self.pos = (self.pos + batches * self.batch_size) % len(self.data)

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + self.item_shape)
        top[1].reshape((self.batch_size,))

    def forward_cpu(self, bottom, top):
        if self.data is None:
            raise NetError(f"layer '{self.name}' (MemoryData): no arrays yet; call "
                           "net.set_input_arrays(data, labels) or the layer's reset first")
        xp = array_module(top[0].data)
        rows = slice(self.pos, self.pos + self.batch_size)
        top[0].data[...] = xp.asarray(self.data[rows])
        top[1].data[...] = xp.asarray(self.labels[rows])
        self.pos = (self.pos + self.batch_size) % len(self.data)

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing: MemoryData has no bottoms."""

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
