# Sums over a contiguous row in double, without the GIL (inline: cimport them). A plain
# `acc += x[i]` loop is one chain of dependent adds that cannot vectorize (reordering a float
# sum changes it); LANES independent partial sums, added up at the end, vectorize and hide
# the add latency.
from cython cimport floating

cdef enum:
    LANES = 8

# What row_total sums: x[i], x[i] * y[i] or (x[i] - center)^2.
cdef enum Term:
    VALUE
    PRODUCT
    SQUARE


cdef inline double term(Term kind, const floating* x, const floating* y, double center,
                        Py_ssize_t i) noexcept nogil:
    cdef double d
    if kind == VALUE:
        return x[i]
    if kind == PRODUCT:
        return <double>x[i] * y[i]
    d = x[i] - center
    return d * d


cdef inline double row_total(Term kind, const floating* x, const floating* y, double center,
                             Py_ssize_t n) noexcept nogil:
    """The sum over i < n of term(kind, ..., i), in LANES partial sums; kind is a constant
    at every call, so each call site compiles to its own plain loop."""
    cdef double part[LANES]
    cdef double total = 0
    cdef Py_ssize_t b, i, l, whole = n - n % LANES
    for l in range(LANES):
        part[l] = 0
    for b in range(n // LANES):
        i = b * LANES
        for l in range(LANES):
            part[l] += term(kind, x, y, center, i + l)
    for i in range(whole, n):
        total += term(kind, x, y, center, i)
    for l in range(LANES):
        total += part[l]
    return total


cdef inline double row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    """sum(x[:n])."""
    return row_total(VALUE, x, x, 0, n)


cdef inline double row_dot(const floating* x, const floating* y, Py_ssize_t n) noexcept nogil:
    """sum(x[:n] * y[:n])."""
    return row_total(PRODUCT, x, y, 0, n)


cdef inline double row_squares(const floating* x, double center, Py_ssize_t n) noexcept nogil:
    """sum((x[:n] - center)^2)."""
    return row_total(SQUARE, x, x, center, n)
