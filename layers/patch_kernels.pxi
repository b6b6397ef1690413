# im2col / col2im of one (image, channel) plane, without the GIL: the kernels behind
# im2col.pyx's batch functions and the convolution's per-chunk pipeline (textually
# included: `include "patch_kernels.pxi"`, after window_bounds.pxi and avx512.pxi).

cdef struct Window:
    # One im2col geometry. 2-D: the fields below; N-D (nd): per kernel offset k and output
    # position l, the source pixel on axis d is out_starts[l, d] + kernel_offsets[k, d].
    bint nd
    Py_ssize_t kernel_volume, length, volume
    Py_ssize_t height, width, kh, kw, ph, pw, sh, sw, dh, dw, ho, wo
    Py_ssize_t dims
    const Py_ssize_t* kernel_offsets
    const Py_ssize_t* out_starts
    const Py_ssize_t* in_shape


cdef inline Window window_2d(Py_ssize_t height, Py_ssize_t width, int kh, int kw, int ph,
                             int pw, int sh, int sw, int dh, int dw, int ho,
                             int wo) noexcept nogil:
    cdef Window w
    w.nd = False
    w.height, w.width, w.kh, w.kw, w.ph, w.pw = height, width, kh, kw, ph, pw
    w.sh, w.sw, w.dh, w.dw, w.ho, w.wo = sh, sw, dh, dw, ho, wo
    w.kernel_volume, w.length, w.volume = kh * kw, ho * wo, height * width
    w.dims = 2
    return w


cdef inline Window window_nd(const Py_ssize_t[:, ::1] kernel_offsets,
                             const Py_ssize_t[:, ::1] out_starts,
                             const Py_ssize_t[::1] in_shape) noexcept nogil:
    """The arrays must outlive the Window (it keeps their pointers)."""
    cdef Window w
    cdef Py_ssize_t d
    w.nd = True
    w.kernel_volume, w.length, w.dims = kernel_offsets.shape[0], out_starts.shape[0], \
        in_shape.shape[0]
    w.kernel_offsets, w.out_starts, w.in_shape = \
        &kernel_offsets[0, 0], &out_starts[0, 0], &in_shape[0]
    w.volume = 1
    for d in range(w.dims):
        w.volume *= in_shape[d]
    return w


cdef inline Py_ssize_t nd_offset(const Window* w, Py_ssize_t k, Py_ssize_t l) noexcept nogil:
    """The flat source pixel of kernel offset k at output l, or -1 in the padding."""
    cdef Py_ssize_t d, h, offset = 0
    for d in range(w.dims):
        h = w.out_starts[l * w.dims + d] + w.kernel_offsets[k * w.dims + d]
        if h < 0 or h >= w.in_shape[d]:
            return -1
        offset = offset * w.in_shape[d] + h
    return offset


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
        if w.sw == 1 and avx512_enabled():
            avx512_plane_to_columns(plane, col, ld, w.height, w.width, w.kh, w.kw, w.ph,
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
        if not w.nd and w.sw == 1 and avx512_enabled():
            avx512_columns_to_plane(col, ld, plane, w.height, w.width, w.kh, w.kw, w.ph,
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
