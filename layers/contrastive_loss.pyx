"""ContrastiveLoss: loss = sum_n [y_n d_n^2 + (1 - y_n) max(margin - d_n, 0)^2] / (2N).

Caffe's ContrastiveLoss (Hadsell et al. 2006).

d_n = ||a_n - b_n|| over the features of item n (a and b viewed as (N, C)); y_n is
"similar" when int(y_n) != 0 (Caffe truncates). contrastive_loss_param.legacy_version
uses max(margin - d_n^2, 0) for dissimilar pairs instead (the first, non-Hadsell form).
Backward, with s = +1 for a and -1 for b and alpha = s * top.diff / N:
similar: alpha (a - b); dissimilar, where the margin term is positive:
legacy -alpha (a - b), else -alpha (margin - d) / (d + 1e-4) (a - b) (Caffe's 1e-4
keeps the division finite at d = 0); zero otherwise. y takes no gradient.
"""
import numpy as np

from cython.parallel import prange
from cython cimport floating
from libc.math cimport sqrt

from .backend import array_module
from .base_loss import LossLayer
from .kernels.parallel cimport PARALLEL_WORK

# Caffe adds this to the distance in the non-legacy gradient's denominator.
cdef double DISTANCE_EPS = 1e-4


cdef inline bint is_similar(double y) noexcept nogil:
    """int(y) != 0, as Caffe's static_cast (values beyond int count as similar)."""
    return not (-1.0 < y < 1.0)


def contrastive_forward(const floating[:, ::1] a, const floating[:, ::1] b,
                        const floating[::1] y, floating[:, ::1] diff, floating[::1] dist_sq,
                        double margin, bint legacy):
    """diff = a - b, dist_sq = rowwise sum of diff^2; returns the summed per-item loss."""
    cdef Py_ssize_t i, k, num = a.shape[0], channels = a.shape[1]
    cdef double loss = 0, d2, m
    with nogil:
        for i in prange(num, schedule="static", use_threads_if=num * channels >= PARALLEL_WORK):
            d2 = 0
            for k in range(channels):
                diff[i, k] = a[i, k] - b[i, k]
                d2 = d2 + <double>diff[i, k] * diff[i, k]
            dist_sq[i] = <floating>d2
            if is_similar(y[i]):
                loss += <floating>d2
            elif legacy:
                m = margin - <floating>d2
                loss += m if m > 0 else 0
            else:
                m = margin - sqrt(<floating>d2)
                loss += m * m if m > 0 else 0
    return loss


def contrastive_backward(const floating[:, ::1] diff, const floating[::1] dist_sq,
                         const floating[::1] y, floating[:, ::1] dx, double margin,
                         bint legacy, double alpha):
    """dx for one bottom (alpha carries its sign and top.diff / N)."""
    cdef Py_ssize_t i, k, num = diff.shape[0], channels = diff.shape[1]
    cdef double beta, d, m
    with nogil:
        for i in prange(num, schedule="static", use_threads_if=num * channels >= PARALLEL_WORK):
            if is_similar(y[i]):
                beta = alpha
            elif legacy:
                m = margin - dist_sq[i]
                beta = -alpha if m > 0 else 0
            else:
                d = sqrt(dist_sq[i])
                m = margin - d
                beta = -alpha * m / (d + DISTANCE_EPS) if m > 0 else 0
            for k in range(channels):
                dx[i, k] = <floating>(beta * diff[i, k])


class ContrastiveLoss(LossLayer):
    """Hadsell et al.'s contrastive loss on pairs of feature vectors."""

    type = "ContrastiveLoss"
    bottoms = 3

    def setup(self, bottom, top):
        p = self.param.contrastive_loss_param
        self.margin = p.margin
        self.legacy = p.legacy_version
        self.diff = None

    def allow_backward(self, bottom_index):
        return bottom_index < 2

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.check_same_count(bottom, "the two feature blobs")
        a, b, y = bottom
        num = a.shape[0] if a.shape else 0
        if y.count != num:
            raise self.shape_error(f"expected one similarity label per pair ({num} for "
                                   f"features of shape {a.shape}), got shape {y.shape}")
        self.dims = (num, a.count // max(1, num))

    def _alphas(self, top):
        alpha = float(self.dtype.type(top[0].diff) / self.dtype.type(self.dims[0]))
        return (alpha, -alpha)

    def forward_cpu(self, bottom, top):
        if self.diff is None or self.diff.shape != self.dims:
            self.diff = np.empty(self.dims, self.dtype)
            self.dist_sq = np.empty(self.dims[0], self.dtype)
        loss = contrastive_forward(bottom[0].data.reshape(self.dims),
                                   bottom[1].data.reshape(self.dims),
                                   bottom[2].data.reshape(-1), self.diff, self.dist_sq,
                                   self.margin, self.legacy)
        top[0].data[...] = self.dtype.type(loss) / self.dtype.type(self.dims[0]) / 2

    def backward_cpu(self, top, propagate_down, bottom):
        for i, alpha in enumerate(self._alphas(top)):
            if propagate_down[i]:
                contrastive_backward(self.diff, self.dist_sq, bottom[2].data.reshape(-1),
                                     bottom[i].diff.reshape(self.dims), self.margin,
                                     self.legacy, alpha)

    # -- array-API path -------------------------------------------------------

    def _similar(self, bottom):
        y = bottom[2].data.reshape(-1)
        return ~((y > -1) & (y < 1))

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        self.diff = bottom[0].data.reshape(self.dims) - bottom[1].data.reshape(self.dims)
        self.dist_sq = (self.diff * self.diff).sum(axis=1)
        if self.legacy:
            apart = xp.maximum(self.margin - self.dist_sq, 0)
        else:
            apart = xp.maximum(self.margin - xp.sqrt(self.dist_sq), 0) ** 2
        loss = xp.where(self._similar(bottom), self.dist_sq, apart).sum()
        top[0].data[...] = loss / self.dtype.type(self.dims[0]) / 2

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(self.diff)
        similar = self._similar(bottom)
        if self.legacy:
            push = xp.where(self.margin - self.dist_sq > 0, -1.0, 0.0)
        else:
            d = xp.sqrt(self.dist_sq)
            push = xp.where(self.margin - d > 0, -(self.margin - d) / (d + DISTANCE_EPS), 0.0)
        beta = xp.where(similar, 1.0, push)
        for i, alpha in enumerate(self._alphas(top)):
            if propagate_down[i]:
                dx = (alpha * beta)[:, None] * self.diff
                bottom[i].diff[...] = dx.astype(self.dtype).reshape(bottom[i].shape)
