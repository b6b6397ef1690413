"""im2col / col2im: the patch <-> column rearrangement behind Caffe's convolution.

For a chunk of images x (N, C, H, W), kernel (kh, kw), pad (ph, pw), stride (sh, sw),
dilation (dh, dw) and output size (ho, wo), with L = ho * wo:

    col[(c*kh + i)*kw + j, n*L + y*wo + x] = x[n, c, y*sh - ph + i*dh, x*sw - pw + j*dw]

(0 where the source pixel lies in the padding). The whole chunk sits side by side in
the columns, so one GEMM per group covers every image. col2im is the adjoint: it sums
every column entry back onto the pixel it came from (padding entries are dropped).
Rows of channel c are contiguous, so group g owns a contiguous block of rows.

The same holds over any number n of spatial axes (im2col_nd / col2im_nd): the kernel
offset (k1, ..., kn) and the output position (o1, ..., on) are flattened row-major, and
the source pixel on axis d is o_d*stride_d - pad_d + k_d*dilation_d. `Patches` holds one
such geometry (pads may differ before and after, as SAME padding needs), picks the fast
2-D kernels or the N-D ones, and fills the padding with a constant or with reflected or
replicated pixels when asked: those fills pad a copy of the image, and col2im's result
on that copy is folded back (the padding's gradient goes to the pixels it copies).
"""
import itertools
import math

import numpy as np

from cython.parallel import prange
from cython cimport floating


include "window_bounds.pxi"
include "avx512.pxi"
include "patch_kernels.pxi"


cdef int check_columns(str name, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t channels,
                       Py_ssize_t num, const Window* w) except -1:
    if rows != channels * w.kernel_volume or cols != num * w.length:
        raise ValueError(f"{name}: col has shape ({rows}, {cols}), expected "
                         f"({channels * w.kernel_volume}, {num * w.length})")
    return 0


cdef void to_columns(const floating* x, floating* col, Py_ssize_t num, Py_ssize_t channels,
                     const Window* w) noexcept nogil:
    """col (C*K, N*L) from x (N, C, volume), one (image, channel) plane per task."""
    cdef Py_ssize_t plane, n, c, ld = num * w.length
    for plane in prange(num * channels, schedule="static"):
        n = plane // channels
        c = plane % channels
        plane_to_columns(x + plane * w.volume, col + c * w.kernel_volume * ld + n * w.length,
                         ld, w)


cdef void from_columns(const floating* col, floating* x, Py_ssize_t num, Py_ssize_t channels,
                       const Window* w) noexcept nogil:
    """x (N, C, volume) = col2im of col; each plane gathers its own entries: no races."""
    cdef Py_ssize_t plane, n, c, ld = num * w.length
    for plane in prange(num * channels, schedule="static"):
        n = plane // channels
        c = plane % channels
        columns_to_plane(col + c * w.kernel_volume * ld + n * w.length, ld,
                         x + plane * w.volume, w)


def im2col(const floating[:, :, :, ::1] x, floating[:, ::1] col,
           int kh, int kw, int ph, int pw, int sh, int sw, int dh, int dw,
           int ho, int wo):
    """Fill col (C*kh*kw, N*ho*wo) with the patches of x (N, C, H, W)."""
    cdef Window w = window_2d(x.shape[2], x.shape[3], kh, kw, ph, pw, sh, sw, dh, dw, ho, wo)
    check_columns("im2col", col.shape[0], col.shape[1], x.shape[1], x.shape[0], &w)
    if col.size:
        with nogil:
            to_columns(&x[0, 0, 0, 0], &col[0, 0], x.shape[0], x.shape[1], &w)


def col2im(const floating[:, ::1] col, floating[:, :, :, ::1] x,
           int kh, int kw, int ph, int pw, int sh, int sw, int dh, int dw,
           int ho, int wo):
    """Write into x (N, C, H, W) the sum of the col entries taken from each pixel."""
    cdef Window w = window_2d(x.shape[2], x.shape[3], kh, kw, ph, pw, sh, sw, dh, dw, ho, wo)
    check_columns("col2im", col.shape[0], col.shape[1], x.shape[1], x.shape[0], &w)
    if x.size:
        with nogil:
            from_columns(&col[0, 0], &x[0, 0, 0, 0], x.shape[0], x.shape[1], &w)


def im2col_nd(const floating[:, :, ::1] x, floating[:, ::1] col,
              const Py_ssize_t[:, ::1] kernel_offsets, const Py_ssize_t[:, ::1] out_starts,
              const Py_ssize_t[::1] in_shape):
    """Fill col (C*K, N*L) with the patches of x (N, C, V) over n flattened spatial axes.

    kernel_offsets (K, n): k_d*dilation_d - pad_d per kernel offset; out_starts (L, n):
    o_d*stride_d per output position; in_shape (n,): the spatial shape behind V.
    """
    cdef Window w = window_nd(kernel_offsets, out_starts, in_shape)
    check_columns("im2col_nd", col.shape[0], col.shape[1], x.shape[1], x.shape[0], &w)
    if col.size:
        with nogil:
            to_columns(&x[0, 0, 0], &col[0, 0], x.shape[0], x.shape[1], &w)


def col2im_nd(const floating[:, ::1] col, floating[:, :, ::1] x,
              const Py_ssize_t[:, ::1] kernel_offsets, const Py_ssize_t[:, ::1] out_starts,
              const Py_ssize_t[::1] in_shape):
    """Write into x (N, C, V) the sum of the col entries taken from each pixel (N-D)."""
    cdef Window w = window_nd(kernel_offsets, out_starts, in_shape)
    check_columns("col2im_nd", col.shape[0], col.shape[1], x.shape[1], x.shape[0], &w)
    if x.size:
        with nogil:
            from_columns(&col[0, 0], &x[0, 0, 0], x.shape[0], x.shape[1], &w)


def _window_slices(offsets, dilation, stride, out_shape):
    """The strided slices of a padded image that kernel offset `offsets` reads."""
    return tuple(slice(k * d, k * d + s * (o - 1) + 1, s)
                 for k, d, s, o in zip(offsets, dilation, stride, out_shape))


def im2col_nd_xp(xp, x, kernel, pad_before, pad_after, stride, dilation, out_shape):
    """im2col in array-API code over n spatial axes (the GPU path; runs on numpy too)."""
    num, channels = x.shape[:2]
    padded = xp.pad(x, ((0, 0), (0, 0)) + tuple(zip(pad_before, pad_after)))
    col = xp.empty((channels,) + tuple(kernel) + (num,) + tuple(out_shape), x.dtype)
    every = (slice(None), slice(None))
    for offsets in itertools.product(*[range(k) for k in kernel]):
        patch = padded[every + _window_slices(offsets, dilation, stride, out_shape)]
        col[(slice(None),) + offsets] = xp.moveaxis(patch, 1, 0)
    return col.reshape(channels * math.prod(kernel), num * math.prod(out_shape))


def col2im_nd_xp(xp, col, shape, kernel, pad_before, pad_after, stride, dilation, out_shape):
    """col2im in array-API code over n spatial axes: the image-shaped sum of col's entries."""
    num, channels = shape[:2]
    spatial = shape[2:]
    col = col.reshape((channels,) + tuple(kernel) + (num,) + tuple(out_shape))
    padded = xp.zeros((num, channels) + tuple(s + b + a for s, b, a in
                                              zip(spatial, pad_before, pad_after)), col.dtype)
    every = (slice(None), slice(None))
    for offsets in itertools.product(*[range(k) for k in kernel]):
        window = every + _window_slices(offsets, dilation, stride, out_shape)
        padded[window] += xp.moveaxis(col[(slice(None),) + offsets], 0, 1)
    return padded[every + tuple(slice(b, b + s) for b, s in zip(pad_before, spatial))]


def im2col_xp(xp, x, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo):
    """2-D im2col in array-API code: returns col."""
    return im2col_nd_xp(xp, x, (kh, kw), (ph, pw), (ph, pw), (sh, sw), (dh, dw), (ho, wo))


def col2im_xp(xp, col, shape, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo):
    """2-D col2im in array-API code: returns the image-shaped sum of col's entries."""
    return col2im_nd_xp(xp, col, shape, (kh, kw), (ph, pw), (ph, pw), (sh, sw), (dh, dw),
                        (ho, wo))


def _along(axis, index):
    """An index tuple that takes `index` on `axis` and everything elsewhere."""
    return (slice(None),) * axis + (index,)


def fill_padding(a, pad_before, pad_after, fill, value):
    """Fill the padding of a (N, C, *padded) whose interior holds the image, in place.

    fill: "constant" (value), "reflect" (mirror without the edge) or "replicate" (the
    edge). Axis by axis over the full extent, which gives corners as np.pad does.
    """
    for d, (before, after) in enumerate(zip(pad_before, pad_after)):
        axis = 2 + d
        size = a.shape[axis] - before - after
        end = before + size
        if fill == "constant":
            a[_along(axis, slice(0, before))] = value
            a[_along(axis, slice(end, end + after))] = value
        elif fill == "replicate":
            a[_along(axis, slice(0, before))] = a[_along(axis, slice(before, before + 1))]
            a[_along(axis, slice(end, end + after))] = a[_along(axis, slice(end - 1, end))]
        else:
            if before:
                a[_along(axis, slice(0, before))] = a[_along(axis, slice(2 * before, before, -1))]
            if after:
                stop = end - 2 - after
                a[_along(axis, slice(end, end + after))] = \
                    a[_along(axis, slice(end - 2, stop if stop >= 0 else None, -1))]


def fold_padding(g, pad_before, pad_after, fill):
    """The adjoint of fill_padding: add the padding's gradient onto the pixels it copies.

    g (N, C, *padded) is changed in place; returns the view of its interior.
    """
    for d, (before, after) in enumerate(zip(pad_before, pad_after)):
        axis = 2 + d
        end = g.shape[axis] - after
        if fill == "replicate":
            if before:
                g[_along(axis, slice(before, before + 1))] += \
                    g[_along(axis, slice(0, before))].sum(axis=axis, keepdims=True)
            if after:
                g[_along(axis, slice(end - 1, end))] += \
                    g[_along(axis, slice(end, end + after))].sum(axis=axis, keepdims=True)
        elif fill == "reflect":
            if before:
                g[_along(axis, slice(2 * before, before, -1))] += \
                    g[_along(axis, slice(0, before))]
            if after:
                stop = end - 2 - after
                g[_along(axis, slice(end - 2, stop if stop >= 0 else None, -1))] += \
                    g[_along(axis, slice(end, end + after))]
    return g[(slice(None), slice(None)) + tuple(
        slice(b, g.shape[2 + d] - a) for d, (b, a) in enumerate(zip(pad_before, pad_after)))]


def output_shape(in_shape, kernel, stride, dilation, pad_before, pad_after):
    """Convolution's output size per spatial axis (may be <= 0 when the kernel does not fit)."""
    return tuple((i + b + a - (d * (k - 1) + 1)) // s + 1 for i, k, s, d, b, a in
                 zip(in_shape, kernel, stride, dilation, pad_before, pad_after))


class Patches:
    """One im2col geometry over n spatial axes, with its padding fill.

    Images are (N, C, *image_shape) C-contiguous arrays; columns are
    (C * prod(kernel), N * prod(out_shape)). fill is "zero", "constant", "reflect" or
    "replicate"; the non-zero fills pad a copy of the image (scratch kept between calls).
    force_nd takes the N-D kernels in 2-D too (Caffe's force_nd_im2col).
    """

    def __init__(self, image_shape, kernel, stride, dilation, pad_before, pad_after,
                 fill="zero", value=0.0, force_nd=False):
        self.image_shape = tuple(image_shape)
        self.kernel, self.stride, self.dilation = tuple(kernel), tuple(stride), tuple(dilation)
        self.pad_before, self.pad_after = tuple(pad_before), tuple(pad_after)
        self.out_shape = output_shape(self.image_shape, self.kernel, self.stride,
                                      self.dilation, self.pad_before, self.pad_after)
        if fill == "constant" and value == 0:
            fill = "zero"
        self.fill, self.value = fill, value
        self.copies = fill != "zero" and any(self.pad_before + self.pad_after)
        if self.copies:
            self.source_shape = tuple(i + b + a for i, b, a in
                                      zip(self.image_shape, self.pad_before, self.pad_after))
            self.source_pads = (0,) * len(self.kernel)
        else:
            self.source_shape, self.source_pads = self.image_shape, self.pad_before
        self.kernel_volume = math.prod(self.kernel)
        self.length = math.prod(self.out_shape)
        self.fast_2d = len(self.kernel) == 2 and not force_nd
        if not self.fast_2d:
            dims = len(self.kernel)
            self.in_shape = np.array(self.source_shape, np.intp)
            self.kernel_offsets = np.array(
                [[k * d - p for k, d, p in zip(ks, self.dilation, self.source_pads)]
                 for ks in itertools.product(*[range(k) for k in self.kernel])],
                np.intp).reshape(self.kernel_volume, dims)
            self.out_starts = np.array(
                [[o * s for o, s in zip(os, self.stride)]
                 for os in itertools.product(*[range(o) for o in self.out_shape])],
                np.intp).reshape(self.length, dims)
        self._scratch = None

    def _scratch_for(self, num, channels, dtype):
        shape = (num, channels) + self.source_shape
        size = math.prod(shape)
        if self._scratch is None or self._scratch.size < size or self._scratch.dtype != dtype:
            self._scratch = np.empty(size, dtype)
        return self._scratch[:size].reshape(shape)

    def source(self, x):
        """x itself, or a padded copy of x holding the fill (pads are then source_pads = 0)."""
        if not self.copies:
            return x
        padded = self._scratch_for(x.shape[0], x.shape[1], x.dtype)
        padded[(slice(None), slice(None)) + tuple(
            slice(b, b + i) for b, i in zip(self.pad_before, self.image_shape))] = x
        fill_padding(padded, self.pad_before, self.pad_after, self.fill, self.value)
        return padded

    def source_gradient(self, dx):
        """Where to write a gradient of the source: dx itself, or a padded scratch."""
        if not self.copies:
            return dx
        return self._scratch_for(dx.shape[0], dx.shape[1], dx.dtype)

    def fold(self, g, dx):
        """dx = the gradient of the image, given g = the gradient of its source."""
        if self.copies:
            dx[...] = fold_padding(g, self.pad_before, self.pad_after, self.fill)

    def _to_columns(self, src, col):
        if self.fast_2d:
            (kh, kw), (ph, pw) = self.kernel, self.source_pads
            im2col(src, col, kh, kw, ph, pw, *self.stride, *self.dilation, *self.out_shape)
        else:
            im2col_nd(src.reshape(src.shape[0], src.shape[1], -1), col,
                      self.kernel_offsets, self.out_starts, self.in_shape)

    def to_columns(self, x, col):
        """Fill col with the patches of x (N, C, *image_shape)."""
        self._to_columns(self.source(x), col)

    def from_columns(self, col, dx):
        """Write into dx (N, C, *image_shape) the sum of col's entries (im2col's adjoint)."""
        g = self.source_gradient(dx)
        if self.fast_2d:
            (kh, kw), (ph, pw) = self.kernel, self.source_pads
            col2im(col, g, kh, kw, ph, pw, *self.stride, *self.dilation, *self.out_shape)
        else:
            col2im_nd(col, g.reshape(g.shape[0], g.shape[1], -1),
                      self.kernel_offsets, self.out_starts, self.in_shape)
        self.fold(g, dx)

    # -- array-API (the GPU path; runs on numpy too) ----------------------------

    def source_xp(self, xp, x):
        """source() without scratch: a new padded array."""
        if not self.copies:
            return x
        padded = xp.empty((x.shape[0], x.shape[1]) + self.source_shape, x.dtype)
        padded[(slice(None), slice(None)) + tuple(
            slice(b, b + i) for b, i in zip(self.pad_before, self.image_shape))] = x
        fill_padding(padded, self.pad_before, self.pad_after, self.fill, self.value)
        return padded

    def fold_xp(self, xp, g):
        """The image gradient from the source gradient g (a new or view array)."""
        if not self.copies:
            return g
        return fold_padding(g, self.pad_before, self.pad_after, self.fill)

    def columns_xp(self, xp, x):
        """im2col of x in array-API code."""
        pads = self.source_pads
        after = self.pad_after if not self.copies else pads
        return im2col_nd_xp(xp, self.source_xp(xp, x), self.kernel, pads, after,
                            self.stride, self.dilation, self.out_shape)

    def image_xp(self, xp, col, shape):
        """col2im of col to an image of shape (N, C, *image_shape), in array-API code."""
        shape = tuple(shape[:2]) + self.source_shape
        pads = self.source_pads
        after = self.pad_after if not self.copies else pads
        g = col2im_nd_xp(xp, col, shape, self.kernel, pads, after, self.stride,
                         self.dilation, self.out_shape)
        return self.fold_xp(xp, g)
