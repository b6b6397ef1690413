"""Pooling: max, average, stochastic or L2 over (kh, kw) windows every (sh, sw) pixels
(Caffe's Pooling; L2 and the padding schemes are cyffe's own).

Window (y, x) covers rows [y*sh - ph, y*sh - ph + kh) and columns likewise. The output
size is ceil((H + 2*ph - kh) / sh) + 1 (floor with round_mode FLOOR), less one when there
is padding and the last window would start at or past H + ph.
MAX: the largest in-image value (padding never wins; the first of equal values does);
its flat index h*W + w is kept for backward and is the optional second top ("mask").
AVE: the in-image sum divided by the window clipped to [-p, H + p) (padding counts,
the overhang past it does not). global_pooling: one window over the whole plane.
STOCHASTIC (activations >= 0, as after ReLU), TRAIN: with u ~ U[0, 1) per window, the
first in-image pixel whose running sum reaches u * (window sum); y = that pixel, and
backward routes dy to it. TEST: y = sum(x^2) / (FLT_MIN + sum(x)); no backward.
L2: y = sqrt(sum of x^2 over the window); dx = dy * x / y (0 where y = 0).
pad_scheme SAME: output ceil(H / sh), total pad max((out - 1)*sh + kh - H, 0), the odd
pixel after. pad_fill ZERO is Caffe's rule above; CONSTANT (pad_value), REFLECT and
REPLICATE give padded positions values that take part in every method; a reflected or
replicated pixel sends its gradient back to its source.

The kernels, CPU and array-API, are in kernels/pooling.pyx; the geometry and the padding
in kernels/window.pyx and kernels/padding.py.
"""
import numpy as np

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .backend import array_module, rng
from .base import Layer, steppable
from .kernels import arena, pooling
from .kernels.padding import same_padding
from .kernels.window import Geometry

P = pb.PoolingParameter
METHODS = {P.MAX: "max", P.AVE: "ave", P.STOCHASTIC: "stochastic", P.L2: "l2"}


def pooled_size(size, kernel, pad, stride, ceil_mode, padded):
    """Caffe's output length along one axis: ceil (or floor) of the windows that fit; when
    the layer pads (either axis), less the last if it would start at or past size + pad."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if padded and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class Pooling(Layer):
    """Max, average, stochastic or L2 pooling over 2-D windows of each (image, channel) plane."""

    type = "Pooling"
    bottoms = 1
    tops = (1, 2)

    def setup(self, bottom, top):
        p = self.param.pooling_param
        if p.pool not in METHODS:
            raise NetError(f"layer '{self.name}': unknown pooling method {p.pool}")
        self.method = METHODS[p.pool]
        if self.method == "stochastic" and self.phase != pb.TRAIN:
            self.method = "weighted"
        if len(top) > 1 and p.pool != P.MAX:
            raise NetError(f"layer '{self.name}': only MAX pooling has a second (mask) top")
        self.global_pooling = p.global_pooling
        has_kernel = [p.HasField(f) for f in ("kernel_size", "kernel_h", "kernel_w")]
        if self.global_pooling:
            if any(has_kernel):
                raise NetError(f"layer '{self.name}': global_pooling takes the whole plane; "
                               "give no kernel size")
        else:
            if has_kernel[0] == (has_kernel[1] and has_kernel[2]) or \
                    has_kernel[0] and (has_kernel[1] or has_kernel[2]):
                raise NetError(f"layer '{self.name}': give kernel_size, or kernel_h and "
                               "kernel_w (both), not both forms")
            self.kernel = ((p.kernel_size, p.kernel_size) if has_kernel[0]
                           else (p.kernel_h, p.kernel_w))
            if min(self.kernel) <= 0:
                raise NetError(f"layer '{self.name}': kernel size must be positive, got "
                               f"{self.kernel}")
        self.same = p.pad_scheme == pb.SAME
        if self.same:
            given = [f for f in ("pad", "pad_h", "pad_w", "round_mode") if p.HasField(f)]
            if given:
                raise NetError(f"layer '{self.name}': pad_scheme SAME computes the padding "
                               f"and output size itself; remove {', '.join(given)}")
            if self.global_pooling:
                raise NetError(f"layer '{self.name}': global_pooling cannot use pad_scheme "
                               "SAME")
        self.pad = self._pair(p, "pad")
        self.pad_end = self.pad
        self.stride = self._pair(p, "stride")
        if min(self.stride) <= 0:
            raise NetError(f"layer '{self.name}': stride must be positive, got {self.stride}")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise NetError(f"layer '{self.name}': global_pooling allows only pad 0 and "
                           f"stride 1, got pad {self.pad} and stride {self.stride}")
        if not self.global_pooling and (self.pad[0] >= self.kernel[0] or
                                        self.pad[1] >= self.kernel[1]):
            raise NetError(f"layer '{self.name}': pad {self.pad} must be smaller than the "
                           f"kernel {self.kernel}")
        if p.HasField("pad_value") and p.pad_fill != pb.CONSTANT:
            raise NetError(f"layer '{self.name}': pad_value applies only to pad_fill CONSTANT")
        self.fill = pb.PadFill.Name(p.pad_fill).lower()
        self.pad_value = p.pad_value
        self.ceil_mode = p.round_mode == P.CEIL
        self._mask = None

    def _pair(self, p, field):
        """(h, w) of pad or stride: the plain field, or its _h and _w twins (both)."""
        has_h, has_w = p.HasField(f"{field}_h"), p.HasField(f"{field}_w")
        if has_h or has_w:
            if p.HasField(field) or not (has_h and has_w):
                raise NetError(f"layer '{self.name}': give {field}, or {field}_h and "
                               f"{field}_w (both), not both forms")
            return getattr(p, f"{field}_h"), getattr(p, f"{field}_w")
        return getattr(p, field), getattr(p, field)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise self.shape_error(f"bottom must be 4-D (N, C, H, W), got {shape}")
        num, channels, height, width = shape
        if self.global_pooling:
            self.kernel = (height, width)
        if self.same:
            pads = [same_padding(*axis) for axis in zip((height, width), self.kernel,
                                                         self.stride)]
            self.pad, self.pad_end = tuple(p[0] for p in pads), tuple(p[1] for p in pads)
            out = tuple(-(-size // s) for size, s in zip((height, width), self.stride))
        else:
            out = tuple(pooled_size(*axis, self.ceil_mode, any(self.pad)) for axis in
                        zip((height, width), self.kernel, self.pad, self.stride))
        if min(out) <= 0:
            raise self.shape_error(f"kernel {self.kernel} does not fit the input {shape} "
                                   f"with pad {self.pad}")
        if self.fill == "reflect" and (max(self.pad[0], self.pad_end[0]) >= height or
                                       max(self.pad[1], self.pad_end[1]) >= width):
            raise self.shape_error(f"REFLECT padding {self.pad} (before), {self.pad_end} "
                                   f"(after) must be smaller than the input {shape}")
        # Filled padding becomes real pixels of the geometry's source: a padded copy.
        self.geometry = Geometry((height, width), self.kernel, self.stride, (1, 1), self.pad,
                                 self.pad_end, out, self.fill, self.pad_value)
        for t in top:
            t.reshape((num, channels) + out)

    @staticmethod
    def _planes(array):
        """(N*C, H, W) view of a 4-D array."""
        return array.reshape((-1,) + array.shape[2:])

    def _source(self, bottom, take):
        return self._planes(self.geometry.source(np.ascontiguousarray(bottom[0].data), take))

    def _mask_for(self, shape, take, index_top=False):
        """Where forward records the pixel each window took (max, stochastic): kept for
        backward; without one (forward_only), scratch in take's frame for an index top or
        stochastic pooling, else none (max pooling's values only)."""
        if self.method not in pooling.ROUTED:
            return None
        if self.forward_only:
            self._mask = None
            return take(shape, np.intc) if index_top or self.method != "max" else None
        if self._mask is None or self._mask.shape != shape:
            self._mask = np.empty(shape, np.intc)
        return self._mask

    def _draws(self, shape):
        """One U[0, 1) draw per window (stochastic TRAIN), in the layer's dtype, from the
        shared stream."""
        return rng().random(shape, dtype=self.dtype) if self.method == "stochastic" else None

    def forward_cpu(self, bottom, top):
        y = self._planes(top[0].data)
        with arena.scratch() as take:
            mask = self._mask_for(y.shape, take, index_top=len(top) > 1)
            pooling.forward(self.method, self.geometry, self._source(bottom, take), y, mask,
                            self._draws(y.shape))
            if len(top) > 1:
                index = pooling.image_index(np, self.geometry, mask)
                top[1].data[...] = index.reshape(top[1].shape)

    def step(self, bottom, top):
        """Max or average pooling of float32 as a net's step (kernels/step.pyx); None for
        the other methods, a padded copy or the index top."""
        x, y = bottom[0].data, top[0].data
        if (len(top) > 1 or self.method not in ("max", "ave") or self.geometry.copies or
                not steppable(x, y)):
            return None
        mask = self._mask_for(y.shape, None)           # none when forward_only
        return pooling.ForwardStep(self.method, self.geometry, self._planes(x),
                                   self._planes(y), self._planes(mask) if mask is not None
                                   else None)

    def _check_backward(self):
        if self.method == "weighted":
            raise NetError(f"layer '{self.name}': STOCHASTIC pooling has no backward in the "
                           "TEST phase (its TEST forward is a weighted average, as in Caffe)")

    def backward_cpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self._check_backward()
        dx = bottom[0].diff
        l2 = self.method == "l2"
        with arena.scratch() as take:
            g = self.geometry.source_gradient(dx, take)
            x = self._source(bottom, take) if l2 else None
            y = self._planes(np.ascontiguousarray(top[0].data)) if l2 else None
            pooling.backward(self.method, self.geometry,
                             self._planes(np.ascontiguousarray(top[0].diff)), self._planes(g),
                             self._mask, x, y)
            self.geometry.fold(g, dx)

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        x = self.geometry.source_xp(xp, bottom[0].data)
        u = self._draws((top[0].shape[0] * top[0].shape[1],) + top[0].shape[2:])
        top[0].data[...], self._gpu_mask = pooling.forward_xp(
            xp, self.method, self.geometry, x, xp.asarray(u) if u is not None else None)
        if len(top) > 1:
            top[1].data[...] = pooling.image_index(xp, self.geometry, self._gpu_mask)

    def backward_gpu(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self._check_backward()
        xp = array_module(top[0].diff)
        x = self.geometry.source_xp(xp, bottom[0].data) if self.method == "l2" else None
        g = pooling.backward_xp(xp, self.method, self.geometry, top[0].diff, self._gpu_mask,
                                x, top[0].data)
        bottom[0].diff[...] = self.geometry.fold_xp(g)
