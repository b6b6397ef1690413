"""Caffe's other solvers: Nesterov, AdaGrad, RMSProp, AdaDelta and Adam.

Each is an SGDSolver (same iteration: clip, normalize by iter_size, regularize,
update) that overrides only compute_update_value, which turns the gradient
g = blob.diff into the step subtracted from the weights. With the local rate
r = lr * lr_mult, as BVLC Caffe's sgd_solvers compute them:

    Nesterov   v' = m v + r g                      step = (1 + m) v' - m v
    AdaGrad    h += g^2                            step = r g / (sqrt(h) + delta)
    RMSProp    h = d h + (1 - d) g^2               step = r g / (sqrt(h) + delta)
    AdaDelta   h = m h + (1 - m) g^2
               u = g sqrt((s + delta) / (h + delta))
               s = m s + (1 - m) u^2               step = r u
    Adam       a = b1 a + (1 - b1) g
               b = b2 b + (1 - b2) g^2             step = r c a / (sqrt(b) + delta),
               c = sqrt(1 - b2^t) / (1 - b1^t), t = iter + 1

m = momentum, d = rms_decay, b1 = momentum, b2 = momentum2. `history` holds
Caffe's solverstate blobs in its order: one per param (v, h or a), then for
AdaDelta and Adam a second set (s or b).
"""
import math

from ..layers.backend import array_module
from ..proto.errors import NetError
from .solver import SGDSolver


class NesterovSolver(SGDSolver):
    """Nesterov's accelerated gradient: momentum looked ahead, as Caffe's Nesterov."""

    type = "Nesterov"

    def compute_update_value(self, i, blob, rate):
        momentum, v = self.param.momentum, self.history[i]
        previous = momentum * v
        v *= momentum
        v += (rate * self.net.lr_mults[i]) * blob.diff
        blob.diff[...] = (1 + momentum) * v - previous


class AdaGradSolver(SGDSolver):
    """AdaGrad: each weight's rate divided by the root of its summed squared gradients."""

    type = "AdaGrad"

    def check_param(self):
        super().check_param()
        _no_momentum(self)

    def compute_update_value(self, i, blob, rate):
        g, h = blob.diff, self.history[i]
        h += g * g
        g *= (rate * self.net.lr_mults[i]) / (array_module(h).sqrt(h) + self.param.delta)


class RMSPropSolver(SGDSolver):
    """RMSProp: the rate divided by a running root mean square (rms_decay) of the gradient."""

    type = "RMSProp"

    def check_param(self):
        super().check_param()
        _no_momentum(self)
        if not 0 <= self.param.rms_decay < 1:
            raise NetError(f"{self.where}: rms_decay must lie in [0, 1) for RMSProp "
                           f"(got {self.param.rms_decay:g})")

    def compute_update_value(self, i, blob, rate):
        g, h, decay = blob.diff, self.history[i], self.param.rms_decay
        h *= decay
        h += (1 - decay) * (g * g)
        g *= (rate * self.net.lr_mults[i]) / (array_module(h).sqrt(h) + self.param.delta)


class AdaDeltaSolver(SGDSolver):
    """AdaDelta: gradient and update running averages (decay = momentum), times lr as Caffe's."""

    type = "AdaDelta"
    history_sets = 2

    def compute_update_value(self, i, blob, rate):
        g, momentum, delta = blob.diff, self.param.momentum, self.param.delta
        h, s = self.history[i], self.history[i + len(self.net.learnable_params)]
        h *= momentum
        h += (1 - momentum) * (g * g)
        g *= array_module(g).sqrt((s + delta) / (h + delta))
        s *= momentum
        s += (1 - momentum) * (g * g)
        g *= rate * self.net.lr_mults[i]


class AdamSolver(SGDSolver):
    """Adam: bias-corrected running moments (momentum, momentum2) of the gradient."""

    type = "Adam"
    history_sets = 2

    def check_param(self):
        super().check_param()
        for field in ("momentum", "momentum2"):
            value = getattr(self.param, field)
            if not 0 <= value < 1:
                raise NetError(f"{self.where}: {field} must lie in [0, 1) for Adam "
                               f"(got {value:g})")

    def compute_update_value(self, i, blob, rate):
        g, beta1, beta2 = blob.diff, self.param.momentum, self.param.momentum2
        a, b = self.history[i], self.history[i + len(self.net.learnable_params)]
        a *= beta1
        a += (1 - beta1) * g
        b *= beta2
        b += (1 - beta2) * (g * g)
        t = self.iter + 1
        correction = math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        g[...] = (rate * self.net.lr_mults[i] * correction) * a / (
            array_module(b).sqrt(b) + self.param.delta)


def _no_momentum(solver):
    """AdaGrad and RMSProp have no momentum term; Caffe refuses one."""
    if solver.param.momentum != 0:
        raise NetError(f"{solver.where}: momentum must be 0 for {solver.type} "
                       f"(got {solver.param.momentum:g}); {solver.type} has no momentum term")
