"""One sliding-window geometry, shared by Convolution, Deconvolution, Im2col, Pooling and SPP.

A window of `kernel` pixels (spread `dilation` apart) steps `stride` pixels over an input
of `in_shape` padded by `pad_before` / `pad_after`, one value per spatial axis, giving an
output of `out_shape`. The padding holds `fill`: "zero" (Caffe's: the kernels treat it as
absent), or "constant" (`value`), "reflect" or "replicate", which pad a copy of the image
(the source) that the kernels then read with no padding of their own; the source's gradient
is folded back onto the image (see padding.py).
"""
import itertools
import math

import numpy as np

from . import padding


def convolution_output(in_shape, kernel, stride, dilation, pad_before, pad_after):
    """Convolution's output size per spatial axis (<= 0 where the kernel does not fit)."""
    return tuple((i + b + a - (d * (k - 1) + 1)) // s + 1 for i, k, s, d, b, a in
                 zip(in_shape, kernel, stride, dilation, pad_before, pad_after))


class Geometry:
    """in_shape, kernel, stride, dilation, pad_before, pad_after, out_shape (one value per
    spatial axis), fill and value; out_shape defaults to convolution's. force_nd takes the
    N-D kernels in 2-D too (Caffe's force_nd_im2col)."""

    def __init__(self, in_shape, kernel, stride, dilation, pad_before, pad_after,
                 out_shape=None, fill="zero", value=0.0, force_nd=False):
        self.in_shape, self.kernel = tuple(in_shape), tuple(kernel)
        self.stride, self.dilation = tuple(stride), tuple(dilation)
        self.pad_before, self.pad_after = tuple(pad_before), tuple(pad_after)
        self.out_shape = tuple(out_shape) if out_shape is not None else convolution_output(
            self.in_shape, self.kernel, self.stride, self.dilation, self.pad_before,
            self.pad_after)
        self.fill, self.value = fill, value
        self.copies = fill != "zero" and any(self.pad_before + self.pad_after)
        zeros = (0,) * len(self.kernel)
        if self.copies:
            self.source_shape = tuple(i + b + a for i, b, a in
                                      zip(self.in_shape, self.pad_before, self.pad_after))
            self.source_pads = self.source_pads_after = zeros
        else:
            self.source_shape = self.in_shape
            self.source_pads, self.source_pads_after = self.pad_before, self.pad_after
        self.kernel_volume = math.prod(self.kernel)
        self.length = math.prod(self.out_shape)
        self.fast_2d = len(self.kernel) == 2 and not force_nd
        self.identity = (self.kernel_volume == 1 and self.out_shape == self.source_shape and
                         not any(self.source_pads))
        self._nd = None

    def __repr__(self):
        return (f"Geometry(in {self.in_shape}, kernel {self.kernel}, stride {self.stride}, "
                f"dilation {self.dilation}, pad {self.pad_before}/{self.pad_after}, "
                f"out {self.out_shape}, fill {self.fill})")

    def nd_arrays(self):
        """(kernel_offsets (K, n), out_starts (L, n), source shape (n,)) for the N-D kernels:
        the source pixel of kernel offset k at output l is out_starts[l] + kernel_offsets[k]."""
        if self._nd is None:
            dims = len(self.kernel)
            offsets = [[k * d - p for k, d, p in zip(ks, self.dilation, self.source_pads)]
                       for ks in itertools.product(*[range(k) for k in self.kernel])]
            starts = [[o * s for o, s in zip(os, self.stride)]
                      for os in itertools.product(*[range(o) for o in self.out_shape])]
            self._nd = (np.array(offsets, np.intp).reshape(self.kernel_volume, dims),
                        np.array(starts, np.intp).reshape(self.length, dims),
                        np.array(self.source_shape, np.intp))
        return self._nd

    # -- the padded source (filled padding only) ---------------------------------

    def source(self, x, take):
        """x (N, C, *in_shape) itself, or a padded copy holding the fill, in take's arena
        frame (kernels/arena)."""
        if not self.copies:
            return x
        out = take((x.shape[0], x.shape[1]) + self.source_shape, x.dtype)
        return padding.pad_into(out, x, self.pad_before, self.pad_after, self.fill, self.value)

    def source_gradient(self, dx, take):
        """Where to write the gradient of the source: dx itself, or scratch from take's
        frame (another than source()'s, so a backward may read the one and write the other)."""
        if not self.copies:
            return dx
        return take((dx.shape[0], dx.shape[1]) + self.source_shape, dx.dtype)

    def fold(self, g, dx):
        """dx = the gradient of the image, given g = the gradient of its source."""
        if self.copies:
            dx[...] = padding.fold(g, self.pad_before, self.pad_after, self.fill)

    def source_xp(self, xp, x):
        """source() in array-API code: a new padded array."""
        if not self.copies:
            return x
        out = xp.empty(x.shape[:2] + self.source_shape, x.dtype)
        return padding.pad_into(out, x, self.pad_before, self.pad_after, self.fill, self.value)

    def fold_xp(self, g):
        """The image gradient from the source gradient g, in array-API code."""
        if not self.copies:
            return g
        return padding.fold(g, self.pad_before, self.pad_after, self.fill)


cdef Window window_of(geometry) except *:
    """The kernels' view of a Geometry, on its source; the N-D arrays it points into stay
    alive with the Geometry."""
    cdef Window w
    cdef const Py_ssize_t[:, ::1] offsets
    cdef const Py_ssize_t[:, ::1] starts
    cdef const Py_ssize_t[::1] shape
    cdef Py_ssize_t d
    w.nd = not geometry.fast_2d
    w.kernel_volume, w.length = geometry.kernel_volume, geometry.length
    w.dims = len(geometry.kernel)
    w.volume = math.prod(geometry.source_shape)
    if w.nd:
        offsets, starts, shape = geometry.nd_arrays()
        w.kernel_offsets, w.out_starts, w.in_shape = &offsets[0, 0], &starts[0, 0], &shape[0]
        return w
    w.height, w.width = geometry.source_shape
    w.kh, w.kw = geometry.kernel
    w.ph, w.pw = geometry.source_pads
    w.eh, w.ew = geometry.source_pads_after
    w.sh, w.sw = geometry.stride
    w.dh, w.dw = geometry.dilation
    w.ho, w.wo = geometry.out_shape
    return w

