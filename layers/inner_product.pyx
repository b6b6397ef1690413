"""InnerProduct: y = x W^T + b over the axes from `axis` on (Caffe's InnerProduct).

The bottom is viewed as an (M, K) matrix, M = prod(shape[:axis]), K = prod(shape[axis:]);
W is (N, K), or (K, N) with transpose: true; b is (N,). The top is shape[:axis] + (N,).
All products go to BLAS through layers.kernels.blas.gemm (every core, one BLAS thread each).
"""
import math

import numpy as np

from ..proto.errors import NetError
from . import fillers
from .base import Layer, canonical_axis, steppable
from .kernels.blas cimport gemm_threads
from .kernels.blas import gemm
from .kernels.step cimport Step


cdef class ForwardStep(Step):
    """A float32 y (M, N) = x (M, K) W^T + b as a net's step; W is (N, K), or (K, N)
    transposed."""

    cdef const float* x
    cdef const float* w
    cdef const float* b
    cdef float* y
    cdef int m, n, k
    cdef bint transposed

    def __init__(self, const float[:, ::1] x, const float[:, ::1] w, float[:, ::1] y,
                 const float[::1] b, bint transposed):
        self.m, self.k, self.n, self.transposed = x.shape[0], x.shape[1], y.shape[1], transposed
        if (y.shape[0] != self.m or (w.shape[0], w.shape[1]) != (
                (self.k, self.n) if transposed else (self.n, self.k)) or
                b is not None and b.shape[0] != self.n or self.m * self.n * self.k == 0):
            raise ValueError("inner_product.ForwardStep: the arrays do not fit")
        self.keep += [x, w, y, b]
        self.x, self.w, self.y = &x[0, 0], &w[0, 0], &y[0, 0]
        self.b = &b[0] if b is not None else NULL

    cdef int run(self) except -1:
        cdef int i, j
        with nogil:
            gemm_threads(False, not self.transposed, self.m, self.n, self.k, <float>1, self.x,
                         self.k, self.w, self.n if self.transposed else self.k, <float>0,
                         self.y, self.n)
            if self.b != NULL:
                for i in range(self.m):
                    for j in range(self.n):
                        self.y[i * self.n + j] += self.b[j]
        return 0


class InnerProduct(Layer):
    """A fully connected layer; blobs are [weight] or [weight, bias]."""

    type = "InnerProduct"
    bottoms = tops = 1

    def setup(self, bottom, top):
        p = self.param.inner_product_param
        if p.num_output <= 0:
            raise NetError(f"layer '{self.name}' (InnerProduct): "
                           f"inner_product_param.num_output must be positive, got {p.num_output}")
        self.num_output = p.num_output
        self.bias_term = p.bias_term
        self.transpose = p.transpose
        self.axis = canonical_axis(p.axis, len(bottom[0].shape), self)
        k = int(np.prod(bottom[0].shape[self.axis:], dtype=np.int64))
        n = self.num_output
        wanted = [(k, n) if self.transpose else (n, k)] + ([(n,)] if self.bias_term else [])
        if not self.blobs:
            self.blobs = [self.new_blob(shape) for shape in wanted]
            fillers.fill(self.blobs[0].data, p.weight_filler)
            if self.bias_term:
                fillers.fill(self.blobs[1].data, p.bias_filler)
        else:
            self._adopt_given_blobs(wanted)

    def _adopt_given_blobs(self, wanted):
        if len(self.blobs) != len(wanted):
            raise NetError(f"layer '{self.name}' (InnerProduct): expected {len(wanted)} "
                           f"param blob(s) (bias_term: {str(self.bias_term).lower()}), "
                           f"got {len(self.blobs)}")
        for i, (blob, shape) in enumerate(zip(self.blobs, wanted)):
            # Legacy (V1) blobs are 4-D with leading ones: same values, padded shape.
            legacy = tuple(d for d in blob.shape if d != 1) == tuple(d for d in shape if d != 1)
            if blob.shape != shape and not (legacy and blob.count == np.prod(shape)):
                what = "weight" if i == 0 else "bias"
                raise self.shape_error(f"{what} blob has shape {blob.shape}, but the bottom "
                                       f"{'and num_output ' if i == 0 else ''}need {shape}")
            blob.reshape(shape)

    def _sizes(self, bottom):
        shape = bottom[0].shape
        m = math.prod(shape[:self.axis])
        k = math.prod(shape[self.axis:])
        return m, k

    def reshape(self, bottom, top):
        m, k = self._sizes(bottom)
        weight_k = self.blobs[0].shape[0 if self.transpose else 1]
        if k != weight_k:
            raise self.shape_error(f"bottom of shape {bottom[0].shape} has {k} inputs per "
                                   f"item from axis {self.axis} on, but the weights take "
                                   f"{weight_k}")
        top[0].reshape(bottom[0].shape[:self.axis] + (self.num_output,))

    def _weight_nk(self):
        """W as an (N, K) matrix (a transposed view when stored (K, N))."""
        w = self.blobs[0].data
        return w.T if self.transpose else w

    def forward_cpu(self, bottom, top):
        m, k = self._sizes(bottom)
        x = bottom[0].data.reshape(m, k)
        y = top[0].data.reshape(m, self.num_output)
        gemm(x, self.blobs[0].data, y, trans_b=not self.transpose)
        if self.bias_term:
            y += self.blobs[1].data

    def step(self, bottom, top):
        """The float32 forward as a net's step (kernels/step.pyx); None otherwise."""
        x, y, w = bottom[0].data, top[0].data, self.blobs[0].data
        b = self.blobs[1].data if self.bias_term else None
        if not steppable(x, y, w, *([b] if b is not None else [])):
            return None
        m, k = self._sizes(bottom)
        return ForwardStep(x.reshape(m, k), w, y.reshape(m, self.num_output), b, self.transpose)

    def backward_cpu(self, top, propagate_down, bottom):
        m, k = self._sizes(bottom)
        dy = top[0].diff.reshape(m, self.num_output)
        x = bottom[0].data.reshape(m, k)
        # dW (N, K) += dy^T x; stored transposed it is x^T dy.
        if self.transpose:
            gemm(x, dy, self.blobs[0].diff, trans_a=True, beta=1)
        else:
            gemm(dy, x, self.blobs[0].diff, trans_a=True, beta=1)
        if self.bias_term:
            self.blobs[1].diff += dy.sum(axis=0)
        if propagate_down[0]:
            gemm(dy, self.blobs[0].data, bottom[0].diff.reshape(m, k), trans_b=self.transpose)

    def forward_gpu(self, bottom, top):
        m, k = self._sizes(bottom)
        y = bottom[0].data.reshape(m, k) @ self._weight_nk().T
        if self.bias_term:
            y += self.blobs[1].data
        top[0].data[...] = y.reshape(top[0].shape)

    def backward_gpu(self, top, propagate_down, bottom):
        m, k = self._sizes(bottom)
        dy = top[0].diff.reshape(m, self.num_output)
        x = bottom[0].data.reshape(m, k)
        self.blobs[0].diff += x.T @ dy if self.transpose else dy.T @ x
        if self.bias_term:
            self.blobs[1].diff += dy.sum(axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = (dy @ self._weight_nk()).reshape(bottom[0].shape)
