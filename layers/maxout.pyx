"""Maxout: y[n, j, ...] = max over p < k of x[n, j * k + p, ...]  (k = num_pieces).

cyffe's own layer (Caffe has none), as in Goodfellow et al., "Maxout Networks" (2013): the
bottom (N, C, ...) has C divisible by k, and top channel j is the maximum over the k
CONSECUTIVE bottom channels j * k .. j * k + k - 1 (not over channels strided by C / k),
so a top of shape (N, C / k, ...). Forward records which piece won (ties go to the first);
backward routes dy to that channel and writes 0 to the others. The top has fewer channels
than the bottom, so the layer does not run in place.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from .backend import array_module
from .base import Layer, channel_split
from .kernels.parallel cimport PARALLEL_WORK


def maxout_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int[:, :, ::1] piece):
    """x (N, C, S) -> y (N, C / k, S) and the winning piece (0 .. k - 1) of each output."""
    cdef Py_ssize_t r, n, j, p, s, first
    cdef Py_ssize_t outputs = y.shape[1], spatial = y.shape[2]
    cdef Py_ssize_t pieces = x.shape[1] // outputs if outputs else 0
    cdef floating best, v
    cdef int won
    with nogil:
        for r in prange(x.shape[0] * outputs, schedule="static",
                        use_threads_if=x.shape[0] * x.shape[1] * spatial >= PARALLEL_WORK):
            n = r // outputs
            j = r % outputs
            first = j * pieces
            for s in range(spatial):
                best = x[n, first, s]
                won = 0
                for p in range(1, pieces):
                    v = x[n, first + p, s]
                    if v > best:
                        best = v
                        won = <int>p
                y[n, j, s] = best
                piece[n, j, s] = won


def maxout_backward(const floating[:, :, ::1] dy, const int[:, :, ::1] piece,
                    floating[:, :, ::1] dx):
    """dx[n, j * k + p, s] = dy[n, j, s] where p won, 0 elsewhere (every dx value written)."""
    cdef Py_ssize_t r, n, j, p, s, first
    cdef Py_ssize_t outputs = dy.shape[1], spatial = dy.shape[2]
    cdef Py_ssize_t pieces = dx.shape[1] // outputs if outputs else 0
    with nogil:
        for r in prange(dy.shape[0] * outputs, schedule="static",
                        use_threads_if=dx.shape[0] * dx.shape[1] * spatial >= PARALLEL_WORK):
            n = r // outputs
            j = r % outputs
            first = j * pieces
            for p in range(pieces):
                for s in range(spatial):
                    dx[n, first + p, s] = dy[n, j, s] if piece[n, j, s] == p else 0


class Maxout(Layer):
    """The maximum over groups of num_pieces consecutive channels."""

    type = "Maxout"
    bottoms = tops = 1

    def setup(self, bottom, top):
        self.num_pieces = self.param.maxout_param.num_pieces
        if self.num_pieces < 1:
            raise NetError(f"layer '{self.name}' (Maxout): num_pieces must be at least 1, "
                           f"got {self.num_pieces}")
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (Maxout) does not run in place: its top has "
                           f"num_pieces ({self.num_pieces}) times fewer channels than its bottom")
        self.piece = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        num, channels, spatial = channel_split(self, shape, self.num_pieces,
                                               f"groups of num_pieces {self.num_pieces}")
        outputs = channels // self.num_pieces
        self.bottom_dims = (num, channels, spatial)
        self.top_dims = (num, outputs, spatial)
        top[0].reshape((num, outputs) + tuple(shape[2:]))

    def forward_cpu(self, bottom, top):
        if self.piece is None or self.piece.shape != self.top_dims or \
                type(self.piece) is not np.ndarray:
            self.piece = np.empty(self.top_dims, np.intc)
        maxout_forward(bottom[0].data.reshape(self.bottom_dims),
                       top[0].data.reshape(self.top_dims), self.piece)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            maxout_backward(top[0].diff.reshape(self.top_dims), self.piece,
                            bottom[0].diff.reshape(self.bottom_dims))

    def _pieces(self, array):
        num, outputs, spatial = self.top_dims
        return array.reshape(num, outputs, self.num_pieces, spatial)

    def forward_gpu(self, bottom, top):
        x = self._pieces(bottom[0].data)
        self.piece = x.argmax(axis=2)          # the first maximum, as the Cython kernel
        top[0].data[...] = x.max(axis=2).reshape(top[0].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = array_module(top[0].diff)
        dy = top[0].diff.reshape(self.top_dims)
        won = xp.arange(self.num_pieces).reshape(1, 1, -1, 1) == self.piece[:, :, None, :]
        bottom[0].diff[...] = (won * dy[:, :, None, :]).reshape(bottom[0].shape)
