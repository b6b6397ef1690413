"""Pooling: max, average, stochastic or L2 over (kh, kw) windows every (sh, sw) pixels
(Caffe's Pooling; L2 and the padding schemes are cyffe's own).

Window (y, x) covers rows [y*sh - ph, y*sh - ph + kh) and columns likewise. The output
size is ceil((H + 2*ph - kh) / sh) + 1 (floor with round_mode FLOOR), less one when there
is padding and the last window would start at or past H + ph.
MAX: the largest in-image value (padding never wins; the first of equal values does);
its flat index h*W + w is kept for backward and is the optional second top ("mask").
AVE: the in-image sum divided by the window clipped to [-p, H + p) (padding counts,
the overhang past it does not). global_pooling: one window over the whole plane.
STOCHASTIC (activations >= 0, as after ReLU), TRAIN: with u ~ U[0, 1) per window, the
first in-image pixel whose running sum reaches u * (window sum); y = that pixel, and
backward routes dy to it. TEST: y = sum(x^2) / (FLT_MIN + sum(x)); no backward.
L2: y = sqrt(sum of x^2 over the window); dx = dy * x / y (0 where y = 0).
pad_scheme SAME: output ceil(H / sh), total pad max((out - 1)*sh + kh - H, 0), the odd
pixel after. pad_fill ZERO is Caffe's rule above; CONSTANT (pad_value), REFLECT and
REPLICATE give padded positions values that take part in every method; a reflected or
replicated pixel sends its gradient back to its source.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating
from libc.float cimport FLT_MAX, FLT_MIN
from libc.math cimport sqrt

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module, rng
from .base import Layer
from .kernels cimport avx512

P = pb.PoolingParameter
# Caffe starts every max at -FLT_MAX; a window with no pixel in the image keeps it.
LOWEST = -np.finfo(np.float32).max
# Caffe's stochastic TEST forward starts the window sum here, so an all-zero window gives 0.
SMALLEST = float(np.finfo(np.float32).tiny)


def max_pool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int[:, :, ::1] mask,
                     int kh, int kw, int sh, int sw, int ph, int pw):
    """y = window max of each plane of x (P, H, W); mask = its flat index (-1: none)."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1, best_index
    cdef floating best
    cdef bint vector = floating is float and sw <= 2 and avx512.enabled()
    with nogil:
        for p in prange(planes, schedule="static"):
            if floating is float:
                if vector:
                    avx512.max_pool_plane(&x[p, 0, 0], height, width, &y[p, 0, 0],
                                          &mask[p, 0, 0], ho, wo, kh, kw, sh, sw, ph, pw)
                    continue
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


def index_pool_backward(const floating[:, :, ::1] dy, const int[:, :, ::1] mask,
                        floating[:, :, ::1] dx):
    """dx = dy routed to each window's recorded pixel (MAX's argmax, STOCHASTIC's sample)."""
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
                                   int ph, int pw, Py_ssize_t bottom_edge,
                                   Py_ssize_t right_edge) noexcept nogil:
    """Caffe's AVE divisor: the window clipped to the padded image [-p, edge)."""
    cdef Py_ssize_t h0 = i * sh - ph, w0 = j * sw - pw
    return (min(h0 + kh, bottom_edge) - h0) * (min(w0 + kw, right_edge) - w0)


def ave_pool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                     int kh, int kw, int sh, int sw, int ph, int pw, int eh, int ew):
    """y = in-image window sum of each plane of x, over Caffe's divisor (eh, ew: pad after)."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1, size
    cdef floating total
    cdef bint vector = floating is float and sw <= 2 and avx512.enabled()
    with nogil:
        for p in prange(planes, schedule="static"):
            if floating is float:
                if vector:
                    avx512.ave_pool_plane(&x[p, 0, 0], height, width, &y[p, 0, 0], ho, wo, kh,
                                          kw, sh, sw, ph, pw, eh, ew)
                    continue
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
                    size = window_size(i, j, kh, kw, sh, sw, ph, pw, height + eh, width + ew)
                    # Only a window wholly past an unpadded edge has no size (and no pixel).
                    y[p, i, j] = total / size if size > 0 else 0


def ave_pool_backward(const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
                      int kh, int kw, int sh, int sw, int ph, int pw, int eh, int ew):
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
                    size = window_size(i, j, kh, kw, sh, sw, ph, pw, height + eh, width + ew)
                    if size <= 0:
                        continue
                    share = dy[p, i, j] / size
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            dx[p, h, w] += share


def stochastic_pool_train(const floating[:, :, ::1] x, const floating[:, :, ::1] u,
                          floating[:, :, ::1] y, int[:, :, ::1] mask,
                          int kh, int kw, int sh, int sw, int ph, int pw):
    """y = the in-image pixel drawn with probability x / (window sum) by u; mask = its index.

    The draw is the first pixel whose running sum reaches u * sum. Should it never (only
    possible with negative inputs), the window's last pixel is taken; an empty window
    gives 0 and no index.
    """
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1, chosen
    cdef floating total, threshold, running
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
                    threshold = u[p, i, j] * total
                    running = 0
                    chosen = -1
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            running = running + x[p, h, w]
                            chosen = h * width + w
                            if running >= threshold:
                                break
                        if running >= threshold:
                            break
                    mask[p, i, j] = <int>chosen
                    y[p, i, j] = x[p, chosen // width, chosen % width] if chosen >= 0 else 0


def stochastic_pool_test(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                         int kh, int kw, int sh, int sw, int ph, int pw):
    """y = sum(x^2) / (FLT_MIN + sum(x)) over each window's in-image pixels."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1
    cdef floating total, squares
    with nogil:
        for p in prange(planes, schedule="static"):
            for i in range(ho):
                h0 = max(i * sh - ph, 0)
                h1 = min(i * sh - ph + kh, height)
                for j in range(wo):
                    w0 = max(j * sw - pw, 0)
                    w1 = min(j * sw - pw + kw, width)
                    total = FLT_MIN
                    squares = 0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            total = total + x[p, h, w]
                            squares = squares + x[p, h, w] * x[p, h, w]
                    y[p, i, j] = squares / total


def l2_pool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                    int kh, int kw, int sh, int sw, int ph, int pw):
    """y = sqrt of the sum of squares over each window's in-image pixels."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t ho = y.shape[1], wo = y.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1
    cdef floating squares
    with nogil:
        for p in prange(planes, schedule="static"):
            for i in range(ho):
                h0 = max(i * sh - ph, 0)
                h1 = min(i * sh - ph + kh, height)
                for j in range(wo):
                    w0 = max(j * sw - pw, 0)
                    w1 = min(j * sw - pw + kw, width)
                    squares = 0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            squares = squares + x[p, h, w] * x[p, h, w]
                    y[p, i, j] = sqrt(squares)


def l2_pool_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] y,
                     const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
                     int kh, int kw, int sh, int sw, int ph, int pw):
    """dx = sum over the windows holding a pixel of (dy / y) * x (0 where y = 0; written)."""
    cdef Py_ssize_t planes = dx.shape[0], height = dx.shape[1], width = dx.shape[2]
    cdef Py_ssize_t ho = dy.shape[1], wo = dy.shape[2]
    cdef Py_ssize_t p, i, j, h, w, h0, h1, w0, w1
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
                    if y[p, i, j] == 0:
                        continue
                    w0 = max(j * sw - pw, 0)
                    w1 = min(j * sw - pw + kw, width)
                    share = dy[p, i, j] / y[p, i, j]
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            dx[p, h, w] += share * x[p, h, w]


def pooled_size(size, kernel, pad, stride, ceil_mode):
    """Caffe's output length along one axis, before the padding clip."""
    span = size + 2 * pad - kernel
    return (-(-span // stride) if ceil_mode else span // stride) + 1


def same_padding(size, kernel, stride):
    """SAME's (output, pad before, pad after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def pad_sources(size, before, after, fill):
    """For each position of an axis padded by (before, after): the pixel it copies (-1: none)."""
    k = np.arange(-before, size + after)
    if fill == pb.REFLECT:
        k = np.abs(k)
        return np.where(k >= size, 2 * (size - 1) - k, k)
    if fill == pb.REPLICATE:
        return np.clip(k, 0, size - 1)
    return np.where((k >= 0) & (k < size), k, -1)


def _fold_last_axis(g, sources, before, size):
    """Sum g's padded positions along the last axis back into the pixels they copy."""
    out = g[..., before:before + size].copy()
    for k, source in enumerate(sources):
        if (k < before or k >= before + size) and source >= 0:
            out[..., source] += g[..., k]
    return out


class Pooling(Layer):
    """Max, average, stochastic or L2 pooling over 2-D windows of each (image, channel) plane."""

    type = "Pooling"
    num_bottom = 1
    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        p = self.param.pooling_param
        self.method = p.pool
        if self.method not in (P.MAX, P.AVE, P.STOCHASTIC, P.L2):
            raise NetError(f"layer '{self.name}': unknown pooling method {self.method}")
        if len(top) > 1 and self.method != P.MAX:
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
        self.same = p.pad_scheme == pb.SAME
        if self.same:
            given = [f for f in ("pad", "pad_h", "pad_w", "round_mode") if p.HasField(f)]
            if given:
                raise NetError(f"layer '{self.name}': pad_scheme SAME computes the padding "
                               f"and output size itself; remove {', '.join(given)}")
            if self.global_pooling:
                raise NetError(f"layer '{self.name}': global_pooling cannot use pad_scheme "
                               "SAME")
        self.pad = self._pair(p, "pad")
        self.pad_end = self.pad
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
        self.fill = p.pad_fill
        if p.HasField("pad_value") and self.fill != pb.CONSTANT:
            raise NetError(f"layer '{self.name}': pad_value applies only to pad_fill CONSTANT")
        self.pad_value = p.pad_value
        self.ceil_mode = p.round_mode == P.CEIL
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
        (kh, kw), (sh, sw) = self.kernel, self.stride
        if self.same:
            ho, ph, eh = same_padding(height, kh, sh)
            wo, pw, ew = same_padding(width, kw, sw)
            self.pad, self.pad_end = (ph, pw), (eh, ew)
        else:
            ph, pw = self.pad
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
        if self.fill == pb.REFLECT and (max(self.pad[0], self.pad_end[0]) >= height or
                                        max(self.pad[1], self.pad_end[1]) >= width):
            raise self.shape_error(f"REFLECT padding {self.pad} (before), {self.pad_end} "
                                   f"(after) must be smaller than the input {shape}")
        # Filled padding becomes real pixels: pool a padded copy with no padding of its own.
        self._filled = self.fill != pb.ZERO and max(self.pad + self.pad_end) > 0
        if self._filled:
            (ph, pw), (eh, ew) = self.pad, self.pad_end
            self._sources = (pad_sources(height, ph, eh, self.fill),
                             pad_sources(width, pw, ew, self.fill))
            self._work = (kh, kw, sh, sw, 0, 0, 0, 0)
        else:
            self._work = (kh, kw, sh, sw) + self.pad + self.pad_end
        for t in top:
            t.reshape(num, channels, ho, wo)
        if self.method in (P.MAX, P.STOCHASTIC) and (
                self._mask is None or self._mask.shape != (num * channels, ho, wo)):
            self._mask = np.empty((num * channels, ho, wo), np.intc)

    @staticmethod
    def _planes(array):
        """(N*C, H, W) view of a 4-D blob array."""
        return array.reshape((-1,) + array.shape[2:])

    def _work_input(self, xp, x):
        """x (N, C, H, W) with its filled padding made real pixels (x itself if none)."""
        if not self._filled:
            return x
        rows, cols = self._sources
        if self.fill == pb.CONSTANT:
            (ph, pw) = self.pad
            out = xp.full(x.shape[:2] + (len(rows), len(cols)), self.pad_value, x.dtype)
            out[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
            return out
        return xp.take(xp.take(x, xp.asarray(rows), axis=2), xp.asarray(cols), axis=3)

    def _fold(self, g, height, width):
        """The gradient of the padded copy summed back onto the image's pixels."""
        rows, cols = self._sources
        g = _fold_last_axis(g.swapaxes(-1, -2), rows, self.pad[0], height).swapaxes(-1, -2)
        return _fold_last_axis(g, cols, self.pad[1], width)

    def _source_index(self, xp, index, work_width, width):
        """Flat indices into the padded copy as flat indices into the image (-1: none)."""
        if not self._filled:
            return index
        rows, cols = (xp.asarray(s) for s in self._sources)
        found = index >= 0
        row, col = rows[index // work_width], cols[index % work_width]
        return xp.where(found & (row >= 0) & (col >= 0), row * width + col, -1)

    def _uniform(self, shape):
        """One U[0, 1) draw per window, in the layer's dtype, from the shared stream."""
        return rng().random(shape, dtype=self.dtype)

    def forward_cpu(self, bottom, top):
        x = self._planes(np.ascontiguousarray(self._work_input(np, bottom[0].data)))
        y = self._planes(top[0].data)
        kh, kw, sh, sw, ph, pw, eh, ew = self._work
        if self.method == P.MAX:
            max_pool_forward(x, y, self._mask, kh, kw, sh, sw, ph, pw)
        elif self.method == P.AVE:
            ave_pool_forward(x, y, kh, kw, sh, sw, ph, pw, eh, ew)
        elif self.method == P.L2:
            l2_pool_forward(x, y, kh, kw, sh, sw, ph, pw)
        elif self.phase == pb.TRAIN:
            stochastic_pool_train(x, self._uniform(y.shape), y, self._mask,
                                  kh, kw, sh, sw, ph, pw)
        else:
            stochastic_pool_test(x, y, kh, kw, sh, sw, ph, pw)
        if len(top) > 1:
            index = self._source_index(np, self._mask, x.shape[2], bottom[0].shape[3])
            top[1].data[...] = index.reshape(top[1].shape)

    def _check_backward(self):
        if self.method == P.STOCHASTIC and self.phase != pb.TRAIN:
            raise NetError(f"layer '{self.name}': STOCHASTIC pooling has no backward in the "
                           "TEST phase (its TEST forward is a weighted average, as in Caffe)")

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self._check_backward()
        num, channels, height, width = bottom[0].shape
        kh, kw, sh, sw, ph, pw, eh, ew = self._work
        dy = self._planes(np.ascontiguousarray(top[0].diff))
        if self._filled:
            rows, cols = self._sources
            dx = np.empty((num * channels, len(rows), len(cols)), bottom[0].diff.dtype)
        else:
            dx = self._planes(bottom[0].diff)
        if self.method in (P.MAX, P.STOCHASTIC):
            index_pool_backward(dy, self._mask, dx)
        elif self.method == P.AVE:
            ave_pool_backward(dy, dx, kh, kw, sh, sw, ph, pw, eh, ew)
        else:
            x = self._planes(np.ascontiguousarray(self._work_input(np, bottom[0].data)))
            y = self._planes(np.ascontiguousarray(top[0].data))
            l2_pool_backward(x, y, dy, dx, kh, kw, sh, sw, ph, pw)
        if self._filled:
            bottom[0].diff[...] = self._fold(dx, height, width).reshape(bottom[0].shape)

    # -- GPU (array-API; runs on numpy too) -------------------------------------

    def _offsets(self, ho, wo):
        """For each kernel offset (i, j), in row-major order: the canvas slices it covers."""
        kh, kw, sh, sw = self._work[:4]
        for i in range(kh):
            for j in range(kw):
                yield i, j, (Ellipsis, slice(i, i + sh * (ho - 1) + 1, sh),
                             slice(j, j + sw * (wo - 1) + 1, sw))

    def _canvas(self, xp, shape, ho, wo, fill, dtype, x=None):
        """A filled array holding x (N, C, H, W) at the padding offset, big enough for the
        padding and the last window's overhang."""
        kh, kw, sh, sw, ph, pw, eh, ew = self._work
        num, channels, height, width = shape
        canvas = xp.full((num, channels, max(height + ph + eh, (ho - 1) * sh + kh),
                          max(width + pw + ew, (wo - 1) * sw + kw)), fill, dtype)
        if x is not None:
            canvas[:, :, ph:ph + height, pw:pw + width] = x
        return canvas

    def _window_grid(self, xp, ho, wo):
        """Row and column of each window's first pixel, as (ho, 1) and (wo,) arrays."""
        kh, kw, sh, sw, ph, pw = self._work[:6]
        return xp.arange(ho)[:, None] * sh - ph, xp.arange(wo) * sw - pw

    def _divisor(self, xp, height, width, ho, wo):
        """Caffe's AVE divisor per output pixel (1 where a window is empty)."""
        kh, kw, sh, sw, ph, pw, eh, ew = self._work
        h0, w0 = np.arange(ho) * sh - ph, np.arange(wo) * sw - pw
        size = np.outer(np.minimum(h0 + kh, height + eh) - h0,
                        np.minimum(w0 + kw, width + ew) - w0)
        return xp.asarray(np.where(size > 0, size, 1))

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        x = self._work_input(xp, bottom[0].data)
        height, width = x.shape[2:]
        ho, wo = top[0].shape[2:]
        rows, cols = self._window_grid(xp, ho, wo)
        if self.method == P.MAX:
            canvas = self._canvas(xp, x.shape, ho, wo, -np.inf, x.dtype, x)
            best = xp.full(top[0].shape, LOWEST, x.dtype)
            index = xp.full(top[0].shape, -1, xp.int64)
            for i, j, window in self._offsets(ho, wo):
                values = canvas[window]
                better = values > best
                best = xp.where(better, values, best)
                index = xp.where(better, (rows + i) * width + cols + j, index)
            top[0].data[...] = best
            self._gpu_mask = index
            if len(top) > 1:
                top[1].data[...] = self._source_index(xp, index, width, bottom[0].shape[3])
            return
        canvas = self._canvas(xp, x.shape, ho, wo, 0, x.dtype, x)
        if self.method == P.AVE:
            total = xp.zeros(top[0].shape, x.dtype)
            for _, _, window in self._offsets(ho, wo):
                total += canvas[window]
            top[0].data[...] = total / self._divisor(xp, height, width, ho, wo)
        elif self.method == P.L2:
            squares = xp.zeros(top[0].shape, x.dtype)
            for _, _, window in self._offsets(ho, wo):
                squares += canvas[window] * canvas[window]
            top[0].data[...] = xp.sqrt(squares)
        elif self.phase == pb.TRAIN:
            self._stochastic_train_gpu(xp, canvas, top, rows, cols, height, width)
        else:
            total = xp.full(top[0].shape, SMALLEST, x.dtype)
            squares = xp.zeros(top[0].shape, x.dtype)
            for _, _, window in self._offsets(ho, wo):
                total += canvas[window]
                squares += canvas[window] * canvas[window]
            top[0].data[...] = squares / total

    def _stochastic_train_gpu(self, xp, canvas, top, rows, cols, height, width):
        """The CPU kernel's draw, one kernel offset at a time over all windows at once."""
        ho, wo = top[0].shape[2:]
        shape, dtype = top[0].shape, canvas.dtype
        u = xp.asarray(self._uniform((shape[0] * shape[1], ho, wo))).reshape(shape)
        total = xp.zeros(shape, dtype)
        for _, _, window in self._offsets(ho, wo):
            total += canvas[window]
        threshold = u * total
        running = xp.zeros(shape, dtype)
        found = xp.zeros(shape, bool)
        value, index = xp.zeros(shape, dtype), xp.full(shape, -1, xp.int64)
        for i, j, window in self._offsets(ho, wo):
            inside = (((rows + i >= 0) & (rows + i < height)) &
                      ((cols + j >= 0) & (cols + j < width)))
            values = canvas[window]
            running += values
            # Until the draw is found, the latest in-image pixel stands in (Caffe's walk).
            take = inside & ~found
            value = xp.where(take, values, value)
            index = xp.where(take, (rows + i) * width + cols + j, index)
            found |= take & (running >= threshold)
        top[0].data[...] = value
        self._gpu_mask = index

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self._check_backward()
        dy = top[0].diff
        xp = array_module(dy)
        num, channels, height, width = bottom[0].shape
        x = self._work_input(xp, bottom[0].data)
        work_height, work_width = x.shape[2:]
        ho, wo = dy.shape[2:]
        kh, kw, sh, sw, ph, pw = self._work[:6]
        grad = self._canvas(xp, x.shape, ho, wo, 0, dy.dtype)
        if self.method in (P.MAX, P.STOCHASTIC):
            rows, cols = self._window_grid(xp, ho, wo)
            for i, j, window in self._offsets(ho, wo):
                here = self._gpu_mask == (rows + i) * work_width + cols + j
                grad[window] += xp.where(here, dy, 0)
        elif self.method == P.AVE:
            share = dy / self._divisor(xp, work_height, work_width, ho, wo)
            for _, _, window in self._offsets(ho, wo):
                grad[window] += share
        else:
            canvas = self._canvas(xp, x.shape, ho, wo, 0, x.dtype, x)
            y = top[0].data
            share = xp.where(y != 0, dy / xp.where(y != 0, y, 1), 0)
            for _, _, window in self._offsets(ho, wo):
                grad[window] += share * canvas[window]
        grad = grad[:, :, ph:ph + work_height, pw:pw + work_width]
        bottom[0].diff[...] = self._fold(grad, height, width) if self._filled else grad
