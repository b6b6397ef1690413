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


def power_forward(const floating[::1] x, floating[::1] y, double power, double scale,
                  double shift):
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        if power == 1:
            for i in prange(n, schedule="static"):
                y[i] = <floating>(shift + scale * x[i])
        else:
            for i in prange(n, schedule="static"):
                y[i] = <floating>pow(shift + scale * x[i], power)


def power_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx,
                   double power, double scale, double shift):
    """dx = dy * power * scale * (shift + scale * x) ^ (power - 1); dx may alias dy."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double diff_scale = power * scale
    with nogil:
        if power == 1:
            for i in prange(n, schedule="static"):
                dx[i] = <floating>(diff_scale * dy[i])
        elif power == 2:
            for i in prange(n, schedule="static"):
                dx[i] = <floating>(diff_scale * (shift + scale * x[i]) * dy[i])
        else:
            for i in prange(n, schedule="static"):
                dx[i] = <floating>(diff_scale * pow(shift + scale * x[i], power - 1) * dy[i])


class Power(NeuronLayer):
    """An affine map raised to a power, elementwise; runs in place."""

    type = "Power"

    def setup(self, bottom, top):
        p = self.param.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift
        self.diff_scale = self.power * self.scale
        # Only the general case needs the input again in backward.
        self.needs_input = self.diff_scale != 0 and self.power != 1

    def _constant(self):
        with np.errstate(all="ignore"):     # C's pow: NaN or inf, as Caffe gets
            return 1.0 if self.power == 0 else float(np.power(np.float64(self.shift), self.power))

    def forward_cpu(self, bottom, top):
        if self.diff_scale == 0:
            top[0].data[...] = self._constant()
            return
        if self.needs_input:
            self.keep_bottom(bottom, top)
        power_forward(bottom[0].data.reshape(-1), top[0].data.reshape(-1),
                      self.power, self.scale, self.shift)

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.diff_scale == 0:
            bottom[0].diff[...] = 0
            return
        x = self.bottom_data(bottom, top) if self.needs_input else bottom[0].data
        power_backward(x.reshape(-1), top[0].diff.reshape(-1), bottom[0].diff.reshape(-1),
                       self.power, self.scale, self.shift)

    def forward_gpu(self, bottom, top):
        if self.diff_scale == 0:
            top[0].data[...] = self._constant()
            return
        if self.needs_input:
            self.keep_bottom(bottom, top)
        base = self.shift + self.scale * bottom[0].data
        top[0].data[...] = base if self.power == 1 else base ** self.power

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.diff_scale == 0:
            bottom[0].diff[...] = 0
            return
        if self.power == 1:
            bottom[0].diff[...] = self.diff_scale * top[0].diff
            return
        base = self.shift + self.scale * self.bottom_data(bottom, top)
        slope = base if self.power == 2 else base ** (self.power - 1)
        bottom[0].diff[...] = self.diff_scale * slope * top[0].diff
