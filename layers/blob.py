"""Blob: a named-free pair of arrays, data and diff, of one shape."""
import numpy as np


class Blob:
    """Data and its gradient, as Caffe's Blob.

    `data` and `diff` are live arrays: writing into them (``blob.data[...] = x``)
    changes what the net computes. Reshaping to a new element count allocates
    new arrays; reshaping to the same count keeps the memory.
    """

    def __init__(self, shape=(), dtype=np.float32, xp=np):
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.data = xp.zeros(tuple(shape), self.dtype)
        self.diff = xp.zeros(tuple(shape), self.dtype)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def count(self):
        return int(self.data.size)

    @property
    def num(self):
        return self.shape[0]

    @property
    def channels(self):
        return self.shape[1]

    @property
    def height(self):
        return self.shape[2]

    @property
    def width(self):
        return self.shape[3]

    def reshape(self, *shape):
        """Give the blob a new shape; values are kept only if the count is unchanged."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        shape = tuple(int(d) for d in shape)
        if shape == self.shape:
            return
        if any(d < 0 for d in shape):
            raise ValueError(f"negative blob dimension in {shape}")
        size = int(np.prod(shape, dtype=np.int64))
        if size == self.data.size:
            self.data = self.data.reshape(shape)
            self.diff = self.diff.reshape(shape)
        else:
            self.data = self.xp.zeros(shape, self.dtype)
            self.diff = self.xp.zeros(shape, self.dtype)

    def share_data(self, other):
        """Make this blob use other's data array (Caffe's ShareData)."""
        self.data = other.data

    def share_diff(self, other):
        """Make this blob use other's diff array (Caffe's ShareDiff)."""
        self.diff = other.diff

    def __repr__(self):
        return f"Blob(shape={self.shape}, dtype={self.dtype})"
