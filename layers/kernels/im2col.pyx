"""im2col / col2im: the patch <-> column rearrangement behind Caffe's convolution.

For images x (N, C, *in) and a window.Geometry with K = prod(kernel) offsets and
L = prod(out) output positions:

    col[c*K + k, n*L + l] = x[n, c, the pixel under kernel offset k at output l]

(0 where that pixel lies in zero padding). The kernel offset and the output position are
flattened row-major over the spatial axes; in 2-D the pixel is
(y*sh - ph + i*dh, x*sw - pw + j*dw). The images sit side by side in the columns, so one
GEMM per group covers them all; rows of channel c are contiguous, so group g owns a
contiguous block of rows. col2im is the adjoint: it sums every column entry back onto the
pixel it came from. A filled padding (Geometry.copies) pads a copy of the images first and
folds the copy's gradient back.

plane_to_columns / columns_to_plane (one plane, no GIL; cimported by the convolution
pipeline) take the AVX-512 kernels in 2-D with stride 1 along the rows where they run.
"""
import itertools
import math

from cython.parallel import prange
from cython cimport floating

from . cimport avx512
from . import arena
from .window cimport Window, end_inside, first_inside, nd_offset, window_of
from .parallel cimport PARALLEL_WORK


cdef void plane_to_columns(const floating* plane, floating* col, Py_ssize_t ld,
                           const Window* w) noexcept nogil:
    """col[k, l] (rows ld apart) = the pixel of plane under kernel offset k at output l."""
    cdef Py_ssize_t i, j, y, xo, x0, x1, hin, shift, k, l, offset
    cdef floating* row
    cdef const floating* src
    if w.nd:
        for k in range(w.kernel_volume):
            row = col + k * ld
            for l in range(w.length):
                offset = nd_offset(w, k, l)
                row[l] = plane[offset] if offset >= 0 else 0
        return
    if floating is float:
        if w.sw == 1 and avx512.enabled():
            avx512.plane_to_columns(plane, col, ld, w.height, w.width, w.kh, w.kw, w.ph,
                                    w.pw, w.sh, w.dh, w.dw, w.ho, w.wo)
            return
    for i in range(w.kh):
        for j in range(w.kw):
            row = col + (i * w.kw + j) * ld
            # The outputs whose pixel lies inside the row: [x0, x1), branch-free.
            shift = w.pw - j * w.dw
            x0 = first_inside(shift, w.sw)
            x1 = end_inside(shift, w.sw, w.width, w.wo)
            if x1 < x0:
                x1 = x0
            for y in range(w.ho):
                hin = y * w.sh - w.ph + i * w.dh
                if hin < 0 or hin >= w.height:
                    for xo in range(w.wo):
                        row[xo] = 0
                else:
                    src = plane + hin * w.width
                    for xo in range(x0):
                        row[xo] = 0
                    if w.sw == 1:
                        for xo in range(x0, x1):
                            row[xo] = src[xo - shift]
                    else:
                        for xo in range(x0, x1):
                            row[xo] = src[xo * w.sw - shift]
                    for xo in range(x1, w.wo):
                        row[xo] = 0
                row += w.wo


cdef void columns_to_plane(const floating* col, Py_ssize_t ld, floating* plane,
                           const Window* w) noexcept nogil:
    """plane = the sum of col's entries onto the pixels they came from (written over)."""
    cdef Py_ssize_t i, j, y, xo, x0, x1, hin, shift, k, l, offset
    cdef const floating* row
    cdef floating* dst
    if floating is float:
        if not w.nd and w.sw == 1 and avx512.enabled():
            avx512.columns_to_plane(col, ld, plane, w.height, w.width, w.kh, w.kw, w.ph,
                                    w.pw, w.sh, w.dh, w.dw, w.ho, w.wo)
            return
    for offset in range(w.volume):
        plane[offset] = 0
    if w.nd:
        for k in range(w.kernel_volume):
            row = col + k * ld
            for l in range(w.length):
                offset = nd_offset(w, k, l)
                if offset >= 0:
                    plane[offset] += row[l]
        return
    for i in range(w.kh):
        for j in range(w.kw):
            row = col + (i * w.kw + j) * ld
            shift = w.pw - j * w.dw
            x0 = first_inside(shift, w.sw)
            x1 = end_inside(shift, w.sw, w.width, w.wo)
            for y in range(w.ho):
                hin = y * w.sh - w.ph + i * w.dh
                if 0 <= hin < w.height:
                    dst = plane + hin * w.width
                    if w.sw == 1:
                        for xo in range(x0, x1):
                            dst[xo - shift] += row[xo]
                    else:
                        for xo in range(x0, x1):
                            dst[xo * w.sw - shift] += row[xo]
                row += w.wo


cdef void to_columns(const floating* x, floating* col, Py_ssize_t num, Py_ssize_t channels,
                     const Window* w) noexcept nogil:
    """col (C*K, N*L) from x (N, C, volume), one (image, channel) plane per task."""
    cdef Py_ssize_t plane, n, c, ld = num * w.length
    for plane in prange(num * channels, schedule="static",
                        use_threads_if=num * channels * w.kernel_volume * w.length
                        >= PARALLEL_WORK):
        n = plane // channels
        c = plane % channels
        plane_to_columns(x + plane * w.volume, col + c * w.kernel_volume * ld + n * w.length,
                         ld, w)


cdef void from_columns(const floating* col, floating* x, Py_ssize_t num, Py_ssize_t channels,
                       const Window* w) noexcept nogil:
    """x (N, C, volume) = col2im of col; each plane gathers its own entries: no races."""
    cdef Py_ssize_t plane, n, c, ld = num * w.length
    for plane in prange(num * channels, schedule="static",
                        use_threads_if=num * channels * w.kernel_volume * w.length
                        >= PARALLEL_WORK):
        n = plane // channels
        c = plane % channels
        columns_to_plane(col + c * w.kernel_volume * ld + n * w.length, ld,
                         x + plane * w.volume, w)


cdef int check_columns(str name, geometry, Py_ssize_t rows, Py_ssize_t cols,
                       Py_ssize_t channels, Py_ssize_t num) except -1:
    if rows != channels * geometry.kernel_volume or cols != num * geometry.length:
        raise ValueError(f"{name}: col has shape ({rows}, {cols}), expected "
                         f"({channels * geometry.kernel_volume}, {num * geometry.length})")
    return 0


def _planes(images):
    """(N, C, volume) planes of C-contiguous (N, C, *spatial) images (a view, never a copy)."""
    if not images.flags.c_contiguous:
        raise ValueError("im2col/col2im: the images must be C-contiguous")
    return images.reshape(images.shape[0], images.shape[1], -1)


def im2col(geometry, x, floating[:, ::1] col):
    """Fill col (C*K, N*L) with the patches of the images x (N, C, *in_shape)."""
    cdef const floating[:, :, ::1] source
    cdef Window w = window_of(geometry)
    with arena.scratch() as take:
        source = _planes(geometry.source(x, take))
        check_columns("im2col", geometry, col.shape[0], col.shape[1], source.shape[1],
                      source.shape[0])
        if col.size:
            with nogil:
                to_columns(&source[0, 0, 0], &col[0, 0], source.shape[0], source.shape[1], &w)


def col2im(geometry, const floating[:, ::1] col, dx):
    """Write into the images dx (N, C, *in_shape) the sum of the col entries taken from each
    pixel."""
    cdef floating[:, :, ::1] target
    cdef Window w = window_of(geometry)
    with arena.scratch() as take:
        g = geometry.source_gradient(dx, take)
        target = _planes(g)
        check_columns("col2im", geometry, col.shape[0], col.shape[1], target.shape[1],
                      target.shape[0])
        if target.size:
            with nogil:
                from_columns(&col[0, 0], &target[0, 0, 0], target.shape[0], target.shape[1],
                             &w)
        geometry.fold(g, dx)


# -- array-API (the GPU path; runs on numpy too) -------------------------------------


def _window_slices(offsets, dilation, stride, out_shape):
    """The strided slices of a padded image that kernel offset `offsets` reads."""
    return tuple(slice(k * d, k * d + s * (o - 1) + 1, s)
                 for k, d, s, o in zip(offsets, dilation, stride, out_shape))


def _padded_extent(geometry):
    return tuple(s + b + a for s, b, a in zip(geometry.source_shape, geometry.source_pads,
                                              geometry.source_pads_after))


def im2col_xp(xp, geometry, x):
    """im2col of the images x in array-API code: returns col (C*K, N*L)."""
    source = geometry.source_xp(xp, x)
    num, channels = x.shape[:2]
    kernel, out_shape = geometry.kernel, geometry.out_shape
    padded = xp.pad(source, ((0, 0), (0, 0)) + tuple(
        zip(geometry.source_pads, geometry.source_pads_after)))
    col = xp.empty((channels,) + kernel + (num,) + out_shape, x.dtype)
    every = (slice(None), slice(None))
    for offsets in itertools.product(*[range(k) for k in kernel]):
        patch = padded[every + _window_slices(offsets, geometry.dilation, geometry.stride,
                                              out_shape)]
        col[(slice(None),) + offsets] = xp.moveaxis(patch, 1, 0)
    return col.reshape(channels * geometry.kernel_volume, num * geometry.length)


def col2im_xp(xp, geometry, col, num, channels):
    """col2im in array-API code: the (N, C, *in_shape) sum of col's entries."""
    kernel = geometry.kernel
    col = col.reshape((channels,) + kernel + (num,) + geometry.out_shape)
    padded = xp.zeros((num, channels) + _padded_extent(geometry), col.dtype)
    every = (slice(None), slice(None))
    for offsets in itertools.product(*[range(k) for k in kernel]):
        window = every + _window_slices(offsets, geometry.dilation, geometry.stride,
                                        geometry.out_shape)
        padded[window] += xp.moveaxis(col[(slice(None),) + offsets], 0, 1)
    g = padded[every + tuple(slice(b, b + s) for b, s in
                             zip(geometry.source_pads, geometry.source_shape))]
    return geometry.fold_xp(g)
