"""MVN: y = (x - mean) / (std + eps) per row, or y = x - mean  (Caffe's MVN).

A row is one (item, channel) plane, or a whole item with across_channels; std is the
biased standard deviation of the row and eps (default 1e-9) is added to it, not to
the variance. Backward (exact derivative of that forward):
  no variance:  dx = dy - mean(dy)
  variance:     dx = (dy - mean(dy) - y * mean(dy * y) * (std + eps) / std) / (std + eps)
Caffe leaves out the factor (std + eps) / std, which differs from 1 by eps / std.
Does not run in place (backward reads the input).
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating
from libc.math cimport sqrt

from ..proto.errors import NetError
from .base import Layer
from .kernels.parallel cimport PARALLEL_WORK


def mvn_forward(const floating[:, ::1] x, floating[:, ::1] y, double[::1] mean,
                double[::1] std, bint normalize_variance, double eps):
    """Per row r: mean[r], std[r] (biased); y = (x - mean) [/ (std + eps)]."""
    cdef Py_ssize_t r, i, rows = x.shape[0], dim = x.shape[1]
    cdef double acc, m, d, scale
    with nogil:
        for r in prange(rows, schedule="static", use_threads_if=rows * dim >= PARALLEL_WORK):
            acc = 0
            for i in range(dim):
                acc = acc + x[r, i]
            m = acc / dim
            acc = 0
            for i in range(dim):
                d = x[r, i] - m
                acc = acc + d * d
            mean[r] = m
            std[r] = sqrt(acc / dim)
            scale = 1.0 / (std[r] + eps) if normalize_variance else 1.0
            for i in range(dim):
                y[r, i] = <floating>((x[r, i] - m) * scale)


def mvn_backward(const floating[:, ::1] dy, const floating[:, ::1] x, const double[::1] mean,
                 const double[::1] std, floating[:, ::1] dx, bint normalize_variance,
                 double eps):
    """dx per row as in the module docstring."""
    cdef Py_ssize_t r, i, rows = dy.shape[0], dim = dy.shape[1]
    cdef double sum_dy, sum_dyx, denom, coef
    with nogil:
        for r in prange(rows, schedule="static", use_threads_if=rows * dim >= PARALLEL_WORK):
            sum_dy = 0
            sum_dyx = 0
            for i in range(dim):
                sum_dy = sum_dy + dy[r, i]
                sum_dyx = sum_dyx + dy[r, i] * (x[r, i] - mean[r])
            sum_dy = sum_dy / dim
            if not normalize_variance:
                for i in range(dim):
                    dx[r, i] = <floating>(dy[r, i] - sum_dy)
                continue
            denom = std[r] + eps
            # d std / dx_i = (x_i - mean) / (dim * std); 0 where the row is constant.
            coef = sum_dyx / (dim * std[r] * denom * denom) if std[r] > 0 else 0.0
            for i in range(dim):
                dx[r, i] = <floating>((dy[r, i] - sum_dy) / denom - (x[r, i] - mean[r]) * coef)


class MVN(Layer):
    """Mean-variance normalization of each plane (or each item with across_channels)."""

    type = "MVN"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.mvn_param
        self.normalize_variance = p.normalize_variance
        self.across_channels = p.across_channels
        self.eps = p.eps
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (MVN) does not run in place: its backward "
                           "needs the input")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) == 0:
            raise self.shape_error("the bottom needs at least one axis, got a scalar")
        rows = shape[0] if self.across_channels or len(shape) < 2 else shape[0] * shape[1]
        self.rows_dims = (rows, bottom[0].count // rows if rows else 0)
        top[0].reshape(shape)

    def forward_cpu(self, bottom, top):
        rows = self.rows_dims[0]
        self.mean, self.std = np.empty(rows), np.empty(rows)
        mvn_forward(bottom[0].data.reshape(self.rows_dims), top[0].data.reshape(self.rows_dims),
                    self.mean, self.std, self.normalize_variance, self.eps)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            mvn_backward(top[0].diff.reshape(self.rows_dims),
                         bottom[0].data.reshape(self.rows_dims), self.mean, self.std,
                         bottom[0].diff.reshape(self.rows_dims), self.normalize_variance,
                         self.eps)

    def forward_gpu(self, bottom, top):
        x = bottom[0].data.reshape(self.rows_dims)
        self.mean = x.mean(axis=1, dtype=np.float64)
        centered = x - self.mean[:, None]
        self.std = ((centered ** 2).mean(axis=1, dtype=np.float64)) ** 0.5
        y = centered / (self.std[:, None] + self.eps) if self.normalize_variance else centered
        top[0].data[...] = y.reshape(top[0].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.rows_dims)
        dim = self.rows_dims[1]
        dx = dy - dy.mean(axis=1, dtype=np.float64)[:, None]
        if self.normalize_variance:
            centered = bottom[0].data.reshape(self.rows_dims) - self.mean[:, None]
            denom = self.std + self.eps
            safe_std = self.std + (self.std == 0)
            coef = (dy * centered).sum(axis=1) / (dim * safe_std * denom * denom)
            coef = coef * (self.std > 0)
            dx = dx / denom[:, None] - centered * coef[:, None]
        bottom[0].diff[...] = dx.reshape(bottom[0].shape)
