"""SigmoidCrossEntropyLoss: loss = -sum_i [x_i (t_i - [x_i >= 0]) - log(1 + exp(-|x_i|))] / norm.

The cross-entropy of targets t in [0, 1] against sigmoid(x), written so that no
exp overflows (Caffe's form; x - 2 x [x >= 0] = -|x|; the log is taken as log1p).
Both bottoms have the same count; outer = shape[0], inner = count / outer. A
position whose target truncated to int equals loss_param.ignore_label contributes
nothing and is not valid. The normalizer (clamped to >= 1) follows
loss_param.normalization, whose default for this layer is BATCH_SIZE (not VALID,
for historical reasons, as in Caffe); the legacy `normalize` counts when
`normalization` is unset (true -> VALID).
Backward: dx = (sigmoid(x) - t) * top.diff / normalizer, zero at ignored
positions; the targets take no gradient.
"""
from cython.parallel import prange
from cython cimport floating
from libc.math cimport exp, fabs, log1p, tanh

from ..proto import cyffe_pb2 as pb
from .backend import array_module
from .base_loss import LossLayer, loss_normalizer, normalization_mode
from .kernels.parallel cimport PARALLEL_WORK, TRANSCENDENTAL


cdef inline bint is_ignored(double target, bint has_ignore, int ignore_label) noexcept nogil:
    """Whether int(target) (Caffe's static_cast) is the ignore_label."""
    return (has_ignore and -2147483649.0 < target < 2147483648.0
            and <int>target == ignore_label)


def sigmoid_ce_forward(const floating[::1] x, const floating[::1] t, bint has_ignore,
                       int ignore_label):
    """(sum of the per-position losses, number of positions not ignored)."""
    cdef Py_ssize_t i, n = x.shape[0], count = 0
    cdef double loss = 0, v
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            if is_ignored(t[i], has_ignore, ignore_label):
                continue
            v = x[i]
            loss += log1p(exp(-fabs(v))) - v * (t[i] - (v >= 0))
            count += 1
    return loss, count


def sigmoid_ce_backward(const floating[::1] x, const floating[::1] t, floating[::1] dx,
                        bint has_ignore, int ignore_label, double scale):
    """dx = (sigmoid(x) - t) * scale, zero where the target is ignored."""
    cdef Py_ssize_t i, n = x.shape[0]
    with nogil:
        for i in prange(n, schedule="static", use_threads_if=n * TRANSCENDENTAL >= PARALLEL_WORK):
            if is_ignored(t[i], has_ignore, ignore_label):
                dx[i] = 0
            else:
                dx[i] = <floating>((0.5 * tanh(0.5 * x[i]) + 0.5 - t[i]) * scale)


class SigmoidCrossEntropyLoss(LossLayer):
    """Sigmoid followed by the cross-entropy against soft or hard targets."""

    type = "SigmoidCrossEntropyLoss"

    def setup(self, bottom, top):
        loss = self.param.loss_param
        self.has_ignore = loss.HasField("ignore_label")
        self.ignore_label = loss.ignore_label
        self.normalization = normalization_mode(loss, pb.LossParameter.BATCH_SIZE)
        self.valid_count = 0

    def allow_backward(self, bottom_index):
        return bottom_index == 0

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.check_same_count(bottom, "scores and targets")
        self.outer = bottom[0].shape[0] if bottom[0].shape else 1
        self.inner = bottom[0].count // max(1, self.outer)

    def _normalizer(self):
        return loss_normalizer(self.normalization, self.outer, self.inner, self.valid_count,
                               self.dtype)

    def _scale(self, top):
        return float(self.dtype.type(top[0].diff) / self._normalizer())

    def forward_cpu(self, bottom, top):
        loss, self.valid_count = sigmoid_ce_forward(
            bottom[0].data.reshape(-1), bottom[1].data.reshape(-1), self.has_ignore,
            self.ignore_label)
        top[0].data[...] = self.dtype.type(loss) / self._normalizer()

    def backward_cpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "targets")
        if propagate_down[0]:
            sigmoid_ce_backward(bottom[0].data.reshape(-1), bottom[1].data.reshape(-1),
                                bottom[0].diff.reshape(-1), self.has_ignore,
                                self.ignore_label, self._scale(top))

    # -- array-API path -------------------------------------------------------

    def _kept(self, t):
        xp = array_module(t)
        if not self.has_ignore:
            return xp.ones(t.shape, bool)
        in_range = (t > -2147483649.0) & (t < 2147483648.0)
        return ~(in_range & (xp.trunc(xp.where(in_range, t, 0)) == self.ignore_label))

    def forward_gpu(self, bottom, top):
        xp = array_module(bottom[0].data)
        x, t = bottom[0].data.reshape(-1), bottom[1].data.reshape(-1)
        kept = self._kept(t)
        per_position = xp.log1p(xp.exp(-xp.abs(x))) - x * (t - (x >= 0))
        self.valid_count = int(kept.sum())
        top[0].data[...] = (per_position * kept).sum() / self._normalizer()

    def backward_gpu(self, top, propagate_down, bottom):
        self.refuse_gradient(propagate_down, "targets")
        if propagate_down[0]:
            xp = array_module(bottom[0].data)
            x, t = bottom[0].data, bottom[1].data.reshape(bottom[0].shape)
            dx = (0.5 * xp.tanh(0.5 * x) + 0.5 - t) * self._kept(t)
            bottom[0].diff[...] = dx * self.dtype.type(self._scale(top))
