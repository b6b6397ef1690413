# The output range of a sliding window that stays inside the input, shared by the
# im2col and depthwise kernels (textually included: `include "window_bounds.pxi"`).

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
