"""Depthwise convolution (2-D, group == C, num_output = C * multiplier): direct kernels, no
columns and no GEMM. Output plane o reads input plane o // multiplier:

    y[n, o] = sum_ij w[o, i, j] x[n, o // M, y*sh - ph + i*dh, x*sw - pw + j*dw] + b[o]

The kernels read the geometry's source (the image, or its padded copy); forward and
backward take the images and do the padding themselves.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from . import arena
from .window cimport Window, end_inside, first_inside, window_of
from .parallel cimport PARALLEL_WORK


def forward(geometry, x, weights, bias, y, slopes=None):
    """y (N, M, *out) = the depthwise convolution of the images x (N, C, H, W) by weights
    (M, 1, kh, kw) plus bias (M,; None: none), then a ReLU of negative slope slopes[o] per
    output unless slopes is None."""
    kernel_shape = (weights.shape[0],) + geometry.kernel
    with arena.scratch() as take:
        forward_planes(geometry, geometry.source(x, take), weights.reshape(kernel_shape),
                       bias if bias is not None else np.empty(0, x.dtype), y, slopes)


def backward(geometry, x, weights, dy, dx, weight_diff, bias_diff):
    """Accumulate the weight and bias (None: none) gradients of dy; write dx unless None."""
    kernel_shape = (weights.shape[0],) + geometry.kernel
    with arena.scratch() as take:
        rows = take((dy.shape[1], kernel_shape[1] * kernel_shape[2] + 1, dy.shape[3]), dy.dtype)
        backward_params_planes(geometry, geometry.source(x, take), dy,
                               weight_diff.reshape(kernel_shape),
                               bias_diff if bias_diff is not None else np.empty(0, x.dtype),
                               rows)
    if dx is not None:
        with arena.scratch() as take:
            g = geometry.source_gradient(dx, take)
            backward_data_planes(geometry, dy, weights.reshape(kernel_shape), g)
            geometry.fold(g, dx)


cdef inline void correlate(const floating[:, :, :, ::1] src, floating[:, :, :, ::1] dst,
                           const floating[:, :, ::1] w, const Window* win, Py_ssize_t n,
                           Py_ssize_t o, Py_ssize_t c, bint adjoint) noexcept nogil:
    """Output plane (n, o) and image plane (n, c) through the kernel w[o], accumulated into dst.

    Forward (src the images, dst the outputs): out += w (*) image. Adjoint (src the outputs,
    dst the images): image += w (*)^T out. Both visit the same pixel pairs in the same order.
    """
    cdef Py_ssize_t ph = win.ph, pw = win.pw, sh = win.sh, sw = win.sw, dh = win.dh
    cdef Py_ssize_t dw = win.dw, height = win.height, width = win.width, ho = win.ho
    cdef Py_ssize_t wo = win.wo
    cdef Py_ssize_t i, j, yo, xo, y0, y1, x0, x1, hin, shift
    cdef floating weight
    for i in range(win.kh):
        y0 = first_inside(ph - i * dh, sh)
        y1 = end_inside(ph - i * dh, sh, height, ho)
        for j in range(win.kw):
            shift = pw - j * dw
            x0 = first_inside(shift, sw)
            x1 = end_inside(shift, sw, width, wo)
            weight = w[o, i, j]
            for yo in range(y0, y1):
                hin = yo * sh - ph + i * dh
                if adjoint:
                    for xo in range(x0, x1):
                        dst[n, c, hin, xo * sw - shift] += weight * src[n, o, yo, xo]
                else:
                    for xo in range(x0, x1):
                        dst[n, o, yo, xo] += weight * src[n, c, hin, xo * sw - shift]


def forward_planes(geometry, const floating[:, :, :, ::1] x, const floating[:, :, ::1] w,
                   const floating[::1] bias, floating[:, :, :, ::1] y,
                   const double[::1] slopes=None):
    """y[n, o] = sum_ij w[o, i, j] x[n, o // M, y*sh - ph + i*dh, x*sw - pw + j*dw] + b[o],
    then (slopes) y if y > 0 else slopes[o] * y."""
    cdef Window win = window_of(geometry)
    cdef Py_ssize_t num = y.shape[0], outputs = y.shape[1], ho = y.shape[2], wo = y.shape[3]
    cdef Py_ssize_t multiplier = outputs // x.shape[1]
    cdef Py_ssize_t plane, n, o, yo, xo
    cdef bint has_bias = bias.shape[0] > 0, relu = slopes is not None
    cdef floating b, v, slope
    with nogil:
        for plane in prange(num * outputs, schedule="static",
                            use_threads_if=num * outputs * ho * wo * win.kh * win.kw
                            >= PARALLEL_WORK):
            n = plane // outputs
            o = plane % outputs
            b = bias[o] if has_bias else 0
            for yo in range(ho):
                for xo in range(wo):
                    y[n, o, yo, xo] = b
            correlate(x, y, w, &win, n, o, o // multiplier, False)
            slope = <floating>slopes[o] if relu else 0     # exact: a float32 value
            for yo in range(ho if relu else 0):
                for xo in range(wo):
                    v = y[n, o, yo, xo]
                    y[n, o, yo, xo] = v if v > 0 else v * slope


def backward_data_planes(geometry, const floating[:, :, :, ::1] dy, const floating[:, :, ::1] w,
                         floating[:, :, :, ::1] dx):
    """dx[n, c] = the sum over c's outputs of w (*)^T dy (written, not accumulated)."""
    cdef Window win = window_of(geometry)
    cdef Py_ssize_t num = dx.shape[0], channels = dx.shape[1]
    cdef Py_ssize_t height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t multiplier = dy.shape[1] // channels
    cdef Py_ssize_t plane, n, c, m, yo, xo
    with nogil:
        # Each input plane gathers from its own outputs: no races.
        for plane in prange(num * channels, schedule="static",
                            use_threads_if=num * dy.shape[1] * height * width * win.kh * win.kw
                            >= PARALLEL_WORK):
            n = plane // channels
            c = plane % channels
            for yo in range(height):
                for xo in range(width):
                    dx[n, c, yo, xo] = 0
            for m in range(multiplier):
                correlate(dy, dx, w, &win, n, c * multiplier + m, c, True)


def backward_params_planes(geometry, const floating[:, :, :, ::1] x,
                           const floating[:, :, :, ::1] dy, floating[:, :, ::1] dw_out,
                           floating[::1] db, floating[:, :, ::1] rows):
    """dw_out[o, i, j] += sum_n <dy[n, o], the window of x[n, o // M]>; db[o] += sum dy[:, o].

    rows (M, kh * kw + 1, wo) is scratch.
    """
    cdef Window win = window_of(geometry)
    cdef Py_ssize_t ph = win.ph, pw = win.pw, sh = win.sh, sw = win.sw, dh = win.dh
    cdef Py_ssize_t dw = win.dw
    cdef Py_ssize_t num = dy.shape[0], outputs = dy.shape[1], ho = dy.shape[2], wo = dy.shape[3]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t kh = dw_out.shape[1], kw = dw_out.shape[2]
    cdef Py_ssize_t multiplier = outputs // x.shape[1]
    cdef Py_ssize_t n, o, c, i, j, yo, xo, x0, x1, hin, shift, row
    cdef bint has_bias = db.shape[0] > 0
    cdef floating total
    # Per-output rows of partial sums, one per kernel offset and one for the bias: the inner
    # loops stay elementwise (they vectorize), each row is summed once at the end, and every
    # row of dy and x is read once per image while it sits in cache.
    with nogil:
        # Each output owns its weights, bias and rows: no races.
        for o in prange(outputs, schedule="static",
                        use_threads_if=num * outputs * ho * wo * (kh * kw + 1) >= PARALLEL_WORK):
            c = o // multiplier
            for row in range(kh * kw + 1):
                for xo in range(wo):
                    rows[o, row, xo] = 0
            for n in range(num):
                for yo in range(ho):
                    if has_bias:
                        for xo in range(wo):
                            rows[o, kh * kw, xo] += dy[n, o, yo, xo]
                    for i in range(kh):
                        hin = yo * sh - ph + i * dh
                        if hin < 0 or hin >= height:
                            continue
                        for j in range(kw):
                            shift = pw - j * dw
                            x0 = first_inside(shift, sw)
                            x1 = end_inside(shift, sw, width, wo)
                            row = i * kw + j
                            for xo in range(x0, x1):
                                rows[o, row, xo] += (dy[n, o, yo, xo] *
                                                     x[n, c, hin, xo * sw - shift])
            for row in range(kh * kw + has_bias):
                total = 0
                for xo in range(wo):
                    total = total + rows[o, row, xo]
                if row < kh * kw:
                    dw_out[o, row // kw, row % kw] += total
                else:
                    db[o] += total
