"""Eltwise: y = sum_k c_k x_k (SUM), prod_k x_k (PROD) or max_k x_k (MAX)  (Caffe's Eltwise).

Backward: SUM dx_k = c_k dy; PROD dx_k = dy * prod_{j != k} x_j (stable_prod_grad)
or dy * y / x_k; MAX routes dy to the bottom that won. Ties in MAX follow Caffe:
bottom 1 beats bottom 0 on a tie (``x0 > x1`` decides), every later bottom must
be strictly greater to win.
"""
import numpy as np
from cython.parallel import prange
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module
from .base import Layer
from .kernels import arena
from .kernels.parallel cimport PARALLEL_WORK


def scale_into(const floating[::1] x, double a, floating[::1] y):
    """y = a * x."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            y[i] = <floating>(a * x[i])


def add_scaled(const floating[::1] x, double a, floating[::1] y):
    """y += a * x."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            y[i] += <floating>(a * x[i])


def multiply_into(const floating[::1] x, floating[::1] y):
    """y *= x."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            y[i] *= x[i]


def divide_product(const floating[::1] dy, const floating[::1] y, const floating[::1] x,
                   floating[::1] dx):
    """dx = dy * y / x (the unstable PROD gradient)."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            dx[i] = dy[i] * y[i] / x[i]


def max_first_two(const floating[::1] a, const floating[::1] b, floating[::1] y,
                  int[::1] mask):
    """y = max(a, b), mask = 0 where a is strictly greater, else 1 (Caffe's tie rule)."""
    cdef Py_ssize_t i, n = a.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            if a[i] > b[i]:
                y[i] = a[i]
                mask[i] = 0
            else:
                y[i] = b[i]
                mask[i] = 1


def max_update(const floating[::1] x, int k, floating[::1] y, int[::1] mask):
    """Where x is strictly greater than y: y = x, mask = k."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            if x[i] > y[i]:
                y[i] = x[i]
                mask[i] = k


def max_backward(const floating[::1] dy, const int[::1] mask, int k, floating[::1] dx):
    """dx = dy where bottom k won, 0 elsewhere."""
    cdef Py_ssize_t i, n = dy.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
            dx[i] = dy[i] if mask[i] == k else 0


def _flat(array):
    return array.reshape(-1)


class Eltwise(Layer):
    """Elementwise SUM (with coefficients), PROD or MAX over bottoms of one shape."""

    type = "Eltwise"
    bottoms = (2, None)
    tops = 1

    def setup(self, bottom, top):
        p = self.param.eltwise_param
        self.operation = p.operation
        self.stable_prod_grad = p.stable_prod_grad
        if any(t is b for t in top for b in bottom):
            raise NetError(f"layer '{self.name}' (Eltwise) cannot run in place")
        if p.coeff and self.operation != pb.EltwiseParameter.SUM:
            raise NetError(f"layer '{self.name}' (Eltwise): coeff is only for operation SUM")
        if p.coeff and len(p.coeff) != len(bottom):
            raise NetError(f"layer '{self.name}' (Eltwise): {len(p.coeff)} coeff given for "
                           f"{len(bottom)} bottoms; give one per bottom or none")
        self.coeff = [float(c) for c in p.coeff] or [1.0] * len(bottom)
        self.mask = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if any(b.shape != shape for b in bottom[1:]):
            raise self.shape_error("bottoms must all have the same shape, got "
                                   + " and ".join(str(b.shape) for b in bottom))
        top[0].reshape(shape)

    def _mask_for(self, like, take=None):
        """Where MAX records which bottom won: kept for backward, or scratch in take's frame
        when there is none (forward_only, CPU)."""
        if self.forward_only and take is not None:
            self.mask = None
            return take(like.shape, np.int32)
        if (self.mask is None or self.mask.shape != like.shape
                or array_module(self.mask) is not array_module(like)):
            self.mask = array_module(like).zeros(like.shape, np.int32)
        return self.mask

    # -- CPU: Cython kernels on flat views -----------------------------------

    def forward_cpu(self, bottom, top):
        y = _flat(top[0].data)
        xs = [_flat(b.data) for b in bottom]
        if self.operation == pb.EltwiseParameter.SUM:
            scale_into(xs[0], self.coeff[0], y)
            for x, c in zip(xs[1:], self.coeff[1:]):
                add_scaled(x, c, y)
        elif self.operation == pb.EltwiseParameter.PROD:
            y[...] = xs[0]
            for x in xs[1:]:
                multiply_into(x, y)
        else:
            with arena.scratch() as take:
                mask = _flat(self._mask_for(top[0].data, take))
                max_first_two(xs[0], xs[1], y, mask)
                for k in range(2, len(xs)):
                    max_update(xs[k], k, y, mask)

    def backward_cpu(self, top, propagate_down, bottom):
        dy = _flat(top[0].diff)
        for k, b in enumerate(bottom):
            if not propagate_down[k]:
                continue
            dx = _flat(b.diff)
            if self.operation == pb.EltwiseParameter.SUM:
                scale_into(dy, self.coeff[k], dx)
            elif self.operation == pb.EltwiseParameter.PROD:
                if self.stable_prod_grad:
                    dx[...] = dy
                    for j, other in enumerate(bottom):
                        if j != k:
                            multiply_into(_flat(other.data), dx)
                else:
                    divide_product(dy, _flat(top[0].data), _flat(b.data), dx)
            else:
                max_backward(dy, _flat(self.mask), k, dx)

    # -- GPU: array API (runs on numpy too) -------------------------------------

    def forward_gpu(self, bottom, top):
        xp = array_module(top[0].data)
        y = top[0].data
        if self.operation == pb.EltwiseParameter.SUM:
            y[...] = self.coeff[0] * bottom[0].data
            for b, c in zip(bottom[1:], self.coeff[1:]):
                y += c * b.data
        elif self.operation == pb.EltwiseParameter.PROD:
            y[...] = bottom[0].data
            for b in bottom[1:]:
                y *= b.data
        else:
            x0, x1 = bottom[0].data, bottom[1].data
            second = ~(x0 > x1)
            mask = self._mask_for(y)
            mask[...] = second
            y[...] = xp.where(second, x1, x0)
            for k in range(2, len(bottom)):
                wins = bottom[k].data > y
                mask[wins] = k
                y[...] = xp.where(wins, bottom[k].data, y)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(top[0].diff)
        dy = top[0].diff
        for k, b in enumerate(bottom):
            if not propagate_down[k]:
                continue
            if self.operation == pb.EltwiseParameter.SUM:
                b.diff[...] = self.coeff[k] * dy
            elif self.operation == pb.EltwiseParameter.PROD:
                if self.stable_prod_grad:
                    b.diff[...] = dy
                    for j, other in enumerate(bottom):
                        if j != k:
                            b.diff *= other.data
                else:
                    b.diff[...] = dy * top[0].data / b.data
            else:
                b.diff[...] = xp.where(self.mask == k, dy, 0)
