"""BatchReindex: y[i] = x[idx[i]] over the first axis; dx[n] = sum of dy[i] over the i
with idx[i] == n (0 for items nobody picked)  (Caffe's BatchReindex).

bottom[1] is a vector of item indices (float values truncated to int, each in
[0, N)); it takes no gradient. Forward is a NumPy/CuPy gather; backward is a
Cython scatter-add, parallel over the values of an item so repeated indices
never race.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from .backend import array_module
from .base import Layer
from .kernels.parallel cimport PARALLEL_WORK


def scatter_add_items(const floating[:, ::1] dy, const Py_ssize_t[::1] index,
                      floating[:, ::1] dx):
    """dx = 0, then dx[index[i], :] += dy[i, :] for every i."""
    cdef Py_ssize_t i, j, n = dy.shape[0], inner = dy.shape[1], items = dx.shape[0]
    with nogil:
        for j in prange(inner, schedule="static",
                        use_threads_if=inner * (items + n) >= PARALLEL_WORK):
            for i in range(items):
                dx[i, j] = 0
            for i in range(n):
                dx[index[i], j] += dy[i, j]


class BatchReindex(Layer):
    """Pick (and repeat, reorder) items of the first bottom by the indices in the second."""

    type = "BatchReindex"
    bottoms = 2
    tops = 1

    def setup(self, bottom, top):
        if any(t is b for t in top for b in bottom):
            raise NetError(f"layer '{self.name}' (BatchReindex) cannot run in place")

    def allow_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        if len(bottom[1].shape) != 1:
            raise self.shape_error(f"the indices (bottom 1) must be a vector, got shape "
                                   f"{bottom[1].shape}")
        if not bottom[0].shape:
            raise self.shape_error("bottom 0 is a 0-d scalar; it has no items to pick")
        top[0].reshape(bottom[1].shape + bottom[0].shape[1:])

    def _index(self, bottom):
        """The indices as integers, after checking each lies in [0, N) as Caffe does."""
        idx = bottom[1].data
        xp = array_module(idx)
        items = bottom[0].shape[0]
        bad = (idx < 0) | (idx >= items)
        if bool(bad.any()):
            k = int(xp.argmax(bad))
            raise self.shape_error(f"index {float(idx[k]):g} at position {k} of the indices "
                                   f"(shape {bottom[1].shape}) is outside [0, {items}), the "
                                   f"items of bottom 0 (shape {bottom[0].shape})")
        return idx.astype(np.intp)

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].data[self._index(bottom)]

    forward_gpu = forward_cpu

    def backward_cpu(self, top, propagate_down, bottom):
        self._check_down(propagate_down)
        if propagate_down[0]:
            n, items, inner = self._dims(bottom)
            scatter_add_items(top[0].diff.reshape(n, inner), self._index(bottom),
                              bottom[0].diff.reshape(items, inner))

    def backward_gpu(self, top, propagate_down, bottom):
        self._check_down(propagate_down)
        if propagate_down[0]:
            # A one-hot matrix product sums repeated indices without atomics.
            xp = array_module(top[0].diff)
            n, items, inner = self._dims(bottom)
            picks = self._index(bottom)[:, None] == xp.arange(items)[None, :]
            xp.matmul(picks.T.astype(top[0].diff.dtype), top[0].diff.reshape(n, inner),
                      out=bottom[0].diff.reshape(items, inner))

    def _dims(self, bottom):
        """(picked items, bottom items, values per item)."""
        shape = bottom[0].shape
        return bottom[1].shape[0], shape[0], int(np.prod(shape[1:], dtype=np.int64))

    def _check_down(self, propagate_down):
        if propagate_down[1]:
            raise NetError(f"layer '{self.name}' (BatchReindex) cannot backpropagate to "
                           "its indices (bottom 1)")
