from libc.stdint cimport uint64_t

cdef uint64_t fingerprint_bytes(const unsigned char* raw, Py_ssize_t size) noexcept nogil
