"""LRN: y = x * scale^-beta, scale = shift + a * (sum of x^2 over a local window)  (Caffe's LRN).

local_size n must be odd; windows are centred and zero-padded.
* ACROSS_CHANNELS: the window is n neighbouring channels at the same pixel;
  shift = k, a = alpha / n.
* WITHIN_CHANNEL: the window is n x n pixels of the same channel. Caffe builds this from
  AVE pooling (pad (n - 1) / 2, stride 1, whose divisor is always n^2 here) and a Power
  layer with shift 1: shift = 1 (k is not used), a = alpha / n^2.
Backward: dx = dy * scale^-beta - 2 * a * beta * x * W(dy * y / scale), where W is the
same window sum (the windows are symmetric). Does not run in place.
"""
cimport cython
from cython.parallel import prange
from cython cimport floating
from libc.math cimport pow, powf, sqrt, sqrtf

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base import Layer, scratch_like
from .kernels import arena
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


@cython.boundscheck(False)
@cython.wraparound(False)
def window_sum(const floating[:, :, ::1] src, floating[:, :, ::1] out, int half,
               bint square):
    """out[n, c, s] = sum of src (or src^2) over [c - half, c + half] in range, on the middle
    axis: the channels of (N, C, H * W), or the rows of (planes, H, W)."""
    cdef Py_ssize_t r, n, c, j, s, lo, hi
    cdef Py_ssize_t channels = src.shape[1], spatial = src.shape[2]
    cdef Py_ssize_t rows = src.shape[0] * channels
    cdef floating v
    with nogil:
        for r in prange(rows, schedule="static",
                        use_threads_if=rows * spatial * (2 * half + 1) >= PARALLEL_WORK):
            n = r // channels
            c = r % channels
            lo = c - half if c >= half else 0
            hi = c + half if c + half < channels else channels - 1
            for s in range(spatial):
                out[n, c, s] = 0
            for j in range(lo, hi + 1):
                for s in range(spatial):
                    v = src[n, j, s]
                    out[n, c, s] += v * v if square else v


@cython.boundscheck(False)
@cython.wraparound(False)
def row_window_sum(const floating[:, :, ::1] src, floating[:, :, ::1] out, int half,
                   bint square):
    """out[p, h, w] = sum of src (or src^2) over [w - half, w + half] in range, along rows."""
    cdef Py_ssize_t p, h, w, j, lo, hi
    cdef Py_ssize_t planes = src.shape[0], height = src.shape[1], width = src.shape[2]
    cdef floating v, acc
    with nogil:
        for p in prange(planes, schedule="static",
                        use_threads_if=planes * height * width * (2 * half + 1) >= PARALLEL_WORK):
            for h in range(height):
                for w in range(width):
                    lo = w - half if w >= half else 0
                    hi = w + half if w + half < width else width - 1
                    acc = 0
                    for j in range(lo, hi + 1):
                        v = src[p, h, j]
                        acc = acc + (v * v if square else v)
                    out[p, h, w] = acc


cdef extern from "kernels/lrn.h":
    enum: LRN_BLOCK "CYFFE_LRN_BLOCK"
    void lrn_across_f32 "cyffe_lrn_across_f32" (
        const float* x, float* y, float* scale, Py_ssize_t channels, Py_ssize_t pixels,
        Py_ssize_t p0, Py_ssize_t p1, int half, float shift, float a, double beta) noexcept nogil
    void lrn_across_f64 "cyffe_lrn_across_f64" (
        const double* x, double* y, double* scale, Py_ssize_t channels, Py_ssize_t pixels,
        Py_ssize_t p0, Py_ssize_t p1, int half, double shift, double a,
        double beta) noexcept nogil


@cython.boundscheck(False)
@cython.wraparound(False)
def lrn_across(const floating[:, :, ::1] x, floating[:, :, ::1] y, floating[:, :, ::1] scale,
               int half, double shift, double a, double beta):
    """y = x (shift + a * window sum of x^2 across the channels)^-beta for x (N, C, H*W),
    in one pass over blocks of pixels; scale gets the bracket unless it is None."""
    cdef Py_ssize_t num = x.shape[0], channels = x.shape[1], pixels = x.shape[2]
    cdef Py_ssize_t blocks = (pixels + LRN_BLOCK - 1) // LRN_BLOCK, item, n, p0, p1
    cdef bint keep = scale is not None
    with nogil:
        for item in prange(num * blocks, schedule="static", use_threads_if=num * channels *
                           pixels * (2 * half + 1 + TRANSCENDENTAL) >= PARALLEL_WORK):
            n = item // blocks
            p0 = item % blocks * LRN_BLOCK
            p1 = min(p0 + LRN_BLOCK, pixels)
            if floating is float:
                lrn_across_f32(&x[n, 0, 0], &y[n, 0, 0], &scale[n, 0, 0] if keep else NULL,
                               channels, pixels, p0, p1, half, <float>shift, <float>a, beta)
            else:
                lrn_across_f64(&x[n, 0, 0], &y[n, 0, 0], &scale[n, 0, 0] if keep else NULL,
                               channels, pixels, p0, p1, half, shift, a, beta)


cdef inline floating power(floating s, double beta) noexcept nogil:
    """s^-beta; beta = 0.75 (AlexNet's, GoogLeNet's) as 1 / sqrt(s sqrt(s)), without pow."""
    if beta == 0.75:
        if floating is float:
            return 1 / sqrtf(s * sqrtf(s))
        return 1 / sqrt(s * sqrt(s))
    if floating is float:
        return powf(s, <float>-beta)
    return pow(s, -beta)


@cython.boundscheck(False)
@cython.wraparound(False)
def lrn_output(const floating[::1] x, floating[::1] scale, floating[::1] y, double shift,
               double a, double beta):
    """scale = shift + a * scale (scale holds the window sums on entry), y = x scale^-beta."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating s, k = <floating>shift, alpha = <floating>a
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            s = k + alpha * scale[i]
            scale[i] = s
            y[i] = x[i] * power(s, beta)


@cython.boundscheck(False)
@cython.wraparound(False)
def lrn_ratio(const floating[::1] dy, const floating[::1] x, const floating[::1] scale,
              floating[::1] ratio, double beta):
    """ratio = dy * y / scale = dy * x * scale^-beta / scale."""
    cdef Py_ssize_t i, n = dy.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            ratio[i] = dy[i] * x[i] * power(scale[i], beta) / scale[i]


@cython.boundscheck(False)
@cython.wraparound(False)
def lrn_input_grad(const floating[::1] dy, const floating[::1] x, const floating[::1] scale,
                   const floating[::1] window, floating[::1] dx, double beta, double coef):
    """dx = dy * scale^-beta - coef * x * window."""
    cdef Py_ssize_t i, n = dy.shape[0]
    cdef floating c = <floating>coef
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            dx[i] = dy[i] * power(scale[i], beta) - c * x[i] * window[i]


class LRN(Layer):
    """Local response normalization across channels or within each channel."""

    type = "LRN"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.lrn_param
        if p.local_size % 2 == 0:
            raise NetError(f"layer '{self.name}' (LRN): local_size must be odd, got "
                           f"{p.local_size}")
        if p.norm_region not in (pb.LRNParameter.ACROSS_CHANNELS,
                                 pb.LRNParameter.WITHIN_CHANNEL):
            raise NetError(f"layer '{self.name}' (LRN): unknown norm_region {p.norm_region}")
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (LRN) does not run in place: its backward "
                           "needs the input")
        self.size = p.local_size
        self.half = (p.local_size - 1) // 2
        self.beta = p.beta
        self.across = p.norm_region == pb.LRNParameter.ACROSS_CHANNELS
        if self.across:
            self.shift, self.a = p.k, p.alpha / p.local_size
        else:
            self.shift, self.a = 1.0, p.alpha / (p.local_size * p.local_size)
        self.scale = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise self.shape_error(f"the bottom must be 4-D (num, channels, height, width), "
                                   f"got {shape}")
        n, c, h, w = shape
        self.dims = (n, c, h * w) if self.across else (n * c, h, w)
        top[0].reshape(shape)

    def _window_sum_cpu(self, src, out, square, take):
        src, out = src.reshape(self.dims), out.reshape(self.dims)
        if not self.across:
            # The n x n window: along the rows, then down the columns of the row sums.
            tmp = take(self.dims, src.dtype)
            row_window_sum(src, tmp, self.half, square)
            src, square = tmp, False
        window_sum(src, out, self.half, square)

    def forward_cpu(self, bottom, top):
        x = bottom[0].data
        if self.across:
            if not self.forward_only:
                self.scale = scratch_like(self.scale, x)       # kept for backward
            lrn_across(x.reshape(self.dims), top[0].data.reshape(self.dims),
                       None if self.forward_only else self.scale.reshape(self.dims),
                       self.half, self.shift, self.a, self.beta)
            return
        with arena.scratch() as take:
            if self.forward_only:
                scale = take(x.shape, x.dtype)
            else:
                scale = self.scale = scratch_like(self.scale, x)      # kept for backward
            self._window_sum_cpu(x, scale, True, take)
            lrn_output(x.reshape(-1), scale.reshape(-1), top[0].data.reshape(-1), self.shift,
                       self.a, self.beta)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # y is recomputed from x and scale^-beta: a later in-place layer may have changed
        # the top.
        dy, x = top[0].diff.reshape(-1), bottom[0].data.reshape(-1)
        with arena.scratch() as take:
            ratio, window = take(x.shape, x.dtype), take(x.shape, x.dtype)
            lrn_ratio(dy, x, self.scale.reshape(-1), ratio.reshape(-1), self.beta)
            self._window_sum_cpu(ratio, window, False, take)
            lrn_input_grad(dy, x, self.scale.reshape(-1), window.reshape(-1),
                           bottom[0].diff.reshape(-1), self.beta, 2.0 * self.a * self.beta)

    def _window_sum_gpu(self, src):
        """Zero-padded window sums with array ops (runs on numpy and cupy)."""
        xp = array_module(src)
        h = self.half
        if self.across:
            n, c, s = self.dims
            padded = xp.zeros((n, c + 2 * h, s), src.dtype)
            padded[:, h:h + c] = src.reshape(self.dims)
            return sum(padded[:, j:j + c] for j in range(self.size))
        p, height, width = self.dims
        padded = xp.zeros((p, height + 2 * h, width + 2 * h), src.dtype)
        padded[:, h:h + height, h:h + width] = src.reshape(self.dims)
        rows = sum(padded[:, :, j:j + width] for j in range(self.size))
        return sum(rows[:, j:j + height] for j in range(self.size))

    def forward_gpu(self, bottom, top):
        x = bottom[0].data
        self.scale_gpu = self.shift + self.a * self._window_sum_gpu(x * x).reshape(x.shape)
        top[0].data[...] = x * self.scale_gpu ** -self.beta

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, x = top[0].diff, bottom[0].data
        scale = self.scale_gpu
        window = self._window_sum_gpu(dy * x * scale ** (-self.beta - 1)).reshape(x.shape)
        bottom[0].diff[...] = (dy * scale ** -self.beta
                               - 2.0 * self.a * self.beta * x * window)
