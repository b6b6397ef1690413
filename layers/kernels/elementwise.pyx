"""Elementwise arithmetic on every core: x + b and x * b with b broadcast along the
middle axis of an (outer, dim, inner) view, the per-dim sums that are their adjoints, and
acc += x. Bias, Scale, Embed, Split, Parameter and Deconvolution's bias use them.
"""
from cython.parallel import prange
from cython cimport floating

from .row_sums cimport row_dot, row_sum
from .parallel cimport PARALLEL_WORK


def broadcast(const floating[:, :, ::1] x, const floating[::1] b, floating[:, :, ::1] y,
              bint multiply=False):
    """y[o, d, i] = x[o, d, i] + b[d] (times b[d] when multiply); y may be x."""
    cdef Py_ssize_t r, i, o, d
    cdef Py_ssize_t dim = x.shape[1], inner = x.shape[2], rows = x.shape[0] * x.shape[1]
    with nogil:
        for r in prange(rows, schedule="static", use_threads_if=rows * inner >= PARALLEL_WORK):
            o = r // dim
            d = r % dim
            for i in range(inner):
                y[o, d, i] = x[o, d, i] * b[d] if multiply else x[o, d, i] + b[d]


def sum_outer_inner(const floating[:, :, ::1] dy, floating[::1] out, bint accumulate,
                    const floating[:, :, ::1] x=None):
    """out[d] (+)= the sum over o, i of dy[o, d, i] (times x[o, d, i] when x is given)."""
    cdef Py_ssize_t o, d
    cdef Py_ssize_t outer = dy.shape[0], dim = dy.shape[1], inner = dy.shape[2]
    cdef bint weighted = x is not None
    cdef double acc
    with nogil:
        for d in prange(dim, schedule="static",
                        use_threads_if=dim * outer * inner >= PARALLEL_WORK):
            acc = 0
            for o in range(outer):
                if weighted:
                    acc = acc + row_dot(&dy[o, d, 0], &x[o, d, 0], inner)
                else:
                    acc = acc + row_sum(&dy[o, d, 0], inner)
            if accumulate:
                out[d] += <floating>acc
            else:
                out[d] = <floating>acc


def add_into(floating[::1] acc, const floating[::1] x):
    """acc += x."""
    cdef Py_ssize_t i, n = acc.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            acc[i] += x[i]
