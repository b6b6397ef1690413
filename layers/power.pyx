"""Power: y = (shift + scale * x) ^ power  (Caffe's Power).

Caffe's special cases: when power * scale is 0 the output ignores the input (1 when power
is 0, shift ^ power otherwise) and the gradient is 0; power 1 is affine (dx = scale * dy).
Otherwise dx = dy * power * scale * (shift + scale * x) ^ (power - 1); Caffe writes this as
power * scale * y / (shift + scale * x), which is 0/0 where the base is 0, so we take the
power directly (0 there for power > 1). In place, forward keeps a copy of the input.
"""
import numpy as np

from cython.parallel import prange
from cython cimport floating
from libc.math cimport pow

from .base import NeuronLayer
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


def power_forward(const floating[::1] x, floating[::1] y, double power, double scale,
                  double shift):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        if power == 1:
            for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
                y[i] = <floating>(shift + scale * x[i])
        else:
            for i in prange(n, schedule="static",
                            use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
                y[i] = <floating>pow(shift + scale * x[i], power)


def power_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx,
                   double power, double scale, double shift):
    """dx = dy * power * scale * (shift + scale * x) ^ (power - 1); dx may alias dy."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double diff_scale = power * scale
    with nogil:
        if power == 1:
            for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
                dx[i] = <floating>(diff_scale * dy[i])
        elif power == 2:
            for i in prange(n, schedule="static", use_threads_if=n >= PARALLEL_WORK):
                dx[i] = <floating>(diff_scale * (shift + scale * x[i]) * dy[i])
        else:
            for i in prange(n, schedule="static",
                            use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
                dx[i] = <floating>(diff_scale * pow(shift + scale * x[i], power - 1) * dy[i])


class Power(NeuronLayer):
    """An affine map raised to a power, elementwise; runs in place."""

    type = "Power"

    def setup(self, bottom, top):
        p = self.param.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift
        self.diff_scale = self.power * self.scale
        # Only the general case needs the input again in backward.
        self.keeps_input = self.diff_scale != 0 and self.power != 1
        with np.errstate(all="ignore"):     # C's pow: NaN or inf, as Caffe gets
            self.constant = (1.0 if self.power == 0 else
                             float(np.power(np.float64(self.shift), self.power)))

    def forward_kernel(self, x, y):
        if self.diff_scale == 0:
            y[...] = self.constant
        else:
            power_forward(x, y, self.power, self.scale, self.shift)

    def backward_kernel(self, x, y, dy, dx):
        if self.diff_scale == 0:
            dx[...] = 0
        else:
            power_backward(x, dy, dx, self.power, self.scale, self.shift)

    def forward_array(self, xp, x):
        if self.diff_scale == 0:
            return self.constant
        base = self.shift + self.scale * x
        return base if self.power == 1 else base ** self.power

    def backward_array(self, xp, x, y, dy):
        if self.diff_scale == 0:
            return 0
        if self.power == 1:
            return self.diff_scale * dy
        base = self.shift + self.scale * x
        slope = base if self.power == 2 else base ** (self.power - 1)
        return self.diff_scale * slope * dy
