"""GroupNorm: per item and group of channels, y = (x - mean) / sqrt(var + eps) * scale_c + bias_c.

cyffe's own layer (Caffe has none; the numerics are PyTorch's GroupNorm). The bottom is
(N, C, ...), viewed as (N, C, S); its C channels split into num_groups groups of C / G
consecutive channels, and each (item, group) row (C / G * S values) is normalized by its
mean and biased variance. With `affine` (default), blobs are [scale (C,), bias (C,)], filled
with constant 1 and 0 unless scale_filler / bias_filler say otherwise.

Backward, with h the normalized input, g = dy * scale_c and means over the row:
  dx = (g - mean(g) - h * mean(g * h)) / sqrt(var + eps)
  d scale_c += sum over items and positions of dy * h;  d bias_c += sum of dy.
Forward keeps h and 1 / sqrt(var + eps), so backward never reads the input: runs in place.

The kernels here serve LayerNorm too (one group, S = 1; see layer_norm.pyx).
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating
from libc.math cimport sqrt

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from . import fillers
from .backend import array_module
from .base import Layer, channel_split
from .kernels.parallel cimport PARALLEL_WORK

# At most this many tasks share the scale and bias gradients (each keeps a row of partials).
ITEM_CHUNKS = 32


def group_norm_forward(const floating[:, :, ::1] x, const floating[::1] scale,
                       const floating[::1] bias, floating[:, :, ::1] x_norm,
                       floating[:, :, ::1] y, double[::1] inv_std, Py_ssize_t groups,
                       bint affine, double eps):
    """x (N, C, S) -> x_norm, y; inv_std[n * groups + g] = 1 / sqrt(var + eps). y may be x."""
    cdef Py_ssize_t r, n, g, c, s, c0, c1
    cdef Py_ssize_t channels = x.shape[1], spatial = x.shape[2]
    cdef Py_ssize_t per_group = channels // groups
    cdef double count = per_group * spatial
    cdef double acc, m, d, inv, h, a, b
    with nogil:
        for r in prange(x.shape[0] * groups, schedule="static",
                        use_threads_if=x.shape[0] * channels * spatial >= PARALLEL_WORK):
            n = r // groups
            g = r % groups
            c0 = g * per_group
            c1 = c0 + per_group
            acc = 0
            for c in range(c0, c1):
                for s in range(spatial):
                    acc = acc + x[n, c, s]
            m = acc / count if count > 0 else 0.0
            acc = 0
            for c in range(c0, c1):
                for s in range(spatial):
                    d = x[n, c, s] - m
                    acc = acc + d * d
            inv = 1.0 / sqrt((acc / count if count > 0 else 0.0) + eps)
            inv_std[r] = inv
            for c in range(c0, c1):
                a = scale[c] if affine else 1.0
                b = bias[c] if affine else 0.0
                for s in range(spatial):
                    h = (x[n, c, s] - m) * inv
                    x_norm[n, c, s] = <floating>h
                    y[n, c, s] = <floating>(h * a + b)


def group_norm_backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x_norm,
                        const floating[::1] scale, const double[::1] inv_std,
                        floating[:, :, ::1] dx, Py_ssize_t groups, bint affine):
    """dx per (item, group) row as in the module docstring; dx may be dy."""
    cdef Py_ssize_t r, n, g, c, s, c0, c1
    cdef Py_ssize_t channels = dy.shape[1], spatial = dy.shape[2]
    cdef Py_ssize_t per_group = channels // groups
    cdef double count = per_group * spatial
    cdef double sum_g, sum_gh, a, gi
    with nogil:
        for r in prange(dy.shape[0] * groups, schedule="static",
                        use_threads_if=dy.shape[0] * channels * spatial >= PARALLEL_WORK):
            n = r // groups
            g = r % groups
            c0 = g * per_group
            c1 = c0 + per_group
            sum_g = 0
            sum_gh = 0
            for c in range(c0, c1):
                a = scale[c] if affine else 1.0
                for s in range(spatial):
                    gi = dy[n, c, s] * a
                    sum_g = sum_g + gi
                    sum_gh = sum_gh + gi * x_norm[n, c, s]
            sum_g = sum_g / count
            sum_gh = sum_gh / count
            for c in range(c0, c1):
                a = scale[c] if affine else 1.0
                for s in range(spatial):
                    dx[n, c, s] = <floating>(
                        (dy[n, c, s] * a - sum_g - x_norm[n, c, s] * sum_gh) * inv_std[r])


def affine_gradients(const floating[:, :, ::1] dy, const floating[:, :, ::1] x_norm,
                     double[:, ::1] scale_partial, double[:, ::1] bias_partial):
    """Row t of the partials: sums of dy * x_norm and of dy per channel over chunk t of the items.

    Each task walks its items in memory order (a walk down a channel would jump a whole
    item per step); the caller adds up the chunks.
    """
    cdef Py_ssize_t t, n, c, s
    cdef Py_ssize_t num = dy.shape[0], channels = dy.shape[1], spatial = dy.shape[2]
    cdef Py_ssize_t chunks = scale_partial.shape[0]
    cdef double acc_scale, acc_bias
    with nogil:
        for t in prange(chunks, schedule="static",
                        use_threads_if=num * channels * spatial >= PARALLEL_WORK):
            for c in range(channels):
                scale_partial[t, c] = 0
                bias_partial[t, c] = 0
            for n in range(t * num // chunks, (t + 1) * num // chunks):
                for c in range(channels):
                    acc_scale = 0
                    acc_bias = 0
                    for s in range(spatial):
                        acc_scale = acc_scale + dy[n, c, s] * x_norm[n, c, s]
                        acc_bias = acc_bias + dy[n, c, s]
                    scale_partial[t, c] = scale_partial[t, c] + acc_scale
                    bias_partial[t, c] = bias_partial[t, c] + acc_bias


class GroupedNorm(Layer):
    """Normalizes (item, group) rows of an (N, C, S) view; optional per-channel scale and bias.

    Subclasses say how their parameter message and bottom shape map onto that view:
    read_param() reads the message's own fields and returns it (eps, affine, scale_filler
    and bias_filler are read here); layout(shape) gives (N, C, S, groups); affine_shape(shape)
    the shape of the scale and bias blobs.
    """

    bottoms = tops = 1

    def read_param(self):
        raise NotImplementedError

    def layout(self, shape):
        raise NotImplementedError

    def affine_shape(self, shape):
        raise NotImplementedError

    def setup(self, bottom, top):
        p = self.read_param()
        self.eps, self.affine = p.eps, p.affine
        if self.eps < 0:
            raise NetError(f"layer '{self.name}' ({self.type}): eps must be >= 0, "
                           f"got {self.eps:g}")
        self.layout(bottom[0].shape)
        if not self.affine:
            if self.blobs:
                raise NetError(f"layer '{self.name}' ({self.type}): affine is false, so the "
                               f"layer has no learnable blobs, but {len(self.blobs)} were given")
            return
        shape = tuple(self.affine_shape(bottom[0].shape))
        if not self.blobs:
            self.blobs = [self.new_blob(shape), self.new_blob(shape)]
            for blob, field, value in ((self.blobs[0], "scale_filler", 1.0),
                                       (self.blobs[1], "bias_filler", 0.0)):
                fillers.fill(blob.data, getattr(p, field) if p.HasField(field) else
                             pb.FillerParameter(type="constant", value=value))
            return
        count = int(np.prod(shape))
        if len(self.blobs) != 2 or any(b.count != count for b in self.blobs):
            raise NetError(f"layer '{self.name}' ({self.type}): expected 2 blobs (scale, bias) "
                           f"of shape {shape}, got {[b.shape for b in self.blobs]}")
        for blob in self.blobs:
            blob.reshape(shape)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        num, channels, spatial, self.groups = self.layout(shape)
        self.dims = (num, channels, spatial)
        if self.affine and tuple(self.affine_shape(shape)) != self.blobs[0].shape:
            raise self.shape_error(f"bottom {shape} needs scale and bias of shape "
                                   f"{tuple(self.affine_shape(shape))}, the layer was set up "
                                   f"with {self.blobs[0].shape}")
        top[0].reshape(shape)

    def _affine_views(self, like):
        if self.affine:
            return self.blobs[0].data.reshape(-1), self.blobs[1].data.reshape(-1)
        empty = np.empty(0, like.dtype)
        return empty, empty

    def _keep_buffers(self, x):
        """x_norm (the layer's dtype) and inv_std (float64) on x's device, kept per shape."""
        xp = array_module(x)
        kept = getattr(self, "x_norm", None)
        if kept is None or kept.shape != self.dims or type(kept) is not type(x):
            self.x_norm = xp.empty(self.dims, x.dtype)
            self.inv_std = xp.empty(self.dims[0] * self.groups, np.float64)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data.reshape(self.dims)
        self._keep_buffers(x)
        scale, bias = self._affine_views(x)
        group_norm_forward(x, scale, bias, self.x_norm, top[0].data.reshape(self.dims),
                           self.inv_std, self.groups, self.affine, self.eps)

    def backward_cpu(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        # Params first: in place, the bottom diff overwrites the top diff.
        if self.affine:
            num, channels, _ = self.dims
            chunks = max(1, min(num, ITEM_CHUNKS))
            scale_partial, bias_partial = np.empty((chunks, channels)), np.empty((chunks, channels))
            affine_gradients(dy, self.x_norm, scale_partial, bias_partial)
            self.blobs[0].diff += scale_partial.sum(axis=0).reshape(self.blobs[0].shape)
            self.blobs[1].diff += bias_partial.sum(axis=0).reshape(self.blobs[1].shape)
        if propagate_down[0]:
            scale, _ = self._affine_views(dy)
            group_norm_backward(dy, self.x_norm, scale, self.inv_std,
                                bottom[0].diff.reshape(self.dims), self.groups, self.affine)

    def _rows(self, array):
        num, channels, spatial = self.dims
        return array.reshape(num, self.groups, channels // self.groups * spatial)

    def _per_channel(self, blob):
        return blob.data.reshape(1, -1, 1)

    def forward_gpu(self, bottom, top):
        x = bottom[0].data.reshape(self.dims)
        self._keep_buffers(x)
        rows = self._rows(x)
        mean = rows.mean(axis=2, dtype=np.float64, keepdims=True)
        centered = rows - mean
        var = (centered * centered).mean(axis=2, keepdims=True)
        inv_std = 1.0 / (var + self.eps) ** 0.5
        h = (centered * inv_std).reshape(self.dims)
        self.inv_std[...] = inv_std.reshape(-1)
        self.x_norm[...] = h
        if self.affine:
            h = h * self._per_channel(self.blobs[0]) + self._per_channel(self.blobs[1])
        top[0].data[...] = h.reshape(top[0].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.dims)
        g = dy
        if self.affine:
            self.blobs[0].diff += (dy * self.x_norm).sum(axis=(0, 2), dtype=np.float64).reshape(
                self.blobs[0].shape)
            self.blobs[1].diff += dy.sum(axis=(0, 2), dtype=np.float64).reshape(
                self.blobs[1].shape)
            g = dy * self._per_channel(self.blobs[0])
        if propagate_down[0]:
            g_rows, h_rows = self._rows(g), self._rows(self.x_norm)
            mean_g = g_rows.mean(axis=2, dtype=np.float64, keepdims=True)
            mean_gh = (g_rows * h_rows).mean(axis=2, dtype=np.float64, keepdims=True)
            dx = (g_rows - mean_g - h_rows * mean_gh) * self.inv_std.reshape(self.dims[0], self.groups, 1)
            bottom[0].diff[...] = dx.reshape(bottom[0].shape)


class GroupNorm(GroupedNorm):
    """Group normalization of (N, C, ...) bottoms (Wu and He, 2018)."""

    type = "GroupNorm"

    def read_param(self):
        p = self.param.group_norm_param
        self.num_groups = p.num_groups
        if self.num_groups < 1:
            raise NetError(f"layer '{self.name}' (GroupNorm): num_groups must be at least 1, "
                           f"got {self.num_groups}")
        return p

    def layout(self, shape):
        groups = self.num_groups
        return channel_split(self, shape, groups, f"num_groups {groups}") + (groups,)

    def affine_shape(self, shape):
        return (shape[1],)
