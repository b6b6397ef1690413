"""Pooling kernels over 2-D windows of (image, channel) planes, and their array-API twins.

The methods (strings at the Python level):
  "max"         the largest in-image value (padding never wins; the first of equal values
                does); its flat index h*W + w is kept in the mask (-1: none)
  "ave"         the in-image sum over Caffe's divisor, the window clipped to the padded
                image [-pad_before, size + pad_after) (padding counts, overhang does not)
  "l2"          sqrt of the sum of squares
  "stochastic"  (TRAIN) the first in-image pixel whose running sum reaches u * (window
                sum), u ~ U[0, 1) given per window; its index goes to the mask
  "weighted"    (stochastic's TEST) sum(x^2) / (FLT_MIN + sum(x))

Every method walks one window loop: window_span gives the in-image rows and columns of a
window, pool_window reduces them. The kernels read a window.Geometry's source planes
(P, H, W); filled padding is already part of them. float32 max and average forwards with
stride 1 or 2 along the rows take the AVX-512 kernels.
"""
cimport cython
import numpy as np
from cython.parallel import prange
from cython cimport floating
from libc.float cimport FLT_MAX, FLT_MIN
from libc.math cimport sqrt

from . cimport avx512
from . import padding
from .step cimport Step
from .window cimport Window, window_of
from .parallel cimport PARALLEL_WORK

cdef enum Method:
    MAX, AVE, L2, STOCHASTIC, WEIGHTED

METHODS = {"max": MAX, "ave": AVE, "l2": L2, "stochastic": STOCHASTIC, "weighted": WEIGHTED}
# The methods that record which pixel each window took.
ROUTED = ("max", "stochastic")
# Caffe starts every max at -FLT_MAX; a window with no pixel in the image keeps it.
LOWEST = -np.finfo(np.float32).max


cdef struct Span:
    Py_ssize_t h0, h1, w0, w1      # the window's in-image rows [h0, h1), columns [w0, w1)
    Py_ssize_t size                # Caffe's AVE divisor


cdef inline Span window_span(const Window* w, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef Span s
    cdef Py_ssize_t top = i * w.sh - w.ph, left = j * w.sw - w.pw
    s.h0, s.h1 = max(top, 0), min(top + w.kh, w.height)
    s.w0, s.w1 = max(left, 0), min(left + w.kw, w.width)
    s.size = (min(top + w.kh, w.height + w.eh) - top) * (min(left + w.kw, w.width + w.ew) - left)
    return s


cdef inline floating pool_window(Method method, const floating* x, Py_ssize_t width, Span s,
                                 floating u, int* index) noexcept nogil:
    """The method's value over window s of the plane x; sets *index for MAX/STOCHASTIC."""
    cdef Py_ssize_t h, w, chosen = -1
    cdef floating value, total = FLT_MIN if method == WEIGHTED else 0, squares = 0
    cdef floating best = -FLT_MAX
    if method == MAX:
        for h in range(s.h0, s.h1):
            for w in range(s.w0, s.w1):
                if x[h * width + w] > best:
                    best = x[h * width + w]
                    chosen = h * width + w
        index[0] = <int>chosen
        return best
    for h in range(s.h0, s.h1):
        for w in range(s.w0, s.w1):
            value = x[h * width + w]
            total = total + value
            if method == L2 or method == WEIGHTED:
                squares = squares + value * value
    if method == AVE:
        # Only a window wholly past an unpadded edge has no size (and no pixel).
        return total / s.size if s.size > 0 else 0
    if method == L2:
        return sqrt(squares)
    if method == WEIGHTED:
        return squares / total
    # STOCHASTIC: should the running sum never reach the threshold (only with negative
    # inputs), the window's last pixel is taken; an empty window gives 0 and no index.
    u = u * total
    total = 0
    for h in range(s.h0, s.h1):
        for w in range(s.w0, s.w1):
            total = total + x[h * width + w]
            chosen = h * width + w
            if total >= u:
                index[0] = <int>chosen
                return x[chosen]
    index[0] = <int>chosen
    return x[chosen] if chosen >= 0 else 0


cdef inline void pool_plane(Method m, const Window* w, bint vector, const floating* x,
                            floating* y, int* mask, const floating* u) noexcept nogil:
    """One plane of pool_planes: x (height, width) to y, mask, u (ho, wo)."""
    cdef Py_ssize_t i, j, at
    cdef int unused
    cdef int* index = &unused
    if floating is float:
        if vector and m == MAX:
            avx512.max_pool_plane(x, w.height, w.width, y, mask, w.ho, w.wo, w.kh, w.kw, w.sh,
                                  w.sw, w.ph, w.pw)
            return
        if vector:
            avx512.ave_pool_plane(x, w.height, w.width, y, w.ho, w.wo, w.kh, w.kw, w.sh, w.sw,
                                  w.ph, w.pw, w.eh, w.ew)
            return
    for i in range(w.ho):
        for j in range(w.wo):
            at = i * w.wo + j
            if (m == MAX or m == STOCHASTIC) and mask != NULL:
                index = mask + at
            y[at] = pool_window(m, x, w.width, window_span(w, i, j),
                                u[at] if m == STOCHASTIC else 0, index)


cdef void pool_planes(Method m, const Window* w, Py_ssize_t planes, const floating* x,
                      floating* y, int* mask, const floating* u) noexcept nogil:
    """y (planes, ho, wo) = the method over each window of the source planes x; mask (MAX,
    STOCHASTIC; MAX may go without: NULL) gets each window's pixel, u (STOCHASTIC) holds
    each window's draw."""
    cdef Py_ssize_t p, area = w.height * w.width, out = w.ho * w.wo
    cdef bint vector = (floating is float and w.sw <= 2 and (m == MAX or m == AVE) and
                        avx512.enabled())
    # The AVX-512 kernels do a window element in a quarter of the time PARALLEL_WORK counts
    # on: MTCNN det4's 448 planes of 22x22 took 81 us on one thread, 104-130 on two.
    if planes * out * w.kh * w.kw < (4 * PARALLEL_WORK if vector else PARALLEL_WORK):
        for p in range(planes):
            pool_plane(m, w, vector, x + p * area, y + p * out,
                       mask + p * out if mask != NULL else NULL,
                       u + p * out if u != NULL else NULL)
        return
    for p in prange(planes, schedule="static"):
        pool_plane(m, w, vector, x + p * area, y + p * out,
                   mask + p * out if mask != NULL else NULL, u + p * out if u != NULL else NULL)


@cython.boundscheck(False)
@cython.wraparound(False)
def forward(str method, geometry, const floating[:, :, ::1] x, floating[:, :, ::1] y,
            int[:, :, ::1] mask=None, const floating[:, :, ::1] u=None):
    """y (P, ho, wo) = the method over each window of the source planes x (P, H, W); mask
    (max, stochastic) gets each window's pixel (max without one: the values only), u
    (stochastic) holds each window's draw."""
    cdef Window w = window_of(geometry)
    cdef Method m = METHODS[method]
    if m == STOCHASTIC and (mask is None or u is None):
        raise ValueError(f"pooling.forward: {method} needs a mask and draws")
    cdef int* masks = &mask[0, 0, 0] if mask is not None and mask.shape[0] else NULL
    cdef const floating* draws = &u[0, 0, 0] if u is not None and u.shape[0] else NULL
    if x.shape[0] == 0:
        return
    with nogil:
        pool_planes(m, &w, x.shape[0], &x[0, 0, 0], &y[0, 0, 0], masks, draws)


cdef class ForwardStep(Step):
    """A float32 max or average pooling forward as a net's step; its mask is the layer's,
    or none (forward_only)."""

    cdef Method method
    cdef Window w
    cdef Py_ssize_t planes
    cdef const float* x
    cdef float* y
    cdef int* mask

    def __init__(self, str method, geometry, const float[:, :, ::1] x, float[:, :, ::1] y,
                 int[:, :, ::1] mask):
        if method not in ("max", "ave") or x.shape[0] == 0:
            raise ValueError(f"pooling.ForwardStep: {method} pooling of {x.shape[0]} planes")
        self.keep += [geometry, x, y, mask]
        self.method, self.w, self.planes = METHODS[method], window_of(geometry), x.shape[0]
        if (x.shape[1] != self.w.height or x.shape[2] != self.w.width or
                y.shape[0] != x.shape[0] or y.shape[1] != self.w.ho or
                y.shape[2] != self.w.wo):
            raise ValueError("pooling.ForwardStep: the arrays do not fit the geometry")
        self.x, self.y = &x[0, 0, 0], &y[0, 0, 0]
        if mask is not None:
            if (mask.shape[0] != y.shape[0] or mask.shape[1] != y.shape[1] or
                    mask.shape[2] != y.shape[2]):
                raise ValueError("pooling.ForwardStep: the mask does not fit the output")
            self.mask = &mask[0, 0, 0]

    cdef int run(self) except -1:
        with nogil:
            pool_planes(self.method, &self.w, self.planes, self.x, self.y, self.mask,
                        <const float*>NULL)
        return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def backward(str method, geometry, const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
             const int[:, :, ::1] mask=None, const floating[:, :, ::1] x=None,
             const floating[:, :, ::1] y=None):
    """dx (P, H, W; written) = each window's dy sent back to its pixels: to the recorded one
    (max, stochastic: mask), shared over the divisor (ave), or as dy * x / y (l2: x and y,
    0 where y = 0)."""
    cdef Window w = window_of(geometry)
    cdef Method m = METHODS[method]
    cdef Py_ssize_t planes = dx.shape[0], p, i, j, h, k
    cdef bint routed = m == MAX or m == STOCHASTIC
    cdef floating share
    cdef Span s
    if m == WEIGHTED:
        raise ValueError("pooling.backward: stochastic's TEST forward has no backward")
    if (routed and mask is None) or (m == L2 and (x is None or y is None)):
        raise ValueError(f"pooling.backward: {method} needs " +
                         ("the mask" if routed else "x and y"))
    cdef Py_ssize_t height = w.height, width = w.width, ho = w.ho, wo = w.wo
    with nogil:
        for p in prange(planes, schedule="static",
                        use_threads_if=planes * (height * width + ho * wo * w.kh * w.kw)
                        >= PARALLEL_WORK):
            for h in range(height):
                for k in range(width):
                    dx[p, h, k] = 0
            if routed:
                for i in range(ho):
                    for j in range(wo):
                        k = mask[p, i, j]
                        if k >= 0:
                            dx[p, k // width, k % width] += dy[p, i, j]
                continue
            for i in range(ho):
                for j in range(wo):
                    s = window_span(&w, i, j)
                    if m == AVE:
                        if s.size <= 0:
                            continue
                        share = dy[p, i, j] / s.size
                        for h in range(s.h0, s.h1):
                            for k in range(s.w0, s.w1):
                                dx[p, h, k] += share
                    elif y[p, i, j] != 0:
                        share = dy[p, i, j] / y[p, i, j]
                        for h in range(s.h0, s.h1):
                            for k in range(s.w0, s.w1):
                                dx[p, h, k] += share * x[p, h, k]


def image_index(xp, geometry, index):
    """Flat indices into the source planes as flat indices into the image (-1: none, a
    constant of the padding)."""
    if not geometry.copies:
        return index
    (height, width), (ph, pw), (eh, ew) = (geometry.in_shape, geometry.pad_before,
                                           geometry.pad_after)
    rows = xp.asarray(padding.source_positions(height, ph, eh, geometry.fill))
    cols = xp.asarray(padding.source_positions(width, pw, ew, geometry.fill))
    source_width = geometry.source_shape[1]
    found = index >= 0
    row, col = rows[index // source_width], cols[index % source_width]
    return xp.where(found & (row >= 0) & (col >= 0), row * width + col, -1)


# -- array-API (the GPU path; runs on numpy too): one kernel offset at a time over every
# window at once, on a canvas that holds the source at the padding offset. ----------------


def _offsets(geometry):
    """For each kernel offset (i, j), in row-major order: the canvas slices it covers."""
    (kh, kw), (sh, sw), (ho, wo) = geometry.kernel, geometry.stride, geometry.out_shape
    for i in range(kh):
        for j in range(kw):
            yield i, j, (Ellipsis, slice(i, i + sh * (ho - 1) + 1, sh),
                         slice(j, j + sw * (wo - 1) + 1, sw))


def _canvas(xp, geometry, shape, fill, dtype, x=None):
    """A filled (N, C, ...) array with x at the padding offset, big enough for the padding
    and the last window's overhang."""
    (height, width), (ph, pw), (eh, ew) = (geometry.source_shape, geometry.source_pads,
                                           geometry.source_pads_after)
    (kh, kw), (sh, sw), (ho, wo) = geometry.kernel, geometry.stride, geometry.out_shape
    canvas = xp.full(tuple(shape[:2]) + (max(height + ph + eh, (ho - 1) * sh + kh),
                                         max(width + pw + ew, (wo - 1) * sw + kw)), fill, dtype)
    if x is not None:
        canvas[:, :, ph:ph + height, pw:pw + width] = x
    return canvas


def _window_grid(xp, geometry):
    """Row and column of each window's first source pixel, as (ho, 1) and (wo,) arrays."""
    (sh, sw), (ph, pw), (ho, wo) = geometry.stride, geometry.source_pads, geometry.out_shape
    return xp.arange(ho)[:, None] * sh - ph, xp.arange(wo) * sw - pw


def _divisor(xp, geometry):
    """Caffe's AVE divisor per output pixel (1 where a window is empty)."""
    (height, width), (ph, pw), (eh, ew) = (geometry.source_shape, geometry.source_pads,
                                           geometry.source_pads_after)
    (kh, kw), (sh, sw), (ho, wo) = geometry.kernel, geometry.stride, geometry.out_shape
    h0, w0 = np.arange(ho) * sh - ph, np.arange(wo) * sw - pw
    size = np.outer(np.minimum(h0 + kh, height + eh) - h0, np.minimum(w0 + kw, width + ew) - w0)
    return xp.asarray(np.where(size > 0, size, 1))


def _sums(xp, geometry, canvas, out_shape, squared=False, start=0):
    total = xp.full(out_shape, start, canvas.dtype)
    for _, _, window in _offsets(geometry):
        total += canvas[window] * canvas[window] if squared else canvas[window]
    return total


def forward_xp(xp, method, geometry, x, u=None):
    """forward() on the source images x (N, C, H, W): (y, index), index None unless the
    method records one."""
    out_shape = x.shape[:2] + geometry.out_shape
    height, width = geometry.source_shape
    rows, cols = _window_grid(xp, geometry)
    if method == "max":
        canvas = _canvas(xp, geometry, x.shape, -np.inf, x.dtype, x)
        best = xp.full(out_shape, LOWEST, x.dtype)
        index = xp.full(out_shape, -1, xp.int64)
        for i, j, window in _offsets(geometry):
            values = canvas[window]
            better = values > best
            best = xp.where(better, values, best)
            index = xp.where(better, (rows + i) * width + cols + j, index)
        return best, index
    canvas = _canvas(xp, geometry, x.shape, 0, x.dtype, x)
    if method == "ave":
        return _sums(xp, geometry, canvas, out_shape) / _divisor(xp, geometry), None
    if method == "l2":
        return xp.sqrt(_sums(xp, geometry, canvas, out_shape, squared=True)), None
    if method == "weighted":
        return (_sums(xp, geometry, canvas, out_shape, squared=True) /
                _sums(xp, geometry, canvas, out_shape, start=FLT_MIN)), None
    # stochastic: the CPU kernel's walk, every window at once
    threshold = u.reshape(out_shape) * _sums(xp, geometry, canvas, out_shape)
    running = xp.zeros(out_shape, x.dtype)
    found = xp.zeros(out_shape, bool)
    value, index = xp.zeros(out_shape, x.dtype), xp.full(out_shape, -1, xp.int64)
    for i, j, window in _offsets(geometry):
        inside = (((rows + i >= 0) & (rows + i < height)) &
                  ((cols + j >= 0) & (cols + j < width)))
        values = canvas[window]
        running += values
        # Until the draw is found, the latest in-image pixel stands in (Caffe's walk).
        take = inside & ~found
        value = xp.where(take, values, value)
        index = xp.where(take, (rows + i) * width + cols + j, index)
        found |= take & (running >= threshold)
    return value, index


def backward_xp(xp, method, geometry, dy, index=None, x=None, y=None):
    """backward() in array-API code: the gradient of the source images (N, C, H, W)."""
    height, width = geometry.source_shape
    (ph, pw) = geometry.source_pads
    grad = _canvas(xp, geometry, dy.shape, 0, dy.dtype)
    if method in ROUTED:
        rows, cols = _window_grid(xp, geometry)
        for i, j, window in _offsets(geometry):
            grad[window] += xp.where(index == (rows + i) * width + cols + j, dy, 0)
    elif method == "ave":
        share = dy / _divisor(xp, geometry)
        for _, _, window in _offsets(geometry):
            grad[window] += share
    else:
        canvas = _canvas(xp, geometry, x.shape, 0, x.dtype, x)
        share = xp.where(y != 0, dy / xp.where(y != 0, y, 1), 0)
        for _, _, window in _offsets(geometry):
            grad[window] += share * canvas[window]
    return grad[:, :, ph:ph + height, pw:pw + width]
