"""Scratch memory for the length of one call: a growable arena per thread.

Buffers a kernel needs only while it runs (a padded copy, im2col columns, a softmax's row
maxima, a mask nobody reads afterwards) come from the calling thread's arena instead of
living on each layer, so a net of fifty layers holds one block, the size of its largest
single need, per thread:

    with arena.scratch() as take:
        tmp = take((n, c), np.float32)        # uninitialized, 64-byte aligned
        ...                                   # valid until the with block ends

Frames nest: a kernel that opens its own frame inside its caller's takes memory past the
caller's buffers, and gives back only its own when it ends. When a frame needs more than
the block holds, the call gets fresh memory and the block grows, to the most any frame
stack has needed, when the outermost frame ends. The arena is a threading.local: two
Nets running in two threads never share it. An array taken must not outlive its frame
(the next frame reuses the memory); keep anything a later call reads on the layer.
"""
import math
import threading

import numpy as np

ALIGN = 64                    # bytes: a cache line, and an AVX-512 register

_local = threading.local()


class Arena:
    """One thread's scratch block and the stack of frames open on it."""

    __slots__ = ("block", "used", "needed", "marks")

    def __init__(self):
        self.block = np.empty(0, np.uint8)
        self.used = 0                 # bytes handed out by the open frames
        self.needed = 0               # the most the open frames have asked for at once
        self.marks = []               # `used` when each open frame began

    def __enter__(self):
        self.marks.append(self.used)
        return self.take

    def __exit__(self, *exc):
        self.used = self.marks.pop()
        if not self.marks and self.needed > self.block.size:
            self.block = aligned(self.needed)
        return False

    def take(self, shape, dtype):
        """An uninitialized array of shape and dtype, valid until the open frame ends."""
        if not self.marks:
            raise RuntimeError("arena.take outside a frame: use `with arena.scratch() as take`")
        dtype = np.dtype(dtype)
        start = -(-self.used // ALIGN) * ALIGN
        end = start + math.prod(shape if type(shape) is tuple else (shape,)) * dtype.itemsize
        self.used = end
        if end > self.needed:
            self.needed = end
        if end > self.block.size:
            return np.ndarray(shape, dtype, aligned(end - start))
        # One constructor call: taking scratch is on every small layer's path.
        return np.ndarray(shape, dtype, self.block, start)

    @property
    def capacity(self):
        """The block's size in bytes."""
        return self.block.size


def scratch():
    """This thread's arena; `with scratch() as take` opens a frame (see the module docstring)."""
    arena = getattr(_local, "arena", None)
    if arena is None:
        arena = _local.arena = Arena()
    return arena


def aligned(size):
    """size bytes (uint8) starting on an ALIGN boundary."""
    raw = np.empty(size + ALIGN, np.uint8)
    offset = -raw.ctypes.data % ALIGN
    return raw[offset:offset + size]
