from cython cimport floating

from .window cimport Window

cdef void plane_to_columns(const floating* plane, floating* col, Py_ssize_t ld,
                           const Window* w) noexcept nogil
cdef void columns_to_plane(const floating* col, Py_ssize_t ld, floating* plane,
                           const Window* w) noexcept nogil
