"""BatchNorm: y = (x - mean_c) / sqrt(var_c + eps), per channel c  (Caffe's BatchNorm).

x is viewed as (N, C, S) (C = shape[1], 1 for a 1-D bottom). blobs, in Caffe's stored
format: [sum_mean (C,), sum_var (C,), scale_factor (1,)]; the running statistics are
blob / scale_factor (0 when scale_factor is 0).
* Batch statistics (use_global_stats false; default in TRAIN): mean and biased variance
  over N and S; then blob0 = maf * blob0 + mean, blob1 = maf * blob1 + m / (m - 1) * var,
  blob2 = maf * blob2 + 1 (maf = moving_average_fraction, m = N * S).
  dx = (dy - mean(dy) - y * mean(dy * y)) / sqrt(var + eps), means per channel.
* Global statistics (default in TEST): dx = dy / sqrt(var + eps).
The blobs are statistics, not parameters: as Caffe, setup gives them lr_mult 0 and
never writes their diffs. There is no learned scale or shift (follow with Scale).
Runs in place.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .base import Layer, scratch_like
from .kernels.row_sums cimport row_sum, row_dot, row_squares
from .kernels.parallel cimport PARALLEL_WORK


def channel_stats(const floating[:, :, ::1] x, double[::1] mean, double[::1] var):
    """Per channel: mean and biased variance over axes 0 and 2 of x (N, C, S)."""
    cdef Py_ssize_t n, c, s
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1], spatial = x.shape[2]
    cdef double acc, m, d, count = num * spatial
    with nogil:
        for c in prange(channels, schedule="static",
                        use_threads_if=x.shape[0] * channels * spatial >= PARALLEL_WORK):
            acc = 0
            for n in range(num):
                acc = acc + row_sum(&x[n, c, 0], spatial)
            m = acc / count
            acc = 0
            for n in range(num):
                acc = acc + row_squares(&x[n, c, 0], m, spatial)
            mean[c] = m
            var[c] = acc / count


def normalize(const floating[:, :, ::1] x, const double[::1] mean,
              const double[::1] inv_std, floating[:, :, ::1] y):
    """y = (x - mean_c) * inv_std_c; y may be x."""
    cdef Py_ssize_t r, n, c, s
    cdef Py_ssize_t channels = x.shape[1], spatial = x.shape[2], rows = x.shape[0] * x.shape[1]
    with nogil:
        for r in prange(rows, schedule="static", use_threads_if=rows * spatial >= PARALLEL_WORK):
            n = r // channels
            c = r % channels
            for s in range(spatial):
                y[n, c, s] = <floating>((x[n, c, s] - mean[c]) * inv_std[c])


def batch_backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] y,
                   const double[::1] inv_std, floating[:, :, ::1] dx):
    """dx = (dy - mean(dy) - y * mean(dy * y)) * inv_std, means per channel; dx may be dy."""
    cdef Py_ssize_t n, c, s
    cdef Py_ssize_t num = dy.shape[0], channels = dy.shape[1], spatial = dy.shape[2]
    cdef double sum_dy, sum_dyy, count = num * spatial
    with nogil:
        for c in prange(channels, schedule="static",
                        use_threads_if=num * channels * spatial >= PARALLEL_WORK):
            sum_dy = 0
            sum_dyy = 0
            for n in range(num):
                sum_dy = sum_dy + row_sum(&dy[n, c, 0], spatial)
                sum_dyy = sum_dyy + row_dot(&dy[n, c, 0], &y[n, c, 0], spatial)
            sum_dy = sum_dy / count
            sum_dyy = sum_dyy / count
            for n in range(num):
                for s in range(spatial):
                    dx[n, c, s] = <floating>(
                        (dy[n, c, s] - sum_dy - y[n, c, s] * sum_dyy) * inv_std[c])


class BatchNorm(Layer):
    """Normalizes each channel by batch or running statistics; blobs hold the statistics."""

    type = "BatchNorm"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.batch_norm_param
        self.use_global_stats = (p.use_global_stats if p.HasField("use_global_stats")
                                 else self.phase == pb.TEST)
        self.moving_average_fraction = p.moving_average_fraction
        self.eps = p.eps
        shape = bottom[0].shape
        if len(shape) == 0:
            raise self.shape_error("the bottom needs at least one axis, got a scalar")
        channels = shape[1] if len(shape) > 1 else 1
        wanted = [(channels,), (channels,), (1,)]
        if not self.blobs:
            self.blobs = [self.new_blob(s) for s in wanted]
        else:
            if [b.count for b in self.blobs] != [int(np.prod(s)) for s in wanted]:
                raise self.shape_error(f"expected statistics blobs of shapes {wanted} for "
                                       f"{channels} channels, got "
                                       f"{[b.shape for b in self.blobs]}")
            for blob, s in zip(self.blobs, wanted):
                blob.reshape(s)
        self._freeze_statistics()
        self.x_norm = None

    def _freeze_statistics(self):
        """Caffe's rule: the statistics blobs are never learned (lr_mult 0)."""
        specs = self.param.param
        for i in range(len(self.blobs)):
            if i == len(specs):
                specs.add(lr_mult=0, decay_mult=0)
            elif specs[i].lr_mult != 0:
                raise NetError(f"layer '{self.name}' (BatchNorm): param {i} has lr_mult "
                               f"{specs[i].lr_mult:g}, but the batch statistics cannot be "
                               "learned (set lr_mult: 0 or leave the param specs out)")

    def _dims(self, bottom):
        shape = bottom[0].shape
        channels = shape[1] if len(shape) > 1 else 1
        num = shape[0]
        spatial = bottom[0].count // (num * channels) if num * channels else 0
        return num, channels, spatial

    def reshape(self, bottom, top):
        if len(bottom[0].shape) == 0:
            raise self.shape_error("the bottom needs at least one axis, got a scalar")
        self.dims = self._dims(bottom)
        if self.dims[1] != self.blobs[0].shape[0]:
            raise self.shape_error(f"bottom {bottom[0].shape} has {self.dims[1]} channels, "
                                   f"but the statistics are for {self.blobs[0].shape[0]}")
        top[0].reshape(bottom[0].shape)

    def _global_stats(self):
        """Running mean and variance as float64 arrays on the blobs' device."""
        s = float(self.blobs[2].data.reshape(-1)[0])
        factor = 0.0 if s == 0 else 1.0 / s
        mean = self.blobs[0].data.astype(np.float64) * factor
        var = self.blobs[1].data.astype(np.float64) * factor
        return mean, var

    def _update_running(self, mean, var):
        num, channels, spatial = self.dims
        m = num * spatial
        correction = m / (m - 1.0) if m > 1 else 1.0
        maf = self.moving_average_fraction
        self.blobs[0].data[...] = maf * self.blobs[0].data + mean
        self.blobs[1].data[...] = maf * self.blobs[1].data + correction * var
        self.blobs[2].data[...] = maf * self.blobs[2].data + 1

    def _keep_output(self, y):
        self.x_norm = scratch_like(self.x_norm, y)
        self.x_norm[...] = y

    def forward_cpu(self, bottom, top):
        x = bottom[0].data.reshape(self.dims)
        y = top[0].data.reshape(self.dims)
        channels = self.dims[1]
        if self.use_global_stats:
            mean, var = self._global_stats()
        else:
            mean, var = np.empty(channels), np.empty(channels)
            channel_stats(x, mean, var)
            self._update_running(mean, var)
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        normalize(x, mean, self.inv_std, y)
        if not (self.use_global_stats or self.forward_only):
            self._keep_output(y)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.dims)
        dx = bottom[0].diff.reshape(self.dims)
        if self.use_global_stats:
            normalize(dy, np.zeros(self.dims[1]), self.inv_std, dx)
        else:
            batch_backward(dy, self.x_norm, self.inv_std, dx)

    def forward_gpu(self, bottom, top):
        x = bottom[0].data.reshape(self.dims)
        if self.use_global_stats:
            mean, var = self._global_stats()
        else:
            mean = x.mean(axis=(0, 2), dtype=np.float64)
            var = ((x - mean[:, None]) ** 2).mean(axis=(0, 2), dtype=np.float64)
            self._update_running(mean, var)
        self.inv_std = 1.0 / (var + self.eps) ** 0.5
        y = (x - mean[:, None]) * self.inv_std[:, None]
        top[0].data[...] = y.reshape(top[0].shape)
        if not (self.use_global_stats or self.forward_only):
            self._keep_output(top[0].data.reshape(self.dims))

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self.dims)
        inv_std = self.inv_std[:, None]
        if self.use_global_stats:
            dx = dy * inv_std
        else:
            y = self.x_norm
            mean_dy = dy.mean(axis=(0, 2), dtype=np.float64)[:, None]
            mean_dyy = (dy * y).mean(axis=(0, 2), dtype=np.float64)[:, None]
            dx = (dy - mean_dy - y * mean_dyy) * inv_std
        bottom[0].diff[...] = dx.reshape(bottom[0].shape)
