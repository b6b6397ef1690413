"""Tile: y = x repeated `tiles` times along `axis`, the whole block x[..., axis:, ...]
at a time (numpy.tile, not numpy.repeat); dx = sum of the tiles of dy  (Caffe's Tile).

Viewed as (outer, tiles, inner) with inner = the count from `axis` on, forward is
a broadcast copy (memory speed in NumPy/CuPy); backward sums over the tiles with
a Cython kernel that keeps each inner element's sum in a register.
"""
from cython.parallel import prange
from cython cimport floating

from ..proto.errors import NetError
from .base import Layer, canonical_axis
from .kernels.parallel cimport PARALLEL_WORK


def sum_tiles(const floating[:, :, ::1] dy, floating[:, ::1] dx):
    """dx[o, j] = sum_t dy[o, t, j]."""
    cdef Py_ssize_t o, t, j, k
    cdef Py_ssize_t outer = dy.shape[0], tiles = dy.shape[1], inner = dy.shape[2]
    cdef double acc
    with nogil:
        for k in prange(outer * inner, schedule="static",
                        use_threads_if=outer * inner * tiles >= PARALLEL_WORK):
            o = k // inner
            j = k - o * inner
            acc = 0
            for t in range(tiles):
                acc = acc + dy[o, t, j]
            dx[o, j] = <floating>acc


class Tile(Layer):
    """Repeat the bottom `tiles` times along one axis."""

    type = "Tile"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.tile_param
        if p.tiles < 1:
            raise NetError(f"layer '{self.name}' (Tile): tile_param.tiles must be at least 1, "
                           f"got {p.tiles}")
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (Tile) cannot run in place")
        self.tiles = p.tiles
        self.axis_param = p.axis

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        axis = canonical_axis(self.axis_param, len(shape), self)
        outer = 1
        for d in shape[:axis]:
            outer *= d
        inner = bottom[0].count // outer if outer else 0
        self.dims = (outer, self.tiles, inner)
        top[0].reshape(shape[:axis] + (shape[axis] * self.tiles,) + shape[axis + 1:])

    def forward_cpu(self, bottom, top):
        outer, tiles, inner = self.dims
        top[0].data.reshape(self.dims)[...] = bottom[0].data.reshape(outer, 1, inner)

    forward_gpu = forward_cpu

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            outer, tiles, inner = self.dims
            sum_tiles(top[0].diff.reshape(self.dims), bottom[0].diff.reshape(outer, inner))

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            outer, tiles, inner = self.dims
            top[0].diff.reshape(self.dims).sum(axis=1, out=bottom[0].diff.reshape(outer, inner))
