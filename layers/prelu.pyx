"""PReLU: y = max(x, 0) + a_c * min(x, 0), a learnable slope per channel (Caffe's PReLU).

The channel axis is 1; with channel_shared one slope serves every channel (a 0-d blob, as
Caffe stores it). Slopes start at 0.25 unless prelu_param.filler says otherwise.
Backward: dx = dy where x > 0, a_c * dy elsewhere; da_c += sum over x <= 0 of dy * x.
In place, forward keeps a copy of the input for backward, as Caffe does.
"""
cimport cython
import numpy as np

from cython.parallel import prange
from cython cimport floating

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from . import fillers
from .backend import array_module
from .base import NeuronLayer, channel_split, steppable
from .kernels.parallel cimport PARALLEL_WORK
from .kernels.step cimport Step


cdef inline void prelu_plane(const floating* x, const floating* v, floating* out, floating a,
                             Py_ssize_t dim) noexcept nogil:
    cdef Py_ssize_t d
    for d in range(dim):
        out[d] = v[d] if x[d] > 0 else v[d] * a


cdef void prelu_run(const floating* x, const floating* v, floating* out, const floating* slope,
                    bint shared, Py_ssize_t num, Py_ssize_t channels,
                    Py_ssize_t dim) noexcept nogil:
    cdef Py_ssize_t r
    if num * channels * dim < PARALLEL_WORK:            # not even a team of one
        for r in range(num * channels):
            prelu_plane(x + r * dim, v + r * dim, out + r * dim,
                        slope[0] if shared else slope[r % channels], dim)
        return
    for r in prange(num * channels, schedule="static"):
        prelu_plane(x + r * dim, v + r * dim, out + r * dim,
                    slope[0] if shared else slope[r % channels], dim)


@cython.boundscheck(False)
@cython.wraparound(False)
def prelu_apply(const floating[:, :, ::1] x, const floating[:, :, ::1] v,
                floating[:, :, ::1] out, const floating[::1] slope, bint shared):
    """out = v where x > 0, slope * v elsewhere: y from v = x, dx from v = dy; out may alias v.

    All viewed as (num, channels, inner); slope has one value, or one per channel.
    """
    cdef Py_ssize_t i
    for i in range(3):
        if v.shape[i] != x.shape[i] or out.shape[i] != x.shape[i]:
            raise ValueError("prelu_apply: the arrays differ in shape")
    if slope.shape[0] < (1 if shared else x.shape[1]):
        raise ValueError("prelu_apply: too few slopes")
    if x.shape[0] * x.shape[1] * x.shape[2]:
        with nogil:
            prelu_run(&x[0, 0, 0], &v[0, 0, 0], &out[0, 0, 0], &slope[0], shared, x.shape[0],
                      x.shape[1], x.shape[2])


cdef class ForwardStep(Step):
    """A float32 PReLU as a net's step (y from x; the slopes read at every run)."""

    cdef const float* x
    cdef float* y
    cdef const float* slope
    cdef bint shared
    cdef Py_ssize_t num, channels, dim

    def __init__(self, const float[:, :, ::1] x, float[:, :, ::1] y, const float[::1] slope,
                 bint shared):
        if ((y.shape[0], y.shape[1], y.shape[2]) != (x.shape[0], x.shape[1], x.shape[2]) or
                x.shape[0] * x.shape[1] * x.shape[2] == 0
                or slope.shape[0] < (1 if shared else x.shape[1])):
            raise ValueError("prelu.ForwardStep: the arrays do not fit")
        self.keep += [x, y, slope]
        self.x, self.y, self.slope, self.shared = &x[0, 0, 0], &y[0, 0, 0], &slope[0], shared
        self.num, self.channels, self.dim = x.shape[0], x.shape[1], x.shape[2]

    cdef int run(self) except -1:
        with nogil:
            prelu_run(self.x, self.x, self.y, self.slope, self.shared, self.num, self.channels,
                      self.dim)
        return 0


@cython.boundscheck(False)
@cython.wraparound(False)
def prelu_slope_gradient(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                         double[::1] out):
    """out[c] = sum over items and positions of channel c where x <= 0 of dy * x."""
    cdef Py_ssize_t n, c, d
    cdef double acc
    cdef floating v
    with nogil:
        for c in prange(x.shape[1], schedule="static",
                        use_threads_if=x.shape[0] * x.shape[1] * x.shape[2] >= PARALLEL_WORK):
            acc = 0
            for n in range(x.shape[0]):
                for d in range(x.shape[2]):
                    v = x[n, c, d]
                    if v <= 0:
                        acc = acc + dy[n, c, d] * v
            out[c] = acc


class PReLU(NeuronLayer):
    """Parametric ReLU; blobs are [slopes] (shape (channels,), or () when channel_shared)."""

    type = "PReLU"
    keeps_input = True

    def setup(self, bottom, top):
        p = self.param.prelu_param
        _, channels, _ = channel_split(self, bottom[0].shape)
        self.channel_shared = p.channel_shared
        if not self.blobs:
            self.blobs = [self.new_blob(() if self.channel_shared else (channels,))]
            if p.HasField("filler"):
                fillers.fill(self.blobs[0].data, p.filler)
            else:
                fillers.fill(self.blobs[0].data, pb.FillerParameter(type="constant", value=0.25))
        if len(self.blobs) != 1:
            raise NetError(f"layer '{self.name}' (PReLU): expected 1 param blob (the slopes), "
                           f"got {len(self.blobs)}")
        wanted = 1 if self.channel_shared else channels
        if self.blobs[0].count != wanted:
            why = ("channel_shared" if self.channel_shared else
                   f"one per channel; the bottom has {channels} channels")
            raise NetError(f"layer '{self.name}' (PReLU): the slope blob has "
                           f"{self.blobs[0].count} value(s) (shape {self.blobs[0].shape}), but "
                           f"{wanted} are needed ({why})")
        self._channels = channels
        self.slope_sums = None

    def reshape(self, bottom, top):
        _, channels, _ = channel_split(self, bottom[0].shape)
        if channels != self._channels:
            raise self.shape_error(f"bottom of shape {bottom[0].shape} has {channels} "
                                   f"channels, the slopes were set up for {self._channels}")
        top[0].reshape(bottom[0].shape)

    def view(self, array):
        """An array as the kernels take it: (num, channels, the rest)."""
        return array.reshape(array.shape[0], self._channels, -1)

    def forward_kernel(self, x, y):
        prelu_apply(x, x, y, self.blobs[0].data.reshape(-1), self.channel_shared)

    def step(self, bottom, top):
        """The float32 forward as a net's step (kernels/step.pyx); None where forward keeps
        its input for a backward, or otherwise can't."""
        x, y, slope = bottom[0].data, top[0].data, self.blobs[0].data
        if (not steppable(x, y, slope) or
                self.keeps_input and top[0] is bottom[0] and not self.forward_only):
            return None
        return ForwardStep(self.view(x), self.view(y), slope.reshape(-1), self.channel_shared)

    def backward_kernel(self, x, y, dy, dx):
        prelu_apply(x, dy, dx, self.blobs[0].data.reshape(-1), self.channel_shared)

    def _slope(self):
        a = self.blobs[0].data
        return a if self.channel_shared else a.reshape(1, self._channels, 1)

    def forward_array(self, xp, x):
        v = self.view(x)
        return (v * ((v > 0) + (v <= 0) * self._slope())).reshape(x.shape)

    def backward_array(self, xp, x, y, dy):
        v = self.view(x)
        return (self.view(dy) * ((v > 0) + (v <= 0) * self._slope())).reshape(dy.shape)

    # The slopes' gradient comes first: in place, writing the bottom diff overwrites the
    # top diff.

    def backward_cpu(self, top, propagate_down, bottom):
        if self.slope_sums is None:
            self.slope_sums = np.empty(self._channels, np.float64)
        prelu_slope_gradient(self.view(self.input_data(bottom, top)), self.view(top[0].diff),
                             self.slope_sums)
        slope_diff = self.blobs[0].diff
        slope_diff += self.slope_sums.sum() if self.channel_shared else self.slope_sums
        super().backward_cpu(top, propagate_down, bottom)

    def backward_gpu(self, top, propagate_down, bottom):
        xp = array_module(top[0].diff)
        x, dy = self.view(self.input_data(bottom, top)), self.view(top[0].diff)
        negative = dy * x * (x <= 0)
        self.blobs[0].diff += xp.sum(negative) if self.channel_shared else negative.sum(axis=(0, 2))
        super().backward_gpu(top, propagate_down, bottom)
