# Sums over a contiguous row in double, without the GIL (inline: cimport them). A plain
# `acc += x[i]` loop is one chain of dependent adds that cannot vectorize (reordering a float
# sum changes it); LANES independent partial sums, added up at the end, vectorize and hide
# the add latency.
from cython cimport floating

cdef enum:
    LANES = 8


cdef inline double row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    """sum(x[:n])."""
    cdef double part[LANES]
    cdef double total = 0
    cdef Py_ssize_t b, i, l, whole = n - n % LANES
    for l in range(LANES):
        part[l] = 0
    for b in range(n // LANES):
        i = b * LANES
        for l in range(LANES):
            part[l] += x[i + l]
    for i in range(whole, n):
        total += x[i]
    for l in range(LANES):
        total += part[l]
    return total


cdef inline double row_dot(const floating* x, const floating* y, Py_ssize_t n) noexcept nogil:
    """sum(x[:n] * y[:n])."""
    cdef double part[LANES]
    cdef double total = 0
    cdef Py_ssize_t b, i, l, whole = n - n % LANES
    for l in range(LANES):
        part[l] = 0
    for b in range(n // LANES):
        i = b * LANES
        for l in range(LANES):
            part[l] += <double>x[i + l] * y[i + l]
    for i in range(whole, n):
        total += <double>x[i] * y[i]
    for l in range(LANES):
        total += part[l]
    return total


cdef inline double row_squares(const floating* x, double center, Py_ssize_t n) noexcept nogil:
    """sum((x[:n] - center)^2)."""
    cdef double part[LANES]
    cdef double total = 0, d
    cdef Py_ssize_t b, i, l, whole = n - n % LANES
    for l in range(LANES):
        part[l] = 0
    for b in range(n // LANES):
        i = b * LANES
        for l in range(LANES):
            d = x[i + l] - center
            part[l] += d * d
    for i in range(whole, n):
        d = x[i] - center
        total += d * d
    for l in range(LANES):
        total += part[l]
    return total
