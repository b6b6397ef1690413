"""ArgMax: the indices (or values) of the top_k largest entries  (Caffe's ArgMax).

With `axis`: along that axis, the top keeps the bottom's shape with that axis
replaced by top_k, holding indices, or the values themselves when out_max_val.
Without `axis`: over all of each item's values (everything after the first
axis); the top is (N, 1, top_k, 1, ...) of indices, or (N, 2, top_k, 1, ...)
with the indices in channel 0 and the values in channel 1 when out_max_val (at
least 3 axes, more when the bottom has more, all of them 1).

Order: largest value first; among equal values the larger index comes first
(Caffe sorts (value, index) pairs in descending order). No backward.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from .backend import array_module
from .base import Layer, canonical_axis
from .kernels import arena
from .kernels.parallel cimport PARALLEL_WORK


def top_k_along(const floating[:, :, ::1] x, floating[:, :, ::1] values,
                Py_ssize_t[:, :, ::1] indices):
    """values/indices[o, i, :k] = the k largest x[o, :, i], largest first, ties to the larger index."""
    cdef Py_ssize_t outer = x.shape[0], dim = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t k = values.shape[2], p, o, i, j, filled, pos
    cdef floating v
    with nogil:
        for p in prange(outer * inner, schedule="static",
                        use_threads_if=outer * inner * dim >= PARALLEL_WORK):
            o = p // inner
            i = p - o * inner
            filled = 0
            for j in range(dim):
                v = x[o, j, i]
                # j rises, so (v, j) beats every kept pair whose value is <= v.
                if filled == k and v < values[o, i, k - 1]:
                    continue
                pos = filled if filled < k else k - 1
                while pos > 0 and v >= values[o, i, pos - 1]:
                    values[o, i, pos] = values[o, i, pos - 1]
                    indices[o, i, pos] = indices[o, i, pos - 1]
                    pos = pos - 1
                values[o, i, pos] = v
                indices[o, i, pos] = j
                if filled < k:
                    filled = filled + 1


class ArgMax(Layer):
    """Indices (and optionally values) of the top_k largest entries."""

    type = "ArgMax"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.argmax_param
        if p.top_k < 1:
            raise NetError(f"layer '{self.name}' (ArgMax): argmax_param.top_k must be at "
                           f"least 1, got {p.top_k}")
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (ArgMax) cannot run in place")
        self.top_k = p.top_k
        self.out_max_val = p.out_max_val
        self.has_axis = p.HasField("axis")
        self.axis_param = p.axis

    def allow_backward(self, bottom_index):
        return False

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if self.has_axis:
            axis = canonical_axis(self.axis_param, len(shape), self)
            outer = int(np.prod(shape[:axis], dtype=np.int64))
            dim = shape[axis]
            inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
            where = f"axis {axis} of length {dim}"
            top_shape = shape[:axis] + (self.top_k,) + shape[axis + 1:]
        else:
            if not shape:
                raise self.shape_error("the bottom is a 0-d scalar; it has no items")
            outer, dim, inner = shape[0], int(np.prod(shape[1:], dtype=np.int64)), 1
            where = f"the {dim} values per item"
            top_shape = [1] * max(len(shape), 3)
            top_shape[0] = shape[0]
            top_shape[1] = 2 if self.out_max_val else 1
            top_shape[2] = self.top_k
            top_shape = tuple(top_shape)
        if self.top_k > dim:
            raise self.shape_error(f"top_k {self.top_k} exceeds {where} of bottom shape "
                                   f"{shape}")
        self.dims = (outer, dim, inner)
        top[0].reshape(top_shape)

    def _write(self, values, indices, top):
        """Lay (outer, inner, k) values and indices out in the top as Caffe does."""
        outer, dim, inner = self.dims
        y = top[0].data
        if self.has_axis:
            chosen = values if self.out_max_val else indices
            y.reshape(outer, self.top_k, inner)[...] = chosen.transpose(0, 2, 1)
        else:
            y = y.reshape(outer, -1, self.top_k)
            y[:, 0] = indices.reshape(outer, self.top_k)
            if self.out_max_val:
                y[:, 1] = values.reshape(outer, self.top_k)

    def forward_cpu(self, bottom, top):
        outer, dim, inner = self.dims
        x = bottom[0].data
        with arena.scratch() as take:
            values = take((outer, inner, self.top_k), x.dtype)
            indices = take((outer, inner, self.top_k), np.intp)
            top_k_along(x.reshape(self.dims), values, indices)
            self._write(values, indices, top)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        outer, dim, inner = self.dims
        # Descending by value, ties to the larger index: a stable sort of the
        # negated values with the axis reversed.
        flipped = bottom[0].data.reshape(self.dims)[:, ::-1, :]
        order = xp.argsort(-flipped, axis=1, kind="stable")[:, :self.top_k, :]
        values = xp.take_along_axis(flipped, order, axis=1).transpose(0, 2, 1)
        indices = (dim - 1 - order).transpose(0, 2, 1)
        self._write(values, indices, top)

    def backward_cpu(self, top, propagate_down, bottom):
        """ArgMax takes no gradient (Caffe raises if asked for one)."""
        if propagate_down[0]:
            raise NetError(f"layer '{self.name}' (ArgMax) has no backward")

    backward_gpu = backward_cpu
