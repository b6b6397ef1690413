"""Pooling: max or average over (kh, kw) windows every (sh, sw) pixels  (Caffe's Pooling).

Window (y, x) covers rows [y*sh - ph, y*sh - ph + kh) and columns likewise. The output
size is ceil((H + 2*ph - kh) / sh) + 1 (floor with round_mode FLOOR), less one when there
is padding and the last window would start at or past H + ph.
MAX: the largest in-image value (padding never wins; the first of equal values does);
its flat index h*W + w is kept for backward and is the optional second top ("mask").
AVE: the in-image sum divided by the window clipped to [-p, H + p) (padding counts,
the overhang past it does not). global_pooling: one window over the whole plane.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating
from libc.float cimport FLT_MAX

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base import Layer

# Caffe starts every max at -FLT_MAX; a window with no pixel in the image keeps it.
LOWEST = -np.finfo(np.float32).max


def max_pool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int[:, :, ::1] mask,
                     int kh, int kw, int sh, int sw, int ph, int pw):
    """y = window max of each plane of x (P, H, W); mask = its flat index (-1: none)."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1, best_index
    cdef floating best
    with nogil:
        for p in prange(planes, schedule="static"):
            for i in range(ho):
                h0 = i * sh - ph
                h1 = min(h0 + kh, height)
                h0 = max(h0, 0)
                for j in range(wo):
                    w0 = j * sw - pw
                    w1 = min(w0 + kw, width)
                    w0 = max(w0, 0)
                    best = -FLT_MAX
                    best_index = -1
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            if x[p, h, w] > best:
                                best = x[p, h, w]
                                best_index = h * width + w
                    y[p, i, j] = best
                    mask[p, i, j] = <int>best_index


def max_pool_backward(const floating[:, :, ::1] dy, const int[:, :, ::1] mask,
                      floating[:, :, ::1] dx):
    """dx = dy routed to the recorded max of each window (written, not accumulated)."""
    cdef Py_ssize_t planes = dx.shape[0], height = dx.shape[1], width = dx.shape[2]
    cdef Py_ssize_t ho = dy.shape[1], wo = dy.shape[2]
    cdef Py_ssize_t p, i, j, k
    with nogil:
        for p in prange(planes, schedule="static"):
            for i in range(height):
                for j in range(width):
                    dx[p, i, j] = 0
            for i in range(ho):
                for j in range(wo):
                    k = mask[p, i, j]
                    if k >= 0:
                        dx[p, k // width, k % width] += dy[p, i, j]


cdef inline Py_ssize_t window_size(Py_ssize_t i, Py_ssize_t j, int kh, int kw, int sh, int sw,
                                   int ph, int pw, Py_ssize_t height,
                                   Py_ssize_t width) noexcept nogil:
    """Caffe's AVE divisor: the window clipped to the padded image [-p, H + p)."""
    cdef Py_ssize_t h0 = i * sh - ph, w0 = j * sw - pw
    return (min(h0 + kh, height + ph) - h0) * (min(w0 + kw, width + pw) - w0)


def ave_pool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                     int kh, int kw, int sh, int sw, int ph, int pw):
    """y = in-image window sum of each plane of x, over Caffe's divisor."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1, size
    cdef floating total
    with nogil:
        for p in prange(planes, schedule="static"):
            for i in range(ho):
                h0 = max(i * sh - ph, 0)
                h1 = min(i * sh - ph + kh, height)
                for j in range(wo):
                    w0 = max(j * sw - pw, 0)
                    w1 = min(j * sw - pw + kw, width)
                    total = 0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            total = total + x[p, h, w]
                    size = window_size(i, j, kh, kw, sh, sw, ph, pw, height, width)
                    # Only a window wholly past an unpadded edge has no size (and no pixel).
                    y[p, i, j] = total / size if size > 0 else 0


def ave_pool_backward(const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
                      int kh, int kw, int sh, int sw, int ph, int pw):
    """dx = each window's dy / divisor spread over its in-image pixels (written)."""
    cdef Py_ssize_t planes = dx.shape[0], height = dx.shape[1], width = dx.shape[2]
    cdef Py_ssize_t ho = dy.shape[1], wo = dy.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1, size
    cdef floating share
    with nogil:
        for p in prange(planes, schedule="static"):
            for i in range(height):
                for j in range(width):
                    dx[p, i, j] = 0
            for i in range(ho):
                h0 = max(i * sh - ph, 0)
                h1 = min(i * sh - ph + kh, height)
                for j in range(wo):
                    w0 = max(j * sw - pw, 0)
                    w1 = min(j * sw - pw + kw, width)
                    size = window_size(i, j, kh, kw, sh, sw, ph, pw, height, width)
                    if size <= 0:
                        continue
                    share = dy[p, i, j] / size
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            dx[p, h, w] += share


def pooled_size(size, kernel, pad, stride, ceil_mode):
    """Caffe's output length along one axis, before the padding clip."""
    span = size + 2 * pad - kernel
    return (-(-span // stride) if ceil_mode else span // stride) + 1


class Pooling(Layer):
    """Max or average pooling over 2-D windows of each (image, channel) plane."""

    type = "Pooling"
    num_bottom = 1
    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        p = self.param.pooling_param
        self.method = p.pool
        if self.method == pb.PoolingParameter.STOCHASTIC:
            raise NetError(f"layer '{self.name}': STOCHASTIC pooling is not supported yet")
        if len(top) > 1 and self.method != pb.PoolingParameter.MAX:
            raise NetError(f"layer '{self.name}': only MAX pooling has a second (mask) top")
        self.global_pooling = p.global_pooling
        has_kernel = [p.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")]
        if self.global_pooling:
            if any(has_kernel):
                raise NetError(f"layer '{self.name}': global_pooling takes the whole plane; "
                               "give no kernel size")
        else:
            if has_kernel[0] == (has_kernel[1] and has_kernel[2]) or \
                    has_kernel[0] and (has_kernel[1] or has_kernel[2]):
                raise NetError(f"layer '{self.name}': give kernel_size, or kernel_h and "
                               "kernel_w (both), not both forms")
            self.kernel = ((p.kernel_size, p.kernel_size) if has_kernel[0]
                           else (p.kernel_h, p.kernel_w))
            if min(self.kernel) <= 0:
                raise NetError(f"layer '{self.name}': kernel size must be positive, got "
                               f"{self.kernel}")
        self.pad = self._pair(p, "pad")
        self.stride = self._pair(p, "stride")
        if min(self.stride) <= 0:
            raise NetError(f"layer '{self.name}': stride must be positive, got {self.stride}")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise NetError(f"layer '{self.name}': global_pooling allows only pad 0 and "
                           f"stride 1, got pad {self.pad} and stride {self.stride}")
        if not self.global_pooling and (self.pad[0] >= self.kernel[0] or
                                        self.pad[1] >= self.kernel[1]):
            raise NetError(f"layer '{self.name}': pad {self.pad} must be smaller than the "
                           f"kernel {self.kernel}")
        self.ceil_mode = p.round_mode == pb.PoolingParameter.CEIL
        self._mask = None

    def _pair(self, p, field):
        """(h, w) of pad or stride: the plain field, or its _h and _w twins (both)."""
        has_h, has_w = p.HasField(f"{field}_h"), p.HasField(f"{field}_w")
        if has_h or has_w:
            if p.HasField(field) or not (has_h and has_w):
                raise NetError(f"layer '{self.name}': give {field}, or {field}_h and "
                               f"{field}_w (both), not both forms")
            return getattr(p, f"{field}_h"), getattr(p, f"{field}_w")
        return getattr(p, field), getattr(p, field)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise self.shape_error(f"bottom must be 4-D (N, C, H, W), got {shape}")
        num, channels, height, width = shape
        if self.global_pooling:
            self.kernel = (height, width)
        (kh, kw), (ph, pw), (sh, sw) = self.kernel, self.pad, self.stride
        ho = pooled_size(height, kh, ph, sh, self.ceil_mode)
        wo = pooled_size(width, kw, pw, sw, self.ceil_mode)
        if ph or pw:
            # The last window must start inside the image or its left/top padding.
            if (ho - 1) * sh >= height + ph:
                ho -= 1
            if (wo - 1) * sw >= width + pw:
                wo -= 1
        if ho <= 0 or wo <= 0:
            raise self.shape_error(f"kernel {self.kernel} does not fit the input {shape} "
                                   f"with pad {self.pad}")
        for t in top:
            t.reshape(num, channels, ho, wo)
        if self.method == pb.PoolingParameter.MAX and (
                self._mask is None or self._mask.shape != (num * channels, ho, wo)):
            self._mask = np.empty((num * channels, ho, wo), np.intc)

    def _args(self):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        return kh, kw, sh, sw, ph, pw

    @staticmethod
    def _planes(array):
        """(N*C, H, W) view of a 4-D blob array."""
        return array.reshape((-1,) + array.shape[2:])

    def forward_cpu(self, bottom, top):
        x = self._planes(np.ascontiguousarray(bottom[0].data))
        y = self._planes(top[0].data)
        if self.method == pb.PoolingParameter.MAX:
            max_pool_forward(x, y, self._mask, *self._args())
            if len(top) > 1:
                top[1].data[...] = self._mask.reshape(top[1].shape)
        else:
            ave_pool_forward(x, y, *self._args())

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = self._planes(np.ascontiguousarray(top[0].diff))
        dx = self._planes(bottom[0].diff)
        if self.method == pb.PoolingParameter.MAX:
            max_pool_backward(dy, self._mask, dx)
        else:
            ave_pool_backward(dy, dx, *self._args())

    # -- GPU (array-API; runs on numpy too) -------------------------------------

    def _offsets(self, ho, wo):
        """For each kernel offset (i, j): the slices of the padded plane it covers."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        for i in range(kh):
            for j in range(kw):
                yield i, j, (Ellipsis, slice(i, i + sh * (ho - 1) + 1, sh),
                             slice(j, j + sw * (wo - 1) + 1, sw))

    def _padded(self, xp, shape, ho, wo, fill, dtype):
        """A filled array big enough for the padding and the last window's overhang."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        num, channels, height, width = shape
        return xp.full((num, channels, max(height + 2 * ph, (ho - 1) * sh + kh),
                        max(width + 2 * pw, (wo - 1) * sw + kw)), fill, dtype)

    def _divisor(self, xp, height, width, ho, wo):
        """Caffe's AVE divisor per output pixel (1 where a window is empty)."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        h0, w0 = np.arange(ho) * sh - ph, np.arange(wo) * sw - pw
        size = np.outer(np.minimum(h0 + kh, height + ph) - h0,
                        np.minimum(w0 + kw, width + pw) - w0)
        return xp.asarray(np.where(size > 0, size, 1))

    def forward_gpu(self, bottom, top):
        x = bottom[0].data
        xp = array_module(x)
        num, channels, height, width = x.shape
        ho, wo = top[0].shape[2:]
        (ph, pw), (sh, sw) = self.pad, self.stride
        if self.method == pb.PoolingParameter.MAX:
            padded = self._padded(xp, x.shape, ho, wo, -np.inf, x.dtype)
            padded[:, :, ph:ph + height, pw:pw + width] = x
            best = xp.full(top[0].shape, LOWEST, x.dtype)
            index = xp.full(top[0].shape, -1, xp.int64)
            rows, cols = xp.arange(ho)[:, None] * sh - ph, xp.arange(wo) * sw - pw
            for i, j, window in self._offsets(ho, wo):
                values = padded[window]
                better = values > best
                best = xp.where(better, values, best)
                index = xp.where(better, (rows + i) * width + cols + j, index)
            top[0].data[...] = best
            self._gpu_mask = index
            if len(top) > 1:
                top[1].data[...] = index
        else:
            padded = self._padded(xp, x.shape, ho, wo, 0, x.dtype)
            padded[:, :, ph:ph + height, pw:pw + width] = x
            total = xp.zeros(top[0].shape, x.dtype)
            for _, _, window in self._offsets(ho, wo):
                total += padded[window]
            top[0].data[...] = total / self._divisor(xp, height, width, ho, wo)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        xp = array_module(dy)
        num, channels, height, width = bottom[0].shape
        ho, wo = dy.shape[2:]
        (ph, pw), (sh, sw) = self.pad, self.stride
        padded = self._padded(xp, bottom[0].shape, ho, wo, 0, dy.dtype)
        if self.method == pb.PoolingParameter.MAX:
            rows, cols = xp.arange(ho)[:, None] * sh - ph, xp.arange(wo) * sw - pw
            for i, j, window in self._offsets(ho, wo):
                here = self._gpu_mask == (rows + i) * width + cols + j
                padded[window] += xp.where(here, dy, 0)
        else:
            share = dy / self._divisor(xp, height, width, ho, wo)
            for _, _, window in self._offsets(ho, wo):
                padded[window] += share
        bottom[0].diff[...] = padded[:, :, ph:ph + height, pw:pw + width]
