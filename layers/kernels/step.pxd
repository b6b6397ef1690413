# A layer's forward compiled for its current shapes and memory (see step.pyx).
from libc.stdint cimport uint64_t


cdef class Step:
    cdef Py_ssize_t scratch_bytes       # scratch one run needs (every thread's), or 0
    cdef char* scratch                  # where it is: given by bind() before the first run
    cdef list keep                      # the arrays the step's pointers point into
    cdef int watched
    cdef const unsigned char** watch_data
    cdef Py_ssize_t* watch_size
    cdef uint64_t* watch_key
    cdef int run(self) except -1
    cdef bint changed(self) noexcept
