# One sliding-window geometry as the kernels see it (built from a window.Geometry by
# window_of), and the output ranges a window stays inside the input for.

cdef struct Window:
    # 2-D: the fields below, on the source (the image, or its padded copy). N-D (nd): per
    # kernel offset k and output position l, the source pixel on axis d is
    # out_starts[l, d] + kernel_offsets[k, d].
    bint nd
    Py_ssize_t kernel_volume, length, volume
    Py_ssize_t height, width, kh, kw, ph, pw, eh, ew, sh, sw, dh, dw, ho, wo
    Py_ssize_t dims
    const Py_ssize_t* kernel_offsets
    const Py_ssize_t* out_starts
    const Py_ssize_t* in_shape


cdef Window window_of(geometry) except *


cdef inline Py_ssize_t first_inside(Py_ssize_t shift, Py_ssize_t stride) noexcept nogil:
    """The first output o >= 0 with o*stride - shift >= 0."""
    if shift <= 0:
        return 0
    return (shift + stride - 1) // stride


cdef inline Py_ssize_t end_inside(Py_ssize_t shift, Py_ssize_t stride, Py_ssize_t size,
                                  Py_ssize_t count) noexcept nogil:
    """One past the last output o < count with o*stride - shift < size."""
    cdef Py_ssize_t limit = size + shift
    if limit <= 0:
        return 0
    limit = (limit + stride - 1) // stride
    return limit if limit < count else count


cdef inline Py_ssize_t nd_offset(const Window* w, Py_ssize_t k, Py_ssize_t l) noexcept nogil:
    """The flat source pixel of kernel offset k at output l (N-D), or -1 in the padding."""
    cdef Py_ssize_t d, h, offset = 0
    for d in range(w.dims):
        h = w.out_starts[l * w.dims + d] + w.kernel_offsets[k * w.dims + d]
        if h < 0 or h >= w.in_shape[d]:
            return -1
        offset = offset * w.in_shape[d] + h
    return offset
