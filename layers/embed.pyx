"""Embed: y[..., :] = W[x[...], :] (+ b), a lookup table  (Caffe's Embed).

The bottom holds indices as float values, each an integer in [0, input_dim); the top
is bottom.shape + (num_output,). W is (input_dim, num_output), b is (num_output,).
Backward: dW[x[m], :] += dy[m, :] (rows hit twice accumulate), db += sum over m of dy;
the indices take no gradient.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from . import fillers
from .backend import array_module
from .base import Layer
from .kernels.elementwise import broadcast, sum_outer_inner
from .kernels.parallel cimport PARALLEL_WORK


def scatter_rows(const Py_ssize_t[::1] index, const floating[:, ::1] dy, floating[:, ::1] dw):
    """dw[index[m], j] += dy[m, j]; each thread owns whole columns, so no two write alike."""
    cdef Py_ssize_t m, j, rows = dy.shape[0], cols = dy.shape[1]
    with nogil:
        for j in prange(cols, schedule="static", use_threads_if=rows * cols >= PARALLEL_WORK):
            for m in range(rows):
                dw[index[m], j] += dy[m, j]


class Embed(Layer):
    """A learned lookup table from integer indices to num_output-vectors; blobs [W] or [W, b]."""

    type = "Embed"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.embed_param
        for field in ("num_output", "input_dim"):
            if getattr(p, field) <= 0:
                raise NetError(f"layer '{self.name}' (Embed): embed_param.{field} must be "
                               f"positive, got {getattr(p, field)}")
        self.num_output = p.num_output
        self.input_dim = p.input_dim
        self.bias_term = p.bias_term
        wanted = [(p.input_dim, p.num_output)] + ([(p.num_output,)] if p.bias_term else [])
        if not self.blobs:
            self.blobs = [self.new_blob(shape) for shape in wanted]
            fillers.fill(self.blobs[0].data, p.weight_filler)
            if self.bias_term:
                fillers.fill(self.blobs[1].data, p.bias_filler)
        elif [b.shape for b in self.blobs] != wanted:
            raise self.shape_error(f"expected param blobs of shapes {wanted} (bias_term: "
                                   f"{str(self.bias_term).lower()}), got "
                                   f"{[b.shape for b in self.blobs]}")

    def allow_backward(self, bottom_index):
        return False

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def _indices(self, bottom):
        """The bottom as integer row indices; a ShapeError naming the first bad one."""
        xp = array_module(bottom[0].data)
        values = bottom[0].data.reshape(-1)
        bad = (values != xp.trunc(values)) | (values < 0) | (values >= self.input_dim)
        if bool(bad.any()):
            k = int(xp.argmax(bad))
            raise self.shape_error(f"index {float(values[k]):g} at position {k} of the bottom "
                                   f"(shape {bottom[0].shape}) is not an integer in "
                                   f"[0, {self.input_dim})")
        return values.astype(np.intp)

    def forward_cpu(self, bottom, top):
        index = self._indices(bottom)
        y = top[0].data.reshape(index.size, self.num_output)
        np.take(self.blobs[0].data, index, axis=0, out=y)
        if self.bias_term:
            y3 = y.reshape(index.size, self.num_output, 1)
            broadcast(y3, self.blobs[1].data, y3)

    def backward_cpu(self, top, propagate_down, bottom):
        index = self._indices(bottom)
        dy = top[0].diff.reshape(index.size, self.num_output)
        scatter_rows(index, dy, self.blobs[0].diff)
        if self.bias_term:
            sum_outer_inner(dy.reshape(index.size, self.num_output, 1), self.blobs[1].diff,
                            True)

    def forward_gpu(self, bottom, top):
        index = self._indices(bottom)
        y = self.blobs[0].data[index]
        if self.bias_term:
            y = y + self.blobs[1].data
        top[0].data[...] = y.reshape(top[0].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(top[0].diff)
        index = self._indices(bottom)
        dy = top[0].diff.reshape(index.size, self.num_output)
        if xp is np:
            np.add.at(self.blobs[0].diff, index, dy)
        else:
            import cupyx
            cupyx.scatter_add(self.blobs[0].diff, index, dy)
        if self.bias_term:
            self.blobs[1].diff += dy.sum(axis=0)
