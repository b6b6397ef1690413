"""Reduction: y[i] = coeff * sum_j f(x[i, j]) over all axes from `axis` on
(Caffe's Reduction), with f(x) = x (SUM), |x| (ASUM), x^2 (SUMSQ), and MEAN =
SUM with coeff divided by the reduced count. The top's shape is the bottom's
shape[:axis] (a 0-d scalar for axis 0).

Backward: dx[i, j] = coeff * dy[i] * f'(x[i, j]) with f' = 1, sign(x) (0 at 0, as
Caffe), 2x. Sums are kept in double.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base import Layer, canonical_axis
from .kernels.parallel cimport PARALLEL_WORK

SUM = pb.ReductionParameter.SUM
ASUM = pb.ReductionParameter.ASUM
SUMSQ = pb.ReductionParameter.SUMSQ
MEAN = pb.ReductionParameter.MEAN

# The kernels' operation codes: ReductionParameter's numbers (MEAN runs as SUM).
cdef enum:
    K_ASUM = 2
    K_SUMSQ = 3


cdef inline double term(double v, int op) noexcept nogil:
    if op == K_ASUM:
        return v if v >= 0 else -v
    if op == K_SUMSQ:
        return v * v
    return v


def reduce_rows(const floating[:, ::1] x, floating[::1] y, int op, double coeff):
    """y[i] = coeff * sum_j term(x[i, j]); parallel over rows, or within a row when few."""
    cdef Py_ssize_t i, j, rows = x.shape[0], dim = x.shape[1]
    cdef double acc
    if rows >= dim:
        with nogil:
            for i in prange(rows, schedule="static", use_threads_if=rows * dim >= PARALLEL_WORK):
                acc = 0
                for j in range(dim):
                    acc = acc + term(x[i, j], op)
                y[i] = <floating>(coeff * acc)
    else:
        for i in range(rows):
            acc = 0
            with nogil:
                for j in prange(dim, schedule="static", use_threads_if=dim >= PARALLEL_WORK):
                    acc += term(x[i, j], op)
            y[i] = <floating>(coeff * acc)


def reduce_backward(const floating[:, ::1] x, const floating[::1] dy, floating[:, ::1] dx,
                    int op, double coeff):
    """dx[i, j] = coeff * dy[i] * term'(x[i, j])."""
    cdef Py_ssize_t k, i, j, rows = x.shape[0], dim = x.shape[1]
    cdef double g, v
    with nogil:
        for k in prange(rows * dim, schedule="static", use_threads_if=rows * dim >= PARALLEL_WORK):
            i = k // dim
            j = k - i * dim
            g = coeff * dy[i]
            if op == K_ASUM:
                v = x[i, j]
                g = g if v > 0 else (-g if v < 0 else 0)
            elif op == K_SUMSQ:
                g = 2 * g * x[i, j]
            dx[i, j] = <floating>g


class Reduction(Layer):
    """SUM, ASUM, SUMSQ or MEAN over the trailing axes from `axis` on, times coeff."""

    type = "Reduction"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.reduction_param
        if p.operation not in (SUM, ASUM, SUMSQ, MEAN):
            raise NetError(f"layer '{self.name}' (Reduction): unknown operation "
                           f"{p.operation}")
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' (Reduction) cannot run in place")
        self.operation = p.operation
        self.axis_param = p.axis
        self.coeff_param = p.coeff

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if not shape:
            raise self.shape_error("the bottom is a 0-d scalar; there is no axis to reduce")
        axis = canonical_axis(self.axis_param, len(shape), self)
        rows = int(np.prod(shape[:axis], dtype=np.int64))
        dim = int(np.prod(shape[axis:], dtype=np.int64))
        self.dims = (rows, dim)
        self.coeff = self.coeff_param / dim if self.operation == MEAN and dim else \
            self.coeff_param
        top[0].reshape(shape[:axis])

    def forward_cpu(self, bottom, top):
        reduce_rows(bottom[0].data.reshape(self.dims), top[0].data.reshape(-1),
                    _kernel_op(self.operation), self.coeff)

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            reduce_backward(bottom[0].data.reshape(self.dims), top[0].diff.reshape(-1),
                            bottom[0].diff.reshape(self.dims), _kernel_op(self.operation),
                            self.coeff)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        x = bottom[0].data.reshape(self.dims)
        if self.operation == ASUM:
            x = xp.abs(x)
        elif self.operation == SUMSQ:
            x = x * x
        top[0].data.reshape(-1)[...] = self.coeff * x.sum(axis=1)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        xp = array_module(bottom[0].data)
        x = bottom[0].data.reshape(self.dims)
        g = (self.coeff * top[0].diff.reshape(-1, 1)).astype(x.dtype)
        dx = bottom[0].diff.reshape(self.dims)
        if self.operation == ASUM:
            dx[...] = g * xp.sign(x)
        elif self.operation == SUMSQ:
            dx[...] = 2 * g * x
        else:
            dx[...] = g


def _kernel_op(operation):
    """MEAN is SUM with a scaled coeff."""
    return SUM if operation == MEAN else operation
